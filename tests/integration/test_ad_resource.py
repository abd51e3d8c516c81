"""ad_resource's connection test (validate: true) against the lab's Samba AD."""

import json
import os

from lab import run_playbook


def declare(args, name="declare", **overrides):
    return {"name": name, "mailsync.iredmail.ad_resource": dict(args, validate=True, **overrides)}


def test_validate_returns_the_first_users_and_groups_with_their_mapped_attributes(
        ad, ou, store, resource_args, tag, env, secrets):
    domain = env["MAIL_DOMAIN"]
    for i in range(12):
        ad.make_user(ou, "V%02d %s" % (i, tag), upn="v%02d.%s@%s" % (i, tag, domain), displayName="Vee %02d" % i,
                     givenName="Vee", sn="N%02d" % i, title="Tester", disabled=(i == 0))
    for i in range(12):
        ad.conn.add("CN=Team%02d %s,%s" % (i, tag, ou), ["top", "group"],
                    {"sAMAccountName": "g%02d%s" % (i, tag), "mail": "team%02d.%s@%s" % (i, tag, domain)})

    run = run_playbook([declare(resource_args)], diff=True)
    assert run.returncode == 0, run.stdout[-3000:]
    result = run.task("declare")
    assert result["changed"] is True
    validation = result["validation"]
    assert validation["server"] == "ldaps://localhost:636"
    assert (validation["bind_dn"], validation["base_dn"]) == (env["AD_BIND_DN"], ou)
    users = validation["users"]
    assert len(users) == 10
    assert all(u["dn"].endswith("," + ou) and len(u["guid"]) == 36 for u in users)
    by_mail = dict((u["mail"], u) for u in users)
    some = [u for u in users if u["mail"] != "v00.%s@%s" % (tag, domain)][0]
    number = some["mail"][1:3]
    assert some["attributes"]["display_name"] == "Vee %s" % number
    assert (some["attributes"]["first_name"], some["attributes"]["last_name"]) == ("Vee", "N%s" % number)
    assert some["attributes"]["title"] == "Tester" and some["disabled"] is False
    if "v00.%s@%s" % (tag, domain) in by_mail:
        assert by_mail["v00.%s@%s" % (tag, domain)]["disabled"] is True
    # Like the users, one page of 10 of the 12 groups, with their mapped attributes.
    groups = validation["groups"]
    assert len(groups) == 10
    created = set(("Team%02d %s" % (i, tag), "team%02d.%s@%s" % (i, tag, domain)) for i in range(12))
    assert set((g["name"], g["mail"]) for g in groups) <= created
    # The diff masks the bind password; nothing shows any secret.
    assert result["diff"]["after"]["bind_password"].startswith("********")
    for secret in secrets:
        assert secret not in run.stdout and secret not in run.stderr
    assert os.path.exists(os.path.join(resource_args["config_dir"], resource_args["name"] + ".json"))


def test_validate_in_check_mode_reads_and_writes_nothing(ad, ou, store, resource_args, tag, env):
    ad.make_user(ou, "Chk %s" % tag, upn="chk.%s@%s" % (tag, env["MAIL_DOMAIN"]))
    run = run_playbook([declare(resource_args)], check=True, diff=True)
    assert run.returncode == 0, run.stdout[-3000:]
    result = run.task("declare")
    assert result["changed"] is True
    assert [u["mail"] for u in result["validation"]["users"]] == ["chk.%s@%s" % (tag, env["MAIL_DOMAIN"])]
    assert not os.path.exists(os.path.join(resource_args["config_dir"], resource_args["name"] + ".json"))


def test_each_connection_failure_has_its_own_message_and_writes_nothing(ou, store, resource_args, env, secrets):
    wrong = "Not-the-password-1"
    cases = {
        "wrong password": (dict(bind_password=wrong), "invalid credentials (wrong password)"),
        "unreachable": (dict(server_uri=["ldaps://127.0.0.1:1"], timeout=3), "ldaps://127.0.0.1:1: cannot connect"),
        "certificate": (dict(ca_cert=env["AD_WRONG_CA_CERT"]), "TLS certificate verification failed"),
        "base dn": (dict(base_dn="OU=Nowhere," + env["AD_BASE_DN"]),
                    "base DN OU=Nowhere,%s does not exist in Active Directory" % env["AD_BASE_DN"]),
    }
    tasks = []
    for name, (overrides, _) in sorted(cases.items()):
        args = dict(resource_args, **overrides)
        tasks.append(dict(declare(args, name=name), ignore_errors=True))
    run = run_playbook(tasks)
    messages = {}
    for name, (_, expected) in cases.items():
        result = run.task(name)
        assert result["failed"] is True, name
        assert result["msg"].startswith("connection test of resource %s failed: " % resource_args["name"]), result
        assert expected in result["msg"], (name, result["msg"])
        messages[name] = result["msg"]
    # Distinct: no message carries another failure's words.
    for name, message in messages.items():
        for other, (_, expected) in cases.items():
            if other != name:
                assert expected not in message, (name, other)
    assert not os.path.exists(resource_args["config_dir"])
    for secret in secrets + [wrong]:
        assert secret not in run.stdout and secret not in json.dumps(run.results)
