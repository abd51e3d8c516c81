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

# What a replicated AD object becomes: a mailbox, or a mail alias account.
USER = "user"
GROUP = "group"

REMOVED_KEEP = "keep"
REMOVED_DISABLE = "disable"
REMOVED_DELETE = "delete"

# Without an explicit max_deletes a run may disable or delete at most this
# share of the managed accounts, and never fewer than DEFAULT_MIN_DELETES:
# small directories stay usable, a filter mistake on a large one stops.
DEFAULT_MAX_DELETES_PERCENT = 10
DEFAULT_MIN_DELETES = 10

# Shared by every account with no kept address instead of an empty
# frozenset of 216 bytes each (tens of thousands in a full run).
NO_KEPT = frozenset()


class ManagedAccount(object):
    """What the backend holds for one object replication manages."""

    __slots__ = ("guid", "address", "fields", "removed_since", "kind", "kept")

    def __init__(self, guid, address, fields, removed_since=None, kind=USER, kept=()):
        self.guid = guid
        self.kind = kind
        # former addresses kept as aliases after renames (keep_old_address)
        self.kept = frozenset(kept) if kept else NO_KEPT
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

    An incremental run reads only part of the store (`scoped`): the
    accounts of the objects it read or saw leave, those pending deletion,
    and those holding an address it wants. Every other managed account
    stays as it is, so the planner never needs to see it; `total` still
    counts them all, for the deletion limit and the unchanged count.
    """

    def __init__(self, managed, taken_addresses, alias_owner=None, total=None):
        self.managed = managed
        self.taken_addresses = taken_addresses
        self.alias_owner = alias_owner or {}
        # a scoped read counts every managed account apart
        self._total = total
        # scoped: the addresses a run asks for that managed accounts it did
        # not read hold (address -> GUID); they keep them
        self.outside_holders = {}

    @property
    def scoped(self):
        return self._total is not None

    @property
    def total(self):
        return len(self.managed) if self._total is None else max(self._total, len(self.managed))

    def merge(self, other):
        """Add the accounts of another scoped read of the same store."""
        self.managed.update(other.managed)
        self.alias_owner.update(other.alias_owner)


def share_values(managed, account):
    """Point the stored fields of `managed` at the equal values of the wanted `account`; return `managed`.

    A full run holds every account twice, as AD wants it and as the store
    has it, mostly with the same text: a store read shares it as it goes,
    and its own copies never pile up (peak memory of a full run over a
    populated store). Nothing compares differently.
    """
    fields = managed.fields
    if account is None or fields is None:
        return managed
    if managed.address == account.address:
        managed.address = account.address
    if fields.get("address") == account.address:
        fields["address"] = account.address
    for field, value in account.profile.items():
        if fields.get(field) == value:
            fields[field] = value
    return managed


class Change(object):
    """One account's change. `before`/`after` hold managed fields only."""

    __slots__ = ("kind", "guid", "address", "before", "after", "account", "reason", "keep_old_address",
                 "object_type", "kept", "recreate")

    def __init__(self, kind, guid, address, before=None, after=None, account=None, reason=None,
                 object_type=USER):
        self.kind = kind
        self.object_type = object_type
        self.guid = guid
        # the address the account has now (after the change for a create)
        self.address = address
        self.before = before
        self.after = after
        self.account = account
        self.reason = reason
        # a rename leaves the old address as an alias of the account
        self.keep_old_address = False
        # the former addresses to remember as kept, when they change
        self.kept = None
        # a create for an object replication already anchors (its account
        # was removed by hand): the writer clears what is left of it first
        self.recreate = False

    @property
    def new_address(self):
        return self.after["address"] if self.after else None

    def as_dict(self):
        result = {"kind": self.kind, "object": self.object_type, "guid": self.guid, "address": self.address,
                  "before": self.before, "after": self.after}
        if self.reason:
            result["reason"] = self.reason
        if self.keep_old_address:
            result["keep_old_address"] = True
        return result

    def as_diff(self):
        return {
            "before_header": "%s %s (%s)" % (self.object_type, self.address, self.kind),
            "after_header": "%s %s (%s)" % (self.object_type, self.new_address or self.address, self.kind),
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
        # incremental runs: how users removed from AD were found,
        # "tombstones" or "scan"
        self.removals = None

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
               keep_old_address=False, groups=None):
    """Compare and decide; never reads or writes anything.

    `stored_form` turns desired fields into the form the backend keeps them
    in (OpenLDAP's mandatory `sn`, say), so equal accounts compare equal.
    With on_removed=delete, an account gone from AD is disabled and marked
    first, and deleted once `delete_after_days` have passed since the mark.
    `groups` (desired.DesiredAliases) adds the mail aliases; their members
    are resolved against the accounts as this plan leaves them.
    """
    planner = _Planner(current, now or datetime.datetime.now().replace(microsecond=0), desired.skipped)
    planner.remove_users(desired, on_removed, delete_after_days)
    planner.plan(USER, desired.accounts, desired.unread, stored_form, keep_old_address)
    planner.drop_rename_cycles()
    if groups is not None:
        skipped_members = []
        final_users = planner.final_states()  # users are planned before groups
        aliases = dict((guid, alias.fields(resolve_members(alias, final_users, groups, current, skipped_members)))
                       for guid, alias in groups.aliases.items())
        planner.skipped.extend(groups.skipped + skipped_members)
        planner.remove_groups(groups.aliases, on_removed, held=groups.held)
        planner.plan(GROUP, dict((guid, groups.aliases[guid]) for guid in aliases), (), None, False,
                     fields=aliases)
    # Managed accounts a scoped read left out are unchanged by definition,
    # and so are the aliases when no group was read.
    unchanged = planner.unchanged + current.total - len(current.managed)
    if groups is None:
        unchanged += len([managed for managed in current.managed.values() if managed.kind == GROUP])
    return Plan(planner.changes, planner.skipped, unchanged, planner.marks)


def resolve_members(alias, final_users, groups, current, notes):
    """The addresses an alias should forward to, as this plan leaves the accounts.

    Only active accounts replication manages and addresses that already
    exist in the domain are written; every other member is reported.
    """
    addresses = set()
    for dn in sorted(alias.member_dns):
        guid = groups.dn_to_guid.get(dn)
        if guid is not None:
            state = final_users.get(guid)
            if state is None:
                notes.append(Skip(dn, guid, None, "member of %s left out: no replicated mail account" % alias.address))
            elif state[1]:
                addresses.add(state[0])
            continue  # a disabled member stops receiving list mail
        mail = groups.outside_mail.get(dn)
        if mail is not None and mail in current.taken_addresses:
            addresses.add(mail)
        else:
            notes.append(Skip(dn, None, mail, "member of %s left out: not a mail account in this domain"
                              % alias.address))
    return sorted(addresses)


class _Planner(object):
    """The running decisions of one plan, shared by users and groups."""

    def __init__(self, current, now, skipped):
        self.current = current
        self.now = now
        self.changes, self.marks = [], []
        self.skipped = list(skipped)
        self.unchanged = 0
        self.managed_addresses = set(m.address for m in current.managed.values())
        self.removals = {}
        # who holds each address once the plan is applied; accounts the
        # plan does not see keep theirs
        self.holders = dict((address, guid) for address, guid in current.outside_holders.items()
                            if guid not in current.managed)
        self.managed_addresses.update(self.holders)
        self.final = {}

    def _managed(self, kind):
        return sorted(((g, m) for g, m in self.current.managed.items() if m.kind == kind),
                      key=lambda item: item[1].address)

    def _remove(self, kind, wanted, unread, decide):
        for guid, managed in self._managed(kind):
            if guid in wanted or managed.fields is None:
                continue
            if guid in unread:
                self.unchanged += 1
                self._hold(guid, managed.address, managed.fields["active"])
                continue
            change = decide(managed)
            self.removals[guid] = change
            if change is None:
                self.unchanged += 1
                self._hold(guid, managed.address, managed.fields["active"])
            elif change.kind != DELETE:
                # an account removed from AD keeps its address until deleted
                self._hold(guid, managed.address, change.after["active"])
            self.changes.extend([change] if change is not None else [])

    def remove_users(self, desired, on_removed, delete_after_days):
        self._remove(USER, desired.accounts, desired.unread,
                     lambda managed: _removal(managed, on_removed, self.now, delete_after_days, self.marks))

    def remove_groups(self, wanted, on_removed, held=()):
        # Aliases hold no mail: a group gone from AD is deleted at once,
        # unless the resource keeps what AD removed.
        def decide(managed):
            if on_removed == REMOVED_KEEP:
                return None
            return Change(DELETE, managed.guid, managed.address, dict(managed.fields), None,
                          reason="group no longer in Active Directory", object_type=GROUP)
        self._remove(GROUP, wanted, held, decide)

    def _hold(self, guid, address, active):
        self.holders[address] = guid
        self.final[guid] = (address, active)

    def drop_rename_cycles(self):
        """Leave out renames that take each other's addresses (A -> B's, B -> A's).

        No order of the renames frees an address before it is taken, and a
        writer that tried would fail the whole run, and every run after it.
        The accounts keep their addresses until AD breaks the cycle.
        """
        renames = [change for change in self.changes if change.kind == RENAME]
        by_old_address = dict((change.address, change) for change in renames)
        cyclic = []
        for change in renames:
            path, step = [], change
            while step is not None and all(step is not seen for seen in path):
                path.append(step)
                step = by_old_address.get(step.after["address"])
            if step is change:
                cyclic.append(change)
        for change in cyclic:
            others = ", ".join(sorted(other.address for other in cyclic if other is not change))
            self.changes.remove(change)
            self._hold(change.guid, change.address, change.before["active"])
            self.skipped.append(Skip(change.account.dn if change.account is not None else None, change.guid,
                                     change.after["address"],
                                     "cannot rename %s: the new addresses of %s and this account are each other's "
                                     "(a swap); the accounts are left unchanged until one of them takes an unused "
                                     "address in AD" % (change.address, others)))

    def final_states(self):
        """(address, active) of every object planned so far, as the plan leaves it.

        The planner's own map, not a copy: read it before planning more.
        """
        return self.final

    def conflict(self, address, guid):
        holder = self.holders.get(address)
        if holder is not None and holder != guid:
            return "address still held by another replicated account"
        owner = self.current.alias_owner.get(address)
        if owner is not None:
            return None if owner == guid else "address is an alias of another replicated account"
        if address in self.current.taken_addresses and address not in self.managed_addresses:
            return "address already used by an account replication does not manage"
        return None

    def _claim_aliases(self, guid, obj, after, managed, keep_old_address):
        """Settle the extra addresses an account ends with; returns the kept set."""
        kept = set(managed.kept) if managed is not None else set()
        if keep_old_address and managed is not None and managed.fields is not None \
                and managed.address != after["address"]:
            kept.add(managed.address)
        kept.discard(after["address"])
        aliases = set(after["aliases"]) | kept
        for alias in sorted(aliases):
            reason = self.conflict(alias, guid)
            if reason:
                aliases.discard(alias)
                kept.discard(alias)
                self.skipped.append(Skip(obj.dn, guid, alias, "extra address not written: %s" % reason))
        for alias in aliases:
            self.holders[alias] = guid
        after["aliases"] = sorted(aliases)
        return kept or NO_KEPT

    def plan(self, kind, objects, unread, stored_form, keep_old_address, fields=None):
        for guid, obj in sorted(objects.items(), key=lambda item: item[1].address):
            after = fields[guid] if fields is not None else obj.as_dict()
            if stored_form is not None:
                after = stored_form(after)
            managed = self.current.managed.get(guid)
            kept = None
            if "aliases" in after:
                kept = self._claim_aliases(guid, obj, after, managed, keep_old_address)
            if managed is not None and managed.removed_since is not None:
                self.marks.append(RemovalMark(guid, managed.address, None))
            exists = managed is not None and managed.fields is not None
            same_kept = kept is None or kept == set(managed.kept if managed is not None else ())
            if exists and dict((key, managed.fields.get(key)) for key in after) == after and same_kept:
                self._hold(guid, after["address"], after["active"])
                self.unchanged += 1
                continue
            own_address = managed.address if managed is not None else None
            reason = self.conflict(after["address"], guid) if after["address"] != own_address else None
            if reason:
                if exists:
                    reason = "cannot rename %s: %s" % (managed.address, reason)
                    self._hold(guid, managed.address, managed.fields["active"])
                self.skipped.append(Skip(obj.dn, guid, after["address"], reason))
                continue
            self._hold(guid, after["address"], after["active"])
            if exists:
                before = dict((key, managed.fields.get(key)) for key in after)
                change = Change(_kind_of_update(before, after), guid, managed.address, before, after, obj,
                                object_type=kind)
                # With managed extra addresses the kept one is among them;
                # otherwise the writer adds it on its own.
                change.keep_old_address = keep_old_address and change.kind == RENAME and kept is None
                if change.keep_old_address:
                    self.holders[managed.address] = guid
            else:
                # A new object, or a managed one whose account was removed
                # by hand: either way the account is created.
                change = Change(CREATE, guid, after["address"], None, after, obj, object_type=kind)
                change.recreate = managed is not None
            change.kept = kept
            self.changes.append(change)


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
    ordered = sorted(changes, key=lambda change: rank.get(change.kind, 2))
    renames = [change for change in ordered if change.kind == RENAME]
    # A rename may take the address another rename of the same run frees
    # (A -> new, B -> A's old address). Applied the other way round, the
    # SQL transaction hits the unique keys and OpenLDAP the existing DN,
    # and every later run fails the same way: the freeing rename goes first.
    freeing = dict((change.address, change) for change in renames)
    placed, visiting, chained = set(), set(), []

    def place(change):
        if id(change) in placed or id(change) in visiting:
            return  # a cycle of renames has no order that frees an address first
        visiting.add(id(change))
        blocker = freeing.get(change.after["address"])
        if blocker is not None and blocker is not change:
            place(blocker)
        visiting.discard(id(change))
        placed.add(id(change))
        chained.append(change)

    for change in renames:
        place(change)
    return [change for change in ordered if change.kind == DELETE] + chained + \
        [change for change in ordered if change.kind not in (DELETE, RENAME)]


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
