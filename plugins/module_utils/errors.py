# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors the modules turn into a failed task.

Every message says what the administrator must fix and never carries a
secret: callers build messages from names, DNs and addresses only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class MailsyncError(Exception):
    """A failure the user can act on; nothing has been written when raised."""


class ConfigError(MailsyncError):
    """The resource is invalid."""


class DirectoryError(MailsyncError):
    """Active Directory could not be read completely."""


class BackendError(MailsyncError):
    """The iRedMail account store refused or could not be reached."""


class TransientBackendError(BackendError):
    """The store gave up on this transaction (a deadlock); running it again may succeed."""


class SafetyLimitError(MailsyncError):
    """The plan would remove more accounts than the resource allows."""
