"""Data behaviour on the real default data: the inferred contract, the splits, refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BIN, ROOT, make_copy, run

from churnlab import config, data, splits, workflow


@pytest.fixture(scope="module")
def telco(tmp_path_factory) -> pd.DataFrame:
    "The default raw table (the checkout's copy, else written as `make_copy` writes it)."
    path = ROOT / "data" / "wa_churn.csv"
    if not path.exists():
        path = tmp_path_factory.mktemp("telco") / "wa_churn.csv"
        data.write_default_data(path)
    return pd.read_csv(path)


def test_default_data_is_the_telco_churn_table(telco):
    assert telco.shape == (7043, 21)
    assert round((telco["churn"] == "Yes").mean(), 3) == 0.265


def test_contract_of_telco(pipeline):
    contract = json.loads((pipeline / "artifacts/prepared/schema.json").read_text())
    roles = {c: s["role"] for c, s in contract["columns"].items()}
    assert roles["rownames"] == "id" and roles["tenure"] == "numeric" and roles["contract"] == "categorical"
    assert roles["female"] == "numeric" and "churn" not in roles  # a 0/1 flag is a number (JSON 1 at the API)
    assert contract["columns"]["total_charges"]["missing_share"] > 0
    assert contract["columns"]["contract"]["categories"] == ["Month-to-month", "One year", "Two year"]


def test_splits_are_disjoint_seeded_and_stratified(pipeline, telco):
    parts = {n: pd.read_parquet(pipeline / f"artifacts/prepared/{n}.parquet") for n in ("train", "test", "holdout")}
    ids = [set(p["rownames"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == len(telco)
    rates = [(p["churn"] == "Yes").mean() for p in parts.values()]
    assert max(rates) - min(rates) < 0.03  # a hash split: equal in expectation (SE of a rate here ~0.012)
    again = splits.split_frame(telco, None, seed=42, key_column="rownames")  # the id decides, not the row order
    assert sorted(again[1]["rownames"]) == sorted(parts["test"]["rownames"])
    shuffled = splits.split_frame(telco.sample(frac=1, random_state=0), None, seed=42, key_column="rownames")
    assert sorted(shuffled[1]["rownames"]) == sorted(parts["test"]["rownames"])


def test_prepared_rows_keep_the_raw_feature_columns_and_the_target(pipeline, telco):
    train = pd.read_parquet(pipeline / "artifacts/prepared/train.parquet")
    assert list(train.columns) == list(telco.columns[[0, *range(2, 21), 1]]) or set(train.columns) == set(telco.columns)
    assert train["total_charges"].dtype == "float64"


def _csv(frame: pd.DataFrame, path, **kw) -> None:
    frame.to_csv(path, index=False, **kw)


def _with_signup(frame: pd.DataFrame, bad: str | None) -> pd.DataFrame:
    "A date column in mixed formats (which parse), and optionally one entry that is no date."
    formats = ["2024-01-15", "15 January 2024", "01/15/2024", "Mon, 15 Jan 2024"]
    signup = pd.Series([formats[i % 4] for i in range(len(frame))])
    return frame.assign(signup=signup.where(frame.index != 7, bad) if bad else signup)


BAD_DATA = {
    # case: (write the file, `data` params, expected words of the report)
    "three classes": (lambda f, p: _csv(f.assign(churn=np.where(f.index % 3 == 0, "Maybe", f["churn"])), p), {},
                      "column 'churn': two classes"),
    "no target": (lambda f, p: _csv(f.drop(columns="churn"), p), {}, "column 'churn': target present"),
    "no positive label": (lambda f, p: _csv(f.assign(churn=f["churn"].replace("Yes", "Y")), p), {},
                          "column 'churn': positive_label present"),
    "infinity": (lambda f, p: _csv(f.assign(tenure=f["tenure"].astype(float).where(f.index != 5, np.inf)), p), {},
                 "column 'tenure': finite"),
    "duplicate ids": (lambda f, p: _csv(f.assign(rownames=f["rownames"].where(f.index != 9, 1)), p), {},
                      "column 'rownames': unique ids"),
    "text in a number": (
        lambda f, p: _csv(f.assign(monthly_charges=f["monthly_charges"].astype(str).where(f.index != 4, "twelve")), p),
        {}, "column 'monthly_charges': numeric"),
    "all missing": (lambda f, p: _csv(f.assign(tenure=np.nan), p), {}, "column 'tenure': not all missing"),
    "constant": (lambda f, p: _csv(f.assign(contract="One year"), p), {}, "column 'contract': not constant"),
    "empty file": (lambda f, p: p.write_bytes(b""), {}, "non-empty file"),
    "wrong delimiter": (lambda f, p: _csv(f, p, sep=";"), {}, "delimiter"),
    "a date that is no date": (lambda f, p: _csv(_with_signup(f, "soon"), p), {"date_columns": ["signup"]},
                               "column 'signup': date"),
    "a declared column absent": (lambda f, p: _csv(f, p), {"date_columns": ["signup"]},
                                 "column 'signup': declared column present"),
}  # fmt: skip


@pytest.fixture(scope="module")
def prepared_copy(tmp_path_factory) -> tuple:
    "A copy whose prepare stage ran once on good data, and the bytes of its declared outputs."
    root = make_copy(tmp_path_factory.mktemp("bad") / "project")
    run([str(BIN / "dvc"), "repro", "prepare"], root)
    names = (
        "artifacts/prepared/train.parquet",
        "artifacts/prepared/test.parquet",
        "artifacts/prepared/holdout.parquet",
        "artifacts/prepared/schema.json",
        "reports/prepare.ipynb",
    )
    outputs = [root / name for name in names]
    return root, {p: p.read_bytes() for p in outputs}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_every_contract_rule_names_the_column_the_rule_and_the_fix(telco, tmp_path, case):
    "What the prepare stage runs, in process: each bad file is refused with one message naming column, rule, fix."
    write, data_params, expected = BAD_DATA[case]
    (tmp_path / "data").mkdir()
    write(telco, tmp_path / "data" / "bad.csv")
    params = config.params_section("data", root=ROOT) | {"path": "data/bad.csv", **data_params}
    with pytest.raises(data.DataContractError) as refused:
        raw = data.read_tables(data.expand_paths(params["path"], tmp_path), **data.csv_dialect(params))
        workflow.prepare_in_memory(raw, {"data": params, "prepare": config.params_section("prepare", root=ROOT)})
    message = str(refused.value)
    assert expected in message and "Fix: " in message and len(message.splitlines()) <= 4, message


# Through `dvc repro`: a reading error, a rule of the contract and a declared column that is wrong; every rule
# takes this same path (the runner prints the DataContractError's message), checked above in process.
END_TO_END = ("empty file", "three classes", "a date that is no date")


@pytest.mark.parametrize("case", END_TO_END)
def test_prepare_refuses_bad_data_and_leaves_its_outputs_untouched(prepared_copy, telco, case):
    root, before = prepared_copy
    write, data_params, expected = BAD_DATA[case]
    write(telco, root / "data" / "bad.csv")
    params_file = root / "params.yaml"
    shipped = params_file.read_text()
    params = yaml.safe_load(shipped)
    params["data"] |= {"path": "data/bad.csv", **data_params}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = run([str(BIN / "dvc"), "repro", "prepare"], root, check=False)
    finally:
        params_file.write_text(shipped)
        (root / "data" / "bad.csv").unlink()
    assert result.returncode != 0
    # the stage ends with the contract's message alone: column, rule and fix, in at most 5 lines
    message = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("ERROR: failed")]
    assert len(message) <= 5 and "Traceback" not in result.stderr, result.stderr
    assert expected in "\n".join(message) and "Fix: " in "\n".join(message), result.stderr
    assert message[0].startswith("prepare failed: ") and message[-1] == "(full log: reports/.tmp/prepare.log)"
    # the outputs are declared `persist`, and written only when every rule holds: exactly as before
    assert all(p.read_bytes() == content for p, content in before.items())
    assert (
        not (root / "reports/.tmp/prepare.ipynb").exists()
        or "DataContractError" in (root / "reports/.tmp/prepare.ipynb").read_text()
    )  # the failed run's notebook stays aside, out of the outputs


def test_dates_in_mixed_formats_parse_to_the_same_day(telco):
    parsed = data.parse_dates(_with_signup(telco.head(8), None)["signup"])
    assert parsed.dt.normalize().nunique() == 1 and parsed.notna().all()
