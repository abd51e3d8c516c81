"""The ad_replication role's files kept in step with the collection."""

import os

import yaml

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, "roles", "ad_replication")


def load(*path):
    with open(os.path.join(ROLE, *path)) as handle:
        return yaml.safe_load(handle)


def test_the_role_passes_every_ad_resource_option():
    tasks = load("tasks", "main.yml")
    declare = [t for t in tasks if "mailsync.iredmail.ad_resource" in t][0]
    passed = set(declare["mailsync.iredmail.ad_resource"])
    accepted = set(["name", "state", "validate"]) | set(resource.config_dir_spec()) | set(resource.resource_options())
    assert passed == accepted
    assert declare["no_log"] == "{{ ad_replication_no_log }}"


def test_the_role_installs_every_package_of_the_replication_code():
    packages = load("vars", "main.yml")["ad_replication_code_packages"]
    base = os.path.join(ROOT, "plugins")
    found = sorted(os.path.relpath(d, base) for d, _, files in os.walk(os.path.join(base, "module_utils"))
                   if "__init__.py" in files and "__pycache__" not in d)
    assert sorted(packages) == found


def test_argument_specs_document_every_default():
    defaults = load("defaults", "main.yml")
    options = load("meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    for name, option in options.items():
        if "default" in option:
            assert option["default"] == defaults[name], name

