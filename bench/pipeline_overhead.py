"""Pipeline overheads (`make bench`): papermill per stage, a no-op `dvc repro`, a no-op `make setup`.

Runs in the user's checkout without changing it: the papermill probe writes to a temporary folder,
and the no-op commands only read. Each figure is the median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.ipynb"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        nb.metadata["kernelspec"] = {"name": "churnlab", "display_name": "churnlab", "language": "python"}
        nbformat.write(nb, probe)
        python = timed([sys.executable, "-c", "x = 1"], args.repeats)
        papermill = timed(
            [
                str(BIN / "papermill"),
                str(probe),
                str(Path(tmp) / "out.ipynb"),
                "--kernel",
                "churnlab",
                "--no-progress-bar",
                "--log-level",
                "WARNING",
            ],
            args.repeats,
        )
        rows.append(("papermill, one trivial cell (kernel start + I/O)", papermill))
        rows.append(("plain python, same code", python))
        rows.append(("papermill overhead per stage", papermill - python))
    if (ROOT / "dvc.lock").exists():
        rows.append(("dvc repro, nothing to do", timed([str(BIN / "dvc"), "repro"], args.repeats)))
        rows.append(("dvc status", timed([str(BIN / "dvc"), "status"], args.repeats)))
    rows.append(("make setup, nothing changed", timed(["make", "setup"], args.repeats)))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  seconds (median of {args.repeats})")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:8.2f}")


if __name__ == "__main__":
    main()
