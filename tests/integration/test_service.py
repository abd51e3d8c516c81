"""The replication service command against Samba AD and each account store.

The command is the role's own `mailsync-replicate` template, rendered for
this checkout: what `mailsync-replicate@RESOURCE.service` runs.
"""

import json
import os
import re
import stat
import subprocess
import time

import jinja2
import pytest

from lab import ROOT, VENV_PYTHON, run_playbook

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils.lock import DEFAULT_LOCK_DIR, ResourceLock
from ansible_collections.mailsync.iredmail.plugins.module_utils.service import parse_metrics

TEMPLATE = os.path.join(ROOT, "roles", "ad_replication", "templates", "mailsync-replicate.j2")
LINE = re.compile(r"^mailsync resource=(?P<name>\S+) result=(?P<result>ok|failed)"
                  r"(?: mode=(?P<mode>full|incremental))?"
                  r"(?: created=(?P<created>\d+) updated=(?P<updated>\d+) renamed=(?P<renamed>\d+)"
                  r" disabled=(?P<disabled>\d+) enabled=(?P<enabled>\d+) deleted=(?P<deleted>\d+)"
                  r" unchanged=(?P<unchanged>\d+) skipped=(?P<skipped>\d+))? duration=\d+\.\d\ds"
                  r"(?: error=(?P<error>\".*\"))?$")


class Service(object):
    """The rendered command and the directories it writes to."""

    def __init__(self, tmp_path):
        self.config_dir = str(tmp_path / "resources")
        self.report_dir = str(tmp_path / "reports")
        self.metrics_dir = str(tmp_path / "metrics")
        self.lock_dir = str(tmp_path / "locks")
        environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
        environment.filters["to_json"] = json.dumps
        with open(TEMPLATE) as handle:
            text = environment.from_string(handle.read()).render(
                ad_replication_python=VENV_PYTHON,
                ad_replication_lib_dir=os.path.join(ROOT, ".collections"),
                ad_replication_config_dir=self.config_dir,
                ad_replication_report_dir=self.report_dir,
                ad_replication_metrics_dir=self.metrics_dir)
        self.command = str(tmp_path / "mailsync-replicate")
        with open(self.command, "w") as handle:
            handle.write(text)
        os.chmod(self.command, 0o755)

    def declare(self, args, **overrides):
        options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
        options.update(overrides)
        options = resources.validate(args["name"], resources.with_defaults(options))
        resources.store(self.config_dir, args["name"], options)
        return args["name"]

    def argv(self, name, *extra):
        return [self.command, "--lock-dir", self.lock_dir] + list(extra) + [name]

    def run(self, name, *extra):
        proc = subprocess.run(self.argv(name, *extra), capture_output=True, text=True, timeout=300)
        return proc

    def start(self, name, *extra):
        return subprocess.Popen(self.argv(name, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def report_path(self, name):
        return os.path.join(self.report_dir, name + ".json")

    def metrics_path(self, name):
        return os.path.join(self.metrics_dir, "mailsync_%s.prom" % name)

    def report(self, name):
        with open(self.report_path(name)) as handle:
            return json.load(handle)

    def metrics_text(self, name):
        with open(self.metrics_path(name)) as handle:
            return handle.read()

    def metrics(self, name):
        text = self.metrics_text(name)
        values = parse_metrics(text, name)
        for kind, value in re.findall(r'^mailsync_accounts_changes\{resource="[^"]+",kind="(\w+)"\} (\S+)$', text, re.M):
            values["changes_" + kind] = float(value)
        return values


@pytest.fixture
def service(tmp_path):
    return Service(tmp_path)


def summary(proc):
    """The one line a run prints, parsed."""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    match = LINE.match(lines[0])
    assert match, lines[0]
    return match.groupdict()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_no_secret(secrets, *texts):
    for secret in secrets:
        for text in texts:
            assert secret not in text


def test_service_replicates_prints_one_line_and_writes_report_and_metrics(
        ad, ou, store, resource_args, tag, env, service, secrets):
    domain = env["MAIL_DOMAIN"]
    guid, _ = ad.make_user(ou, "Svc %s" % tag, upn="svc.%s@%s" % (tag, domain), displayName="Svc User")
    ad.make_user(ou, "Nomail %s" % tag)
    name = service.declare(resource_args)

    proc = service.run(name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = summary(proc)
    assert (line["name"], line["result"], line["mode"]) == (name, "ok", "full")
    assert (line["created"], line["skipped"]) == ("1", "1")
    address = "svc.%s@%s" % (tag, domain)
    assert store.account(address)["active"] is True

    report = service.report(name)
    assert mode(service.report_path(name)) == 0o600
    assert report["resource"] == name and report["result"] == "ok" and report["error"] is None
    assert report["summary"]["created"] == 1 and report["summary"]["skipped"] == 1
    assert [(c["kind"], c["guid"], c["after"]["address"]) for c in report["changes"]] == [("create", guid, address)]
    assert report["skipped"][0]["reason"] and report["skipped"][0]["dn"].startswith("CN=Nomail")
    assert report["started"] <= report["ended"] and report["duration_seconds"] >= 0
    metrics = service.metrics(name)
    assert mode(service.metrics_path(name)) == 0o644
    assert metrics["mailsync_last_run_success"] == 1 and metrics["mailsync_last_run_full"] == 1
    assert report["mode"] == "full"
    assert metrics["mailsync_last_success_timestamp_seconds"] == metrics["mailsync_last_run_timestamp_seconds"]
    assert abs(metrics["mailsync_last_run_timestamp_seconds"] - time.time()) < 60
    assert metrics["changes_created"] == 1 and metrics["mailsync_objects_skipped"] == 1
    assert (metrics["mailsync_runs_total"], metrics["mailsync_runs_failed_total"]) == (1, 0)
    # Only the report and the metrics: temporary files were renamed away.
    assert os.listdir(service.report_dir) == [name + ".json"]
    assert os.listdir(service.metrics_dir) == ["mailsync_%s.prom" % name]

    again = service.run(name)
    assert again.returncode == 0, again.stdout + again.stderr
    line = summary(again)
    # Only what changed in AD since the first run is read: nothing.
    assert (line["mode"], line["created"], line["updated"]) == ("incremental", "0", "0")
    assert service.report(name)["mode"] == "incremental"
    metrics = service.metrics(name)
    assert (metrics["mailsync_runs_total"], metrics["changes_created"], metrics["mailsync_last_run_full"]) == (2, 0, 0)

    full = service.run(name, "--full")
    assert full.returncode == 0, full.stdout + full.stderr
    line = summary(full)
    assert (line["mode"], line["created"], line["unchanged"]) == ("full", "0", "1")
    assert service.metrics(name)["mailsync_last_run_full"] == 1
    assert_no_secret(secrets, proc.stdout, proc.stderr, again.stdout, again.stderr,
                     json.dumps(report), service.metrics_text(name))


def test_failed_run_exits_non_zero_counts_and_keeps_the_last_success(
        ad, ou, store, resource_args, tag, env, service, secrets):
    ad.make_user(ou, "Fail %s" % tag, upn="fail.%s@%s" % (tag, env["MAIL_DOMAIN"]))
    name = service.declare(resource_args)
    assert service.run(name).returncode == 0
    succeeded = service.metrics(name)["mailsync_last_success_timestamp_seconds"]

    wrong = "Wrong-%s-password" % tag
    service.declare(resource_args, bind_password=wrong)
    outputs = []
    for attempt in (1, 2):
        proc = service.run(name)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        line = summary(proc)
        assert line["result"] == "failed"
        assert "invalid credentials" in line["error"] and env["AD_BIND_DN"] in line["error"]
        report = service.report(name)
        assert report["result"] == "failed" and "invalid credentials" in report["error"]
        assert report["summary"] is None and report["changes"] == []
        metrics = service.metrics(name)
        assert metrics["mailsync_last_run_success"] == 0
        assert metrics["mailsync_last_success_timestamp_seconds"] == succeeded
        assert metrics["mailsync_last_run_timestamp_seconds"] > succeeded
        assert (metrics["mailsync_runs_total"], metrics["mailsync_runs_failed_total"]) == (1 + attempt, attempt)
        outputs += [proc.stdout, proc.stderr, json.dumps(report), service.metrics_text(name)]
    assert mode(service.report_path(name)) == 0o600
    assert_no_secret(secrets + [wrong], *outputs)

    # Fixed: the next run succeeds and the failure counter stays.
    service.declare(resource_args)
    assert service.run(name).returncode == 0
    metrics = service.metrics(name)
    assert metrics["mailsync_last_run_success"] == 1 and metrics["mailsync_runs_failed_total"] == 2
    assert metrics["mailsync_last_success_timestamp_seconds"] > succeeded


def test_a_run_refuses_while_another_holds_the_lock_or_waits_for_it(ad, ou, store, resource_args, tag, env, service):
    address = "lock.%s@%s" % (tag, env["MAIL_DOMAIN"])
    ad.make_user(ou, "Lock %s" % tag, upn=address)
    name = service.declare(resource_args)

    held = ResourceLock(service.lock_dir, name).acquire()
    try:
        started = time.monotonic()
        proc = service.run(name)
        assert time.monotonic() - started < 30
        assert proc.returncode == 75, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mailsync resource=%s result=busy error=" % name)
        assert "another replication of resource %s is running (pid %d" % (name, os.getpid()) in lines[0]
        # Refused: nothing written, nothing counted, the holder reports.
        assert store.account(address) is None
        assert not os.path.exists(service.report_path(name)) and not os.path.exists(service.metrics_path(name))

        waiting = service.start(name, "--wait", "60")
        time.sleep(2)
        assert waiting.poll() is None, "--wait did not wait for the lock"
        assert store.account(address) is None
    finally:
        held.release()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, out + err
    assert re.search(r" result=ok mode=\w+ created=1 ", out), out
    assert store.account(address) is not None


def test_two_runs_at_once_never_interleave(ad, ou, store, resource_args, tag, env, service):
    addresses = ["par%d.%s@%s" % (i, tag, env["MAIL_DOMAIN"]) for i in range(6)]
    for i, address in enumerate(addresses):
        ad.make_user(ou, "Par%d %s" % (i, tag), upn=address)
    name = service.declare(resource_args)

    runs = [service.start(name), service.start(name)]
    results = [(run.wait(timeout=300), run.communicate()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 75]), results
    created = []
    for code, (out, err) in results:
        if code == 0:
            created.append(int(summary(type("P", (), {"stdout": out, "stderr": err})())["created"]))
        else:
            assert " result=busy " in out
    # Both ran only one after the other: all accounts were created once.
    assert sorted(created) in ([6], [0, 6]), results
    assert sorted(m["address"] for m in store.managed(name)) == sorted(addresses)
    assert service.metrics(name)["mailsync_runs_total"] == len(created)


def test_check_prints_the_plan_and_writes_nothing(ad, ou, store, resource_args, tag, env, service):
    address = "check.%s@%s" % (tag, env["MAIL_DOMAIN"])
    ad.make_user(ou, "Check %s" % tag, upn=address)
    name = service.declare(resource_args)
    proc = service.run(name, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("mailsync resource=%s result=ok check=true mode=full created=1 " % name)
    assert len(proc.stdout.splitlines()) == 1
    assert store.account(address) is None
    assert not os.path.exists(service.report_dir) and not os.path.exists(service.metrics_dir)


def test_ad_replicate_takes_the_same_lock(ad, ou, store, resource_args, tag, env, service):
    address = "mod.%s@%s" % (tag, env["MAIL_DOMAIN"])
    ad.make_user(ou, "Mod %s" % tag, upn=address)
    name = service.declare(resource_args)
    task = {"name": "replicate", "mailsync.iredmail.ad_replicate": {
        "resource": name, "config_dir": service.config_dir, "lock_timeout": 1}}

    held = ResourceLock(DEFAULT_LOCK_DIR, name).acquire()
    try:
        run = run_playbook([task])
        assert run.returncode != 0
        result = run.task("replicate")
        assert "another replication of resource %s is running" % name in result["msg"]
        assert "after waiting 1s" in result["msg"]
        assert store.account(address) is None
        # Check mode only reads: it takes no lock.
        preview = run_playbook([task], check=True)
        assert preview.returncode == 0 and preview.task("replicate")["summary"]["created"] == 1
    finally:
        held.release()
    run = run_playbook([task])
    assert run.returncode == 0, run.stdout[-3000:]
    assert store.account(address) is not None
