# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The account model: directory objects, mail accounts and iRedMail's rules.

This file is the one place that knows iRedMail's conventions (address
form, maildir layout, quota units, the unusable password) and knows no
backend and no LDAP library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import hashlib
import os
import re

# AD's userAccountControl ACCOUNTDISABLE flag. Only this bit decides: whole
# values such as 512 or 66048 differ with unrelated flags.
UAC_ACCOUNTDISABLE = 0x2

# An address is written only if it is plain ASCII in the dot-atom form that
# Postfix, Dovecot and iRedAdmin all accept; anything else is skipped with a
# reason rather than half-working in one of them.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_RE = re.compile(r"^%s(\.%s)*$" % (_ATOM, _ATOM))
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# iRedMail's address columns are VARCHAR(255); RFC 5321 caps a local part at 64.
MAX_ADDRESS_LENGTH = 255
MAX_LOCAL_PART_LENGTH = 64

# Profile fields a replicated account carries, with iRedMail Enterprise's
# default AD attribute for each. The key is the model's name for the field.
DEFAULT_ATTRIBUTE_MAP = {
    "display_name": "displayName",
    "first_name": "givenName",
    "last_name": "sn",
    "employee_id": "employeeID",
    "title": "title",
    "mobile": "mobile",
    "telephone": "telephoneNumber",
}
PROFILE_FIELDS = tuple(DEFAULT_ATTRIBUTE_MAP)
# iRedMail's profile columns are VARCHAR(255): longer values are cut at this
# many characters, by this one rule, so every backend stores the same value.
MAX_PROFILE_LENGTH = 255

# iRedAdmin's enabledService values for a normal user (OpenLDAP backend);
# the SQL schema's enable* column defaults express the same set.
DEFAULT_USER_SERVICES = (
    "internal", "doveadm", "lib-storage", "indexer-worker", "dsync", "quota-status", "mail",
    "smtp", "smtpsecured", "smtptls", "pop3", "pop3secured", "pop3tls", "imap", "imapsecured",
    "imaptls", "managesieve", "managesievesecured", "managesievetls", "sieve", "sievesecured",
    "sievetls", "deliver", "lda", "lmtp", "recipientbcc", "senderbcc", "forward", "shadowaddress",
    "displayedInGlobalAddressBook", "sogo", "sogowebmail", "sogocalendar", "sogoactivesync",
)

DEFAULT_STORAGE_BASE_DIRECTORY = "/var/vmail/vmail1"
DEFAULT_QUOTA_MB = 1024


class AddressError(ValueError):
    """A value is not a mail address iRedMail can host."""


def normalise_address(value):
    """Return the lower-case, trimmed address or raise AddressError."""
    if value is None:
        raise AddressError("no address")
    address = value.strip().lower()
    if not address:
        raise AddressError("empty address")
    try:
        address.encode("ascii")
    except UnicodeEncodeError:
        raise AddressError("non-ASCII characters in %r" % value)
    if len(address) > MAX_ADDRESS_LENGTH:
        raise AddressError("longer than %d characters" % MAX_ADDRESS_LENGTH)
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        raise AddressError("%r is not of the form local@domain" % value)
    if len(local) > MAX_LOCAL_PART_LENGTH or not _LOCAL_RE.match(local):
        raise AddressError("invalid local part in %r" % value)
    if not is_domain_name(domain):
        raise AddressError("invalid domain in %r" % value)
    return address


def is_domain_name(value):
    labels = value.split(".")
    return len(labels) >= 2 and all(_LABEL_RE.match(label) for label in labels)


def domain_of(address):
    return address.rpartition("@")[2]


def local_part(address):
    return address.rpartition("@")[0]


def maildir_path(address, now=None):
    """The mailbox path relative to the storage node, as iRedAdmin makes it.

    `<domain>/<c1>/<c2>/<c3>/<local>-<timestamp>/`: the first three characters
    of the local part, padded with `_` and with `.` and `~` replaced by `_`.
    The timestamp keeps a re-created account from inheriting an old mailbox
    and is what iRedMail's delete_mailboxes.py requires before removing one.
    """
    now = now or datetime.datetime.now()
    local, dummy, domain = address.lower().rpartition("@")
    chars = (local[:3] + "__")[:3]
    chars = chars.replace(".", "_").replace("~", "_")
    return "%s/%s/%s/%s/%s-%s/" % (
        domain, chars[0], chars[1], chars[2], local, now.strftime("%Y.%m.%d.%H.%M.%S"))


def split_storage_base(storage_base_directory):
    """Split `/var/vmail/vmail1` into (`/var/vmail`, `vmail1`) as iRedAdmin does."""
    path = storage_base_directory.rstrip("/")
    base, dummy, node = path.rpartition("/")
    if not base or not node:
        raise ValueError("storage_base_directory must be an absolute path with at least two parts")
    return base, node


def unusable_password_hash():
    """A well-formed `{SSHA512}` value no password can match.

    AD password hashes cannot be read; SOGo and iRedAdmin still parse the
    scheme prefix, so the column holds a valid-looking hash of 64 random
    bytes nobody knows.
    """
    secret = os.urandom(64)
    salt = os.urandom(8)
    digest = hashlib.sha512(secret + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode("ascii")


def smtp_proxy_addresses(values):
    """(primary, secondary) addresses from proxyAddresses values.

    `SMTP:` (upper case) marks the primary address, `smtp:` the others;
    X500:, SIP: and every other prefix are not mail addresses.
    """
    primary, secondary = [], []
    for value in values:
        prefix, sep, address = value.partition(":")
        if not sep:
            continue
        if prefix == "SMTP":
            primary.append(address)
        elif prefix == "smtp":
            secondary.append(address)
    return primary, secondary


def truncate(value, limit=MAX_PROFILE_LENGTH):
    if value is None:
        return ""
    return value[:limit]


class DirectoryUser(object):
    """A user as read from AD, before any iRedMail rule is applied."""

    __slots__ = ("guid", "dn", "mail", "disabled", "attributes", "proxy_addresses")

    def __init__(self, guid, dn, mail, disabled, attributes, proxy_addresses=()):
        self.guid = guid
        self.dn = dn
        self.mail = mail
        self.disabled = disabled
        # attribute name (as configured) -> first value as text, or None
        self.attributes = attributes
        # every proxyAddresses value, prefixes included
        self.proxy_addresses = tuple(proxy_addresses)

    def __repr__(self):
        return "DirectoryUser(%s, %s)" % (self.guid, self.dn)


class MailAccount(object):
    """The mailbox replication wants for one AD user.

    Equality over the managed fields is what makes a second run a no-op:
    the planner compares `as_dict()` with what the backend holds. Only the
    profile fields the resource maps (and the backend can store) are
    managed; the others are left as the administrator set them.
    """

    __slots__ = ("guid", "dn", "address", "active", "quota", "profile", "aliases")

    def __init__(self, guid, dn, address, active=True, quota=DEFAULT_QUOTA_MB, profile=None, aliases=None):
        self.guid = guid
        self.dn = dn
        self.address = address
        self.active = bool(active)
        self.quota = int(quota)
        self.profile = dict((field, truncate(value)) for field, value in (profile or {}).items())
        # extra addresses (proxyAddresses), or None when they are not managed
        self.aliases = sorted(aliases) if aliases is not None else None

    @property
    def domain(self):
        return domain_of(self.address)

    def as_dict(self):
        fields = {"address": self.address, "active": self.active, "quota": self.quota}
        fields.update(self.profile)
        if self.aliases is not None:
            fields["aliases"] = list(self.aliases)
        return fields

    def __eq__(self, other):
        return isinstance(other, MailAccount) and self.as_dict() == other.as_dict()

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "MailAccount(%s)" % self.address


# iRedMail's access policies of a mail alias: who may send to it.
ACCESS_POLICIES = ("public", "domain", "subdomain", "membersonly", "moderatorsonly", "membersandmoderatorsonly")


class MailAlias(object):
    """The mail alias account replication wants for one AD group.

    `member_dns` are the lower-cased DNs of the group's users, nested
    groups flattened; the planner turns them into addresses once it knows
    which accounts exist after the plan.
    """

    __slots__ = ("guid", "dn", "address", "name", "access_policy", "member_dns")

    def __init__(self, guid, dn, address, name, access_policy, member_dns):
        self.guid = guid
        self.dn = dn
        self.address = address
        self.name = truncate(name)
        self.access_policy = access_policy
        self.member_dns = frozenset(member_dns)

    def fields(self, members):
        return {"address": self.address, "active": True, "name": self.name,
                "access_policy": self.access_policy, "members": list(members)}

    def __repr__(self):
        return "MailAlias(%s)" % self.address


class Skip(object):
    """An AD object replication did not write, and why."""

    __slots__ = ("dn", "guid", "address", "reason")

    def __init__(self, dn, guid, address, reason):
        self.dn = dn
        self.guid = guid
        self.address = address
        self.reason = reason

    def as_dict(self):
        return {"dn": self.dn, "guid": self.guid, "address": self.address, "reason": self.reason}
