"""Access to the lab's real servers for the integration tests.

Everything here talks to the servers `tests/lab/lab up` started: Samba AD
over LDAPS, the iRedMail account stores, and the real Postfix and Dovecot
lookup tools. Nothing is faked.
"""

import json
import os
import ssl
import subprocess
import sys
import tempfile
import uuid

import ldap3
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab"))
from labenv import ENV_FILE, LAB_DIR, ROOT, read_env  # noqa: E402  (the lab's own, stdlib-only reader)

VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


class LabNotRunning(RuntimeError):
    pass


def load_env():
    if not os.path.exists(ENV_FILE):
        raise LabNotRunning("%s is missing: start the lab with tests/lab/lab up" % ENV_FILE)
    return read_env()


# ---------------------------------------------------------------- Samba AD

class AD(object):
    """An administrator's view of the lab AD, to create and change test objects."""

    def __init__(self, env):
        self.env = env
        self.base_dn = env["AD_BASE_DN"]
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=env["AD_CA_CERT"])
        server = ldap3.Server("localhost", port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
        self.conn = ldap3.Connection(server, env["AD_ADMIN_DN"], env["AD_ADMIN_PASSWORD"],
                                     auto_bind=True, raise_exceptions=True)

    def make_ou(self, name=None):
        name = name or "t-" + uuid.uuid4().hex[:10]
        dn = "OU=%s,%s" % (name, self.base_dn)
        self.conn.add(dn, ["top", "organizationalUnit"])
        return dn

    def delete_tree(self, dn):
        self.conn.search(dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["distinguishedName"])
        for entry in sorted(self.conn.entries, key=lambda e: -len(e.entry_dn)):
            try:
                self.conn.delete(entry.entry_dn)
            except ldap3.core.exceptions.LDAPNoSuchObjectResult:
                pass

    def make_user(self, ou, cn, upn=None, disabled=False, password="Lab-Passw0rd-1", **attributes):
        """Create a user; returns its objectGUID as the canonical string."""
        dn = "CN=%s,%s" % (ldap3.utils.dn.escape_rdn(cn), ou)
        sam = ("u" + uuid.uuid4().hex)[:20]
        attrs = {"sAMAccountName": sam, "userAccountControl": 514}
        if upn is not None:
            attrs["userPrincipalName"] = upn
        attrs.update(dict((k, v) for k, v in attributes.items() if v is not None))
        self.conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs)
        self.conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [('"%s"' % password).encode("utf-16-le")])]})
        if not disabled:
            self.set_disabled(dn, False)
        return self.guid(dn), dn

    def guid(self, dn):
        self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
        return str(uuid.UUID(bytes_le=self.conn.entries[0].objectGUID.raw_values[0]))

    def set_disabled(self, dn, disabled):
        self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
        uac = int(self.conn.entries[0].userAccountControl.value)
        uac = (uac | 0x2) if disabled else (uac & ~0x2)
        self.conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [uac])]})

    def modify(self, dn, **attributes):
        self.conn.modify(dn, dict((k, [(ldap3.MODIFY_REPLACE, [v] if v is not None else [])])
                                  for k, v in attributes.items()))

    def close(self):
        self.conn.unbind()


# ------------------------------------------------------------ account stores

PROFILE_COLUMNS = {"display_name": "name", "first_name": "first_name", "last_name": "last_name",
                   "employee_id": "employeeid", "mobile": "mobile", "telephone": "telephone"}


def hand_made_maildir(address):
    """The maildir of an account the tests make by hand: iRedMail's hashed layout, without its timestamp."""
    local, _, domain = address.partition("@")
    return "%s/%s/%s/%s/%s/" % (domain, local[0], (local + "__")[1], (local + "__")[2], local)


class SQLStore(object):
    """An SQL account store seen with administrator rights, and its Postfix/Dovecot lookups."""

    kind = None
    prefix = None

    def __init__(self, env):
        self.env = env
        self.conn = self._connect()
        self.postfix_dir = env["POSTFIX_%s_DIR" % self.prefix]
        self.dovecot_conf = env["DOVECOT_%s_CONF" % self.prefix]
        self.postfix_type = self.kind

    def backend_options(self, schema=False):
        p = self.prefix
        options = {
            "type": self.kind, "host": self.env["%s_HOST" % p], "port": int(self.env["%s_PORT" % p]),
            "login_user": self.env["%s_VMAILADMIN_USER" % p],
            "login_password": self.env["%s_VMAILADMIN_PASSWORD" % p],
            "database": self.env["%s_DATABASE" % p],
        }
        if schema:
            options["schema_login_user"] = self.env[self.admin_keys[0]]
            options["schema_login_password"] = self.env[self.admin_keys[1]]
        return options

    def secrets(self):
        return [self.env["%s_VMAILADMIN_PASSWORD" % self.prefix], self.env[self.admin_keys[1]]]

    def query(self, sql, params=()):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()]
        finally:
            cur.close()

    def execute(self, sql, params=()):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.rowcount
        finally:
            cur.close()

    def mailbox(self, address):
        rows = self.query("SELECT * FROM mailbox WHERE username = %s", (address,))
        return rows[0] if rows else None

    def account(self, address):
        """The account in the model's terms, whatever the store; None if absent."""
        row = self.mailbox(address)
        if row is None:
            return None
        view = {"address": row["username"], "active": row["active"] == 1, "quota": row["quota"],
                "home": "%s/%s/%s" % (row["storagebasedirectory"], row["storagenode"], row["maildir"].rstrip("/")),
                "password": row["password"]}
        view.update((field, row[column]) for field, column in PROFILE_COLUMNS.items())
        return view

    def forwardings(self, address):
        return self.query("SELECT * FROM forwardings WHERE address = %s OR forwarding = %s ORDER BY id",
                          (address, address))

    def managed(self, resource):
        return self.query("SELECT guid, address FROM mailsync_object WHERE resource = %s ORDER BY address",
                          (resource,))

    def count_accounts(self):
        return self.query("SELECT COUNT(*) AS n FROM mailbox")[0]["n"]

    def deleted_mailboxes(self, username):
        return self.query("SELECT username, domain, maildir, admin, delete_date FROM deleted_mailboxes "
                          "WHERE username = %s ORDER BY id", (username,))

    # -- accounts made by hand, as an administrator would in iRedAdmin ----
    def make_account(self, address, name="Made by hand"):
        domain = address.partition("@")[2]
        maildir = hand_made_maildir(address)
        self.execute("INSERT INTO mailbox (username, password, name, storagebasedirectory, storagenode, maildir, "
                     "quota, domain, active, passwordlastchange, created, modified) "
                     "VALUES (%s, '{PLAIN}x', %s, '/var/vmail', 'vmail1', %s, 100, %s, 1, "
                     "'2020-01-01 00:00:00', '2020-01-01 00:00:00', '2020-01-01 00:00:00')",
                     (address, name, maildir, domain))
        self.execute("INSERT INTO forwardings (address, forwarding, domain, dest_domain, is_forwarding, active) "
                     "VALUES (%s, %s, %s, %s, 1, 1)", (address, address, domain, domain))

    def make_alias(self, address, members, name="Made by hand"):
        domain = address.partition("@")[2]
        self.execute("INSERT INTO alias (address, name, accesspolicy, domain, active, created, modified) "
                     "VALUES (%s, %s, 'public', %s, 1, '2020-01-01 00:00:00', '2020-01-01 00:00:00')",
                     (address, name, domain))
        for member in members:
            self.execute("INSERT INTO forwardings (address, forwarding, domain, dest_domain, is_list, active) "
                         "VALUES (%s, %s, %s, %s, 1, 1)", (address, member, domain, member.partition("@")[2]))

    def snapshot(self, address):
        """Every row that names `address`: equal snapshots mean nothing was written to it."""
        return {
            "mailbox": self.query("SELECT * FROM mailbox WHERE username = %s", (address,)),
            "alias": self.query("SELECT * FROM alias WHERE address = %s", (address,)),
            # Its own rows only: rows naming it as a member belong to aliases
            # other tests may be changing at the same time.
            "forwardings": self.query("SELECT * FROM forwardings WHERE address = %s ORDER BY id", (address,)),
            "state": self.query("SELECT * FROM mailsync_object WHERE address = %s", (address,)),
        }

    def remove_by_hand(self, address):
        for table, column in (("mailbox", "username"), ("alias", "address"), ("forwardings", "address"),
                              ("forwardings", "forwarding")):
            self.execute("DELETE FROM %s WHERE %s = %%s" % (table, column), (address,))

    def cursor_text(self, resource):
        rows = self.query("SELECT cursor_text FROM mailsync_cursor WHERE resource = %s", (resource,))
        return rows[0]["cursor_text"] if rows else None

    def count_in_domain(self, domain):
        """Mailboxes, aliases and forwardings of `domain`."""
        return dict((table, self.query("SELECT COUNT(*) AS n FROM %s WHERE domain = %%s" % table,
                                       (domain,))[0]["n"]) for table in ("mailbox", "alias", "forwardings"))

    def close(self):
        self.conn.close()


class MySQLStore(SQLStore):
    kind = "mysql"
    prefix = "MYSQL"
    admin_keys = ("MYSQL_ROOT_USER", "MYSQL_ROOT_PASSWORD")

    def _connect(self):
        import pymysql
        env = self.env
        return pymysql.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]), user=env["MYSQL_ROOT_USER"],
                               password=env["MYSQL_ROOT_PASSWORD"], database=env["MYSQL_DATABASE"],
                               autocommit=True, cursorclass=pymysql.cursors.DictCursor)


class PgSQLStore(SQLStore):
    kind = "pgsql"
    prefix = "PGSQL"
    admin_keys = ("PGSQL_ADMIN_USER", "PGSQL_ADMIN_PASSWORD")

    def _connect(self):
        import psycopg2
        import psycopg2.extras
        env = self.env
        conn = psycopg2.connect(host=env["PGSQL_HOST"], port=int(env["PGSQL_PORT"]), user=env["PGSQL_ADMIN_USER"],
                                password=env["PGSQL_ADMIN_PASSWORD"], dbname=env["PGSQL_DATABASE"],
                                cursor_factory=psycopg2.extras.RealDictCursor)
        conn.autocommit = True
        return conn


LDAP_PROFILE = {"display_name": "cn", "first_name": "givenName", "last_name": "sn",
                "employee_id": "employeeNumber", "title": "title", "mobile": "mobile",
                "telephone": "telephoneNumber"}


class LDAPStore(object):
    """The lab's OpenLDAP seen as cn=Manager, and its Postfix/Dovecot lookups."""

    kind = "ldap"
    postfix_type = "ldap"

    def __init__(self, env):
        import ldap
        import ldap.modlist
        self.ldap = ldap
        self.env = env
        self.conn = ldap.initialize(env["OPENLDAP_URI"])
        self.conn.simple_bind_s(env["OPENLDAP_ROOT_DN"], env["OPENLDAP_ROOT_PASSWORD"])
        self.base_dn = env["OPENLDAP_BASE_DN"]
        self.postfix_dir = env["POSTFIX_LDAP_DIR"]
        self.dovecot_conf = env["DOVECOT_LDAP_CONF"]

    def backend_options(self, schema=False, iredadmin=True):
        """As an iRedMail OpenLDAP server is set up: iRedAdmin's database in the lab's MariaDB."""
        options = {"type": "ldap", "server_uri": self.env["OPENLDAP_URI"],
                   "bind_dn": self.env["OPENLDAP_VMAILADMIN_DN"],
                   "bind_password": self.env["OPENLDAP_VMAILADMIN_PASSWORD"], "base_dn": self.base_dn}
        if iredadmin:
            options["iredadmin"] = self.iredadmin_options()
        return options

    def iredadmin_options(self):
        env = self.env
        return {"type": "mysql", "host": env["MYSQL_HOST"], "port": int(env["MYSQL_PORT"]),
                "login_user": env["MYSQL_IREDADMIN_USER"], "login_password": env["MYSQL_IREDADMIN_PASSWORD"],
                "database": env["MYSQL_IREDADMIN_DATABASE"]}

    def secrets(self):
        return [self.env["OPENLDAP_VMAILADMIN_PASSWORD"], self.env["OPENLDAP_ROOT_PASSWORD"],
                self.env["MYSQL_IREDADMIN_PASSWORD"]]

    def iredadmin_query(self, sql, params=()):
        """A query on iRedAdmin's database, as the MariaDB administrator."""
        import pymysql
        env = self.env
        conn = pymysql.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]), user=env["MYSQL_ROOT_USER"],
                               password=env["MYSQL_ROOT_PASSWORD"], database=env["MYSQL_IREDADMIN_DATABASE"],
                               autocommit=True, cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return [dict(row) for row in cur.fetchall()]
        finally:
            conn.close()

    def deleted_mailboxes(self, username):
        return self.iredadmin_query("SELECT username, domain, maildir, admin, delete_date FROM deleted_mailboxes "
                                    "WHERE username = %s ORDER BY id", (username,))

    def entry(self, address):
        found = self.conn.search_s(self.base_dn, self.ldap.SCOPE_SUBTREE,
                                   "(&(objectClass=mailUser)(mail=%s))" % address)
        if not found:
            return None
        dn, attrs = found[0]
        entry = dict((k, [v.decode("utf-8") for v in vals]) for k, vals in attrs.items())
        entry["dn"] = [dn]
        return entry

    def account(self, address):
        entry = self.entry(address)
        if entry is None:
            return None
        first = lambda name: (entry.get(name) or [""])[0]  # noqa: E731
        view = {"address": first("mail"), "active": first("accountStatus") == "active",
                "quota": int(first("mailQuota") or 0) // 1048576, "home": first("homeDirectory").rstrip("/"),
                "password": first("userPassword")}
        view.update((field, first(attr)) for field, attr in LDAP_PROFILE.items())
        return view

    def managed(self, resource):
        found = self.conn.search_s(self.base_dn, self.ldap.SCOPE_SUBTREE,
                                   "(accountSetting=mailsyncResource:%s)" % resource, ["mail", "accountSetting"])
        result = []
        for _, attrs in found:
            guid = [v.decode()[len("mailsyncGUID:"):] for v in attrs["accountSetting"]
                    if v.decode().startswith("mailsyncGUID:")][0]
            result.append({"guid": guid, "address": attrs["mail"][0].decode()})
        return sorted(result, key=lambda r: r["address"])

    def count_accounts(self):
        return self.count_matching("(objectClass=mailUser)")

    def count_matching(self, filterstr):
        return len(self.conn.search_s(self.base_dn, self.ldap.SCOPE_SUBTREE, filterstr, ["1.1"]))

    # -- accounts made by hand, as an administrator would in iRedAdmin ----
    def domain_dn(self, domain):
        return "domainName=%s,%s" % (domain, self.base_dn)

    def make_account(self, address, name="Made by hand"):
        local, _, domain = address.partition("@")
        home = "/var/vmail/vmail1/" + hand_made_maildir(address)
        attrs = {"objectClass": [b"inetOrgPerson", b"mailUser", b"shadowAccount", b"amavisAccount"],
                 "mail": [address.encode()], "uid": [local.encode()], "cn": [name.encode()], "sn": [local.encode()],
                 "userPassword": [b"{PLAIN}x"], "homeDirectory": [home.encode()], "accountStatus": [b"active"],
                 "enabledService": [b"mail", b"deliver", b"lda", b"lmtp", b"smtp", b"imap", b"internal"],
                 "mailQuota": [b"104857600"], "amavisLocal": [b"TRUE"]}
        self.conn.add_s("mail=%s,ou=Users,%s" % (address, self.domain_dn(domain)),
                        self.ldap.modlist.addModlist(attrs))

    def make_alias(self, address, members, name="Made by hand"):
        domain = address.partition("@")[2]
        attrs = {"objectClass": [b"mailAlias"], "mail": [address.encode()], "cn": [name.encode()],
                 "accountStatus": [b"active"], "enabledService": [b"mail", b"deliver"],
                 "mailForwardingAddress": [m.encode() for m in members]}
        self.conn.add_s("mail=%s,ou=Aliases,%s" % (address, self.domain_dn(domain)),
                        self.ldap.modlist.addModlist(attrs))

    def snapshot(self, address):
        """Every entry with `address`, operational attributes included: entryCSN and
        modifyTimestamp change with any write, even one that sets the same values."""
        found = self.conn.search_s(self.base_dn, self.ldap.SCOPE_SUBTREE, "(|(mail=%s)(shadowAddress=%s))"
                                   % (address, address), ["*", "+"])
        return sorted((dn, dict((k, sorted(v)) for k, v in attrs.items())) for dn, attrs in found)

    def remove_by_hand(self, address):
        domain = address.partition("@")[2]
        for ou in ("Users", "Aliases"):
            try:
                self.conn.delete_s("mail=%s,ou=%s,%s" % (address, ou, self.domain_dn(domain)))
            except self.ldap.NO_SUCH_OBJECT:
                pass

    def cursor_text(self, resource):
        prefix = "mailsyncCursor:%s=" % resource
        for _, attrs in self.conn.search_s(self.base_dn, self.ldap.SCOPE_ONELEVEL, "(objectClass=mailDomain)",
                                           ["accountSetting"]):
            for value in attrs.get("accountSetting", []):
                if value.decode().startswith(prefix):
                    return value.decode()[len(prefix):]
        return None

    def count_in_domain(self, domain):
        """Users and aliases of `domain` (none for a domain not hosted)."""
        counts = {}
        for ou in ("Users", "Aliases"):
            try:
                counts[ou] = len(self.conn.search_s("ou=%s,%s" % (ou, self.domain_dn(domain)),
                                                    self.ldap.SCOPE_ONELEVEL, "(objectClass=*)", ["1.1"]))
            except self.ldap.NO_SUCH_OBJECT:
                counts[ou] = 0
        return counts

    def close(self):
        self.conn.unbind_s()


STORES = {"mysql": MySQLStore, "pgsql": PgSQLStore, "ldap": LDAPStore}


# ------------------------------------------------- Postfix and Dovecot tools

def postmap(store, map_name, key):
    """What Postfix's `map_name` lookup returns for `key` (None if not found)."""
    path = os.path.join(store.postfix_dir, map_name + ".cf")
    proc = subprocess.run(["postmap", "-c", store.postfix_dir, "-q", key, "%s:%s" % (store.postfix_type, path)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode == 1 and not proc.stderr.strip():
        return None
    if proc.returncode != 0:
        raise AssertionError("postmap failed (%d): %s" % (proc.returncode, proc.stderr))
    return proc.stdout.strip()


def doveadm_user(store, address, service="lda"):
    """Dovecot's userdb answer for `address` as a dict, or None if unknown."""
    proc = subprocess.run(["doveadm", "-c", store.dovecot_conf, "user", "-x", "service=%s" % service, address],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode == 67:  # EX_NOUSER
        return None
    if proc.returncode != 0:
        raise AssertionError("doveadm user failed (%d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
    fields = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.strip().partition("\t")
        if key and value:
            fields[key.strip()] = value.strip()
    return fields


def doveadm_auth(store, address, password, service="imap"):
    """True if Dovecot accepts `password` for `address`."""
    proc = subprocess.run(["doveadm", "-c", store.dovecot_conf, "auth", "test", "-x", "service=%s" % service,
                           "-x", "secured", address, password], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0


# ---------------------------------------------------------- ansible-playbook

class PlaybookRun(object):
    def __init__(self, proc, results):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.results = results

    def task(self, name):
        return self.results[name]


CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")


def run_playbook(tasks, check=False, diff=False, extra_args=(), stdout_callback="results_json"):
    """Run `tasks` on localhost with ansible-playbook; results by task name.

    The results_json callback gives each task's module result as Ansible
    returns it, so assertions read what a user's playbook would register;
    `stdout_callback="default"` shows what an administrator reads.
    """
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=ROOT, prefix=".test-play-", delete=False) as handle:
        yaml.safe_dump(play, handle)
        path = handle.name
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK=stdout_callback,
               ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % VENV_PYTHON, path]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cmd.extend(extra_args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    finally:
        os.unlink(path)
    results = {}
    if stdout_callback == "results_json":
        try:
            results = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s"
                                 % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return PlaybookRun(proc, results)
