#!/usr/bin/python3
"""Bulk writes and reads of the lab AD through Samba's own database, for tests that need thousands of objects.

Run with the system python3 (Samba's bindings are not in the venv) while
the DC runs: the DC serves the same sam.ldb and sees every committed
transaction. One LDAP add costs the DC about 50 ms (a transaction each),
so 2,000 users over LDAP take minutes; through samdb in a few
transactions they take seconds, and every object still gets its
objectGUID and uSNChanged as from an LDAP add.

One JSON request on stdin, one JSON answer on stdout:
  {"op": "write", "add": [{"dn":..., attr: value|[values]}], "modify": [{"dn":..., "replace": {attr: [..]}}],
   "delete": [leaf dn, ...]}             every change in one transaction per CHUNK
  {"op": "read", "base": dn}             users and groups under `base`
  {"op": "remove", "base": dn}           the subtree, in one transaction
"""

import json
import os
import sys
import uuid

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab"))
from labenv import read_env  # noqa: E402  (the lab's own, stdlib-only reader)

# The DC waits for the database lock while a transaction is open: keep each short.
CHUNK = 1000


def open_samdb(env, batch):
    lp = LoadParm()
    lp.load(env["SAMBA_SMB_CONF"])
    # batch_mode drops the per-operation undo log, which deleting an object
    # named in a group's member list needs: with it, such a delete fails the
    # whole transaction. Plain deletes are cheap only in batch mode.
    return SamDB(url=os.path.join(env["SAMBA_PRIVATE_DIR"], "sam.ldb"), lp=lp,
                 session_info=system_session(), options=["batch_mode:1"] if batch else [])


def in_transactions(db, operations):
    for start in range(0, len(operations), CHUNK):
        db.transaction_start()
        try:
            for apply in operations[start:start + CHUNK]:
                apply()
        except Exception:
            db.transaction_cancel()
            raise
        db.transaction_commit()


def write(db, request):
    operations = []
    for dn in request.get("delete", ()):
        operations.append(lambda dn=dn: db.delete(dn))
    for entry in request.get("add", ()):
        operations.append(lambda entry=entry: db.add(entry))
    for change in request.get("modify", ()):
        message = ldb.Message(ldb.Dn(db, change["dn"]))
        for attr, values in change["replace"].items():
            message[attr] = ldb.MessageElement([str(v) for v in values], ldb.FLAG_MOD_REPLACE, attr)
        operations.append(lambda message=message: db.modify(message))
    in_transactions(db, operations)
    return {"written": len(operations)}


def remove(env, base):
    """Delete the subtree: the groups without batch mode, then every leaf in it."""
    db = open_samdb(env, batch=False)
    groups = [str(m.dn) for m in db.search(base, scope=ldb.SCOPE_SUBTREE, expression="(objectClass=group)",
                                           attrs=["1.1"])]
    empty = []
    for dn in groups:
        message = ldb.Message(ldb.Dn(db, dn))
        message["member"] = ldb.MessageElement([], ldb.FLAG_MOD_REPLACE, "member")
        empty.append(lambda message=message: db.modify(message))
    in_transactions(db, empty + [lambda dn=dn: db.delete(dn) for dn in groups])
    db = open_samdb(env, batch=True)
    found = db.search(base, scope=ldb.SCOPE_SUBTREE, attrs=["1.1"])
    dns = sorted((str(message.dn) for message in found), key=lambda dn: -len(ldb.Dn(db, dn)))
    in_transactions(db, [lambda dn=dn: db.delete(dn) for dn in dns])
    return {"removed": len(groups) + len(dns)}


def values(message, attr):
    return [str(v) for v in message[attr]] if attr in message else []


def read(db, base):
    users, groups = [], []
    for message in db.search(base, scope=ldb.SCOPE_SUBTREE,
                             expression="(|(sAMAccountType=805306368)(objectClass=group))",
                             attrs=["objectGUID", "objectClass", "userPrincipalName", "userAccountControl",
                                    "proxyAddresses", "mail", "member"]):
        item = {"dn": str(message.dn), "guid": str(uuid.UUID(bytes_le=bytes(message["objectGUID"][0])))}
        if "group" in values(message, "objectClass"):
            item.update(mail=(values(message, "mail") or [None])[0], member=values(message, "member"))
            groups.append(item)
        else:
            item.update(upn=(values(message, "userPrincipalName") or [None])[0],
                        uac=int(values(message, "userAccountControl")[0]), proxy=values(message, "proxyAddresses"))
            users.append(item)
    return {"users": users, "groups": groups}


def main():
    request = json.load(sys.stdin)
    env = read_env()
    if request["op"] == "write":
        answer = write(open_samdb(env, batch=not request.get("delete")), request)
    elif request["op"] == "read":
        answer = read(open_samdb(env, batch=False), request["base"])
    elif request["op"] == "remove":
        answer = remove(env, request["base"])
    else:
        raise SystemExit("unknown op %r" % request["op"])
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
