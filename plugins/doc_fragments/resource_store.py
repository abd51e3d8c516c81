# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Where resources are kept, shared by every module that reads or writes them.
    DOCUMENTATION = r'''
options:
  config_dir:
    description:
      - Directory holding one root-only (mode 0600) JSON file per resource.
    type: path
    default: /etc/mailsync/resources
requirements:
  - python >= 3.8
  - ldap3
  - PyMySQL (for the mysql backend, and for an iRedAdmin database on MariaDB/MySQL)
  - psycopg2 (for the pgsql backend, and for an iRedAdmin database on PostgreSQL)
  - python-ldap (for the ldap backend)
'''
