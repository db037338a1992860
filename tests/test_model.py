"""Model behaviour: the candidate is safe to load, better than chance, and consistent."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from churnlab import evaluate, models, selection


@pytest.fixture(scope="module")
def candidate(pipeline):
    return models.load_model(pipeline / "artifacts/model")


@pytest.fixture(scope="module")
def test_rows(pipeline) -> pd.DataFrame:
    return pd.read_parquet(pipeline / "artifacts/prepared/test.parquet")


def test_artifact_untrusted_types_are_within_the_code_list(pipeline):
    assert set(models.untrusted_types(pipeline / "artifacts/model")) <= set(models.TRUSTED_TYPES)


def test_candidate_beats_the_dummy_in_cv_and_on_test(pipeline):
    cv = json.loads((pipeline / "reports/cv.json").read_text())
    chosen = cv["chosen"]
    assert chosen != "dummy" and cv["families"][chosen]["mean"] > cv["families"]["dummy"]["mean"] + 0.2
    assert json.loads((pipeline / "reports/metrics.json").read_text())["roc_auc"] > 0.8


def test_predictions_ignore_column_order_extra_columns_and_the_target(candidate, test_rows):
    pipeline, meta = candidate
    base = pipeline.predict_proba(test_rows)[:, 1]
    shuffled = test_rows[test_rows.columns[::-1]].assign(extra=1).drop(columns=[meta["target"]])
    np.testing.assert_array_equal(pipeline.predict_proba(shuffled)[:, 1], base)


def test_numbers_as_text_and_blanks_score_like_numbers(candidate, test_rows):
    pipeline, _ = candidate
    as_text = test_rows.astype({"total_charges": "str"})
    as_text.loc[as_text.index[:3], "total_charges"] = " "
    expected = test_rows.copy()
    expected.loc[expected.index[:3], "total_charges"] = np.nan
    np.testing.assert_allclose(pipeline.predict_proba(as_text)[:, 1], pipeline.predict_proba(expected)[:, 1])


def test_unseen_category_is_scored_finitely(candidate, test_rows):
    pipeline, _ = candidate
    odd = test_rows.head(20).assign(payment_method="Crypto", contract=None)
    assert np.isfinite(pipeline.predict_proba(odd)).all()


def test_threshold_is_the_saved_one(candidate):
    _, meta = candidate
    assert 0 < meta["threshold"] < 1 and meta["threshold_rule"] in ("max_f1", "min_cost")


@pytest.fixture(scope="module")
def test_scores(pipeline) -> pd.DataFrame:
    return pd.read_parquet(pipeline / "artifacts/evaluate/test_scores.parquet")


def test_gate_does_not_promote_a_worse_challenger_and_promotes_a_better_one(test_scores):
    y, candidate = test_scores["y"].to_numpy(), test_scores["probability"].to_numpy()
    constant = np.full(len(y), y.mean())
    worse = evaluate.paired_bootstrap_test(y, constant, candidate, margin=0.005, n_boot=300)
    assert evaluate.promotion_decision(worse)[0] is False
    better = evaluate.paired_bootstrap_test(y, candidate, constant, margin=0.005, n_boot=300)
    assert evaluate.promotion_decision(better)[0] is True
    same = evaluate.paired_bootstrap_test(y, candidate, candidate.copy(), margin=0.005, n_boot=300)
    assert evaluate.promotion_decision(same)[0] is False


@pytest.mark.parametrize("rule", ["max_f1", "min_cost"])
def test_threshold_rule_picks_what_it_says(test_scores, rule):
    y, p = test_scores["y"].to_numpy(), test_scores["probability"].to_numpy()
    chosen = selection.choose_threshold(y, p, rule, cost_fp=1.0, cost_fn=5.0)
    grid = np.unique(np.round(p, 6))
    if rule == "max_f1":
        best = max(f1_score(y, p >= t) for t in grid)
        assert f1_score(y, p >= chosen) == pytest.approx(best)
    else:
        cost = [np.sum((p >= t) & (y == 0)) + 5.0 * np.sum((p < t) & (y == 1)) for t in grid]
        chosen_cost = np.sum((p >= chosen) & (y == 0)) + 5.0 * np.sum((p < chosen) & (y == 1))
        assert chosen_cost == min(cost)


def test_linear_reason_codes_are_coefficient_times_deviation_from_training_mean(candidate, test_rows):
    pipeline, meta = candidate
    base = models.base_pipeline(pipeline)
    if not hasattr(base[-1], "coef_"):
        pytest.skip(f"candidate family {meta['family']} is not linear")
    rows = test_rows.head(50)
    Z = base[:-1].transform(rows)
    expected = base[-1].coef_[0] * (Z - np.asarray(meta["feature_means"]["means"]))
    got = models.contributions(pipeline, rows, meta["feature_means"]).to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)
    codes = models.reason_codes(pipeline, rows, meta["feature_means"], k=3)
    top = np.abs(expected).max(axis=1)
    np.testing.assert_allclose(np.abs(codes["contribution_1"]), top, atol=1e-6)
