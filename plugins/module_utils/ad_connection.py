# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting and binding to Active Directory with ldap3, over verified TLS."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ssl
import traceback

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported by the controller
    from urlparse import urlsplit

LDAP3_IMPORT_ERROR = None
try:
    import ldap3
    from ldap3.core import exceptions as ldap3_exceptions
except ImportError:  # pragma: no cover - reported by the modules
    ldap3 = None
    LDAP3_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import (
    ConfigError,
    DirectoryError,
)

DEFAULT_TIMEOUT = 10


def parse_uri(uri):
    """(host, port, use_ssl) for an ldap:// or ldaps:// URI."""
    parts = urlsplit(uri)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ConfigError("server_uri %r must be ldap://host[:port] or ldaps://host[:port]" % uri)
    use_ssl = parts.scheme == "ldaps"
    try:
        port = parts.port or (636 if use_ssl else 389)
    except ValueError:
        raise ConfigError("server_uri %r has an invalid port" % uri)
    return parts.hostname, port, use_ssl


def check_transport(server_uris, start_tls, allow_insecure):
    """Refuse to send a password in clear text unless explicitly allowed."""
    for uri in server_uris:
        use_ssl = parse_uri(uri)[2]
        if not use_ssl and not start_tls and not allow_insecure:
            raise ConfigError(
                "refusing a simple bind over plain %s: use ldaps://, set start_tls: true, "
                "or set allow_insecure: true on a network you trust" % uri)


def _tls(validate_certs, ca_cert, host):
    # No protocol version: ldap3 then starts from Python's default context
    # (modern protocols and ciphers) and checks the host name itself after
    # the handshake whenever certificates are validated.
    return ldap3.Tls(
        validate=ssl.CERT_REQUIRED if validate_certs else ssl.CERT_NONE,
        ca_certs_file=ca_cert or None,
        sni=host,
    )


def connect(server_uris, bind_dn, bind_password, start_tls=False, validate_certs=True,
            ca_cert=None, allow_insecure=False, timeout=DEFAULT_TIMEOUT):
    """A bound ldap3 Connection to the first DC of `server_uris` that answers.

    Each URI is tried in order; the error names every DC that failed and
    why, so an administrator can tell a wrong password from an unreachable
    server or a certificate that fails verification.
    """
    if ldap3 is None:
        raise DirectoryError("the Python library ldap3 is required")
    check_transport(server_uris, start_tls, allow_insecure)
    failures = []
    for uri in server_uris:
        host, port, use_ssl = parse_uri(uri)
        server = ldap3.Server(host, port=port, use_ssl=use_ssl, tls=_tls(validate_certs, ca_cert, host),
                              get_info=ldap3.NONE, connect_timeout=timeout)
        # Ranged attributes are followed by ad_reader itself, in steps it
        # controls, rather than by ldap3's automatic one-shot "n-*" request.
        conn = ldap3.Connection(server, user=bind_dn, password=bind_password,
                                raise_exceptions=True, receive_timeout=timeout,
                                read_only=True, auto_referrals=False,
                                auto_range=False, return_empty_attributes=False)
        try:
            conn.open()
            if start_tls and not use_ssl:
                conn.start_tls()
            conn.bind()
            return conn
        except ldap3_exceptions.LDAPInvalidCredentialsResult as exc:
            _close(conn)
            # Credentials are the same for every DC: trying others would
            # only add failed logons to the account's lockout counter.
            raise DirectoryError("bind as %s to %s failed: invalid credentials (%s)"
                                 % (bind_dn, uri, _ad_data_code(exc)))
        except Exception as exc:  # noqa: BLE001 - every ldap3 failure is reported per DC
            _close(conn)
            failures.append("%s: %s" % (uri, describe(exc)))
    raise DirectoryError("no domain controller could be used: " + "; ".join(failures))


def _close(conn):
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001 - the connection is already broken
        pass


def _ad_data_code(exc):
    # AD explains a failed bind in its diagnostic message: "data 52e" is a
    # wrong password, "data 533" a disabled account, "data 775" a lockout.
    message = getattr(exc, "message", "") or ""
    for code, meaning in (("52e", "wrong password"), ("533", "account disabled"),
                          ("775", "account locked out"), ("532", "password expired"),
                          ("701", "account expired"), ("525", "user not found")):
        if "data %s" % code in message:
            return meaning
    return message.strip() or "invalidCredentials"


def describe(exc):
    """A short reason for an ldap3 exception, naming certificate failures as such."""
    text = str(exc)
    chain = [exc] + list(getattr(exc, "args", ()))
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(item) \
                or "certificate verify failed" in str(item):
            return "TLS certificate verification failed (check ca_cert or the server's certificate): %s" % text
    if isinstance(exc, ldap3_exceptions.LDAPSocketOpenError):
        return "cannot connect: %s" % text
    if isinstance(exc, ldap3_exceptions.LDAPStartTLSError):
        return "StartTLS failed: %s" % text
    if isinstance(exc, ldap3_exceptions.LDAPSocketReceiveError):
        return "no answer in time: %s" % text
    return "%s: %s" % (type(exc).__name__, text)
