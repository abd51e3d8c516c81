import pytest

from ansible_collections.mailsync.iredmail.plugins.module_utils import plan as plans
from ansible_collections.mailsync.iredmail.plugins.module_utils.desired import DesiredState
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import ConfigError, SafetyLimitError
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import MailAccount


def account(guid, address, active=True, name="N"):
    return MailAccount(guid, "CN=%s" % guid, address, active, 1024, {"display_name": name})


def managed(guid, address, active=True, name="N"):
    return plans.ManagedAccount(guid, address, account(guid, address, active, name).as_dict())


def desired(*accounts):
    return DesiredState(dict((a.guid, a) for a in accounts), [])


def current(*accounts, **kw):
    taken = set(kw.get("taken", ())) | set(m.address for m in accounts)
    return plans.CurrentState(dict((m.guid, m) for m in accounts), taken)


def kinds(plan):
    return [(c.kind, c.address) for c in plan.changes]


def test_new_accounts_are_created_and_equal_ones_left_alone():
    plan = plans.build_plan(desired(account("g1", "a@x.org"), account("g2", "b@x.org")),
                            current(managed("g1", "a@x.org")))
    assert kinds(plan) == [("create", "b@x.org")]
    assert plan.unchanged == 1
    assert plan.summary["created"] == 1 and plan.summary["unchanged"] == 1


def test_profile_change_is_an_update_with_before_and_after():
    plan = plans.build_plan(desired(account("g1", "a@x.org", name="New")),
                            current(managed("g1", "a@x.org", name="Old")))
    change, = plan.changes
    assert change.kind == "update"
    assert change.before["display_name"] == "Old" and change.after["display_name"] == "New"
    diff = change.as_diff()
    assert "display_name: Old" in diff["before"] and "display_name: New" in diff["after"]


def test_address_change_is_a_rename_keyed_on_guid():
    plan = plans.build_plan(desired(account("g1", "new@x.org")), current(managed("g1", "old@x.org")))
    assert kinds(plan) == [("rename", "old@x.org")]
    assert plan.changes[0].new_address == "new@x.org"


def test_disable_and_enable_follow_the_ad_flag():
    plan = plans.build_plan(desired(account("g1", "a@x.org", active=False), account("g2", "b@x.org")),
                            current(managed("g1", "a@x.org"), managed("g2", "b@x.org", active=False)))
    assert kinds(plan) == [("disable", "a@x.org"), ("enable", "b@x.org")]


def test_unmanaged_address_is_a_conflict_not_a_takeover():
    plan = plans.build_plan(desired(account("g1", "postmaster@x.org")), current(taken=["postmaster@x.org"]))
    assert plan.changes == []
    assert plan.skipped[0].reason.startswith("address already used")


def test_rename_onto_an_unmanaged_address_is_refused():
    plan = plans.build_plan(desired(account("g1", "postmaster@x.org")),
                            current(managed("g1", "a@x.org"), taken=["postmaster@x.org"]))
    assert plan.changes == [] and "cannot rename" in plan.skipped[0].reason


def test_managed_account_removed_by_hand_is_created_again():
    gone = plans.ManagedAccount("g1", "a@x.org", None)
    plan = plans.build_plan(desired(account("g1", "a@x.org")), current(gone, taken=["a@x.org"]))
    assert kinds(plan) == [("create", "a@x.org")]


@pytest.mark.parametrize("policy, expected", [
    ("keep", []), ("disable", [("disable", "a@x.org")]), ("delete", [("delete", "a@x.org")]),
])
def test_removed_from_ad_follows_policy(policy, expected):
    plan = plans.build_plan(desired(), current(managed("g1", "a@x.org")), on_removed=policy)
    assert kinds(plan) == expected


def test_already_disabled_removed_account_is_unchanged():
    plan = plans.build_plan(desired(), current(managed("g1", "a@x.org", active=False)))
    assert plan.changes == [] and plan.unchanged == 1


@pytest.mark.parametrize("value, managed_count, limit", [
    (None, 5, 10), (None, 1000, 100), ("3", 1000, 3), (0, 10, 0), ("10%", 35, 4), ("100%", 7, 7),
])
def test_removal_limit(value, managed_count, limit):
    assert plans.removal_limit(value, managed_count) == limit


@pytest.mark.parametrize("value", ["-1", "ten", "150%", "%"])
def test_invalid_max_deletes(value):
    with pytest.raises(ConfigError):
        plans.parse_max_deletes(value)


def test_safety_limit_stops_a_mass_disable():
    many = [managed("g%d" % i, "u%d@x.org" % i) for i in range(20)]
    plan = plans.build_plan(desired(), current(*many))
    with pytest.raises(SafetyLimitError) as err:
        plans.check_safety(plan, "5", 20)
    assert "20 of 20" in str(err.value) and "nothing was written" in str(err.value)
    plans.check_safety(plan, "20", 20)


def test_new_user_cannot_take_the_address_of_a_removed_but_kept_account():
    plan = plans.build_plan(desired(account("g2", "a@x.org")), current(managed("g1", "a@x.org")))
    assert kinds(plan) == [("disable", "a@x.org")]
    assert plan.skipped[0].guid == "g2" and "still held" in plan.skipped[0].reason


def test_new_user_takes_the_address_of_a_deleted_account_after_the_delete():
    plan = plans.build_plan(desired(account("g2", "a@x.org")), current(managed("g1", "a@x.org")),
                            on_removed="delete")
    assert [c.kind for c in plans.apply_order(plan.changes)] == ["delete", "create"]


def test_address_freed_by_a_rename_can_be_taken_in_the_same_run():
    plan = plans.build_plan(desired(account("g1", "new@x.org"), account("g2", "old@x.org")),
                            current(managed("g1", "old@x.org")))
    assert [(c.kind, c.guid) for c in plans.apply_order(plan.changes)] == [("rename", "g1"), ("create", "g2")]


def test_stored_form_makes_equal_accounts_compare_equal():
    def fill_name(fields):
        return dict(fields, display_name=fields["display_name"] or "a")
    stored = managed("g1", "a@x.org", name="a")
    plan = plans.build_plan(desired(account("g1", "a@x.org", name="")), current(stored), stored_form=fill_name)
    assert plan.changes == [] and plan.unchanged == 1


NOW = __import__("datetime").datetime(2026, 11, 28, 12, 0, 0)


def days_ago(n):
    return NOW - __import__("datetime").timedelta(days=n)


def test_delete_policy_disables_and_marks_first():
    plan = plans.build_plan(desired(), current(managed("g1", "a@x.org")), on_removed="delete", now=NOW,
                            delete_after_days=30)
    assert kinds(plan) == [("disable", "a@x.org")]
    assert [(m.guid, m.removed_since) for m in plan.marks] == [("g1", NOW)]
    assert "deleted after 2026-12-28" in plan.changes[0].reason


def test_delete_policy_waits_for_the_grace_period_then_deletes():
    waiting = managed("g1", "a@x.org", active=False)
    waiting.removed_since = days_ago(29)
    plan = plans.build_plan(desired(), current(waiting), on_removed="delete", now=NOW, delete_after_days=30)
    assert plan.changes == [] and plan.marks == [] and not plan
    waiting.removed_since = days_ago(30)
    plan = plans.build_plan(desired(), current(waiting), on_removed="delete", now=NOW, delete_after_days=30)
    assert kinds(plan) == [("delete", "a@x.org")]


def test_account_back_in_ad_is_unmarked_and_enabled():
    back = managed("g1", "a@x.org", active=False)
    back.removed_since = days_ago(3)
    plan = plans.build_plan(desired(account("g1", "a@x.org")), current(back), on_removed="delete", now=NOW,
                            delete_after_days=30)
    assert kinds(plan) == [("enable", "a@x.org")]
    assert [(m.guid, m.removed_since) for m in plan.marks] == [("g1", None)]


def test_address_of_an_account_in_grace_period_is_still_held():
    waiting = managed("g1", "a@x.org", active=False)
    waiting.removed_since = days_ago(1)
    plan = plans.build_plan(desired(account("g2", "a@x.org")), current(waiting), on_removed="delete", now=NOW,
                            delete_after_days=30)
    assert plan.changes == [] and "still held" in plan.skipped[0].reason


def test_a_swap_of_addresses_is_left_out_and_reported_not_written():
    """No order of two renames that take each other's addresses can be applied."""
    plan = plans.build_plan(
        desired(account("g1", "b@x.org"), account("g2", "a@x.org"), account("g3", "c2@x.org"),
                account("g4", "d@x.org", name="Changed")),
        current(managed("g1", "a@x.org"), managed("g2", "b@x.org"), managed("g3", "c@x.org"),
                managed("g4", "d@x.org")))
    assert kinds(plan) == [("rename", "c@x.org"), ("update", "d@x.org")]
    swapped = sorted((skip.guid, skip.address) for skip in plan.skipped)
    assert swapped == [("g1", "b@x.org"), ("g2", "a@x.org")]
    assert all("swap" in skip.reason for skip in plan.skipped)
    assert plans.apply_order(plan.changes) == plan.changes


def test_a_chain_that_is_no_cycle_is_kept():
    plan = plans.build_plan(desired(account("g1", "b@x.org"), account("g2", "c@x.org")),
                            current(managed("g1", "a@x.org"), managed("g2", "b@x.org")))
    assert sorted(kinds(plan)) == [("rename", "a@x.org"), ("rename", "b@x.org")] and not plan.skipped


def test_shared_values_are_the_wanted_objects_and_the_plan_is_the_same():
    # Built from separate strings, as a store read makes them.
    def text(value):
        return "".join(list(value))

    wanted = desired(account("g1", "a@x.org", name="Same"), account("g2", "b@x.org", name="New"),
                     account("g3", "new@x.org"))
    stored = current(plans.ManagedAccount("g1", text("a@x.org"), {"address": text("a@x.org"), "active": True,
                                                                   "quota": 1024, "display_name": text("Same")}),
                     managed("g2", "b@x.org", name="Old"), managed("g3", "old@x.org"),
                     plans.ManagedAccount("g4", "gone@x.org", None))
    before = kinds(plans.build_plan(wanted, stored))
    for guid, held in stored.managed.items():
        assert plans.share_values(held, wanted.accounts.get(guid)) is held
    one, two = stored.managed["g1"], stored.managed["g2"]
    assert one.fields["display_name"] is wanted.accounts["g1"].profile["display_name"]
    assert one.fields["address"] is one.address is wanted.accounts["g1"].address
    assert two.fields["display_name"] == "Old"
    assert stored.managed["g3"].address == "old@x.org" and stored.managed["g4"].fields is None
    assert kinds(plans.build_plan(wanted, stored)) == before == [("update", "b@x.org"), ("rename", "old@x.org")]
