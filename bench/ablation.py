"""Feature-block ablation: does each optional block raise repeated 5x2-fold CV ROC-AUC? (`make bench-features`)

The training split is prepared as the pipeline prepares it (Telco by default, or a dataset of
bench/datasets.py). The base specification is params.yaml's `featurize` section with every
optional block off; each variant switches one block on (date parts only where the data has a date,
target encoding only where it has a high-cardinality column). Every variant is scored on the same
folds (scikit-learn's RepeatedStratifiedKFold, 2 folds x 5 repeats, seed 42) with the shipped
`train` parameters of logistic regression and HistGradientBoosting. Printed per block and family:
the mean ROC-AUC, and the mean ± standard error (SD / sqrt(10)) of the paired per-fold gain over
the base. A block is on by default only when its gain exceeds one SE.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from datasets import DATASETS
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold

from churnlab import data, features, models

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("date_parts", "group_aggregates", "ratios", "binning", "polynomial", "select_k_best")


def load(name: str) -> tuple[pd.DataFrame, dict]:
    "The raw frame and its `data` section: Telco from params.yaml, else a bench/datasets.py table."
    if name == "telco":
        section = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
        keys = ("target", "positive_label", "id_columns", "date_columns", "drop_columns", "bounds")
        return pd.read_csv(ROOT / "data" / "wa_churn.csv"), {k: section[k] for k in keys if k in section}
    dataset = DATASETS[name]
    return dataset.load(), dataset.data


def variants(featurize: dict, contract: dict) -> dict[str, dict]:
    "The base `featurize` params (optional blocks off) and one variant per applicable block."
    base = copy.deepcopy(featurize)
    for name in OPTIONAL:
        base["blocks"][name]["enabled"] = False
    base["blocks"]["resample"] = {"method": "none"}
    out = {"base": base}
    for name in OPTIONAL:
        if name == "date_parts" and not data.columns_by_role(contract, "date"):
            continue
        out[name] = copy.deepcopy(base)
        out[name]["blocks"][name]["enabled"] = True
    for method in ("smote", "undersample"):
        out[f"resample: {method}"] = copy.deepcopy(base)
        out[f"resample: {method}"]["blocks"]["resample"] = {"method": method}
    if data.columns_by_role(contract, "high_cardinality"):
        out["target_encoding"] = {**copy.deepcopy(base), "high_cardinality": "target"}
    return out


def fold_scores(X, y, spec: dict, family: str, params: dict, folds: list, groups=None) -> np.ndarray:
    "ROC-AUC of the pipeline on each (train, validation) fold."
    scores = []
    for train, valid in folds:
        model = models.fit_model(
            models.make_pipeline(spec, family, params, 42),
            X.iloc[train],
            y[train],
            groups=None if groups is None else np.asarray(groups)[train],
        )
        scores.append(roc_auc_score(y[valid], model.predict_proba(X.iloc[valid])[:, 1]))
    return np.array(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="telco", choices=["telco", *DATASETS])
    parser.add_argument("--families", nargs="+", default=["logreg", "hist_gb"])
    parser.add_argument("--blocks", nargs="+", help="only these variants (default: every applicable block)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw, section = load(args.dataset)
    contract = data.infer_contract(raw, **section)
    contract, parts, _ = data.prepare_splits(raw, contract, params["prepare"]["strategy"], seed=42)
    train = parts["train"]
    X, y = (
        train.drop(columns=[contract["target"]]),
        data.encode_target(train[contract["target"]], section["positive_label"]),
    )
    groups = data.split_groups(X, contract)
    folds = list(RepeatedStratifiedKFold(n_splits=2, n_repeats=5, random_state=42).split(X, y))
    started, rows = time.perf_counter(), []
    for family in args.families:
        scores = {}
        for name, featurize in variants(params["featurize"], contract).items():
            if args.blocks and name not in ("base", *args.blocks):
                continue
            spec, _ = features.feature_spec(contract, featurize)
            scores[name] = fold_scores(X, y, spec, family, params["train"][family], folds, groups)
            gain = scores[name] - scores["base"]
            se = gain.std(ddof=1) / np.sqrt(len(gain))
            verdict = "" if name == "base" else "on (> 1 SE)" if gain.mean() > se else "off"
            rows.append({"family": family, "block": name, "roc_auc": round(scores[name].mean(), 4),
                         "gain": round(gain.mean(), 4), "se": round(se, 4), "verdict": verdict})  # fmt: skip
    table = pd.DataFrame(rows)
    print(f"{args.dataset}: {len(X):,} training rows, repeated 5x2-fold CV ({time.perf_counter() - started:.0f} s)")
    print(table.to_markdown(index=False))
    suffix = "" if not args.blocks else "-" + "-".join(sorted(args.blocks))
    out = ROOT / "bench" / "results" / f"ablation-{args.dataset}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
