# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cutting long lists of GUIDs or addresses into the pieces one query or search may carry."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def batches(items, size):
    """`items`, sorted (so queries repeat alike), in lists of at most `size`."""
    items = sorted(items)
    return [items[start:start + size] for start in range(0, len(items), size)]
