#!/usr/bin/python3
"""Bring OU=Bench of the lab AD to its canonical state, in bulk, through Samba's own database.

Run with the system python3 (Samba's bindings), while the DC runs: the
DC serves the same sam.ldb and sees every committed transaction. Writing
through samdb with ldb's batch_mode is 5-10 times faster than LDAP adds
(tests/lab notes), and needs no DC round trip per object.

Idempotent: an OU that already holds every user and group as seeded is
only read (a few seconds). Whatever a previous bench run changed (renamed
UPNs, disabled or deleted users, moved group members) is put back, so
every bench run starts from the same directory. Prints one JSON line.

    /usr/bin/python3 bench/seed_ad.py --users 10000
"""

import argparse
import json
import os
import sys
import time

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# Adds per transaction: the DC waits for the database lock while one is
# open, so keep each one to a second or two.
CHUNK = 2000
PROFILE_KEYS = ("userPrincipalName", "displayName", "givenName", "sn", "employeeID", "mobile",
                "telephoneNumber", "title", "userAccountControl")


def open_samdb(env):
    lp = LoadParm()
    lp.load(env["SAMBA_SMB_CONF"])
    return SamDB(url=os.path.join(env["SAMBA_PRIVATE_DIR"], "sam.ldb"), lp=lp,
                 session_info=system_session(), options=["batch_mode:1"])


def exists(db, dn):
    try:
        return bool(db.search(dn, scope=ldb.SCOPE_BASE, attrs=["1.1"]))
    except ldb.LdbError as exc:
        if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
            return False
        raise


def in_chunks(db, operations):
    """Apply (kind, message) operations, CHUNK per transaction."""
    for start in range(0, len(operations), CHUNK):
        db.transaction_start()
        try:
            for kind, message in operations[start:start + CHUNK]:
                if kind == "add":
                    db.add(message)
                else:
                    db.modify(message)
        except Exception:
            db.transaction_cancel()
            raise
        db.transaction_commit()


def first(message, key):
    if key not in message:
        return None
    return str(message[key][0])


def seed(env, users):
    domain = env["MAIL_DOMAIN"]
    db = open_samdb(env)
    stats = {"users": users, "users_created": 0, "users_repaired": 0, "groups_created": 0, "groups_repaired": 0}

    containers = [common.bench_dn(env)] + [common.block_dn(env, size) for size in common.SIZES if size <= users] \
        + [common.groups_dn(env)]
    for dn in containers:
        if not exists(db, dn):
            db.add({"dn": dn, "objectClass": "organizationalUnit"})

    found = {}
    for size in common.SIZES:
        if size > users:
            break
        for message in db.search(common.block_dn(env, size), scope=ldb.SCOPE_ONELEVEL,
                                 expression="(&(objectClass=user)(sAMAccountName=bench*))",
                                 attrs=["sAMAccountName"] + list(PROFILE_KEYS)):
            found[first(message, "sAMAccountName").lower()] = message
    operations = []
    for number in range(1, users + 1):
        wanted = common.user_attributes(number, domain)
        message = found.get(common.user_name(number))
        if message is None:
            operations.append(("add", dict(wanted, dn=common.user_dn(env, number), objectClass="user")))
            stats["users_created"] += 1
            continue
        diff = ldb.Message(message.dn)
        for key in PROFILE_KEYS:
            if first(message, key) != wanted[key]:
                diff[key] = ldb.MessageElement(wanted[key], ldb.FLAG_MOD_REPLACE, key)
        if len(diff):
            operations.append(("modify", diff))
            stats["users_repaired"] += 1
    in_chunks(db, operations)

    # Every bench user of the first block is a member of its group: the
    # groups, and all their members, are inside the base DN of every size.
    present = {}
    for message in db.search(common.block_dn(env, common.SIZES[0]), scope=ldb.SCOPE_ONELEVEL,
                             expression="(&(objectClass=user)(sAMAccountName=bench*))", attrs=["sAMAccountName"]):
        present[int(first(message, "sAMAccountName")[len("bench"):])] = str(message.dn)
    members = dict((g, set()) for g in range(1, common.GROUPS + 1))
    for number, dn in present.items():
        members[common.group_of(number)].add(dn)
    groups = {}
    for message in db.search(common.groups_dn(env), scope=ldb.SCOPE_ONELEVEL, expression="(objectClass=group)",
                             attrs=["sAMAccountName", "member"]):
        groups[first(message, "sAMAccountName").lower()] = message
    operations = []
    for number in range(1, common.GROUPS + 1):
        name = common.group_name(number)
        wanted = members[number]
        message = groups.get(name)
        if message is None:
            add = {"dn": common.group_dn(env, number), "objectClass": "group", "sAMAccountName": name,
                   "mail": "%s@%s" % (name, domain), "description": "bench group %d" % number}
            if wanted:
                add["member"] = sorted(wanted)
            operations.append(("add", add))
            stats["groups_created"] += 1
            continue
        have = dict((str(v).lower(), str(v)) for v in message["member"]) if "member" in message else {}
        wanted_lower = dict((dn.lower(), dn) for dn in wanted)
        extra = [have[k] for k in have if k not in wanted_lower]
        missing = [wanted_lower[k] for k in wanted_lower if k not in have]
        if extra or missing:
            diff = ldb.Message(message.dn)
            if extra:
                diff["member-"] = ldb.MessageElement(extra, ldb.FLAG_MOD_DELETE, "member")
            if missing:
                diff["member+"] = ldb.MessageElement(missing, ldb.FLAG_MOD_ADD, "member")
            operations.append(("modify", diff))
            stats["groups_repaired"] += 1
    in_chunks(db, operations)
    stats["users_present"] = len(found) + stats["users_created"]  # in the blocks of this size
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, choices=common.SIZES, default=common.SIZES[0])
    args = parser.parse_args()
    env = common.load_env()
    started = time.monotonic()
    stats = seed(env, args.users)
    stats["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(stats, sort_keys=True))


if __name__ == "__main__":
    main()
