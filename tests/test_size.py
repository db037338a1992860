"""Code behaviour that size depends on: the one-sort threshold, the vectorised bootstrap, the seeded
caps, and compilation over many categorical columns. Their speed is measured by `bench/scale.py`
(`make bench-scale`), not here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from churnlab import config, data, evaluate, features, models, roles, scoring, selection, splits


def threshold_by_loop(y, proba, rule="max_f1", cost_fp=1.0, cost_fn=1.0) -> float:
    "The threshold as it was chosen before: one F1 (or cost) per distinct rounded probability."
    mask = ~np.isnan(proba)
    y, proba = y[mask], proba[mask]
    candidates = np.unique(np.round(proba, 6))
    if rule == "max_f1":
        return float(candidates[int(np.argmax([f1_score(y, proba >= t, zero_division=0) for t in candidates]))])
    costs = [cost_fp * np.sum((proba >= t) & (y == 0)) + cost_fn * np.sum((proba < t) & (y == 1)) for t in candidates]
    return float(candidates[int(np.argmin(costs))])


@pytest.mark.parametrize("seed", range(6))
def test_the_threshold_from_one_sort_is_the_loops_to_the_last_digit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 600))
    y = (rng.random(n) < rng.uniform(0.03, 0.5)).astype(int)
    proba = np.clip(0.4 * y + rng.random(n) * 0.6, 0, 1)
    if seed % 2:  # coarse scores: many ties, and thresholds that round up past their own rows
        proba = np.round(proba, 2) + rng.choice([0.0, 4e-7], n)
    proba[rng.random(n) < 0.05] = np.nan  # rows never validated
    assert selection.choose_threshold(y, proba) == threshold_by_loop(y, proba)
    for cost_fp, cost_fn in ((1.0, 5.0), (3.0, 1.0)):
        assert selection.choose_threshold(y, proba, "min_cost", cost_fp, cost_fn) == threshold_by_loop(
            y, proba, "min_cost", cost_fp, cost_fn
        )


def loop_bootstrap(y, proba, metric, n_boot, seed) -> np.ndarray:
    rng, values = np.random.default_rng(seed), []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            values.append(metric(y[idx], proba[idx]))
    return np.array(values)


@pytest.mark.parametrize("metric", [roc_auc_score, average_precision_score])
def test_the_vectorised_bootstrap_is_the_loop_over_resampled_rows(metric):
    rng = np.random.default_rng(7)
    y = (rng.random(3000) < 0.08).astype(int)  # rare positives
    proba = np.round(np.clip(0.25 * y + rng.random(3000) * 0.75, 0, 1), 3)  # ties
    fast = evaluate.bootstrap_values(y, proba, metric, n_boot=120, seed=11)
    np.testing.assert_allclose(fast, loop_bootstrap(y, proba, metric, 120, 11), rtol=0, atol=1e-12)
    lo, hi = evaluate.bootstrap_interval(y, proba, metric, n_boot=120, seed=11)
    assert lo < metric(y, proba) < hi


def test_the_paired_test_sees_the_same_resamples_for_both_models():
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.2).astype(int)
    a, b = np.clip(0.3 * y + rng.random(2000) * 0.7, 0, 1), rng.random(2000)
    result = evaluate.paired_bootstrap_test(y, a, b, margin=0.0, n_boot=200, seed=5)
    diffs = loop_bootstrap(y, a, roc_auc_score, 200, 5) - loop_bootstrap(y, b, roc_auc_score, 200, 5)
    assert result["p_value"] == round((1 + np.sum(diffs <= 0.0)) / (1 + len(diffs)), 9)


def test_caps_draw_the_same_stratified_rows_on_every_run_and_keep_their_order():
    rng = np.random.default_rng(0)
    y = (rng.random(50_000) < 0.06).astype(int)
    first, again = splits.capped_rows(y, 10_000, seed=42), splits.capped_rows(y, 10_000, seed=42)
    assert np.array_equal(first, again) and len(first) == 10_000
    assert np.all(np.diff(first) > 0)  # ascending: time order survives a cap
    assert abs(y[first].mean() - y.mean()) < 1e-3  # the positive share is kept, not left to chance
    assert not np.array_equal(first, splits.capped_rows(y, 10_000, seed=43))
    groups = pd.Series(rng.integers(0, 5_000, 50_000))
    kept = splits.capped_rows(y, 10_000, seed=42, groups=groups)
    assert set(groups.iloc[kept]).isdisjoint(set(groups) - set(groups.iloc[kept]))  # whole groups only
    assert 9_000 < len(kept) <= 10_000


def test_the_shipped_caps_do_not_bind_on_the_default_data():
    params = config.read_yaml((ROOT / "params.yaml").read_text())
    caps = [
        params["train"]["selection_max_rows"],
        params["tune"]["max_rows"],
        params["featurize"]["ablation"]["max_rows"],
        params["evaluate"]["importance_max_rows"],
    ]
    assert min(caps) > 7_043  # Telco's rows: its metrics are those of uncapped work


def test_a_candidate_over_many_categorical_columns_compiles_to_what_the_pipeline_scores():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"c{j}": rng.choice([f"l{i}" for i in range(6)], 1500) for j in range(80)})
    frame["x"], frame["y"] = rng.normal(size=1500), np.where(rng.random(1500) < 0.3, "Yes", "No")
    contract = roles.infer_contract(frame, "y", "Yes")
    spec, _ = features.feature_spec(contract, config.read_yaml((ROOT / "params.yaml").read_text())["featurize"])
    pipeline = models.make_pipeline(spec, "logreg", {"C": 1.0}).fit(frame.drop(columns="y"), frame["y"] == "Yes")
    scorer = scoring.compile_scorer(pipeline)
    assert scorer is not None
    records = scoring.random_records(scorer, 300, seed=9)
    expected = pipeline.predict_proba(
        pd.DataFrame(records, columns=list(scorer.dtypes)).astype(
            {c: float for c, d in scorer.dtypes.items() if d in data.NUMERIC_DTYPES}
        )
    )[:, 1]
    np.testing.assert_allclose(scorer.predict_proba(scorer.columns(records)), expected, rtol=0, atol=1e-9)
