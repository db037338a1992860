"""Temporary copies of the project, for the test suite and the benchmarks.

A copy is a fresh git repository holding the working tree (tracked and untracked, not ignored
files) and the raw data, with its own DVC cache, remote, MLflow store and logs, so nothing that
runs in it touches the user's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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


def deep_update(base: dict, extra: dict) -> dict:
    "`base` with `extra` merged in, section by section."
    for key, value in extra.items():
        base[key] = deep_update(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def commit_all(root: Path, message: str) -> None:
    "Commit everything in a copy (an empty commit when nothing changed)."
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", message],
    ):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)


def make_copy(dest: Path, params_update: dict | None = None) -> Path:
    "A fresh git repository holding the project's working tree and raw data, `params_update` applied."
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
    if params_update:
        from churnlab.config import read_yaml  # YAML 1.2: `yes` stays text

        params = read_yaml((dest / "params.yaml").read_text())
        (dest / "params.yaml").write_text(yaml.safe_dump(deep_update(params, params_update), sort_keys=False))
    remote = dest.parent / f"{dest.name}-remote"
    (dest / ".dvc" / "config.local").write_text(f"['remote \"local\"']\n    url = {remote}\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True, capture_output=True)
    commit_all(dest, "copy")
    return dest


def repro(root: Path, *args: str) -> subprocess.CompletedProcess:
    "Create the copy's MLflow store, then `dvc repro`."
    run([str(BIN / "churnlab"), "init"], root)
    return run([str(BIN / "dvc"), "repro", *args], root)
