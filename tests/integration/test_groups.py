"""AD groups as iRedMail mail aliases, nested membership flattened, on every backend."""

import json
import os
import subprocess
import time
import uuid

import pytest

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


def test_an_address_a_user_and_a_group_claim_is_written_for_neither(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    ad.make_user(ou, "Hal %s" % tag, upn=a("hal"))
    _, mo = ad.make_user(ou, "Mo %s" % tag, upn=a("mo"))
    set_proxies(ad, mo, ["SMTP:" + a("mo"), "smtp:" + a("desk"), "smtp:" + a("mo.x")])
    hal_group = group(ad, ou, "Hal group %s" % tag, mail=a("hal"), members=[mo])  # a user's own address
    group(ad, ou, "Desk %s" % tag, mail=a("desk"), members=[mo])  # a user's extra address

    plan = run(resource_args)
    assert sorted((c.object_type, c.address) for c in plan.changes) == [("user", a("mo"))]
    left_out = sorted((s.dn.split(",")[0], s.address) for s in plan.skipped if "written for none" in s.reason)
    assert left_out == [("CN=Desk %s" % tag, a("desk")), ("CN=Hal %s" % tag, a("hal")),
                        ("CN=Hal group %s" % tag, a("hal")), ("CN=Mo %s" % tag, a("desk"))]
    assert store.account(a("hal")) is None and routes(store, a("hal")) == []
    assert resolves_to(store, a("desk")) is None and routes(store, a("desk")) == []
    assert resolves_to(store, a("mo.x")) == a("mo")
    # An incremental run reads the unchanged users claiming group addresses as well.
    assert not run(resource_args)

    # Once AD no longer has two claimants, each address goes to the one left, at
    # the next incremental run: the unchanged group Desk and the unchanged user Hal
    # too (the cursor remembers which addresses were contested).
    set_proxies(ad, mo, ["SMTP:" + a("mo"), "smtp:" + a("mo.x")])
    ad.modify(hal_group, mail=a("hal.team"))
    plan = run(resource_args)
    assert plan.mode == "incremental"
    assert sorted((c.object_type, c.kind, c.address) for c in plan.changes) == [
        ("group", "create", a("desk")), ("group", "create", a("hal.team")), ("user", "create", a("hal"))]
    assert routes(store, a("desk")) == [a("mo")] and routes(store, a("hal.team")) == [a("mo")]
    assert store.account(a("hal"))["address"] == a("hal")
    assert not run(resource_args, full=True)


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


def test_the_smtp_proxy_address_is_the_mailbox_and_the_upn_an_extra_address(ad, ou, store, resource_args, tag,
                                                                             env):
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    _, jo = ad.make_user(ou, "Jo %s" % tag, upn=a("jo"))
    set_proxies(ad, jo, ["SMTP:" + a("Jo.Smith"), "smtp:" + a("js"), "X500:/o=Corp/cn=jo"])
    # a UPN in the AD's own domain: the SMTP: value alone makes the mailbox
    _, kai = ad.make_user(ou, "Kai %s" % tag, upn="kai.%s@corp.local" % tag)
    set_proxies(ad, kai, ["SMTP:" + a("kai")])
    _, lu = ad.make_user(ou, "Lu %s" % tag, upn=a("lu"))
    group(ad, ou, "Crew %s" % tag, mail=a("crew"), members=[jo, kai])

    plan = run(resource_args)
    assert sorted((c.object_type, c.address) for c in plan.changes) == [
        ("group", a("crew")), ("user", a("jo.smith")), ("user", a("kai")), ("user", a("lu"))]
    assert store.account(a("jo.smith"))["address"] == a("jo.smith") and store.account(a("jo")) is None
    # Postfix delivers the UPN address and the smtp: one to the SMTP: mailbox.
    assert resolves_to(store, a("jo")) == a("jo.smith") and resolves_to(store, a("js")) == a("jo.smith")
    assert resolves_to(store, "kai.%s@corp.local" % tag) is None
    assert routes(store, a("crew")) == [a("jo.smith"), a("kai")]

    # An existing mailbox given an SMTP: value is renamed to it and keeps its mail home;
    # the old address still delivers to it.
    home = store.account(a("lu"))["home"]
    set_proxies(ad, lu, ["SMTP:" + a("lucy"), "smtp:" + a("lu")])
    plan = run(resource_args)
    assert [(c.kind, c.address, c.new_address) for c in plan.changes] == [("rename", a("lu"), a("lucy"))]
    assert store.account(a("lucy"))["home"] == home and resolves_to(store, a("lu")) == a("lucy")
    assert not run(resource_args) and not run(resource_args, full=True)


# ------------------------------------------- a group beyond AD's 1500 values a read

BIG_GROUP_MEMBERS = 1600
SAMDB_BULK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samdb_bulk.py")


def samdb(request):
    """One request to samdb_bulk.py, run by the system Python that has Samba's bindings."""
    proc = subprocess.run(["/usr/bin/python3", SAMDB_BULK], input=json.dumps(request), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, "samdb_bulk.py %s failed: %s" % (request["op"], proc.stderr[-3000:])
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def big_group(env):
    """An OU with 1,600 users, all members of one group, written once for every backend.

    Through Samba's database: 1,600 LDAP adds cost the DC minutes, this
    costs seconds.
    """
    tag = uuid.uuid4().hex[:8]
    domain = env["MAIL_DOMAIN"]
    ou = "OU=big-%s,%s" % (tag, env["AD_BASE_DN"])
    users = [{"dn": "CN=B%04d %s,%s" % (number, tag, ou), "objectClass": "user",
              "sAMAccountName": "b%s%04d" % (tag, number), "userPrincipalName": "b%04d.%s@%s" % (number, tag, domain),
              # PASSWD_NOTREQD: enabled without a password, which spares Samba a hash per user
              "userAccountControl": str(0x200 | 0x20)} for number in range(BIG_GROUP_MEMBERS)]
    group_entry = {"dn": "CN=Everyone %s,%s" % (tag, ou), "objectClass": "group", "sAMAccountName": "g%s" % tag,
                   "mail": "everyone.%s@%s" % (tag, domain), "member": [user["dn"] for user in users]}
    began = time.monotonic()
    samdb({"op": "write", "add": [{"dn": ou, "objectClass": "organizationalUnit"}] + users + [group_entry]})
    seeded = time.monotonic() - began
    try:
        yield {"tag": tag, "ou": ou, "address": group_entry["mail"], "seconds": seeded,
               "members": sorted(user["userPrincipalName"] for user in users)}
    finally:
        samdb({"op": "remove", "base": ou})


def remove_accounts(store, resource, tag):
    """Take this test's 1,600 accounts out of the shared store again."""
    like = "%%.%s@%%" % tag
    if store.kind == "ldap":
        found = store.conn.search_s(store.base_dn, store.ldap.SCOPE_SUBTREE,
                                    "(|(mail=*.%s@*)(accountSetting=mailsyncResource:%s))" % (tag, resource), ["1.1"])
        for dn, _ in sorted(found, key=lambda item: -len(item[0])):
            store.conn.delete_s(dn)
        domain_dn = "domainName=%s,%s" % (store.env["MAIL_DOMAIN"], store.base_dn)
        values = store.conn.search_s(domain_dn, store.ldap.SCOPE_BASE, "(objectClass=*)", ["accountSetting"])[0][1]
        cursor = [v for v in values.get("accountSetting", []) if v.decode().startswith("mailsyncCursor:%s=" % resource)]
        if cursor:
            store.conn.modify_s(domain_dn, [(store.ldap.MOD_DELETE, "accountSetting", cursor)])
        return
    store.execute("DELETE FROM forwardings WHERE address LIKE %s OR forwarding LIKE %s", (like, like))
    store.execute("DELETE FROM mailbox WHERE username LIKE %s", (like,))
    store.execute("DELETE FROM alias WHERE address LIKE %s", (like,))
    store.execute("DELETE FROM mailsync_object WHERE resource = %s", (resource,))
    store.execute("DELETE FROM mailsync_cursor WHERE resource = %s", (resource,))


def test_a_group_of_1600_members_is_read_in_ranges_of_1500(big_group, store, resource_args, env, monkeypatch):
    # Samba, unlike Windows AD, would return all 1,600 values of a plain
    # `member` read; the reader asks for ranges of RANGE_STEP (1500, not
    # patched here) and must ask a second time to get them all.
    assert ad_reader.RANGE_STEP == 1500
    requested = []
    search = ad_reader.ldap3.Connection.search

    def recording(self, search_base, search_filter, *args, **kwargs):
        attributes = kwargs.get("attributes") or (args[2] if len(args) > 2 else None) or []
        requested.extend(a.lower() for a in attributes if a.lower().startswith("member;range="))
        return search(self, search_base, search_filter, *args, **kwargs)

    monkeypatch.setattr(ad_reader.ldap3.Connection, "search", recording)
    args = dict(resource_args, base_dn=big_group["ou"], name="big-%s-%s" % (store.kind, big_group["tag"]))
    began = time.monotonic()
    try:
        plan = run(args)
        replicated = time.monotonic() - began
        assert requested[:2] == ["member;range=0-1499", "member;range=1500-2999"], requested
        assert plan.summary["created"] == BIG_GROUP_MEMBERS + 1 and not plan.skipped
        address = big_group["address"]
        if store.kind == "ldap":
            entry = store.conn.search_s("mail=%s,ou=Aliases,domainName=%s,%s" % (address, env["MAIL_DOMAIN"],
                                                                                store.base_dn),
                                        store.ldap.SCOPE_BASE, "(objectClass=mailAlias)", ["mailForwardingAddress"])
            members = sorted(v.decode() for v in entry[0][1]["mailForwardingAddress"])
        else:
            members = sorted(r["forwarding"] for r in store.query(
                "SELECT forwarding FROM forwardings WHERE address = %s AND is_list = 1", (address,)))
        assert members == big_group["members"]
        # Postfix's own lookup: the whole list, and the members beyond the first range as mailboxes.
        assert routes(store, address) == big_group["members"]
        for member in big_group["members"][1499:1502] + big_group["members"][-1:]:
            assert resolves_to(store, member) == member
        assert not run(args)
        print("%s: AD seeded in %.1f s (once per module), first run %.1f s, whole test %.1f s"
              % (store.kind, big_group["seconds"], replicated, time.monotonic() - began))
    finally:
        remove_accounts(store, args["name"], big_group["tag"])
