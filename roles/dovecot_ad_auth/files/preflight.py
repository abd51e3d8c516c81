# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connect to AD and to the iRedMail backend as Dovecot will, before the role writes anything.

Reads its settings as JSON on stdin and prints {"errors": [...]} (never a secret).
AD is reached with python-ldap, which is OpenLDAP's libldap, the library Dovecot's LDAP
driver uses, with the same TLS settings: what fails here fails in Dovecot.
"""

import json
import os
import socket
import sys

TIMEOUT = 10


def ldap_error(exc):
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    text = info.get("desc") or exc.__class__.__name__
    if info.get("info"):
        text += " (%s)" % info["info"]
    return text


def ldap_connect(ldap, uri, ca_cert=None, start_tls=False):
    conn = ldap.initialize(uri)
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, TIMEOUT)
    conn.set_option(ldap.OPT_TIMEOUT, TIMEOUT)
    if ca_cert:
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, ca_cert)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_HARD)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    if start_tls:
        conn.start_tls_s()
    return conn


def check_ad(settings, errors):
    try:
        import ldap
    except ImportError:
        errors.append("python-ldap is not installed for %s" % sys.executable)
        return
    if not os.path.isfile(settings["ca_cert"]):
        errors.append("AD CA certificate %s: no such file" % settings["ca_cert"])
        return
    for uri in settings["uris"]:
        try:
            conn = ldap_connect(ldap, uri, settings["ca_cert"], settings["start_tls"])
            conn.simple_bind_s(settings["bind_dn"], settings["bind_password"])
            conn.search_s(settings["base_dn"], ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
            conn.unbind_s()
        except ldap.INVALID_CREDENTIALS:
            errors.append("AD %s: bind as %s failed: invalid credentials" % (uri, settings["bind_dn"]))
        except ldap.NO_SUCH_OBJECT:
            errors.append("AD %s: base DN %s does not exist" % (uri, settings["base_dn"]))
        except ldap.SERVER_DOWN:
            errors.append("AD %s: %s" % (uri, unreachable(uri, settings["ca_cert"])))
        except ldap.LDAPError as exc:
            errors.append("AD %s: %s" % (uri, ldap_error(exc)))


def unreachable(uri, ca_cert):
    """libldap reports a refused connection and a failed certificate check alike: tell them apart."""
    rest = uri.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    port = int(port) if port else (636 if uri.lower().startswith("ldaps://") else 389)
    try:
        socket.create_connection((host.strip("[]"), port), timeout=TIMEOUT).close()
    except OSError as err:
        return "cannot connect to %s port %d: %s" % (host, port, err.strerror or err)
    return ("TLS failed: the certificate was not verified with %s for the name %s (OpenLDAP's library, "
            "Dovecot's too, checks \"localhost\" as this machine's host name), or the server refused TLS"
            % (ca_cert, host))


def check_sql(settings, errors):
    where = "%s database %s as %s" % (settings["type"], settings["database"], settings["user"])
    try:
        if settings["type"] == "mysql":
            import pymysql
            kwargs = dict(user=settings["user"], password=settings["password"] or "", database=settings["database"],
                          connect_timeout=TIMEOUT)
            if settings["host"].startswith("/"):
                kwargs["unix_socket"] = settings["host"]
            else:
                kwargs.update(host=settings["host"], port=settings["port"])
            conn = pymysql.connect(**kwargs)
        else:
            import psycopg2
            conn = psycopg2.connect(host=settings["host"], port=settings["port"], user=settings["user"],
                                    password=settings["password"] or "", dbname=settings["database"],
                                    connect_timeout=TIMEOUT)
    except ImportError as exc:
        errors.append("%s is not installed for %s" % (exc.name, sys.executable))
        return
    except Exception as exc:  # noqa: BLE001 -- the drivers' errors share no base class
        errors.append("cannot connect to the %s: %s" % (where, str(exc).strip()))
        return
    try:
        for table in ("mailbox", "domain", "mailsync_object"):
            cur = conn.cursor()
            try:
                cur.execute("SELECT 1 FROM %s LIMIT 1" % table)
                cur.fetchall()
            except Exception as exc:  # noqa: BLE001
                hint = ""
                if table == "mailsync_object":
                    hint = ("; Dovecot's login must read the replication state table (create it with "
                            "ad_resource and backend.schema_login_user; on PostgreSQL grant SELECT on it)")
                errors.append("the %s cannot read table %s: %s%s" % (where, table, str(exc).strip(), hint))
                if settings["type"] == "pgsql":
                    conn.rollback()
            finally:
                cur.close()
    finally:
        conn.close()


def check_ldap(settings, errors):
    try:
        import ldap
    except ImportError:
        errors.append("python-ldap is not installed for %s" % sys.executable)
        return
    try:
        conn = ldap_connect(ldap, settings["server_uri"])
        conn.simple_bind_s(settings["bind_dn"], settings["bind_password"] or "")
        conn.search_s(settings["base_dn"], ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
        conn.unbind_s()
    except ldap.INVALID_CREDENTIALS:
        errors.append("OpenLDAP %s: bind as %s failed: invalid credentials"
                      % (settings["server_uri"], settings["bind_dn"]))
    except ldap.LDAPError as exc:
        errors.append("OpenLDAP %s: %s" % (settings["server_uri"], ldap_error(exc)))


def main():
    settings = json.load(sys.stdin)
    errors = []
    check_ad(settings["ad"], errors)
    backend = settings["backend"]
    if backend["type"] == "ldap":
        check_ldap(backend, errors)
    else:
        check_sql(backend, errors)
    print(json.dumps({"errors": errors}))


if __name__ == "__main__":
    main()
