# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A resource's "Test connection": connect, bind, show a sample of what it reads.

ad_resource's `validate: true`. Like iRedMail Enterprise's test, it binds
with the resource's own settings and returns the first users and groups
the resource selects, with the attributes it maps, so an administrator
sees a wrong filter or mapping before the first replication. It reads one
page of each and writes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import ldap3
    from ldap3.core import exceptions as ldap3_exceptions
except ImportError:  # pragma: no cover - reported by the modules
    ldap3 = None

from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_connection
from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_reader import decode_guid, first_text, raw_values
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import DirectoryError
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import UAC_ACCOUNTDISABLE

SAMPLE_SIZE = 10


def probe(resource, limit=SAMPLE_SIZE):
    """Bind as the resource does and return up to `limit` users and groups it selects.

    Raises DirectoryError naming the cause: invalid credentials, a domain
    controller that cannot be reached, a certificate that fails
    verification, a base DN that does not exist, an invalid filter.
    """
    conn = ad_connection.connect(
        resource.server_uri, resource.bind_dn, resource.bind_password,
        start_tls=resource.start_tls, validate_certs=resource.validate_certs,
        ca_cert=resource.ca_cert, allow_insecure=resource.allow_insecure,
        timeout=resource.timeout)
    try:
        server = "%s://%s:%s" % ("ldaps" if conn.server.ssl else "ldap", conn.server.host, conn.server.port)
        _check_base(conn, resource.base_dn)
        attribute_map = resource.attribute_map
        user_attributes = [resource.user_mail_attribute] + sorted(set(attribute_map.values()))
        if resource.quota_attribute:
            user_attributes.append(resource.quota_attribute)
        users = [_user(entry, resource, attribute_map)
                 for entry in _first(conn, resource.base_dn, resource.user_filter,
                                     ["userAccountControl"] + user_attributes, limit)]
        groups = []
        if resource.replicate_groups:
            groups = [_group(entry, resource)
                      for entry in _first(conn, resource.base_dn, resource.group_filter,
                                          ["cn", resource.group_mail_attribute], limit)]
    finally:
        _unbind(conn)
    return {"server": server, "bind_dn": resource.bind_dn, "base_dn": resource.base_dn,
            "users": users, "groups": groups}


def _check_base(conn, base_dn):
    try:
        conn.search(base_dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["1.1"])
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        raise DirectoryError("base DN %s does not exist in Active Directory" % base_dn)
    except ldap3_exceptions.LDAPInvalidDnError as exc:
        raise DirectoryError("base DN %r is not a valid DN: %s" % (base_dn, exc))
    except Exception as exc:  # noqa: BLE001 - every ldap3 failure is reported
        raise DirectoryError("reading base DN %s failed: %s" % (base_dn, ad_connection.describe(exc)))


def _first(conn, base_dn, search_filter, attributes, limit):
    """The entries of the first page (of `limit`) of a subtree search."""
    wanted = sorted(set(["objectGUID"] + [a for a in attributes if a]))
    try:
        conn.search(base_dn, search_filter, search_scope=ldap3.SUBTREE, attributes=wanted, paged_size=limit)
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        raise DirectoryError("base DN %s does not exist in Active Directory" % base_dn)
    except ldap3_exceptions.LDAPInvalidFilterError as exc:
        raise DirectoryError("invalid LDAP filter %r: %s" % (search_filter, exc))
    except Exception as exc:  # noqa: BLE001 - every ldap3 failure is reported
        raise DirectoryError("searching %s with %s failed: %s"
                             % (base_dn, search_filter, ad_connection.describe(exc)))
    entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    return entries[:limit]


def _values(entry):
    return raw_values(entry["raw_attributes"])


def _text(raw, attribute):
    return first_text(raw.get((attribute or "").lower()))


def _guid(raw):
    values = raw.get("objectguid")
    return decode_guid(values[0]) if values else None


def _user(entry, resource, attribute_map):
    raw = _values(entry)
    uac = _text(raw, "userAccountControl")
    user = {
        "dn": entry["dn"],
        "guid": _guid(raw),
        "disabled": bool(int(uac) & UAC_ACCOUNTDISABLE) if uac else False,
        "mail": _text(raw, resource.user_mail_attribute),
        "attributes": dict((field, _text(raw, attribute)) for field, attribute in sorted(attribute_map.items())),
    }
    if resource.quota_attribute:
        user["quota"] = _text(raw, resource.quota_attribute)
    return user


def _group(entry, resource):
    raw = _values(entry)
    return {"dn": entry["dn"], "guid": _guid(raw), "name": _text(raw, "cn"),
            "mail": _text(raw, resource.group_mail_attribute)}


def _unbind(conn):
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001 - the connection may already be broken
        pass
