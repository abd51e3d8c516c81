# -*- coding: utf-8 -*-
# Copyright: mailsync.iredmail contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication service: what `mailsync-replicate@<resource>.service` runs.

    mailsync-replicate [--config-dir DIR] [--report-dir DIR] [--metrics-dir DIR]
                       [--lock-dir DIR] [--wait SECONDS] [--full] [--check] RESOURCE

It runs exactly what `ad_replicate` runs (`replicate.replicate`) and then:

- prints ONE summary line to stdout, which journald keeps;
- writes `<report-dir>/<resource>.json` (mode 0600): the summary, the
  changes, the skipped objects with reasons, start and end time, duration,
  and the error on failure;
- writes `<metrics-dir>/mailsync_<resource>.prom` for node_exporter's
  textfile collector (mode 0644);
- exits 0 on success, 1 when replication failed, 2 on a usage error and 75
  when another replication of the same resource holds its lock.

Both files are replaced atomically (written aside, then renamed), so a
reader never sees half a file. `--check` computes the plan, prints the line
and writes neither file: they describe real runs only.

Runs of one resource never overlap: a run takes an exclusive flock on
`<lock-dir>/<resource>.lock` and, by default, refuses at once when another
run holds it (exit 75, nothing written, nothing counted). `--wait SECONDS`
waits for the lock instead.

No secret ever reaches the line, the report or the metrics: messages are
built from names and DNs, and every secret of the resource is masked in
them all the same.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import time
import traceback

from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate
from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import MailsyncError
from ansible_collections.mailsync.iredmail.plugins.module_utils.lock import (
    DEFAULT_LOCK_DIR,
    LockBusy,
    ResourceLock,
)

DEFAULT_REPORT_DIR = "/var/lib/mailsync"
DEFAULT_METRICS_DIR = "/var/lib/prometheus/node-exporter"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 75  # EX_TEMPFAIL: try again later

RESULT_OK = "ok"
RESULT_FAILED = "failed"
RESULT_BUSY = "busy"

CHANGE_KINDS = ("created", "updated", "renamed", "disabled", "enabled", "deleted")
SUMMARY_KEYS = CHANGE_KINDS + ("unchanged", "skipped")

# name, type, help. The help texts name no resource: node_exporter merges
# the files of all resources into one family per name.
METRICS = (
    ("mailsync_last_run_timestamp_seconds", "gauge",
     "Unix time the last replication run of the resource ended."),
    ("mailsync_last_success_timestamp_seconds", "gauge",
     "Unix time the last successful replication run of the resource ended (0: never)."),
    ("mailsync_last_run_duration_seconds", "gauge",
     "How long the last replication run of the resource took."),
    ("mailsync_last_run_success", "gauge",
     "1 if the last replication run of the resource succeeded, 0 if it failed."),
    ("mailsync_last_run_full", "gauge",
     "1 if the last replication run of the resource read every user, 0 if only what changed in AD."),
    ("mailsync_accounts_changes", "gauge",
     "Accounts the last replication run of the resource changed, by kind of change."),
    ("mailsync_accounts_unchanged", "gauge",
     "Managed accounts the last replication run of the resource left unchanged."),
    ("mailsync_objects_skipped", "gauge",
     "AD objects the last replication run of the resource skipped (reasons in the JSON report)."),
    ("mailsync_runs_total", "counter",
     "Replication runs of the resource, successful or not."),
    ("mailsync_runs_failed_total", "counter",
     "Failed replication runs of the resource."),
)


# ------------------------------------------------------------------ pieces

def summary_line(name, result, summary=None, duration=None, error=None, check_mode=False, mode=None):
    """The one line a run prints: `mailsync resource=corp result=ok mode=full created=1 ... duration=1.23s`."""
    parts = ["mailsync", "resource=%s" % name, "result=%s" % result]
    if check_mode:
        parts.append("check=true")
    if mode:
        parts.append("mode=%s" % mode)
    if summary is not None:
        parts.extend("%s=%d" % (key, summary.get(key, 0)) for key in SUMMARY_KEYS)
    if duration is not None:
        parts.append("duration=%.2fs" % duration)
    if error:
        # JSON quoting keeps the line one line whatever the message holds.
        parts.append("error=%s" % json.dumps(error, ensure_ascii=False))
    return " ".join(parts)


def iso_time(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).isoformat()


def build_report(name, started, ended, duration, plan=None, error=None, check_mode=False):
    """What `<report-dir>/<resource>.json` holds about one run."""
    return {
        "resource": name,
        "result": RESULT_FAILED if error else RESULT_OK,
        "check_mode": check_mode,
        # full: every user was read; incremental: only what changed in AD
        "mode": getattr(plan, "mode", None),
        "started": iso_time(started),
        "ended": iso_time(ended),
        "duration_seconds": round(duration, 3),
        "summary": plan.summary if plan is not None else None,
        "changes": [change.as_dict() for change in plan.changes] if plan is not None else [],
        "skipped": [skip.as_dict() for skip in plan.skipped] if plan is not None else [],
        "error": error,
    }


_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{resource="((?:[^"\\]|\\.)*)"\}\s+(\S+)\s*$')


def parse_metrics(text, name):
    """The unlabelled-by-kind samples of `name` in a previous metrics file, as floats."""
    values = {}
    for line in (text or "").splitlines():
        match = _SAMPLE_RE.match(line.strip())
        if match and _unescape(match.group(2)) == name:
            try:
                values[match.group(1)] = float(match.group(3))
            except ValueError:
                continue
    return values


def next_metrics(previous, success, ended, duration, summary=None, full=False):
    """This run's metric values, carrying counters and the last success from `previous`."""
    runs = previous.get("mailsync_runs_total", 0) + 1
    failed = previous.get("mailsync_runs_failed_total", 0) + (0 if success else 1)
    last_success = ended if success else previous.get("mailsync_last_success_timestamp_seconds", 0)
    summary = summary or {}
    return {
        "mailsync_last_run_timestamp_seconds": ended,
        "mailsync_last_success_timestamp_seconds": last_success,
        "mailsync_last_run_duration_seconds": duration,
        "mailsync_last_run_success": 1 if success else 0,
        "mailsync_last_run_full": 1 if full else 0,
        "mailsync_accounts_changes": dict((kind, summary.get(kind, 0)) for kind in CHANGE_KINDS),
        "mailsync_accounts_unchanged": summary.get("unchanged", 0),
        "mailsync_objects_skipped": summary.get("skipped", 0),
        "mailsync_runs_total": runs,
        "mailsync_runs_failed_total": failed,
    }


def render_metrics(name, values):
    """Prometheus text exposition format for node_exporter's textfile collector."""
    label = 'resource="%s"' % _escape(name)
    lines = []
    for metric, kind, help_text in METRICS:
        lines.append("# HELP %s %s" % (metric, help_text))
        lines.append("# TYPE %s %s" % (metric, kind))
        value = values[metric]
        if isinstance(value, dict):
            for sub in CHANGE_KINDS:
                lines.append('%s{%s,kind="%s"} %s' % (metric, label, sub, _number(value[sub])))
        else:
            lines.append("%s{%s} %s" % (metric, label, _number(value)))
    return "\n".join(lines) + "\n"


def _number(value):
    if isinstance(value, float) and not value.is_integer():
        return "%.3f" % value
    return "%d" % value


def _escape(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unescape(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def secret_values(options):
    """Every secret a resource holds (passwords, at any depth)."""
    found = []
    if isinstance(options, dict):
        for key, value in options.items():
            if key in resources.SECRET_KEYS or "password" in key:
                if isinstance(value, str) and value:
                    found.append(value)
            else:
                found.extend(secret_values(value))
    elif isinstance(options, list):
        for value in options:
            found.extend(secret_values(value))
    return found


def scrub(text, secrets):
    """`text` with every secret masked: a last line of defence for messages."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, resources.MASK)
    return text


def write_atomic(path, text, mode):
    """Write `text` to `path` through a temporary file and a rename."""
    directory = os.path.dirname(path)
    # The temporary name does not end in .prom: node_exporter ignores it.
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _ensure_dir(path, mode):
    if not os.path.isdir(path):
        os.makedirs(path, mode)


def report_path(report_dir, name):
    return os.path.join(report_dir, "%s.json" % name)


def metrics_path(metrics_dir, name):
    return os.path.join(metrics_dir, "mailsync_%s.prom" % name)


def write_outputs(args, name, report, success, ended, duration, summary):
    """Write the report and the metrics of a finished run."""
    _ensure_dir(args.report_dir, 0o700)
    write_atomic(report_path(args.report_dir, name), json.dumps(report, indent=2, sort_keys=True) + "\n", 0o600)
    _ensure_dir(args.metrics_dir, 0o755)
    path = metrics_path(args.metrics_dir, name)
    try:
        with open(path) as handle:
            previous = parse_metrics(handle.read(), name)
    except (IOError, OSError):
        previous = {}
    values = next_metrics(previous, success, ended, duration, summary, full=report.get("mode") == "full")
    # node_exporter runs as its own user and must read the file.
    write_atomic(path, render_metrics(name, values), 0o644)


# --------------------------------------------------------------------- run

def _say(stream, line):
    """One line to stdout (journald keeps it) or stderr, at once."""
    stream.write(line + "\n")
    stream.flush()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="mailsync-replicate",
        description="Replicate one mailsync.iredmail AD account resource into iRedMail now, "
                    "as the mailsync-replicate@RESOURCE systemd service does.",
        epilog="Exit status: 0 success, 1 replication failed, 2 usage error, "
               "75 another replication of the resource is running.")
    parser.add_argument("resource", help="name of the resource (a file <config-dir>/<resource>.json)")
    parser.add_argument("--config-dir", default=resources.DEFAULT_CONFIG_DIR,
                        help="directory of the resource files (default: %(default)s)")
    parser.add_argument("--report-dir", default=DEFAULT_REPORT_DIR,
                        help="where <resource>.json reports the last run (default: %(default)s)")
    parser.add_argument("--metrics-dir", default=DEFAULT_METRICS_DIR,
                        help="node_exporter textfile directory for mailsync_<resource>.prom "
                             "(default: %(default)s)")
    parser.add_argument("--lock-dir", default=DEFAULT_LOCK_DIR,
                        help="directory of the per-resource lock files (default: %(default)s)")
    parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                        help="wait up to SECONDS for a running replication of the resource to end "
                             "(default: refuse at once with exit status 75)")
    parser.add_argument("--full", action="store_true",
                        help="read every user and reconcile every managed account, not only what changed "
                             "in AD since the last run")
    parser.add_argument("--check", action="store_true",
                        help="compute and print the plan's summary; write nothing, no report, no metrics")
    return parser.parse_args(argv)


def run(args, out=None, err=None):
    """Replicate `args.resource` once; return the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    name = args.resource
    if not resources.NAME_RE.match(name or ""):
        _say(err, "mailsync-replicate: invalid resource name %r" % name)
        return EXIT_USAGE
    if args.check:
        return _replicate_and_report(args, name, out, err)
    # The lock covers the run and its report: counters in the metrics file
    # are read and rewritten, and reports must follow the order of runs.
    try:
        lock = ResourceLock(args.lock_dir, name, timeout=args.wait).acquire()
    except LockBusy as exc:
        _say(out, summary_line(name, RESULT_BUSY, error=str(exc)))
        return EXIT_BUSY
    except MailsyncError as exc:
        _say(err, "mailsync-replicate: %s" % exc)
        return EXIT_FAILED
    try:
        return _replicate_and_report(args, name, out, err)
    finally:
        lock.release()


def _replicate_and_report(args, name, out, err):
    started, clock = time.time(), time.monotonic()
    plan, error, secrets = None, None, []
    try:
        resource = resources.load(args.config_dir, name)
        secrets = secret_values(resource.options)
        plan = replicate.replicate(resource, check_mode=args.check, full=args.full)
    except MailsyncError as exc:
        error = scrub(str(exc), secrets)
    except Exception as exc:  # noqa: BLE001 - a service run reports every failure, then exits non-zero
        error = scrub("unexpected error %s: %s" % (type(exc).__name__, exc), secrets)
        _say(err, scrub(traceback.format_exc(), secrets))
    ended, duration = time.time(), time.monotonic() - clock

    success = error is None
    summary = plan.summary if plan is not None else None
    _say(out, summary_line(name, RESULT_OK if success else RESULT_FAILED, summary, duration, error,
                           check_mode=args.check, mode=getattr(plan, "mode", None)))
    if args.check:
        return EXIT_OK if success else EXIT_FAILED
    try:
        report = build_report(name, started, ended, duration, plan, error)
        write_outputs(args, name, report, success, ended, duration, summary)
    except (IOError, OSError) as exc:
        _say(err, "mailsync-replicate: cannot write the report or metrics of resource %s: %s"
             % (name, scrub(str(exc), secrets)))
        return EXIT_FAILED
    return EXIT_OK if success else EXIT_FAILED


def main(argv=None):
    """Entry point of /usr/local/sbin/mailsync-replicate; returns the exit status."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return run(args)
