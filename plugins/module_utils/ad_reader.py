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

import uuid

try:
    import ldap3
    from ldap3.core import exceptions as ldap3_exceptions
except ImportError:  # pragma: no cover - reported by the modules
    ldap3 = None

from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_connection import describe
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


def decode_guid(raw):
    """objectGUID's 16 bytes (little-endian first three fields) as a canonical string."""
    return str(uuid.UUID(bytes_le=bytes(raw)))


def first_text(values):
    """The first value of an attribute as text, or None."""
    if not values:
        return None
    value = values[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def read_users(conn, base_dn, user_filter, mail_attribute, extra_attributes=(), page_size=PAGE_SIZE,
               proxy_addresses=False):
    """Yield a DirectoryUser for every entry matching `user_filter` under `base_dn`."""
    wanted = ["objectGUID", "userAccountControl", mail_attribute] + list(extra_attributes)
    if proxy_addresses:
        wanted.append("proxyAddresses")
    # Attribute names are case-insensitive in LDAP; match them lower-cased.
    wanted_lower = dict((name.lower(), name) for name in wanted)
    read = 0
    try:
        entries = conn.extend.standard.paged_search(
            base_dn, user_filter, search_scope=ldap3.SUBTREE,
            attributes=sorted(set(wanted)), paged_size=page_size, generator=True)
        for entry in entries:
            if entry.get("type") != "searchResEntry":
                continue  # referrals and continuation references name no user
            raw = dict((key.lower(), value) for key, value in entry["raw_attributes"].items())
            guid_values = raw.get("objectguid")
            if not guid_values:
                raise DirectoryError("entry %s has no objectGUID: is this an Active Directory?" % entry["dn"])
            uac = first_text(raw.get("useraccountcontrol"))
            disabled = bool(int(uac) & UAC_ACCOUNTDISABLE) if uac else False
            attributes = dict((wanted_lower[key], first_text(raw.get(key)))
                              for key in wanted_lower if key not in ("objectguid", "useraccountcontrol"))
            proxies = [_decode(v) for v in raw.get("proxyaddresses", [])] if proxy_addresses else ()
            read += 1
            yield DirectoryUser(decode_guid(guid_values[0]), entry["dn"],
                                attributes.get(mail_attribute), disabled, attributes, proxies)
    except DirectoryError:
        raise
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        raise DirectoryError("base DN %s does not exist in Active Directory" % base_dn)
    except ldap3_exceptions.LDAPInvalidFilterError as exc:
        raise DirectoryError("invalid LDAP filter %r: %s" % (user_filter, exc))
    except Exception as exc:  # noqa: BLE001 - any failure makes the whole read invalid
        raise DirectoryError("reading users under %s failed after %d entries: %s"
                             % (base_dn, read, describe(exc)))


class DCState(object):
    """Where a domain controller's change history stands."""

    __slots__ = ("server", "invocation_id", "highest_usn")

    def __init__(self, server, invocation_id, highest_usn):
        self.server = server
        self.invocation_id = invocation_id
        self.highest_usn = highest_usn


def read_dc_state(conn):
    """The DC's identity and highest committed USN, read before any search.

    uSNChanged values are local to one DC and its database: a cursor is
    only valid against the same invocationId.
    """
    try:
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["highestCommittedUSN", "dsServiceName"])
        root = dict((k.lower(), v) for k, v in conn.response[0]["raw_attributes"].items())
        server = first_text(root.get("dsservicename"))
        highest = int(first_text(root.get("highestcommittedusn")))
        conn.search(server, "(objectClass=*)", ldap3.BASE, attributes=["invocationId"])
        raw = dict((k.lower(), v) for k, v in conn.response[0]["raw_attributes"].items())
        invocation = str(uuid.UUID(bytes_le=bytes(raw["invocationid"][0])))
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("cannot read the domain controller's change state (rootDSE): %s" % describe(exc))
    return DCState(server, invocation, highest)


def changed_since(user_filter, usn):
    """`user_filter` narrowed to objects changed after `usn`."""
    return "(&%s(uSNChanged>=%d))" % (user_filter, usn + 1)


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
                raw = dict((k.lower(), v) for k, v in entry["raw_attributes"].items())
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
    """Every `member` value of `dn`, following range retrieval to its end."""
    step = step or RANGE_STEP
    members = list(first_values)
    while more:
        start = len(members)
        attribute = "member;range=%d-%d" % (start, start + step - 1)
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attribute])
        raw = conn.response[0]["raw_attributes"] if conn.response else {}
        values, more = _range_values(raw, "member")
        if not values:
            break
        members.extend(values)
    return [_decode(v) for v in members]


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


class DirectoryGroup(object):
    """A group as read from AD: its own attributes and its direct members' DNs."""

    __slots__ = ("guid", "dn", "mail", "name", "member_dns")

    def __init__(self, guid, dn, mail, name, member_dns):
        self.guid = guid
        self.dn = dn
        self.mail = mail
        self.name = name
        self.member_dns = member_dns


def read_groups(conn, base_dn, group_filter, mail_attribute, page_size=PAGE_SIZE, step=None):
    """Every group matching `group_filter`, with all its direct members."""
    step = step or RANGE_STEP
    first_range = "member;range=0-%d" % (step - 1)
    groups = []
    try:
        for entry in conn.extend.standard.paged_search(
                base_dn, group_filter, search_scope=ldap3.SUBTREE,
                attributes=["objectGUID", "cn", mail_attribute, first_range],
                paged_size=page_size, generator=True):
            if entry.get("type") != "searchResEntry":
                continue
            raw = dict((k.lower(), v) for k, v in entry["raw_attributes"].items())
            values, more = _range_values(raw, "member")
            groups.append((entry["dn"], raw, values, more))
    except ldap3_exceptions.LDAPNoSuchObjectResult:
        raise DirectoryError("base DN %s does not exist in Active Directory" % base_dn)
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("reading groups under %s failed: %s" % (base_dn, describe(exc)))
    result = []
    try:
        # Ranges are followed after the paged search: a base search inside
        # it would abandon the paging cookie.
        for dn, raw, values, more in groups:
            result.append(DirectoryGroup(decode_guid(raw["objectguid"][0]), dn,
                                         first_text(raw.get(mail_attribute.lower())), first_text(raw.get("cn")),
                                         read_members(conn, dn, values, more, step)))
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("reading the members of groups under %s failed: %s" % (base_dn, describe(exc)))
    return result


class OutsideObject(object):
    """A member found outside the resource's users and groups."""

    __slots__ = ("dn", "is_group", "mail", "member_dns")

    def __init__(self, dn, is_group, mail=None, member_dns=()):
        self.dn = dn
        self.is_group = is_group
        self.mail = mail
        self.member_dns = list(member_dns)


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
                conn.search(dn, "(objectClass=*)", ldap3.BASE,
                            attributes=["objectClass", mail_attribute, "member;range=0-%d" % (step - 1)])
            except ldap3_exceptions.LDAPNoSuchObjectResult:
                continue
            if not conn.response or conn.response[0].get("type") != "searchResEntry":
                continue
            raw = dict((k.lower(), v) for k, v in conn.response[0]["raw_attributes"].items())
            classes = set(_decode(v).lower() for v in raw.get("objectclass", []))
            if "group" in classes:
                values, more = _range_values(raw, "member")
                found[dn.lower()] = OutsideObject(dn, True, member_dns=read_members(conn, dn, values, more, step))
            else:
                found[dn.lower()] = OutsideObject(dn, False, mail=first_text(raw.get(mail_attribute.lower())))
    except Exception as exc:  # noqa: BLE001
        raise DirectoryError("reading group members failed: %s" % describe(exc))
    return found
