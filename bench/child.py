"""One measured run, in a fresh process so that its peak RSS is its own.

    python bench/child.py replicate --config-dir DIR --name NAME [--profile FILE]
    python bench/child.py floor --backend mysql|pgsql|ldap --users N

`replicate` runs the collection's real pipeline, replicate.replicate(),
on a stored resource. Phase timers wrap the pipeline's functions from the
outside (they change nothing they wrap) so the report can say where the
time goes. `floor` measures the physical floor of the same work: a paged
ldap3 read of exactly the attributes replication reads, then a bulk write
of the same rows or entries with the raw driver, into a scratch domain.

Prints one JSON line on stdout; the parent reads ru_maxrss with wait4.
"""

import argparse
import base64
import datetime
import functools
import hashlib
import inspect
import json
import os
import resource as rusage
import ssl
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

sys.path.insert(0, common.COLLECTIONS)
# The floor writes what replication writes: the same maildir layout and services.
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import (  # noqa: E402
    DEFAULT_USER_SERVICES,
    maildir_path,
)


def rss_kb():
    """(current, peak) resident set size of this process in KiB."""
    current = peak = 0
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return current, peak


# ------------------------------------------------------------------ replicate

class Phases(object):
    """Wall time and calls per wrapped function, and RSS when each returned."""

    def __init__(self):
        self.data = {}

    def record(self, name, seconds, items=None):
        entry = self.data.setdefault(name, {"seconds": 0.0, "calls": 0})
        entry["seconds"] += seconds
        entry["calls"] += 1
        if items is not None:
            entry["items"] = entry.get("items", 0) + items
        entry["rss_kb_after"], entry["peak_rss_kb_after"] = rss_kb()

    def wrap(self, owner, attribute, name=None):
        original = getattr(owner, attribute, None)
        if original is None:
            return
        name = name or attribute
        phases = self
        # staticmethod/classmethod would need unwrapping; the pipeline's
        # functions and backend methods are plain functions.
        if inspect.isgeneratorfunction(original):
            @functools.wraps(original)
            def generator(*args, **kwargs):
                spent, count = 0.0, 0
                iterator = original(*args, **kwargs)
                try:
                    while True:
                        started = time.monotonic()
                        try:
                            item = next(iterator)
                        except StopIteration:
                            spent += time.monotonic() - started
                            return
                        spent += time.monotonic() - started
                        count += 1
                        yield item
                finally:
                    phases.record(name, spent, count)
            setattr(owner, attribute, generator)
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                phases.record(name, time.monotonic() - started)
        setattr(owner, attribute, timed)


def instrument(phases):
    """Time the pipeline's stages from the outside; tolerant of renamed or new parts."""
    from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_reader, replicate
    skip = ("replicate", "plan_replication", "ensure_state_schema", "fingerprint", "open_directory")
    for attribute, value in list(vars(replicate).items()):
        if inspect.isfunction(value) and value.__module__ == replicate.__name__ and attribute not in skip \
                and not attribute.startswith("_"):
            phases.wrap(replicate, attribute)
    # Functions the pipeline imported by name (desired_accounts, build_plan...).
    for attribute, value in list(vars(replicate).items()):
        if inspect.isfunction(value) and value.__module__ != replicate.__name__ and value.__module__.startswith(
                "ansible_collections.mailsync") and attribute not in ("describe",):
            phases.wrap(replicate, attribute)
    for attribute, value in list(vars(ad_reader).items()):
        if inspect.isfunction(value) and attribute.startswith("read_"):
            phases.wrap(ad_reader, attribute, "ad_reader." + attribute)
    backends = []
    try:
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.sql import SQLBackend
        backends.append(SQLBackend)
    except ImportError:
        pass
    try:
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.ldap import LDAPBackend
        backends.append(LDAPBackend)
    except ImportError:
        pass
    for cls in backends:
        for attribute in ("domain_info", "read_cursor", "current_state", "addresses_in_use", "apply"):
            if attribute in cls.__dict__:
                phases.wrap(cls, attribute, "backend." + attribute)


def run_replicate(args):
    from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate
    from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
    phases = Phases()
    if not args.no_phases:
        instrument(phases)
    loaded = resources.load(args.config_dir, args.name)
    import gc
    gc.collect()
    rss_start, _ = rss_kb()
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
    started = time.monotonic()
    cpu_started = time.process_time()
    if profiler:
        profiler.enable()
    plan = replicate.replicate(loaded, full=args.full)
    if profiler:
        profiler.disable()
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu_started
    if profiler:
        profiler.dump_stats(args.profile)
    _, peak = rss_kb()
    reasons = {}
    for skip in plan.skipped:
        reason = getattr(skip, "reason", str(skip))
        # Group the reasons, not the names in them.
        key = reason.split(":")[0][:80]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "skipped_reasons": reasons,
        "skipped_example": plan.skipped[0].as_dict() if plan.skipped and hasattr(plan.skipped[0], "as_dict") else None,
        "seconds": seconds, "cpu_seconds": cpu, "mode": plan.mode, "summary": plan.summary,
        "rss_kb_before_run": rss_start, "peak_rss_kb": peak, "phases": phases.data,
    }


# ---------------------------------------------------------------------- floor

def unusable_hash():
    secret, salt = os.urandom(64), os.urandom(8)
    return "{SSHA512}" + base64.b64encode(hashlib.sha512(secret + salt).digest() + salt).decode("ascii")


def floor_read(env, users, attributes):
    """A paged read (page 1000, LDAPS, the lab CA) of exactly `attributes`."""
    import ldap3
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=env["AD_CA_CERT"], sni="localhost")
    server = ldap3.Server("localhost", port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, env["AD_BIND_DN"], env["AD_BIND_PASSWORD"], read_only=True,
                            raise_exceptions=True, auto_bind=True)
    rows = []
    names = attributes[2:]
    base = common.base_dn_for(env, users)
    for entry in conn.extend.standard.paged_search(base, common.USER_FILTER, search_scope=ldap3.SUBTREE,
                                                   attributes=attributes, paged_size=1000, generator=True):
        if entry["type"] != "searchResEntry":
            continue
        raw = entry["raw_attributes"]
        values = [raw[name][0].decode("utf-8") if raw.get(name) else "" for name in names]
        rows.append((str(uuid.UUID(bytes_le=raw["objectGUID"][0])), int(raw["userAccountControl"][0]), values,
                     entry["dn"].lower()))
    # Replication also reads every group of the base DN with its members
    # (Samba returns them all at once; no range retrieval is needed here).
    groups = []
    for entry in conn.extend.standard.paged_search(base, "(objectClass=group)", search_scope=ldap3.SUBTREE,
                                                   attributes=["objectGUID", "mail", "cn", "member"],
                                                   paged_size=1000, generator=True):
        if entry["type"] != "searchResEntry":
            continue
        raw = entry["raw_attributes"]
        if not raw.get("mail"):
            continue
        groups.append((str(uuid.UUID(bytes_le=raw["objectGUID"][0])), raw["mail"][0].decode("utf-8"),
                       raw["cn"][0].decode("utf-8"), [m.decode("utf-8").lower() for m in raw.get("member", [])]))
    conn.unbind()
    return FloorRead(rows, groups)


class FloorRead(object):
    """The users and the groups the floor read, and each group's members as floor addresses."""

    def __init__(self, users, groups):
        self.users = users
        self.groups = groups

    def __len__(self):
        return len(self.users) + len(self.groups)

    def aliases(self):
        """(guid, address, name, active member addresses) of each group, in the floor domain."""
        address_of = {}
        for guid, uac, values, dn in self.users:
            if not uac & 2:
                address_of[dn] = floor_address(values[0])
        for guid, mail, name, members in self.groups:
            yield guid, floor_address(mail), name, sorted(address_of[m] for m in members if m in address_of)


def floor_address(address):
    return "%s@%s" % (address.lower().rpartition("@")[0], common.FLOOR_DOMAIN)


def floor_incremental(env, users):
    """The least an incremental run can ask AD: connect, bind, the rootDSE's
    highestCommittedUSN, and one search for what under the base DN changed
    since then (none). Whatever the design, each run pays this; on Samba the
    search costs the same whatever it returns (a uSNChanged range is not
    answered from an index there)."""
    import ldap3
    started = time.monotonic()
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=env["AD_CA_CERT"], sni="localhost")
    server = ldap3.Server("localhost", port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, env["AD_BIND_DN"], env["AD_BIND_PASSWORD"], read_only=True,
                            raise_exceptions=True, auto_bind=True)
    conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["highestCommittedUSN"])
    usn = int(conn.response[0]["raw_attributes"]["highestCommittedUSN"][0])
    found = 0
    for flt in ("(uSNChanged>=%d)" % (usn + 1),):
        for entry in conn.extend.standard.paged_search(common.base_dn_for(env, users), flt, search_scope=ldap3.SUBTREE,
                                                       attributes=["objectGUID"], paged_size=1000, generator=True):
            found += entry["type"] == "searchResEntry"
    conn.unbind()
    return time.monotonic() - started, found


def sql_rows(read, now):
    """mailbox, forwardings and mailsync_object rows as replication writes them, in the scratch domain."""
    domain = common.FLOOR_DOMAIN
    mailbox, forwardings, state, alias = [], [], [], []
    for guid, uac, (upn, display, given, sn, employee, mobile, phone), dn in read.users:
        address = floor_address(upn)
        active = 0 if uac & 2 else 1
        mailbox.append((address, unusable_hash(), "/var/vmail", "vmail1", maildir_path(address, now), 1024, domain,
                        active, "maildir", "Maildir", "", now, now, now, display, given, sn, employee, mobile, phone))
        forwardings.append((address, address, domain, domain, 1, 0, active))
        state.append((common.FLOOR_RESOURCE, guid, "user", address, now, now))
    for guid, address, name, members in read.aliases():
        alias.append((address, name, "public", domain, 1, now, now))
        forwardings.extend((address, member, domain, domain, 0, 1, 1) for member in members)
        state.append((common.FLOOR_RESOURCE, guid, "group", address, now, now))
    return [("mailbox", MAILBOX_COLUMNS, mailbox), ("forwardings", FORWARDING_COLUMNS, forwardings),
            ("alias", ALIAS_COLUMNS, alias), ("mailsync_object", STATE_COLUMNS, state)]


MAILBOX_COLUMNS = ("username", "password", "storagebasedirectory", "storagenode", "maildir", "quota", "domain",
                   "active", "mailboxformat", "mailboxfolder", "language", "passwordlastchange", "created",
                   "modified", "name", "first_name", "last_name", "employeeid", "mobile", "telephone")
FORWARDING_COLUMNS = ("address", "forwarding", "domain", "dest_domain", "is_forwarding", "is_list", "active")
ALIAS_COLUMNS = ("address", "name", "accesspolicy", "domain", "active", "created", "modified")
STATE_COLUMNS = ("resource", "guid", "kind", "address", "created", "modified")


def floor_write_mysql(env, read):
    import pymysql
    now = datetime.datetime.now().replace(microsecond=0)
    conn = pymysql.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]), user=env["MYSQL_VMAILADMIN_USER"],
                           password=env["MYSQL_VMAILADMIN_PASSWORD"], database=env["MYSQL_DATABASE"],
                           charset="utf8mb4", autocommit=False)
    cur = conn.cursor()
    for table, columns, rows in sql_rows(read, now):
        cur.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join("`%s`" % c for c in columns),
                                                            ", ".join(["%s"] * len(columns))), rows)
    conn.commit()
    conn.close()
    return len(read)


def floor_write_pgsql(env, read):
    import psycopg2
    import psycopg2.extras
    now = datetime.datetime.now().replace(microsecond=0)
    conn = psycopg2.connect(host=env["PGSQL_HOST"], port=int(env["PGSQL_PORT"]), user=env["PGSQL_VMAILADMIN_USER"],
                            password=env["PGSQL_VMAILADMIN_PASSWORD"], dbname=env["PGSQL_DATABASE"])
    cur = conn.cursor()
    for table, columns, rows in sql_rows(read, now):
        psycopg2.extras.execute_values(cur, "INSERT INTO %s (%s) VALUES %%s" % (table, ", ".join(columns)), rows,
                                       page_size=1000)
    conn.commit()
    conn.close()
    return len(read)




def floor_domain_dn(env):
    return "domainName=%s,%s" % (common.FLOOR_DOMAIN, env["OPENLDAP_BASE_DN"])


def floor_write_ldap(env, read):
    """add_s of the entries replication creates (same classes and attributes)."""
    import ldap
    import ldap.modlist
    now = datetime.datetime.now()
    conn = ldap.initialize(env["OPENLDAP_URI"])
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.simple_bind_s(env["OPENLDAP_VMAILADMIN_DN"], env["OPENLDAP_VMAILADMIN_PASSWORD"])
    parent = "ou=Users,%s" % floor_domain_dn(env)
    days = str((now - datetime.datetime(1970, 1, 1)).days).encode()
    services = [s.encode() for s in DEFAULT_USER_SERVICES]
    for guid, uac, (upn, display, given, sn, employee, mobile, phone, title), dn in read.users:
        address = floor_address(upn)
        local = address.rpartition("@")[0]
        attrs = {
            "objectClass": [b"inetOrgPerson", b"mailUser", b"shadowAccount", b"amavisAccount"],
            "mail": [address.encode()], "uid": [local.encode()],
            "cn": [(display or local).encode()], "sn": [(sn or local).encode()],
            "userPassword": [unusable_hash().encode()],
            "homeDirectory": [("/var/vmail/vmail1/" + maildir_path(address, now)).encode()],
            "storageBaseDirectory": [b"/var/vmail"],
            "mailMessageStore": [("vmail1/" + maildir_path(address, now)).encode()],
            "accountStatus": [b"disabled" if uac & 2 else b"active"],
            "enabledService": services, "shadowLastChange": [days], "amavisLocal": [b"TRUE"],
            "mailboxFormat": [b"maildir"], "mailboxFolder": [b"Maildir"],
            "accountSetting": [("mailsyncResource:" + common.FLOOR_RESOURCE).encode(),
                               ("mailsyncGUID:" + guid).encode()],
            "mailQuota": [str(1024 * 1048576).encode()],
        }
        for attr, value in (("givenName", given), ("employeeNumber", employee), ("title", title),
                            ("mobile", mobile), ("telephoneNumber", phone)):
            if value:
                attrs[attr] = [value.encode()]
        conn.add_s("mail=%s,%s" % (address, parent), ldap.modlist.addModlist(attrs))
    aliases = "ou=Aliases,%s" % floor_domain_dn(env)
    for guid, address, name, members in read.aliases():
        attrs = {"objectClass": [b"mailAlias"], "mail": [address.encode()], "cn": [name.encode()],
                 "accountStatus": [b"active"], "accessPolicy": [b"public"],
                 "enabledService": [b"mail", b"deliver", b"displayedInGlobalAddressBook"],
                 "accountSetting": [("mailsyncResource:" + common.FLOOR_RESOURCE).encode(),
                                    ("mailsyncGUID:" + guid).encode()]}
        if members:
            attrs["mailForwardingAddress"] = [m.encode() for m in members]
        conn.add_s("mail=%s,%s" % (address, aliases), ldap.modlist.addModlist(attrs))
    conn.unbind_s()
    return len(read)


def run_floor(args):
    env = common.load_env()
    attributes = common.READ_ATTRIBUTES_LDAP if args.backend == "ldap" else common.READ_ATTRIBUTES
    started = time.monotonic()
    read = floor_read(env, args.users, attributes)
    read_seconds = time.monotonic() - started
    _, peak_after_read = rss_kb()
    writer = {"mysql": floor_write_mysql, "pgsql": floor_write_pgsql, "ldap": floor_write_ldap}[args.backend]
    started = time.monotonic()
    written = writer(env, read)
    write_seconds = time.monotonic() - started
    _, peak = rss_kb()
    incremental_seconds, incremental_found = floor_incremental(env, args.users)
    return {"incremental_read_seconds": incremental_seconds, "incremental_read_found": incremental_found,
            "read_seconds": read_seconds, "write_seconds": write_seconds, "seconds": read_seconds + write_seconds,
            "entries_read": len(read), "users_read": len(read.users), "groups_read": len(read.groups),
            "written": written, "peak_rss_kb_after_read": peak_after_read,
            "peak_rss_kb": peak}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("replicate")
    rep.add_argument("--config-dir", required=True)
    rep.add_argument("--name", required=True)
    rep.add_argument("--full", action="store_true")
    rep.add_argument("--profile")
    rep.add_argument("--no-phases", action="store_true")
    flo = sub.add_parser("floor")
    flo.add_argument("--backend", required=True, choices=("mysql", "pgsql", "ldap"))
    flo.add_argument("--users", type=int, required=True)
    args = parser.parse_args()
    result = run_replicate(args) if args.command == "replicate" else run_floor(args)
    result["ru_maxrss_kb"] = rusage.getrusage(rusage.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":
    main()
