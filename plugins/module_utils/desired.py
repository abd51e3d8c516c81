# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""From AD objects to the accounts iRedMail should hold (no I/O)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.mailsync.iredmail.plugins.module_utils.model import (
    AddressError,
    MailAccount,
    MailAlias,
    Skip,
    domain_of,
    normalise_address,
    smtp_proxy_addresses,
)

_QUOTA_RE = re.compile(r"^\s*(\d+)\s*([mgt]?)b?\s*$", re.IGNORECASE)
_QUOTA_UNITS = {"": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_quota(value):
    """Megabytes from `2048`, `2048M`, `2G` or `1T`; None if unreadable."""
    if value is None:
        return None
    match = _QUOTA_RE.match(value)
    if not match:
        return None
    return int(match.group(1)) * _QUOTA_UNITS[match.group(2).lower()]


class DesiredState(object):
    """Accounts keyed on objectGUID, plus what was left out and why.

    `unread` holds GUIDs known to be in AD whose entries this run did not
    read (an incremental run reads changed objects only): their accounts
    are left as they are, neither compared nor removed; so are those of
    users left out for an address another object claims too (written for
    neither, but still in AD: a typo on one account must not disable
    another's mailbox). `claims` maps
    every address a read user asks for (primary or extra, won or
    contested) to those users, for the check against the groups.
    """

    def __init__(self, accounts, skipped, unread=(), claims=None):
        self.accounts = accounts
        self.skipped = skipped
        self.unread = frozenset(unread)
        self.claims = claims or {}


def desired_accounts(users, target_domain, default_quota, attribute_map, quota_attribute=None, unread=(),
                     proxy_addresses=False):
    """Map each AD user to the MailAccount it should be, or to a Skip.

    `attribute_map` maps model profile fields to AD attributes; fields
    absent from it are not managed. `unread`, when the users are only the
    changed ones, holds the GUIDs still selected by the filter that this
    run did not read (see DesiredState). With `proxy_addresses` the
    addresses follow Exchange (see user_addresses). An address claimed by
    two objects is written for neither: choosing one would make the
    result depend on search order. An extra address never displaces
    another user's primary one, though: only the extra address is dropped.
    """
    candidates = {}
    claims = {}
    skipped = []
    read = set()
    for user in users:
        read.add(user.guid)
        address, extra = user_addresses(user, target_domain, proxy_addresses, skipped)
        if address is None:
            continue
        quota = default_quota
        if quota_attribute:
            parsed = parse_quota(user.attributes.get(quota_attribute))
            if parsed is not None:
                quota = parsed
        profile = dict((field, user.attributes.get(attribute))
                       for field, attribute in attribute_map.items())
        account = MailAccount(user.guid, user.dn, address, active=not user.disabled,
                              quota=quota, profile=profile, aliases=extra)
        candidates.setdefault(address, []).append(account)
        for claimed in set([address]) | set(extra or ()):
            claims.setdefault(claimed, []).append(account)

    held = set()
    accounts = _sole_claimants(candidates, skipped, held)
    _drop_contested_aliases(accounts, claims, skipped)
    return DesiredState(accounts, skipped, (set(unread) - read) | held, claims)


def user_addresses(user, target_domain, proxy_addresses, skipped):
    """(primary address, extra addresses or None) of one user; (None, None) once skipped.

    Without `proxy_addresses` the mail attribute is the address and
    extra addresses are not managed. With them, as Exchange reads
    proxyAddresses: the `SMTP:` value under the target domain is the
    primary address, and the mail attribute's address, when it is another
    one under the domain, an extra address, so mail to it still arrives.
    The `smtp:` values under the domain are extra addresses. A user with
    no SMTP: value under the domain keeps the mail attribute's address;
    so does one with several (Exchange allows one), which are then all
    extra addresses, and reported: picking one would depend on AD's order.
    """
    try:
        mail, mail_error = normalise_address(user.mail), None
    except AddressError as exc:
        mail, mail_error = None, "no mail address" if user.mail is None else "invalid address: %s" % exc
    extra = None
    address = mail
    if proxy_addresses:
        primaries, secondaries = smtp_proxy_addresses(user.proxy_addresses)
        smtp = _proxies_in_domain(user, primaries, target_domain, skipped)
        extra = _proxies_in_domain(user, secondaries, target_domain, skipped)
        if len(smtp) == 1:
            address = smtp.pop()
            mail_error = None
        elif smtp:
            skipped.append(Skip(user.dn, user.guid, ", ".join(sorted(smtp)),
                                "%d SMTP: primary addresses in proxyAddresses: the primary address is the mail "
                                "attribute's, these are extra addresses" % len(smtp)))
            extra |= smtp
        if mail is not None and domain_of(mail) == target_domain:
            extra.add(mail)
        extra.discard(address)
    if mail_error is not None:
        skipped.append(Skip(user.dn, user.guid, user.mail, mail_error))
        return None, None
    if domain_of(address) != target_domain:
        skipped.append(Skip(user.dn, user.guid, address, "address outside target domain %s" % target_domain))
        return None, None
    return address, extra


def _proxies_in_domain(user, values, target_domain, skipped):
    """The normalised addresses among `values` under the target domain; invalid ones are reported."""
    found = set()
    for value in values:
        try:
            address = normalise_address(value)
        except AddressError as exc:
            skipped.append(Skip(user.dn, user.guid, value, "proxy address not written: %s" % exc))
            continue
        if domain_of(address) == target_domain:
            found.add(address)
    return found


def _sole_claimants(candidates, skipped, held):
    """Objects by GUID whose address no other object claims; the others go to `skipped` and `held`."""
    winners = {}
    for address, claimants in candidates.items():
        if len(claimants) == 1:
            winners[claimants[0].guid] = claimants[0]
            continue
        others = ", ".join(sorted(obj.dn for obj in claimants))
        for obj in claimants:
            held.add(obj.guid)
            skipped.append(Skip(obj.dn, obj.guid, address,
                                "address claimed by %d AD objects: %s" % (len(claimants), others)))
    return winners


def _drop_contested_aliases(accounts, claims, skipped):
    """Take every extra address another user claims as well off the accounts."""
    for guid in sorted(accounts):
        account = accounts[guid]
        for alias in list(account.aliases or ()):
            claimants = claims[alias]
            if len(claimants) < 2:
                continue
            names = ", ".join(sorted(set(other.dn for other in claimants)))
            account.aliases.remove(alias)
            skipped.append(Skip(account.dn, account.guid, alias,
                                "proxy address claimed by %d AD objects, written for none: %s"
                                % (len(claimants), names)))


def leave_out_shared_addresses(desired, groups):
    """An address a user and a group both claim is written for neither, and reported.

    Users are planned before groups: left to the planner, the user would
    keep the address and the group would be skipped, an order decided by
    nothing in AD. A user whose primary address a group claims is left
    out whole, as two users claiming one address are; a user's extra
    address is taken off it. The group is left out either way. What either
    object has in the store already stays as it is.
    """
    shared = set(desired.claims) & set(groups.claims)
    if not shared:
        return

    def reason(address):
        names = sorted(set(obj.dn for obj in desired.claims[address] + groups.claims[address]))
        return "address claimed by %d AD objects (users and groups), written for none: %s" % (
            len(names), ", ".join(names))

    for guid in sorted(desired.accounts):
        account = desired.accounts[guid]
        if account.address in shared:
            del desired.accounts[guid]
            desired.unread = desired.unread | frozenset([guid])
            desired.skipped.append(Skip(account.dn, guid, account.address, reason(account.address)))
            continue
        for alias in [alias for alias in account.aliases or () if alias in shared]:
            account.aliases.remove(alias)
            desired.skipped.append(Skip(account.dn, guid, alias, "proxy " + reason(alias)))
    for guid in sorted(groups.aliases):
        alias = groups.aliases[guid]
        if alias.address in shared:
            del groups.aliases[guid]
            groups.held.add(guid)
            groups.skipped.append(Skip(alias.dn, guid, alias.address, reason(alias.address)))


def contested_addresses(desired, groups=None):
    """The addresses two or more AD objects (users, groups) claim: written for none of them."""
    claimants = {}
    for claims in (desired.claims, groups.claims if groups is not None else {}):
        for address, objects in claims.items():
            claimants.setdefault(address, set()).update(obj.guid for obj in objects)
    return set(address for address, guids in claimants.items() if len(guids) > 1)


class DesiredAliases(object):
    """Mail aliases keyed on the groups' objectGUIDs, and how to name their members.

    `dn_to_guid` maps the lower-cased DN of every user in the resource's
    scope to its GUID; `outside_mail` the DN of each member outside it to
    its normalised address (or None). `claims` maps every address a group
    asks for, won or contested, to those groups. `held` holds the groups
    left out for a contested address: their aliases stay as they are.
    """

    def __init__(self, aliases, skipped, dn_to_guid, outside_mail, claims=None, held=()):
        self.aliases = aliases
        self.held = set(held)
        self.skipped = skipped
        self.dn_to_guid = dn_to_guid
        self.outside_mail = outside_mail
        self.claims = claims or {}


def flatten(group_dn, members_of):
    """The non-group member DNs reachable from `group_dn`, nested groups
    followed and cycles cut. `members_of` maps a group DN to its direct
    member DNs (all lower-cased); a DN not in it is a leaf."""
    leaves, seen, todo = set(), set([group_dn]), list(members_of.get(group_dn, ()))
    while todo:
        dn = todo.pop()
        if dn in members_of:
            if dn not in seen:
                seen.add(dn)
                todo.extend(members_of[dn])
        else:
            leaves.add(dn)
    return leaves


def desired_aliases(groups, outside, target_domain, access_policy, dn_to_guid):
    """Map each AD group to the MailAlias it should be, or to a Skip.

    `outside` holds the member objects the searches did not return
    (ad_reader.OutsideObject by lower-cased DN).
    """
    members_of = dict((g.dn.lower(), [m.lower() for m in g.member_dns]) for g in groups)
    for dn, obj in outside.items():
        if obj.is_group:
            members_of[dn] = [m.lower() for m in obj.member_dns]
    outside_mail = {}
    for dn, obj in outside.items():
        if not obj.is_group:
            try:
                outside_mail[dn] = normalise_address(obj.mail)
            except AddressError:
                outside_mail[dn] = None

    candidates, skipped = {}, []
    for group in groups:
        try:
            address = normalise_address(group.mail)
        except AddressError as exc:
            reason = "no mail address" if group.mail is None else "invalid address: %s" % exc
            skipped.append(Skip(group.dn, group.guid, group.mail, reason))
            continue
        if domain_of(address) != target_domain:
            skipped.append(Skip(group.dn, group.guid, address, "address outside target domain %s" % target_domain))
            continue
        alias = MailAlias(group.guid, group.dn, address, group.name, access_policy,
                          flatten(group.dn.lower(), members_of))
        candidates.setdefault(address, []).append(alias)
    held = set()
    return DesiredAliases(_sole_claimants(candidates, skipped, held), skipped, dn_to_guid, outside_mail,
                          claims=candidates, held=held)
