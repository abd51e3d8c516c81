from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_reader import DirectoryGroup
from ansible_collections.mailsync.iredmail.plugins.module_utils.desired import (
    desired_accounts,
    desired_aliases,
    leave_out_shared_addresses,
    parse_quota,
)
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


# ------------------------------------------------ proxyAddresses, Exchange's way

def proxied(guid, mail, *proxies):
    return DirectoryUser(guid, "CN=%s,DC=corp" % guid, mail, False, {"displayName": guid}, proxies)


def addresses(state):
    return dict((guid, (account.address, account.aliases)) for guid, account in state.accounts.items())


def with_proxies(users):
    return desired_accounts(users, "example.com", 1024, MAP, proxy_addresses=True)


def test_the_smtp_value_is_the_primary_and_the_mail_attribute_an_extra_address():
    state = with_proxies([proxied("g1", "jo@example.com", "SMTP:Jo.Smith@Example.com", "smtp:js@example.com",
                                  "X500:/o=corp/cn=jo", "SIP:jo@example.com", "smtp:jo@elsewhere.org")])
    assert addresses(state) == {"g1": ("jo.smith@example.com", ["jo@example.com", "js@example.com"])}
    assert state.skipped == []


def test_an_smtp_value_under_the_domain_makes_a_user_of_another_domain_a_mailbox():
    state = with_proxies([proxied("g1", "jo@corp.local", "SMTP:jo@example.com"),
                          proxied("g2", None, "SMTP:kai@example.com")])
    assert addresses(state) == {"g1": ("jo@example.com", []), "g2": ("kai@example.com", [])}
    assert state.skipped == []


def test_without_an_smtp_value_under_the_domain_the_mail_attribute_is_the_primary():
    state = with_proxies([proxied("g1", "jo@example.com", "SMTP:jo@elsewhere.org", "smtp:joe@example.com"),
                          proxied("g2", "kai@corp.local", "SMTP:kai@elsewhere.org", "smtp:kai@example.com")])
    assert addresses(state) == {"g1": ("jo@example.com", ["joe@example.com"])}
    assert [(s.guid, s.reason) for s in state.skipped] == [("g2", "address outside target domain example.com")]


def test_without_the_option_proxy_addresses_change_nothing():
    state = desired_accounts([proxied("g1", "jo@example.com", "SMTP:jo.smith@example.com")], "example.com", 1024, MAP)
    assert addresses(state) == {"g1": ("jo@example.com", None)}


def test_several_smtp_values_leave_the_primary_to_the_mail_attribute_and_are_reported():
    state = with_proxies([proxied("g1", "jo@example.com", "SMTP:a@example.com", "SMTP:b@example.com")])
    assert addresses(state) == {"g1": ("jo@example.com", ["a@example.com", "b@example.com"])}
    assert [(s.guid, s.address) for s in state.skipped] == [("g1", "a@example.com, b@example.com")]
    assert "2 SMTP: primary addresses" in state.skipped[0].reason


def test_an_invalid_smtp_value_is_reported_and_the_mail_attribute_kept():
    state = with_proxies([proxied("g1", "jo@example.com", "SMTP:jö@example.com")])
    assert addresses(state) == {"g1": ("jo@example.com", [])}
    assert state.skipped[0].reason.startswith("proxy address not written")


def test_a_primary_from_smtp_claimed_by_another_user_is_written_for_neither():
    # g1's SMTP: value is g2's UPN: both ask for it as their primary.
    state = with_proxies([proxied("g1", "jo@example.com", "SMTP:kai@example.com"),
                          proxied("g2", "kai@example.com"), proxied("g3", "lu@example.com")])
    assert sorted(state.accounts) == ["g3"]
    assert sorted(s.guid for s in state.skipped) == ["g1", "g2"]
    assert all("claimed by 2 AD objects" in s.reason for s in state.skipped)


def test_a_mail_attribute_kept_as_extra_address_never_displaces_another_primary():
    # g1's UPN became an extra address; g2 has that address as its primary (from SMTP:).
    state = with_proxies([proxied("g1", "jo@example.com", "SMTP:joanna@example.com"),
                          proxied("g2", "x@corp.local", "SMTP:jo@example.com"),
                          proxied("g3", "lu@example.com", "smtp:shared@example.com"),
                          proxied("g4", "mo@example.com", "smtp:shared@example.com")])
    assert addresses(state) == {"g1": ("joanna@example.com", []), "g2": ("jo@example.com", []),
                                "g3": ("lu@example.com", []), "g4": ("mo@example.com", [])}
    reasons = sorted((s.guid, s.address) for s in state.skipped)
    assert reasons == [("g1", "jo@example.com"), ("g3", "shared@example.com"), ("g4", "shared@example.com")]
    assert all("written for none" in s.reason for s in state.skipped)


# ------------------------------------------- an address a user and a group claim

def directory_group(guid, mail, members=()):
    return DirectoryGroup(guid, "CN=%s,OU=Groups,DC=corp" % guid, mail, guid, list(members))


def users_and_groups(users, groups):
    state = with_proxies(users)
    aliases = desired_aliases(groups, {}, "example.com", "public", {})
    leave_out_shared_addresses(state, aliases)
    return state, aliases


def test_an_extra_address_a_group_claims_is_written_for_neither():
    state, aliases = users_and_groups(
        [proxied("u1", "jo@example.com", "smtp:sales@example.com", "smtp:jo.s@example.com")],
        [directory_group("g1", "Sales@example.com"), directory_group("g2", "team@example.com")])
    assert addresses(state) == {"u1": ("jo@example.com", ["jo.s@example.com"])}
    assert sorted(aliases.aliases) == ["g2"]
    left_out = sorted((s.guid, s.address) for s in state.skipped + aliases.skipped)
    assert left_out == [("g1", "sales@example.com"), ("u1", "sales@example.com")]
    assert all("claimed by 2 AD objects (users and groups), written for none" in s.reason
               for s in state.skipped + aliases.skipped)


def test_a_primary_address_a_group_claims_is_written_for_neither():
    state, aliases = users_and_groups(
        [proxied("u1", "hal@example.com"), proxied("u2", "x@corp.local", "SMTP:ivy@example.com"),
         proxied("u3", "kai@example.com")],
        [directory_group("g1", "hal@example.com"), directory_group("g2", "ivy@example.com", ["CN=u3,DC=corp"])])
    assert sorted(state.accounts) == ["u3"] and aliases.aliases == {}
    assert sorted(s.guid for s in state.skipped + aliases.skipped) == ["g1", "g2", "u1", "u2"]


def test_an_address_two_users_contest_is_not_given_to_a_group_either():
    state, aliases = users_and_groups([proxied("u1", "same@example.com"), proxied("u2", "same@example.com")],
                                      [directory_group("g1", "same@example.com")])
    assert state.accounts == {} and aliases.aliases == {}
    assert any(s.guid == "g1" and "claimed by 3 AD objects" in s.reason for s in aliases.skipped)


def test_users_and_groups_with_their_own_addresses_are_untouched():
    state, aliases = users_and_groups([proxied("u1", "jo@example.com", "smtp:joe@example.com")],
                                      [directory_group("g1", "team@example.com", ["CN=u1,DC=corp"])])
    assert addresses(state) == {"u1": ("jo@example.com", ["joe@example.com"])}
    assert sorted(aliases.aliases) == ["g1"] and state.skipped == aliases.skipped == []


# ------------------------------------- what a contested object has already keeps

def test_users_left_out_for_a_contested_address_are_held_not_removed():
    from ansible_collections.mailsync.iredmail.plugins.module_utils import plan as plans
    state = desired_accounts([user("g1", "same@example.com"), user("g2", "SAME@example.com")],
                             "example.com", 1024, MAP)
    assert state.unread == {"g1", "g2"}
    # g1 had the mailbox before g2 took the same address in AD: it stays as
    # it was, active, rather than being disabled as gone from AD.
    fields = {"address": "same@example.com", "active": True, "quota": 1024, "display_name": "User g1"}
    current = plans.CurrentState({"g1": plans.ManagedAccount("g1", "same@example.com", fields)},
                                 {"same@example.com"})
    plan = plans.build_plan(state, current, on_removed="delete")
    assert plan.changes == [] and plan.marks == []
    assert plan.unchanged == 1
    assert sorted(skip.guid for skip in plan.skipped) == ["g1", "g2"]


def test_a_user_and_a_group_left_out_for_a_shared_address_keep_their_accounts():
    from ansible_collections.mailsync.iredmail.plugins.module_utils import plan as plans
    state, aliases = users_and_groups([proxied("u1", "hal@example.com")],
                                      [directory_group("g1", "hal@example.com")])
    assert "u1" in state.unread and aliases.held == {"g1"}
    user_fields = {"address": "hal@example.com", "active": True, "quota": 1024, "display_name": "User u1",
                   "aliases": []}
    group_fields = {"address": "hal@example.com", "active": True, "name": "g1", "access_policy": "public",
                    "members": []}
    current = plans.CurrentState({"u1": plans.ManagedAccount("u1", "hal@example.com", user_fields),
                                  "g1": plans.ManagedAccount("g1", "hal@example.com", group_fields,
                                                             kind=plans.GROUP)},
                                 {"hal@example.com"})
    plan = plans.build_plan(state, current, on_removed="delete", groups=aliases)
    assert plan.changes == []
    assert plan.unchanged == 2
