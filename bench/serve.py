"""Service benchmark (`make bench`; `QUICK=1`: 1.5 s per level instead of 10, 50,000 rows instead of 1,000,000).

Two comparisons, reported apart, because they answer different questions:

1. **The serving stack alone.** The SAME fitted pipeline (the candidate `make repro` trained, from
   `artifacts/model/`) behind `churnlab serve` and behind the plain FastAPI pattern
   (`bench/tutorial_service.py:plain_app`: a pydantic model and a DataFrame per request, one
   `predict_proba`, the saved threshold). Both return the same probabilities, which is checked
   before the load starts. churnlab also writes every prediction to its log, so if anything it does
   more work.
2. **The system as shipped vs the seed recipe.** `churnlab serve` as above against the tutorial as
   written (`tutorial_app`: its own RandomForest(100) on `get_dummies` + StandardScaler, `predict`
   and `predict_proba` per call). Model choice and serving stack both differ, so this row is labelled
   as such, with each model's test ROC-AUC beside it.

The load is on the same Telco test records: single records at 1, 8 and 32 concurrent clients, and
batches of 1,000 records. The load generator is a minimal asyncio HTTP/1.1 client (keep-alive,
pre-encoded requests) so that it costs little CPU. On a machine with 2+ cores the server is pinned
to core 0 and the client to the others. Every server runs uvicorn with the same settings (uvloop,
httptools, no access log, one process, one thread for the model).

Then batch scoring of 1,000,000 rows: `churnlab predict` (Parquet, then CSV) against the plain approach
(read the whole Parquet file, `predict_proba` with the same pipeline, `to_csv`). Each method runs in
its own subprocess and its peak RSS is that process's own (`wait4`). The input is written first, by
this process, and no method pays for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from churnlab import files, models

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORES = sorted(os.sched_getaffinity(0))
SERVER_CORES = {CORES[0]} if len(CORES) > 1 else set(CORES)
CLIENT_CORES = set(CORES[1:]) or set(CORES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    "Start a server pinned to the server core; return once /docs answers."
    with open(log, "w") as out:
        process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, SERVER_CORES),
        )
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{cmd} did not start")


def encode(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(port: int, requests: list[bytes], clients: int, seconds: float) -> dict:
    "`clients` keep-alive connections sending `requests` round-robin for `seconds`; latency percentiles, rate."
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while time.perf_counter() < deadline:
            request = requests[i % len(requests)]
            i += clients
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            errors += head[9:12] != b"200"
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "per_s": len(ms) / elapsed,
    }


def records() -> list[dict]:
    "The Telco test rows as JSON records typed by the contract (missing values left out)."
    contract = json.loads((ROOT / "artifacts/prepared/schema.json").read_text())
    frame = pd.read_parquet(ROOT / "artifacts/prepared/test.parquet")
    cast = {"float": float, "int": int, "str": str}
    return [
        {c: cast[s["dtype"]](row[c]) for c, s in contract["columns"].items() if not pd.isna(row[c])}
        for row in frame.to_dict("records")
    ]


UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
LEVELS = [("1 record, 1 client", 1, False), ("1 record, 8 clients", 8, False), ("1 record, 32 clients", 32, False)]
LEVELS += [("batch of 1,000, 1 client", 1, True)]


def service_commands(model: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    "name -> (command taking the port as its last argument's value, extra environment)."

    def uvicorn(factory: str) -> list[str]:
        return [str(BIN / "uvicorn"), f"tutorial_service:{factory}", "--factory", "--app-dir", str(ROOT / "bench")]

    return {
        "churnlab": ([str(BIN / "churnlab"), "serve", "--model", str(model), "--port"], {}),
        "plain, same pipeline": ([*uvicorn("plain_app"), *UVICORN_FLAGS, "--port"], {"TUTORIAL_PIPELINE": str(model)}),
        "tutorial, as written": ([*uvicorn("tutorial_app"), *UVICORN_FLAGS, "--port"], {}),
    }


def probabilities(port: int, rows: list[dict]) -> np.ndarray:
    "The service's probability for each record, one /predict each."
    return np.array([httpx.post(f"http://127.0.0.1:{port}/predict", json=r).json()["probability"] for r in rows])


def bench_services(seconds: float, workdir: Path, model: Path) -> tuple[list[dict], dict, dict]:
    "Every service at every load level; the churnlab /model info; each service's probabilities on 50 records."
    rows = records()
    singles = [encode("/predict", json.dumps(r).encode()) for r in rows]
    batches = [encode("/predict_batch", json.dumps((rows * 2)[i : i + 1000]).encode()) for i in range(0, 1000, 250)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "CHURNLAB_PREDICTION_LOG_URL": f"sqlite:///{workdir}/predictions.sqlite",
    }
    table, info, sampled = [], {}, {}
    os.sched_setaffinity(0, CLIENT_CORES)
    for name, (command, extra) in service_commands(model).items():
        port = free_port()
        process = start([*command, str(port)], port, {**env, **extra}, workdir / f"{name.split(',')[0]}.log")
        try:
            if name == "churnlab":
                info = httpx.get(f"http://127.0.0.1:{port}/model").json()
            sampled[name] = probabilities(port, rows[:50])
            asyncio.run(load(port, singles, 1, min(2.0, seconds / 3)))  # warm-up
            for level, clients, batch in LEVELS:
                result = asyncio.run(load(port, batches if batch else singles, clients, seconds))
                table.append({"service": name, "load": level, **result})
        finally:
            process.terminate()
            process.wait(60)
    os.sched_setaffinity(0, set(CORES))
    return table, info, sampled


PLAIN_BATCH = """import sys
import pandas as pd
from churnlab import files, models
pipeline, _ = models.load_model(sys.argv[1])
frame = pd.read_parquet(sys.argv[2])
scored = frame.assign(probability=pipeline.predict_proba(frame)[:, 1])
scored[["rownames", "probability"]].to_csv(sys.argv[3], index=False)
"""


# A small launcher forks and execs the measured command and reports that child's own peak RSS. Linux
# carries a process's peak RSS across exec, so a command started straight from this (large)
# benchmark process would report this process's size as its own.
LAUNCHER = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], workdir: Path) -> tuple[float, float]:
    "Run `command` in its own process: wall seconds and that process's own peak RSS in MB."
    peak = workdir / "peak_rss_kb"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", LAUNCHER, str(peak), *command], cwd=ROOT, check=True)
    return time.perf_counter() - started, int(peak.read_text()) / 1024


def bench_batch_predict(workdir: Path, n_rows: int, model: Path) -> list[dict]:
    "`churnlab predict` on `n_rows` sampled Telco rows, Parquet and CSV, and the plain whole-file approach."
    raw = pd.read_csv(ROOT / "data/wa_churn.csv")
    big = raw.sample(n_rows, replace=True, random_state=0).reset_index(drop=True)
    big["rownames"] = np.arange(n_rows)
    parquet, csv = workdir / "big.parquet", workdir / "big.csv"
    big.to_parquet(parquet, index=False)
    big.to_csv(csv, index=False)
    del big
    script = workdir / "plain_batch.py"
    script.write_text(PLAIN_BATCH)
    methods = {
        "churnlab predict (parquet)": [str(BIN / "churnlab"), "predict", str(parquet), "--model", str(model)],
        "churnlab predict (csv)": [str(BIN / "churnlab"), "predict", str(csv), "--model", str(model)],
        "plain: read whole Parquet, predict_proba, to_csv": [
            str(BIN / "python"),
            str(script),
            str(model),
            str(parquet),
        ],
    }
    out = []
    for method, command in methods.items():
        target = workdir / "scores.csv"
        output = ["-o", str(target)] if "churnlab" in method else [str(target)]
        seconds, peak = run_measured([*command, *output], workdir)
        out.append(
            {"method": method, "rows": n_rows, "seconds": seconds, "rows_per_s": n_rows / seconds, "peak_rss_mb": peak}
        )
    return out


def served_test_roc_auc(model: Path) -> dict[str, float]:
    "Test ROC-AUC of the served pipeline and of the tutorial's own forest (what the shipped-vs-seed row compares)."
    from sklearn.metrics import roc_auc_score

    sys.path.insert(0, str(ROOT / "bench"))
    from tutorial_service import Customer

    pipeline, meta = models.load_model(model)
    test = pd.read_parquet(ROOT / "artifacts/prepared/test.parquet")
    y = (test["churn"] == "Yes").astype(int)
    rows = test.drop(columns=["churn"])
    app_score = _tutorial_scores(rows.astype(object).where(rows.notna(), None).to_dict("records"), Customer)
    return {
        "churnlab": float(roc_auc_score(y, pipeline.predict_proba(rows)[:, 1])),
        "tutorial": roc_auc_score(y, app_score),
    }


def _tutorial_scores(records_: list[dict], customer) -> np.ndarray:
    "The tutorial app's probabilities, called in process through its FastAPI routes' function."
    from fastapi.testclient import TestClient
    from tutorial_service import tutorial_app

    client = TestClient(tutorial_app())
    body = [customer(**r).model_dump() for r in records_]
    return np.array([p["probability"] for p in client.post("/predict_batch", json=body).json()])


def ratio_rows(table: list[dict], ours: str, theirs: str) -> list[dict]:
    "Per load level: p50 ratio (theirs / ours) and throughput ratio (ours / theirs)."
    by = {(r["service"], r["load"]): r for r in table}
    return [
        {
            "load": level,
            "p50_ratio": by[(theirs, level)]["p50_ms"] / by[(ours, level)]["p50_ms"],
            "throughput_ratio": by[(ours, level)]["per_s"] / by[(theirs, level)]["per_s"],
        }
        for level, _, _ in LEVELS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1.5 s per load level, 50,000 rows for predict")
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts/model", help="the pipeline both stacks serve")
    args = parser.parse_args()
    seconds, n_rows = (1.5, 50_000) if args.quick else (10.0, 1_000_000)
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        batch = bench_batch_predict(workdir, n_rows, args.model)
        table, info, sampled = bench_services(seconds, workdir, args.model)
    same = float(np.max(np.abs(sampled["churnlab"] - sampled["plain, same pipeline"])))
    assert same < 1e-9, f"the two stacks must serve the same probabilities (max difference {same})"
    aucs = served_test_roc_auc(args.model)
    print(
        f"\nchurnlab serve --model {args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}: "
        f"{info.get('family')} (fast path: {info.get('fast_path')}); the plain service serves the same pipeline "
        f"(max probability difference on 50 records: {same:.1e}); {seconds:.0f} s per level; server on core(s) "
        f"{sorted(SERVER_CORES)}, client on {sorted(CLIENT_CORES)} (measured: python bench/serve.py)\n"
    )
    print("| service | load | requests | errors | p50 ms | p95 ms | p99 ms | requests/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        print(
            f"| {r['service']} | {r['load']} | {r['requests']} | {r['errors']} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['per_s']:.1f} |"
        )
    stack = ratio_rows(table, "churnlab", "plain, same pipeline")
    shipped = ratio_rows(table, "churnlab", "tutorial, as written")
    for title, rows in (
        ("serving stack alone (same pipeline): plain / churnlab", stack),
        (
            f"system as shipped vs the seed recipe (model AND stack differ; test ROC-AUC {aucs['churnlab']:.4f} "
            f"vs {aucs['tutorial']:.4f}): tutorial / churnlab",
            shipped,
        ),
    ):
        print(f"\n{title}\n\n| load | p50 ratio | throughput ratio (churnlab / other) |\n|---|---|---|")
        for r in rows:
            print(f"| {r['load']} | {r['p50_ratio']:.1f}x | {r['throughput_ratio']:.1f}x |")
    print("\n| batch scoring (own process each) | rows | seconds | rows/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for r in batch:
        print(
            f"| {r['method']} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    results = ROOT / "bench/results"
    results.mkdir(exist_ok=True)
    report = {
        "model": info,
        "seconds_per_level": seconds,
        "same_pipeline_max_difference": same,
        "test_roc_auc": aucs,
        "load": table,
        "stack_ratios": stack,
        "shipped_vs_seed_ratios": shipped,
        "batch": batch,
    }
    name = "serve-quick.json" if args.quick else "serve.json"  # the docs read the full run only
    files.atomic_write_text(results / name, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
