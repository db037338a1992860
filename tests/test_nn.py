"""The PyTorch tabular network inside the project's pipeline: persistence, determinism, sklearn fit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import torch
from sklearn.model_selection import StratifiedKFold, cross_val_score

from churnlab import data, features, models
from churnlab.nn import TabularNNClassifier

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_nn_fixture import fixture_data  # noqa: E402

SMALL = {"max_epochs": 15, "device": "cpu"}


@pytest.fixture(scope="module")
def telco(pipeline):
    contract = json.loads((pipeline / "artifacts/prepared/schema.json").read_text())
    train = pd.read_parquet(pipeline / "artifacts/prepared/train.parquet").head(2000)
    spec, _ = features.feature_spec(contract, {})
    return train.drop(columns=["churn"]), data.encode_target(train["churn"], "Yes"), spec


@pytest.mark.parametrize("embeddings", [False, True])
def test_pipeline_round_trip_through_skops_gives_identical_probabilities(telco, tmp_path, embeddings):
    X, y, spec = telco
    fitted = models.make_pipeline(spec, "nn", {**SMALL, "embeddings": embeddings}).fit(X, y)
    models.save_model(fitted, {"threshold": 0.5}, tmp_path / "model")
    assert set(models.untrusted_types(tmp_path / "model")) <= set(models.TRUSTED_TYPES)
    loaded, _ = models.load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_two_fits_with_one_seed_agree_exactly_on_cpu(telco):
    X, y, spec = telco
    a = models.make_pipeline(spec, "nn", SMALL, seed=3).fit(X, y).predict_proba(X)
    b = models.make_pipeline(spec, "nn", SMALL, seed=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_works_in_cross_val_score_on_numpy_and_in_a_pipeline_on_dataframes(telco):
    X, y, spec = telco
    Z = features.build_preprocessor(spec).fit_transform(X)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    on_numpy = cross_val_score(TabularNNClassifier(**SMALL), Z, y, cv=folds, scoring="roc_auc")
    on_frame = cross_val_score(models.make_pipeline(spec, "nn", SMALL), X, y, cv=folds, scoring="roc_auc")
    assert on_numpy.mean() > 0.75 and on_frame.mean() > 0.75


def test_a_network_trained_on_a_gpu_loads_and_predicts_on_cpu():
    meta = json.loads((FIXTURES / "nn_gpu.json").read_text())
    clf = sio.load(FIXTURES / "nn_gpu.skops", trusted=models.TRUSTED_TYPES)
    on = next(clf.net_.parameters()).device.type
    assert clf.device == "cuda" and on == ("cuda" if torch.cuda.is_available() else "cpu")
    X, _ = fixture_data()
    cpu = clf.predict_proba(X[:50])[:, 1]
    gpu = np.asarray(meta["probabilities"])  # computed on the GPU in bfloat16
    assert np.abs(cpu - gpu).max() < 0.02
    assert np.corrcoef(np.argsort(np.argsort(cpu)), np.argsort(np.argsort(gpu)))[0, 1] > 0.99
