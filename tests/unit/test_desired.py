from ansible_collections.mailsync.iredmail.plugins.module_utils.desired import desired_accounts, parse_quota
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import DirectoryUser

MAP = {"display_name": "displayName"}


def user(guid, mail, disabled=False, **attributes):
    attributes.setdefault("displayName", "User %s" % guid)
    return DirectoryUser(guid, "CN=%s,DC=corp" % guid, mail, disabled, attributes)


def test_users_become_accounts_keyed_on_guid():
    state = desired_accounts([user("g1", " Jane@Example.com"), user("g2", "bob@example.com", disabled=True)],
                             "example.com", 1024, MAP)
    assert sorted(state.accounts) == ["g1", "g2"]
    assert state.accounts["g1"].address == "jane@example.com"
    assert state.accounts["g1"].profile == {"display_name": "User g1"}
    assert state.accounts["g2"].active is False
    assert state.skipped == []


def test_objects_that_cannot_be_mailboxes_are_skipped_with_reasons():
    state = desired_accounts([
        user("g1", None), user("g2", "not-an-address"), user("g3", "jane@other.org"),
        user("g4", "jané@example.com"), user("g5", "ok@example.com"),
    ], "example.com", 1024, MAP)
    assert list(state.accounts) == ["g5"]
    reasons = dict((skip.guid, skip.reason) for skip in state.skipped)
    assert reasons["g1"] == "no mail address"
    assert reasons["g2"].startswith("invalid address")
    assert reasons["g3"] == "address outside target domain example.com"
    assert reasons["g4"].startswith("invalid address")


def test_subdomain_is_outside_the_target_domain():
    state = desired_accounts([user("g1", "a@sub.example.com")], "example.com", 1024, MAP)
    assert state.accounts == {}


def test_an_address_claimed_twice_is_written_for_neither():
    state = desired_accounts([user("g1", "same@example.com"), user("g2", "SAME@example.com"),
                              user("g3", "other@example.com")], "example.com", 1024, MAP)
    assert list(state.accounts) == ["g3"]
    assert sorted(skip.guid for skip in state.skipped) == ["g1", "g2"]
    assert all("claimed by 2 AD objects" in skip.reason for skip in state.skipped)


def test_quota_from_attribute_or_default():
    state = desired_accounts([user("g1", "a@example.com", quota="2G"), user("g2", "b@example.com", quota="junk"),
                              user("g3", "c@example.com")], "example.com", 512, MAP, quota_attribute="quota")
    assert [state.accounts[g].quota for g in ("g1", "g2", "g3")] == [2048, 512, 512]


def test_parse_quota():
    assert parse_quota("100") == 100
    assert parse_quota("100M") == 100
    assert parse_quota("3 GB") == 3072
    assert parse_quota("1t") == 1048576
    assert parse_quota("-1") is None
    assert parse_quota(None) is None
