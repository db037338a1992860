"""Tuning: exact top-ups, parallel workers on the journal file and on a real PostgreSQL, heartbeats,
and target encoding that does not leak."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy
import standins
from conftest import BIN, TEST_PROFILE, make_copy
from workspace import deep_update, project_env

from churnlab import config, features, models, selection, splits, tune, workflow


@pytest.fixture(scope="session")
def tune_project(pipeline, tmp_path_factory) -> Path:
    "A copy with the pipeline's prepared data and feature spec, and 1 s heartbeats; tests may edit it."
    profile = deep_update(deep_update({}, TEST_PROFILE), {"tune": {"heartbeat_interval": 1, "grace_period": 2}})
    root = make_copy(tmp_path_factory.mktemp("tune") / "project", profile)
    for folder in ("artifacts/prepared", "artifacts/features"):
        shutil.copytree(pipeline / folder, root / folder, dirs_exist_ok=True)
    subprocess.run([str(BIN / "churnlab"), "init"], cwd=root, env=project_env(root), check=True, capture_output=True)
    return root


def _session(root: Path, storage: str, **overrides):
    params = {**config.params_section("tune", root=root), **overrides}
    os.environ["CHURNLAB_TUNE_STORAGE"] = storage
    try:
        return workflow.tuning_session(params, root, seed=params["seed"])
    finally:
        os.environ.pop("CHURNLAB_TUNE_STORAGE")


def _workers(root: Path, storage: str, n_workers: int, n_trials: int) -> list[subprocess.Popen]:
    # One OpenMP thread per worker: workers sharing 2 cores with 2 spinning threads each crawl.
    env = {**project_env(root), "CHURNLAB_TUNE_STORAGE": storage, "OMP_NUM_THREADS": "1"}
    command = [str(BIN / "churnlab"), "tune", "--n-trials", str(n_trials)]
    return [
        subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n_workers)
    ]


def test_raising_n_trials_from_n_to_n_plus_k_runs_exactly_k_trials(tune_project, tmp_path):
    storage = str(tmp_path / "journal.log")
    study, objective = _session(tune_project, storage)
    assert tune.top_up(study, objective, 3) == 3
    study, objective = _session(tune_project, storage)
    assert tune.top_up(study, objective, 3) == 0
    study, objective = _session(tune_project, storage)
    assert tune.top_up(study, objective, 5) == 2
    assert [t.number for t in study.get_trials()] == [0, 1, 2, 3, 4] and tune.finished_trials(study) == 5


def test_a_fresh_study_gives_byte_identical_best_params(pipeline, tune_project, tmp_path):
    "What a second clone's tune stage does (fresh storage, same data and seed) gives the same bytes."
    n_trials = config.params_section("tune", root=pipeline)["n_trials"]
    study, objective = _session(tune_project, str(tmp_path / "journal.log"))
    tune.top_up(study, objective, n_trials)
    assert tune.best_params_json(tune.best_record(study)) == (pipeline / "artifacts/tune/best_params.json").read_text()


def test_a_featurize_change_starts_a_new_study(pipeline, tune_project, tmp_path):
    "Another feature spec (or tune.fixed, tune.seed) is another objective: the old trials are never reused."
    stored = json.loads((pipeline / "artifacts/tune/best_params.json").read_text())["study_name"]
    storage = str(tmp_path / "journal.log")
    assert _session(tune_project, storage)[0].study_name == stored  # same tracked inputs: the same study
    spec_path = tune_project / "artifacts/features/spec.json"
    spec = json.loads(spec_path.read_text())
    spec_path.write_text(json.dumps({**spec, "scale_numeric": not spec["scale_numeric"]}))
    try:
        changed = _session(tune_project, storage)[0]
        assert changed.study_name != stored and tune.finished_trials(changed) == 0
    finally:
        spec_path.write_text(json.dumps(spec))
    assert _session(tune_project, storage, seed=7)[0].study_name != stored


def test_a_study_made_for_other_data_is_refused(tune_project, tmp_path):
    storage = str(tmp_path / "journal.log")
    study, _ = _session(tune_project, storage, study_name="named")
    setup = {**study.user_attrs["setup"], "data_md5": "other"}
    with pytest.raises(tune.StudyMismatchError, match="differs in: data_md5"):
        tune.open_study(tune.make_storage(storage), "named", setup)


def _assert_six_contiguous(trials):
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in tune.FINISHED for t in trials)


def test_two_parallel_workers_on_the_journal_file(tune_project, tmp_path):
    storage = str(tmp_path / "journal.log")
    workers = _workers(tune_project, storage, n_workers=2, n_trials=3)
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-2000:]
    study, _ = _session(tune_project, storage)
    _assert_six_contiguous(study.get_trials())


@pytest.fixture(scope="session")
def postgres():
    "A real PostgreSQL (Debian's package) on loopback, run by the unprivileged user `nobody` (as `make up` runs it)."
    if not standins.PG_BINS or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("PostgreSQL server binaries (or root, to run them as `nobody`) missing: run `make test-deps`")
    data_dir = Path(tempfile.mkdtemp(prefix="churnlab-pg-", dir="/tmp"))
    try:
        yield standins.start_postgres(data_dir, standins.free_port(), ("shared", "heartbeat"))
    finally:
        standins.stop_postgres(data_dir)


def test_two_workers_share_a_postgresql_study(tune_project, postgres):
    storage = f"{postgres}/shared"
    study, _ = _session(tune_project, storage)  # as the tune stage (or `churnlab tune --n-trials 0`) creates it
    workers = _workers(tune_project, storage, n_workers=2, n_trials=3)
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-2000:]
    _assert_six_contiguous(study.get_trials())


def _beating(engine: sqlalchemy.Engine) -> set[int]:
    "Ids of the trials with a heartbeat recorded (Optuna's `trial_heartbeats` table)."
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}


def test_a_killed_worker_leaves_no_running_trial_after_the_heartbeat_grace(tune_project, postgres):
    """A trial killed after its first heartbeat is failed by the next worker. (Optuna judges staleness by
    the heartbeat, so a trial killed in the milliseconds between its creation and its first heartbeat
    would stay RUNNING: the kill waits for a running trial that has one, or the test would be a race.)"""
    storage = f"{postgres}/heartbeat"
    study, _ = _session(tune_project, storage)
    (worker,) = _workers(tune_project, storage, n_workers=1, n_trials=1000)
    deadline, killed, engine = time.time() + 120, [], sqlalchemy.create_engine(storage)  # one pool for every poll
    try:
        while time.time() < deadline and not killed:
            trials = study.get_trials(deepcopy=False)
            if any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
                beating = _beating(engine)
                running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
                killed = [t.number for t in running if t._trial_id in beating]
            if not killed:
                time.sleep(0.1)
    finally:
        engine.dispose()
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert killed, "no running trial with a heartbeat within 120 s; nothing to check"
    killed = [t.number for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert killed, "the worker finished its trial before the kill; nothing to check"
    time.sleep(3)  # past the 2 s grace period
    (again,) = _workers(tune_project, storage, n_workers=1, n_trials=1)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    trials = {t.number: t.state for t in study.get_trials()}
    assert optuna.trial.TrialState.RUNNING not in trials.values()
    assert all(trials[n] == optuna.trial.TrialState.FAIL for n in killed)


def _telco_cv_auc(pipeline_root: Path, extra_random_ids: bool, only_ids: bool = False) -> float:
    rows = workflow.training_rows(pipeline_root)
    contract, X, y = rows.contract, rows.X, rows.y
    columns = dict(contract["columns"])
    if extra_random_ids:
        X = X.assign(random_id=[f"id{i}" for i in np.random.default_rng(0).permutation(len(X))])
        columns["random_id"] = {"role": "high_cardinality", "dtype": "str"}
    if only_ids:
        columns = {"random_id": columns["random_id"]}
    spec, _ = features.feature_spec({**contract, "columns": columns}, {"high_cardinality": "target"})
    splitter = splits.cv_splitter("stratified", 5, 42)
    return selection.cross_validate(models.make_pipeline(spec, "logreg"), X, y, splitter)["mean"]


def test_target_encoded_unique_ids_carry_no_signal_in_cv(pipeline):
    assert 0.47 <= _telco_cv_auc(pipeline, extra_random_ids=True, only_ids=True) <= 0.53
    plain, with_ids = _telco_cv_auc(pipeline, False), _telco_cv_auc(pipeline, True)
    assert abs(with_ids - plain) < 0.005, (plain, with_ids)


def test_the_network_family_tunes_too(tune_project, tmp_path):
    study, objective = _session(tune_project, str(tmp_path / "journal.log"), family="nn", cv_folds=2)
    assert tune.top_up(study, objective, 2) == 2
    best = tune.best_record(study)
    assert best["family"] == "nn" and best["params"]["hidden_dims"] in ([64, 32], [128, 64], [256, 128])
    train_params = selection.with_tuned(config.params_section("train", root=tune_project), best)
    assert train_params["nn"]["lr"] == best["params"]["lr"] and train_params["nn"]["batch_size"] == 1024
