# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL dialect of the SQL account store (psycopg2)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2
    import psycopg2.extras
except ImportError:  # pragma: no cover - reported by the modules
    psycopg2 = None
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.sql import (
    CURSOR_TABLE,
    STATE_TABLE,
    SQLBackend,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import BackendError

DEFAULT_PORT = 5432


def describe_error(exc):
    # libpq's messages name the user and host, never the password.
    text = (getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__).strip()
    return " ".join(text.split())


class PgSQLBackend(SQLBackend):
    engine = "PostgreSQL"

    def __init__(self, connection, describe, login_user):
        super(PgSQLBackend, self).__init__(connection, describe)
        self.login_user = login_user

    @classmethod
    def connect(cls, host="127.0.0.1", port=None, login_user=None, login_password=None,
                database="vmail", login_unix_socket=None, connect_timeout=10, replication_user=None,
                **_ignored):
        if psycopg2 is None:
            raise BackendError("the Python library psycopg2 is required for the pgsql backend")
        try:
            conn = psycopg2.connect(host=login_unix_socket or host, port=int(port or DEFAULT_PORT),
                                    user=login_user, password=login_password or "", dbname=database,
                                    connect_timeout=connect_timeout, application_name="mailsync")
        except Exception as exc:  # noqa: BLE001
            raise BackendError("cannot connect to PostgreSQL database %s at %s:%s as %s: %s"
                               % (database, host, port or DEFAULT_PORT, login_user, describe_error(exc)))
        return cls(conn, describe_error, replication_user or login_user)

    def quote(self, identifier):
        return '"%s"' % identifier.replace('"', '""')

    def streaming_cursor(self):
        # A named cursor is a server-side one; it lives in the read's transaction.
        return self.conn.cursor(name="mailsync_rows")

    def is_transient(self, exc):
        # deadlock_detected, serialization_failure
        return getattr(exc, "pgcode", None) in ("40P01", "40001")

    def insert_many(self, cur, table, columns, rows):
        # psycopg2's executemany sends one statement per row.
        psycopg2.extras.execute_values(
            cur, "INSERT INTO %s (%s) VALUES %%s" % (table, ", ".join(self.quote(c) for c in columns)), rows,
            page_size=1000)

    def state_table_ddl(self):
        # Tables belong to whoever creates them: the replication login is
        # granted exactly what replication uses, as iRedMail grants vmailadmin.
        return [
            "CREATE TABLE IF NOT EXISTS %s ("
            " resource VARCHAR(100) NOT NULL,"
            " guid CHAR(36) NOT NULL,"
            " kind VARCHAR(16) NOT NULL,"
            " address VARCHAR(255) NOT NULL,"
            " kept_addresses TEXT NULL,"
            " removed_since TIMESTAMP WITHOUT TIME ZONE NULL,"
            " created TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),"
            " modified TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),"
            " PRIMARY KEY (resource, guid),"
            " UNIQUE (address))" % STATE_TABLE,
            "CREATE INDEX IF NOT EXISTS idx_%s_resource_kind ON %s (resource, kind)" % (STATE_TABLE, STATE_TABLE),
            "CREATE TABLE IF NOT EXISTS %s ("
            " resource VARCHAR(100) NOT NULL PRIMARY KEY,"
            " cursor_text VARCHAR(255) NOT NULL,"
            " modified TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW())" % CURSOR_TABLE,
            "GRANT SELECT, INSERT, UPDATE, DELETE ON %s, %s TO %s"
            % (STATE_TABLE, CURSOR_TABLE, self.quote(self.login_user)),
        ]
