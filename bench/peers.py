"""Library defaults and AutoGluon on one train/test pair: what a user would otherwise reach for.

Run by `bench/datasets.py` with the Python of the separate virtualenv it builds (AutoGluon pins
older libraries than the project's lock), so this file imports nothing from churnlab:

    python bench/peers.py TRAIN.parquet TEST.parquet OUT.json --time-limit SECONDS

Both frames hold the contract's feature columns (what the pipeline's model reads, ids and dropped
columns removed) and `__target__` (0/1). Each peer is fitted on every training row with its
library's defaults and a seed, and scores every test row:

- `catboost`: CatBoostClassifier, the text columns as `cat_features`;
- `lightgbm`: LGBMClassifier, the text columns as pandas categories (its categorical splits);
- `xgboost`: XGBClassifier, `enable_categorical` on the same categories (`hist`, its default);
- `autogluon`: TabularPredictor(eval_metric="roc_auc").fit(presets="medium_quality",
  time_limit=SECONDS): AutoGluon's weighted ensemble of its default models (LightGBM, CatBoost,
  XGBoost, forests, extra trees, k-NN and its two networks, on the CPU torch wheel the project
  pins) under a wall-clock budget: the benchmark passes the time our `dvc repro` took on the same
  data. It may finish sooner: `medium_quality` does not bag or stack.

Dates become days since 1970 for the three libraries (they take no datetime); AutoGluon gets them
as they are. OUT.json holds each peer's test probabilities and fit-and-score seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import pandas as pd

TARGET = "__target__"
SEED = 0


def library_frames(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    "Features for the three libraries: dates as days, booleans as 0/1, text as categories with train's levels."
    X, X_test = train.drop(columns=TARGET), test.drop(columns=TARGET)
    categorical = []
    for column in X.columns:
        values = X[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            X[column], X_test[column] = _days(values), _days(X_test[column])
        elif pd.api.types.is_bool_dtype(values):
            X[column], X_test[column] = values.astype(float), X_test[column].astype(float)
        elif not pd.api.types.is_numeric_dtype(values):
            levels = pd.Index(sorted(values.dropna().astype(str).unique()))
            X[column] = pd.Categorical(values.astype("string"), categories=levels)
            X_test[column] = pd.Categorical(X_test[column].astype("string"), categories=levels)
            categorical.append(column)
    return X, X_test, categorical


def naive_dates(frame: pd.DataFrame) -> pd.DataFrame:
    "Time-zone-aware dates as naive UTC (what the libraries and AutoGluon's date features take)."
    aware = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    return frame.assign(**{c: frame[c].dt.tz_convert(None) for c in aware})


def _days(values: pd.Series) -> pd.Series:
    return (pd.to_datetime(values) - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400


def catboost_default(X, y, X_test, categorical) -> np.ndarray:
    from catboost import CatBoostClassifier

    def text(frame: pd.DataFrame) -> pd.DataFrame:  # CatBoost wants strings; a blank is its own level
        return frame.assign(**{c: frame[c].astype("string").fillna("<missing>").astype(str) for c in categorical})

    model = CatBoostClassifier(random_seed=SEED, verbose=0, cat_features=categorical, allow_writing_files=False)
    return model.fit(text(X), y).predict_proba(text(X_test))[:, 1]


def lightgbm_default(X, y, X_test, categorical) -> np.ndarray:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(random_state=SEED, verbose=-1).fit(X, y).predict_proba(X_test)[:, 1]


def xgboost_default(X, y, X_test, categorical) -> np.ndarray:
    from xgboost import XGBClassifier

    model = XGBClassifier(enable_categorical=True, random_state=SEED)
    return model.fit(X, y).predict_proba(X_test)[:, 1]


def autogluon_medium(train: pd.DataFrame, test: pd.DataFrame, time_limit: float) -> np.ndarray:
    from autogluon.tabular import TabularPredictor

    with tempfile.TemporaryDirectory() as folder:
        predictor = TabularPredictor(label=TARGET, eval_metric="roc_auc", path=folder, verbosity=0)
        predictor.fit(train, presets="medium_quality", time_limit=time_limit)
        return predictor.predict_proba(test.drop(columns=TARGET))[1].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("output")
    parser.add_argument("--time-limit", type=float, required=True, help="AutoGluon's wall-clock budget (s)")
    parser.add_argument("--peers", nargs="*", default=["catboost", "lightgbm", "xgboost", "autogluon"])
    args = parser.parse_args()
    train, test = naive_dates(pd.read_parquet(args.train)), naive_dates(pd.read_parquet(args.test))
    X, X_test, categorical = library_frames(train, test)
    y = train[TARGET].to_numpy()
    fitters = {"catboost": catboost_default, "lightgbm": lightgbm_default, "xgboost": xgboost_default}
    results = {}
    for peer in args.peers:
        started = time.perf_counter()
        if peer == "autogluon":
            proba = autogluon_medium(train, test, args.time_limit)
        else:
            proba = fitters[peer](X, y, X_test, categorical)
        results[peer] = {"proba": [float(p) for p in proba], "seconds": round(time.perf_counter() - started, 1)}
        print(f"{peer}: {results[peer]['seconds']} s", flush=True)
    with open(args.output, "w") as out:  # noqa: PTH123 (standalone: no project helpers in this environment)
        json.dump(results, out)


if __name__ == "__main__":
    main()
