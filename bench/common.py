"""What the benchmark's scripts share: the lab env, the seeded layout, names.

Standard library only: imported by the orchestrator and the measured
children (the project's venv) and by the AD seeder (the system python3
that has Samba's bindings).
"""

import os
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(BENCH_DIR), "tests", "lab"))
from labenv import LAB_DIR, ROOT, read_env  # noqa: E402,F401  (the lab's own, stdlib-only reader)

COLLECTIONS = os.path.join(ROOT, ".collections")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
SYSTEM_PYTHON = "/usr/bin/python3"
RESULTS_DIR = os.path.join(BENCH_DIR, "results")

SIZES = (10000, 50000)
GROUPS = 500
# Every resource and scratch name the bench creates starts with this, so
# leftovers of an interrupted run can be found and removed.
PREFIX = "bench-"
# Where the floor writes its rows and entries: never a domain Postfix serves.
FLOOR_DOMAIN = "floor.bench.invalid"
FLOOR_RESOURCE = PREFIX + "floor"

# The seeded layout, under the lab's AD base DN. The users of a size are
# the users of the smaller sizes plus one more block, so seeding 50,000
# after 10,000 only adds 40,000, and each size is one base DN.
#   OU=Bench
#     OU=Users-10000   bench00001 .. bench10000
#       OU=Groups      benchgrp001 .. benchgrp500, mail benchgrpNNN@<domain>:
#                      user i of this block in group (i-1) % 500 + 1 (20 members each)
#     OU=Users-50000   bench10001 .. bench50000
# Both sizes see the same 500 groups, every member inside the base DN.
BENCH_OU = "OU=Bench"
USER_FILTER = "(sAMAccountType=805306368)"
# AD attributes replication reads: the anchor, the disabled bit, the address
# (userPrincipalName by default) and the default attribute_map for the
# profile fields each store keeps (OpenLDAP also keeps `title`).
READ_ATTRIBUTES = ["objectGUID", "userAccountControl", "userPrincipalName", "displayName", "givenName", "sn",
                   "employeeID", "mobile", "telephoneNumber"]
READ_ATTRIBUTES_LDAP = READ_ATTRIBUTES + ["title"]

# The 40 changes of run (c), by user number (all in the first block).
RENAMED = range(1, 11)
DISABLED = range(11, 21)
REMOVED = range(21, 31)
REGROUPED = range(31, 41)


def load_env():
    return read_env()


def bench_dn(env):
    return "%s,%s" % (BENCH_OU, env["AD_BASE_DN"])


def block_of(number):
    """The size whose block holds user `number`."""
    for size in SIZES:
        if number <= size:
            return size
    raise ValueError("user %d is beyond the largest size %d" % (number, SIZES[-1]))


def block_dn(env, size):
    return "OU=Users-%d,%s" % (size, bench_dn(env))


def groups_dn(env):
    return "OU=Groups,%s" % block_dn(env, SIZES[0])


def base_dn_for(env, users):
    """The base DN whose subtree holds exactly `users` bench users."""
    if users == SIZES[0]:
        return block_dn(env, SIZES[0])
    if users == SIZES[-1]:
        return bench_dn(env)
    raise ValueError("users must be one of %s" % ", ".join(str(s) for s in SIZES))


def user_name(number):
    return "bench%05d" % number


def user_address(number, domain):
    return "%s@%s" % (user_name(number), domain)


def renamed_address(number, domain):
    return "%s.renamed@%s" % (user_name(number), domain)


def user_dn(env, number):
    return "CN=%s,%s" % (user_name(number), block_dn(env, block_of(number)))


def group_name(number):
    return "benchgrp%03d" % number


def group_dn(env, number):
    return "CN=%s,%s" % (group_name(number), groups_dn(env))


def group_of(number):
    return (number - 1) % GROUPS + 1


def user_attributes(number, domain):
    """The canonical AD attributes of bench user `number` (all text)."""
    name = user_name(number)
    return {
        "sAMAccountName": name,
        "userPrincipalName": user_address(number, domain),
        "displayName": "Bench User %05d" % number,
        "givenName": "Bench",
        "sn": "User%05d" % number,
        "employeeID": "E%07d" % number,
        "mobile": "+1 555 1%06d" % number,
        "telephoneNumber": "+1 555 2%06d" % number,
        "title": "Engineer %d" % (number % 7),
        "userAccountControl": "512",
    }
