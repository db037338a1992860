"""The notebook workflow: the pre-commit hook cleans notebooks, git diffs and merges them with nbdime."""

from __future__ import annotations

import json
import shutil
import subprocess

import nbformat
from conftest import BIN, ROOT


def test_notebooks_use_nbdime_for_diff_and_merge():
    attributes = (ROOT / ".gitattributes").read_text()
    assert "*.ipynb diff=jupyternotebook merge=jupyternotebook" in attributes
    assert (BIN / "git-nbdiffdriver").exists() and (BIN / "git-nbmergedriver").exists()


def test_pre_commit_hook_cleans_a_dirty_notebook(tmp_path):
    "A commit of a notebook with execution counts and stray metadata is stopped and the notebook cleaned."
    for name in (".pre-commit-config.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=7, metadata={"collapsed": True, "scrolled": True})
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=7)]
    (tmp_path / "nbs").mkdir()
    notebook = tmp_path / "nbs" / "dirty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), notebook)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(BIN / "pre-commit"), "install"], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    stopped = subprocess.run([*git, "commit", "-qm", "dirty"], cwd=tmp_path, capture_output=True, text=True)
    assert stopped.returncode != 0 and "files were modified by this hook" in stopped.stderr, stopped.stderr
    cleaned = json.loads(notebook.read_text())
    assert cleaned["cells"][0]["execution_count"] is None and cleaned["cells"][0]["metadata"] == {}
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    committed = subprocess.run([*git, "commit", "-qm", "clean"], cwd=tmp_path, capture_output=True, text=True)
    assert committed.returncode == 0, committed.stdout + committed.stderr
