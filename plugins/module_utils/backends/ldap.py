# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iRedMail's OpenLDAP account store (python-ldap).

Users are `mail=<addr>,ou=Users,domainName=<d>,<base_dn>` entries with the
object classes and attributes iRedAdmin writes. The replication anchor is
kept on the entry itself as two `accountSetting` values
(`mailsyncResource:<name>`, `mailsyncGUID:<guid>`): LDAP has no
multi-entry transaction, but a single entry is written atomically, so an
account and its anchor can never disagree. Every other step is ordered so
that a run stopped half way is completed by the next one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import traceback

PYTHON_LDAP_IMPORT_ERROR = None
try:
    import ldap
    import ldap.dn
    import ldap.filter
    import ldap.modlist
    from ldap.controls import SimplePagedResultsControl
except ImportError:  # pragma: no cover - reported by the modules
    ldap = None
    PYTHON_LDAP_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.base import (
    Backend,
    DomainInfo,
    mailbox_delete_date,
    require_hosted,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.iredadmin import IRedAdminDatabase
from ansible_collections.mailsync.iredmail.plugins.module_utils.batches import batches
from ansible_collections.mailsync.iredmail.plugins.module_utils.cursor import Cursor
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import BackendError
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import (
    DEFAULT_QUOTA_MB,
    DEFAULT_USER_SERVICES,
    local_part,
    maildir_path,
    split_storage_base,
    unusable_password_hash,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils import plan as plans

# model profile field -> LDAP attribute, as iRedAdmin names them.
PROFILE_ATTRIBUTES = {
    "display_name": "cn",
    "first_name": "givenName",
    "last_name": "sn",
    "employee_id": "employeeNumber",
    "title": "title",
    "mobile": "mobile",
    "telephone": "telephoneNumber",
}
# inetOrgPerson requires cn and sn: without a value, iRedAdmin uses the local part.
REQUIRED_NAME_FIELDS = ("display_name", "last_name")
# addresses per search when a run asks about some addresses only
ADDRESS_BATCH = 100
ANCHOR_RESOURCE = "mailsyncResource:"
ANCHOR_GUID = "mailsyncGUID:"
REMOVED_SINCE = "mailsyncRemovedSince:"
KEPT_ADDRESS = "mailsyncKeptAddress:"
KEPT_ADDRESS_BYTES = KEPT_ADDRESS.encode("utf-8")
# Entries per page of the searches that read a whole domain.
PAGE_SIZE = 1000
# On the domain entry, one value per resource: mailsyncCursor:<resource>=<cursor>
CURSOR_SETTING = "mailsyncCursor:"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
USER_OBJECT_CLASSES = ("inetOrgPerson", "mailUser", "shadowAccount", "amavisAccount")
# Attributes of other entries that name a user by address: a rename or a
# deletion rewrites each value so memberships and admin rights follow.
REFERENCE_ATTRIBUTES = ("mailForwardingAddress", "listModerator", "domainAdmin")
MB = 1048576


def _b(value):
    return value.encode("utf-8")


def _first(entry, name):
    values = entry.get(name) or []
    return values[0].decode("utf-8") if values else None


def describe_error(exc):
    if ldap is not None and isinstance(exc, ldap.LDAPError) and exc.args and isinstance(exc.args[0], dict):
        info = exc.args[0]
        return "; ".join(str(info[k]) for k in ("desc", "info") if info.get(k))
    return "%s: %s" % (type(exc).__name__, exc)


class LDAPBackend(Backend):
    engine = "OpenLDAP"
    profile_fields = tuple(PROFILE_ATTRIBUTES)

    def __init__(self, conn, base_dn, iredadmin=None, connect_timeout=10):
        self.conn = conn
        self.base_dn = base_dn
        # backend.iredadmin options; connected only when a plan deletes a user.
        self.iredadmin_options = iredadmin
        self.iredadmin = None
        self.connect_timeout = connect_timeout

    @classmethod
    def connect(cls, server_uri=None, bind_dn=None, bind_password=None, base_dn=None, connect_timeout=10,
                iredadmin=None, **_ignored):
        if ldap is None:
            raise BackendError("the Python library python-ldap is required for the ldap backend")
        try:
            conn = ldap.initialize(server_uri)
            # Options on the connection, never ldap.set_option(): a global
            # setting would leak into every other connection of the process.
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
            conn.set_option(ldap.OPT_REFERRALS, 0)
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, connect_timeout)
            conn.set_option(ldap.OPT_TIMEOUT, max(connect_timeout, 60))
            conn.simple_bind_s(bind_dn, bind_password)
        except Exception as exc:  # noqa: BLE001
            raise BackendError("cannot bind to OpenLDAP at %s as %s: %s"
                               % (server_uri, bind_dn, describe_error(exc)))
        return cls(conn, base_dn, iredadmin, connect_timeout)

    def close(self):
        if self.iredadmin is not None:
            self.iredadmin.close()
        try:
            self.conn.unbind_s()
        except Exception:  # noqa: BLE001
            pass

    # -- names -----------------------------------------------------------
    def domain_dn(self, domain):
        return "domainName=%s,%s" % (ldap.dn.escape_dn_chars(domain), self.base_dn)

    def user_dn(self, address, domain):
        return "mail=%s,ou=Users,%s" % (ldap.dn.escape_dn_chars(address), self.domain_dn(domain))

    def _search(self, base, scope, filterstr, attrs, doing):
        try:
            return self.conn.search_s(base, scope, filterstr, attrs)
        except ldap.NO_SUCH_OBJECT:
            return []
        except Exception as exc:  # noqa: BLE001
            raise BackendError("OpenLDAP %s failed: %s" % (doing, describe_error(exc)))

    # -- reading ---------------------------------------------------------
    def domain_info(self, domain):
        entries = self._search(self.domain_dn(domain), ldap.SCOPE_BASE, "(objectClass=mailDomain)",
                               ["accountStatus", "domainBackupMX", "accountSetting"], "reading domain %s" % domain)
        entry = entries[0][1] if entries else {}
        require_hosted(domain, bool(entries), _first(entry, "accountStatus") == "active",
                       (_first(entry, "domainBackupMX") or "").lower() == "yes")
        default_quota = DEFAULT_QUOTA_MB
        for value in entry.get("accountSetting", []):
            key, dummy, setting = value.decode("utf-8").partition(":")
            if key == "defaultQuota":
                try:
                    default_quota = int(setting)
                except ValueError:
                    pass
        return DomainInfo(domain, default_quota)

    def _cursor_values(self, resource, domain):
        prefix = "%s%s=" % (CURSOR_SETTING, resource)
        entries = self._search(self.domain_dn(domain), ldap.SCOPE_BASE, "(objectClass=mailDomain)",
                               ["accountSetting"], "reading the replication cursor")
        values = entries[0][1].get("accountSetting", []) if entries else []
        return prefix, [v for v in values if v.decode("utf-8").startswith(prefix)]

    def read_cursor(self, resource, domain):
        prefix, values = self._cursor_values(resource, domain)
        return Cursor.decode(values[0].decode("utf-8")[len(prefix):]) if values else None

    def _write_cursor(self, resource, domain, cursor):
        prefix, values = self._cursor_values(resource, domain.name)
        new = _b(prefix + cursor.encode())
        if values == [new]:
            return
        mods = [(ldap.MOD_DELETE, "accountSetting", values)] if values else []
        self.conn.modify_s(self.domain_dn(domain.name), mods + [(ldap.MOD_ADD, "accountSetting", [new])])

    def stored_form(self, fields):
        stored = dict(fields)
        for field in REQUIRED_NAME_FIELDS:
            if field in stored and not stored[field]:
                stored[field] = local_part(fields["address"])
        return stored

    def _paged(self, base, scope, filterstr, attrs, doing):
        """Yield (dn, entry) of a search one page at a time, never holding the whole answer.

        A domain's accounts run to tens of thousands: search_s would hold
        every entry with every attribute asked at once, for the moment
        before each is reduced to the few values the plan needs.
        """
        control = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie=b"")
        while True:
            try:
                msgid = self.conn.search_ext(base, scope, filterstr, attrs, serverctrls=[control])
                dummy, page, dummy, controls = self.conn.result3(msgid)
            except ldap.NO_SUCH_OBJECT:
                return
            except Exception as exc:  # noqa: BLE001
                raise BackendError("OpenLDAP %s failed: %s" % (doing, describe_error(exc)))
            for dn, entry in page:
                # Search references come as (None, [urls]); the store holds none of ours.
                if dn is not None:
                    yield dn, entry
            page = None
            cookie = b""
            for answer in controls or ():
                if answer.controlType == SimplePagedResultsControl.controlType:
                    cookie = answer.cookie
            if not cookie:
                return
            control.cookie = cookie

    def current_state(self, resource, domain, guids=None, wanted=None):
        # The anchor is an unindexed accountSetting value: picking some
        # GUIDs out costs as much as reading every account, so this store
        # always answers whole (the planner takes a superset as it is).
        anchor = ldap.filter.escape_filter_chars(ANCHOR_RESOURCE + resource)
        managed, alias_owner, wanted = {}, {}, wanted or {}
        # One str per address, shared by the account and its fields.
        seen = {}

        def address_of(value):
            text = value.decode("utf-8").lower()
            return seen.setdefault(text, text)

        users = "ou=Users,%s" % self.domain_dn(domain)
        attrs = ["mail", "accountStatus", "mailQuota", "accountSetting", "shadowAddress"] + \
            list(PROFILE_ATTRIBUTES.values())
        for dummy, entry in self._paged(users, ldap.SCOPE_ONELEVEL, "(&(objectClass=mailUser)(accountSetting=%s))"
                                        % anchor, attrs, "reading the accounts of %s" % domain):
            account = self._managed_user(entry, address_of)
            if account is None:
                continue
            managed[account.guid] = plans.share_values(account, wanted.get(account.guid))
            for alias in account.fields["aliases"]:
                alias_owner[alias] = account.guid
        aliases = "ou=Aliases,%s" % self.domain_dn(domain)
        for dummy, entry in self._paged(aliases, ldap.SCOPE_ONELEVEL, "(&(objectClass=mailAlias)(accountSetting=%s))"
                                        % anchor, ["mail", "accountStatus", "cn", "accessPolicy",
                                                   "mailForwardingAddress", "accountSetting"],
                                        "reading the aliases of %s" % domain):
            guid = self._settings(entry).get(ANCHOR_GUID)
            if guid is None:
                continue
            address = address_of(entry["mail"][0])
            fields = {"address": address, "active": _first(entry, "accountStatus") == "active",
                      "name": _first(entry, "cn") or "", "access_policy": _first(entry, "accessPolicy") or "public",
                      "members": sorted(v.decode("utf-8").lower() for v in entry.get("mailForwardingAddress", []))}
            managed[guid] = plans.ManagedAccount(guid, address, fields, kind=plans.GROUP)
        return plans.CurrentState(managed, None, alias_owner)

    def addresses_in_use(self, resource, domain, candidates=None):
        # mail and shadowAddress are indexed in iRedMail's slapd: a few
        # equality searches answer an incremental run's question.
        filters = ["(|(mail=*)(shadowAddress=*))"] if candidates is None else []
        wanted = [ldap.filter.escape_filter_chars(address) for address in candidates or ()]
        for batch in batches(wanted, ADDRESS_BATCH):
            filters.append("(|%s)" % "".join("(mail=%s)(shadowAddress=%s)" % (value, value) for value in batch))
        taken = set()
        for search in filters:
            for dummy, entry in self._paged(self.domain_dn(domain), ldap.SCOPE_SUBTREE, search, ["mail", "shadowAddress"],
                                            "reading the addresses of %s" % domain):
                for value in entry.get("mail", []) + entry.get("shadowAddress", []):
                    taken.add(value.decode("utf-8").lower())
        return taken

    def aliases_listing(self, resource, domain, addresses):
        anchor = ldap.filter.escape_filter_chars(ANCHOR_RESOURCE + resource)
        found = set()
        for batch in batches([ldap.filter.escape_filter_chars(address) for address in addresses], ADDRESS_BATCH):
            search = "(&(objectClass=mailAlias)(accountSetting=%s)(|%s))" % (
                anchor, "".join("(mailForwardingAddress=%s)" % value for value in batch))
            for dummy, entry in self._paged("ou=Aliases,%s" % self.domain_dn(domain), ldap.SCOPE_ONELEVEL, search,
                                            ["accountSetting"], "reading the aliases of %s" % domain):
                guid = self._settings(entry).get(ANCHOR_GUID)
                if guid is not None:
                    found.add(guid)
        return found

    @staticmethod
    def _managed_user(entry, address_of):
        """The ManagedAccount of one user entry, or None without our GUID."""
        settings = LDAPBackend._settings(entry)
        guid = settings.get(ANCHOR_GUID)
        if guid is None:
            return None
        removed_since = None
        if settings.get(REMOVED_SINCE):
            removed_since = datetime.datetime.strptime(settings[REMOVED_SINCE], TIME_FORMAT)
        address = address_of(entry["mail"][0])
        fields = {"address": address, "active": _first(entry, "accountStatus") == "active",
                  "quota": int(_first(entry, "mailQuota") or 0) // MB}
        for field, attr in PROFILE_ATTRIBUTES.items():
            fields[field] = _first(entry, attr) or ""
        fields["aliases"] = sorted(address_of(v) for v in entry.get("shadowAddress", []))
        kept = [v.decode("utf-8")[len(KEPT_ADDRESS):] for v in entry.get("accountSetting", [])
                if v.startswith(KEPT_ADDRESS_BYTES)]
        return plans.ManagedAccount(guid, address, fields, removed_since, kept=kept)

    @staticmethod
    def _settings(entry):
        """The entry's mailsync accountSetting values by prefix."""
        found = {}
        for value in entry.get("accountSetting", []):
            text = value.decode("utf-8")
            for prefix in (ANCHOR_GUID, REMOVED_SINCE):
                if text.startswith(prefix):
                    found[prefix] = text[len(prefix):]
        return found

    # -- writing ---------------------------------------------------------
    def apply(self, plan, resource, domain, settings):
        now = datetime.datetime.now()
        deletes_users = any(c.kind == plans.DELETE and c.object_type != plans.GROUP for c in plan.changes)
        if deletes_users and self.iredadmin_options and self.iredadmin is None:
            # Before the first write: without iRedAdmin's database nothing of
            # the plan is applied, rather than everything but the deletions.
            self.iredadmin = IRedAdminDatabase.connect(self.iredadmin_options, self.connect_timeout)
        try:
            # Marks name the address the entry has before this run's renames.
            for mark in plan.marks:
                self._mark(mark, domain)
            for change in plans.apply_order(plan.changes):
                if change.object_type == plans.GROUP:
                    self._write_alias(change, resource, domain)
                elif change.kind == plans.CREATE:
                    self._create(change, resource, domain, settings, now)
                elif change.kind == plans.DELETE:
                    self._delete(change, resource, domain, settings.keep_mailbox_days, now)
                else:
                    self._update(change, domain)
            # Last: until it is written, the next run reads the same AD
            # changes again and completes whatever this one did not.
            if plan.cursor is not None:
                self._write_cursor(resource, domain, plan.cursor)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BackendError("OpenLDAP write failed: %s; the next run completes the changes not yet made"
                               % describe_error(exc))

    def _profile_modlist(self, fields):
        changes = []
        for field, attr in PROFILE_ATTRIBUTES.items():
            if field in fields:
                value = fields[field]
                changes.append((ldap.MOD_REPLACE, attr, [_b(value)] if value else None))
        return changes

    def _create(self, change, resource, domain, settings, now):
        after = change.after
        address = after["address"]
        local = local_part(address)
        base, node = split_storage_base(settings.storage_base_directory)
        maildir = maildir_path(address, now)
        attrs = {
            "objectClass": [_b(c) for c in USER_OBJECT_CLASSES],
            "mail": [_b(address)],
            "uid": [_b(local)],
            "cn": [_b(local)],
            "sn": [_b(local)],
            "userPassword": [_b(unusable_password_hash())],
            "homeDirectory": [_b("%s/%s/%s" % (base, node, maildir))],
            # Deprecated since iRedMail 0.9.8 but still in mailUser: iRedMail's
            # older tools and iRedAdmin's deletion fall back to this pair when
            # homeDirectory is missing, so it names the same directory.
            "storageBaseDirectory": [_b(base)],
            "mailMessageStore": [_b("%s/%s" % (node, maildir))],
            "accountStatus": [b"active" if after["active"] else b"disabled"],
            "enabledService": [_b(s) for s in DEFAULT_USER_SERVICES],
            "shadowLastChange": [_b(str((now - datetime.datetime(1970, 1, 1)).days))],
            "amavisLocal": [b"TRUE"],
            "mailboxFormat": [_b(settings.mailbox_format)],
            "mailboxFolder": [_b(settings.mailbox_folder)],
            "accountSetting": [_b(ANCHOR_RESOURCE + resource), _b(ANCHOR_GUID + change.guid)]
            + [_b(KEPT_ADDRESS + a) for a in sorted(change.kept or ())],
        }
        if after.get("aliases"):
            attrs["shadowAddress"] = [_b(a) for a in after["aliases"]]
        if after["quota"]:
            attrs["mailQuota"] = [_b(str(after["quota"] * MB))]
        if settings.language:
            attrs["preferredLanguage"] = [_b(settings.language)]
        for field, attr in PROFILE_ATTRIBUTES.items():
            if after.get(field):
                attrs[attr] = [_b(after[field])]
        dn = self.user_dn(address, domain.name)
        try:
            self.conn.add_s(dn, ldap.modlist.addModlist(attrs))
        except ldap.ALREADY_EXISTS:
            # Written after this run read the domain: by a concurrent run of
            # this resource (ours, brought to the desired state) or by
            # someone else (never touched).
            self._require_anchor(dn, address, resource, change.guid)
            self.conn.modify_s(dn, self._status_modlist(after) + self._profile_modlist(after))

    def _require_anchor(self, dn, address, resource, guid):
        """Raise unless the entry at `dn` carries this resource's anchor for `guid`."""
        entries = self._search(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["accountSetting"], "reading %s" % dn)
        values = set(entries[0][1].get("accountSetting", [])) if entries else set()
        if {_b(ANCHOR_RESOURCE + resource), _b(ANCHOR_GUID + guid)} <= values:
            return
        raise BackendError(
            "%s was created in OpenLDAP by someone else after this run read the domain; replication does not "
            "manage it and left it unchanged; the next run reports it as a conflict and completes the changes "
            "not yet made" % address)

    @staticmethod
    def _status_modlist(fields):
        quota = [_b(str(fields["quota"] * MB))] if fields["quota"] else None
        return [(ldap.MOD_REPLACE, "accountStatus", [b"active" if fields["active"] else b"disabled"]),
                (ldap.MOD_REPLACE, "mailQuota", quota)]

    def _update(self, change, domain):
        before, after = change.before, change.after
        old, new = before["address"], after["address"]
        dn = self.user_dn(old, domain.name)
        if old != new:
            # Order matters for a run killed half way: references first,
            # then the entry's own attributes, the RDN last. Until the RDN
            # changes the next run still sees the old address and redoes
            # each step, all of which are idempotent.
            self._rewrite_references(old, new)
            self.conn.modify_s(dn, [(ldap.MOD_REPLACE, "uid", [_b(local_part(new))])])
            # Taking back an address this account kept as an alias; keeping
            # the old one as an alias is done before the RDN changes too.
            self._modify_value(dn, ldap.MOD_DELETE, "shadowAddress", new)
            if change.keep_old_address:
                self._modify_value(dn, ldap.MOD_ADD, "shadowAddress", old)
        mods = self._status_modlist(after) + self._profile_modlist(after)
        if "aliases" in after:
            mods.append((ldap.MOD_REPLACE, "shadowAddress", [_b(a) for a in after["aliases"]] or None))
        self.conn.modify_s(dn, mods)
        if change.kept is not None:
            self._replace_settings(dn, KEPT_ADDRESS, [KEPT_ADDRESS + a for a in sorted(change.kept)])
        if old != new:
            # The mail home keeps its path, and so do homeDirectory,
            # storageBaseDirectory and mailMessageStore: renaming moves no mail.
            self.conn.rename_s(dn, "mail=%s" % ldap.dn.escape_dn_chars(new), delold=1)

    def alias_dn(self, address, domain):
        return "mail=%s,ou=Aliases,%s" % (ldap.dn.escape_dn_chars(address), self.domain_dn(domain))

    def _write_alias(self, change, resource, domain):
        """A mailAlias entry in ou=Aliases, one mailForwardingAddress per member."""
        if change.kind == plans.DELETE:
            try:
                self.conn.delete_s(self.alias_dn(change.address, domain.name))
            except ldap.NO_SUCH_OBJECT:
                pass
            return
        after = change.after
        values = {
            "cn": [_b(after["name"])] if after["name"] else None,
            "accountStatus": [b"active" if after["active"] else b"disabled"],
            "accessPolicy": [_b(after["access_policy"])],
            "mailForwardingAddress": [_b(m) for m in after["members"]] or None,
        }
        if change.before is None:
            attrs = dict((k, v) for k, v in values.items() if v)
            attrs.update({
                "objectClass": [b"mailAlias"], "mail": [_b(after["address"])],
                "enabledService": [b"mail", b"deliver", b"displayedInGlobalAddressBook"],
                "accountSetting": [_b(ANCHOR_RESOURCE + resource), _b(ANCHOR_GUID + change.guid)],
            })
            dn = self.alias_dn(after["address"], domain.name)
            try:
                self.conn.add_s(dn, ldap.modlist.addModlist(attrs))
                return
            except ldap.ALREADY_EXISTS:
                # Ours only if a concurrent run of this resource wrote it.
                self._require_anchor(dn, after["address"], resource, change.guid)
        old_dn = self.alias_dn(change.address, domain.name)
        # One modify then the RDN: until the RDN changes, a stopped run is
        # redone whole by the next one.
        self.conn.modify_s(old_dn, [(ldap.MOD_REPLACE, k, v) for k, v in values.items()])
        if change.address != after["address"]:
            self.conn.rename_s(old_dn, "mail=%s" % ldap.dn.escape_dn_chars(after["address"]), delold=1)

    def _modify_value(self, dn, op, attr, value):
        """Add or delete one value; already done counts as done."""
        try:
            self.conn.modify_s(dn, [(op, attr, [_b(value)])])
        except (ldap.TYPE_OR_VALUE_EXISTS, ldap.NO_SUCH_ATTRIBUTE):
            pass

    def _replace_settings(self, dn, prefix, values):
        """Make the entry's accountSetting values starting with `prefix` exactly `values`."""
        entries = self._search(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["accountSetting"], "reading %s" % dn)
        current = [v for v in (entries[0][1].get("accountSetting", []) if entries else [])
                   if v.decode("utf-8").startswith(prefix)]
        wanted = [_b(v) for v in values]
        if sorted(current) == sorted(wanted):
            return
        mods = [(ldap.MOD_DELETE, "accountSetting", current)] if current else []
        if wanted:
            mods.append((ldap.MOD_ADD, "accountSetting", wanted))
        self.conn.modify_s(dn, mods)

    def _mark(self, mark, domain):
        dn = self.user_dn(mark.address, domain.name)
        entries = self._search(dn, ldap.SCOPE_BASE, "(objectClass=mailUser)", ["accountSetting"], "reading %s" % dn)
        if not entries:
            return
        mods = [(ldap.MOD_DELETE, "accountSetting", [value]) for value in entries[0][1].get("accountSetting", [])
                if value.decode("utf-8").startswith(REMOVED_SINCE)]
        if mark.removed_since is not None:
            mods.append((ldap.MOD_ADD, "accountSetting", [_b(REMOVED_SINCE + mark.removed_since.strftime(TIME_FORMAT))]))
        if mods:
            self.conn.modify_s(dn, mods)

    @staticmethod
    def _maildir(entry):
        """The absolute mail home as iRedAdmin records it: homeDirectory, else the pre-0.9.8 pair."""
        home = _first(entry, "homeDirectory")
        if home:
            return home
        parts = [(_first(entry, name) or "").strip("/") for name in ("storageBaseDirectory", "mailMessageStore")]
        parts = [part for part in parts if part]
        return "/%s/" % "/".join(parts) if parts else None

    def _rewrite_references(self, old, new):
        for attr in REFERENCE_ATTRIBUTES:
            flt = "(%s=%s)" % (attr, ldap.filter.escape_filter_chars(old))
            for dn, dummy in self._search(self.base_dn, ldap.SCOPE_SUBTREE, flt, ["1.1"], "finding references"):
                mods = [(ldap.MOD_DELETE, attr, [_b(old)])]
                if new is not None:
                    mods.insert(0, (ldap.MOD_ADD, attr, [_b(new)]))
                try:
                    self.conn.modify_s(dn, mods)
                except ldap.TYPE_OR_VALUE_EXISTS:
                    self.conn.modify_s(dn, [(ldap.MOD_DELETE, attr, [_b(old)])])

    def _delete(self, change, resource, domain, keep_mailbox_days, now):
        """iRedAdmin's deletion: schedule the maildir, drop every reference, then the entry and its subtree.

        The maildir is scheduled first, while the entry still says where it
        is; a run stopped after that finds the entry and schedules it again,
        which IRedAdminDatabase makes a no-op.
        """
        dn = self.user_dn(change.address, domain.name)
        if self.iredadmin is not None:
            entries = self._search(dn, ldap.SCOPE_BASE, "(objectClass=mailUser)",
                                   ["homeDirectory", "storageBaseDirectory", "mailMessageStore"],
                                   "reading %s" % dn)
            maildir = self._maildir(entries[0][1]) if entries else None
            if maildir:
                self.iredadmin.schedule_removal(change.address, domain.name, maildir, "mailsync:%s" % resource,
                                                mailbox_delete_date(now, keep_mailbox_days))
        self._rewrite_references(change.address, None)
        children = self._search(dn, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["1.1"], "reading %s" % dn)
        for child_dn, dummy in sorted(children, key=lambda item: -len(item[0])):
            try:
                self.conn.delete_s(child_dn)
            except ldap.NO_SUCH_OBJECT:
                pass
