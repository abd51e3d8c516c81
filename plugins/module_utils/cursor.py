# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the last successful run left off in AD's change history."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json

try:
    from urllib.parse import quote, unquote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote, unquote

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# The SQL stores keep the cursor in a VARCHAR(255).
MAX_LENGTH = 255
# In place of the contested addresses when they do not fit: the next runs
# check every group address again, as if each were contested.
TOO_MANY = "*"


class Cursor(object):
    """A DC's invocationId, the USN read before the last run, and when the last full run was.

    Stored with the accounts (state table or the domain entry) and written
    after them, so a run stopped half way resumes from the previous cursor
    and re-applies what it had not finished.
    """

    __slots__ = ("invocation_id", "usn", "last_full", "settings", "tombstones", "contested")

    def __init__(self, invocation_id, usn, last_full, settings, tombstones=False, contested=()):
        self.invocation_id = invocation_id
        self.usn = int(usn)
        self.last_full = last_full
        # fingerprint of the resource options that decide what is read and
        # written: changing one makes unchanged AD objects matter again
        self.settings = settings
        # whether the bind account saw deleted objects at the last full
        # run: incremental runs then find removals among the changes
        # instead of scanning every user
        self.tombstones = bool(tombstones)
        # addresses two or more AD objects claimed at the last run, written
        # for none: when one object lets go, the other must be read again
        # even if it did not change. None: too many to keep.
        self.contested = None if contested is None else frozenset(contested)

    def __eq__(self, other):
        return isinstance(other, Cursor) and self.encode() == other.encode()

    def __ne__(self, other):
        return not self == other

    def encode(self):
        text = "%s;%d;%s;%s;%s" % (self.invocation_id, self.usn, self.last_full.strftime(TIME_FORMAT),
                                   self.settings, "t" if self.tombstones else "s")
        if self.contested is None:
            return text + ";" + TOO_MANY
        if self.contested:
            listed = text + ";" + ",".join(quote(address, safe="@") for address in sorted(self.contested))
            return listed if len(listed) <= MAX_LENGTH else text + ";" + TOO_MANY
        return text

    @classmethod
    def decode(cls, text):
        try:
            fields = text.split(";")
            # cursors written before the removal mode existed have 4 fields,
            # those without contested addresses 5
            invocation_id, usn, last_full, settings = fields[:4]
            if len(fields) > 6:
                raise ValueError(text)
            tombstones = len(fields) >= 5 and fields[4] == "t"
            contested = ()
            if len(fields) == 6:
                contested = None if fields[5] == TOO_MANY else [unquote(v) for v in fields[5].split(",") if v]
            return cls(invocation_id, int(usn), datetime.datetime.strptime(last_full, TIME_FORMAT), settings,
                       tombstones, contested)
        except (ValueError, AttributeError):
            return None  # unreadable: the next run is a full one

    def allows_incremental(self, invocation_id, settings, now, full_sync_interval_hours):
        """True if changes since this cursor are all this run needs to read."""
        if invocation_id != self.invocation_id or settings != self.settings:
            return False
        return now - self.last_full < datetime.timedelta(hours=full_sync_interval_hours)


def settings_fingerprint(options):
    """A short digest of `options` (JSON-serialisable, no secrets needed)."""
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
