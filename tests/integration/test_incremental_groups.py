"""Incremental runs read only the groups a change touched, and still leave what a full run would.

Every step changes AD, runs incrementally, then asks a full run in check
mode what it would still change: nothing, on every backend. The group
searches are recorded, so the test also shows which steps found the
touched groups from the changes and which had to read every group.
"""

import ldap3
import pytest

from lab import postmap

from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_reader, replicate, resource as resources


def load(args):
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    return resources.load(args["config_dir"], args["name"])


def routes(store, address):
    answer = postmap(store, "virtual_alias_maps", address)
    return sorted(answer.split(",")) if answer else []


@pytest.fixture
def group_searches(monkeypatch):
    """The (base DN, filter) of the group searches each run makes."""
    searches = []
    original = ad_reader.read_groups

    def recording(conn, base_dn, group_filter, *args, **kwargs):
        searches.append((base_dn, group_filter))
        return original(conn, base_dn, group_filter, *args, **kwargs)

    monkeypatch.setattr(ad_reader, "read_groups", recording)
    return searches


@pytest.fixture
def outside_ou(ad):
    """An OU outside the resource's base DN, removed afterwards."""
    dn = ad.make_ou()
    yield dn
    ad.delete_tree(dn)


def test_incremental_group_runs_match_a_full_run(ad, ou, outside_ou, store, resource_args, tag, env,
                                                 group_searches):
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    args = dict(resource_args, on_removed="disable")
    users = dict((name, ad.make_user(ou, "%s %s" % (name, tag), upn=a(name))[1])
                 for name in ("ann", "ben", "cat", "dan", "eve"))

    def group(cn, mail, members):
        dn = "CN=%s %s,%s" % (cn, tag, ou)
        attrs = {"sAMAccountName": ("g%s%s" % (cn, tag))[:20], "member": members}
        if mail:
            attrs["mail"] = mail
        ad.conn.add(dn, ["top", "group"], attrs)
        return dn

    # a member outside the base DN whose address is an account of the domain
    store.make_account(a("outsider"))
    _, outsider = ad.make_user(outside_ou, "Outsider", upn=a("outsider"))
    inner = group("inner", None, [users["ben"]])  # no address: only flattened into Outer
    outer = group("outer", a("outer"), [users["ann"], inner, outsider])
    third = group("third", a("third"), [users["cat"]])
    fourth = group("fourth", a("fourth"), [users["eve"]])

    def step(expected, reads_all=False):
        """Run incrementally; check what changed, which group searches it made, and that a full run agrees."""
        del group_searches[:]
        plan = replicate.replicate(load(args))
        assert plan.mode == "incremental"
        assert sorted((c.object_type, c.kind, c.address) for c in plan.changes) == sorted(expected)
        every_group = (args["base_dn"], args.get("group_filter", ad_reader.DEFAULT_GROUP_FILTER))
        assert (every_group in group_searches) == reads_all, group_searches
        check = replicate.replicate(load(args), check_mode=True, full=True)
        assert [(c.object_type, c.kind, c.address) for c in check.changes] == []
        return plan

    first = replicate.replicate(load(args))
    assert first.mode == "full" and first.summary["created"] == 5 + 3
    assert routes(store, a("outer")) == sorted([a("ann"), a("ben"), a("outsider")])

    # A member joins the nested group: only Inner's USN moves; Outer lists the member.
    ad.conn.modify(inner, {"member": [(ldap3.MODIFY_ADD, [users["dan"]])]})
    step([("group", "update", a("outer"))])
    assert a("dan") in routes(store, a("outer"))

    # A nested member renamed: the alias follows, found through the user's memberOf.
    ad.modify(users["ben"], userPrincipalName=a("ben2"))
    step([("user", "rename", a("ben")), ("group", "update", a("outer"))])
    assert a("ben2") in routes(store, a("outer")) and a("ben") not in routes(store, a("outer"))

    # Disabled, then enabled again: a disabled member receives no list mail.
    ad.set_disabled(users["cat"], True)
    step([("user", "disable", a("cat")), ("group", "update", a("third"))])
    assert routes(store, a("third")) == []
    ad.set_disabled(users["cat"], False)
    step([("user", "enable", a("cat")), ("group", "update", a("third"))])
    assert routes(store, a("third")) == [a("cat")]

    # A member deleted: AD drops the link without touching the group's USN;
    # the alias that lists the address names the group.
    ad.conn.delete(users["ann"])
    step([("user", "disable", a("ann")), ("group", "update", a("outer"))])
    assert a("ann") not in routes(store, a("outer"))

    # A group takes another's address: both are left out and keep their aliases;
    # once it lets go, the next run settles it without a full run.
    ad.modify(fourth, mail=a("third"))
    step([])
    assert routes(store, a("third")) == [a("cat")] and routes(store, a("fourth")) == [a("eve")]
    ad.modify(fourth, mail=a("fourth"))
    step([])

    # An OU carries a group out of the base DN, then back in: the group's USN does not move.
    team_ou = "OU=Team %s,%s" % (tag, ou)
    ad.conn.add(team_ou, ["top", "organizationalUnit"])
    ad.conn.add("CN=moved %s,%s" % (tag, team_ou), ["top", "group"],
                {"sAMAccountName": ("gm%s" % tag)[:20], "mail": a("moved"), "member": [users["eve"]]})
    step([("group", "create", a("moved"))])
    ad.conn.modify_dn(team_ou, team_ou.split(",")[0], new_superior=outside_ou)
    step([("group", "delete", a("moved"))])
    assert routes(store, a("moved")) == []
    ad.conn.modify_dn("%s,%s" % (team_ou.split(",")[0], outside_ou), team_ou.split(",")[0],
                      new_superior=ou)
    step([("group", "create", a("moved"))])
    assert routes(store, a("moved")) == [a("eve")]

    # A deleted member that was no managed user: nothing names its groups, so all are read.
    ad.conn.delete(outsider)
    step([("group", "update", a("outer"))], reads_all=True)
    assert a("outsider") not in routes(store, a("outer"))

    # The nested group itself deleted: all groups are read as well.
    ad.conn.delete(inner)
    step([("group", "update", a("outer"))], reads_all=True)
    assert routes(store, a("outer")) == []
    ad.modify(outer, description="quiet %s" % tag)
    step([])
