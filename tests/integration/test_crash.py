"""Runs killed with SIGKILL at random points leave a store the next run converges from."""

import os
import random
import signal
import subprocess
import sys
import time

from lab import ROOT

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources

RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate, resource
replicate.replicate(resource.load(sys.argv[2], sys.argv[3]), full=sys.argv[4] == "full")
"""

USERS = 120
KILLS = 8


def start(args, full):
    return subprocess.Popen([sys.executable, "-c", RUNNER, os.path.join(ROOT, ".collections"),
                             args["config_dir"], args["name"], "full" if full else "incremental"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(args, full=False):
    proc = start(args, full)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]


def expected_accounts(ad, ou):
    """address -> active, for every user in the OU, as replication should leave it."""
    ad.conn.search(ou, "(sAMAccountType=805306368)", attributes=["userPrincipalName", "userAccountControl"])
    return dict((str(e.userPrincipalName.value).lower(), not int(e.userAccountControl.value) & 2)
                for e in ad.conn.entries)


def test_sigkill_at_random_points_then_convergence(ad, ou, store, resource_args, tag, env):
    rng = random.Random(tag)
    domain = env["MAIL_DOMAIN"]
    dns = [ad.make_user(ou, "C%03d %s" % (i, tag), upn="c%03d.%s@%s" % (i, tag, domain))[1] for i in range(USERS)]
    args = dict(resource_args, on_removed="delete", delete_after_days=0, max_deletes="100%")
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))

    began = time.time()
    finish(dict(args), full=True)  # measures how long a whole run takes, then starts over
    duration = time.time() - began
    wipe(store, args["name"], domain, tag)

    killed = 0
    for round_ in range(KILLS):
        # Change AD between kills so the plans differ: renames, disables, deletions.
        for dn in rng.sample(dns, 4):
            action = rng.choice(["rename", "disable", "enable", "delete"])
            if action == "rename":
                ad.modify(dn, userPrincipalName="r%d%s.%s@%s" % (round_, rng.randrange(10 ** 6), tag, domain))
            elif action == "delete":
                ad.conn.delete(dn)
                dns.remove(dn)
            else:
                ad.set_disabled(dn, action == "disable")
        proc = start(args, full=rng.random() < 0.5)
        time.sleep(rng.uniform(0.05, max(0.1, duration)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.communicate()
    assert killed >= KILLS // 2, "the runs finished before they could be killed: make them longer"

    finish(args)
    assert_converged(store, args["name"], expected_accounts(ad, ou), tag)
    finish(args, full=True)
    assert_converged(store, args["name"], expected_accounts(ad, ou), tag)


def wipe(store, resource, domain, tag):
    """Remove what the measuring run wrote, as if it never ran."""
    if store.kind == "ldap":
        for entry in store.managed(resource):
            store.conn.delete_s(store.entry(entry["address"])["dn"][0])
        import ldap
        dn = "domainName=%s,%s" % (domain, store.base_dn)
        values = store.conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["accountSetting"])[0][1]
        cursor = [v for v in values.get("accountSetting", []) if v.decode().startswith("mailsyncCursor:%s=" % resource)]
        if cursor:
            store.conn.modify_s(dn, [(ldap.MOD_DELETE, "accountSetting", cursor)])
        return
    like = "%%.%s@%%" % tag
    store.execute("DELETE FROM forwardings WHERE address LIKE %s OR forwarding LIKE %s", (like, like))
    store.execute("DELETE FROM mailbox WHERE username LIKE %s", (like,))
    store.execute("DELETE FROM mailsync_object WHERE resource = %s", (resource,))
    store.execute("DELETE FROM mailsync_cursor WHERE resource = %s", (resource,))


def assert_converged(store, resource, expected, tag):
    managed = store.managed(resource)
    addresses = [m["address"] for m in managed]
    assert len(addresses) == len(set(addresses)), "duplicate anchors"
    assert len(set(m["guid"] for m in managed)) == len(managed), "one object anchored twice"
    assert sorted(addresses) == sorted(expected), "lost or orphan accounts"
    for address, active in expected.items():
        account = store.account(address)
        assert account is not None and account["active"] is active, (address, account)
    if store.kind == "ldap":
        assert store.count_matching("(&(objectClass=mailUser)(mail=*.%s@*))" % tag) == len(expected)
        return
    like = "%%.%s@%%" % tag
    mailboxes = store.query("SELECT username FROM mailbox WHERE username LIKE %s", (like,))
    assert sorted(r["username"] for r in mailboxes) == sorted(expected), "mailbox rows without an anchor"
    rows = store.query("SELECT address, forwarding, active FROM forwardings WHERE address LIKE %s OR forwarding LIKE %s",
                       (like, like))
    assert sorted((r["address"], r["forwarding"], r["active"]) for r in rows) == \
        sorted((a, a, 1 if active else 0) for a, active in expected.items()), "orphan or missing forwardings"
    assert len(store.query("SELECT resource FROM mailsync_cursor WHERE resource = %s", (resource,))) == 1
