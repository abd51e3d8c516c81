"""Replication speed and memory against the physical floor, on the lab's real servers.

Started by bench/run (see BENCHMARKS.md). In one run, for each backend:

  floor   an ldap3 paged read (page 1000, LDAPS) of exactly the attributes
          replication reads, then a bulk write of the same rows or entries
          with the raw driver into a scratch domain (cleaned afterwards)
  (a)     full initial replication of a fresh resource
  (b)     a run with nothing changed under the base DN (one unrelated
          object elsewhere in the domain changed: a live DC's USN moves)
  (d)     a forced full run right after (b): everything read again from AD
          and the store, nothing to write (the timer's daily full run)
  (c)     a run after 10 renames, 10 disables, 10 removals and 10 group
          membership changes in AD (made once, after every backend's (d))

Each figure is one fresh child process (bench/child.py): its wall time and
its peak RSS (ru_maxrss from wait4). The replication runs are the
collection's real code, timed per stage from the outside. --rounds N
repeats all of it N times and reports the median of each figure.
"""

import argparse
import datetime
import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

sys.path.insert(0, common.COLLECTIONS)

BACKENDS = ("mysql", "pgsql", "ldap")
# LIKE patterns of the addresses only the bench's seeded objects have.
BENCH_ADDRESS_PATTERNS = ("bench_____", "bench_____.renamed", "benchgrp___")
TARGET_FULL_RATIO = 1.5
TARGET_INCREMENTAL_SHARE = 0.05
TARGET_PEAK_MB = 200


def log(message):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


# ---------------------------------------------------------------- processes

def measured(cmd, label):
    """Run `cmd` (prints one JSON line); add its wall time and its own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=common.ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %s):\n%s%s" % (label, proc.returncode, stdout[-2000:], stderr[-4000:]))
    result = json.loads(stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall
    # Linux reports ru_maxrss in KiB: the child's own peak, not the parent's.
    result["maxrss_kb"] = usage.ru_maxrss
    result["process_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def lab_up():
    lab = os.path.join(common.ROOT, "tests", "lab", "lab")
    if subprocess.call([lab, "status"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
        log("the lab is not (fully) running: tests/lab/lab up")
        subprocess.check_call([lab, "up"])


def machine():
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except Exception as exc:  # noqa: BLE001
            return "unknown (%s)" % exc
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        mem_kb = int(handle.readline().split()[1])
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    return {
        "nproc": os.cpu_count(), "cpu_model": cpu, "mem_total_gib": round(mem_kb / 1048576.0, 1),
        "kernel": platform.release(), "os": first_line(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "python": platform.python_version(), "loadavg_at_start": load,
        "samba": first_line(["samba", "-V"]), "mariadb": first_line(["mariadbd", "--version"]),
        "postgresql": first_line(["sh", "-c", "ls /usr/lib/postgresql | sort -V | tail -1"]),
        "openldap": first_line(["sh", "-c", "slapd -VV 2>&1 | head -1"]),
    }


# ------------------------------------------------------------------- stores

class SQLAdmin(object):
    """An administrator's connection, to create the state tables and clean up."""

    def __init__(self, kind, env):
        self.kind, self.env = kind, env
        if kind == "mysql":
            import pymysql
            self.conn = pymysql.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]),
                                        user=env["MYSQL_ROOT_USER"], password=env["MYSQL_ROOT_PASSWORD"],
                                        database=env["MYSQL_DATABASE"], autocommit=True)
        else:
            import psycopg2
            self.conn = psycopg2.connect(host=env["PGSQL_HOST"], port=int(env["PGSQL_PORT"]),
                                         user=env["PGSQL_ADMIN_USER"], password=env["PGSQL_ADMIN_PASSWORD"],
                                         dbname=env["PGSQL_DATABASE"])
            self.conn.autocommit = True

    def backend_options(self, schema=False):
        p = self.kind.upper()
        options = {"type": self.kind, "host": self.env["%s_HOST" % p], "port": int(self.env["%s_PORT" % p]),
                   "login_user": self.env["%s_VMAILADMIN_USER" % p],
                   "login_password": self.env["%s_VMAILADMIN_PASSWORD" % p],
                   "database": self.env["%s_DATABASE" % p]}
        if schema:
            admin = ("MYSQL_ROOT_USER", "MYSQL_ROOT_PASSWORD") if self.kind == "mysql" \
                else ("PGSQL_ADMIN_USER", "PGSQL_ADMIN_PASSWORD")
            options["schema_login_user"] = self.env[admin[0]]
            options["schema_login_password"] = self.env[admin[1]]
        return options

    def execute(self, sql, params=()):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.rowcount
        finally:
            cur.close()

    def scalar(self, sql, params=()):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchone()[0]
        finally:
            cur.close()

    def prepare_floor(self):
        self.clean_floor()

    def clean_floor(self):
        domain = common.FLOOR_DOMAIN
        removed = self.execute("DELETE FROM mailbox WHERE domain = %s", (domain,))
        self.execute("DELETE FROM forwardings WHERE domain = %s", (domain,))
        self.execute("DELETE FROM alias WHERE domain = %s", (domain,))
        self.execute("DELETE FROM mailsync_object WHERE resource = %s", (common.FLOOR_RESOURCE,))
        return removed

    def clean_resources(self, pattern):
        """Remove every row replication wrote for resources named like `pattern`."""
        managed = "SELECT address FROM mailsync_object WHERE resource LIKE %s"
        self.execute("DELETE FROM forwardings WHERE address IN (%s) OR forwarding IN (%s)" % (managed, managed),
                     (pattern, pattern))
        removed = self.execute("DELETE FROM mailbox WHERE username IN (%s)" % managed, (pattern,))
        self.execute("DELETE FROM alias WHERE address IN (%s)" % managed, (pattern,))
        self.execute("DELETE FROM moderators WHERE address IN (%s)" % managed, (pattern,))
        self.execute("DELETE FROM deleted_mailboxes WHERE admin LIKE %s", ("mailsync:" + pattern,))
        self.execute("DELETE FROM mailsync_cursor WHERE resource LIKE %s", (pattern,))
        self.execute("DELETE FROM mailsync_object WHERE resource LIKE %s", (pattern,))
        # Rows of the bench's own addresses whose state rows are gone (an
        # interrupted run, or an older bench that did not clean aliases).
        for table, column in (("mailbox", "username"), ("alias", "address"), ("forwardings", "address"),
                              ("forwardings", "forwarding"), ("moderators", "address")):
            for like in BENCH_ADDRESS_PATTERNS:
                count = self.execute("DELETE FROM %s WHERE %s LIKE %%s" % (table, column),
                                     ("%s@%s" % (like, self.env["MAIL_DOMAIN"]),))
                if table in ("mailbox", "alias"):
                    removed += count
        return removed

    def counts(self, name):
        """What the resource wrote: rows per table (a cheap check that runs of different code write the same)."""
        managed = "SELECT address FROM mailsync_object WHERE resource = %s"
        return {
            "mailsync_object": self.scalar("SELECT COUNT(*) FROM mailsync_object WHERE resource = %s", (name,)),
            "mailbox": self.scalar("SELECT COUNT(*) FROM mailbox WHERE username IN (%s)" % managed, (name,)),
            "mailbox_active": self.scalar("SELECT COUNT(*) FROM mailbox WHERE active = 1 AND username IN (%s)"
                                          % managed, (name,)),
            "alias": self.scalar("SELECT COUNT(*) FROM alias WHERE address IN (%s)" % managed, (name,)),
            "forwardings": self.scalar("SELECT COUNT(*) FROM forwardings WHERE address IN (%s) OR forwarding IN (%s)"
                                       % (managed, managed), (name, name)),
        }

    def vacuum(self):
        """Let PostgreSQL reclaim the rows a cleanup deleted, so every run starts alike."""
        if self.kind == "pgsql":
            for table in ("mailbox", "forwardings", "mailsync_object", "mailsync_cursor"):
                self.execute("VACUUM ANALYZE %s" % table)

    def close(self):
        self.conn.close()


class LDAPAdmin(object):
    kind = "ldap"

    def __init__(self, env):
        import ldap
        import ldap.filter
        self.ldap, self.env = ldap, env
        self.conn = ldap.initialize(env["OPENLDAP_URI"])
        self.conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        self.conn.simple_bind_s(env["OPENLDAP_ROOT_DN"], env["OPENLDAP_ROOT_PASSWORD"])
        self.base_dn = env["OPENLDAP_BASE_DN"]

    def backend_options(self, schema=False):
        return {"type": "ldap", "server_uri": self.env["OPENLDAP_URI"],
                "bind_dn": self.env["OPENLDAP_VMAILADMIN_DN"],
                "bind_password": self.env["OPENLDAP_VMAILADMIN_PASSWORD"], "base_dn": self.base_dn}

    def _delete_many(self, dns):
        """Delete entries, one depth at a time (children first), up to 64 requests in flight.

        slapd runs requests concurrently: a parent may only be sent once
        every child's deletion has been answered.
        """
        by_depth = {}
        for dn in dns:
            by_depth.setdefault(dn.count(","), []).append(dn)
        for depth in sorted(by_depth, reverse=True):
            pending = []
            for dn in by_depth[depth]:
                pending.append(self.conn.delete(dn))
                if len(pending) >= 64:
                    self._collect(pending.pop(0))
            for msgid in pending:
                self._collect(msgid)
        return len(dns)

    def _collect(self, msgid):
        try:
            self.conn.result(msgid)
        except self.ldap.NO_SUCH_OBJECT:
            pass

    def _search(self, base, scope, flt, attrs):
        try:
            return self.conn.search_s(base, scope, flt, attrs)
        except self.ldap.NO_SUCH_OBJECT:
            return []

    def floor_domain_dn(self):
        return "domainName=%s,%s" % (common.FLOOR_DOMAIN, self.base_dn)

    def prepare_floor(self):
        self.clean_floor()
        dn = self.floor_domain_dn()
        self.conn.add_s(dn, [("objectClass", [b"mailDomain"]), ("domainName", [common.FLOOR_DOMAIN.encode()]),
                             ("cn", [common.FLOOR_DOMAIN.encode()]), ("accountStatus", [b"active"]),
                             ("mtaTransport", [b"dovecot"]), ("enabledService", [b"mail"])])
        for ou in (b"Users", b"Aliases"):
            self.conn.add_s("ou=%s,%s" % (ou.decode(), dn), [("objectClass", [b"organizationalUnit"]), ("ou", [ou])])

    def clean_floor(self):
        found = self._search(self.floor_domain_dn(), self.ldap.SCOPE_SUBTREE, "(objectClass=*)", ["1.1"])
        return self._delete_many([dn for dn, _ in found])

    def clean_resources(self, pattern):
        """`pattern` is an SQL LIKE pattern ending in %: the prefix it names."""
        ldap = self.ldap
        prefix = pattern.rstrip("%")
        flt = "(accountSetting=mailsyncResource:%s*)" % ldap.filter.escape_filter_chars(prefix)
        found = self._search(self.base_dn, ldap.SCOPE_SUBTREE, flt, ["1.1"])
        removed = self._delete_many([dn for dn, _ in found])
        domain_dn = "domainName=%s,%s" % (self.env["MAIL_DOMAIN"], self.base_dn)
        leftovers = self._search(domain_dn, ldap.SCOPE_SUBTREE,
                                 "(|(mail=bench0*)(mail=bench1*)(mail=bench2*)(mail=bench3*)(mail=bench4*)(mail=bench5*)"
                                 "(mail=benchgrp*))", ["1.1"])
        removed += self._delete_many([dn for dn, _ in leftovers])
        cursor_prefix = ("mailsyncCursor:%s" % prefix).encode()
        for dn, attrs in self._search(self.base_dn, ldap.SCOPE_ONELEVEL, "(objectClass=mailDomain)",
                                      ["accountSetting"]):
            stale = [v for v in attrs.get("accountSetting", []) if v.startswith(cursor_prefix)]
            if stale:
                self.conn.modify_s(dn, [(ldap.MOD_DELETE, "accountSetting", stale)])
        return removed

    def counts(self, name):
        ldap = self.ldap
        flt = "(accountSetting=mailsyncResource:%s)" % ldap.filter.escape_filter_chars(name)
        found = self._search(self.base_dn, ldap.SCOPE_SUBTREE, flt, ["objectClass", "accountStatus"])
        users = [a for _, a in found if b"mailUser" in a.get("objectClass", [])]
        return {"entries": len(found), "users": len(users),
                "users_active": sum(1 for a in users if a.get("accountStatus") == [b"active"]),
                "aliases": sum(1 for _, a in found if b"mailAlias" in a.get("objectClass", []))}

    def vacuum(self):
        pass

    def close(self):
        self.conn.unbind_s()


def admin_for(kind, env):
    return LDAPAdmin(env) if kind == "ldap" else SQLAdmin(kind, env)


# ------------------------------------------------------------------ AD side

def seed(users):
    log("seeding OU=Bench through samdb (%s), %d users" % (common.SYSTEM_PYTHON, users))
    out = subprocess.run([common.SYSTEM_PYTHON, os.path.join(common.BENCH_DIR, "seed_ad.py"), "--users", str(users)],
                         capture_output=True, text=True, cwd=common.ROOT)
    if out.returncode != 0:
        raise RuntimeError("seeding failed:\n%s%s" % (out.stdout[-2000:], out.stderr[-4000:]))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    log("seeded: %s" % result)
    return result


def ad_admin(env):
    import ssl

    import ldap3
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=env["AD_CA_CERT"])
    server = ldap3.Server("localhost", port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, env["AD_ADMIN_DN"], env["AD_ADMIN_PASSWORD"], auto_bind=True,
                            raise_exceptions=True)


def touch_elsewhere(env):
    """One write outside the bench OU: the directory moved on, the resource's objects did not."""
    import ldap3
    conn = ad_admin(env)
    dn = "OU=BenchElsewhere,%s" % env["AD_BASE_DN"]
    try:
        conn.add(dn, ["top", "organizationalUnit"])
    except ldap3.core.exceptions.LDAPEntryAlreadyExistsResult:
        pass
    conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["touched %s" % time.time()])]})
    conn.unbind()


def ensure_tombstone(env):
    """Delete one scratch object outside the bench OU.

    Replication takes the visibility of at least one tombstone as the proof
    that it may list deleted objects; a domain that never deleted anything
    (a freshly provisioned lab) runs in the slower scan mode instead. Every
    domain in use has tombstones.
    """
    conn = ad_admin(env)
    dn = "CN=bench-tombstone-%d,%s" % (int(time.time() * 1000), env["AD_BASE_DN"])
    conn.add(dn, ["top", "contact"])
    conn.delete(dn)
    conn.unbind()


def make_changes(env):
    """10 renames, 10 disables, 10 removals, 10 membership changes, over LDAPS as an administrator."""
    import ldap3
    conn = ad_admin(env)
    domain = env["MAIL_DOMAIN"]
    started = time.monotonic()
    for number in common.RENAMED:
        conn.modify(common.user_dn(env, number),
                    {"userPrincipalName": [(ldap3.MODIFY_REPLACE, [common.renamed_address(number, domain)])]})
    for number in common.DISABLED:
        conn.modify(common.user_dn(env, number), {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])]})
    for number in common.REMOVED:
        conn.delete(common.user_dn(env, number))
    # Five members added to a second group, five removed from their group.
    for index, number in enumerate(common.REGROUPED):
        if index % 2 == 0:
            other = common.group_of(number) % common.GROUPS + 1
            conn.modify(common.group_dn(env, other), {"member": [(ldap3.MODIFY_ADD, [common.user_dn(env, number)])]})
        else:
            conn.modify(common.group_dn(env, common.group_of(number)),
                        {"member": [(ldap3.MODIFY_DELETE, [common.user_dn(env, number)])]})
    conn.unbind()
    return {"renamed": len(common.RENAMED), "disabled": len(common.DISABLED), "removed": len(common.REMOVED),
            "membership_changes": len(common.REGROUPED), "seconds": time.monotonic() - started}


# --------------------------------------------------------------- the bench

def measure_backend(backend, admin, per, env, args, config_dir, tag, profile_dir):
    """Floor, (a) and (b) for one backend; returns its resource name."""
    # one_round has made the replication state table before cleaning up
    if not args.no_floor:
        admin.prepare_floor()
        log("%s: floor (read + raw bulk write)" % backend)
        try:
            floor = measured(child_cmd("floor", "--backend", backend, "--users", str(args.users)), "%s floor" % backend)
        finally:
            admin.clean_floor()
            admin.vacuum()
        log("  read %.2f s + write %.2f s, peak %.1f MB" % (floor["read_seconds"], floor["write_seconds"],
                                                           floor["maxrss_kb"] / 1024.0))
        per["floor"] = floor
    name = "%s%s-%s" % (common.PREFIX, backend, tag)
    per["resource"] = name
    store_resource(config_dir, name, env, args.users, admin.backend_options())
    per["runs"]["full"] = replicate_run(config_dir, name, "full", args, profile_dir)
    per["counts_after_full"] = admin.counts(name)
    # A live DC never stands still: (b) changes nothing the resource reads,
    # but one object elsewhere in the domain, so the DC's USN moves on.
    touch_elsewhere(env)
    per["runs"]["no_change"] = replicate_run(config_dir, name, "no-change", args, profile_dir)
    # What the timer's daily full run does: every user and account read
    # again, nothing to write. It holds the directory and the store at once.
    per["runs"]["resync"] = replicate_run(config_dir, name, "resync", args, profile_dir, full=True)
    return name


def child_cmd(*args):
    return [common.VENV_PYTHON, os.path.join(common.BENCH_DIR, "child.py")] + list(args)


def store_resource(config_dir, name, env, users, backend_options):
    from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
    options = {
        "target_domain": env["MAIL_DOMAIN"], "server_uri": [env["AD_URI_LDAPS"]], "ca_cert": env["AD_CA_CERT"],
        "bind_dn": env["AD_BIND_DN"], "bind_password": env["AD_BIND_PASSWORD"],
        "base_dn": common.base_dn_for(env, users), "backend": backend_options,
    }
    resources.store(config_dir, name, resources.with_defaults(options))


def replicate_run(config_dir, name, label, args, profile_dir, full=False):
    cmd = child_cmd("replicate", "--config-dir", config_dir, "--name", name) + (["--full"] if full else [])
    if profile_dir:
        cmd += ["--profile", os.path.join(profile_dir, "%s-%s.prof" % (name, label))]
    log("%s: %s" % (name, label))
    result = measured(cmd, "%s %s" % (name, label))
    log("  %.2f s, peak %.1f MB, %s %s" % (result["seconds"], result["maxrss_kb"] / 1024.0, result["mode"],
                                           compact(result["summary"])))
    return result


def compact(summary):
    return " ".join("%s=%s" % (k, v) for k, v in sorted(summary.items()) if v)


def check_expectations(backend, users, runs):
    """The figures only count if each run did what it should."""
    problems = []
    full, quiet, changed = runs.get("full"), runs.get("no_change"), runs.get("changes")
    resync = runs.get("resync")
    if resync and (resync["mode"] != "full" or any(v for k, v in resync["summary"].items()
                                                   if k not in ("unchanged", "skipped"))):
        problems.append("full re-read: expected a full run that writes nothing, got %s %s"
                        % (resync["mode"], resync["summary"]))
    if full and (full["mode"] != "full" or full["summary"].get("created", 0) < users):
        problems.append("full run: expected at least %d created in full mode, got %s %s"
                        % (users, full["mode"], full["summary"]))
    if quiet:
        changed_kinds = dict((k, v) for k, v in quiet["summary"].items() if v and k not in ("unchanged", "skipped"))
        if quiet["mode"] != "incremental" or changed_kinds:
            problems.append("no-change run: expected an incremental no-op, got %s %s" % (quiet["mode"], quiet["summary"]))
    if changed:
        s = changed["summary"]
        if changed["mode"] != "incremental" or s.get("renamed", 0) < len(common.RENAMED) \
                or s.get("disabled", 0) < len(common.DISABLED) + len(common.REMOVED) or s.get("created"):
            problems.append("40-change run: expected incremental renamed>=10 disabled>=20, got %s %s"
                            % (changed["mode"], s))
    for problem in problems:
        log("WARNING %s: %s" % (backend, problem))
    return problems


def code_state():
    """Which code was measured: the commit, and whether plugins/ had uncommitted changes."""
    def git(*args):
        out = subprocess.run(["git"] + list(args), capture_output=True, text=True, cwd=common.ROOT)
        return out.stdout.strip()
    diff = git("diff", "HEAD", "--", "plugins")
    import hashlib
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "plugins_dirty": bool(diff), "plugins_diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
            "plugins_diff_stat": git("diff", "HEAD", "--shortstat", "--", "plugins")}


def bench(args):
    env = common.load_env()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in backends:
        if backend not in BACKENDS:
            raise SystemExit("unknown backend %s (choose from %s)" % (backend, ", ".join(BACKENDS)))
    run_id = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    results = {
        "run_id": run_id, "command": " ".join(["bench/run"] + sys.argv[1:]), "users": args.users,
        "groups": common.GROUPS, "backends": backends,
        "profiled": bool(args.profile), "machine": machine(), "code": code_state(), "rounds": [],
        "per_backend": {},
    }
    args.results = results
    profile_dir = None
    if args.profile:
        profile_dir = os.path.join(common.RESULTS_DIR, "profiles", run_id)
        os.makedirs(profile_dir, exist_ok=True)

    admins = dict((b, admin_for(b, env)) for b in backends)
    config_dir = tempfile.mkdtemp(prefix="mailsync-bench-")
    try:
        for index in range(args.rounds):
            if args.rounds > 1:
                log("round %d of %d" % (index + 1, args.rounds))
            tag = run_id.lower() + ("-r%d" % (index + 1) if args.rounds > 1 else "")
            results["rounds"].append(one_round(args, env, backends, admins, config_dir, tag, profile_dir))
            results["per_backend"] = aggregate(results["rounds"])
    finally:
        for admin in admins.values():
            admin.close()
        for name in os.listdir(config_dir):
            os.unlink(os.path.join(config_dir, name))
        os.rmdir(config_dir)

    with open("/proc/loadavg") as handle:
        results["machine"]["loadavg_at_end"] = handle.read().split()[:3]
    results["verdicts"] = verdicts(results)
    return results


def one_round(args, env, backends, admins, config_dir, tag, profile_dir):
    """Seed (or repair) AD, then floor, (a), (b) per backend, the AD changes, (c) per backend, clean up."""
    result = {"seed": seed(args.users), "changes": None, "per_backend": {}}
    ensure_tombstone(env)
    names = {}
    try:
        from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate
        for backend, admin in admins.items():
            if backend != "ldap":
                # A fresh lab has no replication state table before the first run.
                replicate.ensure_state_schema(admin.backend_options(schema=True))
            left = admin.clean_resources(common.PREFIX + "%")
            left += admin.clean_floor()
            if left:
                log("%s: removed %d accounts left by an earlier bench run" % (backend, left))
            admin.vacuum()

        for backend in backends:
            per = result["per_backend"].setdefault(backend, {"runs": {}})
            try:
                names[backend] = measure_backend(backend, admins[backend], per, env, args, config_dir, tag,
                                                 profile_dir)
            except Exception as exc:  # noqa: BLE001 - one backend failing must not lose the others
                log("%s FAILED: %s" % (backend, exc))
                per["error"] = str(exc)[-3000:]

        if names:
            log("AD: 10 renames, 10 disables, 10 removals, 10 membership changes")
            result["changes"] = make_changes(env)
        for backend in names:
            per = result["per_backend"][backend]
            try:
                per["runs"]["changes"] = replicate_run(config_dir, names[backend], "40-changes", args, profile_dir)
                per["counts_after_changes"] = admins[backend].counts(names[backend])
            except Exception as exc:  # noqa: BLE001
                log("%s FAILED: %s" % (backend, exc))
                per["error"] = str(exc)[-3000:]
            per["problems"] = check_expectations(backend, args.users, per["runs"])
    finally:
        if not args.keep:
            for backend, admin in admins.items():
                try:
                    removed = admin.clean_resources(common.PREFIX + "%")
                    admin.clean_floor()
                    admin.vacuum()
                    log("%s: cleaned up %d accounts" % (backend, removed))
                except Exception as exc:  # noqa: BLE001
                    log("%s: cleanup failed: %s" % (backend, exc))
    return result


def _median_record(records):
    """The record of median wall time (the lower middle one for an even count), with every time kept."""
    ordered = sorted(records, key=lambda r: r["seconds"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["seconds_all_rounds"] = [round(r["seconds"], 3) for r in records]
    return chosen


def aggregate(rounds):
    """Per backend and figure, the median over the rounds (noise on a shared machine only adds)."""
    per_backend = {}
    for backend in rounds[0]["per_backend"]:
        pers = [r["per_backend"][backend] for r in rounds if backend in r["per_backend"]]
        out = {"runs": {}, "resource": [p.get("resource") for p in pers]}
        floors = [p["floor"] for p in pers if p.get("floor")]
        if floors:
            out["floor"] = _median_record(floors)
            for part in ("read_seconds", "write_seconds"):
                values = sorted(f[part] for f in floors)
                out["floor"][part + "_median"] = values[(len(values) - 1) // 2]
        for key in ("full", "no_change", "resync", "changes"):
            records = [p["runs"][key] for p in pers if key in p["runs"]]
            if records:
                out["runs"][key] = _median_record(records)
        for key in ("counts_after_full", "counts_after_changes"):
            out[key] = [p.get(key) for p in pers]
        out["problems"] = [problem for p in pers for problem in p.get("problems", [])]
        errors = [p["error"] for p in pers if p.get("error")]
        if errors:
            out["error"] = errors[-1]
        per_backend[backend] = out
    return per_backend


# ------------------------------------------------------------------ report

def verdicts(results):
    out = {}
    for backend, per in results["per_backend"].items():
        runs, floor = per["runs"], per.get("floor")
        full = runs.get("full")
        v = {}
        if full and floor:
            ratio = full["seconds"] / floor["seconds"]
            v["full_within_1.5x_floor"] = {"value": round(ratio, 2), "met": ratio <= TARGET_FULL_RATIO}
        for key in ("no_change", "changes"):
            if full and runs.get(key):
                share = runs[key]["seconds"] / full["seconds"]
                v["%s_under_5pct_of_full" % key] = {"value": round(100 * share, 1), "met": share < TARGET_INCREMENTAL_SHARE}
                if floor and "incremental_read_seconds" in floor:
                    v["%s_under_5pct_of_full" % key]["note"] = "the incremental read floor alone is %.1f%% of full" % (
                        100.0 * floor["incremental_read_seconds"] / full["seconds"])
        peak = max(r["maxrss_kb"] for r in runs.values()) / 1024.0 if runs else None
        if peak is not None:
            v["peak_rss_under_200MB"] = {"value": round(peak, 1), "met": peak < TARGET_PEAK_MB,
                                         "note": "the target is stated for 50,000 users" if results["users"] != 50000
                                         else ""}
        out[backend] = v
    return out


def table(results):
    lines = []
    head = "%-7s %-24s %9s %9s %9s %10s  %s" % ("backend", "figure", "seconds", "x floor", "% full", "peak MB", "run")
    lines.append(head)
    lines.append("-" * len(head))
    for backend, per in results["per_backend"].items():
        floor = per.get("floor")
        runs = per["runs"]
        full = runs.get("full")
        if per.get("error"):
            lines.append("%-7s FAILED: %s" % (backend, per["error"].strip().splitlines()[-1][:200]))
        if floor:
            lines.append("%-7s %-24s %9.2f %9s %9s %10.1f  %d entries" % (
                backend, "floor: ldap3 paged read", floor["read_seconds"], "", "", floor["peak_rss_kb_after_read"] / 1024.0,
                floor["entries_read"]))
            lines.append("%-7s %-24s %9.2f %9s %9s %10s  %d %s" % (
                backend, "floor: raw bulk write", floor["write_seconds"], "", "", "", floor["written"],
                "user and group entries (add_s)" if backend == "ldap"
                else "users and groups as mailbox, alias, forwardings, mailsync_object rows"))
            lines.append("%-7s %-24s %9.2f %9s %9s %10.1f" % (backend, "floor = read + write", floor["seconds"], "1.00",
                                                             "", floor["maxrss_kb"] / 1024.0))
            if "incremental_read_seconds" in floor:
                lines.append("%-7s %-24s %9.2f %9s %9s %10s  %s" % (
                    backend, "floor: incremental read", floor["incremental_read_seconds"], "", "", "",
                    "bind + rootDSE + one search for what changed since (none)"))
        for key, label in (("full", "(a) full replication"), ("no_change", "(b) no change"),
                           ("resync", "(d) full re-read"), ("changes", "(c) 40 changes")):
            run = runs.get(key)
            if not run:
                continue
            ratio = "%.2f" % (run["seconds"] / floor["seconds"]) if floor else "-"
            share = "%.1f%%" % (100.0 * run["seconds"] / full["seconds"]) if full else "-"
            read = run.get("phases", {}).get("read_directory", {}).get("seconds")
            split = ("AD %.1f + rest %.1f; " % (read, run["seconds"] - read)) if read is not None else ""
            lines.append("%-7s %-24s %9.2f %9s %9s %10.1f  %s%s %s" % (
                backend, label, run["seconds"], ratio, share, run["maxrss_kb"] / 1024.0, split, run["mode"],
                compact(run["summary"])))
        lines.append("")
    lines.append("Targets:")
    for backend, v in results["verdicts"].items():
        for key, verdict in v.items():
            lines.append("  %-6s %-32s %8s  %s%s" % (backend, key, verdict["value"], "met" if verdict["met"] else "MISSED",
                                                     (" (%s)" % verdict["note"]) if verdict.get("note") else ""))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="Replication benchmarks against the physical floor (BENCHMARKS.md).")
    parser.add_argument("--users", type=int, choices=common.SIZES, default=common.SIZES[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: mysql,pgsql,ldap")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat everything (seed repair, floor, a, b, changes, c) N times; report medians")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (profiling runs)")
    parser.add_argument("--profile", action="store_true",
                        help="run the replication children under cProfile (bench/results/profiles/); slower figures")
    parser.add_argument("--keep", action="store_true", help="keep the replicated accounts (no cleanup)")
    parser.add_argument("--no-lab-up", action="store_true", help="do not start the lab")
    parser.add_argument("--label", default="", help="appended to the results file name")
    args = parser.parse_args()

    os.makedirs(common.RESULTS_DIR, exist_ok=True)
    lock = open(os.path.join(common.RESULTS_DIR, ".lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit("another bench run holds %s" % lock.name)
    if not args.no_lab_up:
        lab_up()
    try:
        results = bench(args)
    finally:
        results = getattr(args, "results", None)
        if results is not None:
            if "verdicts" not in results:
                results["verdicts"] = verdicts(results)
                results["incomplete"] = True
            suffix = "-%du" % args.users
            if args.profile:
                suffix += "-profiled"
            if args.label:
                suffix += "-" + args.label
            path = os.path.join(common.RESULTS_DIR, "%s%s.json" % (results["run_id"], suffix))
            with open(path, "w") as handle:
                json.dump(results, handle, indent=2, sort_keys=True, default=str)
                handle.write("\n")
    print(table(results))
    print("\nraw results: %s" % os.path.relpath(path, common.ROOT))


if __name__ == "__main__":
    main()
