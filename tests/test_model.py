"""Model behaviour: the candidate is safe to load, better than chance, and consistent."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from churnlab import evaluate, explain, models, selection


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
    chosen = cv["chosen"]  # a family, or the blend of several (train.ensemble: auto), reported apart
    mean = cv["ensemble"]["mean"] if chosen == "ensemble" else cv["families"][chosen]["mean"]
    assert chosen != "dummy" and mean > cv["families"]["dummy"]["mean"] + 0.2
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


def test_reason_codes_add_up_to_the_candidates_output_on_raw_columns(candidate, test_rows):
    "The pipeline's own candidate: exact contributions on raw columns + base = its log-odds, on 1,000 test rows."
    pipeline, meta = candidate
    explainer = explain.make_explainer(pipeline, meta["feature_means"])
    rows = test_rows.head(1000)
    Z = explain.transformed_features(pipeline, rows)
    values, base = explain.contributions(explainer, Z)
    assert explainer.exact, explainer.explains
    assert set(values.columns) <= set(meta["contract"]["columns"])  # raw columns, no one-hot levels
    gap = np.abs(values.sum(axis=1).to_numpy() + base - explain.model_output(explainer, pipeline, Z)).max()
    assert gap < 1e-6, gap
    if explainer.output == "log-odds" and meta.get("calibration") in (None, "sigmoid"):
        served = pipeline.predict_proba(rows)[:, 1]
        assert np.abs(values.sum(axis=1).to_numpy() + base - np.log(served / (1 - served))).max() < 1e-6
    codes = explain.reason_codes(explainer, Z[:50], k=3)
    top = values.head(50).abs().max(axis=1).to_numpy()
    np.testing.assert_allclose(np.abs(codes["contribution_1"]), top, atol=1e-6)
