"""The order renames are applied in, when one takes the address another frees."""

from ansible_collections.mailsync.iredmail.plugins.module_utils import plan as plans
from ansible_collections.mailsync.iredmail.plugins.module_utils.desired import DesiredState
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import MailAccount


def account(guid, address):
    return MailAccount(guid, "CN=%s" % guid, address, True, 1024, {"display_name": "N"})


def managed(guid, address):
    return plans.ManagedAccount(guid, address, account(guid, address).as_dict())


def test_a_chain_of_renames_frees_each_address_before_it_is_taken():
    # a -> z, b -> a, c -> b: the planner meets them as a, b, z (by new address)
    wanted = [account("g1", "z@x.org"), account("g2", "a@x.org"), account("g3", "b@x.org"),
              account("g4", "n@x.org")]
    now = [managed("g1", "a@x.org"), managed("g2", "b@x.org"), managed("g3", "c@x.org"), managed("g5", "d@x.org")]
    plan = plans.build_plan(DesiredState(dict((a.guid, a) for a in wanted), []),
                            plans.CurrentState(dict((m.guid, m) for m in now), set(m.address for m in now)),
                            on_removed="delete")
    order = [(c.kind, c.address, c.after["address"] if c.after else None) for c in plans.apply_order(plan.changes)]
    assert order == [("delete", "d@x.org", None), ("rename", "a@x.org", "z@x.org"), ("rename", "b@x.org", "a@x.org"),
                     ("rename", "c@x.org", "b@x.org"), ("create", "n@x.org", "n@x.org")]
