"""Tutorial-pattern churn services that `bench/serve.py` compares against (uvicorn `--factory`).

Both take requests the way a typical blog post does: a hand-written pydantic request model and a
pandas DataFrame per request.

- `tutorial_app` ("tutorial, as written"): what the post ships. `get_dummies` is re-aligned to the
  training columns, then a StandardScaler and a RandomForest(100) trained at startup on the
  project's training split, with both `predict` and `predict_proba` per call. Its model AND its
  serving stack differ from churnlab's.
- `plain_app` ("plain, same pipeline"): the competent plain service over the SAME fitted pipeline
  that churnlab serves (the model folder in `$TUTORIAL_PIPELINE`, loaded by `models.load_model`).
  Columns are typed as in training, there is one `predict_proba` per call, and labels are cut at the
  saved threshold. Only the serving stack differs from churnlab's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]


class Customer(BaseModel):
    female: int
    senior_citizen: int
    partner: int
    dependents: int
    tenure: float
    phone_service: int
    multiple_lines: str
    internet_service: str
    online_security: str
    online_backup: str
    device_protection: str
    tech_support: str
    streaming_tv: str
    streaming_movies: str
    contract: str
    paperless_billing: int
    payment_method: str
    monthly_charges: float
    total_charges: float | None = None
    rownames: int | None = None


def _training_split() -> tuple[pd.DataFrame, pd.Series]:
    train = pd.read_parquet(ROOT / "artifacts/prepared/train.parquet")
    return train, (train.pop("churn") == "Yes").astype(int)


def _routes(score) -> FastAPI:
    "The two endpoints over `score(frame) -> list of {prediction, probability}`."
    app = FastAPI()

    @app.post("/predict")
    def predict(customer: Customer) -> dict:
        return score(pd.DataFrame([customer.model_dump()]))[0]

    @app.post("/predict_batch")
    def predict_batch(customers: list[Customer]) -> list[dict]:
        return score(pd.DataFrame([c.model_dump() for c in customers]))

    return app


def tutorial_app() -> FastAPI:
    "The blog post's service: its own random forest on get_dummies, predict and predict_proba per call."
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.preprocessing import StandardScaler

    train, y = _training_split()
    train = train.drop(columns=["rownames"])
    train["total_charges"] = train["total_charges"].fillna(train["total_charges"].median())
    X = pd.get_dummies(train, dtype=float)
    columns = X.columns
    scaler = StandardScaler().fit(X)
    model = RandomForestClassifier(n_estimators=100, random_state=42).fit(scaler.transform(X), y)

    def score(frame: pd.DataFrame) -> list[dict]:
        frame = frame.drop(columns=["rownames"])
        frame["total_charges"] = frame["total_charges"].fillna(0.0)
        features = pd.get_dummies(frame, dtype=float).reindex(columns=columns, fill_value=0.0)
        scaled = scaler.transform(features)
        labels, proba = model.predict(scaled), model.predict_proba(scaled)[:, 1]
        return [{"prediction": int(a), "probability": float(b)} for a, b in zip(labels, proba, strict=True)]

    return _routes(score)


def plain_app() -> FastAPI:
    "The plain service over churnlab's own fitted pipeline: typed columns, one predict_proba, the saved threshold."
    from churnlab import models

    pipeline, meta = models.load_model(Path(os.environ["TUTORIAL_PIPELINE"]))
    train, _ = _training_split()
    dtypes, threshold = train.dtypes.to_dict(), meta["threshold"]

    def score(frame: pd.DataFrame) -> list[dict]:
        frame = frame.reindex(columns=list(dtypes)).astype(dtypes)
        proba = pipeline.predict_proba(frame)[:, 1]
        return [{"prediction": int(p >= threshold), "probability": float(p)} for p in proba]

    return _routes(score)
