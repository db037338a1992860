"""Reason codes: exactness and latency per family (`make bench`; `--quick`: 100 timed records instead of 500).

On the pipeline's own Telco splits (`artifacts/prepared/`, so `make repro` first), each family is fitted
with its `params.yaml` `train.<family>` block on the training split and explained by `churnlab.explain`:

- exactness: on 1,000 test rows, the largest |sum of the raw-column contributions + base value -
  the model's own output| (log-odds, or the forest's probability); the network's values are sampled
  baseline Shapley values (`explain.SAMPLED_ORDERS` orders): additive, not exact Shapley values;
- one example: the first test customer's contributions on every raw column, the base value, their sum
  and the model's own output (the docs page shows it);
- latency: what `POST /predict?explain=3` computes per record (`served.explained`: the compiled
  scorer's probability and features, the contributions, the top 3 raw columns), one record at a
  time in this process, p50 and p99, beside `served.score_records` for the same records without
  reason codes (the extra cost of the codes). HTTP and validation are not in these figures: they are
  the same with or without `?explain` (`bench/serve.py` measures them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from churnlab import config, data, explain, features, files, models, scoring, served, splits

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("hist_gb", "random_forest", "logreg", "hist_gb+sigmoid", "lightgbm", "catboost", "nn")


def fitted(family: str, spec, rows, params: dict):
    "A candidate of `family` (`+sigmoid`: wrapped in the sigmoid calibrator) fitted on the training rows."
    base, _, calibration = family.partition("+")
    pipeline = models.make_pipeline(spec, base, params["train"].get(base, {}), 42)
    model = models.calibrated(pipeline, calibration) if calibration else pipeline
    return model.fit(rows.X, rows.y)


def timed_ms(call, records: list[dict]) -> np.ndarray:
    "Milliseconds of `call(record)` per record, one at a time, after 20 warm-up calls."
    for record in records[:20]:
        call(record)
    out = []
    for record in records:
        start = time.perf_counter()
        call(record)
        out.append((time.perf_counter() - start) * 1000)
    return np.array(out)


def measure(family: str, model, contract, train, test, records: list[dict]) -> dict:
    "One family's exactness on 1,000 test rows and its per-record latency with and without reason codes."
    built = time.perf_counter()
    meta = {"contract": contract, "threshold": 0.5, "feature_means": models.feature_means(model, train.X)}
    explainer = explain.make_explainer(model, meta["feature_means"])
    build_s = time.perf_counter() - built
    Z = explain.transformed_features(model, test.X.head(1000))
    values, base = explain.contributions(explainer, Z)
    gap = float(np.abs(values.sum(axis=1).to_numpy() + base - explain.model_output(explainer, model, Z)).max())
    first, _ = explain.contributions(explainer, Z[:1])
    example = sorted(((column, float(v)) for column, v in first.iloc[0].items()), key=lambda cv: -abs(cv[1]))
    service = served.Served(model, meta, None, "", scoring.compile_scorer(model), None, None, "bench", explainer)
    with_codes = timed_ms(lambda r: served.explained(service, r, 3), records)
    without = timed_ms(lambda r: served.score_records(service, [r]), records)
    return {
        "family": family,
        "method": explainer.method,
        "output": explainer.output,
        "exact": explainer.exact,
        "leaves": None if explainer.paths is None else int(len(explainer.paths.value)),
        "max_additivity_gap": gap,
        "build_s": round(build_s, 3),
        "compiled": service.scorer is not None,
        "p50_ms": float(np.median(with_codes)),
        "p99_ms": float(np.quantile(with_codes, 0.99)),
        "p50_ms_without_codes": float(np.median(without)),
        "records": len(records),
        "example": {
            "contributions": example,
            "base": base,
            "sum": base + sum(v for _, v in example),
            "output": float(explain.model_output(explainer, model, Z[:1])[0]),
            "probability": float(model.predict_proba(test.X.head(1))[:, 1][0]),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", help="default bench/results/explain.json (explain-quick.json with --quick)")
    args = parser.parse_args()
    output = Path(args.output or ROOT / "bench" / "results" / f"explain{'-quick' if args.quick else ''}.json")
    layout = files.Layout(ROOT)
    params = config.load_params(root=ROOT)
    contract = json.loads(layout.contract.read_text())
    train = splits.model_rows(pd.read_parquet(layout.train), contract)
    test_frame = pd.read_parquet(layout.test)
    test = splits.model_rows(test_frame, contract)
    spec, _ = features.feature_spec(contract, params.get("featurize") or {})
    records = data.request_records(test_frame.drop(columns=[contract["target"]]), contract)
    records = (records * 2)[: 100 if args.quick else 500]
    rows, started = [], time.perf_counter()
    for family in FAMILIES:
        model = fitted(family, spec, train, params)
        models.base_pipeline(model).set_params(
            **{k: 1 for k in models.base_pipeline(model).get_params() if k.endswith("n_jobs")}
        )  # one thread per request, as the service sets
        rows.append(measure(family, model, contract, train, test, records))
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
        "test_rows": len(test.y),
        "sampled_orders": explain.SAMPLED_ORDERS,
        "quick": args.quick,
    }
    files.atomic_write_text(output, json.dumps(report, indent=2) + "\n")
    print("\n| family | method | output | max abs(sum + base - output) | p50 ms, ?explain=3 | p99 ms | p50 ms, none |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['family']} | {r['method']} | {r['output']} | {r['max_additivity_gap']:.1e} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['p50_ms_without_codes']:.2f} |"
        )


if __name__ == "__main__":
    main()
