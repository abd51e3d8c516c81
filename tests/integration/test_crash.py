"""Runs of 2,000 users killed with SIGKILL at random points, many times: each next run converges.

The AD objects are written once per module through Samba's own database
(samdb_bulk.py: seconds, where 2,000 LDAP adds take minutes) and shared by
the three backends; each backend's test then changes them round after
round. Every round kills one or two runs at a random point of a whole
run, read phase or write phase, lets the next run complete, and compares
the store with AD: every account, extra address and alias membership
present once, nothing left over.
"""

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid

import pytest

from lab import ROOT

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources

USERS = 2000
GROUPS = 20
KILLS_PER_ROUND = 3
MIN_KILLS = 10
MIN_WRITE_KILLS = 4
MAX_ROUNDS = 8
WRITE_SHARE = 0.6
SAMDB_BULK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samdb_bulk.py")
SYSTEM_PYTHON = "/usr/bin/python3"

RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate, resource
from ansible_collections.mailsync.iredmail.plugins.module_utils.backends import ldap, sql


def announced(apply):
    # The test times its kills against the write phase: say when it starts.
    def wrapper(self, plan, *args):
        print("write %d" % len(plan.changes), flush=True)
        return apply(self, plan, *args)
    return wrapper


for cls in (sql.SQLBackend, ldap.LDAPBackend):
    cls.apply = announced(cls.apply)
plan = replicate.replicate(resource.load(sys.argv[2], sys.argv[3]), full=sys.argv[4] == "full")
print("done %d" % len(plan.changes), flush=True)
"""

# Seconds per change of the write phase, until a completed run measures it.
FIRST_GUESS = {"mysql": 0.001, "pgsql": 0.001, "ldap": 0.008}


def samdb(request):
    proc = subprocess.run([SYSTEM_PYTHON, SAMDB_BULK], input=json.dumps(request), capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise AssertionError("samdb_bulk.py %s failed: %s" % (request["op"], proc.stderr[-3000:]))
    return json.loads(proc.stdout)


class Directory(object):
    """The module's OU of 2,000 users and 20 groups, changed in bulk and read back through samdb."""

    def __init__(self, env, tag):
        self.tag = tag
        self.domain = env["MAIL_DOMAIN"]
        self.ou = "OU=crash-%s,%s" % (tag, env["AD_BASE_DN"])
        self.serial = 0

    def address(self, prefix):
        self.serial += 1
        return "%s%d.%s@%s" % (prefix, self.serial, self.tag, self.domain)

    def user(self, disabled=False, proxy=False):
        number = self.serial + 1
        entry = {"dn": "CN=U%05d %s,%s" % (number, self.tag, self.ou), "objectClass": "user",
                 "sAMAccountName": "u%s%05d" % (self.tag, number), "userPrincipalName": self.address("u"),
                 "displayName": "User %d" % number,
                 # PASSWD_NOTREQD: enabled without a password, which costs Samba a hash per user
                 "userAccountControl": str(0x200 | 0x20 | (0x2 if disabled else 0))}
        if proxy:
            entry["proxyAddresses"] = ["SMTP:" + entry["userPrincipalName"], "smtp:" + self.address("p"),
                                       "X500:/o=lab/cn=u%d" % number]
        return entry

    def seed(self):
        users = [self.user(disabled=i % 10 == 9, proxy=i % 4 == 0) for i in range(USERS)]
        groups = []
        for number in range(GROUPS):
            members = [u["dn"] for u in users[number::GROUPS]]
            if number == 0:
                members.append("CN=G01 %s,%s" % (self.tag, self.ou))  # nested: G00 holds G01's members too
            groups.append({"dn": "CN=G%02d %s,%s" % (number, self.tag, self.ou), "objectClass": "group",
                           "sAMAccountName": "g%s%02d" % (self.tag, number),
                           "mail": "g%02d.%s@%s" % (number, self.tag, self.domain), "member": members})
        # G00 names G01, so G01 goes first.
        groups.insert(0, groups.pop(1))
        samdb({"op": "write", "add": [{"dn": self.ou, "objectClass": "organizationalUnit"}] + users + groups})

    def read(self):
        return samdb({"op": "read", "base": self.ou})

    def change(self, rng, round_):
        """One bulk change of AD, as between two scheduled runs; returns the addresses it removes."""
        state = self.read()
        users = state["users"]
        picked = rng.sample(users, 140)
        renamed, chain, toggled, deleted, proxied = (picked[:60], picked[60:62], picked[62:102], picked[102:117],
                                                     picked[117:140])
        modify = []

        def rename(user, address):
            # As Exchange does when the primary address changes: the SMTP:
            # value follows it (it is the mailbox address) and the rest stay.
            replace = {"userPrincipalName": [address]}
            if any(p.startswith("SMTP:") for p in user["proxy"]):
                others = [p for p in user["proxy"] if not p.startswith("SMTP:")]
                replace["proxyAddresses"] = ["SMTP:" + address] + others
            modify.append({"dn": user["dn"], "replace": replace})

        for user in renamed:
            rename(user, self.address("r"))
        # One address freed by a rename is taken by another user in the same run.
        first, second = chain
        rename(first, self.address("r"))
        rename(second, first["upn"])
        for user in toggled:
            modify.append({"dn": user["dn"], "replace": {"userAccountControl": [user["uac"] ^ 0x2]}})
        for user in proxied:
            modify.append({"dn": user["dn"], "replace": {"proxyAddresses": ["smtp:" + self.address("p")]
                                                         if rng.random() < 0.7 else []}})
        gone = set(u["dn"] for u in deleted)
        staying = [u["dn"] for u in users if u["dn"] not in gone]
        for group in rng.sample([g for g in state["groups"] if not g["dn"].startswith("CN=G00 ")], 3):
            modify.append({"dn": group["dn"], "replace": {"member": rng.sample(staying, rng.randrange(0, 120))}})
        added = [self.user(disabled=rng.random() < 0.1, proxy=rng.random() < 0.3) for _ in deleted]
        samdb({"op": "write", "delete": sorted(gone), "add": added, "modify": modify})
        return [u["upn"].lower() for u in deleted]

    def expected(self):
        """What replication must leave, from what AD holds now."""
        state = self.read()
        users = {}
        by_dn = {}
        for user in state["users"]:
            # The SMTP: proxy address is the mailbox address, the UPN another one.
            upn = user["upn"].lower()
            primaries = [p[5:].lower() for p in user["proxy"] if p.startswith("SMTP:")]
            address = primaries[0] if len(primaries) == 1 else upn
            proxies = set(p[5:].lower() for p in user["proxy"] if p.startswith("smtp:")) | set([upn])
            proxies = sorted(proxies - set([address]))
            users[user["guid"]] = {"address": address, "active": not user["uac"] & 0x2, "aliases": proxies}
            by_dn[user["dn"].lower()] = users[user["guid"]]
        members_of = dict((g["dn"].lower(), [m.lower() for m in g["member"]]) for g in state["groups"])
        groups = {}
        for group in state["groups"]:
            leaves, todo, seen = set(), list(members_of[group["dn"].lower()]), set()
            while todo:
                dn = todo.pop()
                if dn in members_of:
                    if dn not in seen:
                        seen.add(dn)
                        todo.extend(members_of[dn])
                elif dn in by_dn and by_dn[dn]["active"]:
                    leaves.add(by_dn[dn]["address"])
            groups[group["guid"]] = {"address": group["mail"].lower(), "members": sorted(leaves)}
        return users, groups

    def remove(self):
        samdb({"op": "remove", "base": self.ou})


@pytest.fixture(scope="module")
def directory(env):
    directory = Directory(env, uuid.uuid4().hex[:8])
    began = time.monotonic()
    try:
        directory.seed()
        directory.seed_seconds = time.monotonic() - began
        yield directory
    finally:
        directory.remove()


class Timing(object):
    """How long the phases of this backend's runs take, from the last runs that showed them."""

    def __init__(self, kind):
        self.read = 2.0
        self.rate = FIRST_GUESS[kind]
        self.changes = USERS

    @property
    def write(self):
        return max(self.rate * self.changes, 0.05)


class Run(object):
    """One replication in its own process, as the systemd service would run it."""

    def __init__(self, args, full):
        self.proc = subprocess.Popen([sys.executable, "-c", RUNNER, os.path.join(ROOT, ".collections"),
                                      args["config_dir"], args["name"], "full" if full else "incremental"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.began = time.monotonic()
        self.write_at = self.done_at = self.changes = None
        self.output = b""

    def watch(self, until, stop_at_write=False):
        """Read what the run announces until `until`; False once it has ended."""
        fd = self.proc.stdout.fileno()
        while True:
            if stop_at_write and self.write_at is not None:
                return True
            ready = select.select([fd], [], [], max(0, until - time.monotonic()))[0]
            if not ready:
                return True
            chunk = os.read(fd, 4096)
            if not chunk:
                return False
            self.output += chunk
            for line in self.output.decode().splitlines():
                word, _, number = line.partition(" ")
                if word == "write" and self.write_at is None:
                    self.write_at, self.changes = time.monotonic(), int(number)
                elif word == "done" and self.done_at is None:
                    self.done_at = time.monotonic()

    def finish(self, timing):
        self.watch(time.monotonic() + 600)
        err = self.proc.communicate(timeout=60)[1]
        assert self.proc.returncode == 0, err.decode()[-3000:]
        if self.write_at is not None:
            timing.read = self.write_at - self.began
            timing.rate = (self.done_at - self.write_at) / max(self.changes, 1)
        return int(self.output.decode().split("done ")[1])


def kill_at_random_point(args, rng, timing, full):
    """Start a run and SIGKILL it at a random point; the phase it hit, or None if it ended first.

    The write phase is a small part of a run (AD is read whole first) but
    the one crash safety is about, so half the kills aim at it: a point
    uniform over this run's write phase, the others uniform over its read.
    """
    run = Run(args, full)
    if rng.random() < WRITE_SHARE:
        alive = run.watch(run.began + 600, stop_at_write=True)
        if alive and run.write_at is not None:
            timing.changes = max(run.changes, 1)
            alive = run.watch(run.write_at + rng.uniform(0, timing.write))
    else:
        alive = run.watch(run.began + rng.uniform(0, timing.read))
    run.watch(time.monotonic())  # an announcement already sent counts
    if alive and run.proc.poll() is None:
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.communicate()
        return "write" if run.write_at is not None else "read"
    run.finish(timing)  # it ended before the point: a complete run
    return None


def test_sigkill_many_times_over_2000_users_each_next_run_converges(directory, store, env, tmp_path):
    seed = random.randrange(10 ** 9)
    rng = random.Random(seed)
    name = "crash-%s-%s" % (store.kind, directory.tag)
    options = {"target_domain": env["MAIL_DOMAIN"], "server_uri": [env["AD_URI_LDAPS"]], "ca_cert": env["AD_CA_CERT"],
               "bind_dn": env["AD_BIND_DN"], "bind_password": env["AD_BIND_PASSWORD"], "base_dn": directory.ou,
               "backend": store.backend_options(), "on_removed": "delete", "delete_after_days": 0,
               "max_deletes": "100%",
               # Samba serves one request at a time (-M single); on a machine busy with
               # other tests one answer may take longer than the default 10 s.
               "timeout": 60}
    args = {"name": name, "config_dir": str(tmp_path / "resources")}
    resources.store(args["config_dir"], name, resources.with_defaults(options))
    timing = Timing(store.kind)
    kills, deleted = [], set()
    began = time.monotonic()
    try:
        for round_ in range(MAX_ROUNDS):
            if round_ >= 3 and len(kills) >= MIN_KILLS and kills.count("write") >= MIN_WRITE_KILLS:
                break
            if round_:
                deleted.update(directory.change(rng, round_))
            for _ in range(KILLS_PER_ROUND + (1 if round_ == 0 else 0)):
                phase = kill_at_random_point(args, rng, timing, full=rng.random() < 0.3)
                if phase:
                    kills.append(phase)
            run = Run(args, full=rng.random() < 0.3)
            changes = run.finish(timing)
            checked = time.monotonic()
            assert_converged(store, name, directory, deleted, "seed %d, round %d, kills %s" % (seed, round_, kills))
            # Shown with a failure: where each round's time went.
            print("round %d at %.1fs: kills %s; last run %.1fs (read %.1fs, %d changes at %.2f ms), check %.1fs"
                  % (round_, checked - began, kills, checked - run.began, timing.read, changes, timing.rate * 1000,
                     time.monotonic() - checked))
        assert len(kills) >= MIN_KILLS and kills.count("write") >= MIN_WRITE_KILLS, \
            "too few runs killed (seed %d): %s" % (seed, kills)
        assert Run(args, full=True).finish(timing) == 0, "a full run after convergence still found changes"
    finally:
        wipe(store, name, directory.tag, env["MAIL_DOMAIN"])
    print("%s: %d kills (%d in the write phase) in %.1f s; AD seeded in %.1f s"
          % (store.kind, len(kills), kills.count("write"), time.monotonic() - began, directory.seed_seconds))


def assert_converged(store, resource, directory, deleted, context):
    users, groups = directory.expected()
    if store.kind == "ldap":
        assert_ldap_converged(store, resource, directory.tag, directory.domain, users, groups, context)
    else:
        assert_sql_converged(store, resource, directory.tag, users, groups, deleted, context)


def assert_sql_converged(store, resource, tag, users, groups, deleted, context):
    like = "%%.%s@%%" % tag
    state = store.query("SELECT guid, kind, address FROM mailsync_object WHERE resource = %s", (resource,))
    assert sorted((r["guid"], r["kind"], r["address"]) for r in state) == sorted(
        [(g, "user", u["address"]) for g, u in users.items()] + [(g, "group", a["address"]) for g, a in groups.items()]
    ), "state rows differ from AD (lost, orphan or duplicate): " + context
    mailboxes = store.query("SELECT username, active FROM mailbox WHERE username LIKE %s", (like,))
    assert sorted((r["username"], r["active"]) for r in mailboxes) == sorted(
        (u["address"], 1 if u["active"] else 0) for u in users.values()), "mailboxes differ from AD: " + context
    aliases = store.query("SELECT address, active FROM alias WHERE address LIKE %s", (like,))
    assert sorted((r["address"], r["active"]) for r in aliases) == sorted((g["address"], 1) for g in groups.values()), \
        "alias accounts differ from AD: " + context
    # Every forwardings row, counted: a duplicate or an orphan changes the multiset.
    rows = store.query("SELECT address, forwarding, is_alias, is_list, active FROM forwardings "
                       "WHERE address LIKE %s OR forwarding LIKE %s", (like, like))
    expected = []
    for user in users.values():
        active = 1 if user["active"] else 0
        expected.append((user["address"], user["address"], 0, 0, active))
        expected.extend((alias, user["address"], 1, 0, active) for alias in user["aliases"])
    for group in groups.values():
        expected.extend((group["address"], member, 0, 1, 1) for member in group["members"])
    assert sorted((r["address"], r["forwarding"], r["is_alias"], r["is_list"], r["active"]) for r in rows) == \
        sorted(expected), "forwardings differ from AD (orphan, duplicate or missing rows): " + context
    scheduled = store.query("SELECT username FROM deleted_mailboxes WHERE username LIKE %s", (like,))
    assert sorted(r["username"] for r in scheduled) == sorted(deleted), \
        "deleted mailboxes not scheduled exactly once each: " + context
    assert len(store.query("SELECT resource FROM mailsync_cursor WHERE resource = %s", (resource,))) == 1


def assert_ldap_converged(store, resource, tag, domain, users, groups, context):
    ldap = store.ldap
    domain_dn = "domainName=%s,%s" % (domain, store.base_dn)
    everything = store.conn.search_s(
        store.base_dn, ldap.SCOPE_SUBTREE,
        "(|(mail=*.%s@*)(shadowAddress=*.%s@*)(mailForwardingAddress=*.%s@*))" % (tag, tag, tag),
        ["objectClass", "mail", "accountStatus", "shadowAddress", "mailForwardingAddress", "accountSetting"])
    found = {}
    for dn, attrs in everything:
        text = dict((k, sorted(v.decode() for v in values)) for k, values in attrs.items())
        settings = text.get("accountSetting", [])
        guids = [s[len("mailsyncGUID:"):] for s in settings if s.startswith("mailsyncGUID:")]
        assert "mailsyncResource:%s" % resource in settings and len(guids) == 1, \
            "entry without this resource's anchor: %s (%s)" % (dn, context)
        assert guids[0] not in found, "one AD object has two entries: %s, %s (%s)" % (found[guids[0]][0], dn, context)
        mail = text["mail"][0]
        assert dn == "mail=%s,ou=%s,%s" % (mail, "Aliases" if "mailAlias" in text["objectClass"] else "Users",
                                           domain_dn), "entry not named by its address: %s (%s)" % (dn, context)
        if "mailAlias" in text["objectClass"]:
            found[guids[0]] = (dn, {"address": mail, "members": text.get("mailForwardingAddress", [])})
        else:
            found[guids[0]] = (dn, {"address": mail, "active": text["accountStatus"] == ["active"],
                                    "aliases": text.get("shadowAddress", [])})
    wanted = dict(users, **groups)
    assert sorted(found) == sorted(wanted), "lost or orphan entries: %s" % context
    for guid, (dn, view) in found.items():
        assert view == wanted[guid], "%s is %s, AD says %s (%s)" % (dn, view, wanted[guid], context)
    values = store.conn.search_s(domain_dn, ldap.SCOPE_BASE, "(objectClass=*)", ["accountSetting"])[0][1]
    cursors = [v for v in values.get("accountSetting", []) if v.decode().startswith("mailsyncCursor:%s=" % resource)]
    assert len(cursors) == 1


def wipe(store, resource, tag, domain):
    """Remove every row and entry of this test from the shared store."""
    if store.kind == "ldap":
        ldap = store.ldap
        found = store.conn.search_s(store.base_dn, ldap.SCOPE_SUBTREE,
                                    "(|(mail=*.%s@*)(accountSetting=mailsyncResource:%s))" % (tag, resource), ["1.1"])
        for dn, _ in sorted(found, key=lambda item: -len(item[0])):
            store.conn.delete_s(dn)
        dn = "domainName=%s,%s" % (domain, store.base_dn)
        values = store.conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["accountSetting"])[0][1]
        cursor = [v for v in values.get("accountSetting", []) if v.decode().startswith("mailsyncCursor:%s=" % resource)]
        if cursor:
            store.conn.modify_s(dn, [(ldap.MOD_DELETE, "accountSetting", cursor)])
        return
    like = "%%.%s@%%" % tag
    store.execute("DELETE FROM forwardings WHERE address LIKE %s OR forwarding LIKE %s", (like, like))
    for table, column in (("mailbox", "username"), ("alias", "address"), ("deleted_mailboxes", "username")):
        store.execute("DELETE FROM %s WHERE %s LIKE %%s" % (table, column), (like,))
    store.execute("DELETE FROM mailsync_object WHERE resource = %s", (resource,))
    store.execute("DELETE FROM mailsync_cursor WHERE resource = %s", (resource,))
