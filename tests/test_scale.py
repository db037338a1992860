"""Past one machine: the README's walk-through, extracted and run against the local stand-ins.

`make up` starts PostgreSQL (run by `nobody`), moto's S3 server and an MLflow server (PostgreSQL
backend, S3 artifacts) on free loopback ports; the README's shell blocks then reproduce the
pipeline on the server, push to an S3 DVC remote and pull into a fresh clone, run two tuning
workers on one PostgreSQL study and two serving replicas writing one PostgreSQL prediction log,
which `churnlab monitor` reads. The checks below query the services themselves. `make test-scale`
runs this file alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import standins
from conftest import LIGHT_PROFILE, ROOT
from workspace import make_copy, project_env

from churnlab import sinks

SECTION = "## Past one machine"
SERVE_PORTS = (8101, 8102)


def walkthrough_blocks(readme: str) -> list[str]:
    "The fenced `sh` blocks of the README's scaling section, in order."
    section = readme.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.M | re.S)


def test_the_scaling_section_is_a_walk_through_of_shell_blocks():
    blocks = walkthrough_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 7
    assert "make up" in blocks[0] and "make down" in blocks[-1]
    assert "dvc repro" in blocks[1] and "dvc push" in blocks[2] and "dvc pull" in blocks[3]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _run_script(script: str, cwd: Path, env: dict[str, str], log: Path) -> None:
    "Run shell blocks with bash (errexit, pipefail), in their own process group; fail with the log."
    process = subprocess.Popen(
        ["bash", "-c", f"set -euxo pipefail\n{script}"],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        returncode = process.wait(timeout=1500)
    finally:
        try:  # replicas or workers left behind by a failed step
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    assert returncode == 0, f"walk-through failed ({returncode}):\n{log.read_text()[-6000:]}"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    "Run every block but the last (`make down`) in a fresh copy; the services stay up for the checks."
    if not standins.PG_BINS or os.geteuid() != 0 or shutil.which("runuser") is None or shutil.which("curl") is None:
        pytest.skip("PostgreSQL server binaries, curl (or root, to run PostgreSQL as `nobody`): run `make test-deps`")
    busy = [port for port in SERVE_PORTS if not _port_is_free(port)]
    assert not busy, f"the walk-through serves on ports {SERVE_PORTS}; in use here: {busy}"
    base = tmp_path_factory.mktemp("scale")
    root = make_copy(base / "project", LIGHT_PROFILE)
    (root / ".venv").symlink_to(ROOT / ".venv")  # `make` in the copy finds the set-up virtualenv
    (base / "tmp").mkdir()
    ports = {"pg": standins.free_port(), "s3": standins.free_port(), "mlflow": standins.free_port()}
    env = project_env(root) | {f"STANDINS_{k.upper()}_PORT": str(v) for k, v in ports.items()}
    env |= {"TMPDIR": str(base / "tmp"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    blocks = walkthrough_blocks((root / "README.md").read_text())
    try:
        _run_script("\n".join(blocks[:-1]), root, env, base / "walkthrough.log")
        (clone,) = (base / "tmp").glob("*/churnlab")
        yield {"root": root, "clone": clone, "env": env, "blocks": blocks, "base": base,
               "services": standins.environment(ports)}  # fmt: skip
    finally:
        standins.down(root)


def test_the_pipeline_ran_on_the_tracking_server_with_s3_artifacts(walkthrough):
    from mlflow import MlflowClient

    services, root = walkthrough["services"], walkthrough["root"]
    client = MlflowClient(services["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    stages = {r.data.tags.get("dvc_stage") for r in runs}
    assert {"prepare", "featurize", "tune", "train", "evaluate", "monitor"} <= stages
    assert all(
        r.data.tags.get("git_commit") and r.data.tags.get("data_md5") for r in runs if r.data.tags.get("dvc_stage")
    )
    promotion = json.loads((root / "reports/promotion.json").read_text())
    model = client.get_registered_model(promotion["registered_model"])
    assert model.aliases["champion"] == promotion["champion_version"]
    assert not (root / "mlruns").exists()  # nothing went to a local store
    keys = _bucket_keys(services)
    assert any(k.startswith("mlflow/") and k.endswith("model.skops") for k in keys), keys[:20]


def _bucket_keys(services: dict[str, str]) -> list[str]:
    pages = standins.s3_client(services).get_paginator("list_objects_v2").paginate(Bucket=standins.BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_a_fresh_clone_pulls_the_data_and_the_outputs_from_s3(walkthrough):
    root, clone = walkthrough["root"], walkthrough["clone"]
    assert any(k.startswith("dvc/files/md5/") for k in _bucket_keys(walkthrough["services"]))
    for path in ("data/wa_churn.csv", "artifacts/prepared/train.parquet", "artifacts/model/model.skops"):
        assert (clone / path).read_bytes() == (root / path).read_bytes(), path
    env = walkthrough["env"] | walkthrough["services"]
    status = subprocess.run(["dvc", "status"], cwd=clone, env=env, capture_output=True, text=True, check=True)
    assert "up to date" in status.stdout


def test_two_tuning_workers_share_one_postgresql_study(walkthrough):
    import optuna

    storage = walkthrough["services"]["CHURNLAB_TUNE_STORAGE"]
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert len(trials) == LIGHT_PROFILE["tune"]["n_trials"] + 4 + 4  # the stage's, then 4 per worker
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # none lost, none twice
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in finished for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)


def test_two_replicas_write_one_prediction_log_that_the_monitor_reads(walkthrough):
    import pandas as pd
    from sqlalchemy import create_engine

    clone = walkthrough["clone"]
    holdout = pd.read_parquet(clone / "artifacts/prepared/holdout.parquet")
    engine = create_engine(walkthrough["services"]["CHURNLAB_PREDICTION_LOG_URL"])
    try:
        log = pd.read_sql_table("predictions", engine)
    finally:
        engine.dispose()
    assert len(log) == len(holdout)
    per_request = log.groupby("request_id")["idx"].agg(["count", "max"])
    assert sorted(per_request["count"]) == [len(holdout) // 2, len(holdout) - len(holdout) // 2]
    assert (per_request["max"] + 1 == per_request["count"]).all()
    report = json.loads((clone / "monitoring-shared.json").read_text())
    assert report["source"] == "predictions" and report["rows"] == len(holdout)
    promotion = json.loads((walkthrough["root"] / "reports/promotion.json").read_text())
    assert set(log["model_version"]) == {promotion["champion_version"]}
    history = sinks.read_history(walkthrough["services"]["CHURNLAB_MONITORING_HISTORY_URL"])
    assert "predictions" in set(history["source"])  # the shared history (PostgreSQL), beside the demo runs


def test_make_down_stops_the_stand_ins(walkthrough):
    services, root = walkthrough["services"], walkthrough["root"]
    env = walkthrough["env"] | {"OLDPWD": str(root)}
    _run_script(walkthrough["blocks"][-1], walkthrough["clone"], env, walkthrough["base"] / "down.log")
    assert not (root / ".standins").exists()
    for url in (services["MLFLOW_TRACKING_URI"], services["AWS_ENDPOINT_URL"], services["CHURNLAB_TUNE_STORAGE"]):
        port = int(re.search(r":(\d+)(/|$)", url.split("@")[-1]).group(1))
        assert _port_is_free(port), url
