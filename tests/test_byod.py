"""Bringing your own data, as a new user does: the guide's worked example run verbatim, and a
spreadsheet export (amounts with thousands separators, a join date as text, customer numbers, a
surname column, a yes/no label) reproduced with only `data.path`, `data.target` and
`data.positive_label` edited, then split in time by its join date."""

from __future__ import annotations

import copy
import json
import re
import shutil

import httpx
import nbformat
import pandas as pd
import pytest
from conftest import BIN, LIGHT_PROFILE, ROOT, make_copy, run
from pydantic import TypeAdapter
from tables import bank_table
from test_serve import STOPPED, Server
from workspace import deep_update

from churnlab import config, monitor, schema

BYOD_PROFILE = deep_update(copy.deepcopy(LIGHT_PROFILE), {"tune": {"n_trials": 3}})
BANK_RUN = "dvc exp run -S data.path=data/bank.csv -S data.target=Exited -S data.positive_label=yes"


def _new_user_copy(tmp_path_factory, name: str):
    root = make_copy(tmp_path_factory.mktemp(name) / "project", BYOD_PROFILE)
    for key, value in (("user.name", "t"), ("user.email", "t@t")):  # `dvc exp run` commits experiments
        run(["git", "config", key, value], root)
    run([str(BIN / "churnlab"), "init"], root)
    return root


def _guide_commands() -> list[str]:
    "The bash block of the guide's mlc_churn example, line by line."
    cells = nbformat.read(ROOT / "nbs" / "guides" / "byod.ipynb", as_version=4).cells
    cell = next(c for c in cells if "## A worked example: mlc_churn" in c.source)
    block = re.search(r"```bash\n(.*?)```", cell.source, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def guide_example(tmp_path_factory):
    root = _new_user_copy(tmp_path_factory, "guide")
    outputs = [run(line.replace(".venv/bin/", f"{BIN}/"), root).stdout for line in _guide_commands()]
    return root, outputs


def test_the_guides_worked_example_runs_as_written(guide_example):
    root, outputs = guide_example
    assert any("data.positive_label=yes" in line for line in _guide_commands())
    contract = json.loads((root / "artifacts/prepared/schema.json").read_text())
    assert (contract["target"], contract["positive_label"], contract["classes"]) == ("churn", "yes", ["no", "yes"])
    skipped = {d["column"] for d in contract["decisions"] if d["decision"].endswith("skipped")}
    assert {"tenure", "monthly_charges", "total_charges"} <= skipped  # Telco's bounds, as shipped
    assert contract["columns"]["rownames"]["role"] == "id"  # mlc_churn has one too
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert 0.8 < metrics["roc_auc"] < 1.0


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    "The export reproduced with path/target/label only (kept aside), then again with its join date declared."
    root = _new_user_copy(tmp_path_factory, "bank")
    bank_table().to_csv(root / "data" / "bank.csv", index=False)
    run([str(BIN / "dvc"), "add", "data"], root)
    stratified = run(BANK_RUN, root)
    kept = tmp_path_factory.mktemp("bank-stratified")
    for name in ("artifacts/prepared", "artifacts/reference", "reports"):
        shutil.copytree(root / name, kept / name)
    dated = run([str(BIN / "dvc"), "exp", "run", "-S", "data.date_columns=[Joined]"], root)
    return root, stratified, kept, dated


def test_a_spreadsheet_export_reproduces_and_says_what_it_decided(bank):
    _, stratified, kept, _ = bank
    contract = json.loads((kept / "artifacts/prepared/schema.json").read_text())
    columns = contract["columns"]
    assert columns["Balance"]["role"] == "numeric" and columns["Balance"]["number_format"]["thousands"] == ","
    assert columns["EstimatedSalary"]["dtype"] == "float"
    assert (columns["Joined"]["role"], columns["Joined"]["declared"]) == ("date", False)
    assert columns["RowNumber"]["role"] == "id" and contract["split"]["strategy"] == "stratified"
    train = pd.read_parquet(kept / "artifacts/prepared/train.parquet")
    assert train["Balance"].dtype == "float64" and train["Balance"].max() > 100_000
    # every decision is printed with the line that changes it, and listed in the prepare report
    printed = stratified.stdout
    for words in (
        "Balance: numeric, numbers written as text",
        "To change: data.decimal: ','",
        "Joined: date (text that parses as dates), not declared",
        "date_columns: [Joined]",
        "CustomerId: numeric feature, a distinct whole number",
        "id_columns: [CustomerId]",
        "rownames: data.id_columns entry skipped",
        "remove 'tenure' from data.bounds",
        "Surname: high-cardinality categorical",
    ):
        assert words in printed, (words, printed[-3000:])
    report = (kept / "reports/prepare.ipynb").read_text()
    assert "What was decided" in report and "id_columns: [CustomerId]" in report
    metrics = json.loads((kept / "reports/metrics.json").read_text())
    assert 0.65 < metrics["roc_auc"] < 1.0
    encoding = json.loads((kept / "reports/cv.json").read_text())["target_encoding"]
    assert encoding["columns"] == ["Surname"] and not encoding["kept"], encoding  # a surname says nothing of churn
    assert len(encoding["folds"]) == BYOD_PROFILE["train"]["cv_folds"] and encoding["gain"] <= encoding["se"]


def test_the_served_schema_takes_numbers_for_the_exported_amounts(bank):
    _, _, kept, _ = bank
    contract = json.loads((kept / "artifacts/prepared/schema.json").read_text())
    record = TypeAdapter(schema.record_type(contract))
    properties = record.json_schema()["properties"]
    assert "number" in json.dumps(properties["Balance"]) and "string" not in json.dumps(properties["Balance"])
    sample = json.loads((kept / "reports/sample_request.json").read_text())
    assert isinstance(sample["Balance"], float) and sample["Joined"][:4].isdigit()  # ISO date
    assert record.validate_json(json.dumps(sample)) == sample


def test_true_false_flags_and_price_tiers_are_served_as_what_they_mean(bank, tmp_path):
    "A bool column is a boolean (JSON true/false), a 0/1 flag with blanks and two price tiers are numbers."
    root, _, kept, _ = bank
    columns = json.loads((kept / "artifacts/prepared/schema.json").read_text())["columns"]
    assert (columns["autopay"]["role"], columns["autopay"]["dtype"]) == ("boolean", "bool")
    assert (columns["complained"]["role"], columns["complained"]["dtype"]) == ("numeric", "float")
    assert (columns["price_tier"]["role"], columns["price_tier"]["dtype"]) == ("numeric", "float")
    assert columns["Geography"]["categories"] == ["France", "Germany", "Spain"]  # "Spain " trimmed
    sample = json.loads((root / "reports/sample_request.json").read_text())
    assert isinstance(sample["autopay"], bool)
    server = Server(root, tmp_path).wait_ready()
    try:
        body = {**sample, "autopay": True, "complained": 1, "price_tier": 19.99}
        answer = httpx.post(f"{server.url}/predict", json=body)
        assert answer.status_code == 200 and 0 <= answer.json()["probability"] <= 1, answer.text
        padded = httpx.post(f"{server.url}/predict", json={**body, "Geography": f"{body['Geography']} "}).json()
        assert padded["probability"] == pytest.approx(answer.json()["probability"], abs=1e-9)
        batch = httpx.post(f"{server.url}/predict_batch", json=[sample, body, sample]).json()["predictions"]
        assert batch[1]["probability"] == pytest.approx(answer.json()["probability"], abs=1e-9)  # alone = in a batch
        for field, bad in (("autopay", "maybe"), ("autopay", 1), ("complained", "abc"), ("price_tier", "abc")):
            refused = httpx.post(f"{server.url}/predict", json={**body, field: bad})
            assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == field, refused.text
    finally:
        assert server.stop() in STOPPED


def test_surname_like_columns_raise_no_drift_on_resamples_of_the_training_data(bank):
    _, _, kept, _ = bank
    profile, _, _ = monitor.read_reference(kept / "artifacts/reference")
    train = pd.read_parquet(kept / "artifacts/prepared/train.parquet")
    settings = config.read_yaml((ROOT / "params.yaml").read_text())["monitor"]
    warnings = 0
    for seed in range(20):
        window = train.sample(500, replace=True, random_state=seed)
        report = monitor.monitor_window(profile, window, settings)
        warnings += any("Surname" in w["message"] for w in report["warnings"] + report["alerts"])
    assert warnings <= 1, warnings
    unchanged = json.loads((kept / "reports/monitoring.json").read_text())
    assert not unchanged["features"]["Surname"]["drift"]


def test_a_join_date_makes_a_cohort_split_that_is_explained_and_monitored_sensibly(bank):
    root, _, _, dated = bank
    contract = json.loads((root / "artifacts/prepared/schema.json").read_text())
    assert contract["split"] == {**contract["split"], "strategy": "time", "order_column": "Joined"}
    assert "Joined: time split" in dated.stdout and "Tenure: moves with Joined" in dated.stdout
    assert "cohort split" in dated.stdout
    report = json.loads((root / "reports/monitoring.json").read_text())
    assert report["alerts"] == [] and report["performance"] is None  # a sample of the training period
    assert "later_period" in report and report["later_period"]["features"]["Tenure"]["drift"]
