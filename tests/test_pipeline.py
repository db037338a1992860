"""The DVC pipeline: staleness is exact, reruns are byte-stable, lineage is recorded."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BIN, TEST_PROFILE, commit_all, dvc, make_copy, repro, run
from sklearn.metrics import roc_auc_score

from churnlab import splits


def stale_stages(root: Path) -> set[str]:
    """Stages `dvc status` reports as changed (the data.dvc file excluded). DVC's own status, called in
    this process (what `dvc status --json` prints), so the params sweep does not start ~150 CLIs."""
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:  # stage names are relative to the working directory
        return {name for name in repo.status() if not name.endswith(".dvc")}


def pipeline_graph(root: Path) -> tuple[dict, dict[str, set[str]]]:
    "Stages of dvc.yaml and, per stage, the stages downstream of it (itself included)."
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]

    def outs(spec):
        return {
            next(iter(o)) if isinstance(o, dict) else o
            for key in ("outs", "metrics", "plots")
            for o in spec.get(key, [])
        }

    def consumers(stage):
        produced = outs(stages[stage])
        return {s for s, spec in stages.items() if any(d in produced for d in spec.get("deps", []))}

    downstream = {}
    for stage in stages:
        seen, todo = {stage}, [stage]
        while todo:
            for nxt in consumers(todo.pop()) - seen:
                seen.add(nxt)
                todo.append(nxt)
        downstream[stage] = seen
    return stages, downstream


def test_repro_ends_clean_and_second_repro_does_nothing(pipeline):
    assert stale_stages(pipeline) == set()
    out = dvc(pipeline, "repro").stdout
    assert "Running stage" not in out, out


def test_stage_notebook_outputs_and_ids_do_not_make_stages_stale(pipeline):
    originals = {p: p.read_bytes() for p in (pipeline / "nbs" / "stages").glob("*.ipynb")}
    assert originals, "stage notebooks (paired .ipynb) are expected in nbs/stages"
    try:
        for path in originals:
            nb = nbformat.read(path, as_version=4)
            for i, cell in enumerate(nb.cells):
                cell["id"] = f"rewritten{i:04d}"
                if cell.cell_type == "code":
                    cell["execution_count"] = 100 + i
                    cell["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text=f"output {i}\n")]
            nbformat.write(nb, path)
        assert stale_stages(pipeline) == set()
    finally:
        for path, data in originals.items():
            path.write_bytes(data)


# DVC reports a stage as changed when one of ITS dependencies changed; its descendants re-run
# when the outputs they read actually change (dvc repro propagates, dvc status cannot know yet).
# So "stale" below is: dvc status lists exactly the stage, and nothing outside its descendants.
@pytest.mark.parametrize("stage", ["prepare", "featurize", "tune", "train", "evaluate", "monitor"])
def test_code_change_in_one_stage_notebook_makes_only_it_and_descendants_stale(pipeline, stage):
    _, downstream = pipeline_graph(pipeline)
    path = pipeline / "nbs" / "stages" / f"{stage}.py"
    original = path.read_text()
    try:
        path.write_text(original.rstrip("\n") + "\nx = 1\n")
        stale = stale_stages(pipeline)
        assert stale == {stage} and stale <= downstream[stage]
    finally:
        path.write_text(original)
    assert stale_stages(pipeline) == set()


def test_library_module_change_makes_exactly_its_importers_stale(pipeline):
    stages, downstream = pipeline_graph(pipeline)
    path = pipeline / "src" / "churnlab" / "evaluate.py"
    original = path.read_text()
    try:
        path.write_text(original + "\n_unused = 1\n")
        assert stale_stages(pipeline) == {s for s, spec in stages.items() if "src/churnlab/evaluate.py" in spec["deps"]}
        path.write_text(original)
        (path.parent / "_modidx.py").write_text((path.parent / "_modidx.py").read_text() + "\n")
        assert stale_stages(pipeline) == set()
    finally:
        path.write_text(original)
        run(["git", "checkout", "src/churnlab/_modidx.py"], pipeline)


def _leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, tree


def _mutated(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list):
        return [*value, "__mutated__"]
    return f"{value}_mutated" if value is not None else 1


# Read by `churnlab serve` / `churnlab monitor` only: changing one must leave every stage fresh.
READ_OUTSIDE_THE_PIPELINE = (
    "serve",
    "monitor.retrain",
    "monitor.webhook_url",
    "monitor.pushgateway_url",
    "monitor.textfile",
    "monitor.history_url",
    "monitor.shadow_bootstrap_samples",  # churnlab monitor's paired test on live labels
)


def test_each_params_key_makes_exactly_its_declared_consumers_stale(pipeline):
    assert set(json.loads(dvc(pipeline, "status", "--json").stdout or "{}")) <= {"data.dvc"}  # the CLI agrees
    stages, downstream = pipeline_graph(pipeline)
    params_path = pipeline / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    mismatches = []
    try:
        for key, value in _leaves(params):
            dotted = ".".join(key)
            consumers = {
                s
                for s, spec in stages.items()
                if any(dotted == p or dotted.startswith(f"{p}.") for p in spec.get("params", []))
            }
            outside = any(dotted == p or dotted.startswith(f"{p}.") for p in READ_OUTSIDE_THE_PIPELINE)
            assert consumers or outside, f"params key {dotted} is read by no stage"
            reachable = set().union(*(downstream[s] for s in consumers))
            changed = yaml.safe_load(original)
            node = changed
            for part in key[:-1]:
                node = node[part]
            node[key[-1]] = _mutated(value)
            params_path.write_text(yaml.safe_dump(changed, sort_keys=False))
            stale = stale_stages(pipeline)
            if stale != consumers or not stale <= reachable:
                mismatches.append((dotted, stale, consumers))
    finally:
        params_path.write_text(original)
    assert not mismatches, mismatches
    assert stale_stages(pipeline) == set()


def test_predict_cli_gives_the_probabilities_evaluate_used(pipeline, tmp_path):
    out = tmp_path / "preds.csv"
    run([str(BIN / "churnlab"), "predict", "artifacts/prepared/test.parquet", "-o", str(out)], pipeline)
    preds = pd.read_csv(out)
    used = pd.read_parquet(pipeline / "artifacts/evaluate/test_scores.parquet")
    assert list(preds.columns) == ["rownames", "prediction", "probability"]
    assert len(preds) == len(used)
    assert np.abs(preds["probability"].to_numpy() - used["probability"].to_numpy()).max() <= 1e-9
    metrics = json.loads((pipeline / "reports/metrics.json").read_text())
    assert abs(roc_auc_score(used["y"], preds["probability"]) - metrics["roc_auc"]) <= 1e-6
    threshold = json.loads((pipeline / "artifacts/model/churnlab.json").read_text())["threshold"]
    assert (preds["prediction"] == (preds["probability"] >= threshold)).all()


def test_metrics_have_the_design_keys_and_no_run_ids(pipeline):
    metrics = json.loads((pipeline / "reports/metrics.json").read_text())
    for key in ("roc_auc", "pr_auc", "accuracy", "f1", "log_loss", "brier", "threshold", "model"):
        assert key in metrics
    assert len(metrics) <= 12 and all(not isinstance(v, list | dict) for v in metrics.values())  # the headline
    intervals = json.loads((pipeline / "reports/evaluation.json").read_text())
    lo, hi = intervals["roc_auc_ci95"]
    assert lo < metrics["roc_auc"] < hi
    assert not any(k in json.dumps(metrics) for k in ("run_id", "seconds", "version"))
    for plot in ("roc", "precision_recall", "calibration", "confusion_matrix", "feature_importance", "lift"):
        assert (pipeline / "reports/plots" / f"{plot}.png").stat().st_size > 1000


def test_pipeline_files_have_the_typed_shapes_and_sit_where_the_layout_says(pipeline):
    from churnlab import files, structures

    layout = files.Layout(pipeline)
    missing = [name for name, relative in files.Layout.paths().items() if not (pipeline / relative).exists()]
    assert missing == [], missing  # every named path is written by `dvc repro`
    contract = json.loads(layout.contract.read_text())
    spec = json.loads(layout.feature_spec.read_text())
    meta = json.loads((layout.model / "churnlab.json").read_text())
    documents = [(contract, structures.Contract), (contract["split"], structures.SplitRecord)]
    documents += [(spec, structures.FeatureSpec), (meta, structures.ArtifactMeta)]
    documents += [(rule, structures.ColumnRule) for rule in contract["columns"].values()]
    documents += [(block, structures.FeatureBlock) for block in spec["blocks"]]
    for document, shape in documents:
        assert structures.missing_keys(document, shape) == [], (shape.__name__, document)
        assert structures.unknown_keys(document, shape) == [], (shape.__name__, document)
    assert meta["contract"] == contract and len(contract["columns"]) > 10 and len(spec["blocks"]) > 1
    lock = yaml.safe_load((pipeline / "dvc.lock").read_text())
    model_out = next(o for o in lock["stages"]["train"]["outs"] if o["path"] == files.Layout.paths()["model"])
    assert files.dvc_dir_md5(layout.model) == model_out["md5"]  # one folder hash, the same as DVC's


def test_mlflow_records_lineage_of_every_stage_and_the_registered_version(pipeline):
    from mlflow import MlflowClient

    data_md5 = yaml.safe_load((pipeline / "data.dvc").read_text())["outs"][0]["md5"]
    lock = yaml.safe_load((pipeline / "dvc.lock").read_text())
    commits = run(["git", "rev-list", "HEAD"], pipeline).stdout.split()
    client = MlflowClient(f"sqlite:///{pipeline}/mlflow.db")
    experiment = client.get_experiment_by_name("churnlab")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    latest, trials = {}, []
    for r in runs:
        if "mlflow.parentRunId" in r.data.tags:  # a tuning trial, nested in the tune stage's run
            trials.append(r)
        else:
            latest.setdefault(r.data.tags["dvc_stage"], r)
    assert set(latest) == {"prepare", "featurize", "tune", "train", "evaluate", "monitor"}
    tune_runs = {r.info.run_id for r in runs if r.data.tags.get("dvc_stage") == "tune"}
    numbers = {int(t.data.tags["optuna_trial"]) for t in trials if t.data.tags["mlflow.parentRunId"] in tune_runs}
    assert numbers == set(range(TEST_PROFILE["tune"]["n_trials"])) and all(t.data.params for t in trials)
    for stage, r in latest.items():
        tags = r.data.tags
        assert tags["git_commit"] in commits and tags["git_dirty"] in ("true", "false")
        assert tags["data_md5"] == data_md5
        assert f"dep_md5.nbs/stages/{stage}.py" in tags
        assert r.data.params, stage
        # the data the run read, as MLflow inputs: the DVC path and the md5 dvc.lock records for it
        logged = {json.loads(i.dataset.source)["uri"]: i.dataset.digest for i in r.inputs.dataset_inputs}
        expected = {
            d["path"]: d["md5"]
            for d in lock["stages"][stage]["deps"]
            if d["path"] == "data" or d["path"].endswith(".parquet")
        }
        assert logged == expected and expected, (stage, logged, expected)
    promotion = json.loads((pipeline / "reports/promotion.json").read_text())
    version = client.get_model_version(promotion["registered_model"], promotion["registered_version"])
    assert version.tags["data_md5"] == data_md5


def test_capped_steps_record_their_rows_and_the_candidate_is_fitted_on_every_row(pipeline):
    from mlflow import MlflowClient

    train_rows = len(pd.read_parquet(pipeline / "artifacts/prepared/train.parquet"))
    cap = TEST_PROFILE["train"]["selection_max_rows"]
    rows = json.loads((pipeline / "artifacts/model/churnlab.json").read_text())["rows"]
    assert rows["final_fit"] == train_rows > cap
    share = yaml.safe_load((pipeline / "params.yaml").read_text())["tune"]["share"]
    tuning = splits.tuning_cap(train_rows, share, TEST_PROFILE["tune"]["max_rows"])  # half the rows, at most 3,000
    assert abs(rows["selection"] - cap) <= 1 and abs(rows["tuning"] - tuning) <= 1 and rows["tuning"] < train_rows
    assert rows["tuning_excluded"] == 0  # the tuned hist_gb is not among TEST_PROFILE's candidates
    card = (pipeline / "reports/model_card.md").read_text()
    assert f"| final fit (all training rows) | {train_rows:,} |" in card
    assert f"| family selection, calibration, threshold (`train.selection_max_rows`) | {rows['selection']:,} |" in card
    client = MlflowClient(f"sqlite:///{pipeline}/mlflow.db")
    experiment = client.get_experiment_by_name("churnlab")
    latest = {}
    for r in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"]):
        if "mlflow.parentRunId" not in r.data.tags:
            latest.setdefault(r.data.tags["dvc_stage"], r.data.metrics)
    assert latest["train"]["selection_rows"] == rows["selection"] and latest["train"]["final_fit_rows"] == train_rows
    assert latest["tune"]["trial_rows"] == rows["tuning"] and latest["featurize"]["ablation_rows"] == train_rows
    assert latest["evaluate"]["importance_rows"] == json.loads((pipeline / "reports/metrics.json").read_text())["n"]


def test_model_card_shows_slices_with_intervals_and_marks_the_small_ones(pipeline):
    section = (pipeline / "reports/model_card.md").read_text().split("## Slices")[1].split("\n## ")[0]
    header, _, *rows = [line for line in section.splitlines() if line.startswith("|")]
    expected = ["column", "level", "rows", "positives", "ROC-AUC [95% CI]", "recall", "judged"]
    assert [c.strip() for c in header.strip("|").split("|")] == expected
    contract = [[c.strip() for c in r.strip("|").split("|")] for r in rows if r.startswith("| contract ")]
    assert len(contract) == 3  # Month-to-month, One year, Two year
    for _, _, n, positives, auc, _, judged in contract:
        low, high = map(float, re.search(r"\[(\S+), (\S+)\]", auc).groups())
        assert low <= float(auc.split()[0]) <= high
        assert (judged == "yes") == (min(int(positives), int(n) - int(positives)) >= 10)


def test_model_card_ranks_raw_columns_by_reason_codes_beside_permutation_importance(pipeline):
    section = (pipeline / "reports/model_card.md").read_text().split("## Importance (raw columns)")[1].split("\n## ")[0]
    header, _, *rows = [line for line in section.splitlines() if line.startswith("|")]
    assert "mean abs. contribution" in header and "permutation importance" in header
    contract = json.loads((pipeline / "artifacts/prepared/schema.json").read_text())
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert cells and {c[0] for c in cells} <= set(contract["columns"])  # raw columns, one-hot levels summed back
    assert "exact" in section or "estimated" in section  # says what the codes decompose


def test_long_stages_draw_progress_on_the_terminal_of_dvc_repro(pipeline):
    terminal = (pipeline.parent / "repro.terminal").read_text()
    assert (
        "tune: trials" in terminal
        and f"{TEST_PROFILE['tune']['n_trials']}/{TEST_PROFILE['tune']['n_trials']}" in terminal
    )
    assert "train: CV folds + final fit" in terminal and "featurize: ablation folds" in terminal


def test_featurize_report_has_the_block_ablation_of_this_data(pipeline):
    ablation = json.loads((pipeline / "reports/ablation.json").read_text())
    assert ablation["base"]["gain"] == 0 and not ablation["base"]["helps"]
    measured = {"group_aggregates", "ratios", "binning", "polynomial", "select_k_best", "resample: smote"}
    assert measured <= set(ablation) and "date_parts" not in ablation  # Telco has no date column
    for name, row in ablation.items():
        assert 0.7 < row["roc_auc"] < 1 and row["helps"] == (name != "base" and row["gain"] > row["se"])
        assert row["on"] is False  # the shipped blocks that apply to Telco are all off
    assert "Ablation: does each optional block help on this data?" in (pipeline / "reports/featurize.ipynb").read_text()


@contextlib.contextmanager
def busy_processes(n: int = 1):
    "`n` processes spinning on the CPU: a loaded machine, which no decision of the pipeline may feel."
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_rerun_is_byte_stable_and_retrained_equal_model_is_not_promoted(serving_pipeline, tmp_path):
    """A second clone reproduced from scratch while a busy process loads the machine (beside the other test
    worker) gives byte-identical metrics, intervals and tuned parameters (no clock, no machine load decides);
    evaluating the same model again registers a second version that is not promoted. The reference is the
    service's copy (conftest `serving_pipeline`), left untouched: the clone takes the second registration."""
    reference = serving_pipeline
    other = make_copy(tmp_path / "second-clone", TEST_PROFILE)
    with busy_processes(1):
        repro(other, "evaluate")  # the monitor stage's report is checked in test_monitor
    for name in ("reports/metrics.json", "reports/evaluation.json", "artifacts/tune/best_params.json"):
        assert (other / name).read_bytes() == (reference / name).read_bytes(), name
    first = json.loads((other / "reports/promotion.json").read_text())
    repro(other, "-f", "-s", "evaluate")  # the same model evaluated and registered once more
    assert (other / "reports/metrics.json").read_bytes() == (reference / "reports/metrics.json").read_bytes()
    second = json.loads((other / "reports/promotion.json").read_text())
    assert second["registered_version"] != first["registered_version"]
    assert second["promoted"] is False and second["champion_version"] == first["champion_version"]


def test_promote_and_rollback_move_the_champion_alias(pipeline, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{pipeline}/mlflow.db")  # the registry resolves models: here

    promotion = json.loads((pipeline / "reports/promotion.json").read_text())
    name, champion = promotion["registered_model"], promotion["champion_version"]
    client = MlflowClient(f"sqlite:///{pipeline}/mlflow.db")
    registered = client.get_model_version(name, champion)  # a second version of the same artifact to move to
    copy = client.create_model_version(name, registered.source, tags=registered.tags, model_id=registered.model_id)
    other = str(copy.version)
    assert other != champion
    run([str(BIN / "churnlab"), "promote", other], pipeline)
    assert str(client.get_model_version_by_alias(name, "champion").version) == other
    run([str(BIN / "churnlab"), "rollback", champion], pipeline)
    assert str(client.get_model_version_by_alias(name, "champion").version) == champion
    result = run([str(BIN / "churnlab"), "promote", "999"], pipeline, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_predict_explain_adds_reason_codes(pipeline, tmp_path):
    out = tmp_path / "explained.csv"
    run(
        [str(BIN / "churnlab"), "predict", "artifacts/prepared/test.parquet", "-o", str(out), "--explain", "3"],
        pipeline,
    )
    frame = pd.read_csv(out)
    assert [c for c in frame.columns if c.startswith(("reason_", "contribution_"))] == [
        "reason_1",
        "contribution_1",
        "reason_2",
        "contribution_2",
        "reason_3",
        "contribution_3",
    ]
    assert (frame["contribution_1"].abs() >= frame["contribution_2"].abs()).all()
    contract = json.loads((pipeline / "artifacts/prepared/schema.json").read_text())
    named = set(frame[["reason_1", "reason_2", "reason_3"]].stack().dropna())
    assert named and named <= set(contract["columns"])  # raw columns: the one-hot levels are summed back


def test_dvc_push_and_pull_round_trip(pipeline, tmp_path):
    commit_all(pipeline, "state to share")
    dvc(pipeline, "push")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(pipeline), str(clone)], tmp_path)
    (clone / ".dvc" / "config.local").write_text((pipeline / ".dvc" / "config.local").read_text())
    dvc(clone, "pull")
    for path in ("data/wa_churn.csv", "artifacts/prepared/train.parquet", "artifacts/model/model.skops"):
        assert (clone / path).read_bytes() == (pipeline / path).read_bytes()


def test_dvc_experiment_sweep_compares_in_exp_show_and_logs_to_the_real_store(pipeline):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{pipeline}/mlflow.db")
    experiment = client.get_experiment_by_name("churnlab")
    before = len(client.search_runs([experiment.experiment_id]))
    dvc(pipeline, "exp", "run", "--temp", "-n", "rf-sweep", "-S", "train.model=random_forest")
    shown = json.loads(dvc(pipeline, "exp", "show", "--json").stdout)
    text = json.dumps(shown)
    assert "rf-sweep" in text and "random_forest" in text
    # the README's way to read it fits a wide screen: every cell whole, no "…" from a squeezed column
    table = run(f"COLUMNS=250 {BIN / 'dvc'} exp show --only-changed --no-pager", pipeline).stdout
    assert "rf-sweep" in table and "…" not in table
    assert max(len(line) for line in table.splitlines()) <= 250, table
    runs = client.search_runs([experiment.experiment_id], "tags.dvc_exp_name = 'rf-sweep'")
    assert {r.data.tags["dvc_stage"] for r in runs} == {"train", "evaluate", "monitor"}
    assert len(client.search_runs([experiment.experiment_id])) == before + 3
