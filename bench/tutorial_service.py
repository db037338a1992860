"""The tutorial-style churn service that `bench/serve.py` compares against (run by uvicorn).

What a typical blog post ships: a hand-written request model, a pandas DataFrame per request,
`get_dummies` re-aligned to the training columns, a StandardScaler and a RandomForest(100), and
both `predict` and `predict_proba` per call. It trains at startup on the project's training split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

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


train = pd.read_parquet(ROOT / "artifacts/prepared/train.parquet")
y = (train.pop("churn") == "Yes").astype(int)
train = train.drop(columns=["rownames"])
train["total_charges"] = train["total_charges"].fillna(train["total_charges"].median())
X = pd.get_dummies(train, dtype=float)
columns = X.columns
scaler = StandardScaler().fit(X)
model = RandomForestClassifier(n_estimators=100, random_state=42).fit(scaler.transform(X), y)
app = FastAPI()


def _score(frame: pd.DataFrame) -> list[dict]:
    frame = frame.drop(columns=["rownames"])
    frame["total_charges"] = frame["total_charges"].fillna(0.0)
    features = pd.get_dummies(frame, dtype=float).reindex(columns=columns, fill_value=0.0)
    scaled = scaler.transform(features)
    labels, proba = model.predict(scaled), model.predict_proba(scaled)[:, 1]
    return [{"prediction": int(a), "probability": float(b)} for a, b in zip(labels, proba, strict=True)]


@app.post("/predict")
def predict(customer: Customer) -> dict:
    return _score(pd.DataFrame([customer.model_dump()]))[0]


@app.post("/predict_batch")
def predict_batch(customers: list[Customer]) -> list[dict]:
    return _score(pd.DataFrame([c.model_dump() for c in customers]))
