# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading users from Active Directory: paging, decoding, the disabled bit.

Knows LDAP and AD, nothing of iRedMail. A read either returns every
matching object or raises: a partial page sequence must never look like
users that disappeared.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import uuid

try:
    import ldap3
    from ldap3.core import exceptions as ldap3_exceptions
    from ldap3.utils.conv import escape_bytes, escape_filter_chars
except ImportError:  # pragma: no cover - reported by the modules
    ldap3 = None

from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_connection import describe
from ansible_collections.mailsync.iredmail.plugins.module_utils.batches import batches
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import DirectoryError
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import (
    UAC_ACCOUNTDISABLE,
    DirectoryUser,
)

# Windows AD answers at most MaxPageSize (1000) entries per page; Samba
# does not enforce it, so the reader always pages, at that limit: fewer
# pages cost both servers less.
PAGE_SIZE = 1000

# Normal user accounts (SAM_NORMAL_USER_ACCOUNT): people and service
# accounts, enabled or disabled, never computers or trusts.
DEFAULT_USER_FILTER = "(sAMAccountType=805306368)"
DEFAULT_GROUP_FILTER = "(objectClass=group)"


# LDAP_SERVER_EXTENDED_DN_OID, string form (flag 1): every DN value comes
# back as "<GUID=...>;<SID=...>;CN=...", so a group's members name their
# objectGUID and need no lookup. Critical: a server that ignored it would
# leave members unresolvable on incremental runs.
EXTENDED_DN = ("1.2.840.113556.1.4.529", True, b"\x30\x03\x02\x01\x01")
# LDAP_SERVER_SHOW_DELETED_OID: tombstones are returned too.
SHOW_DELETED = ("1.2.840.113556.1.4.417", True, None)
# The well-known GUID of a naming context's Deleted Objects container.
DELETED_OBJECTS_WKGUID = "18e2ea80684f11d2b9aa00c04f79f805"

_EXTENDED_DN_RE = re.compile(r"^((?:<[^>]*>;)*)(.*)$", re.DOTALL)


def split_extended_dn(value):
    """(dn, objectGUID or None) from a DN in extended form; a plain DN passes through."""
    match = _EXTENDED_DN_RE.match(_decode(value))
    guid = None
    for part in match.group(1).split(";"):
        if part[:6].upper() == "<GUID=" and part.endswith(">"):
            guid = str(uuid.UUID(part[6:-1]))
    return match.group(2), guid


_RDN_SEPARATOR_RE = re.compile(r"(?<!\\)\s*,\s*")
_TYPE_VALUE_RE = re.compile(r"\s*=\s*")


def dn_key(dn):
    """A DN in one comparable form: lower-cased, no spaces around separators (AD compares DNs so)."""
    return ",".join(_TYPE_VALUE_RE.sub("=", rdn, count=1) for rdn in _RDN_SEPARATOR_RE.split(dn.strip().lower()))


def is_under(dn, base_dn):
    """Whether `dn` is `base_dn` or below it."""
    key, base = dn_key(dn), dn_key(base_dn)
    return key == base or key.endswith("," + base)


def decode_guid(raw):
    """objectGUID's 16 bytes (little-endian first three fields) as a canonical string."""
    return str(uuid.UUID(bytes_le=bytes(raw)))


def raw_values(raw_attributes):
    """An entry's raw attributes keyed on lower-cased names: LDAP attribute names ignore case."""
    return dict((key.lower(), value) for key, value in raw_attributes.items())


def first_text(values):
    """The first value of an attribute as text, or None."""
    if not values:
        return None
    value = values[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _wanted(mail_attribute, extra_attributes, proxy_addresses):
    wanted = ["objectGUID", "userAccountControl", mail_attribute] + list(extra_attributes)
    if proxy_addresses:
        wanted.append("proxyAddresses")
    return sorted(set(wanted))


def _user_from_entry(entry, wanted, mail_attribute, proxy_addresses):
    # Attribute names are case-insensitive in LDAP; match them lower-cased.
    wanted_lower = dict((name.lower(), name) for name in wanted)
    raw = raw_values(entry["raw_attributes"])
    guid_values = raw.get("objectguid")
    if not guid_values:
        raise DirectoryError("entry %s has no objectGUID: is this an Active Directory?" % entry["dn"])
    uac = first_text(raw.get("useraccountcontrol"))
    disabled = bool(int(uac) & UAC_ACCOUNTDISABLE) if uac else False
    attributes = dict((wanted_lower[key], first_text(raw.get(key)))
                      for key in wanted_lower if key not in ("objectguid", "useraccountcontrol"))
    proxies = [_decode(v) for v in raw.get("proxyaddresses", [])] if proxy_addresses else ()
    return DirectoryUser(decode_guid(guid_values[0]), entry["dn"], attributes.get(mail_attribute), disabled,
                         attributes, proxies)


def read_users(conn, base_dn, user_filter, mail_attribute, extra_attributes=(), page_size=PAGE_SIZE,
               proxy_addresses=False, missing_ok=False):
    """Yield a DirectoryUser for every entry matching `user_filter` under `base_dn`.

    With `missing_ok`, a `base_dn` that does not exist holds no user.
    """
    wanted = _wanted(mail_attribute, extra_attributes, proxy_addresses)
    read = 0
    try:
        entries = conn.extend.standard.paged_search(
            base_dn, user_filter, search_scope=ldap3.SUBTREE,
            attributes=wanted, paged_size=page_size, generator=True)
        for entry in entries:
            if entry.get("type") != "searchResEntry":
                continue  # referrals and continuation references name no user
            read += 1
            yield _user_from_entry(entry, wanted, mail_attribute, proxy_addresses)
    except DirectoryError:
        raise
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        if missing_ok and not read:
            return
        raise DirectoryError("base DN %s does not exist in Active Directory" % base_dn)
    except ldap3_exceptions.LDAPInvalidFilterError as exc:
        raise DirectoryError("invalid LDAP filter %r: %s" % (user_filter, exc))
    except Exception as exc:  # noqa: BLE001 - any failure makes the whole read invalid
        raise DirectoryError("reading users under %s failed after %d entries: %s"
                             % (base_dn, read, describe(exc)))


def read_user(conn, dn, user_filter, mail_attribute, extra_attributes=(), proxy_addresses=False):
    """The DirectoryUser at `dn` if that entry matches `user_filter`, else None.

    The server evaluates the filter on the one entry, so any filter the
    resource uses decides here exactly as in a subtree search.
    """
    wanted = _wanted(mail_attribute, extra_attributes, proxy_addresses)
    try:
        conn.search(dn, user_filter, ldap3.BASE, attributes=wanted)
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        return None  # deleted since the change search: its tombstone comes next run
    except ldap3_exceptions.LDAPInvalidFilterError as exc:
        raise DirectoryError("invalid LDAP filter %r: %s" % (user_filter, exc))
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("reading %s failed: %s" % (dn, describe(exc)))
    entries = [entry for entry in conn.response or () if entry.get("type") == "searchResEntry"]
    return _user_from_entry(entries[0], wanted, mail_attribute, proxy_addresses) if entries else None


class DCState(object):
    """Where a domain controller's change history stands."""

    __slots__ = ("server", "invocation_id", "highest_usn", "naming_context")

    def __init__(self, server, invocation_id, highest_usn, naming_context=None):
        self.server = server
        self.invocation_id = invocation_id
        self.highest_usn = highest_usn
        # the domain partition, where users, groups and their tombstones live
        self.naming_context = naming_context


def read_dc_state(conn):
    """The DC's identity and highest committed USN, read before any search.

    uSNChanged values are local to one DC and its database: a cursor is
    only valid against the same invocationId.
    """
    try:
        conn.search("", "(objectClass=*)", ldap3.BASE,
                    attributes=["highestCommittedUSN", "dsServiceName", "defaultNamingContext"])
        root = raw_values(conn.response[0]["raw_attributes"])
        server = first_text(root.get("dsservicename"))
        naming_context = first_text(root.get("defaultnamingcontext"))
        highest = int(first_text(root.get("highestcommittedusn")))
        conn.search(server, "(objectClass=*)", ldap3.BASE, attributes=["invocationId"])
        raw = raw_values(conn.response[0]["raw_attributes"])
        invocation = str(uuid.UUID(bytes_le=bytes(raw["invocationid"][0])))
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("cannot read the domain controller's change state (rootDSE): %s" % describe(exc))
    return DCState(server, invocation, highest, naming_context)


def changed_since(user_filter, usn):
    """`user_filter` narrowed to objects changed after `usn`."""
    return "(&%s(uSNChanged>=%d))" % (user_filter, usn + 1)


def claiming(user_filter, mail_attribute, addresses, proxy_addresses):
    """`user_filter` narrowed to users whose mail attribute or proxyAddresses hold one of `addresses`.

    AD compares both without regard to case, and `smtp:` matches an
    `SMTP:` value as well.
    """
    terms = []
    for address in addresses:
        value = escape_filter_chars(address)
        terms.append("(%s=%s)" % (mail_attribute, value))
        if proxy_addresses:
            terms.append("(proxyAddresses=smtp:%s)" % value)
    return "(&%s(|%s))" % (user_filter, "".join(terms))


def with_guids(search_filter, guids):
    """`search_filter` narrowed to the objects whose objectGUID is one of `guids` (indexed in AD)."""
    terms = "".join("(objectGUID=%s)" % escape_bytes(uuid.UUID(guid).bytes_le) for guid in sorted(guids))
    return "(&%s(|%s))" % (search_filter, terms)


def with_values(search_filter, attribute, values):
    """`search_filter` narrowed to objects whose `attribute` holds one of `values`."""
    terms = "".join("(%s=%s)" % (attribute, escape_filter_chars(value)) for value in sorted(values))
    return "(&%s(|%s))" % (search_filter, terms)


# Objects per search when a run looks up a list of GUIDs.
GUIDS_PER_SEARCH = 100


def without_guids(search_filter, guids):
    """`search_filter` less the objects whose objectGUID is one of `guids` (a few: every one is a term)."""
    if not guids:
        return search_filter
    return "(&%s(!%s))" % (search_filter, with_guids("(objectGUID=*)", guids))


def read_ancestors(conn, naming_context, guids):
    """The objectGUIDs of every group holding one of `guids`, directly or through nested groups.

    Follows memberOf up one level per search (the GUIDs come with the DNs,
    extended form). AD's in-chain matching rule would answer in one
    search, but Samba evaluates it by walking every group, which costs
    seconds per object; memberOf and objectGUID are indexed. memberOf
    lists the groups of the object's own domain, where the resource's
    groups live.
    """
    found, todo, seen = set(), sorted(guids), set(guids)
    try:
        while todo:
            level = []
            for batch in batches(todo, GUIDS_PER_SEARCH):
                for entry in conn.extend.standard.paged_search(
                        naming_context, with_guids("(objectClass=*)", batch),
                        search_scope=ldap3.SUBTREE, attributes=["memberOf"], controls=[EXTENDED_DN],
                        paged_size=PAGE_SIZE, generator=True):
                    if entry.get("type") != "searchResEntry":
                        continue
                    raw = raw_values(entry["raw_attributes"])
                    for value in raw.get("memberof", ()):
                        guid = split_extended_dn(value)[1]
                        if guid is not None and guid not in seen:
                            seen.add(guid)
                            found.add(guid)
                            level.append(guid)
            todo = sorted(level)
    except Exception as exc:  # noqa: BLE001 - a missed group would keep an alias out of date
        raise DirectoryError("reading the groups of the changed objects failed: %s" % describe(exc))
    return found


class ChangedObject(object):
    """An object the change search returned: where it is now, or that it is a tombstone."""

    __slots__ = ("guid", "dn", "deleted", "classes")

    def __init__(self, guid, dn, deleted, classes=()):
        self.guid = guid
        self.dn = dn
        self.deleted = deleted
        # lower-cased objectClass values
        self.classes = frozenset(classes)

    def may_name_mail(self):
        """Whether this object can be, or hold, a member with a mail address.

        Computers are users too, and the ones whose passwords a DC changes
        all the time; they never receive mail.
        """
        if "group" in self.classes or "contact" in self.classes:
            return True
        return "user" in self.classes and "computer" not in self.classes

    def is_container(self):
        """An OU or container: renaming or moving one changes no USN on the objects below it."""
        return bool(self.classes & CONTAINER_CLASSES)


CONTAINER_CLASSES = frozenset(("organizationalunit", "container"))
# What an OU carries that replication writes an account for.
MEMBER_CLASSES = frozenset(("user", "group"))


def read_changes(conn, naming_context, usn, page_size=PAGE_SIZE):
    """Every object of the naming context changed after `usn`, tombstones included.

    One search, whatever the resource's scope: an object deleted, moved
    out of the base DN or changed so that the filter no longer selects it
    has a new uSNChanged, wherever it is now. Only GUIDs and DNs are read.
    """
    changed = []
    try:
        for entry in conn.extend.standard.paged_search(
                naming_context, "(uSNChanged>=%d)" % (usn + 1), search_scope=ldap3.SUBTREE,
                attributes=["objectGUID", "isDeleted", "objectClass"], controls=[SHOW_DELETED],
                paged_size=page_size, generator=True):
            if entry.get("type") != "searchResEntry":
                continue
            raw = raw_values(entry["raw_attributes"])
            if not raw.get("objectguid"):
                continue
            deleted = (first_text(raw.get("isdeleted")) or "").upper() == "TRUE"
            classes = [_decode(value).lower() for value in raw.get("objectclass", ())]
            changed.append(ChangedObject(decode_guid(raw["objectguid"][0]), entry["dn"], deleted, classes))
    except Exception as exc:  # noqa: BLE001 - a partial change list must not look complete
        raise DirectoryError("reading the changes under %s since USN %d failed after %d entries: %s"
                             % (naming_context, usn, len(changed), describe(exc)))
    return changed


def tombstones_visible(conn, naming_context):
    """Whether this account can list deleted objects (Show Deleted) in the naming context.

    AD lets only administrators list the Deleted Objects container unless
    it is delegated (List Contents and Read Property). Without that right
    the search answers nothing rather than an error, so seeing at least
    one tombstone is the proof; a domain that never deleted anything falls
    back to the GUID scan, which is correct, only slower.
    """
    container = "<WKGUID=%s,%s>" % (DELETED_OBJECTS_WKGUID, naming_context)
    try:
        conn.search(container, "(objectClass=*)", ldap3.LEVEL, attributes=["objectGUID"],
                    controls=[SHOW_DELETED], paged_size=1)
    except Exception:  # noqa: BLE001 - no right, no container, no control: no tombstones
        return False
    return any(entry.get("type") == "searchResEntry" for entry in conn.response or ())


def read_subtree_guids(conn, dn, page_size=PAGE_SIZE):
    """The objectGUID of every user- or group-class object below the container `dn` (which may be gone).

    Walked one level at a time: a one-level search is answered from an
    index of children (on Samba too), so the cost follows the subtree's
    size, where a subtree search with any usual filter would scan every
    user of the domain.
    """
    guids, todo = {}, [dn]
    try:
        while todo:
            parent = todo.pop()
            for entry in conn.extend.standard.paged_search(
                    parent, "(objectClass=*)", search_scope=ldap3.LEVEL, attributes=["objectGUID", "objectClass"],
                    paged_size=page_size, generator=True):
                if entry.get("type") != "searchResEntry":
                    continue
                raw = raw_values(entry["raw_attributes"])
                classes = set(_decode(v).lower() for v in raw.get("objectclass", ()))
                if classes & CONTAINER_CLASSES:
                    todo.append(entry["dn"])
                elif classes & MEMBER_CLASSES and raw.get("objectguid"):
                    guids[decode_guid(raw["objectguid"][0])] = entry["dn"]
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        pass  # deleted or moved again since the change search: its users come with their own changes
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("listing the objects under %s failed after %d entries: %s"
                             % (dn, len(guids), describe(exc)))
    return guids


def read_guids(conn, base_dn, user_filter, page_size=PAGE_SIZE):
    """The objectGUID (and DN) of every object matching `user_filter`, and nothing else.

    A cheap presence scan: how incremental runs find users that were
    deleted, moved out of the base DN or no longer match the filter,
    with an ordinary account's rights.
    """
    guids = {}
    try:
        for entry in conn.extend.standard.paged_search(
                base_dn, user_filter, search_scope=ldap3.SUBTREE, attributes=["objectGUID"],
                paged_size=page_size, generator=True):
            if entry.get("type") == "searchResEntry":
                raw = raw_values(entry["raw_attributes"])
                guids[decode_guid(raw["objectguid"][0])] = entry["dn"]
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        raise DirectoryError("base DN %s does not exist in Active Directory" % base_dn)
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("scanning users under %s failed after %d entries: %s"
                             % (base_dn, len(guids), describe(exc)))
    return guids


# Windows AD returns at most MaxValRange (1500) values of a multi-valued
# attribute per read; Samba returns all. Members are always read in
# explicit ranges of this size so both behave the same.
RANGE_STEP = 1500


def _range_values(raw, attribute):
    """(values, more) from an entry's raw attributes for `attribute;range=a-b`."""
    prefix = attribute.lower() + ";range="
    for key, values in raw.items():
        lowered = key.lower()
        if lowered == attribute.lower():
            return list(values), False
        if lowered.startswith(prefix):
            return list(values), not lowered.endswith("-*")
    return [], False


def read_members(conn, dn, first_values, more, step=None):
    """Every `member` value of `dn` (extended form), following range retrieval to its end."""
    step = step or RANGE_STEP
    members = list(first_values)
    while more:
        start = len(members)
        attribute = "member;range=%d-%d" % (start, start + step - 1)
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attribute], controls=[EXTENDED_DN])
        raw = conn.response[0]["raw_attributes"] if conn.response else {}
        values, more = _range_values(raw, "member")
        if not values:
            break
        members.extend(values)
    return Members(members)


class Members(object):
    """A group's direct members: their DNs, and each DN's objectGUID."""

    __slots__ = ("dns", "guids")

    def __init__(self, values):
        self.dns = []
        # lower-cased DN -> objectGUID
        self.guids = {}
        for value in values:
            dn, guid = split_extended_dn(value)
            self.dns.append(dn)
            if guid is not None:
                self.guids[dn.lower()] = guid


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


class DirectoryGroup(object):
    """A group as read from AD: its own attributes and its direct members' DNs (and GUIDs)."""

    __slots__ = ("guid", "dn", "mail", "name", "member_dns", "member_guids")

    def __init__(self, guid, dn, mail, name, member_dns, member_guids=None):
        self.guid = guid
        self.dn = dn
        self.mail = mail
        self.name = name
        self.member_dns = member_dns
        self.member_guids = member_guids or {}


def read_groups(conn, base_dn, group_filter, mail_attribute, page_size=PAGE_SIZE, step=None, missing_ok=False):
    """Every group matching `group_filter`, with all its direct members.

    With `missing_ok`, a `base_dn` that does not exist holds no group.
    """
    step = step or RANGE_STEP
    first_range = "member;range=0-%d" % (step - 1)
    groups = []
    try:
        for entry in conn.extend.standard.paged_search(
                base_dn, group_filter, search_scope=ldap3.SUBTREE,
                attributes=["objectGUID", "cn", mail_attribute, first_range], controls=[EXTENDED_DN],
                paged_size=page_size, generator=True):
            if entry.get("type") != "searchResEntry":
                continue
            raw = raw_values(entry["raw_attributes"])
            values, more = _range_values(raw, "member")
            groups.append((split_extended_dn(entry["dn"])[0], raw, values, more))
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        if not missing_ok:
            raise DirectoryError("base DN %s does not exist in Active Directory" % base_dn)
        groups = []
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("reading groups under %s failed: %s" % (base_dn, describe(exc)))
    result = []
    try:
        # Ranges are followed after the paged search: a base search inside
        # it would abandon the paging cookie.
        for dn, raw, values, more in groups:
            members = read_members(conn, dn, values, more, step)
            result.append(DirectoryGroup(decode_guid(raw["objectguid"][0]), dn,
                                         first_text(raw.get(mail_attribute.lower())), first_text(raw.get("cn")),
                                         members.dns, members.guids))
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("reading the members of groups under %s failed: %s" % (base_dn, describe(exc)))
    return result


class OutsideObject(object):
    """A member found outside the resource's users and groups."""

    __slots__ = ("dn", "is_group", "mail", "member_dns", "member_guids")

    def __init__(self, dn, is_group, mail=None, member_dns=(), member_guids=None):
        self.dn = dn
        self.is_group = is_group
        self.mail = mail
        self.member_dns = list(member_dns)
        self.member_guids = member_guids or {}


def read_outside(conn, dns, mail_attribute, step=None):
    """Look up member DNs the resource's searches did not return.

    Nested groups outside the group filter still pass on their members;
    users outside the base DN may still have an account in the domain.
    Deleted or unreadable DNs are left out.
    """
    step = step or RANGE_STEP
    found = {}
    try:
        for dn in dns:
            try:
                conn.search(dn, "(objectClass=*)", ldap3.BASE, controls=[EXTENDED_DN],
                            attributes=["objectClass", mail_attribute, "member;range=0-%d" % (step - 1)])
            except ldap3_exceptions.LDAPNoSuchObjectResult:
                continue
            if not conn.response or conn.response[0].get("type") != "searchResEntry":
                continue
            raw = raw_values(conn.response[0]["raw_attributes"])
            classes = set(_decode(v).lower() for v in raw.get("objectclass", []))
            if "group" in classes:
                values, more = _range_values(raw, "member")
                members = read_members(conn, dn, values, more, step)
                found[dn.lower()] = OutsideObject(dn, True, member_dns=members.dns, member_guids=members.guids)
            else:
                found[dn.lower()] = OutsideObject(dn, False, mail=first_text(raw.get(mail_attribute.lower())))
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("reading group members failed: %s" % describe(exc))
    return found
