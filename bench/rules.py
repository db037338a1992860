"""Which `train.selection_rule`, and whether the blend (`train.ensemble`): nested CV of the training split.

The CV score that picks a family is also the estimate of the pick, so the rules cannot be compared on it.
Here each dataset's training split (as `bench/families.py` prepares it) is cut into 5 outer folds
(`splits.cv_splitter`: stratified, or expanding windows under the time strategy). On each outer
fold's training rows `selection.select_and_fit` runs as train does (the shipped candidates with their
shipped `train` blocks, untuned: tuning inside every outer fold would cost 5 studies; 5 inner folds;
calibration and target encoding off, since neither changes which family is chosen) and three
policies pick a model: `best` (the highest mean inner CV score), `one_se` (the cheapest family within
one paired SE of the best) and the shipped policy (`one_se`, then the blend when it beats the best
family by more than one SE). Each pick is fitted on the outer training rows and scored on the outer
validation rows it never saw; the outer folds pair the policies (an outer fold whose inner folds lack a
class, as the earliest expanding windows of a rare target can, is skipped and counted). Prints and writes
`bench/results/rules.json`: per dataset each policy's picks and mean outer ROC-AUC, and the paired
difference to `best` with its SE; test rows are never read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))
from families import DEFAULT, run_datasets, training_rows  # noqa: E402

from churnlab import models, selection, splits  # noqa: E402

POLICIES = ["best", "one_se", "shipped"]


def _picks(fit: selection.Selection, train: dict) -> dict[str, str]:
    "What each policy chooses from one inner selection (`shipped`: the blend where it was adopted)."
    cap = train.get("max_operations_per_record")
    one_se = selection.select_family(fit.cv, cap, "one_se")
    return {"best": selection.select_family(fit.cv, cap, "best"), "one_se": one_se,
            "shipped": "ensemble" if fit.family == "ensemble" else one_se}  # fmt: skip


def outer_fold(X, y, groups, fit_idx, val_idx, spec, train: dict, strategy: str) -> dict[str, tuple[str, float]]:
    "Each policy's pick on the outer training rows and its ROC-AUC on the outer validation rows."
    Xo, yo, go = X.iloc[fit_idx], y[fit_idx], None if groups is None else np.asarray(groups)[fit_idx]
    inner = splits.cv_splitter(strategy, train["cv_folds"], train["seed"])
    fit = selection.select_and_fit(Xo, yo, spec, train, inner, go)
    picks, fitted = _picks(fit, train), {fit.family: fit.candidate}
    out = {}
    for policy, family in picks.items():
        if family not in fitted:
            pipeline = models.make_pipeline(spec, family, train.get(family), train["seed"])
            fitted[family] = selection.fit_model(pipeline, Xo, yo, groups=go)
        out[policy] = (family, float(roc_auc_score(y[val_idx], fitted[family].predict_proba(X.iloc[val_idx])[:, 1])))
    return out


def run(name: str, params: dict, outer_folds: int) -> dict:
    memory, X, y, groups = training_rows(name, params, params["train"]["selection_max_rows"])
    strategy = memory.contract["split"]["strategy"]
    train = {**params["train"], "model": "auto", "calibration_methods": [], "target_encoding": "off",
             "selection_rule": "one_se", "selection_max_rows": None}  # fmt: skip
    started = time.perf_counter()
    folds, skipped = [], 0
    for fit_idx, val_idx in splits.cv_splitter(strategy, outer_folds, 7).split(X, y, groups):
        try:
            folds.append(outer_fold(X, y, groups, fit_idx, val_idx, memory.spec, train, strategy))
        except ValueError as error:  # an inner fold without positives (the earliest expanding windows)
            skipped += 1
            print(f"{name}: outer fold skipped: {str(error)[:120]}", flush=True)
    scores = {p: np.array([fold[p][1] for fold in folds]) for p in POLICIES}
    result = {
        "dataset": name,
        "strategy": strategy,
        "rows": len(y),
        "outer_folds": len(folds),
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 1),
    }
    for policy in POLICIES:
        gain, se = selection.paired_gain(scores[policy], scores["best"])
        result[policy] = {"picks": [fold[policy][0] for fold in folds], "mean": round(float(scores[policy].mean()), 4),
                          "minus_best": round(gain, 4), "se": round(se, 4) if np.isfinite(se) else None}  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", default=DEFAULT)
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "rules.json")
    args = parser.parse_args()
    results = run_datasets(args.datasets, lambda name, params: run(name, params, args.outer_folds), args.output)
    for r in results:
        print(f"\n{r['dataset']} ({r['rows']:,} rows, {r['strategy']} folds, {r['seconds']:.0f} s)")
        for policy in POLICIES:
            p = r[policy]
            print(f"  {policy:8s} {p['mean']:.4f}  {p['minus_best']:+.4f} ± {p['se']}  {' '.join(p['picks'])}")


if __name__ == "__main__":
    main()
