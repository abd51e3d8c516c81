# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication pipeline, used by ad_replicate and the systemd service.

AD entries -> desired state -> plan -> backend writer, in one direction.
AD is read completely before any plan is made, so a failed or partial
read stops the run before a single account could look removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_connection, ad_reader
from ansible_collections.mailsync.iredmail.plugins.module_utils.batches import batches
from ansible_collections.mailsync.iredmail.plugins.module_utils.cursor import Cursor, settings_fingerprint
from ansible_collections.mailsync.iredmail.plugins.module_utils.desired import (
    contested_addresses,
    desired_accounts,
    desired_aliases,
    leave_out_shared_addresses,
    user_addresses,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import (
    BackendError,
    ConfigError,
    DirectoryError,
    TransientBackendError,
)

from ansible_collections.mailsync.iredmail.plugins.module_utils.model import (
    AddressError,
    DirectoryUser,
    domain_of,
    normalise_address,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.plan import GROUP, USER, build_plan, check_safety

TRANSIENT_ATTEMPTS = 3
# The attributes of a user entry a full run has already turned into an account.
NO_ATTRIBUTES = {}


def open_backend(backend_options):
    """Connect to the account store the resource names."""
    kind = backend_options["type"]
    if kind == "mysql":
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.mysql import MySQLBackend
        return MySQLBackend.connect(**backend_options)
    if kind == "pgsql":
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.pgsql import PgSQLBackend
        return PgSQLBackend.connect(**backend_options)
    if kind == "ldap":
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.ldap import LDAPBackend
        return LDAPBackend.connect(**backend_options)
    raise ConfigError("unknown backend type %s" % kind)


def open_directory(resource):
    return ad_connection.connect(
        resource.server_uri, resource.bind_dn, resource.bind_password,
        start_tls=resource.start_tls, validate_certs=resource.validate_certs,
        ca_cert=resource.ca_cert, allow_insecure=resource.allow_insecure,
        timeout=resource.timeout)


class DirectoryRead(object):
    """What one run read from AD, and how it knows which users are still there.

    - full: `users` is every selected user;
    - incremental: `users` holds the changed ones; the others still in AD
      (`unread`) come from the deleted objects and moves among the changes
      (`removals` "tombstones") or from a GUID scan of the scope ("scan");
    - unchanged: nothing was written to the DC since the last run.
    """

    def __init__(self, users, dc, mode, unread=(), removals=None, present=None):
        self.users = users
        self.dc = dc
        self.mode = mode
        self.unread = frozenset(unread)
        self.removals = removals
        # scan mode: every selected user's GUID -> DN
        self.present = present
        # tombstones mode: what changed, and the GUIDs among it no longer
        # selected (deleted, moved out, filtered out, or no user at all)
        self.changes = ()
        self.gone = frozenset()
        # OUs and containers moved or renamed into the base DN
        self.inside = ()
        # a full run's accounts, made as soon as the users are read
        self.desired = None
        # groups (None when not replicated) and members found outside the scope
        self.groups = None
        self.outside = {}
        # the groups whose aliases this run decides on, read or found gone;
        # None when every group was read
        self.groups_decided = None
        # whether the groups a change touched cannot be told from the
        # changes (a deleted group or contact, very many changes): then
        # all are read
        self.all_groups = mode != "incremental" or removals == "scan"
        # whether the bind account can see deleted objects (kept in the cursor)
        self.tombstones = False
        # False when the changes show that no alias can differ from what the
        # last run wrote: no group, user or contact changed anywhere
        self.groups_may_differ = mode != "unchanged"

    def settle(self, current):
        """Take the managed users the store returned, less those seen leaving, as still in AD.

        A tombstones or unchanged run reads only the accounts it may touch
        (see plan.CurrentState); each user among them that no change
        removed is still selected, whether read or not.
        """
        if self.removals == "tombstones" or self.mode == "unchanged":
            self.unread = frozenset(guid for guid, managed in current.managed.items()
                                    if managed.kind == USER and managed.removed_since is None) - self.gone

    def in_scope(self):
        """GUIDs of every user the filter selects, read or not."""
        return self.unread | set(user.guid for user in self.users)

    def dn_to_guid(self):
        """Lower-cased DN -> GUID of every selected user a group may name.

        Members come with their GUIDs (extended DNs), so users this run did
        not read resolve as well as those it did.
        """
        in_scope = self.in_scope()
        mapping = {}
        for holder in list(self.groups or ()) + [obj for obj in self.outside.values() if obj.is_group]:
            for dn, guid in holder.member_guids.items():
                if guid in in_scope:
                    mapping[dn] = guid
        if self.present is not None:
            mapping.update((dn.lower(), guid) for guid, dn in self.present.items())
        mapping.update((user.dn.lower(), user.guid) for user in self.users)
        return mapping


# Options that decide which AD objects become which accounts: when one of
# them changes, unchanged AD objects may need writing, so the next run is full.
READ_SETTINGS = ("target_domain", "base_dn", "user_filter", "user_mail_attribute", "attribute_map",
                 "quota_attribute", "default_quota", "on_removed", "delete_after_days", "replicate_groups",
                 "proxy_addresses", "access_policy", "group_filter", "group_mail_attribute")

# Up to this many changed objects in the scope are read one by one (a
# base search each); more, and one filtered search of the scope is cheaper.
LOOKUP_LIMIT = 300


def read_directory(conn, resource, attributes, cursor, full, now):
    """The users the resource selects: all of them, or only those changed since `cursor`.

    A full read happens on the first run, when asked, when another DC (or
    a restored one) answers, and at least every full_sync_interval hours,
    which also retries objects skipped earlier and repairs accounts changed
    by hand in iRedMail. Groups are read later (read_run_groups), once the
    store has said which accounts the changes concern.
    """
    # Read before searching: whatever changes during the search gets a
    # higher USN and is read again by the next run.
    dc = ad_reader.read_dc_state(conn)
    incremental = (not full and cursor is not None
                   and cursor.allows_incremental(dc.invocation_id, fingerprint(resource), now,
                                                 resource.full_sync_interval))
    if incremental and dc.highest_usn == cursor.usn:
        # Nothing at all was written to this DC since the last run:
        # no user, group or membership can have changed.
        # (The cursor stays as it is, so the read's tombstone flag is moot.)
        return DirectoryRead([], dc, "unchanged")
    if not incremental:
        read = DirectoryRead(list(read_selected_users(conn, resource, resource.user_filter, attributes)),
                             dc, "full")
        read.tombstones = can_use_tombstones(resource, dc) and ad_reader.tombstones_visible(
            conn, dc.naming_context)
    elif cursor.tombstones and can_use_tombstones(resource, dc):
        read = read_changed_users(conn, resource, attributes, cursor, dc)
        read.tombstones = True
    else:
        users = list(read_selected_users(conn, resource, ad_reader.changed_since(resource.user_filter,
                                                                                 cursor.usn), attributes))
        present = ad_reader.read_guids(conn, resource.base_dn, resource.user_filter)
        read = DirectoryRead(users, dc, "incremental", unread=present, removals="scan", present=present)
    return read


def read_selected_users(conn, resource, user_filter, attributes, subtree=None):
    """The selected users under the base DN, or under `subtree` of it (which may be gone by now)."""
    return ad_reader.read_users(conn, subtree or resource.base_dn, user_filter, resource.user_mail_attribute,
                                attributes, proxy_addresses=resource.proxy_addresses,
                                missing_ok=subtree is not None)


def can_use_tombstones(resource, dc):
    """Whether removals can be found among the changes at all.

    A filter on memberOf selects users by group membership, a back link:
    joining or leaving a group changes no USN on the user, so only a scan
    sees a user the filter stopped selecting.
    """
    return (dc.naming_context is not None and ad_reader.is_under(resource.base_dn, dc.naming_context)
            and "memberof" not in resource.user_filter.lower())


def read_changed_users(conn, resource, attributes, cursor, dc):
    """An incremental read that finds removals among the changes, not by scanning every user.

    Every object changed since the cursor, tombstones included, is listed
    once across the domain. A changed object the filter no longer selects
    under the base DN (deleted, moved out, or changed) has left the scope;
    one it selects is read whole.
    """
    changes = ad_reader.read_changes(conn, dc.naming_context, cursor.usn)
    base = resource.base_dn
    # An OU or container renamed or moved carries its objects along without
    # changing their USNs: one now below the base DN may have brought users
    # in, one elsewhere may have taken users out. Those subtrees are read
    # whole. The base DN itself and what is above it are left out: moving
    # those makes the base DN vanish, which fails the run.
    containers = [change for change in changes if not change.deleted and change.is_container()
                  and not ad_reader.is_under(base, change.dn)]
    inside = [change for change in containers if ad_reader.is_under(change.dn, base)]
    inside = [change for change in inside
              if not any(other is not change and ad_reader.is_under(change.dn, other.dn) for other in inside)]
    in_base = [change for change in changes if not change.deleted and not change.is_container()
               and ad_reader.is_under(change.dn, base)
               and not any(ad_reader.is_under(change.dn, container.dn) for container in inside)]
    if len(in_base) > LOOKUP_LIMIT:
        users = list(read_selected_users(conn, resource, ad_reader.changed_since(resource.user_filter, cursor.usn),
                                         attributes))
    else:
        users = [user for user in (
            ad_reader.read_user(conn, change.dn, resource.user_filter, resource.user_mail_attribute, attributes,
                                proxy_addresses=resource.proxy_addresses) for change in in_base) if user is not None]
    for container in inside:
        users.extend(read_selected_users(conn, resource, resource.user_filter, attributes, subtree=container.dn))
    left = set(change.guid for change in changes)
    for container in containers:
        if not ad_reader.is_under(container.dn, base):
            left.update(ad_reader.read_subtree_guids(conn, container.dn))
    users = list(dict((user.guid, user) for user in users).values())
    read = DirectoryRead(users, dc, "incremental", removals="tombstones")
    read.changes = changes
    read.gone = frozenset(left - set(user.guid for user in users))
    read.inside = [container.dn for container in inside]
    # Which of hundreds of changes matter would cost more to find out
    # than reading every group.
    read.all_groups = len(in_base) > LOOKUP_LIMIT
    # Without a changed group, user or contact (deleted ones included) or
    # users carried in or out by a container, every alias holds what the
    # last run wrote. (Managed users seen leaving count too: settle_changes.)
    read.groups_may_differ = bool(inside) or any(change.deleted or change.may_name_mail() for change in changes)
    return read


def settle_changes(read, current):
    """What the store adds to a tombstones run's reading of the changes.

    A managed user that left changes the aliases that list it. A deleted
    object that was no managed user (a group, a contact, a user outside
    the scope) may have been a member: AD drops it from its groups
    without changing their USN, and nothing left names those groups, so
    every group is read.
    """
    read.settle(current)
    if read.removals != "tombstones":
        return
    if read.gone & set(current.managed):
        read.groups_may_differ = True
    for change in read.changes:
        if change.deleted and change.may_name_mail():
            managed = current.managed.get(change.guid)
            if managed is None or managed.kind != USER:
                read.all_groups = True
                return


# Addresses per search when looking for the objects that claim them.
CLAIMANTS_PER_SEARCH = 100


def claimed_addresses(users, resource):
    """Every address under the target domain the users ask for, primary or extra."""
    claimed = set()
    for user in users:
        address, extra = user_addresses(user, resource.target_domain, resource.proxy_addresses, [])
        if address is not None:
            claimed.add(address)
            claimed.update(extra or ())
    return claimed


def group_addresses(groups, resource):
    """The normalised addresses under the target domain the groups ask for."""
    addresses = set()
    for group in groups:
        try:
            address = normalise_address(group.mail)
        except AddressError:
            continue
        if domain_of(address) == resource.target_domain:
            addresses.add(address)
    return addresses


def read_claimants(conn, resource, attributes, read, addresses):
    """Read, besides the changed users, every user that claims one of `addresses`.

    An address two objects claim is written for neither
    (desired.leave_out_shared_addresses). Only changed users are read: an
    unchanged user claiming the address of a group, of a changed user or
    one contested at the last run must still count, or this run would
    write the address and the next full run take it away again.
    """
    known = set(user.guid for user in read.users)
    # The users already read would only come back again: left out of the
    # searches, unless they are too many to name in a filter.
    user_filter = resource.user_filter
    if len(known) <= ad_reader.GUIDS_PER_SEARCH:
        user_filter = ad_reader.without_guids(user_filter, known)
    for batch in batches(addresses, CLAIMANTS_PER_SEARCH):
        search = ad_reader.claiming(user_filter, resource.user_mail_attribute, batch, resource.proxy_addresses)
        for user in read_selected_users(conn, resource, search, attributes):
            if user.guid not in known:
                known.add(user.guid)
                read.users.append(user)


def read_run_groups(conn, resource, read, cursor, backend, current, claimed):
    """The groups this run decides on: every group, or those a change may have touched.

    A group's alias lists its members flattened, as they are after this
    run, so an alias must be written again when the group or any group
    nested in it changed membership (the group's USN moves with its own
    member list only), or when a member changed, left or came back.
    `claimed` holds the addresses the changed users ask for.
    """
    if read.all_groups or cursor is None or cursor.contested is None:
        read.groups = ad_reader.read_groups(conn, resource.base_dn, resource.group_filter,
                                            resource.group_mail_attribute)
        return
    base, group_filter, mail_attribute = resource.base_dn, resource.group_filter, resource.group_mail_attribute
    live = [change for change in read.changes if not change.deleted and change.may_name_mail()]
    wanted = set(change.guid for change in live if "group" in change.classes)
    # Users an OU brought in changed no USN: they count as changed here.
    members = set(change.guid for change in live) | set(user.guid for user in read.users)
    groups = {}
    for container in read.inside:
        # so did the groups it brought in
        for group in ad_reader.read_groups(conn, container, group_filter, mail_attribute, missing_ok=True):
            groups[group.guid] = group
            members.add(group.guid)
    wanted |= ad_reader.read_ancestors(conn, read.dc.naming_context, members)
    # AD keeps no link from a user that left to its former groups; the
    # aliases that list its address name them.
    left = [current.managed[guid].address for guid in read.gone
            if guid in current.managed and current.managed[guid].kind == USER]
    wanted |= backend.aliases_listing(resource.name, resource.target_domain, left)
    for batch in batches(wanted, ad_reader.GUIDS_PER_SEARCH):
        for group in ad_reader.read_groups(conn, base, ad_reader.with_guids(group_filter, batch), mail_attribute):
            groups[group.guid] = group
    # The groups that share an address with a changed user, with a group
    # just read, or one contested last time: this run settles who gets it.
    addresses = claimed | cursor.contested | group_addresses(groups.values(), resource)
    for batch in batches(addresses, CLAIMANTS_PER_SEARCH):
        for group in ad_reader.read_groups(conn, base, ad_reader.with_values(group_filter, mail_attribute, batch),
                                           mail_attribute):
            groups.setdefault(group.guid, group)
    read.groups = list(groups.values())
    read.groups_decided = wanted | set(groups) | read.gone


def read_outside_members(conn, read, mail_attribute, widen=None):
    """Look up, level by level, member DNs that are no selected user and no read group.

    `widen` is given the member GUIDs of each level first, so that the
    store's scoped view holds every managed user they may name.
    """
    read.outside = outside = {}
    group_dns = set(g.dn.lower() for g in read.groups)
    holders = list(read.groups)
    while holders:
        if widen is not None:
            widen(set(guid for holder in holders for guid in holder.member_guids.values()))
        known = read.dn_to_guid()
        pending = sorted(set(m for holder in holders for m in holder.member_dns
                             if m.lower() not in known and m.lower() not in group_dns and m.lower() not in outside))
        if not pending:
            break
        found = ad_reader.read_outside(conn, pending, mail_attribute)
        for dn in pending:
            outside.setdefault(dn.lower(), found.get(dn.lower()) or ad_reader.OutsideObject(dn, False))
        holders = [obj for obj in found.values() if obj.is_group]
    return outside


# Above this many addresses to check, one read of every address of the
# domain costs less than looking them up in batches.
CANDIDATE_LIMIT = 2000


def addresses_to_check(desired, groups, current):
    """Every address the plan may test against the ones in use: what the objects read ask for."""
    wanted = set()
    for guid, account in desired.accounts.items():
        wanted.add(account.address)
        wanted.update(account.aliases or ())
        managed = current.managed.get(guid)
        if managed is not None:
            # a rename may keep the old address as an alias
            wanted.add(managed.address)
            wanted.update(managed.kept)
    if groups is not None:
        wanted.update(alias.address for alias in groups.aliases.values())
        wanted.update(mail for mail in groups.outside_mail.values() if mail)
    return wanted


def fingerprint(resource):
    return settings_fingerprint(dict((key, resource.options.get(key)) for key in READ_SETTINGS))


def read_store(backend, resource, read):
    """The managed accounts the plan needs: all of them, or those of the objects the changes name."""
    if read.mode == "full" or read.removals == "scan":
        wanted = read.desired.accounts if read.desired is not None else None
        return backend.current_state(resource.name, resource.target_domain, wanted=wanted)
    touched = set(user.guid for user in read.users) | read.gone
    return backend.current_state(resource.name, resource.target_domain, guids=touched)


def read_whole_store(backend, resource, read):
    """Every managed account, for a run whose scoped view would not do; the read settled against it."""
    current = backend.current_state(resource.name, resource.target_domain)
    read.settle(current)
    return current


def read_sources(resource, backend, cursor, attributes, full, now, accounts_of=None):
    """Read AD and the store as far as this run needs them: (read, current state, rechecked).

    A full run turns the users into accounts (`accounts_of`, kept as
    `read.desired`) before it reads the store, and keeps of each entry only
    its GUID and DN: the directory and every managed account are never in
    memory at once in both forms.
    """
    conn = open_directory(resource)
    try:
        read = read_directory(conn, resource, attributes, cursor, full, now)
        if read.mode == "full" and accounts_of is not None:
            read.desired = accounts_of(read.users)
            read.users = [DirectoryUser(user.guid, user.dn, None, False, NO_ATTRIBUTES) for user in read.users]
        current = read_store(backend, resource, read)
        settle_changes(read, current)
        fetched = set(current.managed)

        def widen(guids):
            # A scoped view grows by the accounts the groups read name.
            wanted = set(guids) - fetched
            if current.scoped and wanted:
                fetched.update(wanted)
                current.merge(backend.current_state(resource.name, resource.target_domain, guids=wanted))
                read.settle(current)

        recheck, claimed = set(), set()
        if read.mode == "incremental" and read.groups_may_differ:
            # Whoever shares an address with a changed user, or shared one
            # last time, is read as well (read_claimants).
            claimed = claimed_addresses(read.users, resource)
            recheck = claimed | (cursor.contested or set())
        if resource.replicate_groups and read.groups_may_differ:
            read_run_groups(conn, resource, read, cursor, backend, current, claimed)
            if read.groups_decided is None and current.scoped:
                # Every group read: the plan must see every managed account,
                # to delete the aliases of the groups that are gone.
                current = read_whole_store(backend, resource, read)
            # One widening for the groups and the members they name directly.
            named = set(guid for group in read.groups for guid in group.member_guids.values())
            widen(set(read.groups_decided or ()) | named)
            read_outside_members(conn, read, resource.user_mail_attribute, widen)
            if read.mode == "incremental":
                recheck |= group_addresses(read.groups, resource)
        if recheck:
            read_claimants(conn, resource, attributes, read, recheck)
            # The users read for their addresses are compared with their accounts.
            widen(user.guid for user in read.users)
    finally:
        conn.unbind()
    return read, current, bool(recheck)


def plan_replication(resource, backend, full=False):
    """Read AD and the backend, and decide; writes nothing."""
    now = datetime.datetime.now().replace(microsecond=0)
    # The domain check is cheap and makes a misconfigured target fail
    # before AD is read at all.
    domain = backend.domain_info(resource.target_domain)
    cursor = backend.read_cursor(resource.name, resource.target_domain)
    attribute_map = dict((f, a) for f, a in resource.attribute_map.items() if f in backend.profile_fields)
    attributes = list(attribute_map.values()) + ([resource.quota_attribute] if resource.quota_attribute else [])
    default_quota = resource.default_quota if resource.default_quota is not None else domain.default_quota

    def accounts_of(users, unread=()):
        return desired_accounts(users, resource.target_domain, default_quota, attribute_map,
                                resource.quota_attribute, unread=unread, proxy_addresses=resource.proxy_addresses)

    read, current, rechecked = read_sources(resource, backend, cursor, attributes, full, now, accounts_of)
    read_guids = set(user.guid for user in read.users)
    desired = read.desired if read.desired is not None else accounts_of(read.users, read.unread)
    if read.mode == "full" or read.removals == "scan":
        in_ad = read.present if read.present is not None else read.users
        if not in_ad and current.managed:
            # An empty answer is far likelier a wrong base DN, filter or
            # right than every user leaving at once: never remove accounts.
            raise DirectoryError(
                "Active Directory returned no users under %s with filter %s while %d accounts are managed; "
                "refusing to treat them all as removed (nothing was written)"
                % (resource.base_dn, resource.user_filter, len(current.managed)))
    groups = None
    if read.groups is not None:
        groups = desired_aliases(read.groups, read.outside, resource.target_domain, resource.access_policy,
                                 read.dn_to_guid())
        leave_out_shared_addresses(desired, groups)
    contested = contested_addresses(desired, groups)
    if read.mode == "incremental" and not rechecked:
        contested |= cursor.contested or set()
    # The accounts now hold all the plan needs of the entries, and the claims
    # are settled: let both go before the plan makes its own copies (peak
    # memory of a full run).
    read.users = None
    desired.claims = {}
    # A full run checks nearly every address of the domain: one read of all
    # of them is cheaper than looking each up.
    candidates = None if read.mode == "full" else addresses_to_check(desired, groups, current)
    if candidates is not None and len(candidates) > CANDIDATE_LIMIT:
        candidates = None
    if current.scoped:
        if candidates is None:
            # Too many addresses to ask about: the plan sees every account.
            current = read_whole_store(backend, resource, read)
            desired.unread = desired.unread | (read.unread - read_guids)
        else:
            current.outside_holders, owners = backend.address_owners(resource.name, resource.target_domain,
                                                                     candidates)
            for address, guid in owners.items():
                current.alias_owner.setdefault(address, guid)
    if groups is not None and read.groups_decided is not None:
        # Aliases of groups this run did not read stay as they are.
        groups.held.update(guid for guid, managed in current.managed.items()
                           if managed.kind == GROUP and guid not in read.groups_decided)
    current.taken_addresses = backend.addresses_in_use(resource.name, resource.target_domain, candidates)
    plan = build_plan(desired, current, resource.on_removed, backend.stored_form, now=now,
                      delete_after_days=resource.delete_after_days, keep_old_address=resource.keep_old_address,
                      groups=groups)
    check_safety(plan, resource.max_deletes, current.total)
    plan.removals = read.removals
    if read.mode == "unchanged":
        # AD is as the last run left it: every account still in AD stays as
        # it is, and only decisions that depend on time (a deletion whose
        # grace period has run out) remained to be made. The cursor stays.
        plan.mode = "incremental"
        return plan, domain
    plan.mode = read.mode
    last_full = now if read.mode == "full" else cursor.last_full
    plan.cursor = Cursor(read.dc.invocation_id, read.dc.highest_usn, last_full, fingerprint(resource),
                         tombstones=read.tombstones, contested=contested)
    return plan, domain


def replicate(resource, check_mode=False, full=False):
    """Replicate one resource now; return the plan that was (or would be) applied.

    The cursor is written with the plan, after the accounts; in check mode
    nothing is written at all.
    """
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            with open_backend(resource.backend) as backend:
                plan, domain = plan_replication(resource, backend, full)
                if not check_mode and (plan or plan.cursor is not None):
                    backend.apply(plan, resource.name, domain, resource)
            return plan
        except TransientBackendError:
            # Another writer (another resource, iRedAdmin) deadlocked with
            # this transaction and it was rolled back whole: plan again.
            if attempt == TRANSIENT_ATTEMPTS:
                raise
            time.sleep(0.5 * attempt)


def ensure_state_schema(backend_options, check_mode=False):
    """Create the replication state table with the schema login; True if it was missing.

    OpenLDAP keeps the anchor on each entry and needs no schema step.
    """
    if backend_options["type"] == "ldap":
        return False
    admin = dict(backend_options, login_user=backend_options["schema_login_user"],
                 login_password=backend_options.get("schema_login_password"),
                 replication_user=backend_options["login_user"])
    with open_backend(admin) as backend:
        try:
            backend.check_state_schema()
            return False
        except BackendError:
            if not check_mode:
                backend.ensure_state_schema()
            return True
