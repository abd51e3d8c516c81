"""End-to-end replication with ansible-playbook, against Samba AD and each account store."""

import json
import os
import re
import stat

import pytest

from lab import doveadm_auth, doveadm_user, postmap, run_playbook

from ansible_collections.mailsync.iredmail.plugins.module_utils import errors, replicate, resource as resources


def declare_and_replicate(args, check=False, diff=False, replicate_name="replicate"):
    tasks = [
        {"name": "declare", "mailsync.iredmail.ad_resource": args},
        {"name": replicate_name, "mailsync.iredmail.ad_replicate": {
            "resource": args["name"], "config_dir": args["config_dir"]}},
    ]
    return run_playbook(tasks, check=check, diff=diff)


def replicate_only(args, check=False, diff=False):
    return run_playbook([{"name": "replicate", "mailsync.iredmail.ad_replicate": {
        "resource": args["name"], "config_dir": args["config_dir"]}}], check=check, diff=diff)


def assert_ok(run):
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_ad_users_become_working_mailboxes(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    jane_guid, _ = ad.make_user(ou, "Jane Doe %s" % tag, upn="Jane.%s@%s" % (tag, domain.upper()),
                                displayName="Jane Doe", givenName="Jane", sn="Doe", employeeID="E-1",
                                mobile="+1 555 0100", telephoneNumber="+1 555 0101")
    ad.make_user(ou, "Bob %s" % tag, upn="bob.%s@%s" % (tag, domain))

    run = declare_and_replicate(resource_args)
    assert_ok(run)
    result = run.task("replicate")
    assert result["changed"] is True
    assert result["summary"]["created"] == 2
    assert result["summary"]["skipped"] == 0

    jane = "jane.%s@%s" % (tag, domain)
    account = store.account(jane)
    assert account is not None, "no account for %s" % jane
    assert account["active"] is True
    assert account["quota"] == 1024  # the domain's default quota
    home = re.match(r"^/var/vmail/vmail1/(%s/j/a/n/jane\.%s-\d{4}\.\d\d\.\d\d\.\d\d\.\d\d\.\d\d)$"
                    % (re.escape(domain), tag), account["home"])
    assert home, account["home"]
    assert (account["display_name"], account["first_name"], account["last_name"]) == ("Jane Doe", "Jane", "Doe")
    assert (account["employee_id"], account["mobile"], account["telephone"]) == ("E-1", "+1 555 0100", "+1 555 0101")
    # AD passwords cannot be read: the local hash is well-formed and unusable.
    assert account["password"].startswith("{SSHA512}")
    assert {"guid": jane_guid, "address": jane} in store.managed(resource_args["name"])

    if store.kind == "ldap":
        entry = store.entry(jane)
        assert entry["dn"] == ["mail=%s,ou=Users,domainName=%s,%s" % (jane, domain, store.base_dn)]
        assert sorted(entry["objectClass"]) == ["amavisAccount", "inetOrgPerson", "mailUser", "shadowAccount"]
        assert entry["uid"] == ["jane.%s" % tag]
        assert len(entry["enabledService"]) == 34
        assert {"mail", "deliver", "lda", "lmtp", "smtp", "imapsecured", "internal"} <= set(entry["enabledService"])
        assert entry["amavisLocal"] == ["TRUE"]
        # The deprecated pair iRedMail's older tools and iRedAdmin's deletion
        # fall back to names the same directory as homeDirectory.
        assert entry["storageBaseDirectory"] == ["/var/vmail"]
        assert entry["mailMessageStore"] == ["vmail1/%s/" % home.group(1)]
        assert entry["homeDirectory"] == ["%s/%s" % (entry["storageBaseDirectory"][0],
                                                     entry["mailMessageStore"][0])]
    else:
        row = store.mailbox(jane)
        assert row["domain"] == domain
        assert (row["storagebasedirectory"], row["storagenode"]) == ("/var/vmail", "vmail1")
        assert row["allow_nets"] is None
        for service in ("enablesmtp", "enablesmtpsecured", "enableimap", "enableimapsecured", "enablepop3",
                        "enabledeliver", "enablelda", "enablelmtp", "enablesieve", "enableinternal",
                        "enabledoveadm", "enablesogo"):
            assert row[service] == 1, service
        assert (row["mailboxformat"], row["mailboxfolder"]) == ("maildir", "Maildir")
        assert [(f["address"], f["forwarding"], f["domain"], f["dest_domain"], f["is_forwarding"], f["active"])
                for f in store.forwardings(jane)] == [(jane, jane, domain, domain, 1, 1)]
        assert postmap(store, "virtual_alias_maps", jane) == jane

    # What iRedMail's Postfix and Dovecot ask decides whether mail arrives.
    assert postmap(store, "virtual_mailbox_domains", domain) is not None
    mailbox_map = postmap(store, "virtual_mailbox_maps", jane)
    # iRedMail's own query joins maildir (trailing /) and "/Maildir/": a
    # doubled slash, which Postfix only tests for existence.
    assert mailbox_map is not None and re.sub("/+", "/", mailbox_map).endswith(home.group(1) + "/Maildir/"), \
        mailbox_map
    assert postmap(store, "sender_login_maps", jane) == jane
    user = doveadm_user(store, jane)
    assert user is not None
    assert user["home"].rstrip("/") == account["home"]
    assert user["quota_rule"] == "*:bytes=%d" % (1024 * 1048576)
    assert not doveadm_auth(store, jane, "Lab-Passw0rd-1")


def test_second_run_changes_nothing(ad, ou, store, resource_args, tag, env):
    ad.make_user(ou, "Carol %s" % tag, upn="carol.%s@%s" % (tag, env["MAIL_DOMAIN"]))
    assert_ok(declare_and_replicate(resource_args))
    carol = "carol.%s@%s" % (tag, env["MAIL_DOMAIN"])
    before = store.account(carol)
    assert before is not None

    run = declare_and_replicate(resource_args)
    assert_ok(run)
    assert run.task("declare")["changed"] is False
    result = run.task("replicate")
    assert result["changed"] is False
    assert result["summary"]["unchanged"] == 1
    assert result["changes"] == []
    assert store.account(carol) == before


def test_check_diff_lists_pending_accounts_and_writes_nothing(ad, ou, store, resource_args, tag, env, secrets):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Dave %s" % tag, upn="dave.%s@%s" % (tag, domain), displayName="Dave D")
    assert_ok(run_playbook([{"name": "declare", "mailsync.iredmail.ad_resource": resource_args}]))

    run = replicate_only(resource_args, check=True, diff=True)
    assert_ok(run)
    result = run.task("replicate")
    assert result["changed"] is True
    assert result["summary"]["created"] == 1
    dave = "dave.%s@%s" % (tag, domain)
    assert [(d["before"], d["after_header"]) for d in result["diff"]] == [("", "user %s (create)" % dave)]
    assert "display_name: Dave D" in result["diff"][0]["after"]
    assert store.managed(resource_args["name"]) == []
    assert store.account(dave) is None

    # The same through the default callback, as an administrator reads it.
    human = run_playbook([{"name": "replicate", "mailsync.iredmail.ad_replicate": {
        "resource": resource_args["name"], "config_dir": resource_args["config_dir"]}}],
        check=True, diff=True, stdout_callback="default")
    assert human.returncode == 0, human.stdout
    assert "+address: %s" % dave in human.stdout
    for secret in secrets:
        assert secret not in human.stdout and secret not in human.stderr
    assert store.account(dave) is None


def test_objects_that_cannot_be_mailboxes_are_skipped_and_reported(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Outside %s" % tag, upn="outside.%s@elsewhere.org" % tag)
    ad.make_user(ou, "NoUPN %s" % tag)
    ad.make_user(ou, "Bad %s" % tag, upn="bad %s@%s" % (tag, domain))
    ad.make_user(ou, "Good %s" % tag, upn="good.%s@%s" % (tag, domain))

    run = declare_and_replicate(resource_args)
    assert_ok(run)
    result = run.task("replicate")
    assert result["summary"]["created"] == 1
    assert result["summary"]["skipped"] == 3
    reasons = sorted(skip["reason"].split(":")[0] for skip in result["skipped_objects"])
    assert reasons == ["address outside target domain %s" % domain, "invalid address", "no mail address"]
    assert [m["address"] for m in store.managed(resource_args["name"])] == ["good.%s@%s" % (tag, domain)]
    assert store.account("outside.%s@elsewhere.org" % tag) is None


def test_an_existing_account_is_a_conflict_and_keeps_working(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    postmaster = "postmaster@%s" % domain
    before = store.account(postmaster)
    ad.make_user(ou, "Impostor %s" % tag, upn=postmaster)

    run = declare_and_replicate(resource_args)
    assert_ok(run)
    result = run.task("replicate")
    assert result["changed"] is False
    assert result["skipped_objects"][0]["address"] == postmaster
    assert "not manage" in result["skipped_objects"][0]["reason"]
    assert store.account(postmaster) == before
    assert doveadm_auth(store, postmaster, env["POSTMASTER_PASSWORD"])


def test_disabled_ad_user_becomes_a_disabled_mailbox(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Eve %s" % tag, upn="eve.%s@%s" % (tag, domain), disabled=True)
    assert_ok(declare_and_replicate(resource_args))
    eve = "eve.%s@%s" % (tag, domain)
    assert store.account(eve)["active"] is False
    if store.kind != "ldap":
        assert [f["active"] for f in store.forwardings(eve)] == [0]
    assert postmap(store, "virtual_mailbox_maps", eve) is None
    assert postmap(store, "virtual_alias_maps", eve) is None
    assert doveadm_user(store, eve) is None


def make_group(ad, ou, cn, mail, members):
    dn = "CN=%s,%s" % (cn, ou)
    ad.conn.add(dn, ["top", "group"], {"sAMAccountName": ("g" + cn.replace(" ", ""))[:20], "mail": mail,
                                       "member": list(members)})
    return dn


def test_target_domain_must_be_hosted_and_active(ad, ou, store, resource_args, tag, env):
    cases = ((env["MAIL_DOMAIN_DISABLED"], "is disabled"),
             (env["MAIL_DOMAIN_BACKUPMX"], "backup MX"),
             ("nowhere-%s.example.org" % tag, "is not hosted"))
    # In each domain a user and a group: had the check come after AD was
    # read, each run would have had an account and an alias to write.
    addresses = []
    for number, (domain, _) in enumerate(cases):
        user, team = "frank.%s@%s" % (tag, domain), "team%d.%s@%s" % (number, tag, domain)
        _, dn = ad.make_user(ou, "Frank%d %s" % (number, tag), upn=user)
        make_group(ad, ou, "Team%d %s" % (number, tag), team, [dn])
        addresses += [user, team]
    before = dict((address, store.snapshot(address)) for address in addresses)
    counts = dict((domain, store.count_in_domain(domain)) for domain, _ in cases)

    for domain, words in cases:
        args = dict(resource_args, target_domain=domain)
        run = declare_and_replicate(args)
        assert run.returncode != 0
        result = run.task("replicate")
        assert result["failed"] is True
        assert words in result["msg"] and "nothing was written" in result["msg"]
        assert store.managed(resource_args["name"]) == []
        assert store.cursor_text(resource_args["name"]) is None
        assert dict((address, store.snapshot(address)) for address in addresses) == before
        assert dict((d, store.count_in_domain(d)) for d, _ in cases) == counts
    assert store.account(addresses[0]) is None


def plan_then_apply(args, meanwhile):
    """One run, with `meanwhile` done between reading the store and writing to it."""
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    resource = resources.load(args["config_dir"], args["name"])
    with replicate.open_backend(resource.backend) as backend:
        plan, domain = replicate.plan_replication(resource, backend)
        meanwhile()
        backend.apply(plan, resource.name, domain, resource)
    return plan


@pytest.mark.parametrize("kind", ["user", "alias"])
def test_an_account_made_by_hand_while_a_run_plans_is_left_alone(ad, ou, store, resource_args, tag, env, kind):
    domain = env["MAIL_DOMAIN"]
    ann, team = "ann.%s@%s" % (tag, domain), "team.%s@%s" % (tag, domain)
    _, ann_dn = ad.make_user(ou, "Ann %s" % tag, upn=ann)
    make_group(ad, ou, "Team %s" % tag, team, [ann_dn])
    target = ann if kind == "user" else team
    made = {}

    def by_hand():
        if kind == "user":
            store.make_account(ann)
        else:
            store.make_alias(team, ["postmaster@%s" % domain])
        made["snapshot"] = store.snapshot(target)

    try:
        with pytest.raises(errors.BackendError) as failed:
            plan_then_apply(resource_args, by_hand)
        assert made["snapshot"] and store.snapshot(target) == made["snapshot"]
        if store.kind == "ldap":
            assert "%s was created in OpenLDAP by someone else" % target in str(failed.value)
        assert store.cursor_text(resource_args["name"]) is None

        # The next run reads it as someone else's: a conflict, still untouched.
        plan = plan_then_apply(resource_args, lambda: None)
        assert target in [skip.address for skip in plan.skipped]
        assert target not in [m["address"] for m in store.managed(resource_args["name"])]
        assert store.snapshot(target) == made["snapshot"]
    finally:
        store.remove_by_hand(target)


def test_resource_file_is_root_only_and_secrets_never_shown(ad, ou, store, resource_args, tag, env, secrets):
    ad.make_user(ou, "Gina %s" % tag, upn="gina.%s@%s" % (tag, env["MAIL_DOMAIN"]))
    run = run_playbook([
        {"name": "declare", "mailsync.iredmail.ad_resource": resource_args},
        {"name": "replicate", "mailsync.iredmail.ad_replicate": {
            "resource": resource_args["name"], "config_dir": resource_args["config_dir"]}},
    ], diff=True, extra_args=["-vvv"], stdout_callback="default")
    assert run.returncode == 0, run.stdout[-3000:]
    for secret in secrets:
        assert secret not in run.stdout and secret not in run.stderr
    path = os.path.join(resource_args["config_dir"], resource_args["name"] + ".json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(resource_args["config_dir"]).st_mode) == 0o700
    with open(path) as handle:
        stored = json.load(handle)
    assert stored["options"]["bind_password"] == env["AD_BIND_PASSWORD"]

    # A changed password is reported as a change, masked in the diff.
    changed = dict(resource_args, bind_password=env["AD_BIND_PASSWORD"] + "x")
    run = run_playbook([{"name": "declare", "mailsync.iredmail.ad_resource": changed}], check=True, diff=True)
    assert_ok(run)
    declared = run.task("declare")
    assert declared["changed"] is True
    assert declared["diff"]["after"]["bind_password"] == "******** (changed)"
    assert env["AD_BIND_PASSWORD"] not in json.dumps(declared)
    # ...in check mode: the file still holds the old password.
    with open(path) as handle:
        assert json.load(handle) == stored
