# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iRedAdmin's own SQL database, as the OpenLDAP backend needs it.

With iRedMail's OpenLDAP backend there is no `vmail` database: the tables
iRedAdmin and iRedMail's cron jobs keep about mailboxes (`deleted_mailboxes`,
`used_quota`) live in iRedAdmin's database, `iredadmin`, on MariaDB/MySQL or
PostgreSQL. Deleting a user as iRedAdmin does schedules its maildir there,
where iRedMail's hourly `tools/delete_mailboxes.py` removes it on its date.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import BackendError


class IRedAdminDatabase(object):
    """A connection to the `iredadmin` database; one transaction per deleted mailbox."""

    def __init__(self, store):
        # the SQL account-store class connected to iredadmin: its connection,
        # error wording and clean-up serve here too
        self.store = store
        self.conn = store.conn

    @classmethod
    def connect(cls, options, connect_timeout=10):
        """Connect with `backend.iredadmin` options (type, host, port, login_user, ...)."""
        options = dict(options)
        kind = options.pop("type", None) or "mysql"
        options.setdefault("database", "iredadmin")
        options["database"] = options["database"] or "iredadmin"
        # The account stores' connect() already word their failures without
        # the password; only the connection is kept.
        if kind == "mysql":
            from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.mysql import MySQLBackend
            return cls(MySQLBackend.connect(connect_timeout=connect_timeout, **options))
        if kind == "pgsql":
            from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.pgsql import PgSQLBackend
            return cls(PgSQLBackend.connect(connect_timeout=connect_timeout, **options))
        raise BackendError("backend.iredadmin.type must be mysql or pgsql, not %s" % kind)

    def schedule_removal(self, username, domain, maildir, admin, delete_date):
        """Record the mailbox in `deleted_mailboxes` once, and drop its `used_quota` row.

        Keyed on (username, maildir): the maildir carries its creation
        timestamp, so a run stopped after this commit but before the entry
        went finds its row and adds none, while a later account of the same
        address (a new maildir) gets its own.
        """
        cur = self.conn.cursor()
        try:
            cur.execute("SELECT id FROM deleted_mailboxes WHERE username = %s AND maildir = %s",
                        (username, maildir))
            if not cur.fetchall():
                cur.execute("INSERT INTO deleted_mailboxes (username, domain, maildir, admin, delete_date) "
                            "VALUES (%s, %s, %s, %s, %s)", (username, domain, maildir, admin, delete_date))
            cur.execute("DELETE FROM used_quota WHERE username = %s", (username,))
            self.conn.commit()
        except Exception as exc:  # noqa: BLE001
            self.store._rollback()
            raise BackendError("%s iredadmin database: scheduling the mailbox of %s for removal failed: %s; "
                               "the account was not deleted, the next run tries again"
                               % (self.store.engine, username, self.store._describe_error(exc)))
        finally:
            try:
                cur.close()
            except Exception:  # noqa: BLE001
                pass

    def close(self):
        self.store.close()
