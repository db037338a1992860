"""Size benchmark (`make bench-scale`): the same `dvc repro` from 10,000 to 1,000,000 customers.

For each size, a temporary copy of the project gets `bench/synthetic.py`'s churn table (CSV, the
column shapes real exports have) under `data/`, `dvc add data`, and only `params.yaml`'s `data`
section set (the bring-your-own procedure; every other key as shipped). Each stage runs alone
(`dvc repro -s STAGE`) under a wrapper that reports its wall time and peak RSS (the largest
process of the stage: the notebook's kernel). Then, on the test split that `prepare` made:
the oracle ROC-AUC (the generator's true probability), the champion's (reports/metrics.json) and
a default `HistGradientBoostingClassifier` on the project's features fitted on every training
row. Printed: the per-stage table, each stage's growth exponent between sizes (the slope of log
time against log rows: 1 is linear), the AUC table, and the parts measured on their own
(threshold choice, scorer compilation, service start). `--json PATH` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import f1_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
from synthetic import DATA_SECTION, TARGET, churn_table  # noqa: E402
from workspace import BIN, commit_all, make_copy, project_env, run  # noqa: E402

from churnlab import config, features, files, models, roles, scoring, selection, splits  # noqa: E402

STAGES = ("prepare", "featurize", "tune", "train", "evaluate", "monitor")
MEASURED = "BENCH-MEASURED"
# Runs a command, then prints its wall time and the peak RSS of its largest descendant (kB on Linux).
WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    f"print('{MEASURED}', time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def measured(cmd: list[str], root: Path) -> tuple[float, float]:
    "(seconds, peak RSS in MB) of `cmd` run in the copy; fails with its output."
    result = run([sys.executable, "-c", WRAPPER, *cmd], root)
    line = next(x for x in result.stderr.splitlines() if x.startswith(MEASURED))
    _, seconds, kilobytes = line.split()
    return float(seconds), float(kilobytes) / 1024


def project_for(n: int, workdir: Path, overrides: dict | None = None) -> tuple[Path, pd.DataFrame]:
    """A project copy holding the `n`-row synthetic table as its only data (and `overrides`, dotted keys,
    applied on top of the shipped params); returns it and the true probabilities."""
    root = make_copy(workdir / f"rows_{n}")
    (root / "data" / "wa_churn.csv").unlink()
    frame, probability = churn_table(n)
    frame.to_csv(root / "data" / "churn.csv", index=False)
    run([str(BIN / "dvc"), "add", "data"], root)
    params = config.read_yaml((root / "params.yaml").read_text())
    params["data"] = {"path": ["data/churn.csv", "data/production/*.parquet"], **DATA_SECTION}
    for dotted, value in (overrides or {}).items():
        *sections, key = dotted.split(".")
        node = params
        for section in sections:
            node = node[section]
        node[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(root, f"data: synthetic churn, {n} rows")
    run([str(BIN / "churnlab"), "init"], root)
    return root, pd.DataFrame({"customer_id": frame["customer_id"], "probability": probability})


def test_aucs(root: Path, truth: pd.DataFrame) -> dict:
    "Oracle, champion and all-rows default HistGradientBoosting ROC-AUC on the copy's test split."
    layout = files.Layout(root)
    train, test = pd.read_parquet(layout.train), pd.read_parquet(layout.test)
    contract = json.loads(layout.contract.read_text())
    fit_rows, test_rows = splits.model_rows(train, contract), splits.model_rows(test, contract)
    y_test = test_rows.y
    oracle = test[["customer_id"]].merge(truth, on="customer_id", how="left")["probability"].to_numpy()
    spec = json.loads(layout.feature_spec.read_text())
    started = time.perf_counter()
    baseline = selection.fit_model(models.make_pipeline(spec, "hist_gb", {}, 42), fit_rows.X, fit_rows.y)
    baseline_seconds = time.perf_counter() - started
    metrics, cv = json.loads(layout.metrics.read_text()), json.loads(layout.cv.read_text())
    return {
        "test_rows": len(test),
        "test_positive_rate": round(float(y_test.mean()), 4),
        "family": cv["chosen"],
        "oracle": round(roc_auc_score(y_test, oracle), 4),
        "champion": round(metrics["roc_auc"], 4),
        "default_hist_gb": round(roc_auc_score(y_test, baseline.predict_proba(test.drop(columns=[TARGET]))[:, 1]), 4),
        "default_hist_gb_fit_seconds": round(baseline_seconds, 1),
    }


def bench_size(n: int, workdir: Path, overrides: dict | None = None) -> dict:
    root, truth = project_for(n, workdir, overrides)
    stages = {}
    for stage in STAGES:
        seconds, rss = measured([str(BIN / "dvc"), "repro", "-s", stage], root)
        stages[stage] = {"seconds": round(seconds, 1), "peak_rss_mb": round(rss)}
        print(f"  {n:>9,} rows  {stage:<10} {seconds:8.1f} s  {rss:8.0f} MB", flush=True)
    return {
        "rows": n,
        "stages": stages,
        "repro_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        **test_aucs(root, truth),
    }


def exponents(results: list[dict]) -> dict[str, list]:
    "Per stage, the slope of log(seconds) vs log(rows) between consecutive sizes."
    out = {}
    for stage in [*STAGES, "repro"]:
        slopes = []
        for a, b in zip(results, results[1:], strict=False):
            ta = a["repro_seconds"] if stage == "repro" else a["stages"][stage]["seconds"]
            tb = b["repro_seconds"] if stage == "repro" else b["stages"][stage]["seconds"]
            slopes.append(round(math.log(tb / ta) / math.log(b["rows"] / a["rows"]), 2))
        out[stage] = slopes
    return out


def _threshold_by_loop(y: np.ndarray, proba: np.ndarray) -> float:
    "The pre-#19 threshold: one f1_score per distinct probability (quadratic in rows)."
    candidates = np.unique(np.round(proba, 6))
    return float(candidates[int(np.argmax([f1_score(y, proba >= t, zero_division=0) for t in candidates]))])


def bench_threshold() -> list[dict]:
    "The threshold by one sort against the loop on the same 5,000 scores; the sort alone at 1M."
    rows = []
    for n in (5_000, 1_000_000):
        rng = np.random.default_rng(0)
        y = (rng.random(n) < 0.1).astype(int)
        p = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
        started = time.perf_counter()
        chosen = selection.choose_threshold(y, p)
        fast = time.perf_counter() - started
        row = {"part": f"choose_threshold, {n:,} scores", "seconds": round(fast, 4)}
        if n <= 5_000:
            started = time.perf_counter()
            assert _threshold_by_loop(y, p) == chosen
            row["loop_seconds"] = round(time.perf_counter() - started, 2)
        rows.append(row)
    return rows


def wide_model(n_categorical: int, folder: Path) -> Path:
    "A saved logistic-regression candidate over `n_categorical` text columns of 8 levels and one number."
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{j}": rng.choice([f"l{i}" for i in range(8)], 3000) for j in range(n_categorical)})
    frame["x"], frame["y"] = rng.normal(size=3000), np.where(rng.random(3000) < 0.3, "Yes", "No")
    contract = roles.infer_contract(frame, "y", "Yes")
    params = config.read_yaml((ROOT / "params.yaml").read_text())["featurize"]
    spec, _ = features.feature_spec(contract, params)
    X = frame.drop(columns="y")
    pipeline = models.make_pipeline(spec, "logreg", {"C": 1.0}).fit(X, frame["y"] == "Yes")
    means = models.feature_means(pipeline, X)  # what serving's explainer reads, as train saves it
    meta = {"contract": contract, "threshold": 0.5, "family": "logreg", "feature_means": means}
    return models.save_model(pipeline, meta, folder)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_start_seconds(model: Path) -> float:
    "Wall time from launching `churnlab serve --model DIR` (hash given) to its first 200 on /ready."
    port = _free_port()
    env = {**project_env(ROOT), "CHURNLAB_MODEL_SHA256": models.artifact_sha256(model)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "churnlab"), "serve", "--model", str(model), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("churnlab serve did not become ready in 120 s")
    finally:
        process.terminate()
        process.wait()


def bench_compile(workdir: Path) -> list[dict]:
    "Compilation alone at 50 and 200 categorical columns, and a whole service start at 200."
    rows = []
    for width in (50, 200):
        folder = wide_model(width, workdir / f"wide_{width}")
        pipeline, _ = models.load_model(folder)
        started = time.perf_counter()
        assert scoring.compile_scorer(pipeline) is not None
        rows.append(
            {"part": f"compile_scorer, {width} categorical columns", "seconds": round(time.perf_counter() - started, 2)}
        )
    rows.append(
        {"part": "churnlab serve to /ready, 200 categorical columns", "seconds": round(serve_start_seconds(folder), 2)}
    )
    return rows


DOCS_RESULTS = ROOT / "bench" / "results" / "scale.json"  # the README's size tables (tools/bench_tables.py) read it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="10,000 and 30,000 rows only")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a params.yaml key besides `data` (YAML value), e.g. featurize.high_cardinality=target; "
        "not with --json bench/results/scale.json (the README's tables are for the shipped defaults)",
    )
    parser.add_argument("--no-parts", action="store_true", help="skip the parts measured on their own")
    args = parser.parse_args()
    sizes = [10_000, 30_000] if args.quick else args.sizes
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    if overrides and args.json and args.json.resolve() == DOCS_RESULTS:
        parser.error("--set changes the shipped defaults: the README's tables (bench/results/scale.json) are for those")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as tmp:
        parts = [] if args.no_parts else bench_threshold() + bench_compile(Path(tmp))
        results = [bench_size(n, Path(tmp), overrides) for n in sizes]
    table = pd.DataFrame([{"rows": r["rows"], "stage": s, **v} for r in results for s, v in r["stages"].items()])
    print("\nPer stage (measured, `python bench/scale.py`): wall seconds and peak RSS (MB)")
    print(table.pivot(index="stage", columns="rows", values=["seconds", "peak_rss_mb"]).reindex(STAGES).to_string())
    growth = exponents(results)
    print("\nGrowth exponent between consecutive sizes (slope of log seconds vs log rows):")
    print(
        pd.DataFrame(
            growth, index=[f"{a['rows']:,}->{b['rows']:,}" for a, b in zip(results, results[1:], strict=False)]
        ).T.to_string()
    )
    print("\nTest ROC-AUC on each size's own test split (measured):")
    print(pd.DataFrame([{k: v for k, v in r.items() if k != "stages"} for r in results]).to_string(index=False))
    print("\nParts on their own (measured):")
    print(pd.DataFrame(parts).to_string(index=False))
    report = {"sizes": results, "growth": growth, "parts": parts}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
