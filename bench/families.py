"""Which families belong in `train.candidates`: cross-validation of the training split only, never test.

For each dataset of `bench/datasets.py` (the same `data` section and `prepare` keys, prepared in
memory), `selection.select_and_fit` cross-validates every family of FAMILIES but the network (their
shipped `train` blocks, untuned: the tuned `hist_gb` would carry its tuning rows' optimism) on the
same folds, then tries the blend of the blendable ones (under time-ordered folds, each fold with weights from
the earlier ones). It also scores, from the same out-of-fold outputs, the blend a native-categorical member
would make (`catboost` added to the one-hot families: its codes cannot share their matrix, so train does not
build it; this says what building it would gain). Prints, per dataset, each family's mean CV ROC-AUC, its
paired gain over `hist_gb` with the SE, its seconds, and the blends' verdicts; writes
`bench/results/families.json`. `--max-rows` caps the training rows (seeded, stratified) as
`train.selection_max_rows` would.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))
from datasets import DATASETS, load_dataset  # noqa: E402

from churnlab import ensemble, files, selection, splits, workflow  # noqa: E402

DEFAULT = ["telco", "credit_data", "mlc_churn", "attrition", "loans", "flights"]
FAMILIES = ["logreg", "random_forest", "hist_gb", "lightgbm", "catboost"]


def with_native(cv: dict, y, l2: float) -> dict:
    "The nested blend of the one-hot families and `catboost` (train's stack, ordered under time folds) vs the best."
    members = ["logreg", "random_forest", "hist_gb", "catboost"]
    fold = cv["hist_gb"]["fold"]
    nested = ensemble.nested_scores(ensemble.stacked_oof(cv, members), y, fold, "roc_auc", l2, bool((fold < 0).any()))
    best = max(cv, key=lambda f: cv[f]["mean"])
    gain, se = selection.paired_gain(nested["scores"], np.asarray(cv[best]["scores"])[nested["folds"]])
    return {
        "members": members,
        "mean": round(nested["mean"], 4),
        "gain": round(gain, 4),
        "se": round(se, 4),
        "over": best,
    }


def training_rows(name: str, params: dict, max_rows: int | None):
    """`bench/datasets.py`'s dataset `name` prepared in memory with its `data` section and `prepare` keys: the
    prepared data and its training rows (X, y, groups), capped at `max_rows` (seeded, stratified)."""
    raw, section = load_dataset(name)
    prepare = {**params["prepare"], **DATASETS[name].prepare}
    memory = workflow.prepare_in_memory(raw, {"data": section, "prepare": prepare, "featurize": params["featurize"]})
    rows = memory.rows("train")
    return memory, *splits.capped(rows.X, rows.y, rows.groups, max_rows, 42)


def run_datasets(names: list[str], run: Callable[[str, dict], dict], output: Path) -> list[dict]:
    "`run(name, params)` for each dataset with the shipped params.yaml, printed as each finishes; written to `output`."
    warnings.filterwarnings("ignore")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    results = []
    for name in names:
        results.append(run(name, params))
        print(json.dumps(results[-1]), flush=True)
    files.atomic_write_text(output, json.dumps(results, indent=2) + "\n")
    return results


def run(name: str, params: dict, max_rows: int | None) -> dict:
    memory, X, y, groups = training_rows(name, params, max_rows)
    train = {**params["train"], "model": "auto", "candidates": FAMILIES, "calibration_methods": [],
             "target_encoding": "off", "selection_rule": "best", "selection_max_rows": None}  # fmt: skip
    splitter = splits.cv_splitter(memory.contract["split"]["strategy"], train["cv_folds"], train["seed"])
    started = time.perf_counter()
    fit = selection.select_and_fit(X, y, memory.spec, train, splitter, groups)
    base = fit.cv["hist_gb"]["scores"]
    families = {}
    for family, result in fit.cv.items():
        gain, se = selection.paired_gain(result["scores"], base)
        families[family] = {"mean": round(result["mean"], 4), "gain_vs_hist_gb": round(gain, 4),
                            "se": round(se, 4), "seconds": fit.timings[f"cv_{family}_seconds"]}  # fmt: skip
    blend = fit.ensemble or {}
    return {
        "dataset": name,
        "rows": len(y),
        "families": families,
        "blend": {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in blend.items()
            if k in ("members", "weights", "mean", "gain", "se", "adopted", "ordered")
        },  # fmt: skip
        "with_catboost": with_native(fit.cv, y, train["ensemble_l2"]),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", default=DEFAULT)
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "families.json")
    args = parser.parse_args()
    results = run_datasets(args.datasets, lambda name, params: run(name, params, args.max_rows), args.output)
    for r in results:
        print(f"\n{r['dataset']} ({r['rows']:,} rows, {r['seconds']:.0f} s)")
        for family, f in r["families"].items():
            print(f"  {family:14s} {f['mean']:.4f}  {f['gain_vs_hist_gb']:+.4f} ± {f['se']:.4f}  {f['seconds']:6.1f} s")
        if r["blend"].get("mean") is not None:
            b = r["blend"]
            print(f"  blend {b['members']} {b['mean']:.4f} gain over best {b['gain']:+.4f} ± {b['se']:.4f}")
        n = r["with_catboost"]
        print(f"  with catboost {n['mean']:.4f} gain over {n['over']} {n['gain']:+.4f} ± {n['se']:.4f}")


if __name__ == "__main__":
    main()
