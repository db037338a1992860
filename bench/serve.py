"""Service benchmark (`make bench`; `QUICK=1`: 5 s per level instead of 30).

Latency and throughput of `churnlab serve` (the champion `make repro` produced, falling back to the
candidate) against the tutorial-style service in `bench/tutorial_service.py`, on the same Telco
test records: single records at 1, 8 and 32 concurrent clients, and batches of 1,000 records. The
load generator is a minimal asyncio HTTP/1.1 client (keep-alive, pre-encoded requests) so that it
costs little CPU; on a machine with 2+ cores the server is pinned to core 0 and the client to the
others. Both servers run uvicorn with the same settings (uvloop, httptools, no access log, one
process, one thread for the model). Then `churnlab predict` scores 1,000,000 rows (Parquet and CSV),
against the plain approach (read the whole file, `predict_proba`, `to_csv`) in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from churnlab import models

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


def bench_services(seconds: float, workdir: Path) -> tuple[list[dict], dict]:
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
    uvicorn_flags = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    services = {
        "churnlab": lambda port: [str(BIN / "churnlab"), "serve", "--port", str(port)],
        "tutorial": lambda port: [
            str(BIN / "uvicorn"),
            "tutorial_service:app",
            "--app-dir",
            str(ROOT / "bench"),
            "--port",
            str(port),
            *uvicorn_flags,
        ],
    }
    table, info = [], {}
    os.sched_setaffinity(0, CLIENT_CORES)
    for name, command in services.items():
        port = free_port()
        process = start(command(port), port, env, workdir / f"{name}.log")
        try:
            if name == "churnlab":
                info = httpx.get(f"http://127.0.0.1:{port}/model").json()
            asyncio.run(load(port, singles, 1, min(2.0, seconds)))  # warm-up
            for clients in (1, 8, 32):
                table.append(
                    {
                        "service": name,
                        "load": f"1 record, {clients} clients",
                        **asyncio.run(load(port, singles, clients, seconds)),
                    }
                )
            table.append(
                {"service": name, "load": "batch of 1,000, 1 client", **asyncio.run(load(port, batches, 1, seconds))}
            )
        finally:
            process.terminate()
            process.wait(60)
    os.sched_setaffinity(0, set(CORES))
    return table, info


def bench_batch_predict(workdir: Path, n_rows: int) -> list[dict]:
    "`churnlab predict` on `n_rows` sampled Telco rows, Parquet and CSV, and the plain whole-file approach."
    raw = pd.read_csv(ROOT / "data/wa_churn.csv")
    big = raw.sample(n_rows, replace=True, random_state=0).reset_index(drop=True)
    big["rownames"] = np.arange(n_rows)
    parquet, csv = workdir / "big.parquet", workdir / "big.csv"
    big.to_parquet(parquet, index=False)
    big.to_csv(csv, index=False)
    del big
    out = []
    for source in (parquet, csv):
        started = time.perf_counter()
        subprocess.run(
            [str(BIN / "churnlab"), "predict", str(source), "-o", str(workdir / "scores.csv")], cwd=ROOT, check=True
        )
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out.append(
            {
                "method": f"churnlab predict ({source.suffix[1:]})",
                "rows": n_rows,
                "seconds": seconds,
                "rows_per_s": n_rows / seconds,
                "peak_rss_mb": peak,
            }
        )
    pipeline, _ = models.load_model(ROOT / "artifacts/model")
    started = time.perf_counter()
    frame = pd.read_parquet(parquet)
    frame.assign(probability=pipeline.predict_proba(frame)[:, 1])[["rownames", "probability"]].to_csv(
        workdir / "plain.csv", index=False
    )
    seconds = time.perf_counter() - started
    out.append(
        {
            "method": "plain: read whole Parquet, predict_proba, to_csv",
            "rows": n_rows,
            "seconds": seconds,
            "rows_per_s": n_rows / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per load level, 200,000 rows for predict")
    args = parser.parse_args()
    seconds, n_rows = (5.0, 200_000) if args.quick else (30.0, 1_000_000)
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        batch = bench_batch_predict(workdir, n_rows)
        table, info = bench_services(seconds, workdir)
    print(
        f"\nchurnlab serve: {info.get('family')} champion v{info.get('version')} (fast path: "
        f"{info.get('fast_path')}); {seconds:.0f} s per level; server on core(s) {sorted(SERVER_CORES)}, "
        f"client on {sorted(CLIENT_CORES)}\n"
    )
    print("| service | load | requests | errors | p50 ms | p95 ms | p99 ms | requests/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        print(
            f"| {r['service']} | {r['load']} | {r['requests']} | {r['errors']} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['per_s']:.1f} |"
        )
    ours = {r["load"]: r for r in table if r["service"] == "churnlab"}
    theirs = {r["load"]: r for r in table if r["service"] == "tutorial"}
    print("\n| load | p50 ratio (tutorial / churnlab) | throughput ratio (churnlab / tutorial) |")
    print("|---|---|---|")
    for load_name in ours:
        print(
            f"| {load_name} | {theirs[load_name]['p50_ms'] / ours[load_name]['p50_ms']:.1f}x | "
            f"{ours[load_name]['per_s'] / theirs[load_name]['per_s']:.1f}x |"
        )
    print("\n| batch scoring | rows | seconds | rows/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for r in batch:
        print(
            f"| {r['method']} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    results = ROOT / "bench/results"
    results.mkdir(exist_ok=True)
    (results / "serve.json").write_text(
        json.dumps({"model": info, "seconds_per_level": seconds, "load": table, "batch": batch}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
