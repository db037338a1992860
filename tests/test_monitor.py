"""Monitoring: drift on real Telco windows, the monitor stage's demo batches, `churnlab monitor`
(file and prediction-log windows, labels, webhook, Pushgateway, textfile, history, exit codes) and
`--retrain` (a new data version and a new model version through the promotion gate).

The retraining test changes the shared pipeline copy, so conftest runs it after every other test.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
from datetime import UTC, datetime

import numpy as np
import orjson
import pandas as pd
import pytest
import yaml
from conftest import BIN, dvc, run

from churnlab import drift, monitor, predlog

SETTINGS_KEYS = ("dataset_drift", "drift_share", "features", "prediction_drift", "performance", "alerts")


@pytest.fixture(scope="module")
def telco(pipeline):
    "Every prepared Telco row, the contract and the stored monitoring settings."
    frames = [pd.read_parquet(pipeline / f"artifacts/prepared/{s}.parquet") for s in ("train", "test", "holdout")]
    contract = json.loads((pipeline / "artifacts/prepared/schema.json").read_text())
    settings = yaml.safe_load((pipeline / "params.yaml").read_text())["monitor"]
    return pd.concat(frames, ignore_index=True), contract, settings


def test_random_splits_raise_no_dataset_drift(telco):
    "20 seeded random splits of the same data: at most 2 flag any column, none is dataset drift."
    rows, contract, settings = telco
    flagged_splits, domain_aucs = 0, []
    for seed in range(20):
        shuffled = rows.sample(frac=1.0, random_state=seed)
        reference, current = shuffled.iloc[:5000], shuffled.iloc[5000:6000]  # a small window: 1,000 rows
        profile = drift.profile_reference(reference, contract)
        report = monitor.monitor_window(profile, current, settings, reference_sample=reference if seed < 3 else None)
        assert not report["dataset_drift"] and report["alerts"] == [], (seed, report["alerts"])
        flagged_splits += any(r["drift"] for r in report["features"].values())
        if report["multivariate"]:
            domain_aucs.append(report["multivariate"]["roc_auc"])
    assert flagged_splits <= 2
    assert max(domain_aucs) < settings["domain_auc_threshold"], domain_aucs


def test_shifted_columns_are_flagged_and_untouched_ones_are_not(telco):
    rows, contract, settings = telco
    reference, current = rows.iloc[:5000], rows.iloc[5000:6000].copy()
    current["tenure"] = current["tenure"] + 0.5 * reference["tenure"].std()
    current.loc[current.index[:300], "payment_method"] = "Mailed check"
    report = monitor.monitor_window(drift.profile_reference(reference, contract), current, settings)
    drifted = {c for c, r in report["features"].items() if r["drift"]}
    assert {"tenure", "payment_method"} <= drifted and len(drifted - {"tenure", "payment_method"}) <= 1, drifted


def test_the_monitor_stage_reports_its_demo_batches(pipeline):
    report = json.loads((pipeline / "reports/monitoring.json").read_text())
    assert set(SETTINGS_KEYS) <= set(report) and report["batch"] == "unchanged" and not report["simulated"]
    assert not report["dataset_drift"] and report["alerts"] == [] and report["performance"]["rows"] > 500
    shifted = report["simulated_batches"]["shifted"]
    assert shifted["simulated"] and "monthly_charges x 1.2" in shifted["shift"]
    drifted = {c for c, r in shifted["features"].items() if r["drift"]}
    assert {"monthly_charges", "contract"} <= drifted and len(drifted - {"monthly_charges", "contract"}) <= 1
    assert not shifted["dataset_drift"] and shifted["warnings"][0]["type"] == "feature_drift"
    assert {a["type"] for a in shifted["alerts"]} == {"multivariate_drift"} and report["multivariate"]["roc_auc"] < 0.6
    assert shifted["prediction_drift"]["statistic"] > report["prediction_drift"]["statistic"]  # the scores moved
    estimated, realised = report["estimated_performance"], report["performance"]["metrics"]
    assert estimated["estimated"] and estimated["rows"] == report["rows"] and estimated["labelled"]["agree"]
    assert estimated["trusted"] and abs(estimated["metrics"]["roc_auc"] - realised["roc_auc"]) < 0.05
    low, high = estimated["intervals"]["roc_auc"]
    assert low < estimated["metrics"]["roc_auc"] < high and high - low < 0.15
    assert shifted["estimated_performance"]["estimated"]  # computed on the shifted batch too
    scores_reference = json.loads((pipeline / "artifacts/reference/scores.json").read_text())
    candidate = scores_reference["estimation"][scores_reference["candidate"]]
    assert candidate["check"]["holds"] and abs(candidate["test_estimated_roc_auc"] - candidate["test_roc_auc"]) < 0.03
    for name in ("unchanged", "shifted"):
        assert (pipeline / f"reports/monitoring/{name}.png").stat().st_size > 10_000
    profile = json.loads((pipeline / "artifacts/reference/profile.json").read_text())
    assert "rownames" not in profile["columns"] and profile["columns"]["tenure"]["kind"] == "numeric"


class Receiver:
    "A local HTTP server that records every request (the webhook and the Pushgateway stand-in)."

    def __init__(self):
        self.requests = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.command, self.path, body))
                self.send_response(200)
                self.end_headers()

            do_POST = do_PUT = _record

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def pushgateway_configured(pipeline, receiver):
    "params.yaml of the pipeline copy with `monitor.pushgateway_url` pointing at the receiver (restored after)."
    path = pipeline / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    params["monitor"]["pushgateway_url"] = receiver.url
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    yield
    path.write_text(original)


def _monitor(pipeline, *args, check=False, **env):
    command = " ".join([str(BIN / "churnlab"), "monitor", *args])
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    return run(f"{exports} {command}" if exports else command, pipeline, check=check)


def _shifted_holdout(pipeline, tmp_path):
    holdout = pd.read_parquet(pipeline / "artifacts/prepared/holdout.parquet")
    shifted = holdout.assign(monthly_charges=holdout["monthly_charges"] * 1.3, tenure=holdout["tenure"] + 12)
    path = tmp_path / "shifted.parquet"
    shifted.to_parquet(path)
    return path


def test_cli_alerts_reach_the_webhook_pushgateway_textfile_and_history(
    pipeline, tmp_path, receiver, pushgateway_configured
):
    out = tmp_path / "report.json"
    history = pipeline / "logs/monitoring.sqlite"
    before = sqlite3.connect(history).execute("select count(*) from monitoring_runs").fetchone()[0]
    result = _monitor(
        pipeline,
        "--current",
        str(_shifted_holdout(pipeline, tmp_path)),
        "--output",
        str(out),
        "--fail-on-alert",
        CHURNLAB_WEBHOOK_URL=f"{receiver.url}/hook",
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(out.read_text())
    assert set(SETTINGS_KEYS) <= set(report) and report["source"] == "shifted.parquet"
    assert report["features"]["monthly_charges"]["drift"] and report["features"]["tenure"]["method"] == "ks"
    assert "multivariate_drift" in {a["type"] for a in report["alerts"]} and not report["dataset_drift"]
    assert "monthly_charges" in report["warnings"][0]["message"]
    assert report["performance"]["rows"] == report["rows"]  # the holdout carries its labels
    estimated = report["estimated_performance"]
    assert estimated["estimated"] and estimated["rows"] == report["rows"] and estimated["labelled"] is not None
    posts = [json.loads(body) for method, path, body in receiver.requests if path == "/hook"]
    assert len(posts) == 1 and posts[0]["alerts"] == report["alerts"] and "alert(s)" in posts[0]["text"]
    pushes = [(m, body.decode()) for m, path, body in receiver.requests if path.startswith("/metrics/job/")]
    assert pushes and pushes[0][0] == "PUT"
    assert 'churnlab_monitor_feature_drift{column="monthly_charges",source="shifted.parquet"} 1.0' in pushes[0][1]
    assert "churnlab_monitor_drift_share" in (pipeline / "logs/monitoring.prom").read_text()
    rows = (
        sqlite3.connect(history)
        .execute("select source, drifted_columns, alerts, estimated_roc_auc from monitoring_runs")
        .fetchall()
    )
    assert len(rows) == before + 1 and rows[-1][0] == "shifted.parquet"
    assert rows[-1][3] == pytest.approx(estimated["metrics"]["roc_auc"])
    drifted = sum(r["drift"] for r in report["features"].values())
    assert drifted >= 2 and rows[-1][1:3] == (drifted, len(report["alerts"]))

    figures = tmp_path / "figures"
    calm = _monitor(
        pipeline, "--current", "artifacts/prepared/holdout.parquet", "--fail-on-alert", "--figures", str(figures)
    )
    assert calm.returncode == 0, calm.stderr
    assert all((figures / f"{name}.png").stat().st_size > 10_000 for name in ("features", "history"))
    assert json.loads(calm.stdout)["alerts"] == [] and len([r for r in receiver.requests if r[1] == "/hook"]) == 1


def test_cli_reads_the_prediction_log_and_joins_late_labels(pipeline, tmp_path):
    holdout = pd.read_parquet(pipeline / "artifacts/prepared/holdout.parquet")
    features = holdout.drop(columns=["churn"])
    log = predlog.PredictionLog(f"sqlite:///{tmp_path}/predictions.sqlite", tmp_path / "fallback.jsonl")
    now = datetime.now(UTC).isoformat()
    rng = np.random.default_rng(0)
    records = features.to_dict("records")
    log.append(
        [
            (f"req-{i // 10}", i % 10, now, "7", orjson.dumps(r).decode(), float(p), int(p > 0.5), "[]")
            for i, (r, p) in enumerate(zip(records, rng.uniform(size=len(records)), strict=True))
        ]
    )
    log.close()
    labels = pd.DataFrame(
        {
            "request_id": [f"req-{i // 10}" for i in range(len(holdout))],
            "idx": [i % 10 for i in range(len(holdout))],
            "churn": holdout["churn"],
        }
    ).iloc[::2]
    labels.to_csv(tmp_path / "labels.csv", index=False)
    result = _monitor(
        pipeline,
        "--current",
        f"sqlite:///{tmp_path}/predictions.sqlite",
        "--since",
        "1h",
        "--labels",
        str(tmp_path / "labels.csv"),
        "--no-multivariate",
        "--source",
        "log-test",
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["rows"] == len(holdout) and report["source"] == "log-test" and not report["dataset_drift"]
    assert report["performance"]["rows"] == len(labels)
    assert report["performance"]["metrics"]["roc_auc"] < 0.65  # the logged scores were random
    promotion = json.loads((pipeline / "reports/promotion.json").read_text())
    assert report["model"]["version"] == promotion["champion_version"]  # the threshold and contract: the champion's
    # version "7" has no test-score profile: its scores are reported, never judged against another model's
    assert report["prediction_drift"]["unmatched_rows"] == {"7": len(holdout)}
    assert not report["prediction_drift"]["drift"] and "prediction_drift" not in {a["type"] for a in report["alerts"]}
    assert "performance_drop" in {a["type"] for a in report["alerts"]}
    # nor is performance estimated from them: no estimation reference for v7, and the report says so
    assert not report["estimated_performance"]["estimated"] and "v7" in report["estimated_performance"]["reason"]

    bad = labels.assign(churn="maybe")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    refused = _monitor(
        pipeline, "--current", f"sqlite:///{tmp_path}/predictions.sqlite", "--labels", str(tmp_path / "bad.csv")
    )
    assert (
        refused.returncode == 2 and "values outside the classes" in refused.stderr and "Traceback" not in refused.stderr
    )


def test_cli_names_the_bad_column_of_a_window(pipeline, tmp_path):
    holdout = pd.read_parquet(pipeline / "artifacts/prepared/holdout.parquet")
    path = tmp_path / "broken.csv"
    holdout.drop(columns=["tenure"]).to_csv(path, index=False)
    result = _monitor(pipeline, "--current", str(path))
    assert result.returncode == 2 and "tenure" in result.stderr and "Traceback" not in result.stderr


def _prepared_rows(pipeline) -> int:
    return sum(len(pd.read_parquet(pipeline / f"artifacts/prepared/{s}.parquet")) for s in ("train", "test", "holdout"))


@pytest.mark.mutates_pipeline
def test_retrain_adds_a_data_version_and_a_gated_model_version(pipeline, tmp_path):
    import mlflow

    params_path = pipeline / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["monitor"]["retrain"]["drift_share"] = 0.05  # a two-column shift is enough to retrain here
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    data_dvc, raw = (pipeline / "data.dvc").read_text(), (pipeline / "data/wa_churn.csv").read_bytes()
    before = json.loads((pipeline / "reports/promotion.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{pipeline}/mlflow.db")
    client = mlflow.MlflowClient()
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{before['registered_model']}'")]
    champion_before = str(client.get_model_version_by_alias(before["registered_model"], "champion").version)
    prepared_before = _prepared_rows(pipeline)
    splits_before = {
        n: set(pd.read_parquet(pipeline / f"artifacts/prepared/{n}.parquet")["rownames"])
        for n in ("train", "test", "holdout")
    }
    holdout = pd.read_parquet(pipeline / "artifacts/prepared/holdout.parquet")
    batch = holdout.assign(rownames=holdout["rownames"] + 1_000_000, monthly_charges=holdout["monthly_charges"] * 1.3)
    batch.to_parquet(tmp_path / "labelled.parquet")

    result = _monitor(pipeline, "--current", str(tmp_path / "labelled.parquet"), "--retrain", "--no-multivariate")
    assert result.returncode == 0, result.stderr[-3000:]
    produced = list((pipeline / "data/production").glob("*.parquet"))
    assert len(produced) == 1 and len(pd.read_parquet(produced[0])) == len(batch)
    assert (pipeline / "data.dvc").read_text() != data_dvc and (pipeline / "data/wa_churn.csv").read_bytes() == raw
    assert dvc(pipeline, "status").stdout.strip().endswith("Data and pipelines are up to date.")
    assert "in sync" in dvc(pipeline, "status", "--cloud").stdout  # `dvc push` sent the new data version
    after = json.loads((pipeline / "reports/promotion.json").read_text())
    assert int(after["registered_version"]) == max(versions) + 1 and after["previous_champion"] == champion_before
    champion = str(client.get_model_version_by_alias(after["registered_model"], "champion").version)
    test = after["test"]  # the gate: a paired bootstrap on the new test split against the old champion
    wins = test["difference"] > test["margin"] and test["p_value"] < params["evaluate"]["alpha"]
    assert after["promoted"] == wins and champion == (after["registered_version"] if wins else champion_before)
    assert _prepared_rows(pipeline) == prepared_before + len(batch)
    # the new data version moved no earlier row, and the gate scored neither model on rows it trained on
    for name, rows in splits_before.items():
        assert rows <= set(pd.read_parquet(pipeline / f"artifacts/prepared/{name}.parquet")["rownames"]), name
    assert test["rows_champion_trained_on"] == 0 and test["champion_split_known"]
    assert test["rows"] == len(pd.read_parquet(pipeline / "artifacts/prepared/test.parquet"))
