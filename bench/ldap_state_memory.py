"""Memory of the OpenLDAP backend's current_state alone, at 10,000 or 50,000 accounts.

    .venv/bin/python bench/ldap_state_memory.py seed --users 10000
    .venv/bin/python bench/ldap_state_memory.py measure [--tracemalloc]
    .venv/bin/python bench/ldap_state_memory.py clean

`seed` writes, as cn=Manager, entries shaped like those replication
writes (every attribute of a created user, 500 aliases of 20 members)
into a scratch domain Postfix never serves, so that the lab's tests do not
read them; it only adds what is missing, so 50,000 after 10,000 adds
40,000. `measure` reads them with LDAPBackend.current_state in a fresh
process and prints its peak RSS (VmHWM) before and after, the time, and a
digest of the state it returned, so that two versions of the reader can be
compared for memory and for identical results. bench/run's figures stay
the measure of a whole run; this isolates the step that missed its target.
"""

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

sys.path.insert(0, common.COLLECTIONS)
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import DEFAULT_USER_SERVICES  # noqa: E402

DOMAIN = "ldapstate.bench.invalid"
# bench/run's cleanup removes entries of resources named bench-*.
RESOURCE = common.PREFIX + "ldapstate"
GROUPS = 500


def connect(env):
    import ldap
    conn = ldap.initialize(env["OPENLDAP_URI"])
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.simple_bind_s(env["OPENLDAP_ROOT_DN"], env["OPENLDAP_ROOT_PASSWORD"])
    return conn


def domain_dn(env):
    return "domainName=%s,%s" % (DOMAIN, env["OPENLDAP_BASE_DN"])


def user_entry(number):
    address = "bench%05d@%s" % (number, DOMAIN)
    local = address.split("@")[0]
    guid = "00000000-0000-4000-8000-%012d" % number
    values = {
        "objectClass": ["inetOrgPerson", "mailUser", "shadowAccount", "amavisAccount"],
        "mail": [address], "uid": [local], "cn": ["Bench User %05d" % number], "sn": ["User%05d" % number],
        "givenName": ["Bench"], "employeeNumber": ["E%05d" % number], "title": ["Engineer"],
        "mobile": ["+44 7700 9%05d" % number], "telephoneNumber": ["+44 20 7946 %04d" % (number % 10000)],
        "userPassword": ["{SSHA512}unusable"],
        "homeDirectory": ["/var/vmail/vmail1/%s/b/e/n/%s-2026.01.01.00.00.00/" % (DOMAIN, local)],
        "accountStatus": ["active" if number % 50 else "disabled"], "enabledService": list(DEFAULT_USER_SERVICES),
        "shadowLastChange": ["20000"], "amavisLocal": ["TRUE"], "mailboxFormat": ["maildir"],
        "mailboxFolder": ["Maildir"], "mailQuota": [str(1024 * 1048576)],
        "accountSetting": ["mailsyncResource:" + RESOURCE, "mailsyncGUID:" + guid],
    }
    if number % 10 == 0:
        values["shadowAddress"] = ["alias%05d@%s" % (number, DOMAIN)]
    return "mail=%s,ou=Users,%%s" % address, values


def group_entry(number, users):
    address = "benchgrp%03d@%s" % (number, DOMAIN)
    members = ["bench%05d@%s" % (u, DOMAIN) for u in range(number, min(users, 10000) + 1, GROUPS)][:20]
    values = {"objectClass": ["mailAlias"], "mail": [address], "cn": ["Group %03d" % number],
              "accountStatus": ["active"], "accessPolicy": ["public"],
              "enabledService": ["mail", "deliver", "displayedInGlobalAddressBook"],
              "accountSetting": ["mailsyncResource:" + RESOURCE,
                                 "mailsyncGUID:00000000-0000-4000-9000-%012d" % number]}
    if members:
        values["mailForwardingAddress"] = members
    return "mail=%s,ou=Aliases,%%s" % address, values


def add_pipelined(conn, entries, in_flight=32):
    """add_ext with a few requests outstanding: 50,000 entries in minutes, not a quarter hour."""
    import ldap
    pending = []
    done = 0
    for dn, values in entries:
        attrs = [(k, [v.encode() for v in vs]) for k, vs in values.items()]
        pending.append(conn.add_ext(dn, attrs))
        if len(pending) >= in_flight:
            try:
                conn.result(pending.pop(0))
            except ldap.ALREADY_EXISTS:
                pass
            done += 1
            if done % 5000 == 0:
                print("  %d entries" % done, file=sys.stderr)
    for msgid in pending:
        try:
            conn.result(msgid)
        except ldap.ALREADY_EXISTS:
            pass


def seed(env, users):
    import ldap
    conn = connect(env)
    base = domain_dn(env)
    try:
        conn.add_s(base, [("objectClass", [b"mailDomain"]), ("domainName", [DOMAIN.encode()]),
                          ("cn", [DOMAIN.encode()]), ("accountStatus", [b"active"]),
                          ("mtaTransport", [b"dovecot"]), ("enabledService", [b"mail"])])
    except ldap.ALREADY_EXISTS:
        pass
    for ou in ("Users", "Aliases"):
        try:
            conn.add_s("ou=%s,%s" % (ou, base), [("objectClass", [b"organizationalUnit"]), ("ou", [ou.encode()])])
        except ldap.ALREADY_EXISTS:
            pass
    existing = set(dn.lower() for dn, dummy in conn.search_s("ou=Users," + base, ldap.SCOPE_ONELEVEL,
                                                            "(objectClass=mailUser)", ["1.1"]))
    started = time.monotonic()
    wanted = (user_entry(n) for n in range(1, users + 1))
    missing = ((dn % base, values) for dn, values in wanted if (dn % base).lower() not in existing)
    add_pipelined(conn, missing)
    add_pipelined(conn, ((dn % base, values) for dn, values in (group_entry(n, users)
                                                                 for n in range(1, GROUPS + 1))))
    count = len(conn.search_s("ou=Users," + base, ldap.SCOPE_ONELEVEL, "(objectClass=mailUser)", ["1.1"]))
    print(json.dumps({"users": count, "seconds": round(time.monotonic() - started, 1)}))


def clean(env):
    import ldap
    conn = connect(env)
    try:
        found = conn.search_s(domain_dn(env), ldap.SCOPE_SUBTREE, "(objectClass=*)", ["1.1"])
    except ldap.NO_SUCH_OBJECT:
        found = []
    for dn in sorted((dn for dn, dummy in found), key=len, reverse=True):
        conn.delete_s(dn)
    print(json.dumps({"removed": len(found)}))


def digest(state):
    """A digest of everything current_state returns, to compare two readers."""
    h = hashlib.sha256()
    for guid in sorted(state.managed):
        account = state.managed[guid]
        h.update(json.dumps([guid, account.address, account.kind, account.fields,
                             str(account.removed_since), sorted(account.kept or ())],
                            sort_keys=True, default=str).encode())
    h.update(json.dumps(sorted(state.taken_addresses)).encode())
    h.update(json.dumps(sorted(state.alias_owner.items())).encode())
    return h.hexdigest()[:16]


def load_backend(path):
    """LDAPBackend from the collection, or from another version of ldap.py (`git show REV:... > file`)."""
    if not path:
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.ldap import LDAPBackend
        return LDAPBackend
    import importlib.util
    spec = importlib.util.spec_from_file_location("ldap_backend_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LDAPBackend


def child(trace, backend_file):
    LDAPBackend = load_backend(backend_file)
    from child import rss_kb
    env = common.load_env()
    backend = LDAPBackend.connect(server_uri=env["OPENLDAP_URI"], bind_dn=env["OPENLDAP_VMAILADMIN_DN"],
                                  bind_password=env["OPENLDAP_VMAILADMIN_PASSWORD"],
                                  base_dn=env["OPENLDAP_BASE_DN"])
    if trace:
        import tracemalloc
        tracemalloc.start()
    before = rss_kb()
    started = time.monotonic()
    state = backend.current_state(RESOURCE, DOMAIN)
    if state.taken_addresses is None:
        # Since the addresses in use became a read of their own: a full run's.
        state.taken_addresses = backend.addresses_in_use(RESOURCE, DOMAIN)
    seconds = time.monotonic() - started
    after = rss_kb()
    result = {"managed": len(state.managed), "taken": len(state.taken_addresses), "alias_owner": len(state.alias_owner),
              "seconds": round(seconds, 2), "rss_before_mb": round(before[0] / 1024.0, 1),
              "peak_rss_mb": round(after[1] / 1024.0, 1),
              "peak_rss_growth_mb": round((after[1] - before[1]) / 1024.0, 1),
              "rss_after_mb": round(after[0] / 1024.0, 1), "digest": digest(state)}
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        result.update(traced_peak_mb=round(peak / 1048576.0, 1), traced_kept_mb=round(current / 1048576.0, 1))
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("seed", "measure", "clean", "child"))
    parser.add_argument("--users", type=int, default=common.SIZES[0])
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--backend-file", help="measure this ldap.py instead of the collection's")
    args = parser.parse_args()
    env = common.load_env()
    if args.action == "seed":
        seed(env, args.users)
    elif args.action == "clean":
        clean(env)
    elif args.action == "child":
        child(args.tracemalloc, args.backend_file)
    else:
        # A fresh process: the peak of this one would include the seeding.
        cmd = [common.VENV_PYTHON, os.path.abspath(__file__), "child"] + (["--tracemalloc"] if args.tracemalloc else [])
        if args.backend_file:
            cmd += ["--backend-file", os.path.abspath(args.backend_file)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"))
        sys.stderr.write(proc.stderr)
        print(proc.stdout.strip())
        print(json.dumps({"measured": datetime.datetime.now().isoformat(timespec="seconds")}))
        sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
