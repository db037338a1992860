"""Model behaviour: the candidate is safe to load, better than chance, and consistent."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churnlab import models


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
