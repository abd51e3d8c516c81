#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ad_resource
short_description: Declare an Active Directory account resource to replicate into iRedMail
version_added: 0.1.0
description:
  - An AD account resource ties one Active Directory connection (domain controllers, bind account, base DN,
    user and group filters, attribute mapping) to one hosted iRedMail mail domain and one iRedMail
    account store (MariaDB/MySQL, PostgreSQL or OpenLDAP).
  - The resource is kept as one root-only (mode 0600) JSON file per resource under O(config_dir).
    M(mailsync.iredmail.ad_replicate) and the replication service read it.
  - With O(backend.schema_login_user), the module also creates the replication state table in the
    account store once, so that replication itself needs no more than iRedMail's C(vmailadmin) rights.
author:
  - mailsync.iredmail contributors (!UNKNOWN)
extends_documentation_fragment:
  - mailsync.iredmail.ad_connection
  - mailsync.iredmail.resource_store
attributes:
  check_mode:
    support: full
    description: Reports what would change in the resource file and the state table, and writes nothing.
  diff_mode:
    support: full
    description: Shows the resource before and after, every secret masked.
options:
  name:
    description:
      - Name of the resource; letters, digits, C(.), C(_) and C(-), at most 64 characters.
      - Also the file name and the systemd instance name.
    type: str
    required: true
  state:
    description:
      - V(present) writes the resource; V(absent) removes its file (accounts in iRedMail are kept).
    type: str
    choices: [present, absent]
    default: present
  validate:
    description:
      - Test the connection before writing, as iRedMail Enterprise's C(Test connection) does. The module
        connects to the domain controllers, binds, and returns in RV(validation) the first 10 users and the
        first 10 groups the resource selects, with the attributes it maps.
      - A wrong password, a domain controller that cannot be reached, a certificate that fails verification
        and a base DN that does not exist each fail the task with their own message, and nothing is written.
      - Runs in check mode too; it only reads.
    type: bool
    default: false
  target_domain:
    description:
      - The mail domain accounts are created in. It must already be hosted and active in iRedMail.
      - AD objects whose address is not under this domain are skipped and reported.
      - Required when O(state=present).
    type: str
  user_filter:
    description:
      - LDAP filter selecting the users to replicate.
      - The default selects every normal user account, enabled or disabled, and no computers.
    type: str
    default: (sAMAccountType=805306368)
  group_filter:
    description:
      - LDAP filter selecting the groups to replicate as mail aliases.
    type: str
    default: (objectClass=group)
  user_mail_attribute:
    description:
      - AD attribute holding a user's full mail address.
    type: str
    default: userPrincipalName
  group_mail_attribute:
    description:
      - AD attribute holding a group's full mail address.
    type: str
    default: mail
  replicate_groups:
    description:
      - Replicate AD groups whose O(group_mail_attribute) is an address under O(target_domain) as iRedMail
        mail alias accounts, one member per user reached through nested groups.
      - Only members that are active accounts replication manages, or addresses that already exist in the
        domain, are written; the others are reported in C(skipped_objects).
    type: bool
    default: true
  access_policy:
    description:
      - Who may send mail to the aliases replicated from groups, as iRedMail's alias access policy.
      - V(public) everyone; V(domain) senders of the target domain; V(subdomain) of the domain and its
        sub-domains; V(membersonly) the alias's members; V(moderatorsonly) its moderators;
        V(membersandmoderatorsonly) both.
      - Enforced by iRedAPD or iRedMail Enterprise's milter, not by Postfix's lookups.
    type: str
    choices: [public, domain, subdomain, membersonly, moderatorsonly, membersandmoderatorsonly]
    default: public
  attribute_map:
    description:
      - AD attribute for each profile field, overriding the defaults
        (C(display_name=displayName), C(first_name=givenName), C(last_name=sn), C(employee_id=employeeID),
        C(title=title), C(mobile=mobile), C(telephone=telephoneNumber)).
      - Map a field to an empty string to stop managing it; values are then left as set in iRedMail.
      - Values longer than 255 characters are cut at 255.
      - iRedMail's SQL schema has no column for C(title); it is stored on the OpenLDAP backend only.
    type: dict
  quota_attribute:
    description:
      - AD attribute holding a mailbox quota in megabytes (or with a C(M), C(G) or C(T) suffix).
      - Users without a readable value get O(default_quota).
    type: str
  default_quota:
    description:
      - Mailbox quota in megabytes, 0 for unlimited.
      - Defaults to the domain's C(default_user_quota) setting, or 1024.
    type: int
  storage_base_directory:
    description:
      - Storage base directory and node of new mailboxes, as iRedAdmin's C(storage_base_directory).
    type: str
    default: /var/vmail/vmail1
  mailbox_format:
    description:
      - Dovecot mailbox format of new mailboxes.
    type: str
    default: maildir
  mailbox_folder:
    description:
      - Folder inside the mail home that holds mail.
    type: str
    default: Maildir
  language:
    description:
      - Preferred language of new mailboxes, such as C(en_US); empty for the server default.
    type: str
    default: ''
  on_removed:
    description:
      - What happens to an account whose AD object is deleted, moved out of O(base_dn) or no longer
        matches O(user_filter).
      - V(keep) leaves it as it is; V(disable) disables it; V(delete) disables it at once and deletes it
        O(delete_after_days) later, as iRedAdmin deletes an account. The mailbox is scheduled for removal in
        C(deleted_mailboxes) (on SQL backends in O(backend.database), on OpenLDAP in iRedAdmin's database and
        only with O(backend.iredadmin)) and every row or entry that names the address is removed.
      - An object that comes back to AD during the grace period is enabled again and not deleted.
      - A failed or partial read of AD never counts as removal.
    type: str
    choices: [keep, disable, delete]
    default: disable
  delete_after_days:
    description:
      - With O(on_removed=delete), days an account stays disabled after its object left AD before it
        is deleted. V(0) deletes on the first run that finds the object gone.
    type: int
    default: 30
  keep_mailbox_days:
    description:
      - When an account is deleted, days iRedMail keeps its mailbox on disk before its
        C(delete_mailboxes.py) job removes it; V(0) keeps it until an administrator removes it
        (through C(deleted_mailboxes), on SQL backends and on OpenLDAP with O(backend.iredadmin)).
    type: int
    default: 0
  proxy_addresses:
    description:
      - Read a user's C(proxyAddresses) as Exchange does. The C(SMTP:) value under O(target_domain) is the
        mailbox's address, whatever O(user_mail_attribute) holds; the O(user_mail_attribute) address, when it
        is another address under O(target_domain), becomes an extra address, so mail sent to it still arrives.
        A user without an C(SMTP:) value under O(target_domain) keeps the O(user_mail_attribute) address; so
        does a user with several, which then all become extra addresses, and are reported.
      - The C(smtp:) values under O(target_domain) become extra addresses of the account (SQL C(forwardings)
        with C(is_alias=1); OpenLDAP C(shadowAddress)); C(X500:), C(SIP:) and other prefixes are ignored.
      - An address claimed by two AD objects, users or groups (O(replicate_groups)), is written for neither
        and reported; a user whose own address is claimed so is left out, and an extra address another
        object claims is left off the account. An extra address never takes away another user's own address.
      - With the C(mailsync.iredmail.dovecot_ad_auth) role, set its C(dovecot_ad_auth_proxy_addresses) as this
        option, so that users whose address comes from C(SMTP:) log in with their AD password.
      - When true, replication owns the extra addresses of the accounts it manages.
    type: bool
    default: true
  keep_old_address:
    description:
      - When a user's address changes in AD, keep the old address as an alias of the renamed account,
        so mail sent to it still arrives.
    type: bool
    default: false
  full_sync_interval:
    description:
      - Hours after which a run reads every user again instead of only the changes since the last run.
      - Full runs retry objects skipped earlier (an address conflict that was since resolved) and repair
        accounts changed by hand in iRedMail.
    type: int
    default: 24
  max_deletes:
    description:
      - Most accounts one run may disable or delete, as a count (V(25)) or a percentage of the managed
        accounts (V(10%)). A run that would exceed it fails and writes nothing.
      - By default 10% of the managed accounts, and never fewer than 10.
    type: str
  backend:
    description:
      - The iRedMail account store to write to.
      - Required when O(state=present).
    type: dict
    suboptions:
      type:
        description:
          - V(mysql) for MariaDB/MySQL, V(pgsql) for PostgreSQL, V(ldap) for OpenLDAP.
        type: str
        required: true
        choices: [mysql, pgsql, ldap]
      host:
        description: Database host (SQL backends).
        type: str
        default: 127.0.0.1
      port:
        description: Database port (SQL backends); the engine's default when omitted.
        type: int
      login_user:
        description:
          - Database login (SQL backends), such as iRedMail's C(vmailadmin).
          - It needs SELECT, INSERT, UPDATE and DELETE on the database, nothing more.
        type: str
      login_password:
        description: Password of O(backend.login_user). Stored in the root-only resource file, never shown.
        type: str
      login_unix_socket:
        description: Unix socket of a local MySQL server, used instead of O(backend.host).
        type: path
      database:
        description: Database holding iRedMail's accounts (SQL backends).
        type: str
        default: vmail
      schema_login_user:
        description:
          - A login allowed to create tables (SQL backends). When given, the replication state table is
            created in O(backend.database) if it is missing.
          - Used once by this module and never stored.
        type: str
      schema_login_password:
        description: Password of O(backend.schema_login_user). Never stored, never shown.
        type: str
      server_uri:
        description: OpenLDAP URI (ldap backend), such as C(ldap://127.0.0.1:389).
        type: str
      bind_dn:
        description: DN to bind to OpenLDAP as (ldap backend), such as C(cn=vmailadmin,dc=example,dc=com).
        type: str
      bind_password:
        description: Password of O(backend.bind_dn). Stored in the root-only resource file, never shown.
        type: str
      base_dn:
        description: iRedMail's domains container (ldap backend), such as C(o=domains,dc=example,dc=com).
        type: str
      connect_timeout:
        description: Seconds to wait for the account store (and O(backend.iredadmin)) to connect.
        type: int
        default: 10
      iredadmin:
        description:
          - iRedAdmin's own SQL database (ldap backend only). On an iRedMail server with the OpenLDAP backend,
            iRedAdmin and iRedMail's hourly C(delete_mailboxes.py) keep C(deleted_mailboxes) and C(used_quota)
            there; iRedAdmin's C(settings.py) names it (C(iredadmin_db_*)).
          - With it, deleting an account first records its mailbox (the entry's absolute C(homeDirectory), or
            C(storageBaseDirectory)/C(mailMessageStore)) in C(deleted_mailboxes) with the date
            O(keep_mailbox_days) sets, once even when a run is stopped and run again, and removes the
            account's C(used_quota) row, as iRedAdmin does. The database is connected only by runs that delete.
          - Without it, deleting an account on OpenLDAP removes the entry and its references but schedules no
            mailbox. The maildir stays on disk until removed by hand, and M(mailsync.iredmail.ad_replicate)
            warns on each run that deletes.
          - The login needs SELECT, INSERT and DELETE on C(deleted_mailboxes), and DELETE on C(used_quota).
        type: dict
        suboptions:
          type:
            description: V(mysql) for MariaDB/MySQL (iRedMail's usual choice), V(pgsql) for PostgreSQL.
            type: str
            choices: [mysql, pgsql]
            default: mysql
          host:
            description: Database host.
            type: str
            default: 127.0.0.1
          port:
            description: Database port; the engine's default when omitted.
            type: int
          login_user:
            description: Database login, such as iRedMail's C(iredadmin).
            type: str
            required: true
          login_password:
            description:
              - Password of O(backend.iredadmin.login_user). Stored in the root-only resource file, never shown.
            type: str
          login_unix_socket:
            description: Unix socket of a local server, used instead of O(backend.iredadmin.host).
            type: path
          database:
            description: Name of iRedAdmin's database.
            type: str
            default: iredadmin
notes:
  - AD passwords are not replicated; replicated accounts get an unusable local password hash.
  - A renamed account keeps its mail home, so no mail moves or is lost.
  - If AD returns no user at all while the resource manages accounts, the run fails and writes nothing.
seealso:
  - module: mailsync.iredmail.ad_replicate
'''

EXAMPLES = r'''
- name: Replicate corp.example.com's AD users into the iRedMail MariaDB backend
  mailsync.iredmail.ad_resource:
    name: corp
    target_domain: example.com
    server_uri:
      - ldaps://dc1.corp.example.com
      - ldaps://dc2.corp.example.com
    ca_cert: /etc/ssl/certs/corp-ca.pem
    bind_dn: CN=mailsync,CN=Users,DC=corp,DC=example,DC=com
    bind_password: "{{ vault_mailsync_bind_password }}"
    base_dn: OU=Staff,DC=corp,DC=example,DC=com
    user_mail_attribute: mail
    on_removed: disable
    max_deletes: 10%
    backend:
      type: mysql
      host: 127.0.0.1
      login_user: vmailadmin
      login_password: "{{ vault_vmailadmin_password }}"
      schema_login_user: root
      schema_login_password: "{{ vault_mysql_root_password }}"

- name: StartTLS on port 389, with a custom attribute mapping
  mailsync.iredmail.ad_resource:
    name: branch
    target_domain: branch.example.com
    server_uri: [ldap://dc3.corp.example.com]
    start_tls: true
    bind_dn: mailsync@corp.example.com
    bind_password: "{{ vault_mailsync_bind_password }}"
    base_dn: OU=Branch,DC=corp,DC=example,DC=com
    attribute_map:
      employee_id: employeeNumber
      mobile: ''
    quota_attribute: extensionAttribute1
    backend:
      type: mysql
      login_user: vmailadmin
      login_password: "{{ vault_vmailadmin_password }}"

- name: Declare a resource and test it against AD first (wrong settings fail and write nothing)
  mailsync.iredmail.ad_resource:
    name: corp
    target_domain: example.com
    server_uri: [ldaps://dc1.corp.example.com]
    bind_dn: CN=mailsync,CN=Users,DC=corp,DC=example,DC=com
    bind_password: "{{ vault_mailsync_bind_password }}"
    base_dn: OU=Staff,DC=corp,DC=example,DC=com
    backend:
      type: mysql
      login_user: vmailadmin
      login_password: "{{ vault_vmailadmin_password }}"
    validate: true
  register: corp

- name: Show the first users and groups the resource reads
  ansible.builtin.debug:
    var: corp.validation

- name: OpenLDAP backend; deleted mailboxes are scheduled in iRedAdmin's database, as iRedAdmin does
  mailsync.iredmail.ad_resource:
    name: corp
    target_domain: example.com
    server_uri: [ldaps://dc1.corp.example.com]
    bind_dn: CN=mailsync,CN=Users,DC=corp,DC=example,DC=com
    bind_password: "{{ vault_mailsync_bind_password }}"
    base_dn: OU=Staff,DC=corp,DC=example,DC=com
    on_removed: delete
    keep_mailbox_days: 30
    backend:
      type: ldap
      server_uri: ldap://127.0.0.1:389
      bind_dn: cn=vmailadmin,dc=example,dc=com
      bind_password: "{{ vault_ldap_vmailadmin_password }}"
      base_dn: o=domains,dc=example,dc=com
      iredadmin:
        type: mysql
        login_user: iredadmin
        login_password: "{{ vault_iredadmin_db_password }}"

- name: Remove a resource (iRedMail accounts are kept)
  mailsync.iredmail.ad_resource:
    name: branch
    state: absent
'''

RETURN = r'''
path:
  description: The resource file.
  returned: always
  type: str
  sample: /etc/mailsync/resources/corp.json
resource:
  description: The stored options, every secret masked.
  returned: when O(state=present)
  type: dict
  sample: {"target_domain": "example.com", "bind_password": "********"}
state_schema:
  description:
    - V(created) when the replication state table was created (or would be, in check mode),
      V(present) when it already existed, V(not_checked) without O(backend.schema_login_user).
  returned: when O(state=present)
  type: str
  sample: present
validation:
  description:
    - What the connection test read, with O(validate=true).
    - C(server) is the domain controller that answered; C(users) and C(groups) hold at most 10 entries each,
      in the order AD returned them (C(groups) is empty when O(replicate_groups=false)).
    - Each user has its C(dn), C(guid), C(disabled) (the AD flag), C(mail) (the value of
      O(user_mail_attribute)), C(attributes) (each mapped profile field with its AD value) and, with
      O(quota_attribute), C(quota); each group its C(dn), C(guid), C(name) and C(mail)
      (the value of O(group_mail_attribute)).
  returned: when O(validate=true) and O(state=present)
  type: dict
  sample: {"server": "ldaps://dc1.corp.example.com:636", "bind_dn": "CN=mailsync,CN=Users,DC=corp,DC=example,DC=com",
           "base_dn": "OU=Staff,DC=corp,DC=example,DC=com",
           "users": [{"dn": "CN=Jane Doe,OU=Staff,DC=corp,DC=example,DC=com",
                      "guid": "0b5f4d2e-6c1a-4d8e-9a51-3f0f2b7c9e11", "disabled": false,
                      "mail": "jane.doe@example.com",
                      "attributes": {"display_name": "Jane Doe", "first_name": "Jane", "last_name": "Doe"}}],
           "groups": [{"dn": "CN=Sales,OU=Staff,DC=corp,DC=example,DC=com",
                       "guid": "5d1c7b0e-2f3a-4b6c-8d9e-0a1b2c3d4e5f", "name": "Sales",
                       "mail": "sales@example.com"}]}
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_probe import probe
from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_connection import LDAP3_IMPORT_ERROR
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import MailsyncError
from ansible_collections.mailsync.iredmail.plugins.module_utils.replicate import ensure_state_schema

# Credentials used once to create tables are never written to the file.
NOT_STORED = ("schema_login_user", "schema_login_password")


def diff_view(options, other):
    """Masked options, marking secrets that differ from `other` so a password change shows."""
    view = resources.masked(options)
    for key in resources.SECRET_KEYS:
        if options.get(key) != (other or {}).get(key) and options.get(key) is not None:
            view[key] = resources.MASK + " (changed)"
    backend, other_backend = options.get("backend") or {}, (other or {}).get("backend") or {}
    for key in resources.SECRET_KEYS:
        if backend.get(key) is not None and backend.get(key) != other_backend.get(key):
            view["backend"][key] = resources.MASK + " (changed)"
    iredadmin, other_iredadmin = backend.get("iredadmin") or {}, other_backend.get("iredadmin") or {}
    if iredadmin.get("login_password") is not None and \
            iredadmin.get("login_password") != other_iredadmin.get("login_password"):
        view["backend"]["iredadmin"]["login_password"] = resources.MASK + " (changed)"
    return view


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        validate=dict(type="bool", default=False),
    )
    argument_spec.update(resources.config_dir_spec())
    argument_spec.update(resources.resource_options())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if LDAP3_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("ldap3"), exception=LDAP3_IMPORT_ERROR)

    name, config_dir = module.params["name"], module.params["config_dir"]
    try:
        before = resources.read_stored(config_dir, name)
        path = resources.resource_path(config_dir, name)
        if module.params["state"] == "absent":
            changed = before is not None
            if changed and not module.check_mode:
                resources.remove(config_dir, name)
            module.exit_json(changed=changed, path=path,
                             diff={"before": resources.masked(before) if before else {}, "after": {}})

        options = dict((key, module.params[key]) for key in resources.resource_options())
        options = resources.validate(name, options)
        backend = dict(options["backend"])
        stored = dict(options, backend=dict(backend, **dict((key, None) for key in NOT_STORED)))

        extra = {}
        if module.params["validate"]:
            # Before anything is written: a resource that cannot read AD is not stored.
            try:
                extra["validation"] = probe(resources.Resource(name, options))
            except MailsyncError as exc:
                module.fail_json(msg="connection test of resource %s failed: %s" % (name, exc), path=path)

        state_schema = "not_checked"
        schema_changed = False
        if backend.get("schema_login_user"):
            schema_changed = ensure_state_schema(backend, module.check_mode)
            state_schema = "created" if schema_changed else "present"

        if before is not None:
            before = resources.with_defaults(before)
        changed = stored != before
        if changed and not module.check_mode:
            resources.store(config_dir, name, stored)
        module.exit_json(
            changed=changed or schema_changed, path=path, resource=resources.masked(stored),
            state_schema=state_schema,
            diff={"before": diff_view(before, stored) if before else {}, "after": diff_view(stored, before)},
            **extra)
    except MailsyncError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
