# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How to reach and bind to Active Directory.
    DOCUMENTATION = r'''
options:
  server_uri:
    description:
      - Domain controllers to use, as C(ldaps://host[:port]) or C(ldap://host[:port]) URIs, tried in order.
      - With C(ldap://), set O(start_tls=true); a simple bind over plain LDAP is refused unless O(allow_insecure=true).
      - Required when O(state=present).
    type: list
    elements: str
  start_tls:
    description:
      - Upgrade C(ldap://) connections with StartTLS before binding.
    type: bool
    default: false
  validate_certs:
    description:
      - Verify the domain controller's TLS certificate and host name.
      - Only turn this off in a lab; prefer O(ca_cert) for an internal CA.
    type: bool
    default: true
  ca_cert:
    description:
      - PEM file of the CA certificates that signed the domain controllers' certificates.
      - Without it, the system's trusted CAs are used.
    type: path
  allow_insecure:
    description:
      - Allow a simple bind over plain C(ldap://) without StartTLS, which sends the bind password in clear text.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for a domain controller to connect or answer.
    type: int
    default: 10
  bind_dn:
    description:
      - Account replication binds as, as a DN, a user principal name or C(DOMAIN\user).
      - An ordinary domain user can read users and groups; nothing more is needed.
      - Required when O(state=present).
    type: str
  bind_password:
    description:
      - Password of O(bind_dn). Stored in the root-only resource file, never shown.
      - Required when O(state=present).
    type: str
  base_dn:
    description:
      - The container holding the users and groups to replicate, searched with subtree scope.
      - Required when O(state=present).
    type: str
'''
