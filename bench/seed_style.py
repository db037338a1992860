"""Seed-style baseline vs the Churnlab candidate on Telco (`make bench`, `QUICK=1` for a short run).

The seed-style pipeline is what a quick tutorial writes: median-fill numerics over the WHOLE frame
before splitting, `get_dummies(drop_first=True)`, an 80/20 stratified split (random_state 42),
StandardScaler, RandomForest(100, max_depth=10, min_samples_split=5). It runs faithfully on its
own split, then on the project's train/test split for like-for-like comparisons, then both run on
5 split seeds. ROC-AUC is given with 95% bootstrap intervals on the same test rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from churnlab import config, data, evaluate, selection, splits, workflow

ROOT = Path(__file__).resolve().parents[1]


def seed_style_matrix(frame: pd.DataFrame, target: str, drop: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    "The tutorial's preprocessing, over the whole frame: median fill, then get_dummies."
    frame = frame.drop(columns=drop).copy()
    frame["total_charges"] = pd.to_numeric(frame["total_charges"], errors="coerce")
    numeric = frame.select_dtypes("number").columns
    frame[numeric] = frame[numeric].fillna(frame[numeric].median())
    y = (frame.pop(target) == "Yes").astype(int).to_numpy()
    return pd.get_dummies(frame, drop_first=True, dtype=float), y


def seed_style_fit_score(X_train, y_train, X_test) -> np.ndarray:
    scaler = StandardScaler().fit(X_train)
    model = RandomForestClassifier(n_estimators=100, max_depth=10, min_samples_split=5, random_state=42)
    model.fit(scaler.transform(X_train), y_train)
    return model.predict_proba(scaler.transform(X_test))[:, 1]


def seed_style_on_split(raw: pd.DataFrame, train_ids, test_ids) -> tuple[np.ndarray, np.ndarray]:
    "The tutorial's recipe on a given split (its whole-frame fill kept, as the tutorial does)."
    X, y = seed_style_matrix(raw, "churn", ["rownames"])
    ids = raw["rownames"].to_numpy()
    tr = np.isin(ids, train_ids)
    order = pd.Series(np.arange(len(ids)), index=ids)
    te_pos = order.loc[test_ids].to_numpy()  # the test rows in the project's order
    proba = seed_style_fit_score(X[tr], y[tr], X.iloc[te_pos])
    return y[te_pos], proba


def candidate_on_split(raw: pd.DataFrame, params: dict, seed: int) -> tuple[str, np.ndarray, np.ndarray, list]:
    "The Churnlab pipeline (prepare -> featurize -> train) on the split made with `seed`."
    prep = params["prepare"]
    memory = workflow.prepare_in_memory(raw, {**params, "prepare": {**prep, "seed": seed}})
    train, test = memory.rows("train"), memory.rows("test")
    strategy = memory.contract["split"]["strategy"]  # what `auto` resolved to, as the train stage reads it
    splitter = splits.cv_splitter(strategy, params["train"]["cv_folds"], params["train"]["seed"])
    fit = selection.select_and_fit(train.X, train.y, memory.spec, params["train"], splitter)
    proba = fit.candidate.predict_proba(test.X)[:, 1]
    ids = [memory.parts["train"]["rownames"].to_numpy(), memory.parts["test"]["rownames"].to_numpy()]
    return fit.family, test.y, proba, ids


def row(name: str, y: np.ndarray, proba: np.ndarray, n_boot: int) -> dict:
    lo, hi = evaluate.bootstrap_interval(y, proba, n_boot=n_boot, seed=42)
    return {
        "pipeline": name,
        "test_roc_auc": round(roc_auc_score(y, proba), 4),
        "ci95": f"[{lo:.4f}, {hi:.4f}]",
        "test_rows": len(y),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the shipped split seed only and 200 resamples")
    parser.add_argument("--output", help="default bench/results/seed_style.json (seed_style-quick.json with --quick)")
    args = parser.parse_args()
    args.output = args.output or str(ROOT / "bench" / "results" / f"seed_style{'-quick' if args.quick else ''}.json")
    params = config.load_params(root=ROOT)
    raw = data.read_tables(data.expand_paths(params["data"]["path"], ROOT))
    n_boot = 200 if args.quick else 1000
    started = time.perf_counter()

    # 1. Faithful: its own 80/20 split.
    X, y = seed_style_matrix(raw, "churn", ["rownames"])
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=42)
    rows = [row("seed-style, its own 80/20 split (leaky fill)", y_te, seed_style_fit_score(X_tr, y_tr, X_te), n_boot)]

    # 2. Same rows: the project's shipped split (seed 42).
    shipped_seed = params["prepare"]["seed"]
    on_shipped = candidate_on_split(raw, params, shipped_seed)
    family, y_test, proba, (train_ids, test_ids) = on_shipped
    y_seed, proba_seed = seed_style_on_split(raw, train_ids, test_ids)
    assert (y_seed == y_test).all()
    rows.append(row("seed-style, project split (seed 42)", y_seed, proba_seed, n_boot))
    rows.append(row(f"churnlab candidate ({family}), project split (seed 42)", y_test, proba, n_boot))
    print(pd.DataFrame(rows).to_string(index=False))

    # 3. Five split seeds (the shipped one only with --quick); the shipped seed's fit is the one above.
    seeds = [42, 43, 44, 45, 46][: 1 if args.quick else 5]
    per_seed = []
    for seed in seeds:
        fitted = on_shipped if seed == shipped_seed else candidate_on_split(raw, params, seed)
        family, y_test, proba, (train_ids, test_ids) = fitted
        y_seed, proba_seed = seed_style_on_split(raw, train_ids, test_ids)
        per_seed.append(
            {
                "seed": seed,
                "candidate_family": family,
                "candidate": roc_auc_score(y_test, proba),
                "seed_style": roc_auc_score(y_seed, proba_seed),
            }
        )
    table = pd.DataFrame(per_seed)
    table["difference"] = table["candidate"] - table["seed_style"]
    print()
    print(table.round(4).to_string(index=False))
    summary = {
        "candidate_mean": round(float(table["candidate"].mean()), 4),
        "seed_style_mean": round(float(table["seed_style"].mean()), 4),
        "mean_difference": round(float(table["difference"].mean()), 4),
        "difference_sd": round(float(table["difference"].std(ddof=1)), 4) if len(table) > 1 else None,
    }
    print(f"\nmean over {len(seeds)} split seeds: {summary}")
    print(f"bench time: {time.perf_counter() - started:.1f} s")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"shipped_split": rows, "seeds": per_seed, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
