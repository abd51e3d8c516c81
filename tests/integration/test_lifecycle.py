"""Account lifecycle over repeated runs, on every backend: renames, disable, removal, profile, safety."""

import datetime

import pytest

from lab import STORES, doveadm_user, postmap, run_playbook

from ansible_collections.mailsync.iredmail.plugins.module_utils import errors, replicate, resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils.backends import ldap as ldap_backend


def replicate_now(args, check=False, diff=False):
    """Declare (idempotently) and replicate; the replicate task's result."""
    run = run_playbook([
        {"name": "declare", "mailsync.iredmail.ad_resource": args},
        {"name": "replicate", "mailsync.iredmail.ad_replicate": {
            "resource": args["name"], "config_dir": args["config_dir"]}},
    ], check=check, diff=diff)
    assert "replicate" in run.results, run.stdout[-3000:] + run.stderr[-3000:]
    result = run.task("replicate")
    assert "summary" in result or result.get("failed"), result
    return result


def replicate_direct(args):
    """The same pipeline without ansible-playbook, for the many-step tests."""
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    return replicate.replicate(resources.load(args["config_dir"], args["name"]))


def address(tag, name, env):
    return "%s.%s@%s" % (name, tag, env["MAIL_DOMAIN"])


def test_rename_follows_the_user_and_keeps_the_mailbox(ad, ou, store, resource_args, tag, env):
    old, new = address(tag, "kim", env), address(tag, "kimberly", env)
    guid, dn = ad.make_user(ou, "Kim %s" % tag, upn=old)
    assert replicate_now(resource_args)["summary"]["created"] == 1
    before = store.account(old)

    ad.modify(dn, userPrincipalName=new)
    result = replicate_now(resource_args)
    assert result["summary"]["renamed"] == 1 and result["changed"] is True
    assert result["changes"][0]["before"]["address"] == old and result["changes"][0]["after"]["address"] == new
    assert store.account(old) is None
    after = store.account(new)
    assert after["home"] == before["home"], "the mail home must stay where it is"
    assert store.managed(resource_args["name"]) == [{"guid": guid, "address": new}]
    assert postmap(store, "virtual_mailbox_maps", old) is None
    assert postmap(store, "virtual_mailbox_maps", new) is not None
    assert doveadm_user(store, new)["home"].rstrip("/") == before["home"]
    if store.kind != "ldap":
        assert [(f["address"], f["forwarding"]) for f in store.forwardings(new)] == [(new, new)]
        assert store.forwardings(old) == []
    assert replicate_now(resource_args)["changed"] is False


def test_rename_can_keep_the_old_address_as_an_alias(ad, ou, store, resource_args, tag, env):
    args = dict(resource_args, keep_old_address=True)
    old, new = address(tag, "lee", env), address(tag, "lee.ann", env)
    _, dn = ad.make_user(ou, "Lee %s" % tag, upn=old)
    replicate_now(args)
    ad.modify(dn, userPrincipalName=new)
    renamed = replicate_now(args)
    assert renamed.get("summary", {}).get("renamed") == 1, renamed
    if store.kind == "ldap":
        assert store.entry(new)["shadowAddress"] == [old]
        assert postmap(store, "virtual_mailbox_maps", old) is not None
    else:
        assert postmap(store, "virtual_alias_maps", old) == new
    # Changing back takes the alias back instead of conflicting with it.
    ad.modify(dn, userPrincipalName=old)
    result = replicate_now(args)
    assert result["summary"]["renamed"] == 1, result
    assert store.account(old) is not None and store.account(new) is None
    if store.kind != "ldap":
        assert postmap(store, "virtual_alias_maps", new) == old
    assert replicate_now(args)["changed"] is False


def test_disable_and_enable_follow_the_ad_flag(ad, ou, store, resource_args, tag, env):
    user = address(tag, "max", env)
    _, dn = ad.make_user(ou, "Max %s" % tag, upn=user)
    replicate_now(resource_args)
    assert postmap(store, "virtual_mailbox_maps", user) is not None

    ad.set_disabled(dn, True)
    result = replicate_now(resource_args)
    assert result["summary"]["disabled"] == 1
    assert store.account(user)["active"] is False
    assert postmap(store, "virtual_mailbox_maps", user) is None
    assert doveadm_user(store, user) is None
    if store.kind != "ldap":
        assert [f["active"] for f in store.forwardings(user)] == [0]

    ad.set_disabled(dn, False)
    assert replicate_now(resource_args)["summary"]["enabled"] == 1
    assert store.account(user)["active"] is True
    assert postmap(store, "virtual_mailbox_maps", user) is not None
    if store.kind != "ldap":
        assert [f["active"] for f in store.forwardings(user)] == [1]


def test_profile_and_quota_changes_in_ad_update_the_account(ad, ou, store, resource_args, tag, env):
    args = dict(resource_args, quota_attribute="departmentNumber")
    user = address(tag, "nia", env)
    _, dn = ad.make_user(ou, "Nia %s" % tag, upn=user, displayName="Nia", sn="Old", departmentNumber="2G")
    replicate_now(args)
    assert store.account(user)["quota"] == 2048

    ad.modify(dn, displayName="Nia Kumar", sn="Kumar", mobile="+44 1", departmentNumber="512")
    result = replicate_now(args, check=True, diff=True)
    assert result["summary"]["updated"] == 1
    assert "display_name: Nia\n" in result["diff"][0]["before"]
    assert "display_name: Nia Kumar\n" in result["diff"][0]["after"]
    assert store.account(user)["display_name"] == "Nia"  # check mode wrote nothing

    assert replicate_now(args)["summary"]["updated"] == 1
    account = store.account(user)
    assert (account["display_name"], account["last_name"], account["mobile"], account["quota"]) == \
        ("Nia Kumar", "Kumar", "+44 1", 512)
    assert doveadm_user(store, user)["quota_rule"] == "*:bytes=%d" % (512 * 1048576)


def test_removed_users_follow_the_policy(ad, ou, store, resource_args, tag, env):
    keep, gone, moved = address(tag, "keep", env), address(tag, "gone", env), address(tag, "moved", env)
    # Accounts replication did not create: the seeded postmaster, one made by
    # hand, and one made by hand at the address of an AD user that then
    # leaves AD (skipped as a conflict, so never replication's to remove).
    handmade, clash = address(tag, "handmade", env), address(tag, "clash", env)
    others = ["postmaster@%s" % env["MAIL_DOMAIN"], handmade, clash]
    store.make_account(handmade)
    store.make_account(clash)
    ad.make_user(ou, "Keep %s" % tag, upn=keep)
    _, gone_dn = ad.make_user(ou, "Gone %s" % tag, upn=gone)
    _, moved_dn = ad.make_user(ou, "Moved %s" % tag, upn=moved)
    _, clash_dn = ad.make_user(ou, "Clash %s" % tag, upn=clash)
    untouched = dict((other, store.snapshot(other)) for other in others)
    elsewhere = ad.make_ou()
    try:
        first = replicate_now(dict(resource_args, on_removed="keep"))
        assert [skip["address"] for skip in first["skipped_objects"]] == [clash], first
        home = store.account(gone)["home"]
        ad.conn.delete(gone_dn)
        ad.conn.delete(clash_dn)
        ad.conn.modify_dn(moved_dn, moved_dn.split(",")[0], new_superior=elsewhere)

        result = replicate_now(dict(resource_args, on_removed="keep"))
        assert result["changed"] is False and result["summary"]["unchanged"] == 3
        assert store.account(gone)["active"] is True

        result = replicate_now(dict(resource_args, on_removed="disable"))
        assert result["summary"]["disabled"] == 2
        assert store.account(gone)["active"] is False and store.account(moved)["active"] is False
        assert store.account(keep)["active"] is True
        assert dict((other, store.snapshot(other)) for other in others) == untouched

        result = replicate_now(dict(resource_args, on_removed="delete", delete_after_days=0))
        assert result["summary"]["deleted"] == 2
        assert dict((other, store.snapshot(other)) for other in others) == untouched
        assert store.account(gone) is None and store.account(moved) is None
        assert [m["address"] for m in store.managed(resource_args["name"])] == [keep]
        if store.kind != "ldap":
            assert store.forwardings(gone) == []
        # SQL: in vmail; OpenLDAP: in iRedAdmin's database (backend.iredadmin).
        rows = store.deleted_mailboxes(gone)
        assert len(rows) == 1, rows
        assert rows[0]["maildir"].startswith("/var/vmail/vmail1/%s/" % env["MAIL_DOMAIN"])
        assert rows[0]["maildir"].rstrip("/") == home, "the row must name the mailbox the account had"
        assert (rows[0]["domain"], rows[0]["admin"], rows[0]["delete_date"]) == \
            (env["MAIL_DOMAIN"], "mailsync:%s" % resource_args["name"], None)
        assert store.deleted_mailboxes(handmade) == [] and store.deleted_mailboxes(clash) == []
    finally:
        ad.delete_tree(elsewhere)
        store.remove_by_hand(handmade)
        store.remove_by_hand(clash)


def test_delete_waits_for_the_grace_period(ad, ou, store, resource_args, tag, env):
    args = dict(resource_args, on_removed="delete", delete_after_days=30)
    user = address(tag, "omar", env)
    _, dn = ad.make_user(ou, "Omar %s" % tag, upn=user)
    ad.make_user(ou, "Stays %s" % tag, upn=address(tag, "stays", env))
    replicate_direct(args)
    ad.conn.delete(dn)

    plan = replicate_direct(args)
    assert [c.kind for c in plan.changes] == ["disable"]
    assert store.account(user)["active"] is False
    plan = replicate_direct(args)
    assert not plan and store.account(user) is not None  # still in its grace period

    set_removed_since(store, resource_args["name"], user, datetime.datetime.now() - datetime.timedelta(days=31))
    plan = replicate_direct(args)
    assert [c.kind for c in plan.changes] == ["delete"]
    assert store.account(user) is None


def test_user_back_in_ad_during_grace_is_enabled_not_deleted(ad, ou, store, resource_args, tag, env):
    args = dict(resource_args, on_removed="delete", delete_after_days=30, user_filter="(&(sAMAccountType=805306368)(!(description=leaver)))")
    user = address(tag, "pia", env)
    _, dn = ad.make_user(ou, "Pia %s" % tag, upn=user)
    ad.make_user(ou, "Stays %s" % tag, upn=address(tag, "stays", env))
    replicate_direct(args)
    ad.modify(dn, description="leaver")
    assert [c.kind for c in replicate_direct(args).changes] == ["disable"]
    ad.modify(dn, description=None)
    assert [c.kind for c in replicate_direct(args).changes] == ["enable"]
    set_removed_since(store, resource_args["name"], user, None, expect_missing=True)
    assert not replicate_direct(args)


def set_removed_since(store, resource, user, when, expect_missing=False):
    """Move the removal mark (time passing), or check it is gone."""
    if store.kind == "ldap":
        entry = store.entry(user)
        marks = [v for v in entry.get("accountSetting", []) if v.startswith("mailsyncRemovedSince:")]
        if expect_missing:
            assert marks == []
            return
        import ldap
        store.conn.modify_s(entry["dn"][0], [(ldap.MOD_DELETE, "accountSetting", [m.encode() for m in marks]),
                                             (ldap.MOD_ADD, "accountSetting",
                                              [("mailsyncRemovedSince:" + when.strftime("%Y-%m-%dT%H:%M:%S")).encode()])])
        return
    if expect_missing:
        rows = store.query("SELECT removed_since FROM mailsync_object WHERE resource = %s AND address = %s",
                           (resource, user))
        assert rows == [{"removed_since": None}]
        return
    assert store.execute("UPDATE mailsync_object SET removed_since = %s WHERE resource = %s AND address = %s",
                         (when, resource, user)) == 1


def test_safety_limit_stops_a_mass_removal_and_writes_nothing(ad, ou, store, resource_args, tag, env):
    args = dict(resource_args, max_deletes="2")
    users = [address(tag, "s%d" % i, env) for i in range(4)]
    dns = [ad.make_user(ou, "S%d %s" % (i, tag), upn=u)[1] for i, u in enumerate(users)]
    replicate_now(args)
    for dn in dns[:3]:
        ad.conn.delete(dn)
    result = replicate_now(args)
    assert result.get("failed") is True
    assert "refusing to disable or delete 3 of 4" in result["msg"] and "nothing was written" in result["msg"]
    assert all(store.account(u)["active"] for u in users)
    assert replicate_now(dict(args, max_deletes="75%"))["summary"]["disabled"] == 3


def test_empty_directory_answer_never_removes_accounts(ad, ou, store, resource_args, tag, env):
    user = address(tag, "quinn", env)
    ad.make_user(ou, "Quinn %s" % tag, upn=user)
    replicate_now(resource_args)
    empty = ad.make_ou()
    try:
        result = replicate_now(dict(resource_args, base_dn=empty, max_deletes="100%"))
        assert result.get("failed") is True and "returned no users" in result["msg"]
        assert store.account(user)["active"] is True
    finally:
        ad.delete_tree(empty)


# -- OpenLDAP: deleted mailboxes go to iRedAdmin's database ------------------

@pytest.fixture(scope="module")
def ldap_store(env):
    directory = STORES["ldap"](env)
    yield directory
    directory.close()


def ldap_args(env, ou, tag, config_dir, backend):
    return {"name": "t-%s" % tag, "config_dir": config_dir, "target_domain": env["MAIL_DOMAIN"],
            "server_uri": [env["AD_URI_LDAPS"]], "ca_cert": env["AD_CA_CERT"], "bind_dn": env["AD_BIND_DN"],
            "bind_password": env["AD_BIND_PASSWORD"], "base_dn": ou, "backend": backend,
            "on_removed": "delete", "delete_after_days": 0}


def iredadmin_on(engine, env):
    """backend.iredadmin options, the store that reads it, and its query and statement runners.

    pgsql: iRedAdmin's tables are the same in the lab's PostgreSQL `vmail`
    database, which stands in for an `iredadmin` database on PostgreSQL.
    """
    if engine == "mysql":
        reader = STORES["ldap"](env)
        return reader.iredadmin_options(), reader, reader.iredadmin_query, reader.iredadmin_query
    reader = STORES["pgsql"](env)
    return dict(reader.backend_options(), type="pgsql"), reader, reader.query, reader.execute


@pytest.mark.parametrize("engine", ["mysql", "pgsql"])
def test_ldap_delete_stopped_after_scheduling_adds_no_second_row(ad, ou, ldap_store, tag, env, config_dir,
                                                                  monkeypatch, engine):
    options, reader, query, execute = iredadmin_on(engine, env)
    try:
        backend = dict(ldap_store.backend_options(iredadmin=False), iredadmin=options)
        args = dict(ldap_args(env, ou, tag, config_dir, backend), keep_mailbox_days=7)
        user = address(tag, "rhea", env)
        _, dn = ad.make_user(ou, "Rhea %s" % tag, upn=user)
        ad.make_user(ou, "Stays %s" % tag, upn=address(tag, "stays", env))
        replicate_direct(args)
        home = ldap_store.account(user)["home"]
        execute("INSERT INTO used_quota (username, bytes, messages) VALUES (%s, 1024, 1)", (user,))
        ad.conn.delete(dn)

        # The run stops right after the maildir is scheduled, before the entry goes.
        def stopped(*args, **kwargs):
            raise RuntimeError("stopped")
        monkeypatch.setattr(ldap_backend.LDAPBackend, "_rewrite_references", stopped)
        with pytest.raises(errors.BackendError):
            replicate_direct(args)
        assert ldap_store.account(user) is not None
        monkeypatch.undo()

        plan = replicate_direct(args)
        assert [c.kind for c in plan.changes] == ["delete"]
        assert ldap_store.account(user) is None
        rows = query("SELECT username, domain, maildir, admin, delete_date FROM deleted_mailboxes "
                     "WHERE username = %s", (user,))
        assert len(rows) == 1, rows
        assert rows[0]["maildir"] == home + "/"
        assert rows[0]["delete_date"] == datetime.date.today() + datetime.timedelta(days=7)
        assert query("SELECT username FROM used_quota WHERE username = %s", (user,)) == []
    finally:
        reader.close()


def test_ldap_delete_without_the_iredadmin_database_still_deletes(ad, ou, ldap_store, tag, env, config_dir):
    args = ldap_args(env, ou, tag, config_dir, ldap_store.backend_options(iredadmin=False))
    user, stays = address(tag, "sol", env), address(tag, "stays", env)
    _, dn = ad.make_user(ou, "Sol %s" % tag, upn=user)
    ad.make_user(ou, "Stays %s" % tag, upn=stays)
    replicate_now(args)
    ad.conn.delete(dn)

    result = replicate_now(args)
    assert result["summary"]["deleted"] == 1, result
    assert ldap_store.account(user) is None and ldap_store.account(stays) is not None
    assert postmap(ldap_store, "virtual_mailbox_maps", user) is None
    assert ldap_store.deleted_mailboxes(user) == []
    assert any("backend.iredadmin is not set" in w for w in result.get("warnings", [])), result
