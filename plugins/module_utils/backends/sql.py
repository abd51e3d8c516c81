# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iRedMail's SQL account store, shared by MariaDB/MySQL and PostgreSQL.

The records written are those iRedAdmin writes and iRedMail's Postfix and
Dovecot queries read: a `mailbox` row and its `forwardings` self row per
user. Replication state (which AD object owns which account) lives in the
`mailsync_object` table of the same database, written in the same
transaction, so an account and its anchor never disagree.

Each dialect supplies its driver connection, identifier quoting and DDL;
every statement here uses only the portable subset (`%s` parameters,
timestamps passed from Python).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.base import (
    Backend,
    DomainInfo,
    mailbox_delete_date,
    require_hosted,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.batches import batches
from ansible_collections.mailsync.iredmail.plugins.module_utils.cursor import Cursor
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import (
    BackendError,
    TransientBackendError,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import (
    DEFAULT_QUOTA_MB,
    domain_of,
    maildir_path,
    split_storage_base,
    unusable_password_hash,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils import plan as plans

STATE_TABLE = "mailsync_object"
CURSOR_TABLE = "mailsync_cursor"
# addresses per query when a run asks about some addresses only
ADDRESS_BATCH = 500

# model profile field -> mailbox column. iRedMail's SQL schema has no
# column for a job title, so `title` is not stored on SQL backends.
PROFILE_COLUMNS = {
    "display_name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "employee_id": "employeeid",
    "mobile": "mobile",
    "telephone": "telephone",
}

# Dovecot asks for `enable<service><suffix>`: a service the domain disables
# for new users (domain.settings disabled_mail_services) clears each column.
SERVICE_COLUMNS = {
    "smtp": ("enablesmtp", "enablesmtpsecured"),
    "pop3": ("enablepop3", "enablepop3secured", "enablepop3tls"),
    "imap": ("enableimap", "enableimapsecured", "enableimaptls"),
    "managesieve": ("enablemanagesieve", "enablemanagesievesecured"),
    "sieve": ("enablesieve", "enablesievesecured", "enablesievetls"),
    "deliver": ("enabledeliver",),
    "lda": ("enablelda",),
    "lmtp": ("enablelmtp",),
    "sogo": ("enablesogo",),
}

# Tables that name a user by address: a rename rewrites each of them so
# forwardings, memberships, admin rights and counters follow the user.
ADDRESS_COLUMNS = (
    ("forwardings", "address"),
    ("forwardings", "forwarding"),
    ("moderators", "moderator"),
    ("domain_admins", "username"),
    ("used_quota", "username"),
    ("last_login", "username"),
    ("sender_bcc_user", "username"),
    ("recipient_bcc_user", "username"),
)


def param_list(items):
    """`%s, %s, …`: one driver placeholder per item, for an IN list or a VALUES row."""
    return ", ".join(["%s"] * len(items))


def parse_domain_settings(text):
    """iRedMail's `key:value;key:value;` domain settings as a dict."""
    settings = {}
    for item in (text or "").split(";"):
        key, sep, value = item.partition(":")
        if sep and key.strip():
            settings[key.strip()] = value.strip()
    return settings


class SQLBackend(Backend):
    """Shared SQL logic; subclasses set the driver and the dialect."""

    profile_fields = tuple(PROFILE_COLUMNS)
    engine = "SQL"

    def __init__(self, connection, describe_error):
        self.conn = connection
        self._describe_error = describe_error
        # resource -> (GUIDs pending deletion, managed count), read once per
        # connection (a run) by the first scoped current_state
        self._scope_base = {}

    # -- dialect hooks -------------------------------------------------
    def quote(self, identifier):
        raise NotImplementedError

    def state_table_ddl(self):
        raise NotImplementedError

    def streaming_cursor(self):
        """A cursor that fetches rows from the server as they are asked for."""
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------
    def _query(self, sql, params=()):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cur.close()

    def _stream(self, sql, params=(), size=1000):
        """The rows of a query, fetched `size` at a time.

        For the read of every managed account: a buffered cursor would hold
        the text of all of them at once, on top of the accounts made of it.
        No other query may run on the connection until the rows are read.
        """
        cur = self.streaming_cursor()
        try:
            cur.execute(sql, params)
            while True:
                rows = cur.fetchmany(size)
                if not rows:
                    return
                yield from rows
        finally:
            cur.close()

    def is_transient(self, exc):
        """True for errors after which the whole transaction may simply be run again."""
        return False

    def _fail(self, doing, exc):
        self._rollback()
        error = TransientBackendError if self.is_transient(exc) else BackendError
        return error("%s %s failed: %s" % (self.engine, doing, self._describe_error(exc)))

    def _rollback(self):
        try:
            self.conn.rollback()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass

    def close(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass

    # -- replication state schema ---------------------------------------
    def ensure_state_schema(self):
        """Create the replication state table (needs CREATE; idempotent)."""
        try:
            cur = self.conn.cursor()
            for statement in self.state_table_ddl():
                cur.execute(statement)
            self.conn.commit()
            try:
                cur.execute("SELECT kept_addresses FROM %s WHERE 1 = 0" % STATE_TABLE)
                cur.fetchall()
            except Exception:  # noqa: BLE001 - a table made by an earlier release lacks the column
                self.conn.rollback()
                cur.execute("ALTER TABLE %s ADD COLUMN kept_addresses TEXT NULL" % STATE_TABLE)
            cur.close()
            self.conn.commit()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("creating the replication state table", exc)

    def check_state_schema(self):
        try:
            self._query("SELECT resource, guid, kind, address, removed_since, kept_addresses FROM %s WHERE 1 = 0"
                        % STATE_TABLE)
            self._query("SELECT resource, cursor_text FROM %s WHERE 1 = 0" % CURSOR_TABLE)
            self.conn.rollback()
        except Exception as exc:  # noqa: BLE001
            self._rollback()
            raise BackendError(
                "the replication state tables %s and %s are missing or unreadable in the %s database (%s); "
                "create it once with ad_resource and backend.schema_login_user/schema_login_password "
                "(a login allowed to CREATE TABLE), then run again"
                % (STATE_TABLE, CURSOR_TABLE, self.engine, self._describe_error(exc)))

    # -- reading ---------------------------------------------------------
    def domain_info(self, domain):
        try:
            rows = self._query("SELECT active, backupmx, settings FROM domain WHERE domain = %s", (domain,))
        except Exception as exc:  # noqa: BLE001
            raise self._fail("reading domain %s" % domain, exc)
        row = rows[0] if rows else (0, 0, "")
        require_hosted(domain, bool(rows), int(row[0]) == 1, int(row[1]) == 1)
        settings = parse_domain_settings(row[2])
        try:
            default_quota = int(settings.get("default_user_quota", DEFAULT_QUOTA_MB))
        except ValueError:
            default_quota = DEFAULT_QUOTA_MB
        disabled = [s.strip() for s in settings.get("disabled_mail_services", "").split(",") if s.strip()]
        return DomainInfo(domain, default_quota, disabled)

    def read_cursor(self, resource, domain):
        self.check_state_schema()
        try:
            rows = self._query("SELECT cursor_text FROM %s WHERE resource = %%s" % CURSOR_TABLE, (resource,))
            self.conn.rollback()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("reading the replication cursor", exc)
        return Cursor.decode(rows[0][0]) if rows else None

    def current_state(self, resource, domain, guids=None, wanted=None):
        managed, alias_owner, wanted = {}, {}, wanted or {}
        try:
            if guids is None:
                self._read_accounts(resource, "", (), managed, alias_owner, wanted)
                total = None
            else:
                # Accounts pending deletion come along: their grace period
                # may run out on any run. A run widens its view several
                # times; they and the count are read once.
                pending, total = self._scope_base.get(resource, (None, None))
                if pending is None:
                    pending = set(row[0] for row in self._query(
                        "SELECT guid FROM %s WHERE resource = %%s AND removed_since IS NOT NULL" % STATE_TABLE,
                        (resource,)))
                    guids = set(guids) | pending
                    total = self._query("SELECT COUNT(*) FROM %s WHERE resource = %%s" % STATE_TABLE,
                                        (resource,))[0][0]
                    self._scope_base[resource] = (pending, total)
                for batch in batches(guids, ADDRESS_BATCH):
                    self._read_accounts(resource, " AND o.guid IN (%s)" % param_list(batch), batch,
                                        managed, alias_owner, wanted)
                total = int(total)
            self.conn.rollback()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("reading the accounts of %s" % domain, exc)
        return plans.CurrentState(managed, None, alias_owner, total=total)

    def _read_accounts(self, resource, narrow, narrow_params, managed, alias_owner, wanted):
        """Add the managed users and groups the `narrow` condition selects to `managed`."""
        params = (resource,) + tuple(narrow_params)
        fields = ["active", "quota"] + [PROFILE_COLUMNS[f] for f in self.profile_fields]
        columns = ", ".join("m.%s" % self.quote(c) for c in ["username"] + fields)
        users = []
        for row in self._stream(
                "SELECT o.guid, o.address, o.removed_since, o.kept_addresses, %s FROM %s o "
                "LEFT JOIN mailbox m ON m.username = o.address "
                "WHERE o.resource = %%s AND o.kind = 'user'%s" % (columns, STATE_TABLE, narrow), params):
            guid, address, removed_since, kept, username = row[:5]
            values = None
            if username is not None:
                # One str when the join matched the same text (the usual case).
                values = {"address": address if username == address else username, "active": int(row[5]) == 1,
                          "quota": int(row[6] or 0), "aliases": []}
                for offset, field in enumerate(self.profile_fields):
                    values[field] = row[7 + offset] or ""
            account = plans.ManagedAccount(guid, address, values, removed_since, kept=kept.split() if kept else ())
            managed[guid] = plans.share_values(account, wanted.get(guid))
            users.append(account)
        owners = dict((account.address.lower(), account.guid) for account in users) if narrow else None
        for alias, dummy, guid in self._forwardings("is_alias", "forwarding", "user", narrow, params, owners):
            alias_owner[alias.lower()] = guid
            if managed[guid].fields is not None:
                managed[guid].fields["aliases"].append(alias.lower())
        for account in users:
            if account.fields is not None:
                account.fields["aliases"].sort()
        groups = self._query(
            "SELECT o.guid, o.address, o.removed_since, a.address, a.active, a.name, a.accesspolicy "
            "FROM %s o LEFT JOIN alias a ON a.address = o.address "
            "WHERE o.resource = %%s AND o.kind = 'group'%s" % (STATE_TABLE, narrow), params)
        owners = dict((row[1].lower(), row[0]) for row in groups) if narrow else None
        members_of = {}
        for dummy, member, guid in self._forwardings("is_list", "address", "group", narrow, params, owners):
            members_of.setdefault(guid, []).append(member.lower())
        for guid, address, removed_since, found, active, name, policy in groups:
            values = None
            if found is not None:
                values = {"address": found, "active": int(active) == 1, "name": name or "",
                          "access_policy": policy or "public", "members": sorted(members_of.get(guid, []))}
            managed[guid] = plans.ManagedAccount(guid, address, values, removed_since, kind=plans.GROUP)

    def _forwardings(self, flag, column, kind, narrow, params, owners):
        """(address, forwarding, GUID) of the rows with `flag` whose `column` is the address of a managed `kind`.

        A whole read joins the state table. A narrow one asks by the state
        addresses it read (`owners`: lower-case address -> GUID) instead:
        right after a bulk load PostgreSQL's statistics may still call
        `forwardings` empty, and the join then loops over every forwarding
        row for each managed one (0.8 s for 100 groups at 10,000 users).
        """
        if not narrow:
            return self._query(
                "SELECT f.address, f.forwarding, o.guid FROM forwardings f JOIN %s o ON f.%s = o.address "
                "WHERE o.resource = %%s AND o.kind = '%s' AND f.%s = 1" % (STATE_TABLE, column, kind, flag), params)
        rows = []
        for batch in batches(owners, ADDRESS_BATCH):
            for address, forwarding in self._query(
                    "SELECT address, forwarding FROM forwardings WHERE %s = 1 AND %s IN (%s)"
                    % (flag, column, param_list(batch)), tuple(batch)):
                guid = owners.get((address if column == "address" else forwarding).lower())
                if guid is not None:
                    rows.append((address, forwarding, guid))
        return rows

    def aliases_listing(self, resource, domain, addresses):
        found = set()
        try:
            for batch in batches(addresses, ADDRESS_BATCH):
                rows = self._query(
                    "SELECT DISTINCT o.guid FROM forwardings f JOIN %s o ON o.address = f.address "
                    "WHERE o.resource = %%s AND o.kind = 'group' AND f.is_list = 1 AND f.forwarding IN (%s)"
                    % (STATE_TABLE, param_list(batch)), tuple([resource] + batch))
                found.update(row[0] for row in rows)
            self.conn.rollback()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("reading the aliases of %s" % domain, exc)
        return found

    def address_owners(self, resource, domain, candidates):
        holders, aliases = {}, {}
        try:
            for batch in batches(candidates, ADDRESS_BATCH):
                marks = param_list(batch)
                # An account removed by hand holds no address, as in a full read.
                rows = self._query(
                    "SELECT o.address, o.guid FROM %s o "
                    "LEFT JOIN mailbox m ON o.kind = 'user' AND m.username = o.address "
                    "LEFT JOIN alias a ON o.kind = 'group' AND a.address = o.address "
                    "WHERE o.resource = %%s AND o.address IN (%s) "
                    "AND (m.username IS NOT NULL OR a.address IS NOT NULL)" % (STATE_TABLE, marks),
                    tuple([resource] + batch))
                holders.update((row[0].lower(), row[1]) for row in rows)
                rows = self._query(
                    "SELECT f.address, o.guid FROM forwardings f JOIN %s o ON f.forwarding = o.address "
                    "WHERE o.resource = %%s AND o.kind = 'user' AND f.is_alias = 1 AND f.address IN (%s)"
                    % (STATE_TABLE, marks), tuple([resource] + batch))
                aliases.update((row[0].lower(), row[1]) for row in rows)
            self.conn.rollback()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("reading the owners of addresses in %s" % domain, exc)
        return holders, aliases

    def addresses_in_use(self, resource, domain, candidates=None):
        # Addresses owned by other resources count as taken, wherever their
        # mailbox lives; the rest only within the domain.
        union = ("SELECT address FROM forwardings WHERE domain = %s{0} "
                 "UNION SELECT address FROM alias WHERE domain = %s{0} "
                 "UNION SELECT username FROM mailbox WHERE domain = %s{1} "
                 "UNION SELECT address FROM " + STATE_TABLE + " WHERE resource <> %s{0}")
        taken = set()
        try:
            if candidates is None:
                rows = self._query(union.format("", ""), (domain, domain, domain, resource))
                taken.update(row[0].lower() for row in rows)
            else:
                for batch in batches(candidates, ADDRESS_BATCH):
                    # LOWER(): PostgreSQL compares case-sensitively, and an
                    # address typed by hand may not be lower case.
                    marks = param_list(batch)
                    rows = self._query(union.format(" AND LOWER(address) IN (%s)" % marks,
                                                    " AND LOWER(username) IN (%s)" % marks),
                                       tuple([domain] + batch + [domain] + batch + [domain] + batch
                                             + [resource] + batch))
                    taken.update(row[0].lower() for row in rows)
            self.conn.rollback()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("reading the addresses in use in %s" % domain, exc)
        return taken

    # -- writing ---------------------------------------------------------
    def apply(self, plan, resource, domain, settings):
        """Write the whole plan in one transaction: all of it or nothing."""
        now = datetime.datetime.now().replace(microsecond=0)
        base, node = split_storage_base(settings.storage_base_directory)
        cur = self.conn.cursor()
        self._queued = {}
        try:
            for change in plans.apply_order(plan.changes):
                if change.object_type == plans.GROUP:
                    self._write_alias(cur, change, resource, domain, now)
                elif change.kind == plans.CREATE:
                    self._create(cur, change, resource, domain, settings, base, node, now)
                elif change.kind == plans.DELETE:
                    self._delete(cur, change, resource, settings.keep_mailbox_days, now)
                else:
                    self._update(cur, change, resource, domain, now)
            self._flush(cur)
            for mark in plan.marks:
                cur.execute("UPDATE %s SET removed_since = %%s WHERE resource = %%s AND guid = %%s" % STATE_TABLE,
                            (mark.removed_since, resource, mark.guid))
            if plan.cursor is not None:
                cur.execute("DELETE FROM %s WHERE resource = %%s" % CURSOR_TABLE, (resource,))
                self._insert(cur, CURSOR_TABLE, {"resource": resource, "cursor_text": plan.cursor.encode(),
                                                 "modified": now})
            self.conn.commit()
        except BackendError:
            self._rollback()
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail("writing the plan (nothing was written)", exc)
        finally:
            try:
                cur.close()
            except Exception:  # noqa: BLE001
                pass

    def _profile_values(self, fields):
        return dict((PROFILE_COLUMNS[f], fields[f]) for f in self.profile_fields if f in fields)

    def _create(self, cur, change, resource, domain, settings, base, node, now):
        after = change.after
        address = after["address"]
        active = 1 if after["active"] else 0
        values = {
            "username": address,
            "password": unusable_password_hash(),
            "storagebasedirectory": base,
            "storagenode": node,
            "maildir": maildir_path(address, now),
            "quota": after["quota"],
            "domain": domain.name,
            "active": active,
            "mailboxformat": settings.mailbox_format,
            "mailboxfolder": settings.mailbox_folder,
            "language": settings.language,
            "passwordlastchange": now,
            "created": now,
            "modified": now,
        }
        values.update(self._profile_values(after))
        for service in domain.disabled_services:
            for column in SERVICE_COLUMNS.get(service, ()):
                values[column] = 0
        if change.recreate:
            # A managed account removed by hand leaves its forwardings and
            # its state row behind; clear them so the create is as new. A
            # mailbox row is never deleted here: one at this address was made
            # by someone else after the plan was read, and the insert below
            # failing rolls the whole plan back with it untouched.
            cur.execute("DELETE FROM forwardings WHERE forwarding = %s AND (address = %s OR is_alias = 1)",
                        (address, address))
            cur.execute("DELETE FROM %s WHERE resource = %%s AND guid = %%s" % STATE_TABLE,
                        (resource, change.guid))
        # New rows are queued and written in a few multi-row statements.
        self._queue("mailbox", values)
        self._queue("forwardings", {
            "address": address, "forwarding": address, "domain": domain.name, "dest_domain": domain.name,
            "is_forwarding": 1, "is_alias": 0, "active": active})
        for alias in after.get("aliases") or ():
            self._queue("forwardings", {
                "address": alias, "forwarding": address, "domain": domain_of(alias), "dest_domain": domain.name,
                "is_forwarding": 0, "is_alias": 1, "active": active})
        self._queue(STATE_TABLE, {
            "resource": resource, "guid": change.guid, "kind": "user", "address": address,
            "kept_addresses": " ".join(sorted(change.kept or ())), "created": now, "modified": now})

    def _queue(self, table, values):
        key = (table, tuple(values))
        self._queued.setdefault(key, []).append(tuple(values.values()))

    def _flush(self, cur):
        # Tables in the order rows refer to each other's addresses.
        for (table, columns), rows in sorted(self._queued.items(), key=lambda item: item[0][0] != "mailbox"):
            self.insert_many(cur, table, columns, rows)
        self._queued = {}

    def insert_many(self, cur, table, columns, rows):
        """Insert many rows at once; a dialect may do it faster."""
        cur.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(self.quote(c) for c in columns),
                                                             param_list(columns)), rows)

    def _update(self, cur, change, resource, domain, now):
        before, after = change.before, change.after
        old, new = before["address"], after["address"]
        if old != new:
            # Taking back an address this account kept as an alias.
            cur.execute("DELETE FROM forwardings WHERE address = %s AND forwarding = %s AND is_alias = 1",
                        (new, old))
            for table, column in ADDRESS_COLUMNS:
                cur.execute("UPDATE %s SET %s = %%s WHERE %s = %%s"
                            % (table, self.quote(column), self.quote(column)), (new, old))
            # The mail home keeps its path: renaming moves no mail.
            cur.execute("UPDATE mailbox SET username = %s WHERE username = %s", (new, old))
            cur.execute("UPDATE %s SET address = %%s, modified = %%s WHERE resource = %%s AND guid = %%s"
                        % STATE_TABLE, (new, now, resource, change.guid))
            if change.keep_old_address:
                # Mail to the old address keeps arriving, as a per-user alias.
                self._insert(cur, "forwardings", {
                    "address": old, "forwarding": new, "domain": domain_of(old), "dest_domain": domain.name,
                    "is_alias": 1, "active": 1 if after["active"] else 0})
        values = {"quota": after["quota"], "active": 1 if after["active"] else 0, "modified": now}
        values.update(self._profile_values(after))
        assignments = ", ".join("%s = %%s" % self.quote(column) for column in values)
        cur.execute("UPDATE mailbox SET %s WHERE username = %%s" % assignments,
                    list(values.values()) + [new])
        if "aliases" in after:
            self._sync_aliases(cur, new, after, domain)
        if change.kept is not None:
            cur.execute("UPDATE %s SET kept_addresses = %%s WHERE resource = %%s AND guid = %%s" % STATE_TABLE,
                        (" ".join(sorted(change.kept)), resource, change.guid))
        if before["active"] != after["active"]:
            # As iRedAdmin does: the self row, forwardings, per-user aliases
            # and alias memberships follow the account's status, or Postfix
            # would still route mail to a disabled user.
            cur.execute("UPDATE forwardings SET active = %s WHERE address = %s OR forwarding = %s",
                        (values["active"], new, new))

    def _delete(self, cur, change, resource, keep_mailbox_days, now):
        """iRedAdmin's deletion: schedule the maildir, remove every row naming the user.

        iRedMail's hourly delete_mailboxes.py removes the maildir on its
        delete_date; no date keeps it until an administrator decides.
        """
        delete_date = mailbox_delete_date(now, keep_mailbox_days)
        address = change.address
        rows = self._query_cur(cur, "SELECT storagebasedirectory, storagenode, maildir, domain "
                                    "FROM mailbox WHERE username = %s", (address,))
        if rows:
            sbase, snode, maildir, domain = rows[0]
            self._insert(cur, "deleted_mailboxes", {
                "username": address, "domain": domain,
                "maildir": "/%s/%s/%s/" % (sbase.strip("/"), snode.strip("/"), maildir.strip("/")),
                "admin": "mailsync:%s" % resource, "delete_date": delete_date})
        for table, column in (("mailbox", "username"), ("domain_admins", "username"),
                              ("recipient_bcc_user", "username"), ("sender_bcc_user", "username"),
                              ("used_quota", "username"), ("forwardings", "address"),
                              ("forwardings", "forwarding"), ("moderators", "moderator")):
            cur.execute("DELETE FROM %s WHERE %s = %%s" % (table, self.quote(column)), (address,))
        cur.execute("DELETE FROM %s WHERE resource = %%s AND guid = %%s" % STATE_TABLE, (resource, change.guid))

    def _sync_aliases(self, cur, address, after, domain):
        """Per-user alias rows (is_alias=1) equal to the account's extra addresses."""
        existing = set(r[0].lower() for r in self._query_cur(
            cur, "SELECT address FROM forwardings WHERE forwarding = %s AND is_alias = 1", (address,)))
        wanted = set(after["aliases"])
        for alias in sorted(existing - wanted):
            cur.execute("DELETE FROM forwardings WHERE address = %s AND forwarding = %s AND is_alias = 1",
                        (alias, address))
        for alias in sorted(wanted - existing):
            self._insert(cur, "forwardings", {"address": alias, "forwarding": address, "domain": domain_of(alias),
                                              "dest_domain": domain.name, "is_alias": 1,
                                              "active": 1 if after["active"] else 0})

    def _write_alias(self, cur, change, resource, domain, now):
        """A mail alias account as iRedAdmin keeps one: the `alias` row, one
        `forwardings` row per member (is_list=1)."""
        before, after = change.before, change.after
        if change.kind == plans.DELETE:
            cur.execute("DELETE FROM alias WHERE address = %s", (change.address,))
            cur.execute("DELETE FROM forwardings WHERE address = %s AND is_list = 1", (change.address,))
            cur.execute("DELETE FROM moderators WHERE address = %s", (change.address,))
            cur.execute("DELETE FROM %s WHERE resource = %%s AND guid = %%s" % STATE_TABLE, (resource, change.guid))
            return
        address, active = after["address"], 1 if after["active"] else 0
        row = {"address": address, "name": after["name"], "accesspolicy": after["access_policy"],
               "active": active, "modified": now}
        if before is None:
            # No DELETE of an alias row: one at this address was made by
            # someone else after the plan was read, and the insert failing
            # rolls the plan back with it untouched.
            cur.execute("DELETE FROM %s WHERE resource = %%s AND guid = %%s" % STATE_TABLE, (resource, change.guid))
            self._queue("alias", dict(row, domain=domain.name, created=now))
            self._queue(STATE_TABLE, {"resource": resource, "guid": change.guid, "kind": plans.GROUP,
                                      "address": address, "created": now, "modified": now})
        else:
            old = before["address"]
            assignments = ", ".join("%s = %%s" % self.quote(column) for column in row)
            cur.execute("UPDATE alias SET %s WHERE address = %%s" % assignments, list(row.values()) + [old])
            if old != address:
                for table in ("forwardings", "moderators"):
                    cur.execute("UPDATE %s SET address = %%s WHERE address = %%s" % table, (address, old))
                cur.execute("UPDATE %s SET address = %%s, modified = %%s WHERE resource = %%s AND guid = %%s"
                            % STATE_TABLE, (address, now, resource, change.guid))
        # Member rows are made equal to the plan whatever they are now: a
        # user renamed in this same run has already rewritten its own rows.
        existing = set(r[0].lower() for r in self._query_cur(
            cur, "SELECT forwarding FROM forwardings WHERE address = %s AND is_list = 1", (address,)))
        wanted = set(after["members"])
        for member in sorted(existing - wanted):
            cur.execute("DELETE FROM forwardings WHERE address = %s AND forwarding = %s AND is_list = 1",
                        (address, member))
        # Queued with the users' rows, already in their final state: a
        # full run writes thousands of members in a few statements.
        for member in sorted(wanted - existing):
            self._queue("forwardings", {"address": address, "forwarding": member, "domain": domain.name,
                                        "dest_domain": domain_of(member), "is_list": 1, "active": active})
        cur.execute("UPDATE forwardings SET active = %s WHERE address = %s AND is_list = 1", (active, address))

    @staticmethod
    def _query_cur(cur, sql, params):
        cur.execute(sql, params)
        return cur.fetchall()

    def _insert(self, cur, table, values):
        columns = ", ".join(self.quote(c) for c in values)
        cur.execute("INSERT INTO %s (%s) VALUES (%s)" % (table, columns, param_list(values)), list(values.values()))
