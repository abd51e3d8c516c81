# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One replication of a resource at a time: an exclusive flock per resource.

The systemd service, a manual `mailsync-replicate` and `ad_replicate` all
take the same lock file, `<lock_dir>/<resource>.lock`, before they write.
The lock is the kernel's (flock), so it is released when its holder exits,
however it exits; the file itself is never removed (removing a lock file
lets two processes lock two different files of the same name).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import time

from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import MailsyncError

# systemd creates it for the service (RuntimeDirectory=mailsync).
DEFAULT_LOCK_DIR = "/run/mailsync"
POLL_SECONDS = 0.2


class LockBusy(MailsyncError):
    """Another replication of the same resource holds the lock."""


class ResourceLock(object):
    """Exclusive lock of one resource; waits up to `timeout` seconds (0: refuse at once)."""

    def __init__(self, lock_dir, name, timeout=0):
        self.path = os.path.join(lock_dir, name + ".lock")
        self.name = name
        self.timeout = timeout
        self.fd = None

    def acquire(self):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory, 0o700)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise MailsyncError("cannot create the lock directory %s: %s" % (directory, exc.strerror))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise MailsyncError("cannot open the lock file %s: %s" % (self.path, exc.strerror))
        deadline = time.monotonic() + max(self.timeout or 0, 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise MailsyncError("cannot lock %s: %s" % (self.path, exc.strerror))
                if time.monotonic() >= deadline:
                    holder = _read_pid(fd)
                    os.close(fd)
                    waited = " after waiting %ss" % self.timeout if self.timeout else ""
                    raise LockBusy("another replication of resource %s is running (%s holds %s)%s; "
                                   "nothing was done" % (self.name, "pid %s" % holder if holder else "a process",
                                                         self.path, waited))
                time.sleep(POLL_SECONDS)
        # For the message another run prints; the lock is the flock, not the pid.
        os.ftruncate(fd, 0)
        os.write(fd, ("%d\n" % os.getpid()).encode("ascii"))
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
        return False


def _read_pid(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None
