"""The replication service's pure pieces: summary line, report, metrics, lock."""

import io
import json
import os
import re
import stat

import pytest

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils import service
from ansible_collections.mailsync.iredmail.plugins.module_utils.lock import LockBusy, ResourceLock
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import Skip
from ansible_collections.mailsync.iredmail.plugins.module_utils.plan import Change, Plan

SUMMARY = {"created": 1, "updated": 2, "renamed": 0, "disabled": 0, "enabled": 0, "deleted": 0,
           "unchanged": 40, "skipped": 3}


def a_plan():
    after = {"address": "jane@example.com", "active": True, "quota": 1024, "display_name": "Jane"}
    changes = [Change("create", "g1", "jane@example.com", None, after)]
    skipped = [Skip("CN=Printer,DC=corp", "g2", None, "no mail address")]
    return Plan(changes, skipped, 7)


def test_summary_line_is_one_line_with_every_count():
    line = service.summary_line("corp", "ok", SUMMARY, 1.234)
    assert line == ("mailsync resource=corp result=ok created=1 updated=2 renamed=0 disabled=0 enabled=0 "
                    "deleted=0 unchanged=40 skipped=3 duration=1.23s")


def test_summary_line_names_the_read_mode():
    line = service.summary_line("corp", "ok", SUMMARY, 0.1, mode="incremental")
    assert line.startswith("mailsync resource=corp result=ok mode=incremental created=1 ")


def test_summary_line_of_a_failure_quotes_the_error_on_one_line():
    line = service.summary_line("corp", "failed", None, 0.5, error='bad "thing"\nhappened')
    assert line == 'mailsync resource=corp result=failed duration=0.50s error="bad \\"thing\\"\\nhappened"'
    assert "\n" not in line
    assert service.summary_line("corp", "ok", SUMMARY, 1, check_mode=True).startswith(
        "mailsync resource=corp result=ok check=true created=1 ")


def test_report_holds_summary_changes_skipped_times_and_error():
    report = service.build_report("corp", 1700000000.0, 1700000001.5, 1.5, a_plan())
    assert report["result"] == "ok" and report["error"] is None and report["check_mode"] is False
    assert report["summary"]["created"] == 1 and report["summary"]["unchanged"] == 7
    assert report["changes"] == [{"kind": "create", "object": "user", "guid": "g1", "address": "jane@example.com", "before": None,
                                  "after": {"address": "jane@example.com", "active": True, "quota": 1024,
                                            "display_name": "Jane"}}]
    assert report["skipped"] == [{"dn": "CN=Printer,DC=corp", "guid": "g2", "address": None,
                                  "reason": "no mail address"}]
    assert report["started"] == "2023-11-14T22:13:20+00:00"
    assert report["ended"] == "2023-11-14T22:13:21.500000+00:00"
    assert report["duration_seconds"] == 1.5
    json.dumps(report)
    failed = service.build_report("corp", 1700000000.0, 1700000001.0, 1.0, None, error="it broke")
    assert (failed["result"], failed["error"], failed["summary"], failed["changes"]) == ("failed", "it broke", None, [])


def test_metrics_are_valid_exposition_text_for_every_metric():
    values = service.next_metrics({}, True, 1700000000.25, 1.5, SUMMARY)
    text = service.render_metrics("corp", values)
    names = [name for name, _, _ in service.METRICS]
    for name in names:
        assert "# HELP %s " % name in text and re.search(r"^# TYPE %s (gauge|counter)$" % name, text, re.M)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(re.match(r'^mailsync_\w+\{resource="corp"(,kind="\w+")?\} -?[0-9.]+$', s) for s in samples), samples
    assert 'mailsync_accounts_changes{resource="corp",kind="created"} 1' in samples
    assert 'mailsync_accounts_changes{resource="corp",kind="updated"} 2' in samples
    assert 'mailsync_last_run_timestamp_seconds{resource="corp"} 1700000000.250' in samples
    assert 'mailsync_last_success_timestamp_seconds{resource="corp"} 1700000000.250' in samples
    assert 'mailsync_accounts_unchanged{resource="corp"} 40' in samples
    assert 'mailsync_objects_skipped{resource="corp"} 3' in samples
    assert 'mailsync_runs_total{resource="corp"} 1' in samples
    assert 'mailsync_runs_failed_total{resource="corp"} 0' in samples
    assert 'mailsync_last_run_full{resource="corp"} 0' in samples
    full = service.render_metrics("corp", service.next_metrics({}, True, 1.0, 1.0, SUMMARY, full=True))
    assert 'mailsync_last_run_full{resource="corp"} 1' in full
    assert text.endswith("\n")


def test_a_failure_keeps_the_last_success_and_counts_across_runs():
    ok = service.render_metrics("corp", service.next_metrics({}, True, 1000.0, 1.0, SUMMARY))
    previous = service.parse_metrics(ok, "corp")
    assert previous["mailsync_last_success_timestamp_seconds"] == 1000
    failed = service.next_metrics(previous, False, 2000.0, 0.5)
    assert failed["mailsync_last_success_timestamp_seconds"] == 1000
    assert failed["mailsync_last_run_timestamp_seconds"] == 2000
    assert failed["mailsync_last_run_success"] == 0
    assert (failed["mailsync_runs_total"], failed["mailsync_runs_failed_total"]) == (2, 1)
    assert set(failed["mailsync_accounts_changes"].values()) == {0}
    again = service.next_metrics(service.parse_metrics(service.render_metrics("corp", failed), "corp"),
                                 False, 3000.0, 0.5)
    assert (again["mailsync_runs_total"], again["mailsync_runs_failed_total"]) == (3, 2)
    assert again["mailsync_last_success_timestamp_seconds"] == 1000


def test_first_run_that_fails_has_never_succeeded():
    values = service.next_metrics(service.parse_metrics("garbage\n", "corp"), False, 10.0, 0.1)
    assert values["mailsync_last_success_timestamp_seconds"] == 0
    assert values["mailsync_runs_failed_total"] == 1


def test_parse_metrics_reads_only_its_own_resource():
    text = service.render_metrics("other", service.next_metrics({}, True, 5.0, 1.0, SUMMARY))
    assert service.parse_metrics(text, "corp") == {}


def test_secrets_are_found_at_any_depth_and_scrubbed():
    options = {"bind_password": "adpass", "backend": {"login_password": "dbpass", "schema_login_password": None,
                                                      "bind_password": "ldappass"}, "base_dn": "DC=corp"}
    found = service.secret_values(options)
    assert sorted(found) == ["adpass", "dbpass", "ldappass"]
    assert service.scrub("failed with adpass and dbpass", found) == "failed with ******** and ********"


def test_write_atomic_sets_the_mode_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "mailsync_corp.prom")
    service.write_atomic(path, "one\n", 0o644)
    service.write_atomic(path, "two\n", 0o644)
    assert open(path).read() == "two\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(str(tmp_path)) == ["mailsync_corp.prom"]


def args(tmp_path, name, *extra):
    return service.parse_args(["--config-dir", str(tmp_path / "res"), "--report-dir", str(tmp_path / "rep"),
                               "--metrics-dir", str(tmp_path / "met"), "--lock-dir", str(tmp_path / "lock")]
                              + list(extra) + [name])


def test_a_missing_resource_fails_with_a_report_and_metrics(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    code = service.run(args(tmp_path, "nothere"), out, err)
    assert code == service.EXIT_FAILED
    assert out.getvalue().startswith("mailsync resource=nothere result=failed duration=")
    assert "no resource named nothere" in out.getvalue()
    report = json.load(open(str(tmp_path / "rep" / "nothere.json")))
    assert report["result"] == "failed" and "no resource named nothere" in report["error"]
    assert stat.S_IMODE(os.stat(str(tmp_path / "rep" / "nothere.json")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(tmp_path / "rep")).st_mode) == 0o700
    metrics = service.parse_metrics(open(str(tmp_path / "met" / "mailsync_nothere.prom")).read(), "nothere")
    assert metrics["mailsync_last_run_success"] == 0 and metrics["mailsync_runs_failed_total"] == 1


def test_an_invalid_resource_file_never_leaks_its_secrets(tmp_path):
    resources.store(str(tmp_path / "res"), "corp", {"bind_password": "Sup3rSecret", "target_domain": "x"})
    out, err = io.StringIO(), io.StringIO()
    assert service.run(args(tmp_path, "corp"), out, err) == service.EXIT_FAILED
    written = out.getvalue() + err.getvalue() + open(str(tmp_path / "rep" / "corp.json")).read()
    assert "missing required options" in written and "Sup3rSecret" not in written


def test_usage_errors_exit_2(tmp_path, capsys):
    assert service.main(["--no-such-option", "corp"]) == service.EXIT_USAGE
    assert service.run(args(tmp_path, "../etc/passwd"), io.StringIO(), io.StringIO()) == service.EXIT_USAGE
    assert not (tmp_path / "rep").exists()


def test_check_mode_writes_no_report_and_takes_no_lock(tmp_path):
    held = ResourceLock(str(tmp_path / "lock"), "nothere").acquire()
    try:
        out = io.StringIO()
        assert service.run(args(tmp_path, "nothere", "--check"), out, io.StringIO()) == service.EXIT_FAILED
        assert "result=failed check=true" in out.getvalue()
    finally:
        held.release()
    assert not (tmp_path / "rep").exists() and not (tmp_path / "met").exists()


def test_a_held_lock_refuses_with_exit_75_and_writes_nothing(tmp_path):
    held = ResourceLock(str(tmp_path / "lock"), "corp").acquire()
    try:
        out = io.StringIO()
        assert service.run(args(tmp_path, "corp"), out, io.StringIO()) == service.EXIT_BUSY
        assert out.getvalue().startswith("mailsync resource=corp result=busy error=")
        assert "pid %d" % os.getpid() in out.getvalue()
    finally:
        held.release()
    assert not (tmp_path / "rep").exists() and not (tmp_path / "met").exists()


def test_lock_waits_then_gives_up_and_is_reusable(tmp_path):
    lock_dir = str(tmp_path / "locks")
    first = ResourceLock(lock_dir, "corp").acquire()
    with pytest.raises(LockBusy) as busy:
        ResourceLock(lock_dir, "corp", timeout=0.5).acquire()
    assert "after waiting 0.5s" in str(busy.value)
    with ResourceLock(lock_dir, "other"):
        pass  # another resource is not blocked
    first.release()
    with ResourceLock(lock_dir, "corp") as again:
        assert open(again.path).read().strip() == str(os.getpid())
    assert stat.S_IMODE(os.stat(lock_dir).st_mode) == 0o700
