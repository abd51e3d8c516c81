#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ad_replicate
short_description: Replicate one Active Directory account resource into iRedMail now
version_added: 0.1.0
description:
  - Reads the users a resource declared with M(mailsync.iredmail.ad_resource) selects in Active Directory,
    compares them with the accounts the resource manages in iRedMail, and writes the difference.
  - AD users whose mail address is under the resource's target domain become iRedMail mailboxes exactly
    as iRedAdmin creates them; objects without an address, with an invalid one, outside the target domain,
    or whose address is already an account replication does not manage are skipped and reported.
  - Accounts are anchored on the AD C(objectGUID), never on the address.
  - A run computes the whole plan first and writes it only when not in check mode; on SQL backends the
    plan is written in one transaction.
author:
  - mailsync.iredmail contributors (!UNKNOWN)
extends_documentation_fragment:
  - mailsync.iredmail.resource_store
attributes:
  check_mode:
    support: full
    description: Computes and returns the plan, and writes nothing.
  diff_mode:
    support: full
    description: Shows each pending account change with its fields before and after; no secret is ever included.
options:
  resource:
    description:
      - Name of the resource to replicate.
    type: str
    required: true
    aliases: [name]
  full:
    description:
      - Read every user and reconcile every managed account, instead of only what changed in AD since
        the last run.
      - Full runs also happen by themselves on the first run, when another domain controller answers,
        and every O(mailsync.iredmail.ad_resource#module:full_sync_interval) hours.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait while another replication of the same resource runs (the resource's
        C(mailsync-replicate@RESOURCE) service, another play); the task then fails and writes nothing.
      - Runs of one resource never overlap; they hold an exclusive lock on C(/run/mailsync/RESOURCE.lock)
        (as a user other than root, on C(RESOURCE.lock) in O(config_dir)). Check mode takes no lock.
    type: int
    default: 300
seealso:
  - module: mailsync.iredmail.ad_resource
'''

EXAMPLES = r'''
- name: Replicate the corp resource now
  mailsync.iredmail.ad_replicate:
    resource: corp
  register: replication

- name: Show what replication did
  ansible.builtin.debug:
    var: replication.summary

- name: Preview pending account changes without writing
  mailsync.iredmail.ad_replicate:
    resource: corp
  check_mode: true
  diff: true
'''

RETURN = r'''
summary:
  description: How many accounts each kind of change touched, and how many objects were unchanged or skipped.
  returned: always
  type: dict
  sample: {"created": 2, "updated": 1, "renamed": 0, "disabled": 0, "enabled": 0, "deleted": 0,
           "unchanged": 40, "skipped": 3}
skipped_objects:
  description:
    - AD objects that were not written, each with the reason.
    - Named C(skipped_objects) because Ansible reads a true top-level C(skipped) in a module result as
      "this task was skipped", which would hide the task's diff whenever one object is left out.
  returned: always
  type: list
  elements: dict
  sample: [{"dn": "CN=Printer,OU=Staff,DC=corp,DC=example,DC=com", "guid": "0b5f4d2e-...",
            "address": null, "reason": "no mail address"}]
mode:
  description:
    - V(full) when every user was read, V(incremental) when only what changed in AD since the last run.
  returned: always
  type: str
  sample: incremental
removal_detection:
  description:
    - How an incremental run found users that left Active Directory (deleted, moved out of the resource's
      C(base_dn), no longer selected by its C(user_filter)).
    - V(tombstones) among the objects changed since the last run, deleted objects included, which needs the bind
      account to list C(CN=Deleted Objects) (see the README's least-privilege section); V(scan) by listing the
      objectGUID of every selected user, which any account can but costs a read of the whole scope.
    - V(null) for full runs, which read every user anyway.
  returned: always
  type: str
  sample: tombstones
changes:
  description:
    - The plan, one entry per account change, with the managed fields before and after.
    - In check mode, the changes a real run would write.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "create", "guid": "0b5f4d2e-...", "address": "jane@example.com", "before": null,
            "after": {"address": "jane@example.com", "active": true, "quota": 1024, "display_name": "Jane Doe"}}]
'''

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_connection import LDAP3_IMPORT_ERROR
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import MailsyncError
from ansible_collections.mailsync.iredmail.plugins.module_utils.lock import DEFAULT_LOCK_DIR, ResourceLock
from ansible_collections.mailsync.iredmail.plugins.module_utils.replicate import replicate


def main():
    argument_spec = dict(
        resource=dict(type="str", required=True, aliases=["name"]),
        full=dict(type="bool", default=False),
        lock_timeout=dict(type="int", default=300),
    )
    argument_spec.update(resources.config_dir_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if LDAP3_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("ldap3"), exception=LDAP3_IMPORT_ERROR)
    try:
        resource = resources.load(module.params["config_dir"], module.params["resource"])
        lock = None
        if not module.check_mode:
            # root shares the service's lock; another user cannot run against root's resource files.
            lock_dir = DEFAULT_LOCK_DIR if os.geteuid() == 0 else module.params["config_dir"]
            lock = ResourceLock(lock_dir, resource.name, timeout=module.params["lock_timeout"]).acquire()
        try:
            plan = replicate(resource, check_mode=module.check_mode, full=module.params["full"])
        finally:
            if lock is not None:
                lock.release()
    except MailsyncError as exc:
        module.fail_json(msg=str(exc))
    result = dict(
        changed=bool(plan),
        mode=plan.mode,
        removal_detection=plan.removals,
        summary=plan.summary,
        # Not "skipped": Ansible would take a non-empty list for a skipped task.
        skipped_objects=[skip.as_dict() for skip in plan.skipped],
        changes=[change.as_dict() for change in plan.changes],
    )
    if module._diff:
        result["diff"] = [change.as_diff() for change in plan.changes]
    backend = resource.backend
    deleted = sum(1 for c in plan.changes if c.kind == "delete" and c.object_type == "user")
    if deleted and backend["type"] == "ldap" and not backend.get("iredadmin"):
        module.warn("backend.iredadmin is not set: the maildirs of the %d OpenLDAP account(s) this run deletes "
                    "are not scheduled in iRedAdmin's deleted_mailboxes and stay on disk until removed by hand"
                    % deleted)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
