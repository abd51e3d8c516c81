# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state against current state: the plan of account changes (no I/O).

The plan is a plain value. Check mode, diff, the module's return, reports
and the backend writers all read the same plan, so what `--check` shows is
exactly what a real run writes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math

from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import (
    ConfigError,
    SafetyLimitError,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import Skip

CREATE = "create"
UPDATE = "update"
RENAME = "rename"
DISABLE = "disable"
ENABLE = "enable"
DELETE = "delete"
KINDS = (CREATE, UPDATE, RENAME, DISABLE, ENABLE, DELETE)

# The summary names each kind by its past tense, as the module returns it.
SUMMARY_KEYS = {
    CREATE: "created", UPDATE: "updated", RENAME: "renamed",
    DISABLE: "disabled", ENABLE: "enabled", DELETE: "deleted",
}

REMOVED_KEEP = "keep"
REMOVED_DISABLE = "disable"
REMOVED_DELETE = "delete"

# Without an explicit max_deletes a run may disable or delete at most this
# share of the managed accounts, and never fewer than DEFAULT_MIN_DELETES:
# small directories stay usable, a filter mistake on a large one stops.
DEFAULT_MAX_DELETES_PERCENT = 10
DEFAULT_MIN_DELETES = 10


class ManagedAccount(object):
    """What the backend holds for one object replication manages."""

    __slots__ = ("guid", "address", "fields", "removed_since")

    def __init__(self, guid, address, fields, removed_since=None):
        self.guid = guid
        self.address = address
        # the same keys as MailAccount.as_dict(), or None if the account is gone
        self.fields = fields
        # when replication first found the object gone from AD (on_removed=delete)
        self.removed_since = removed_since


class CurrentState(object):
    """The backend's view: managed objects by GUID, and every address in use.

    `alias_owner` maps the extra addresses of managed accounts (an old
    address kept on rename) to the GUID owning them: an account may take
    back its own alias, nobody else may.
    """

    def __init__(self, managed, taken_addresses, alias_owner=None):
        self.managed = managed
        self.taken_addresses = taken_addresses
        self.alias_owner = alias_owner or {}


class Change(object):
    """One account's change. `before`/`after` hold managed fields only."""

    __slots__ = ("kind", "guid", "address", "before", "after", "account", "reason", "keep_old_address")

    def __init__(self, kind, guid, address, before=None, after=None, account=None, reason=None):
        self.kind = kind
        self.guid = guid
        # the address the account has now (after the change for a create)
        self.address = address
        self.before = before
        self.after = after
        self.account = account
        self.reason = reason
        # a rename leaves the old address as an alias of the account
        self.keep_old_address = False

    @property
    def new_address(self):
        return self.after["address"] if self.after else None

    def as_dict(self):
        result = {"kind": self.kind, "guid": self.guid, "address": self.address,
                  "before": self.before, "after": self.after}
        if self.reason:
            result["reason"] = self.reason
        if self.keep_old_address:
            result["keep_old_address"] = True
        return result

    def as_diff(self):
        return {
            "before_header": "%s (%s)" % (self.address, self.kind),
            "after_header": "%s (%s)" % (self.new_address or self.address, self.kind),
            "before": _render(self.before),
            "after": _render(self.after),
        }


def _render(fields):
    if not fields:
        return ""
    return "".join("%s: %s\n" % (key, fields[key]) for key in sorted(fields))


class RemovalMark(object):
    """Bookkeeping for the deletion grace period: when an object left AD."""

    __slots__ = ("guid", "address", "removed_since")

    def __init__(self, guid, address, removed_since):
        self.guid = guid
        self.address = address
        # None clears the mark: the object is back in AD
        self.removed_since = removed_since


class Plan(object):
    def __init__(self, changes, skipped, unchanged, marks=()):
        self.changes = changes
        self.skipped = skipped
        self.unchanged = unchanged
        self.marks = list(marks)
        # set by the pipeline: "full" or "incremental", and the cursor to
        # store once the plan is written
        self.mode = "full"
        self.cursor = None

    def of_kind(self, kind):
        return [change for change in self.changes if change.kind == kind]

    @property
    def summary(self):
        counts = dict((SUMMARY_KEYS[kind], 0) for kind in KINDS)
        for change in self.changes:
            counts[SUMMARY_KEYS[change.kind]] += 1
        counts["unchanged"] = self.unchanged
        counts["skipped"] = len(self.skipped)
        return counts

    def __bool__(self):
        return bool(self.changes or self.marks)

    __nonzero__ = __bool__


def _kind_of_update(before, after):
    """The kind an existing account's change is counted as."""
    if before["address"] != after["address"]:
        return RENAME
    if before["active"] and not after["active"]:
        return DISABLE
    if not before["active"] and after["active"]:
        return ENABLE
    return UPDATE


def build_plan(desired, current, on_removed=REMOVED_DISABLE, stored_form=None, now=None, delete_after_days=0,
               keep_old_address=False):
    """Compare and decide; never reads or writes anything.

    `stored_form` turns desired fields into the form the backend keeps them
    in (OpenLDAP's mandatory `sn`, say), so equal accounts compare equal.
    With on_removed=delete, an object gone from AD is disabled and marked
    first, and deleted once `delete_after_days` have passed since the mark.
    """
    now = now or datetime.datetime.now().replace(microsecond=0)
    changes, marks = [], []
    skipped = list(desired.skipped)
    unchanged = 0
    managed_addresses = set(m.address for m in current.managed.values())

    removals = {}
    for guid, managed in sorted(current.managed.items(), key=lambda item: item[1].address):
        if guid in desired.accounts or managed.fields is None:
            continue
        if guid in desired.unread:
            unchanged += 1
            continue
        removals[guid] = _removal(managed, on_removed, now, delete_after_days, marks)
    # Who holds each address once the plan is applied: an account removed
    # from AD keeps its address until it is actually deleted.
    holders = dict((current.managed[guid].address, guid) for guid, change in removals.items()
                   if change is None or change.kind != DELETE)

    def conflict(address, guid):
        holder = holders.get(address)
        if holder is not None and holder != guid:
            return "address still held by another replicated account"
        owner = current.alias_owner.get(address)
        if owner is not None:
            return None if owner == guid else "address is an alias of another replicated account"
        if address in current.taken_addresses and address not in managed_addresses:
            return "address already used by an account replication does not manage"
        return None

    for guid, account in sorted(desired.accounts.items(), key=lambda item: item[1].address):
        after = account.as_dict()
        if stored_form is not None:
            after = stored_form(after)
        managed = current.managed.get(guid)
        if managed is not None and managed.removed_since is not None:
            marks.append(RemovalMark(guid, managed.address, None))
        exists = managed is not None and managed.fields is not None
        if exists and dict((key, managed.fields.get(key)) for key in after) == after:
            holders[after["address"]] = guid
            unchanged += 1
            continue
        own_address = managed.address if managed is not None else None
        reason = conflict(after["address"], guid) if after["address"] != own_address else None
        if reason:
            if exists:
                reason = "cannot rename %s: %s" % (managed.address, reason)
                holders[managed.address] = guid
            skipped.append(Skip(account.dn, guid, after["address"], reason))
            continue
        holders[after["address"]] = guid
        if exists:
            before = dict((key, managed.fields.get(key)) for key in after)
            change = Change(_kind_of_update(before, after), guid, managed.address, before, after, account)
            change.keep_old_address = keep_old_address and change.kind == RENAME
            if change.keep_old_address:
                holders[managed.address] = guid
            changes.append(change)
        else:
            # A new object, or a managed one whose account was removed by
            # hand: either way the account is created.
            changes.append(Change(CREATE, guid, after["address"], None, after, account))

    for change in removals.values():
        if change is None:
            unchanged += 1
        else:
            changes.append(change)
    return Plan(changes, skipped, unchanged, marks)


def _removal(managed, on_removed, now, delete_after_days, marks):
    """The change for an account whose object left AD, or None."""
    fields = managed.fields
    if on_removed == REMOVED_KEEP:
        return None
    if on_removed == REMOVED_DELETE:
        since = managed.removed_since
        if since is None:
            since = now
            marks.append(RemovalMark(managed.guid, managed.address, now))
        due = since + datetime.timedelta(days=delete_after_days)
        if due <= now:
            return Change(DELETE, managed.guid, managed.address, dict(fields), None,
                          reason="no longer in Active Directory since %s" % since)
        if not fields["active"]:
            return None
        return Change(DISABLE, managed.guid, managed.address, dict(fields), dict(fields, active=False),
                      reason="no longer in Active Directory; deleted after %s" % due)
    if not fields["active"]:
        return None
    return Change(DISABLE, managed.guid, managed.address, dict(fields), dict(fields, active=False),
                  reason="no longer in Active Directory")


def apply_order(changes):
    """The order writers apply changes in: deletions and renames free
    addresses that later changes may take."""
    rank = {DELETE: 0, RENAME: 1}
    return sorted(changes, key=lambda change: rank.get(change.kind, 2))


def parse_max_deletes(value):
    """(count, percent) from `25`, `'25'` or `'10%'`; (None, None) for the default."""
    if value is None or value == "":
        return None, None
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return None, percent
        count = int(text)
        if count < 0:
            raise ValueError
        return count, None
    except ValueError:
        raise ConfigError("max_deletes must be a non-negative count or a percentage such as '10%%', got %r" % value)


def removal_limit(max_deletes, managed_count):
    count, percent = parse_max_deletes(max_deletes)
    if count is not None:
        return count
    if percent is not None:
        return int(math.ceil(managed_count * percent / 100.0))
    return max(DEFAULT_MIN_DELETES, int(math.ceil(managed_count * DEFAULT_MAX_DELETES_PERCENT / 100.0)))


def check_safety(plan, max_deletes, managed_count):
    """Refuse a plan that disables or deletes more accounts than allowed."""
    removals = [change for change in plan.changes if change.kind in (DISABLE, DELETE)]
    limit = removal_limit(max_deletes, managed_count)
    if len(removals) > limit:
        raise SafetyLimitError(
            "refusing to disable or delete %d of %d managed accounts: the limit (max_deletes) is %d; "
            "nothing was written. Check the AD filters and base DN, or raise max_deletes for this run."
            % (len(removals), managed_count, limit))
