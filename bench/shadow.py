"""Shadow challenger overhead (`make bench`; `QUICK=1`: 1 round of 2 s runs instead of 3 of 10 s).

The champion's latency with `serve.shadow` off and on: the SAME `churnlab serve` over the same
champion, the same records and the same load generator (`bench/serve.py`'s), in one run. With the
shadow on, the registry's `challenger` (here: a logistic regression fitted on the training split,
registered into a temporary copy of the project's MLflow store) scores every answered record in a
background thread. Off and on alternate (off, on, off, on, ...: 3 rounds, 1 with QUICK) so that drift of the
machine's load lands on both; each row is one run, and the ratio compares the medians of the runs
of each mode (the spread of the off runs is the noise to read it against).
The server is pinned to one core and the client to the other (as in `bench/serve.py`), so the
shadow's thread competes with the champion for the server's core: the honest worst case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from serve import CLIENT_CORES, CORES, SERVER_CORES, encode, free_port, load, records, start

from churnlab import data, files, models, pyfunc, registry

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def register_challenger(store: Path, artifacts: Path) -> tuple[str, str]:
    "A different model (logistic regression) registered as `challenger` in the store copy; (name, version)."
    import mlflow

    layout = files.Layout(ROOT)
    _, champion_meta = models.load_model(layout.model)
    spec = json.loads(layout.feature_spec.read_text())
    train = pd.read_parquet(layout.train)
    contract = champion_meta["contract"]
    y = data.encode_target(train[contract["target"]], contract["positive_label"])
    X = train.drop(columns=[contract["target"]])
    fitted = models.make_pipeline(spec, "logreg", {"C": 0.1}).fit(X, y)
    meta = {**champion_meta, "family": "logreg", "feature_means": models.feature_means(fitted, X)}
    folder = models.save_model(fitted, meta, artifacts / "challenger")
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    experiment = mlflow.create_experiment("bench-shadow", artifact_location=str(artifacts / "mlruns"))
    with mlflow.start_run(experiment_id=experiment) as run:
        pyfunc.log_model(folder, X.head(5), meta)
    name = f"churnlab-{meta['contract_fingerprint']}"
    version = registry.register(folder, {**meta, "mlflow_run_id": run.info.run_id}, X.head(5), name, {})
    mlflow.MlflowClient().set_registered_model_alias(name, "challenger", version)
    return name, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s runs")
    args = parser.parse_args()
    seconds, rounds = (2.0, 1) if args.quick else (10.0, 3)
    rows = records()
    singles = [encode("/predict", json.dumps(r).encode()) for r in rows]
    table = []
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        store = workdir / "mlflow.db"
        shutil.copy(ROOT / "mlflow.db", store)
        _, version = register_challenger(store, workdir)
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{store}",
        }
        os.sched_setaffinity(0, CLIENT_CORES)
        for run, shadow in enumerate([False, True] * rounds):  # alternating: machine drift lands on both
            port = free_port()
            run_env = {
                **env,
                "CHURNLAB_SHADOW": "1" if shadow else "0",
                "CHURNLAB_PREDICTION_LOG_URL": f"sqlite:///{workdir}/predictions-{run}.sqlite",
                "CHURNLAB_PREDICTION_SPOOL": str(workdir / f"spool-{run}"),
            }
            process = start(
                [str(BIN / "churnlab"), "serve", "--port", str(port)], port, run_env, workdir / f"{run}.log"
            )
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/model").json()
                assert (info["shadow"] == version) if shadow else info["shadow"] is None, info
                asyncio.run(load(port, singles, 1, min(2.0, seconds)))  # warm-up
                for clients in (1, 8):
                    result = asyncio.run(load(port, singles, clients, seconds))
                    table.append(
                        {"shadow": shadow, "run": run, "clients": clients, "champion": info["version"], **result}
                    )
            finally:
                process.terminate()
                process.wait(60)
        os.sched_setaffinity(0, set(CORES))
    print(
        f"\nshadow overhead: champion v{table[0]['champion']}, challenger v{version} (logreg); "
        f"{seconds:.0f} s per run; server on core(s) {sorted(SERVER_CORES)}, client on {sorted(CLIENT_CORES)} "
        "(measured: python bench/shadow.py)\n"
    )
    print("| shadow | run | clients | requests | errors | p50 ms | p95 ms | requests/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        print(
            f"| {'on' if r['shadow'] else 'off'} | {r['run']} | {r['clients']} | {r['requests']} | {r['errors']} | "
            f"{r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['per_s']:.1f} |"
        )
    summary = []
    print("\n| clients | p50 off ms (runs) | p50 on ms (runs) | p50 on / off |")
    print("|---|---|---|---|")
    for clients in (1, 8):
        off = [r["p50_ms"] for r in table if r["clients"] == clients and not r["shadow"]]
        on = [r["p50_ms"] for r in table if r["clients"] == clients and r["shadow"]]
        ratio = float(np.median(on) / np.median(off))
        summary.append({"clients": clients, "p50_off_ms": off, "p50_on_ms": on, "ratio": ratio})
        print(
            f"| {clients} | {', '.join(f'{v:.3f}' for v in off)} | {', '.join(f'{v:.3f}' for v in on)} | {ratio:.3f} |"
        )
    results = ROOT / "bench/results"
    results.mkdir(exist_ok=True)
    (results / ("shadow-quick.json" if args.quick else "shadow.json")).write_text(  # the docs read the full run
        json.dumps({"seconds_per_run": seconds, "challenger": version, "runs": table, "summary": summary}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
