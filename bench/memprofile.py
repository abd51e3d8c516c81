"""Where a replication run's memory goes: tracemalloc snapshots at the pipeline's stages.

    .venv/bin/python bench/memprofile.py --backend mysql [--users 10000]

A diagnostic, not a figure: tracemalloc slows the run and adds its own
memory, so bench/run's peak RSS stays the measure. Seeds like bench/run,
runs a full replication, a no-change run and a forced full re-read of a
fresh resource in child processes under tracemalloc, prints the biggest
allocation sites at the stage where traced memory peaked, and removes
what it wrote.
"""

import argparse
import json
import linecache
import os
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

sys.path.insert(0, common.COLLECTIONS)


def child(config_dir, name, top, full):
    from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate
    from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources
    from child import rss_kb
    tracemalloc.start(1)
    stages = []

    def snap(label):
        current, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot().filter_traces([
            tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")])
        stats = snapshot.statistics("lineno")[:top]
        stages.append({
            "stage": label, "traced_mb": round(current / 1048576.0, 1), "traced_peak_mb": round(peak / 1048576.0, 1),
            "rss_mb": round(rss_kb()[0] / 1024.0, 1),
            "top": [{"mb": round(s.size / 1048576.0, 2), "count": s.count,
                     "where": "%s:%d" % (s.traceback[0].filename.replace(common.ROOT + "/", ""),
                                         s.traceback[0].lineno),
                     "line": linecache.getline(s.traceback[0].filename, s.traceback[0].lineno).strip()[:100]}
                    for s in stats]})

    def after(owner, attribute, label):
        original = getattr(owner, attribute)

        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            snap(label)
            return result
        setattr(owner, attribute, wrapped)

    after(replicate, "read_directory", "after the AD read (read_directory)")
    for attribute in ("desired_accounts", "build_plan"):
        if hasattr(replicate, attribute):
            after(replicate, attribute, "after %s" % attribute)
    backend_type = resources.load(config_dir, name).backend["type"]
    if backend_type == "ldap":
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.ldap import LDAPBackend as cls
    else:
        from ansible_collections.mailsync.iredmail.plugins.module_utils.backends.sql import SQLBackend as cls
    after(cls, "current_state", "after backend.current_state")
    started = time.monotonic()
    plan = replicate.replicate(resources.load(config_dir, name), full=full)
    print(json.dumps({"seconds": time.monotonic() - started, "mode": plan.mode, "summary": plan.summary,
                      "stages": stages}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="mysql", choices=("mysql", "pgsql", "ldap"))
    parser.add_argument("--users", type=int, default=common.SIZES[0], choices=common.SIZES)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG_DIR", "NAME"), help=argparse.SUPPRESS)
    parser.add_argument("--force-full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.top, args.force_full)
        return
    import subprocess

    import bench
    env = common.load_env()
    bench.seed(args.users)
    admin = bench.admin_for(args.backend, env)
    config_dir = tempfile.mkdtemp(prefix="mailsync-memprofile-")
    name = "%smem-%s-%d" % (common.PREFIX, args.backend, int(time.time()))
    try:
        admin.clean_resources(common.PREFIX + "%")
        if args.backend != "ldap":
            from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate
            replicate.ensure_state_schema(admin.backend_options(schema=True))
        bench.store_resource(config_dir, name, env, args.users, admin.backend_options())
        for label, force in (("full", False), ("no-change", False), ("full re-read", True)):
            out = subprocess.run([common.VENV_PYTHON, os.path.abspath(__file__), "--top", str(args.top),
                                  "--child", config_dir, name] + (["--force-full"] if force else []),
                                 capture_output=True, text=True, cwd=common.ROOT)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-4000:])
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print("== %s run (%s, %.1f s under tracemalloc): %s" % (label, result["mode"], result["seconds"],
                                                                    bench.compact(result["summary"])))
            for stage in result["stages"]:
                print("  %-40s traced %6.1f MB (peak so far %6.1f MB), RSS %6.1f MB"
                      % (stage["stage"], stage["traced_mb"], stage["traced_peak_mb"], stage["rss_mb"]))
            biggest = max(result["stages"], key=lambda s: s["traced_mb"])
            print("  biggest allocation sites %s:" % biggest["stage"])
            for item in biggest["top"]:
                print("    %7.2f MB %8d blocks  %s  %s" % (item["mb"], item["count"], item["where"], item["line"]))
    finally:
        admin.clean_resources(common.PREFIX + "%")
        admin.vacuum()
        admin.close()
        for entry in os.listdir(config_dir):
            os.unlink(os.path.join(config_dir, entry))
        os.rmdir(config_dir)


if __name__ == "__main__":
    main()
