# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AD account resource: its options, validation, and its root-only file.

One resource = one AD connection, one target mail domain, one backend.
`ad_resource` writes it; `ad_replicate` and the systemd service read it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import tempfile

from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_connection import (
    check_transport,
    parse_uri,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_reader import (
    DEFAULT_GROUP_FILTER,
    DEFAULT_USER_FILTER,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import ConfigError
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import (
    ACCESS_POLICIES,
    DEFAULT_ATTRIBUTE_MAP,
    DEFAULT_STORAGE_BASE_DIRECTORY,
    is_domain_name,
    split_storage_base,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.plan import (
    REMOVED_DELETE,
    REMOVED_DISABLE,
    REMOVED_KEEP,
    parse_max_deletes,
)

DEFAULT_CONFIG_DIR = "/etc/mailsync/resources"
# A resource name is also a file name and a systemd instance name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MASK = "********"
BACKEND_TYPES = ("mysql", "pgsql", "ldap")


def config_dir_spec():
    return dict(config_dir=dict(type="path", default=DEFAULT_CONFIG_DIR))


def backend_options():
    return dict(
        type=dict(type="str", required=True, choices=list(BACKEND_TYPES)),
        host=dict(type="str", default="127.0.0.1"),
        port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        login_unix_socket=dict(type="path"),
        database=dict(type="str", default="vmail"),
        schema_login_user=dict(type="str"),
        schema_login_password=dict(type="str", no_log=True),
        server_uri=dict(type="str"),
        bind_dn=dict(type="str"),
        bind_password=dict(type="str", no_log=True),
        base_dn=dict(type="str"),
        connect_timeout=dict(type="int", default=10),
        iredadmin=dict(type="dict", options=iredadmin_options()),
    )


def iredadmin_options():
    """iRedAdmin's own SQL database: where an OpenLDAP server schedules deleted mailboxes."""
    return dict(
        type=dict(type="str", default="mysql", choices=["mysql", "pgsql"]),
        host=dict(type="str", default="127.0.0.1"),
        port=dict(type="int"),
        login_user=dict(type="str", required=True),
        login_password=dict(type="str", no_log=True),
        login_unix_socket=dict(type="path"),
        database=dict(type="str", default="iredadmin"),
    )


def resource_options():
    """The options a resource stores, shared by ad_resource and the file loader."""
    return dict(
        target_domain=dict(type="str"),
        server_uri=dict(type="list", elements="str"),
        start_tls=dict(type="bool", default=False),
        validate_certs=dict(type="bool", default=True),
        ca_cert=dict(type="path"),
        allow_insecure=dict(type="bool", default=False),
        timeout=dict(type="int", default=10),
        bind_dn=dict(type="str"),
        bind_password=dict(type="str", no_log=True),
        base_dn=dict(type="str"),
        user_filter=dict(type="str", default=DEFAULT_USER_FILTER),
        group_filter=dict(type="str", default=DEFAULT_GROUP_FILTER),
        user_mail_attribute=dict(type="str", default="userPrincipalName"),
        group_mail_attribute=dict(type="str", default="mail"),
        replicate_groups=dict(type="bool", default=True),
        access_policy=dict(type="str", default="public", choices=list(ACCESS_POLICIES)),
        attribute_map=dict(type="dict"),
        quota_attribute=dict(type="str"),
        default_quota=dict(type="int"),
        storage_base_directory=dict(type="str", default=DEFAULT_STORAGE_BASE_DIRECTORY),
        mailbox_format=dict(type="str", default="maildir"),
        mailbox_folder=dict(type="str", default="Maildir"),
        language=dict(type="str", default=""),
        on_removed=dict(type="str", default=REMOVED_DISABLE,
                        choices=[REMOVED_KEEP, REMOVED_DISABLE, REMOVED_DELETE]),
        delete_after_days=dict(type="int", default=30),
        keep_mailbox_days=dict(type="int", default=0),
        keep_old_address=dict(type="bool", default=False),
        proxy_addresses=dict(type="bool", default=True),
        max_deletes=dict(type="str"),
        full_sync_interval=dict(type="int", default=24),
        backend=dict(type="dict", options=backend_options()),
    )


REQUIRED_WHEN_PRESENT = ("target_domain", "server_uri", "bind_dn", "bind_password", "base_dn", "backend")
SECRET_KEYS = ("bind_password", "login_password", "schema_login_password")


def _defaults(spec):
    result = {}
    for key, option in spec.items():
        if "options" in option:
            result[key] = None
        else:
            result[key] = option.get("default")
    return result


class Resource(object):
    """A validated resource; attribute access to its stored options."""

    def __init__(self, name, options):
        self.name = name
        self.options = options

    def __getattr__(self, key):
        try:
            return self.__dict__["options"][key]
        except KeyError:
            raise AttributeError(key)

    @property
    def attribute_map(self):
        """Profile field -> AD attribute, for the fields replication manages."""
        mapping = dict(DEFAULT_ATTRIBUTE_MAP)
        mapping.update(self.options.get("attribute_map") or {})
        return dict((field, attr) for field, attr in mapping.items() if attr)


def validate(name, options):
    """Check everything argument_spec cannot; return the normalised options."""
    if not NAME_RE.match(name or ""):
        raise ConfigError("resource name %r must be 1-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit" % name)
    options = copy.deepcopy(options)
    missing = [key for key in REQUIRED_WHEN_PRESENT if not options.get(key)]
    if missing:
        raise ConfigError("resource %s is missing required options: %s" % (name, ", ".join(missing)))
    domain = options["target_domain"].strip().lower()
    if not is_domain_name(domain):
        raise ConfigError("target_domain %r is not a domain name" % options["target_domain"])
    options["target_domain"] = domain
    for uri in options["server_uri"]:
        parse_uri(uri)
    check_transport(options["server_uri"], options.get("start_tls"), options.get("allow_insecure"))
    parse_max_deletes(options.get("max_deletes"))
    unknown = set(options.get("attribute_map") or {}) - set(DEFAULT_ATTRIBUTE_MAP)
    if unknown:
        raise ConfigError("attribute_map has unknown fields %s; known fields: %s"
                          % (", ".join(sorted(unknown)), ", ".join(sorted(DEFAULT_ATTRIBUTE_MAP))))
    if not options.get("full_sync_interval") or options["full_sync_interval"] < 1:
        raise ConfigError("full_sync_interval must be at least 1 hour")
    for key in ("delete_after_days", "keep_mailbox_days"):
        if options.get(key) is None or options[key] < 0:
            raise ConfigError("%s must be 0 or more days" % key)
    if options.get("default_quota") is not None and options["default_quota"] < 0:
        raise ConfigError("default_quota must be 0 (unlimited) or a number of megabytes")
    base = options.get("storage_base_directory") or ""
    if not base.startswith("/"):
        raise ConfigError("storage_base_directory must be an absolute path, got %r" % base)
    try:
        split_storage_base(base)
    except ValueError as exc:
        raise ConfigError(str(exc))
    _validate_backend(options["backend"])
    return options


def _validate_backend(backend):
    kind = backend.get("type")
    if kind not in BACKEND_TYPES:
        raise ConfigError("backend.type must be one of %s" % ", ".join(BACKEND_TYPES))
    if kind in ("mysql", "pgsql"):
        if not backend.get("login_user"):
            raise ConfigError("backend.login_user is required for the %s backend" % kind)
    else:
        missing = [k for k in ("server_uri", "bind_dn", "bind_password", "base_dn") if not backend.get(k)]
        if missing:
            raise ConfigError("the ldap backend needs backend.%s" % ", backend.".join(missing))
    iredadmin = backend.get("iredadmin")
    if iredadmin:
        if kind != "ldap":
            raise ConfigError("backend.iredadmin is for the ldap backend only: the %s backend schedules deleted "
                              "mailboxes in its own database" % kind)
        if iredadmin.get("type") not in ("mysql", "pgsql"):
            raise ConfigError("backend.iredadmin.type must be mysql or pgsql")
        if not iredadmin.get("login_user"):
            raise ConfigError("backend.iredadmin.login_user is required")


def with_defaults(options):
    """Fill options an older resource file lacks with today's defaults."""
    merged = _defaults(resource_options())
    merged.update(options)
    if merged.get("backend") is not None:
        backend = _defaults(backend_options())
        backend.update(merged["backend"])
        if backend.get("iredadmin") is not None:
            iredadmin = _defaults(iredadmin_options())
            iredadmin.update(backend["iredadmin"])
            backend["iredadmin"] = iredadmin
        merged["backend"] = backend
    return merged


def masked(options):
    """A copy safe to show: every secret replaced, including nested ones."""
    result = copy.deepcopy(options)
    _mask(result)
    return result


def _mask(value):
    if isinstance(value, dict):
        for key in value:
            if key in SECRET_KEYS and value[key] is not None:
                value[key] = MASK
            else:
                _mask(value[key])


def resource_path(config_dir, name):
    if not NAME_RE.match(name or ""):
        raise ConfigError("invalid resource name %r" % name)
    return os.path.join(config_dir, name + ".json")


def read_stored(config_dir, name):
    """The stored options of a resource, or None if it has no file."""
    path = resource_path(config_dir, name)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError) as exc:
        if getattr(exc, "errno", None) == 2:
            return None
        raise ConfigError("cannot read resource file %s: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise ConfigError("resource file %s is not valid JSON: %s" % (path, exc))
    if not isinstance(data, dict) or data.get("name") != name or not isinstance(data.get("options"), dict):
        raise ConfigError("resource file %s is not a mailsync resource named %s" % (path, name))
    return data["options"]


def load(config_dir, name):
    options = read_stored(config_dir, name)
    if options is None:
        raise ConfigError("no resource named %s in %s; declare it with mailsync.iredmail.ad_resource"
                          % (name, config_dir))
    return Resource(name, validate(name, with_defaults(options)))


def store(config_dir, name, options):
    """Write the resource atomically, readable by root only."""
    path = resource_path(config_dir, name)
    if not os.path.isdir(config_dir):
        os.makedirs(config_dir, 0o700)
    payload = json.dumps({"name": name, "options": options}, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".%s." % name, dir=config_dir)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(payload)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove(config_dir, name):
    path = resource_path(config_dir, name)
    if os.path.exists(path):
        os.unlink(path)
        return True
    return False
