"""Data behaviour on the real default data: the inferred contract, the splits, refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BIN, make_copy, run

from churnlab import data


@pytest.fixture(scope="module")
def telco(pipeline) -> pd.DataFrame:
    return pd.read_csv(pipeline / "data" / "wa_churn.csv")


def test_default_data_is_the_telco_churn_table(telco):
    assert telco.shape == (7043, 21)
    assert round((telco["churn"] == "Yes").mean(), 3) == 0.265


def test_contract_of_telco(pipeline):
    contract = json.loads((pipeline / "artifacts/prepared/schema.json").read_text())
    roles = {c: s["role"] for c, s in contract["columns"].items()}
    assert roles["rownames"] == "id" and roles["tenure"] == "numeric" and roles["contract"] == "categorical"
    assert roles["female"] == "boolean" and "churn" not in roles
    assert contract["columns"]["total_charges"]["missing_share"] > 0
    assert contract["columns"]["contract"]["categories"] == ["Month-to-month", "One year", "Two year"]


def test_splits_are_disjoint_seeded_and_stratified(pipeline, telco):
    parts = {n: pd.read_parquet(pipeline / f"artifacts/prepared/{n}.parquet") for n in ("train", "test", "holdout")}
    ids = [set(p["rownames"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == len(telco)
    rates = [(p["churn"] == "Yes").mean() for p in parts.values()]
    assert max(rates) - min(rates) < 0.01
    again = data.split_frame(telco, data.encode_target(telco["churn"], "Yes"), seed=42)
    assert sorted(again[1]["rownames"]) == sorted(parts["test"]["rownames"])


def test_prepared_rows_keep_the_raw_feature_columns_and_the_target(pipeline, telco):
    train = pd.read_parquet(pipeline / "artifacts/prepared/train.parquet")
    assert list(train.columns) == list(telco.columns[[0, *range(2, 21), 1]]) or set(train.columns) == set(telco.columns)
    assert train["total_charges"].dtype == "float64"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda f: f.assign(churn=np.where(f.index % 3 == 0, "Maybe", f["churn"])), "column 'churn': two classes"),
        (lambda f: f.drop(columns="churn"), "column 'churn': target present"),
        (lambda f: f.assign(tenure=f["tenure"].astype(float).where(f.index != 5, np.inf)), "column 'tenure': finite"),
        (lambda f: f.assign(rownames=f["rownames"].where(f.index != 9, 1)), "column 'rownames': unique ids"),
        (
            lambda f: f.assign(monthly_charges=f["monthly_charges"].astype(str).where(f.index != 4, "twelve")),
            "column 'monthly_charges': numeric",
        ),
    ],
)
def test_prepare_refuses_bad_data_with_a_specific_message(tmp_path_factory, telco, mutate, expected):
    root = make_copy(tmp_path_factory.mktemp("bad") / "project")
    mutate(telco).to_csv(root / "data" / "bad.csv", index=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["path"] = "data/bad.csv"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([str(BIN / "dvc"), "repro", "prepare"], root, check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (root / "artifacts/prepared/train.parquet").exists()
    assert not (root / "reports/prepare.ipynb").exists()
