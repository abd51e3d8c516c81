import datetime

import pytest

from ansible_collections.mailsync.iredmail.plugins.module_utils import model


@pytest.mark.parametrize("value, expected", [
    ("Jane.Doe@Example.COM", "jane.doe@example.com"),
    ("  jane@example.com \t", "jane@example.com"),
    ("o'brien+tag@example.com", "o'brien+tag@example.com"),
])
def test_normalise_address_accepts(value, expected):
    assert model.normalise_address(value) == expected


@pytest.mark.parametrize("value", [
    None, "", "   ", "jane", "jane@", "@example.com", "jané@example.com", "jane@exa_mple.com",
    "jane..doe@example.com", ".jane@example.com", "jane@localhost", "a" * 65 + "@example.com",
    "x@" + "a" * 250 + ".com", "jane doe@example.com", 'ja"ne@example.com',
])
def test_normalise_address_rejects(value):
    with pytest.raises(model.AddressError):
        model.normalise_address(value)


@pytest.mark.parametrize("address, expected", [
    ("john.doe@example.com", "example.com/j/o/h/john.doe-2026.01.02.03.04.05/"),
    ("jo@example.com", "example.com/j/o/_/jo-2026.01.02.03.04.05/"),
    ("a@example.com", "example.com/a/_/_/a-2026.01.02.03.04.05/"),
    ("j.x@example.com", "example.com/j/_/x/j.x-2026.01.02.03.04.05/"),
    ("~ab@Example.com", "example.com/_/a/b/~ab-2026.01.02.03.04.05/"),
])
def test_maildir_path_follows_iredadmin(address, expected):
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert model.maildir_path(address, now) == expected


def test_split_storage_base():
    assert model.split_storage_base("/var/vmail/vmail1") == ("/var/vmail", "vmail1")
    assert model.split_storage_base("/srv/mail/node2/") == ("/srv/mail", "node2")
    with pytest.raises(ValueError):
        model.split_storage_base("vmail1")


def test_unusable_password_hash_is_ssha512_and_unique():
    first, second = model.unusable_password_hash(), model.unusable_password_hash()
    assert first.startswith("{SSHA512}") and second.startswith("{SSHA512}")
    # 64-byte digest + 8-byte salt, base64-encoded
    assert len(first) == len("{SSHA512}") + 96
    assert first != second


def test_mail_account_compares_managed_fields_only():
    one = model.MailAccount("g", "cn=a", "a@example.com", True, 1024, {"display_name": "A"})
    two = model.MailAccount("g", "cn=b", "a@example.com", True, 1024, {"display_name": "A"})
    assert one == two
    assert one.as_dict() == {"address": "a@example.com", "active": True, "quota": 1024, "display_name": "A"}
    assert one != model.MailAccount("g", "cn=a", "a@example.com", False, 1024, {"display_name": "A"})


def test_profile_values_are_cut_at_the_column_size():
    account = model.MailAccount("g", "cn=a", "a@example.com", profile={"display_name": "x" * 300,
                                                                       "mobile": None})
    assert account.profile["display_name"] == "x" * 255
    assert account.profile["mobile"] == ""
