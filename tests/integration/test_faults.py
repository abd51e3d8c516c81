"""Faults and hostile input, on every backend: clear errors, nothing written, nothing injected."""

import pytest

from lab import doveadm_user, postmap

from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate, resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import MailsyncError


def run(args, **kw):
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    return replicate.replicate(resources.load(args["config_dir"], args["name"]), **kw)


@pytest.mark.parametrize("fault, words", [
    ({"server_uri": ["ldaps://127.0.0.1:1"], "timeout": 3}, "cannot connect"),
    ({"bind_password": "wrong-Passw0rd"}, "invalid credentials"),
    ({"ca_cert": "AD_WRONG_CA_CERT"}, "certificate verification failed"),
    ({"base_dn": "OU=missing,DC=corp,DC=example,DC=com"}, "does not exist"),
])
def test_directory_faults_fail_clearly_and_write_nothing(ad, ou, store, resource_args, tag, env, secrets, fault,
                                                         words):
    user = "una.%s@%s" % (tag, env["MAIL_DOMAIN"])
    _, dn = ad.make_user(ou, "Una %s" % tag, upn=user)
    run(resource_args)
    ad.set_disabled(dn, True)  # a change a good run would write
    fault = dict((k, env[v] if isinstance(v, str) and v in env else v) for k, v in fault.items())
    with pytest.raises(MailsyncError) as err:
        run(dict(resource_args, **fault))
    assert words in str(err.value)
    for secret in secrets + ["wrong-Passw0rd"]:
        assert secret not in str(err.value)
    assert store.account(user)["active"] is True
    assert [m["address"] for m in store.managed(resource_args["name"])] == [user]


def test_wrong_backend_password_is_a_clear_error_without_the_secret(ad, ou, store, resource_args, tag, env):
    ad.make_user(ou, "Vic %s" % tag, upn="vic.%s@%s" % (tag, env["MAIL_DOMAIN"]))
    backend = dict(resource_args["backend"])
    key = "bind_password" if store.kind == "ldap" else "login_password"
    backend[key] = "Not-The-Db-Passw0rd"
    with pytest.raises(MailsyncError) as err:
        run(dict(resource_args, backend=backend))
    assert "Not-The-Db-Passw0rd" not in str(err.value)
    assert "cannot" in str(err.value)
    assert store.account("vic.%s@%s" % (tag, env["MAIL_DOMAIN"])) is None


HOSTILE = [
    "O'Brien \"Bob\"",
    "x'); DROP TABLE mailbox; --",
    "*)(objectClass=*))(|(mail=*",
    "back\\slash, comma; semi=equals+plus<lt>gt#hash",
    "Ünïcödé Ñame 名前",
]


def test_hostile_values_are_stored_verbatim(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    users = {}
    for i, value in enumerate(HOSTILE):
        address = "h%d.%s@%s" % (i, tag, domain)
        ad.make_user(ou, "H%d %s" % (i, tag), upn=address, displayName=value, sn=value, title=value)
        users[address] = value
    plan = run(resource_args)
    assert plan.summary["created"] == len(HOSTILE) and plan.skipped == []
    for address, value in users.items():
        account = store.account(address)
        assert account["display_name"] == value and account["last_name"] == value
        assert postmap(store, "virtual_mailbox_maps", address) is not None
    assert store.account("postmaster@%s" % domain) is not None  # nothing dropped
    assert not run(resource_args, full=True)


def test_values_longer_than_a_column_are_cut_by_one_rule(ad, ou, store, resource_args, tag, env):
    address = "long.%s@%s" % (tag, env["MAIL_DOMAIN"])
    # AD caps displayName at 256 characters; description allows 1024.
    ad.make_user(ou, "Long %s" % tag, upn=address, description="D" * 300)
    args = dict(resource_args, attribute_map={"display_name": "description"})
    plan = run(args)
    assert plan.summary["created"] == 1
    assert store.account(address)["display_name"] == "D" * 255
    assert not run(args, full=True)


def test_addresses_are_normalised_and_bad_ones_skipped(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Wes %s" % tag, upn="  Wes.%s@%s  " % (tag.upper(), domain.upper()))
    ad.make_user(ou, "Xia %s" % tag, upn="xïa.%s@%s" % (tag, domain))
    ad.make_user(ou, "Yul %s" % tag, upn="yul..%s@%s" % (tag, domain))
    plan = run(resource_args)
    assert [c.address for c in plan.changes] == ["wes.%s@%s" % (tag, domain)]
    reasons = dict((s.dn.split(",")[0], s.reason) for s in plan.skipped)
    assert reasons["CN=Xia %s" % tag].startswith("invalid address")
    assert reasons["CN=Yul %s" % tag].startswith("invalid address")
    assert doveadm_user(store, "wes.%s@%s" % (tag, domain)) is not None


def test_two_objects_claiming_one_address_are_both_left_out(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    same = "same.%s@%s" % (tag, domain)
    ad.make_user(ou, "Zed A %s" % tag, mail=same)
    ad.make_user(ou, "Zed B %s" % tag, mail=same.upper())
    ad.make_user(ou, "Zoe %s" % tag, mail="zoe.%s@%s" % (tag, domain))
    plan = run(dict(resource_args, user_mail_attribute="mail"))
    assert [c.address for c in plan.changes] == ["zoe.%s@%s" % (tag, domain)]
    reasons = [s.reason for s in plan.skipped if s.address == same]
    assert len(reasons) == 2 and all("claimed by 2 AD objects" in r for r in reasons)
    assert store.account(same) is None


def test_a_mailbox_whose_address_another_user_takes_in_ad_keeps_working(ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    same = "held.%s@%s" % (tag, domain)
    # Samba refuses a second equal UPN; `mail` is a plain attribute.
    resource_args = dict(resource_args, user_mail_attribute="mail", on_removed="delete", delete_after_days=0)
    ad.make_user(ou, "Hel A %s" % tag, mail=same)
    assert [c.kind for c in run(resource_args).changes] == ["create"]
    # A typo in AD gives a second user the same address: neither is written,
    # and the mailbox that exists is neither disabled nor deleted.
    ad.make_user(ou, "Hel B %s" % tag, mail=same.upper())
    for full in (False, True):
        plan = run(resource_args, full=full)
        assert plan.changes == [] and plan.marks == []
        assert any(s.address == same for s in plan.skipped)
        assert store.account(same)["active"] is True
        assert doveadm_user(store, same) is not None
