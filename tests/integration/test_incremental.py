"""Incremental runs against Samba AD's uSNChanged, on every backend."""

import pytest

from lab import run_playbook

from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_reader, replicate, resource as resources


class Reads(list):
    """User entries read with full attributes, one count per search."""

    def during(self, fn, *args, **kwargs):
        start = len(self)
        result = fn(*args, **kwargs)
        return result, sum(self[start:])


@pytest.fixture
def counted_reads(monkeypatch):
    counts = Reads()
    original = ad_reader.read_users

    def counting(*args, **kwargs):
        counts.append(0)
        for user in original(*args, **kwargs):
            counts[-1] += 1
            yield user

    monkeypatch.setattr(ad_reader, "read_users", counting)
    return counts


def run(args, full=False):
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    return replicate.replicate(resources.load(args["config_dir"], args["name"]), full=full)


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
    assert changed.mode == "incremental"
    assert reads == 2  # the rename and the disable; the deletion is found by the GUID scan
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
