"""The model service: a real `churnlab serve` (uvicorn) on loopback over the pipeline's champion.

Every server gets its own prediction log in the test's temporary folder; the pipeline copy is
left as found (the alias test works on a copy of its MLflow store).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BIN, ROOT
from workspace import project_env

from churnlab import data, models, scoring

STOPPED = (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its graceful shutdown


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    "A `churnlab serve` process (or another command) on a free loopback port."

    def __init__(self, root: Path, folder: Path, *args: str, command: list[str] | None = None, **env: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_db = folder / f"predictions-{self.port}.sqlite"
        self.output = folder / f"server-{self.port}.log"
        environment = project_env(root) | {"CHURNLAB_PREDICTION_LOG_URL": f"sqlite:///{self.log_db}"} | env
        cmd = command or [str(BIN / "churnlab"), "serve", "--port", str(self.port), *args]
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(cmd, cwd=root, env=environment, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}):\n{self.output.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def logged(self) -> list[tuple]:
        with sqlite3.connect(self.log_db) as conn:
            return conn.execute("select request_id, idx, probability, flags from predictions").fetchall()


@pytest.fixture(scope="session")
def pipeline(serving_pipeline) -> Path:
    "The service's tests run on the second reproduced copy (conftest `serving_pipeline`), beside the pipeline's."
    return serving_pipeline


@pytest.fixture(scope="session")
def service(pipeline, tmp_path_factory):
    "One server over the champion for the read-only tests."
    server = Server(pipeline, tmp_path_factory.mktemp("service")).wait_ready()
    yield server
    assert server.stop() in STOPPED


@pytest.fixture(scope="session")
def candidate(pipeline):
    return models.load_model(pipeline / "artifacts/model")


def _records(frame: pd.DataFrame, contract: dict) -> list[dict]:
    "JSON records of raw rows, typed as the contract says (missing values omitted)."
    cast = {"float": float, "int": int, "str": str}
    out = []
    for row in frame.to_dict("records"):
        record = {}
        for c, spec in contract["columns"].items():
            if c in row and not pd.isna(row[c]):
                record[c] = cast.get(spec["dtype"], str)(row[c])
        out.append(record)
    return out


@pytest.fixture(scope="session")
def test_rows(pipeline, candidate):
    contract = candidate[1]["contract"]
    frame = pd.read_parquet(pipeline / "artifacts/prepared/test.parquet")
    return frame, _records(frame, contract)


# --- code: endpoints, schema, errors ---------------------------------------------------------------


def test_every_endpoint_answers(service, pipeline):
    promotion = yaml.safe_load((pipeline / "reports/promotion.json").read_text())
    index = httpx.get(service.url).json()
    assert index["model_version"] == promotion["champion_version"] and index["docs"] == "/docs"
    assert httpx.get(f"{service.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{service.url}/ready").json()["status"] == "ready"
    model = httpx.get(f"{service.url}/model").json()
    assert model["version"] == promotion["champion_version"] and model["alias"] == "champion"
    assert model["registered_model"] == promotion["registered_model"] and len(model["sha256"]) == 64
    assert 0 < model["threshold"] < 1 and model["metrics"]["test_roc_auc"] > 0.75
    assert "swagger" in httpx.get(f"{service.url}/docs").text.lower()
    schema = httpx.get(f"{service.url}/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False and body["examples"] and "tenure" in body["required"]
    metrics = httpx.get(f"{service.url}/metrics").text
    assert "churnlab_request_latency_seconds_bucket" in metrics and "churnlab_model_info" in metrics


def test_the_readmes_sample_request_is_answered(service, pipeline):
    "`curl ... -d @reports/sample_request.json` (the README's line): the evaluate stage's sample body."
    body = (pipeline / "reports" / "sample_request.json").read_bytes()
    response = httpx.post(f"{service.url}/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert 0.0 <= response.json()["probability"] <= 1.0
    explained = httpx.post(
        f"{service.url}/predict?explain=5", content=body, headers={"content-type": "application/json"}
    )
    assert all(r["contribution"] != 0 for r in explained.json()["reasons"])  # zero contributions are no reasons


def test_predictions_match_the_pipeline(service, candidate, test_rows):
    pipeline_, meta = candidate
    frame, records = test_rows
    expected = pipeline_.predict_proba(frame)[:, 1]
    batch = httpx.post(f"{service.url}/predict_batch", json=records, timeout=60).json()
    got = np.array([p["probability"] for p in batch["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert [p["prediction"] for p in batch["predictions"]] == (expected >= meta["threshold"]).astype(int).tolist()
    for i in range(20):
        one = httpx.post(f"{service.url}/predict", json=records[i]).json()
        assert abs(one["probability"] - expected[i]) < 1e-9 and one["prediction"] == int(
            expected[i] >= meta["threshold"]
        )
    explained = httpx.post(f"{service.url}/predict?explain=3", json=records[0]).json()
    assert len(explained["reasons"]) == 3 and all(isinstance(r["contribution"], float) for r in explained["reasons"])
    assert abs(explained["probability"] - expected[0]) < 1e-9  # the codes come with the probability served
    model = httpx.get(f"{service.url}/model").json()
    assert {r["feature"] for r in explained["reasons"]} <= set(model["explanation"]["columns"])
    assert model["explanation"]["exact"] and model["explanation"]["output"] in ("log-odds", "probability")


def _assert_clean(response: httpx.Response) -> None:
    "No traceback, exception text or file path in an error response."
    text = response.text
    for leak in ("Traceback", 'File "', ".py", str(ROOT), "site-packages", "Error:"):
        assert leak not in text, (leak, text[:500])


BAD_RECORDS = [  # (change to a valid record, expected status, field named in the detail)
    ("missing field", lambda r: {k: v for k, v in r.items() if k != "tenure"}, 422, "tenure"),
    ("wrong type", lambda r: {**r, "tenure": "twelve"}, 422, "tenure"),
    ("numeric text", lambda r: {**r, "monthly_charges": "70.5"}, 422, "monthly_charges"),
    ("unknown field", lambda r: {**r, "shoe_size": 44}, 422, "shoe_size"),
    ("null in a required field", lambda r: {**r, "contract": None}, 422, "contract"),
    ("below a declared hard bound", lambda r: {**r, "tenure": -3.0}, 422, "tenure"),
    ("0/1 flag as text", lambda r: {**r, "senior_citizen": "1"}, 422, "senior_citizen"),
    ("0/1 flag as a JSON bool", lambda r: {**r, "senior_citizen": True}, 422, "senior_citizen"),
]


@pytest.mark.parametrize("name,change,status,field", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_bad_records_get_field_level_422(service, test_rows, name, change, status, field):
    response = httpx.post(f"{service.url}/predict", json=change(test_rows[1][0]))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert any(d["loc"][:2] == ["body", field] for d in detail), detail
    assert all(set(d) == {"loc", "msg", "type"} for d in detail)
    _assert_clean(response)


RAW_BODIES = [  # raw JSON text where a record is expected
    ("NaN", '{"tenure": NaN}'),
    ("Infinity", '{"tenure": Infinity}'),
    ("overflow to inf", '{"tenure": 1e400}'),
    ("empty body", ""),
    ("malformed JSON", '{"tenure": 1,'),
    ("a list where an object is expected", "[]"),
    ("a string", '"hello"'),
]


@pytest.mark.parametrize("name,body", RAW_BODIES, ids=[b[0] for b in RAW_BODIES])
def test_malformed_bodies_get_422(service, name, body):
    for path in ("/predict", "/predict_batch"):
        response = httpx.post(f"{service.url}{path}", content=body, headers={"content-type": "application/json"})
        if path == "/predict_batch" and body == "[]":
            assert response.status_code == 200 and response.json()["predictions"] == []
            continue
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"][0] == "body"
        _assert_clean(response)


def test_extreme_values_and_novelties_are_scored_and_flagged(service, test_rows):
    "±1e308 (finite) is scored with a finite probability and flagged, unless a declared hard bound refuses it."
    record = test_rows[1][0]
    huge = {**record, "tenure": 1e308, "monthly_charges": 1e308, "total_charges": 1e308, "contract": "Ten year"}
    answer = httpx.post(f"{service.url}/predict", json=huge).json()
    assert np.isfinite(answer["probability"]) and 0 <= answer["probability"] <= 1
    assert set(answer["flags"]) == {"tenure", "monthly_charges", "total_charges", "contract"}
    batch = httpx.post(f"{service.url}/predict_batch", json=[record, huge]).json()["predictions"]
    assert batch[0]["flags"] == [] and batch[1]["probability"] == pytest.approx(answer["probability"], abs=1e-9)
    refused = httpx.post(f"{service.url}/predict", json={**record, "total_charges": -1e308})
    assert refused.status_code == 422 and refused.json()["detail"][0]["type"] == "greater_than_equal"


def test_oversized_batches_get_413(service, test_rows):
    records = test_rows[1]
    limit = yaml.safe_load((ROOT / "params.yaml").read_text())["serve"]["max_batch_size"]
    too_many = (records * (limit // len(records) + 1))[: limit + 1]

    def chunked():  # no Content-Length: the count is checked after parsing, before validation
        yield httpx.Request("POST", "/", json=too_many).read()

    response = httpx.post(
        f"{service.url}/predict_batch", content=chunked(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and str(limit) in response.json()["detail"]
    # a declared Content-Length past the limit is refused before the body is read
    with socket.create_connection(("127.0.0.1", service.port)) as conn:
        conn.sendall(
            b"POST /predict_batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999999\r\n\r\n["
        )
        head = conn.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head


def test_fuzzing_from_the_openapi_schema_finds_nothing(service):  # runs last: it is the slowest
    "Schemathesis: 200 seeded examples per operation; no 5xx, responses conform to the schema."
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [
        ("/predict", "POST"),
        ("/predict_batch", "POST"),
        ("/model", "GET"),
        ("/", "GET"),
        ("/health", "GET"),
        ("/ready", "GET"),
    ]
    for path, method in operations:
        operation = schema[path][method]

        @settings(
            max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(base_url=service.url)

        check()


# --- model: the compiled path and trust ------------------------------------------------------------


def test_compiled_path_agrees_with_the_pipeline(candidate, test_rows):
    "On every test row and 1,000 fuzzed records (unseen levels, missing values, ±1e308): within 1e-9."
    pipeline_, _ = candidate
    scorer = scoring.compile_scorer(pipeline_)
    assert scorer is not None, "the shipped candidate families (calibrated or not) compile"
    frame, records = test_rows
    np.testing.assert_allclose(
        scorer.predict_proba(scorer.columns(records)), pipeline_.predict_proba(frame)[:, 1], rtol=0, atol=1e-9
    )
    fuzz = scoring.random_records(scorer, 1000, seed=7, extreme=True)
    fast = scorer.predict_proba(scorer.columns(fuzz))
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, pipeline_.predict_proba(pd.DataFrame(fuzz))[:, 1], rtol=0, atol=1e-9)


def _other_model(pipeline: Path, folder: Path) -> Path:
    "A different valid model of the same contract (a fresh logistic regression), saved with its sidecar."
    _, meta = models.load_model(pipeline / "artifacts/model")
    spec = yaml.safe_load((pipeline / "artifacts/features/spec.json").read_text())
    train = pd.read_parquet(pipeline / "artifacts/prepared/train.parquet")
    y = data.encode_target(train[meta["target"]], meta["contract"]["positive_label"])
    other = models.make_pipeline(spec, "logreg", {"C": 0.01}).fit(train.drop(columns=[meta["target"]]), y)
    return models.save_model(other, {**meta, "threshold": 0.1}, folder)


def test_a_replaced_model_stops_startup(pipeline, tmp_path):
    # the project layout: artifacts/model checked against dvc.lock
    project = tmp_path / "project"
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pipeline / name, project / name)
    shutil.copytree(pipeline / "artifacts/model", project / "artifacts/model")
    Server(project, tmp_path, "--model", "artifacts/model").wait_ready().stop()  # intact: serves
    _other_model(pipeline, project / "artifacts/model")
    refused = Server(project, tmp_path, "--model", "artifacts/model")
    assert refused.process.wait(60) != 0
    message = refused.output.read_text()
    assert "does not match dvc.lock" in message and "Traceback" not in message
    # a folder outside the project, pinned to the original's hash
    shutil.copytree(project / "artifacts/model", tmp_path / "pinned")
    pinned = {"CHURNLAB_MODEL_SHA256": models.artifact_sha256(pipeline / "artifacts/model")}
    refused = Server(project, tmp_path, "--model", str(tmp_path / "pinned"), **pinned)
    assert refused.process.wait(60) != 0 and "does not match CHURNLAB_MODEL_SHA256" in refused.output.read_text()
    # a folder with no trusted hash at all
    shutil.copytree(pipeline / "artifacts/model", tmp_path / "loose")
    refused = Server(project, tmp_path, "--model", str(tmp_path / "loose"))
    assert refused.process.wait(60) != 0 and "no trusted hash" in refused.output.read_text()


def test_a_tampered_champion_is_refused_by_serve_predict_monitor_and_the_gate(pipeline, tmp_path, monkeypatch):
    "Replacing the champion's files in the artifact store is caught by the version's model_sha256 tag, everywhere."
    import mlflow

    from churnlab import registry, trust

    mlflow.set_tracking_uri(f"sqlite:///{pipeline}/mlflow.db")
    promotion = yaml.safe_load((pipeline / "reports/promotion.json").read_text())
    version = mlflow.MlflowClient().get_model_version(promotion["registered_model"], promotion["champion_version"])
    store = Path(mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}", dst_path=tmp_path))
    archive = (models.model_folder(store) / models.MODEL_FILE).read_bytes()
    original = sorted(p for p in (pipeline / "mlruns").rglob(models.MODEL_FILE) if p.read_bytes() == archive)
    assert original, "the registered archive lives in the copy's artifact store"
    other = _other_model(pipeline, tmp_path / "other")
    refusal = "registry tag model_sha256"
    try:
        for path in original:
            path.write_bytes((other / models.MODEL_FILE).read_bytes())
        refused = Server(pipeline, tmp_path)
        assert refused.process.wait(60) != 0 and refusal in refused.output.read_text()
        env = project_env(pipeline)
        for command in (
            ["predict", "artifacts/prepared/test.parquet", "-o", str(tmp_path / "p.csv")],
            ["monitor", "--current", "artifacts/prepared/holdout.parquet", "--no-multivariate"],
        ):
            result = subprocess.run(
                [str(BIN / "churnlab"), *command], cwd=pipeline, env=env, capture_output=True, text=True
            )
            assert result.returncode != 0 and refusal in result.stderr and "Traceback" not in result.stderr, command
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{pipeline}/mlflow.db")
        test = pd.read_parquet(pipeline / "artifacts/prepared/test.parquet")
        y = data.encode_target(test["churn"], "Yes")
        with pytest.raises(trust.ModelTrustError, match=refusal):  # the evaluate stage's gate
            registry.champion_test(
                version.name,
                str(version.version),
                test,
                y,
                np.full(len(test), 0.5),
                {"margin": 0.0, "bootstrap_samples": 10, "seed": 0},
                pipeline,
            )
    finally:
        for path in original:
            path.write_bytes(archive)


def test_api_key_guards_prediction_endpoints_only(pipeline, tmp_path, test_rows):
    server = Server(pipeline, tmp_path, CHURNLAB_API_KEY="s3cret").wait_ready()
    try:
        record = test_rows[1][0]
        assert httpx.post(f"{server.url}/predict", json=record).status_code == 401
        assert httpx.post(f"{server.url}/predict", json=record, headers={"X-API-Key": "wrong"}).status_code == 401
        assert httpx.post(f"{server.url}/predict_batch", json=[record]).status_code == 401
        assert httpx.post(f"{server.url}/predict", json=record, headers={"X-API-Key": "s3cret"}).status_code == 200
        for open_path in ("/health", "/ready"):
            assert httpx.get(f"{server.url}{open_path}").status_code == 200
    finally:
        server.stop()
    assert len(server.logged()) == 1  # the refused requests logged nothing


# --- behaviour under load ------------------------------------------------------------------------------


async def _load(url: str, records: list[dict], clients: int, seconds: float) -> tuple[list[tuple[str, int]], int]:
    "`clients` concurrent clients posting singles and small batches; (request id, records) of each 200, failures."
    done, failures = [], 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker(k: int):
            nonlocal failures
            deadline, i = time.monotonic() + seconds, k
            while time.monotonic() < deadline:
                i += 1
                batch = i % 5 == 0
                try:
                    if batch:
                        response = await client.post("/predict_batch", json=records[i % 50 : i % 50 + 3])
                    else:
                        response = await client.post("/predict", json=records[i % len(records)])
                except httpx.HTTPError:
                    failures += 1
                    await asyncio.sleep(0.05)
                    continue
                if response.status_code == 200:
                    done.append((response.json()["request_id"], 3 if batch else 1))
                else:
                    failures += 1

        await asyncio.gather(*(worker(k) for k in range(clients)))
    return done, failures


def test_sigterm_under_32_clients_loses_no_logged_prediction(pipeline, tmp_path, test_rows):
    server = Server(pipeline, tmp_path).wait_ready()
    records = test_rows[1]

    async def scenario():
        load = asyncio.create_task(_load(server.url, records, clients=32, seconds=6))
        await asyncio.sleep(3)
        server.process.send_signal(signal.SIGTERM)
        return await load

    done, failures = asyncio.run(scenario())
    assert server.process.wait(60) in STOPPED
    logged = server.logged()
    keys = [(r[0], r[1]) for r in logged]
    assert len(keys) == len(set(keys)), "a prediction was logged twice"
    expected = {(rid, i) for rid, n in done for i in range(n)}
    assert set(keys) == expected, f"{len(expected - set(keys))} answered predictions missing from the log"
    assert len(done) > 100 and failures > 0  # the stop happened under load


def test_moving_the_champion_swaps_the_model_without_failed_requests(pipeline, tmp_path, test_rows):
    "Alias moves are followed: a new version is loaded, verified and swapped while requests keep succeeding."
    import mlflow

    store = tmp_path / "mlflow.db"
    shutil.copy(pipeline / "mlflow.db", store)
    uri = f"sqlite:///{store}"
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    assert params["serve"]["reload_interval_s"] > 0
    server = Server(pipeline, tmp_path, MLFLOW_TRACKING_URI=uri).wait_ready()
    try:
        before = httpx.get(f"{server.url}/model").json()
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient()
        old = client.get_model_version(before["registered_model"], before["version"])
        new = client.create_model_version(old.name, old.source, tags=old.tags, model_id=old.model_id)
        client.set_registered_model_alias(old.name, "champion", new.version)

        async def load_until_swapped():
            task = asyncio.create_task(
                _load(server.url, test_rows[1], clients=8, seconds=params["serve"]["reload_interval_s"] + 8)
            )
            return await task

        done, failures = asyncio.run(load_until_swapped())
        after = httpx.get(f"{server.url}/model").json()
        assert after["version"] == str(new.version) != before["version"]
        assert failures == 0 and len(done) > 50
    finally:
        assert server.stop() in STOPPED
    versions = {
        row[0] for row in sqlite3.connect(server.log_db).execute("select distinct model_version from predictions")
    }
    assert versions == {before["version"], str(new.version)}


# --- deployment: Dockerfile, manifests, the image's command ----------------------------------------


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "project.Dockerfile"])
def test_dockerfile_lints_clean(dockerfile):
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", str(ROOT / "deploy" / dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_manifests_validate():
    manifests = sorted((ROOT / "deploy/k8s").glob("*.yaml"))
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in manifests}
    assert kinds >= {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "CronJob", "Job"}
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *map(str, manifests)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    deployment = yaml.safe_load((ROOT / "deploy/k8s/deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    spool = next(m for m in container["volumeMounts"] if m["mountPath"] == "/app/logs/predictions.spool")
    assert "persistentVolumeClaim" in volumes[spool["name"]]  # the spool outlives the pod


def _dockerfile() -> tuple[list[str], dict[str, str], list[str]]:
    "The image's CMD, ENV (build args empty) and HEALTHCHECK command, read from the Dockerfile."
    import json
    import re
    import shlex

    text = (ROOT / "deploy/Dockerfile").read_text().replace("\\\n", " ")
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    health = json.loads(re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M).group(1))
    env = {}
    for line in re.findall(r"^ENV (.*)$", text, re.M):
        for pair in shlex.split(line):
            key, value = pair.split("=", 1)
            env[key] = re.sub(r"\$\{\w+\}", "", value)
    return cmd, env, health


def test_the_image_command_serves_a_baked_model(pipeline, tmp_path):
    "The Dockerfile's CMD, ENV and HEALTHCHECK run as they would in the image: /app with /app/model."
    cmd, env, health = _dockerfile()
    app = tmp_path / "app"
    shutil.copytree(pipeline / "artifacts/model", app / "model")
    env |= {"CHURNLAB_MODEL_URI": str(app / "model"), "CHURNLAB_MODEL_SHA256": models.artifact_sha256(app / "model")}
    port = _free_port()
    cmd = [str(BIN / cmd[0]), *cmd[1:]]
    cmd[cmd.index("--port") + 1] = str(port)
    server = Server(app, tmp_path, command=cmd, **env)
    server.url = f"http://127.0.0.1:{port}"
    server.wait_ready()
    try:
        check = [sys.executable if health[0] == "python" else health[0], *health[1:]]
        check[-1] = check[-1].replace("8000", str(port))
        assert subprocess.run(check, timeout=10).returncode == 0
        assert httpx.get(f"{server.url}/model").json()["version"].startswith("local-")
    finally:
        assert server.stop() in STOPPED
    assert (app / "logs").is_dir() or server.log_db.exists()


def test_batch_predict_with_deciles(pipeline, tmp_path, candidate):
    out = tmp_path / "scores.csv"
    result = subprocess.run(
        [str(BIN / "churnlab"), "predict", "artifacts/prepared/test.parquet", "-o", str(out), "--deciles"],
        cwd=pipeline,
        env=project_env(pipeline),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(out)
    frame = pd.read_parquet(pipeline / "artifacts/prepared/test.parquet")
    np.testing.assert_allclose(scores["probability"], candidate[0].predict_proba(frame)[:, 1], rtol=0, atol=1e-9)
    assert scores["rownames"].tolist() == frame["rownames"].tolist()
    assert set(scores["decile"]) == set(range(1, 11))
    assert scores.groupby("decile")["probability"].mean().is_monotonic_decreasing


# --- model: the registered champion is a first-class MLflow model ----------------------------------


def _churnlab_predict(root: Path, folder: Path, *args: str) -> pd.DataFrame:
    out = folder / f"predict-{len(list(folder.glob('predict-*.csv')))}.csv"
    command = [str(BIN / "churnlab"), "predict", "artifacts/prepared/test.parquet", "-o", str(out), *args]
    subprocess.run(command, cwd=root, env=project_env(root), check=True, capture_output=True, text=True)
    return pd.read_csv(out)


def test_mlflow_serves_the_champion_with_pickle_off_as_churnlab_predict_scores(pipeline, tmp_path, monkeypatch):
    "`mlflow models serve` and MLflow's pyfunc give `churnlab predict`'s probabilities, at the saved threshold."
    import mlflow

    expected = _churnlab_predict(pipeline, tmp_path)
    frame = pd.read_parquet(pipeline / "artifacts/prepared/test.parquet").drop(columns=["churn"])
    promotion = yaml.safe_load((pipeline / "reports/promotion.json").read_text())
    uri = f"models:/{promotion['registered_model']}@champion"
    port = _free_port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1"]
    server = Server(
        pipeline, tmp_path, command=[*command, "-p", str(port)], MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.process.poll() is None, server.output.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        split = json.loads(frame.to_json(orient="split", index=False))
        records = json.loads(frame.drop(columns=["rownames"]).to_json(orient="records"))  # ids are optional
        for body in ({"dataframe_split": split}, {"dataframe_records": records}):
            answer = httpx.post(f"{url}/invocations", json=body, timeout=60)
            assert answer.status_code == 200, answer.text[:2000]
            served = pd.DataFrame(answer.json()["predictions"])
            assert list(served.columns) == ["probability", "prediction"]
            np.testing.assert_allclose(served["probability"], expected["probability"], rtol=0, atol=1e-9)
            assert (served["prediction"] == expected["prediction"]).all()  # the saved threshold, not 0.5
    finally:
        server.stop()
    # in process, pickle refused: MLflow's loader and its validator
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{pipeline}/mlflow.db")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    mlflow.set_tracking_uri(f"sqlite:///{pipeline}/mlflow.db")
    loaded = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(loaded.predict(frame)["probability"], expected["probability"], rtol=0, atol=1e-9)
    mlflow.models.predict(model_uri=uri, input_data=frame.head(20), env_manager="local")
    schema = loaded.metadata.get_input_schema()
    assert {c.name: c.required for c in schema.inputs}["rownames"] is False  # ids optional
    assert all(c.required for c in schema.inputs if c.name != "rownames")


@pytest.mark.mutates_pipeline
def test_a_refused_candidate_leaves_predict_and_the_service_on_the_champion(pipeline, tmp_path, candidate):
    "After `dvc exp run -S train.model=dummy` (registered, not promoted) every consumer still scores the champion."
    from conftest import dvc

    before = _churnlab_predict(pipeline, tmp_path)
    # the test split as it is now: an earlier pipeline-mutating test (retraining) may have added rows to it
    records = _records(pd.read_parquet(pipeline / "artifacts/prepared/test.parquet"), candidate[1]["contract"])
    champion = yaml.safe_load((pipeline / "reports/promotion.json").read_text())["champion_version"]
    try:
        dvc(pipeline, "exp", "run", "-n", "dummy-candidate", "-S", "train.model=dummy")
        promotion = yaml.safe_load((pipeline / "reports/promotion.json").read_text())
        assert promotion["promoted"] is False and promotion["champion_version"] == champion
        assert models.load_model(pipeline / "artifacts/model")[1]["family"] == "dummy"  # the workspace's candidate
        after = _churnlab_predict(pipeline, tmp_path)
        np.testing.assert_array_equal(after["probability"], before["probability"])
        scores = pd.read_parquet(pipeline / "artifacts/evaluate/test_scores.parquet")
        np.testing.assert_allclose(scores["champion_probability"], before["probability"], rtol=0, atol=1e-9)
        server = Server(pipeline, tmp_path).wait_ready()
        try:
            assert httpx.get(f"{server.url}/model").json()["version"] == champion
            served = httpx.post(f"{server.url}/predict_batch", json=records, timeout=60).json()["predictions"]
            np.testing.assert_allclose([p["probability"] for p in served], before["probability"], rtol=0, atol=1e-9)
        finally:
            assert server.stop() in STOPPED
        reference = json.loads((pipeline / "artifacts/reference/scores.json").read_text())
        assert reference["champion"] == champion and {champion, promotion["registered_version"]} <= set(
            reference["profiles"]
        )
    finally:
        subprocess.run(["git", "checkout", "--", "."], cwd=pipeline, check=True)
        dvc(pipeline, "checkout", "--force")


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name} "))


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


def test_a_postgresql_outage_loses_no_answered_prediction(pipeline, tmp_path, test_rows):
    "PostgreSQL stopped mid-load and restarted: every answered prediction is in the log exactly once."
    import threading

    import sqlalchemy
    import standins

    if not standins.PG_BINS or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("PostgreSQL server binaries (or root, to run them as `nobody`) missing: run `make test-deps`")
    data_dir, port = Path(tempfile.mkdtemp(prefix="churnlab-pg-", dir="/tmp")), standins.free_port()
    url = standins.start_postgres(data_dir, port, ("predictions",)) + "/predictions"
    spool = tmp_path / "spool"
    server = Server(pipeline, tmp_path, CHURNLAB_PREDICTION_LOG_URL=url, CHURNLAB_PREDICTION_SPOOL=str(spool))
    answered: dict[str, int] = {}
    stop, failures = threading.Event(), []

    def client(offset: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            i = offset
            while not stop.is_set():
                batch = test_rows[1][i % 400 : i % 400 + 5]
                response = http.post("/predict_batch", json=batch)
                if response.status_code != 200:
                    failures.append(response.text)
                    return
                answered[response.json()["request_id"]] = len(batch)
                i += 5

    try:
        server.wait_ready()
        threads = [threading.Thread(target=client, args=(k * 100,)) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(2)
        rss_before = _rss_mb(server.process.pid)
        standins.pause_postgres(data_dir)  # the outage, mid-load
        time.sleep(4)
        during = _metric(server.url, "churnlab_prediction_log_spooled_rows_total")
        rss_during = _rss_mb(server.process.pid)
        standins.resume_postgres(data_dir, port)
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join()
        assert not failures, failures[:3]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            _metric(server.url, "churnlab_prediction_log_replayed_rows_total")
            < _metric(server.url, "churnlab_prediction_log_spooled_rows_total")
        ):
            time.sleep(0.5)
        spooled = _metric(server.url, "churnlab_prediction_log_spooled_rows_total")
        assert during > 0, "the outage sent rows to the spool"
        assert _metric(server.url, "churnlab_prediction_log_replayed_rows_total") == spooled
        assert _metric(server.url, "churnlab_prediction_log_dropped_rows_total") == 0
        assert rss_during - rss_before < 150, (rss_before, rss_during)  # rows go to disk, not to memory
    finally:
        stop.set()
        assert server.stop() in STOPPED
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            logged = conn.exec_driver_sql("select request_id, count(*) from predictions group by request_id").all()
        engine.dispose()
        standins.stop_postgres(data_dir)
    assert dict(logged) == answered  # every answered record, once, and nothing else
    assert not list(spool.glob("*.jsonl"))


def test_with_a_verify_key_only_an_artifact_signed_by_its_private_key_is_served(pipeline, tmp_path):
    "Authenticity: hashes pinned and correct, but a foreign or missing signature still stops startup."
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from churnlab import trust

    def pair(name: str) -> tuple[Path, Path]:
        key = Ed25519PrivateKey.generate()
        private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return private, public

    (ours, ours_public), (theirs, _) = pair("ours"), pair("theirs")
    folder = tmp_path / "model"
    shutil.copytree(pipeline / "artifacts/model", folder)
    env = {"CHURNLAB_MODEL_SHA256": models.artifact_sha256(folder), "CHURNLAB_VERIFY_KEY": str(ours_public)}
    for signer, refusal in ((None, "is not signed"), (theirs, "not signed by the key")):
        if signer:
            trust.sign_artifact(folder, str(signer))
        refused = Server(pipeline, tmp_path, "--model", str(folder), **env)
        assert refused.process.wait(60) != 0, "a model without our signature was served"
        assert refusal in refused.output.read_text() and "Traceback" not in refused.output.read_text()
    trust.sign_artifact(folder, str(ours))
    Server(pipeline, tmp_path, "--model", str(folder), **env).wait_ready().stop()


def test_a_shadow_challenger_scores_every_record_off_the_response_path(pipeline, tmp_path, test_rows):
    "`serve.shadow: true`: the challenger's score of each answered record is logged, and the monitor compares."
    import mlflow

    from churnlab import pyfunc, registry

    store = tmp_path / "mlflow.db"
    shutil.copy(pipeline / "mlflow.db", store)
    uri = f"sqlite:///{store}"
    mlflow.set_tracking_uri(uri)
    other = _other_model(pipeline, tmp_path / "challenger")  # a different model, threshold 0.1
    _, meta = models.load_model(other)
    frame = test_rows[0].drop(columns=["churn"])
    mlflow.set_experiment("churnlab")  # the copy's experiment: artifacts stay in the copy's mlruns/
    with mlflow.start_run() as run:
        pyfunc.log_model(other, frame.head(5), meta)
    name = f"churnlab-{meta['contract_fingerprint']}"
    version = registry.register(other, {**meta, "mlflow_run_id": run.info.run_id}, frame.head(5), name, {})
    mlflow.MlflowClient().set_registered_model_alias(name, "challenger", version)
    params_path = pipeline / "params.yaml"
    saved = params_path.read_text()
    params = yaml.safe_load(saved)
    params["serve"]["shadow"] = True
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        server = Server(pipeline, tmp_path, MLFLOW_TRACKING_URI=uri).wait_ready()
        try:
            assert httpx.get(f"{server.url}/model").json()["shadow"] == version
            done, failures = asyncio.run(_load(server.url, test_rows[1], clients=4, seconds=3))
        finally:
            assert server.stop() in STOPPED
    finally:
        params_path.write_text(saved)
    assert failures == 0 and done
    with sqlite3.connect(server.log_db) as conn:
        served = conn.execute("select request_id, idx, features from predictions order by request_id, idx").fetchall()
        shadow = conn.execute(
            "select request_id, idx, model_version, probability, prediction from shadow_predictions "
            "order by request_id, idx"
        ).fetchall()
    assert [(r, i) for r, i, _ in served] == [(r, i) for r, i, *_ in shadow]  # every answered record, once
    assert {v for _, _, v, _, _ in shadow} == {version}
    challenger, _ = models.load_model(other)
    records = [json.loads(f) for _, _, f in served[:20]]
    expected = challenger.predict_proba(
        scoring.raw_frame(records, {c: s["dtype"] for c, s in meta["contract"]["columns"].items()})
    )[:, 1]
    np.testing.assert_allclose([p for *_, p, _ in shadow[:20]], expected, rtol=0, atol=1e-9)
    assert all(y == int(p >= 0.1) for *_, p, y in shadow)  # the challenger's own threshold
    labels = pd.DataFrame({"request_id": [r for r, _, _ in served], "idx": [i for _, i, _ in served]})
    labels["churn"] = np.where(np.arange(len(labels)) % 3 == 0, "Yes", "No")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    env = project_env(pipeline) | {"MLFLOW_TRACKING_URI": uri}
    command = [
        str(BIN / "churnlab"),
        "monitor",
        "--current",
        f"sqlite:///{server.log_db}",
        "--no-multivariate",
        "--labels",
        str(tmp_path / "labels.csv"),
    ]
    result = subprocess.run(command, cwd=pipeline, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    comparison = json.loads(result.stdout)["shadow"][version]
    assert comparison["rows"] == len(served) and 0 <= comparison["agreement"] < 1  # thresholds 0.1 vs the champion's
    assert comparison["labelled"]["rows"] == len(served) and comparison["labelled"]["p_value"] is not None
