"""Which addresses an incremental run asks the store about (pure logic)."""

from ansible_collections.mailsync.iredmail.plugins.module_utils import plan as plans
from ansible_collections.mailsync.iredmail.plugins.module_utils.desired import DesiredAliases, DesiredState
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import MailAccount, MailAlias
from ansible_collections.mailsync.iredmail.plugins.module_utils.replicate import addresses_to_check


def test_every_address_the_plan_may_test_is_asked_about():
    renamed = MailAccount("u1", "CN=U1", "new@x.org", aliases=["extra@x.org"])
    fresh = MailAccount("u2", "CN=U2", "fresh@x.org")
    desired = DesiredState({"u1": renamed, "u2": fresh}, [])
    current = plans.CurrentState({
        "u1": plans.ManagedAccount("u1", "old@x.org", {"address": "old@x.org"}, kept=["older@x.org"]),
        "u9": plans.ManagedAccount("u9", "quiet@x.org", {"address": "quiet@x.org"}),
    }, None)
    groups = DesiredAliases({"g1": MailAlias("g1", "CN=G1", "list@x.org", "List", "public", [])}, [], {},
                            {"cn=out": "outsider@x.org", "cn=nomail": None})
    assert addresses_to_check(desired, groups, current) == {
        "new@x.org", "extra@x.org",  # what the read users want
        "old@x.org", "older@x.org",  # what a rename may keep as aliases
        "fresh@x.org", "list@x.org",  # a new user and a group
        "outsider@x.org",  # a member outside the scope is written only if it exists
    }


def test_without_groups_only_the_users_read_count():
    desired = DesiredState({"u2": MailAccount("u2", "CN=U2", "fresh@x.org")}, [])
    assert addresses_to_check(desired, None, plans.CurrentState({}, None)) == {"fresh@x.org"}
