"""Feature blocks: properties that must hold for any data (hypothesis), on the real pipeline objects.

For frames drawn at random (sizes, missing shares, magnitudes, levels, dates with gaps), every
optional block switched on: the output is finite even for unseen levels, missing keys and groups
whose values are all missing; transforming test rows leaves the fitted state unchanged; and a skops
round trip with the project's trusted-type list gives identical output.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnlab import features, models

CONTRACT = {
    "columns": {
        "when": {"role": "date", "dtype": "datetime"},
        "plan": {"role": "categorical", "dtype": "str"},
        "city": {"role": "high_cardinality", "dtype": "str"},
        "usage": {"role": "numeric", "dtype": "float"},
        "price": {"role": "numeric", "dtype": "float"},
        "age": {"role": "numeric", "dtype": "float"},
    }
}
ALL_ON = {
    **{name: {"enabled": True} for name in ("date_parts", "group_aggregates", "ratios", "binning", "polynomial")},
    "select_k_best": {"enabled": True, "k": 25},
}


def make_frame(rng: np.random.Generator, n: int, missing: float, scale: float, levels: list[str],
               constant_age: bool) -> pd.DataFrame:  # fmt: skip
    "A raw frame in the contract above: gaps everywhere, a zero-heavy column, optionally a constant one."

    def gaps(values: np.ndarray) -> np.ndarray:
        return np.where(rng.uniform(size=n) < missing, np.nan, values)

    return pd.DataFrame({
        "when": pd.Series(pd.date_range("2020-01-01", periods=n, freq="7D").astype("str")).where(
            rng.uniform(size=n) >= missing),
        "plan": pd.Series(rng.choice(levels, n)).where(rng.uniform(size=n) >= missing),
        "city": [f"c{i}" for i in rng.integers(0, 3 * n, n)],
        "usage": gaps(rng.normal(0, scale, n)),
        "price": gaps(rng.choice([0.0, 1.0, -2.5, scale], n)),
        "age": gaps(np.full(n, 40.0) if constant_age else rng.integers(18, 90, n).astype(float)),
    })  # fmt: skip


@st.composite
def frames(draw) -> tuple[pd.DataFrame, np.ndarray]:
    "A frame drawn at random and a binary target with at least 10 of each class."
    n = draw(st.integers(24, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frame = make_frame(
        rng,
        n,
        missing=draw(st.floats(0.0, 0.6)),
        scale=draw(st.sampled_from([1e-6, 1.0, 1e3, 1e9])),
        levels=draw(st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=1, max_size=6, unique=True)),
        constant_age=draw(st.booleans()),
    )
    y = np.r_[np.zeros(n // 2), np.ones(n - n // 2)].astype(int)
    return frame, rng.permutation(y)


def fitted(frame: pd.DataFrame, y: np.ndarray, high_cardinality: str = "target", family: str = "logreg"):
    spec, _ = features.feature_spec(CONTRACT, {"blocks": ALL_ON, "high_cardinality": high_cardinality,
                                               "onehot_min_frequency": 1})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant columns: bins merged, F statistics undefined
        return models.make_pipeline(spec, family, {}, 0).fit(frame, y)


def unseen(frame: pd.DataFrame) -> pd.DataFrame:
    "Test rows: new plan levels, new cities, missing keys, dates outside the training range."
    out = frame.copy()
    out["plan"] = ["never-seen", None] * (len(out) // 2) + ["never-seen"] * (len(out) % 2)
    out["city"] = "brand-new"
    out["when"] = "2035-06-30"
    return out


PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(frames())
def test_no_nan_or_inf_out_even_for_unseen_levels_and_empty_groups(sample):
    frame, y = sample
    model = fitted(frame, y)
    pre = model[:-1]
    for rows in (frame, unseen(frame)):
        Z = pre.transform(rows)
        assert np.isfinite(Z).all()
        assert Z.shape[1] == len(pre.get_feature_names_out()) == min(25, pre[:-1].transform(rows).shape[1])
        assert np.isfinite(model.predict_proba(rows)).all()


@PROPERTY
@given(frames())
def test_test_rows_leave_the_fitted_state_unchanged(sample):
    frame, y = sample
    model = fitted(frame, y)
    state = pickle.dumps(model)
    model.predict_proba(unseen(frame))
    model[:-1].transform(frame.sample(frac=1.0, random_state=0))
    assert pickle.dumps(model) == state


@PROPERTY
@given(frames(), st.sampled_from(["logreg", "hist_gb"]))
def test_skops_round_trip_with_the_trusted_list_gives_identical_output(sample, family):
    frame, y = sample
    model = fitted(frame, y, family=family)
    loaded = sio.loads(sio.dumps(model), trusted=models.TRUSTED_TYPES)
    for rows in (frame, unseen(frame)):
        np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize("method", ["smote", "undersample"])
def test_resampling_happens_while_fitting_only_and_round_trips(method):
    frame = make_frame(np.random.default_rng(0), 120, missing=0.1, scale=10.0, levels=["a", "b"], constant_age=False)
    y = np.r_[np.zeros(100), np.ones(20)].astype(int)  # imbalanced: the sampler has work to do
    spec, _ = features.feature_spec(CONTRACT, {"blocks": {"resample": {"method": method}}})
    model = models.make_pipeline(spec, "logreg", {}, 0).fit(frame, y)
    sampler = model.named_steps["resample"]
    assert dict(sampler.sampling_strategy_) == ({1: 80} if method == "smote" else {0: 20})  # to 100 vs 100, 20 vs 20
    assert len(model.predict_proba(frame)) == len(frame)  # scoring keeps every row
    loaded = sio.loads(sio.dumps(model), trusted=models.TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
