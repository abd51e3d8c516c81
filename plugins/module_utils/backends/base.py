# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small interface every iRedMail account store implements."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import BackendError
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import DEFAULT_QUOTA_MB


class DomainInfo(object):
    """A hosted domain as the account store describes it."""

    def __init__(self, name, default_quota=DEFAULT_QUOTA_MB, disabled_services=()):
        self.name = name
        self.default_quota = default_quota
        # service names (e.g. "pop3") the domain disables for new users
        self.disabled_services = tuple(disabled_services)


def require_hosted(domain, found, active, backup_mx):
    """Raise unless replication may write accounts into `domain`."""
    if not found:
        raise BackendError("target domain %s is not hosted on this iRedMail server; "
                           "create it first (nothing was written)" % domain)
    if not active:
        raise BackendError("target domain %s is disabled on this iRedMail server; "
                           "enable it first (nothing was written)" % domain)
    if backup_mx:
        raise BackendError("target domain %s is a backup MX on this iRedMail server, "
                           "not a hosted domain (nothing was written)" % domain)


def mailbox_delete_date(now, keep_mailbox_days):
    """The `deleted_mailboxes.delete_date` iRedAdmin sets: None keeps the maildir until removed by hand."""
    if not keep_mailbox_days:
        return None
    return (now + datetime.timedelta(days=keep_mailbox_days)).date()


class Backend(object):
    """Read the current state of one domain and apply a plan to it.

    Implementations: SQL (MariaDB/MySQL, PostgreSQL) and OpenLDAP. The
    planner and the AD reader never know which one they feed.
    """

    # profile fields (model names) this store has a place for
    profile_fields = ()

    def domain_info(self, domain):
        raise NotImplementedError

    def stored_form(self, fields):
        """Desired fields as this store would hold them; by default unchanged."""
        return fields

    def read_cursor(self, resource, domain):
        """The cursor.Cursor stored by the last run, or None."""
        raise NotImplementedError

    def current_state(self, resource, domain, guids=None, wanted=None):
        """A plan.CurrentState for the accounts `resource` manages in `domain`.

        With `guids`, a store may answer for those objects only, plus
        every account pending deletion (marked `scoped`, with the `total`
        count of managed accounts); it may also answer whole. Its
        `taken_addresses` may be None: they are read by `addresses_in_use`
        once the run knows which addresses it wants. `wanted`, the
        accounts a full run wants by GUID, only saves memory: each account
        read shares their equal values (plan.share_values).
        """
        raise NotImplementedError

    def aliases_listing(self, resource, domain, addresses):
        """The GUIDs of the groups whose aliases (of `resource`) list one of `addresses` as a member."""
        raise NotImplementedError

    def address_owners(self, resource, domain, candidates):
        """For a scoped state: which managed accounts hold which of `candidates`.

        Returns ({address: GUID} of the accounts' own addresses, {address:
        GUID} of their extra addresses). A store whose current_state always
        answers whole needs none.
        """
        return {}, {}

    def addresses_in_use(self, resource, domain, candidates=None):
        """The addresses taken in `domain` (and by other resources anywhere), lower case.

        With `candidates`, only which of those are taken: an incremental run
        asks about the few addresses it plans to write, not about every
        address of the domain.
        """
        raise NotImplementedError

    def apply(self, plan, resource, domain, settings):
        """Write every change of `plan`, then its cursor; all or nothing where the store allows."""
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
