"""AD groups as iRedMail mail aliases, nested membership flattened, on every backend."""

from lab import postmap

from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_reader, replicate, resource as resources


def run(args, full=False):
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    return replicate.replicate(resources.load(args["config_dir"], args["name"]), full=full)


def group(ad, ou, cn, mail=None, members=()):
    dn = "CN=%s,%s" % (cn, ou)
    attrs = {"sAMAccountName": ("g" + cn.replace(" ", ""))[:20]}
    if mail:
        attrs["mail"] = mail
    if members:
        attrs["member"] = list(members)
    ad.conn.add(dn, ["top", "group"], attrs)
    return dn


def set_members(ad, dn, members):
    import ldap3
    ad.conn.modify(dn, {"member": [(ldap3.MODIFY_REPLACE, list(members))]})


def routes(store, address):
    """Where Postfix's virtual_alias_maps sends mail for `address`."""
    answer = postmap(store, "virtual_alias_maps", address)
    return sorted(answer.split(",")) if answer else []


def test_groups_become_aliases_with_nested_members(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    users = dict((name, ad.make_user(ou, "%s %s" % (name, tag), upn=a(name))[1])
                 for name in ("ann", "ben", "cat", "dan"))
    _, off = ad.make_user(ou, "Off %s" % tag, upn=a("off"), disabled=True)
    outside_ou = ad.make_ou()
    try:
        # out of the base DN: one whose address is an existing account, one not
        _, known = ad.make_user(outside_ou, "Post %s" % tag, upn="postmaster@%s" % domain)
        _, stranger = ad.make_user(outside_ou, "Stranger %s" % tag, upn=a("stranger"))
        inner = group(ad, ou, "Inner %s" % tag, members=[users["cat"]])  # no address: flattened, not an alias
        loop_a = group(ad, ou, "LoopA %s" % tag, members=[users["dan"]])
        loop_b = group(ad, ou, "LoopB %s" % tag, members=[loop_a])
        set_members(ad, loop_a, [users["dan"], loop_b])  # a membership cycle
        sales = group(ad, ou, "Sales %s" % tag, mail=a("sales").upper(),
                      members=[users["ann"], users["ben"], inner, loop_a, off, known, stranger])
        group(ad, ou, "Empty %s" % tag, mail=a("empty"))
        group(ad, ou, "Elsewhere %s" % tag, mail="x.%s@other.example.org" % tag, members=[users["ann"]])

        plan = run(dict(resource_args, access_policy="membersonly"))
        created = sorted((c.object_type, c.address) for c in plan.changes if c.kind == "create")
        assert ("group", a("sales")) in created and ("group", a("empty")) in created
        assert len([c for c in created if c[0] == "group"]) == 2
        reasons = [(s.dn, s.reason) for s in plan.skipped]
        assert any(dn == stranger.lower() and "not a mail account" in why for dn, why in reasons)
        assert any("address outside target domain" in why for _, why in reasons)

        # Postfix's own lookup resolves the alias to the flattened members.
        assert routes(store, a("sales")) == sorted([a("ann"), a("ben"), a("cat"), a("dan"), "postmaster@%s" % domain])
        if store.kind == "ldap":
            entry = store.conn.search_s("mail=%s,ou=Aliases,domainName=%s,%s" % (a("sales"), domain, store.base_dn),
                                        0, "(objectClass=mailAlias)")[0][1]
            assert entry["cn"] == [("Sales %s" % tag).encode()] and entry["accessPolicy"] == [b"membersonly"]
        else:
            row = store.query("SELECT name, accesspolicy, active, domain FROM alias WHERE address = %s", (a("sales"),))
            assert row == [{"name": "Sales %s" % tag, "accesspolicy": "membersonly", "active": 1, "domain": domain}]
            assert {r["is_list"] for r in store.query("SELECT is_list FROM forwardings WHERE address = %s",
                                                      (a("sales"),))} == {1}
        assert not run(dict(resource_args, access_policy="membersonly"))
    finally:
        ad.delete_tree(outside_ou)


def test_membership_renames_disables_and_deletions_follow(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    users = dict((name, ad.make_user(ou, "%s %s" % (name, tag), upn=a(name))[1]) for name in ("eve", "fay", "gus"))
    team = group(ad, ou, "Team %s" % tag, mail=a("team"), members=[users["eve"], users["fay"]])
    run(resource_args)
    assert routes(store, a("team")) == [a("eve"), a("fay")]

    set_members(ad, team, [users["eve"], users["gus"]])
    plan = run(resource_args)
    assert plan.mode == "incremental" and [c.kind for c in plan.changes] == ["update"]
    assert routes(store, a("team")) == [a("eve"), a("gus")]

    ad.set_disabled(users["gus"], True)  # a disabled member stops receiving list mail
    run(resource_args)
    assert routes(store, a("team")) == [a("eve")]

    ad.modify(users["eve"], userPrincipalName=a("eva"))  # a renamed member is followed
    run(resource_args)
    assert routes(store, a("team")) == [a("eva")]

    ad.modify(team, mail=a("crew"))  # a renamed group renames its alias
    plan = run(resource_args)
    assert [(c.object_type, c.kind) for c in plan.changes] == [("group", "rename")]
    assert routes(store, a("team")) == [] and routes(store, a("crew")) == [a("eva")]

    ad.conn.delete(team)
    plan = run(resource_args)
    assert [(c.object_type, c.kind) for c in plan.changes] == [("group", "delete")]
    assert routes(store, a("crew")) == []
    assert not run(resource_args) and not run(resource_args, full=True)


def test_large_groups_are_read_in_ranges(ad, ou, store, resource_args, tag, env, monkeypatch):
    domain = env["MAIL_DOMAIN"]
    members = [ad.make_user(ou, "M%d %s" % (i, tag), upn="m%d.%s@%s" % (i, tag, domain))[1] for i in range(8)]
    group(ad, ou, "Big %s" % tag, mail="big.%s@%s" % (tag, domain), members=members)
    # Samba returns every value at once; Windows AD stops at 1500. With a
    # step of 3 the reader must ask for 0-2, 3-5 and 6-8 to get all 8.
    monkeypatch.setattr(ad_reader, "RANGE_STEP", 3)
    requested = []
    search = ad_reader.ldap3.Connection.search

    def recording(self, search_base, search_filter, *args, **kwargs):
        attributes = kwargs.get("attributes") or (args[2] if len(args) > 2 else None) or []
        requested.extend(a for a in attributes if a.lower().startswith("member;range="))
        return search(self, search_base, search_filter, *args, **kwargs)

    monkeypatch.setattr(ad_reader.ldap3.Connection, "search", recording)
    run(resource_args)
    assert "member;range=0-2" in requested and "member;range=3-5" in requested and "member;range=6-8" in requested
    assert len(routes(store, "big.%s@%s" % (tag, domain))) == 8


def test_group_address_taken_by_a_user_is_a_conflict(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    _, user = ad.make_user(ou, "Hal %s" % tag, upn="hal.%s@%s" % (tag, domain))
    group(ad, ou, "Hal group %s" % tag, mail="hal.%s@%s" % (tag, domain), members=[user])
    plan = run(resource_args)
    assert [(c.object_type, c.address) for c in plan.changes] == [("user", "hal.%s@%s" % (tag, domain))]
    assert any("held by another replicated account" in s.reason for s in plan.skipped)


def test_groups_can_be_left_alone(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    _, user = ad.make_user(ou, "Ida %s" % tag, upn="ida.%s@%s" % (tag, domain))
    group(ad, ou, "Idas %s" % tag, mail="idas.%s@%s" % (tag, domain), members=[user])
    plan = run(dict(resource_args, replicate_groups=False))
    assert [c.object_type for c in plan.changes] == ["user"]
    assert routes(store, "idas.%s@%s" % (tag, domain)) == []


def set_proxies(ad, dn, values):
    import ldap3
    ad.conn.modify(dn, {"proxyAddresses": [(ldap3.MODIFY_REPLACE, list(values))]})


def resolves_to(store, alias):
    """The primary address Postfix delivers `alias` to, on any backend."""
    if store.kind == "ldap":
        if postmap(store, "virtual_mailbox_maps", alias) is None:
            return None
        return postmap(store, "virtual_group_members_maps", alias)
    return postmap(store, "virtual_alias_maps", alias)


def test_proxy_addresses_become_extra_addresses(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    _, jo = ad.make_user(ou, "Jo %s" % tag, upn=a("jo"))
    _, kai = ad.make_user(ou, "Kai %s" % tag, upn=a("kai"))
    set_proxies(ad, jo, ["SMTP:" + a("jo"), "smtp:" + a("joanna"), "smtp:" + a("J.Smith").upper(),
                         "smtp:jo.%s@elsewhere.example.org" % tag, "X500:/o=Corp/ou=Exchange/cn=jo",
                         "SIP:" + a("jo.sip"), "smtp:" + a("shared")])
    set_proxies(ad, kai, ["SMTP:" + a("kai"), "smtp:" + a("shared")])

    plan = run(resource_args)
    assert plan.summary["created"] == 2
    assert resolves_to(store, a("joanna")) == a("jo")
    assert resolves_to(store, a("j.smith")) == a("jo")
    assert resolves_to(store, a("jo.sip")) is None
    assert resolves_to(store, a("shared")) is None  # claimed twice: written for neither
    assert any(s.address == a("shared") and "claimed by 2" in s.reason for s in plan.skipped)

    set_proxies(ad, jo, ["SMTP:" + a("jo"), "smtp:" + a("joanna")])
    set_proxies(ad, kai, ["SMTP:" + a("kai")])
    plan = run(resource_args)
    assert resolves_to(store, a("j.smith")) is None and resolves_to(store, a("joanna")) == a("jo")
    assert [(c.kind, c.address) for c in plan.changes] == [("update", a("jo"))]
    assert not run(resource_args) and not run(resource_args, full=True)


def test_proxy_address_of_an_existing_account_is_not_taken(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    _, lu = ad.make_user(ou, "Lu %s" % tag, upn="lu.%s@%s" % (tag, domain))
    set_proxies(ad, lu, ["smtp:postmaster@%s" % domain])
    plan = run(resource_args)
    assert any(s.address == "postmaster@%s" % domain and "not manage" in s.reason for s in plan.skipped)
    assert store.account("postmaster@%s" % domain)["address"] == "postmaster@%s" % domain
    assert not run(resource_args, full=True)
