# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB/MySQL dialect of the SQL account store (PyMySQL)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

PYMYSQL_IMPORT_ERROR = None
try:
    import pymysql
except ImportError:  # pragma: no cover - reported by the modules
    pymysql = None
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.sql import (
    CURSOR_TABLE,
    STATE_TABLE,
    SQLBackend,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import BackendError

DEFAULT_PORT = 3306


def describe_error(exc):
    # PyMySQL errors carry (code, message); the message never holds the password.
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return "(%d) %s" % (args[0], args[1])
    return "%s: %s" % (type(exc).__name__, exc)


class MySQLBackend(SQLBackend):
    engine = "MySQL"

    @classmethod
    def connect(cls, host="127.0.0.1", port=None, login_user=None, login_password=None,
                database="vmail", unix_socket=None, login_unix_socket=None, connect_timeout=10, **_ignored):
        if pymysql is None:
            raise BackendError("the Python library PyMySQL is required for the mysql backend")
        try:
            conn = pymysql.connect(
                host=host, port=int(port or DEFAULT_PORT), user=login_user, password=login_password or "",
                database=database, unix_socket=unix_socket or login_unix_socket or None, charset="utf8mb4",
                autocommit=False, connect_timeout=connect_timeout)
        except Exception as exc:  # noqa: BLE001
            raise BackendError("cannot connect to MySQL database %s at %s:%s as %s: %s"
                               % (database, host, port or DEFAULT_PORT, login_user, describe_error(exc)))
        return cls(conn, describe_error)

    def quote(self, identifier):
        return "`%s`" % identifier.replace("`", "``")

    def streaming_cursor(self):
        return self.conn.cursor(pymysql.cursors.SSCursor)

    def is_transient(self, exc):
        # 1213 deadlock, 1205 lock wait timeout: InnoDB rolled back the transaction.
        args = getattr(exc, "args", ())
        return bool(args) and args[0] in (1205, 1213)

    def state_table_ddl(self):
        return [
            "CREATE TABLE IF NOT EXISTS %s ("
            " resource VARCHAR(100) NOT NULL,"
            " guid CHAR(36) NOT NULL,"
            " kind VARCHAR(16) NOT NULL,"
            " address VARCHAR(255) NOT NULL,"
            " kept_addresses TEXT NULL,"
            " removed_since DATETIME NULL DEFAULT NULL,"
            " created DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',"
            " modified DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',"
            " PRIMARY KEY (resource, guid),"
            " UNIQUE KEY (address),"
            " INDEX (resource, kind)"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci" % STATE_TABLE,
            "CREATE TABLE IF NOT EXISTS %s ("
            " resource VARCHAR(100) NOT NULL PRIMARY KEY,"
            " cursor_text VARCHAR(255) NOT NULL,"
            " modified DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01'"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci" % CURSOR_TABLE,
        ]
