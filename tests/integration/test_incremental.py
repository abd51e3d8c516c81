"""Incremental runs against Samba AD's uSNChanged, on every backend."""

import ldap3
import pytest

from lab import postmap, run_playbook

from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_reader, replicate, resource as resources


class Reads(list):
    """User entries read with full attributes, one count per search."""

    def during(self, fn, *args, **kwargs):
        start = len(self)
        result = fn(*args, **kwargs)
        return result, sum(self[start:])


@pytest.fixture
def counted_reads(monkeypatch):
    """Counts the user entries read with their attributes, by a search of the scope or one by one.

    The wrappers pass every call through to the real reader and the real DC.
    """
    counts = Reads()
    original, original_one = ad_reader.read_users, ad_reader.read_user

    def counting(*args, **kwargs):
        counts.append(0)
        for user in original(*args, **kwargs):
            counts[-1] += 1
            yield user

    def counting_one(*args, **kwargs):
        user = original_one(*args, **kwargs)
        counts.append(0 if user is None else 1)
        return user

    monkeypatch.setattr(ad_reader, "read_users", counting)
    monkeypatch.setattr(ad_reader, "read_user", counting_one)
    return counts


def load(args):
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    return resources.load(args["config_dir"], args["name"])


def run(args, full=False):
    return replicate.replicate(load(args), full=full)


def test_runs_after_the_first_read_only_what_changed(ad, ou, store, resource_args, tag, env, counted_reads):
    domain = env["MAIL_DOMAIN"]
    dns = [ad.make_user(ou, "I%d %s" % (i, tag), upn="i%d.%s@%s" % (i, tag, domain))[1] for i in range(6)]

    first, reads = counted_reads.during(run, resource_args)
    assert first.mode == "full" and first.summary["created"] == 6 and reads == 6

    # Whether the DC saw other writes meanwhile (a scan) or none (nothing
    # read at all), a quiet run reads no user entry.
    quiet, reads = counted_reads.during(run, resource_args)
    assert quiet.mode == "incremental" and not quiet and reads == 0
    assert quiet.summary["unchanged"] == 6

    ad.modify(dns[0], userPrincipalName="renamed.%s@%s" % (tag, domain))
    ad.set_disabled(dns[1], True)
    ad.conn.delete(dns[2])
    changed, reads = counted_reads.during(run, resource_args)
    assert changed.mode == "incremental" and changed.removals == "tombstones"
    assert reads == 2  # the rename and the disable; the deletion is found among the tombstones
    assert sorted((c.kind, c.address) for c in changed.changes) == [
        ("disable", "i1.%s@%s" % (tag, domain)), ("disable", "i2.%s@%s" % (tag, domain)),
        ("rename", "i0.%s@%s" % (tag, domain))]
    assert store.account("renamed.%s@%s" % (tag, domain)) is not None
    assert store.account("i2.%s@%s" % (tag, domain))["active"] is False

    again, reads = counted_reads.during(run, resource_args)
    assert not again and reads == 0
    forced, reads = counted_reads.during(run, resource_args, full=True)
    assert forced.mode == "full" and not forced and reads == 5


def test_changed_settings_or_another_dc_mean_a_full_run(ad, ou, store, resource_args, tag, env, counted_reads):
    ad.make_user(ou, "J %s" % tag, upn="j.%s@%s" % (tag, env["MAIL_DOMAIN"]))
    run(resource_args)
    assert run(resource_args).mode == "incremental"
    assert run(dict(resource_args, default_quota=2048)).mode == "full"
    assert store.account("j.%s@%s" % (tag, env["MAIL_DOMAIN"]))["quota"] == 2048

    # Another DC (or a restored one) has another invocationId: its USNs
    # mean nothing against the stored cursor.
    change_stored_invocation_id(store, resource_args["name"], env["MAIL_DOMAIN"])
    assert run(dict(resource_args, default_quota=2048)).mode == "full"
    assert run(dict(resource_args, default_quota=2048)).mode == "incremental"


def change_stored_invocation_id(store, resource, domain):
    fake = "00000000-0000-0000-0000-000000000000"
    if store.kind == "ldap":
        import ldap
        dn = "domainName=%s,%s" % (domain, store.base_dn)
        values = store.conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["accountSetting"])[0][1]["accountSetting"]
        old = [v for v in values if v.decode().startswith("mailsyncCursor:%s=" % resource)]
        assert len(old) == 1
        prefix, _, rest = old[0].decode().partition("=")
        new = "%s=%s;%s" % (prefix, fake, rest.split(";", 1)[1])
        store.conn.modify_s(dn, [(ldap.MOD_DELETE, "accountSetting", old),
                                 (ldap.MOD_ADD, "accountSetting", [new.encode()])])
        return
    text = store.query("SELECT cursor_text FROM mailsync_cursor WHERE resource = %s", (resource,))[0]["cursor_text"]
    store.execute("UPDATE mailsync_cursor SET cursor_text = %s WHERE resource = %s",
                  (fake + ";" + text.split(";", 1)[1], resource))


def test_check_mode_does_not_advance_the_cursor(ad, ou, store, resource_args, tag, env, counted_reads):
    ad.make_user(ou, "K %s" % tag, upn="k.%s@%s" % (tag, env["MAIL_DOMAIN"]))
    run_playbook([{"name": "declare", "mailsync.iredmail.ad_resource": resource_args}])
    check = run_playbook([{"name": "replicate", "mailsync.iredmail.ad_replicate": {
        "resource": resource_args["name"], "config_dir": resource_args["config_dir"]}}], check=True)
    result = check.task("replicate")
    assert result["mode"] == "full" and result["summary"]["created"] == 1
    real = run(resource_args)
    assert real.mode == "full" and real.summary["created"] == 1


def test_removals_are_found_among_the_changes_wherever_the_user_went(ad, ou, store, resource_args, tag, env,
                                                                     counted_reads):
    """Deleted, moved out of the base DN, no longer selected by the filter, or moved within it."""
    domain = env["MAIL_DOMAIN"]
    staff = "OU=Staff,%s" % ou
    elsewhere = "OU=Elsewhere,%s" % ou
    for unit in (staff, elsewhere):
        ad.conn.add(unit, "organizationalUnit")
    names = ["deleted", "moved-out", "unselected", "moved-in-scope", "stays"]
    dns = dict((name, ad.make_user(staff, "%s %s" % (name, tag), upn="%s.%s@%s" % (name, tag, domain),
                                   description="mail")[1]) for name in names)
    args = dict(resource_args, base_dn=staff, user_filter="(&(sAMAccountType=805306368)(description=mail))")
    assert run(args).summary["created"] == 5

    ad.conn.delete(dns["deleted"])
    ad.conn.modify_dn(dns["moved-out"], "CN=moved-out %s" % tag, new_superior=elsewhere)
    ad.modify(dns["unselected"], description="no mail")
    ad.conn.add("OU=Sub,%s" % staff, "organizationalUnit")
    ad.conn.modify_dn(dns["moved-in-scope"], "CN=moved-in-scope %s" % tag, new_superior="OU=Sub,%s" % staff)
    changed, reads = counted_reads.during(run, args)
    assert changed.mode == "incremental" and changed.removals == "tombstones"
    assert reads == 1  # the move within the scope: read again, unchanged
    assert sorted((c.kind, c.address.split(".")[0]) for c in changed.changes) == [
        ("disable", "deleted"), ("disable", "moved-out"), ("disable", "unselected")]
    assert store.account("moved-in-scope.%s@%s" % (tag, domain))["active"] is True
    assert store.account("stays.%s@%s" % (tag, domain))["active"] is True

    # Back in scope: enabled again by the next incremental run.
    ad.modify(dns["unselected"], description="mail")
    back, reads = counted_reads.during(run, args)
    assert back.removals == "tombstones" and reads == 1
    assert [(c.kind, c.address.split(".")[0]) for c in back.changes] == [("enable", "unselected")]


def test_an_account_that_cannot_list_deleted_objects_falls_back_to_a_scan(ad, ou, store, resource_args, tag, env,
                                                                          counted_reads):
    domain = env["MAIL_DOMAIN"]
    # An ordinary account, without the delegation on CN=Deleted Objects the lab's bind account has.
    password = "Plain-Reader-%s-1" % tag
    reader_dn = ad.make_user(ou, "reader %s" % tag, password=password)[1]
    args = dict(resource_args, bind_dn=reader_dn, bind_password=password)
    dns = [ad.make_user(ou, "S%d %s" % (i, tag), upn="s%d.%s@%s" % (i, tag, domain))[1] for i in range(3)]
    assert run(args).summary["created"] == 3

    ad.conn.delete(dns[0])
    ad.modify(dns[1], userPrincipalName="s1-renamed.%s@%s" % (tag, domain))
    changed, reads = counted_reads.during(run, args)
    assert changed.mode == "incremental" and changed.removals == "scan"
    assert reads == 1
    assert sorted((c.kind, c.address.split(".")[0]) for c in changed.changes) == [("disable", "s0"), ("rename", "s1")]


def test_a_filter_on_group_membership_is_checked_by_a_scan(ad, ou, store, resource_args, tag, env, counted_reads):
    """Leaving a group changes no USN on the user: only a scan sees the filter stop selecting it."""
    domain = env["MAIL_DOMAIN"]
    group = "CN=mailusers-%s,%s" % (tag, ou)
    ad.conn.add(group, "group", {"sAMAccountName": "mu-%s" % tag})
    dns = [ad.make_user(ou, "M%d %s" % (i, tag), upn="m%d.%s@%s" % (i, tag, domain))[1] for i in range(2)]
    ad.conn.modify(group, {"member": [(ldap3.MODIFY_ADD, dns)]})
    args = dict(resource_args, user_filter="(&(sAMAccountType=805306368)(memberOf=%s))" % group,
                replicate_groups=False)
    assert run(args).summary["created"] == 2

    ad.conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [dns[0]])]})
    changed, reads = counted_reads.during(run, args)
    assert changed.removals == "scan"
    assert [(c.kind, c.address.split(".")[0]) for c in changed.changes] == [("disable", "m0")]


def test_an_ou_moved_in_or_out_of_the_base_dn_carries_its_users(ad, ou, store, resource_args, tag, env,
                                                                 counted_reads):
    """Moving an OU changes no USN on the users in it; the run reads the moved subtree."""
    domain = env["MAIL_DOMAIN"]
    staff, elsewhere = "OU=Staff,%s" % ou, "OU=Elsewhere,%s" % ou
    for unit in (staff, elsewhere, "OU=Team,%s" % staff, "OU=Newcomers,%s" % elsewhere):
        ad.conn.add(unit, "organizationalUnit")
    ad.make_user("OU=Team,%s" % staff, "T %s" % tag, upn="team.%s@%s" % (tag, domain))
    ad.make_user("OU=Newcomers,%s" % elsewhere, "N %s" % tag, upn="newcomer.%s@%s" % (tag, domain))
    ad.make_user(staff, "R %s" % tag, upn="resident.%s@%s" % (tag, domain))
    args = dict(resource_args, base_dn=staff)
    assert run(args).summary["created"] == 2  # team and resident

    ad.conn.modify_dn("OU=Team,%s" % staff, "OU=Team", new_superior=elsewhere)
    ad.conn.modify_dn("OU=Newcomers,%s" % elsewhere, "OU=Newcomers", new_superior=staff)
    changed, reads = counted_reads.during(run, args)
    assert changed.removals == "tombstones"
    assert sorted((c.kind, c.address.split(".")[0]) for c in changed.changes) == [
        ("create", "newcomer"), ("disable", "team")]
    assert reads == 1  # the newcomer, read with its moved OU; the resident is not read


def test_a_quiet_domain_leaves_aliases_unread(ad, ou, store, resource_args, tag, env, monkeypatch):
    """Changes that touch no user, contact or group (an OU's description) need no group read."""
    domain = env["MAIL_DOMAIN"]
    member = ad.make_user(ou, "Q %s" % tag, upn="q.%s@%s" % (tag, domain))[1]
    ad.conn.add("CN=qgroup-%s,%s" % (tag, ou), "group", {"sAMAccountName": "qg-%s" % tag,
                                                          "mail": "qgroup.%s@%s" % (tag, domain), "member": [member]})
    assert run(resource_args).summary["created"] == 2
    group_reads = []
    original = ad_reader.read_groups
    monkeypatch.setattr(ad_reader, "read_groups", lambda *a, **kw: group_reads.append(1) or original(*a, **kw))

    ad.modify(ou, description="edited %s" % tag)
    quiet = run(resource_args)
    assert quiet.mode == "incremental" and not quiet and group_reads == []
    ad.modify(member, description="edited %s" % tag)
    busy = run(resource_args)
    assert not busy and group_reads  # the groups of a changed member are read
    answer = postmap(store, "virtual_alias_maps", "qgroup.%s@%s" % (tag, domain))
    assert sorted(answer.split(",")) == ["q.%s@%s" % (tag, domain)]


def test_an_incremental_run_still_sees_the_addresses_in_use(ad, ou, store, resource_args, tag, env, monkeypatch):
    """Incremental runs ask the store about the addresses they plan to write only: they still find the
    hand-made account, another replicated account's address and a member that exists outside the scope."""
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    _, kim = ad.make_user(ou, "Kim %s" % tag, upn=a("kim"))
    _, lou = ad.make_user(ou, "Lou %s" % tag, upn=a("lou"))
    assert run(resource_args).summary["created"] == 2
    asked = []
    opened = replicate.open_backend

    def recording(options):
        backend = opened(options)
        in_use = backend.addresses_in_use
        backend.addresses_in_use = lambda resource, domain_, candidates=None: (
            asked.append(candidates) or in_use(resource, domain_, candidates))
        return backend

    monkeypatch.setattr(replicate, "open_backend", recording)
    store.make_account(a("hand"))
    try:
        before = store.snapshot(a("hand"))
        ad.modify(kim, userPrincipalName=a("hand"))  # taken by an account replication did not make
        ad.modify(lou, userPrincipalName=a("kim.new"))
        plan = run(resource_args)
        assert plan.mode == "incremental"
        assert asked == [{a("hand"), a("kim"), a("kim.new"), a("lou")}]
        assert [(c.kind, c.address, c.new_address) for c in plan.changes] == [("rename", a("lou"), a("kim.new"))]
        assert [s.reason for s in plan.skipped if s.address == a("hand")] == [
            "cannot rename %s: address already used by an account replication does not manage" % a("kim")]
        assert store.snapshot(a("hand")) == before
        assert store.account(a("kim"))["active"] is True
    finally:
        store.remove_by_hand(a("hand"))


def test_an_address_two_users_claim_goes_to_the_one_left_at_the_next_run(ad, ou, store, resource_args, tag, env):
    """Contested addresses are kept in the cursor: the unchanged claimant is read again once the other lets go."""
    domain = env["MAIL_DOMAIN"]
    a = lambda name: "%s.%s@%s" % (name, tag, domain)  # noqa: E731
    _, one = ad.make_user(ou, "One %s" % tag, upn=a("one"))
    _, two = ad.make_user(ou, "Two %s" % tag, upn=a("two"))
    assert run(resource_args).summary["created"] == 2

    # One takes Two's address as its primary (SMTP:): both claim it, neither gets it,
    # both keep their mailboxes, as a full run decides.
    ad.conn.modify(one, {"proxyAddresses": [(ldap3.MODIFY_REPLACE, ["SMTP:" + a("two")])]})
    plan = run(resource_args)
    assert plan.mode == "incremental" and plan.changes == []
    assert sorted(s.dn.lower() for s in plan.skipped if "claimed by 2" in s.reason) == sorted([one.lower(), two.lower()])
    assert not replicate.replicate(load(resource_args), check_mode=True, full=True).changes

    # Two lets go: One, unchanged in AD, gets the address at once.
    ad.modify(two, userPrincipalName=a("three"))
    plan = run(resource_args)
    assert plan.mode == "incremental"
    assert sorted((c.kind, c.address, c.new_address) for c in plan.changes) == [
        ("rename", a("one"), a("two")), ("rename", a("two"), a("three"))]
    assert store.account(a("two")) is not None and store.account(a("three")) is not None
    assert not replicate.replicate(load(resource_args), check_mode=True, full=True).changes
