"""Shared fixtures: ONE pipeline run per test session, in a temporary copy of the project.

The copy has its own git repository, DVC cache and remote, MLflow store and logs, so the suite
never touches the user's. A small test profile of params keeps it fast; every test that needs
pipeline outputs reuses the same run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Smaller than the shipped params: fewer folds and resamples, same families and data.
TEST_PROFILE = {
    "train": {
        "cv_folds": 3,
        "candidates": ["dummy", "logreg", "random_forest"],
        "random_forest": {"n_estimators": 50, "max_depth": 10, "min_samples_split": 5},
    },
    "evaluate": {"bootstrap_samples": 200},
}


def project_env(root: Path) -> dict[str, str]:
    "Environment for commands run in a copy: its own MLflow store, no user overrides."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURNLAB_", "MLFLOW_", "DVC_"))}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}",
        MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db",
        MLFLOW_DISABLE_TELEMETRY="true",
        DVC_NO_ANALYTICS="1",
        MPLBACKEND="Agg",
    )
    return env


def run(cmd: list[str] | str, root: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    "Run a command in a project copy, capturing output; fail with the output when `check`."
    result = subprocess.run(
        cmd, cwd=root, env=project_env(root), capture_output=True, text=True, shell=isinstance(cmd, str), **kw
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], root, check=check)


def deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        base[key] = deep_update(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def make_copy(dest: Path, profile: dict | None = TEST_PROFILE) -> Path:
    "A fresh git repository holding the project's working tree (and raw data), test params applied."
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if (ROOT / "data").is_dir():
        shutil.copytree(ROOT / "data", dest / "data")
    else:
        from churnlab.data import write_default_data

        write_default_data(dest / "data" / "wa_churn.csv")
    if profile:
        params = yaml.safe_load((dest / "params.yaml").read_text())
        (dest / "params.yaml").write_text(yaml.safe_dump(deep_update(params, profile), sort_keys=False))
    (dest / ".dvc" / "config.local").write_text(
        f"['remote \"local\"']\n    url = {dest.parent / (dest.name + '-remote')}\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True, capture_output=True)
    commit_all(dest, "copy")
    return dest


def repro(root: Path, *args: str) -> subprocess.CompletedProcess:
    run([str(BIN / "churnlab"), "init"], root)
    return dvc(root, "repro", *args)


def _fingerprint_user_state() -> dict[str, str]:
    "What the suite must never change in the user's checkout."
    state = {
        "git_status": subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    }
    for name in ("mlflow.db", "dvc.lock", "params.yaml", ".dvc/config"):
        path = ROOT / name
        state[name] = hashlib.md5(path.read_bytes()).hexdigest() if path.exists() else "absent"
    for folder in (".dvc/cache", "logs", ".optuna", "artifacts", "reports"):
        path = ROOT / folder
        state[folder] = str(sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*"))) if path.exists() else ""
    return state


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    "Under CHURNLAB_STRICT=1 (CI) a skipped test is a failure: nothing may silently not run."
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CHURNLAB_STRICT") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped under CHURNLAB_STRICT=1: {report.longrepr}"


@pytest.fixture(scope="session", autouse=True)
def user_state_untouched():
    "The suite leaves the user's repository, MLflow store, DVC cache and logs as they were."
    before = _fingerprint_user_state()
    yield
    after = _fingerprint_user_state()
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"the test suite changed the user's {changed}"


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    "The project reproduced once (test profile) in a temporary copy; tests must leave it as found."
    root = make_copy(tmp_path_factory.mktemp("pipeline") / "project")
    repro(root)
    commit_all(root, "reproduced")
    return root


def commit_all(root: Path, message: str) -> None:
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", message],
    ):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
