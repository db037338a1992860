"""Code behaviour: the notebook checks CI relies on, the CLI's errors, the shipped configuration."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import BIN, ROOT, make_copy, run


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    "A copy of the project's files (no pipeline run) for checks that edit notebooks."
    return make_copy(tmp_path_factory.mktemp("checkout") / "project")


def assert_check_fails_naming(root: Path, name: str) -> None:
    "The notebook check exits 1 and names `name`; the checkout's nbs/ and src/ are restored after."
    try:
        result = run([sys.executable, "tools/check_notebooks.py"], root, check=False)
        assert result.returncode == 1 and name in result.stderr
    finally:
        run(["git", "checkout", "--", "nbs", "src"], root)


def test_notebook_check_passes_on_the_committed_tree(checkout):
    result = run([sys.executable, "tools/check_notebooks.py"], checkout, check=False)
    assert result.returncode == 0, result.stderr


def test_notebook_check_fails_on_an_uncleaned_notebook(checkout):
    path = checkout / "nbs" / "01_data.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code["execution_count"] = 7
    code["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    code["metadata"]["collapsed"] = True
    nbformat.write(nb, path)
    assert_check_fails_naming(checkout, "01_data.ipynb")


def test_notebook_check_fails_when_src_is_out_of_sync(checkout):
    path = checkout / "nbs" / "00_config.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("#| export") and "def repo_root" in c.source)
    cell.source += "\n\n_edited_in_the_notebook_only = True"
    nbformat.write(nb, path)
    assert_check_fails_naming(checkout, "src/churnlab/config.py")


def test_notebook_check_fails_when_a_stage_pair_differs(checkout):
    path = checkout / "nbs" / "stages" / "train.py"
    path.write_text(path.read_text() + "\nx = 1\n")
    assert_check_fails_naming(checkout, "train.ipynb")


def test_ci_script_runs_make_test_strictly():
    text = (ROOT / ".ci" / "run").read_text()
    assert "CHURNLAB_STRICT=1" in text and "make test" in text


def test_dvc_config_has_analytics_off_and_a_default_remote():
    text = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in text and "remote = local" in text


def test_no_settings_ini_and_nbdev_config_in_pyproject():
    import tomllib

    assert not (ROOT / "settings.ini").exists()
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert cfg["lib_path"] == "src/churnlab"


def test_the_docs_benchmark_tables_are_what_bench_results_render_to(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import bench_tables

    assert set(bench_tables.blocks()) == set(bench_tables.RENDERERS)  # every renderer has its table, and back
    assert bench_tables.stale() == [], "run python tools/bench_tables.py (or make docs) and commit"
    # a figure typed over (here: one digit of a ROC-AUC) is found, and rewriting restores it
    index = ROOT / "nbs" / "02_features.ipynb"
    notebook = nbformat.read(index, as_version=4)
    cell = next(c for c in notebook.cells if "<!-- bench:ablation-telco -->" in c.source)
    block = bench_tables.BLOCK.search(cell.source)[0]
    typed = re.sub(r"0\.8(\d)", lambda m: f"0.8{(int(m[1]) + 1) % 10}", block, count=1)
    cell.source = cell.source.replace(block, typed)
    copy = tmp_path / "02_features.ipynb"
    nbformat.write(notebook, copy)
    assert bench_tables.stale([copy]) == [f"{copy}: ablation-telco"]
    assert bench_tables.write([copy]) == [copy] and bench_tables.stale([copy]) == []


def test_every_stage_reads_only_its_own_params_section():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, spec in stages.items():
        allowed = {stage, "data"} if stage == "prepare" else {stage}
        assert {p.split(".")[0] for p in spec["params"]} <= allowed, stage


def test_predict_reports_a_missing_column_without_a_traceback(pipeline, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("tenure,contract\n1,Month-to-month\n")
    result = run([str(BIN / "churnlab"), "predict", str(bad), "-o", str(tmp_path / "o.csv")], pipeline, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "column 'monthly_charges'" in result.stderr
    assert not (tmp_path / "o.csv").exists()
