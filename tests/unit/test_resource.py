import json
import os
import stat

import pytest

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import ConfigError


def options(**overrides):
    base = resource.with_defaults({
        "target_domain": "Example.COM", "server_uri": ["ldaps://dc1.corp.example.com"],
        "bind_dn": "CN=svc,DC=corp", "bind_password": "s3cret", "base_dn": "DC=corp",
        "backend": {"type": "mysql", "login_user": "vmailadmin", "login_password": "dbsecret"},
    })
    base.update(overrides)
    return base


def test_valid_resource_is_normalised():
    result = resource.validate("corp", options())
    assert result["target_domain"] == "example.com"


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x" * 65, "../etc"])
def test_bad_names_are_refused(name):
    with pytest.raises(ConfigError):
        resource.validate(name, options())


@pytest.mark.parametrize("overrides, words", [
    ({"target_domain": "not a domain"}, "not a domain name"),
    ({"server_uri": ["http://dc1"]}, "must be ldap://"),
    ({"server_uri": ["ldap://dc1"]}, "refusing a simple bind"),
    ({"max_deletes": "lots"}, "max_deletes"),
    ({"attribute_map": {"shoe_size": "x"}}, "unknown fields shoe_size"),
    ({"storage_base_directory": "vmail"}, "absolute path"),
    ({"bind_password": None}, "missing required options: bind_password"),
    ({"backend": {"type": "mysql"}}, "login_user is required"),
    ({"backend": {"type": "ldap", "server_uri": "ldap://x"}}, "backend.bind_dn"),
])
def test_invalid_resources_get_clear_errors(overrides, words):
    with pytest.raises(ConfigError) as err:
        resource.validate("corp", options(**overrides))
    assert words in str(err.value)
    assert "s3cret" not in str(err.value) and "dbsecret" not in str(err.value)


def test_plain_ldap_is_accepted_with_start_tls_or_explicit_insecure():
    resource.validate("corp", options(server_uri=["ldap://dc1"], start_tls=True))
    resource.validate("corp", options(server_uri=["ldap://dc1"], allow_insecure=True))


def test_masked_hides_every_secret():
    shown = json.dumps(resource.masked(options()))
    assert "s3cret" not in shown and "dbsecret" not in shown and resource.MASK in shown


LDAP_BACKEND = {"type": "ldap", "server_uri": "ldap://127.0.0.1", "bind_dn": "cn=vmailadmin,dc=example,dc=com",
                "bind_password": "ldapsecret", "base_dn": "o=domains,dc=example,dc=com"}


def test_iredadmin_database_is_filled_with_defaults_and_masked():
    stored = resource.with_defaults(dict(options(), backend=dict(
        LDAP_BACKEND, iredadmin={"login_user": "iredadmin", "login_password": "admsecret"})))
    result = resource.validate("corp", stored)
    iredadmin = result["backend"]["iredadmin"]
    assert (iredadmin["type"], iredadmin["host"], iredadmin["database"]) == ("mysql", "127.0.0.1", "iredadmin")
    shown = json.dumps(resource.masked(result))
    assert "admsecret" not in shown and "ldapsecret" not in shown


def test_a_resource_file_without_iredadmin_keeps_it_unset():
    result = resource.validate("corp", resource.with_defaults(dict(options(), backend=dict(LDAP_BACKEND))))
    assert result["backend"]["iredadmin"] is None


@pytest.mark.parametrize("backend, words", [
    ({"type": "mysql", "login_user": "vmailadmin", "iredadmin": {"login_user": "iredadmin"}},
     "backend.iredadmin is for the ldap backend only"),
    (dict(LDAP_BACKEND, iredadmin={"login_password": "admsecret"}), "backend.iredadmin.login_user is required"),
    (dict(LDAP_BACKEND, iredadmin={"type": "oracle", "login_user": "x"}), "must be mysql or pgsql"),
])
def test_invalid_iredadmin_database_gets_clear_errors(backend, words):
    with pytest.raises(ConfigError) as err:
        resource.validate("corp", resource.with_defaults(dict(options(), backend=backend)))
    assert words in str(err.value) and "admsecret" not in str(err.value)


def test_attribute_map_overrides_and_disables_fields():
    res = resource.Resource("corp", options(attribute_map={"employee_id": "employeeNumber", "mobile": ""}))
    mapping = res.attribute_map
    assert mapping["employee_id"] == "employeeNumber"
    assert "mobile" not in mapping
    assert mapping["display_name"] == "displayName"


def test_store_and_load_round_trip_root_only(tmp_path):
    config_dir = str(tmp_path / "resources")
    path = resource.store(config_dir, "corp", options())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(config_dir).st_mode) == 0o700
    loaded = resource.load(config_dir, "corp")
    assert loaded.bind_password == "s3cret" and loaded.target_domain == "example.com"


def test_missing_and_corrupt_files(tmp_path):
    config_dir = str(tmp_path)
    with pytest.raises(ConfigError) as err:
        resource.load(config_dir, "nope")
    assert "no resource named nope" in str(err.value)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError) as err:
        resource.load(config_dir, "bad")
    assert "not valid JSON" in str(err.value)
