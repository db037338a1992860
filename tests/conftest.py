"""Shared fixtures: ONE pipeline run per test session, in a temporary copy of the project.

The copy has its own git repository, DVC cache and remote, MLflow store and logs, so the suite
never touches the user's. A small test profile of params keeps it fast; every test that needs
pipeline outputs reuses the same run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# `make test` runs pytest with two workers (pytest-xdist), one per core: each worker and everything it
# starts (stage notebooks, services, tuning workers) uses one OpenMP/BLAS thread, since two processes with
# the default two spinning threads each on 2 cores slow each other many times.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_threads] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from workspace import BIN, ROOT, commit_all, deep_update, make_copy, repro, run  # noqa: E402

__all__ = ["BIN", "ROOT", "commit_all", "dvc", "make_copy", "repro", "run"]

# Smaller than the shipped params: fewer folds and resamples, same families and data.
TEST_PROFILE = {
    "train": {
        "cv_folds": 3,
        "candidates": ["dummy", "logreg", "random_forest"],
        "random_forest": {"n_estimators": 50, "max_depth": 10, "min_samples_split": 5},
        "selection_max_rows": 3000,  # binds on Telco's 4,895 training rows: the capped path runs end to end
    },
    "featurize": {"ablation": {"repeats": 1}},
    "evaluate": {"bootstrap_samples": 200},
    "tune": {"n_trials": 6, "max_rows": 3000},
}
# For tests of data handling and infrastructure (your own data, past one machine), where the model's quality
# is not what is checked: the tuned family is logistic regression (trials of well under a second, not ~4 s of
# boosting) and the block ablation reads 1,000 rows. The pipeline's own tests keep TEST_PROFILE.
LIGHT_PROFILE = deep_update(copy.deepcopy(TEST_PROFILE), {
    "tune": {"family": "logreg"},
    "featurize": {"ablation": {"max_rows": 1000}},
})  # fmt: skip


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], root, check=check)


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


# Fixtures that run the pipeline (or a stage of it) or build a project copy. A test that uses one,
# directly or through another fixture, is marked `slow`: `make test-fast` (`-m "not slow"`) leaves it
# out for the edit loop; `make test` runs every test.
SLOW_FIXTURES = {
    "pipeline", "serving_pipeline", "checkout", "prepared_copy", "guide_example", "bank", "walkthrough", "postgres"
}  # fmt: skip

# Under `pytest -n 2` (pytest-xdist) a session or module fixture is built once per worker that needs it, so the
# tests sharing a costly fixture form one group, run by one worker: the first fixture listed here that a test
# uses (directly or through another fixture) names its group; every other test is a group of its own. The
# workers write each test's group to a file while collecting and the scheduler below reads it (xdist's own
# `--dist loadgroup` cannot be used: it renames test ids in a way pytest 9 no longer honours).
WORKER_GROUPS = {  # first match wins: the service's tests use `pipeline` too (test_serve.py aliases it)
    "serving_pipeline": "serving",
    "pipeline": "pipeline",
    "guide_example": "byod-guide",
    "bank": "byod-bank",
    "walkthrough": "scale",
    "checkout": "checkout",
    "prepared_copy": "prepared-copy",
}
GROUPS_FILE = "CHURNLAB_TEST_GROUPS_FILE"


def pytest_configure(config):
    "The controller names the file its workers write the groups to (they inherit its environment)."
    if not os.environ.get("PYTEST_XDIST_WORKER") and getattr(config.option, "numprocesses", None):
        os.environ[GROUPS_FILE] = str(Path(tempfile.mkdtemp(prefix="churnlab-test-groups-")) / "groups.json")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    "xdist's scope scheduling with a test's WORKER_GROUPS group as its scope: a group runs whole on one worker."
    from xdist.scheduler import LoadScopeScheduling

    class FixtureGroupScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # read once the workers have collected
                self.groups = json.loads(Path(os.environ[GROUPS_FILE]).read_text())
            return self.groups.get(nodeid, nodeid)

    return FixtureGroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the `slow` mark
def pytest_collection_modifyitems(items):
    """Mark tests `slow` by the fixtures they use; under xdist, write their worker groups (WORKER_GROUPS);
    tests marked `mutates_pipeline` run after all the others (in their group: after the pipeline's other tests)."""
    groups = {}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        group = next((g for f, g in WORKER_GROUPS.items() if f in fixtures), None)
        if group is not None:
            groups[item.nodeid] = group
    items.sort(key=lambda item: item.get_closest_marker("mutates_pipeline") is not None)
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(GROUPS_FILE):
        from churnlab import files  # atomic: both workers write the same file for the scheduler

        files.atomic_write_text(os.environ[GROUPS_FILE], json.dumps(groups))


@pytest.fixture(scope="session", autouse=True)
def user_state_untouched():
    "The suite leaves the user's repository, MLflow store, DVC cache and logs as they were."
    before = _fingerprint_user_state()
    yield
    after = _fingerprint_user_state()
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"the test suite changed the user's {changed}"


def _reproduced_copy(tmp_path_factory, name: str) -> Path:
    "The project reproduced (test profile) in a fresh temporary copy, committed; what `dvc repro` showed is kept."
    root = make_copy(tmp_path_factory.mktemp(name) / "project", TEST_PROFILE)
    result = repro(root)
    (root.parent / "repro.terminal").write_text(result.stdout + result.stderr)
    commit_all(root, "reproduced")
    return root


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    "The project reproduced once (test profile) in a temporary copy; tests must leave it as found."
    return _reproduced_copy(tmp_path_factory, "pipeline")


@pytest.fixture(scope="session")
def serving_pipeline(tmp_path_factory) -> Path:
    """A second reproduced copy, for the service's tests and the rerun check: under `make test` one worker holds
    each copy, so the pipeline's tests and the service's run side by side (one copy made them ~18 of the
    suite's ~19 minutes on one worker while the other waited)."""
    return _reproduced_copy(tmp_path_factory, "serving")
