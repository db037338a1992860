"""`make bench`: every benchmark in turn, each in its own process, then a table of where the time went.

The scripts run in the order below, with their quick arguments under `QUICK=1`. The ablations
(feature blocks, the network's options, other datasets) are CV studies that choose defaults, not
measurements of speed: they run under `make bench-features`. Each script's wall time is measured
here and written, with the total, to `bench/results/bench_times.json` (`bench_times-quick.json` for
the quick run), so the budget (20 min, 3 min quick) is checked against a measured figure.
A failing script stops the run with its exit code.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from churnlab import files

ROOT = Path(__file__).resolve().parents[1]

# script -> its arguments under QUICK=1 (the full run passes none)
BENCHMARKS = {
    "pipeline_overhead.py": ["--repeats", "1"],
    "seed_style.py": ["--quick"],
    "nn.py": ["--quick"],
    "tune.py": ["--quick"],
    "serve.py": ["--quick"],
    "shadow.py": ["--quick"],
    "monitor.py": ["--quick"],
    "estimate.py": ["--quick"],
    "explain.py": ["--quick"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", help="only these scripts (e.g. nn.py serve.py)")
    args = parser.parse_args()
    rows, started = [], time.perf_counter()
    for script, quick in BENCHMARKS.items():
        if args.only and script not in args.only:
            continue
        arguments = quick if args.quick else []
        print(f"\n=== bench/{script} {' '.join(arguments)}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.run([sys.executable, str(ROOT / "bench" / script), *arguments], cwd=ROOT).returncode
        rows.append({"script": script, "arguments": " ".join(arguments), "seconds": round(time.perf_counter() - t0, 1)})
        if code:
            print(f"bench/{script} failed with exit code {code}", file=sys.stderr)
            return code
    total = round(time.perf_counter() - started, 1)
    print(f"\n| benchmark | seconds (measured: make bench{' QUICK=1' if args.quick else ''}) |\n|---|---:|")
    for row in rows:
        print(f"| bench/{row['script']} {row['arguments']} | {row['seconds']:.0f} |")
    print(f"| total | {total:.0f} |")
    if not args.only:
        out = ROOT / "bench" / "results" / f"bench_times{'-quick' if args.quick else ''}.json"
        files.atomic_write_text(
            out, json.dumps({"quick": args.quick, "total_seconds": total, "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
