"""Print the phase breakdown of a results file: bench/show.py [RESULTS.json]."""
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else sorted(glob.glob(os.path.join(HERE, "results", "*.json")))[-1]
    with open(path) as handle:
        results = json.load(handle)
    print(path, results.get("command"), "load", results["machine"].get("loadavg_at_start"),
          results["machine"].get("loadavg_at_end"))
    for backend, per in results["per_backend"].items():
        floor = per.get("floor")
        if floor:
            print("%s floor: read %.2f s, write %.2f s, peak %.1f MB" % (
                backend, floor["read_seconds"], floor["write_seconds"], floor["maxrss_kb"] / 1024.0))
        for key, run in per["runs"].items():
            print("%s %-9s %7.2f s (cpu %.2f s) peak %.1f MB, %.1f MB before the run; %s" % (
                backend, key, run["seconds"], run["cpu_seconds"], run["maxrss_kb"] / 1024.0,
                run["rss_kb_before_run"] / 1024.0, run["mode"]))
            phases = sorted(run.get("phases", {}).items(), key=lambda item: -item[1]["seconds"])
            for name, phase in phases:
                if phase["seconds"] < 0.005:
                    continue
                print("      %-28s %7.3f s  x%-3d %s rss after %.0f MB" % (
                    name, phase["seconds"], phase["calls"],
                    ("%6d items" % phase["items"]) if "items" in phase else " " * 12, phase["rss_kb_after"] / 1024.0))


if __name__ == "__main__":
    main()
