# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: churnlab
#     language: python
#     name: churnlab
# ---

# %% [markdown]
# # Evaluate: the candidate on test, the registry and the promotion gate
#
# The candidate is scored **once** on the test split. The headline metrics go to `reports/metrics.json`
# (the DVC metric `dvc exp show` compares), their 95% bootstrap intervals to `reports/evaluation.json`; the
# plots and the model card are written under `reports/`. The candidate is registered, and the gate
# moves alias `champion` only when a paired bootstrap on the same test rows shows it better than
# the current champion by at least `margin` at one-sided p < `alpha`. Those rows are the test rows
# that neither model trained on: the champion may come from an earlier data version or other split
# settings, so its split rule (recorded in its contract) is recomputed on today's rows
# (`splits.trained_rows`) and every row it may have fitted is left out.

# %% tags=["parameters"]
section = "evaluate"

# %%
import json

import pandas as pd
from IPython.display import Image, Markdown, display
from sklearn.metrics import classification_report

from churnlab import config, data, evaluate, explain, files, models, registry, splits, track, workflow

library_warnings = track.collect_warnings()  # shown once, deduplicated, at the end
root = config.repo_root()
layout = files.Layout(root)
params = config.params_section(section, root=root)
pipeline, meta = models.load_model(layout.model)
contract = meta["contract"]
test = pd.read_parquet(layout.test)
y = data.encode_target(test[contract["target"]], contract["positive_label"])
X = test.drop(columns=[contract["target"]])

# %% [markdown]
# ## Metrics on test (scored once)

# %%
scored = models.score(pipeline, X, meta["threshold"])
proba = scored["probability"].to_numpy()
metrics = evaluate.classification_metrics(y, proba, meta["threshold"])
metrics["model"] = meta["family"]
n_boot, seed = params["bootstrap_samples"], params["seed"]
from sklearn.metrics import average_precision_score

# the intervals are details (reports/evaluation.json), not DVC metrics: `dvc exp show` keeps to the headline
intervals = {"roc_auc_ci95": list(evaluate.bootstrap_interval(y, proba, n_boot=n_boot, seed=seed)),
             "pr_auc_ci95": list(evaluate.bootstrap_interval(y, proba, average_precision_score, n_boot, seed)),
             "bootstrap_samples": n_boot}
display(pd.Series(metrics | intervals, name="test").to_frame())
labels = [f"not {contract['positive_label']}", str(contract["positive_label"])]
report = classification_report(y, scored["prediction"], target_names=labels, digits=4)
print(report)

# %% [markdown]
# ## Plots

# %%
plots_dir = layout.plots
plots_dir.mkdir(parents=True, exist_ok=True)
feature_columns = models.input_columns(pipeline)
# permutation importance ranks columns: on at most `evaluate.importance_max_rows` test rows (seeded, stratified)
X_importance, y_importance, _ = splits.capped(X[feature_columns], y, None, params.get("importance_max_rows"), seed)
importance = evaluate.permutation_importance_table(pipeline, X_importance, y_importance, seed=seed)
# beside it, on the same rows: the reason codes' mean absolute contribution per raw column (`explain`)
explainer = explain.make_explainer(pipeline, meta["feature_means"])
contribution = explain.global_importance(explainer, explain.transformed_features(pipeline, X_importance))
importance = importance.merge(contribution, on="feature", how="left").fillna({"mean_abs_contribution": 0.0})
figures = {
    "roc": evaluate.plot_roc(y, proba), "precision_recall": evaluate.plot_precision_recall(y, proba),
    "calibration": evaluate.plot_calibration(y, proba),
    "confusion_matrix": evaluate.plot_confusion_matrix(y, proba, meta["threshold"]),
    "feature_importance": evaluate.plot_feature_importance(importance),
    "score_distribution": evaluate.plot_score_distribution(y, proba), "lift": evaluate.plot_lift(y, proba),
}
for name, fig in figures.items():
    fig.savefig(plots_dir / f"{name}.png", metadata={"Software": None})
    display(Image(filename=str(plots_dir / f"{name}.png")))

# %% [markdown]
# ## Lift by decile and slices

# %%
lift = evaluate.lift_table(y, proba)
display(lift)
slice_columns = params.get("slice_columns") or [
    c for c in data.columns_by_role(contract, "categorical", "boolean")
    if 2 <= X[c].nunique() <= 10]
slices = evaluate.slice_metrics(X, y, proba, slice_columns, meta["threshold"], n_boot=n_boot,
                                seed=seed, min_class_rows=params["slice_min_class_rows"])
evaluate.slice_gate_columns(params, X.columns)  # a gate that is on names columns of this data: before registering
display(slices)

# %% [markdown]
# ## Model card

# %%
rows_meta = meta.get("rows", {})  # absent in a model trained before the caps existed
rows_used = {"final fit (all training rows)": rows_meta.get("final_fit"),
             "family selection, calibration, threshold (`train.selection_max_rows`)": rows_meta.get("selection"),
             "each tuning trial (`tune.max_rows`)": rows_meta.get("tuning"),
             "test metrics and bootstrap (all test rows)": metrics["n"],
             "permutation importance (`evaluate.importance_max_rows`)": len(y_importance)}
card = workflow.model_card(meta, metrics | intervals, lift, slices, rows_used, n_boot,
                           workflow.importance_markdown(importance, explainer.explains))
files.atomic_write_text(layout.model_card, card)
display(Markdown(card))

# %% [markdown]
# ## Registry and promotion

# %%
import mlflow

name = track.registered_name(meta["contract_fingerprint"])
with track.stage_run("evaluate", params, root) as run:
    mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    mlflow.log_metrics({f"{k}_{end}": v for k in ("roc_auc_ci95", "pr_auc_ci95")
                        for end, v in zip(("low", "high"), intervals[k], strict=True)})
    mlflow.log_metric("importance_rows", len(y_importance))
    mlflow.set_tag("model", metrics["model"])  # the family, beside the metrics (the docs' side-by-side table)
    for name_png in figures:
        mlflow.log_artifact(str(plots_dir / f"{name_png}.png"), "plots")
    mlflow.log_text(report, "classification_report.txt")
    mlflow.log_text(importance.to_csv(index=False), "feature_importance.csv")
    mlflow.log_text(card, "model_card.md")
    lineage = {"data_md5": str(meta["data_md5"]), "git_commit": run.data.tags["git_commit"],
               "train_run_id": meta["mlflow_run_id"], "evaluate_run_id": run.info.run_id,
               "family": meta["family"], "test_roc_auc": str(metrics["roc_auc"])}
    version = registry.register(layout.model, meta, X.head(5), name, lineage)
    gate = registry.promote(name, version, test, y, proba, params, root)
    promotion = gate.record
    mlflow.log_dict(promotion, "promotion.json")
display(Markdown(f"**{name} v{version}**: {promotion['reason']}"))

# %% [markdown]
# `artifacts/evaluate/` holds what the monitor stage needs: the test scores and the gate's versions
# (`versions.json`). The test scores keep the champion's beside the candidate's (`champion_probability`: the same when
# the candidate was promoted, NaN on rows an older champion trained on): the monitor stage profiles
# each model's scores for its own version, so live scores are judged against the model that made them.

# %%
test_scores = scored.assign(y=y, champion_probability=gate.champion_scores).reset_index(drop=True)
versions = {k: promotion[k] for k in ("registered_model", "registered_version", "champion_version")}
with files.atomic_folder(layout.evaluated) as handoff:  # the monitor stage's one dependency on this stage
    (handoff / layout.test_scores.name).write_bytes(test_scores.to_parquet(index=False))
    (handoff / layout.gate_versions.name).write_text(json.dumps(versions, indent=2) + "\n")
files.atomic_write_text(layout.promotion, json.dumps(promotion, indent=2) + "\n")
files.atomic_write_text(layout.metrics, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
files.atomic_write_text(layout.evaluation, json.dumps(intervals, indent=2, sort_keys=True) + "\n")

# %% [markdown]
# ## A sample request
#
# One test row as the body of `POST /predict` (`data.request_records`: dates in ISO 8601, missing
# values left out), for the README's `curl -d @reports/sample_request.json` example.

# %%
complete = test[test[list(contract["columns"])].notna().all(axis=1)]
sample_request = data.request_records((complete if len(complete) else test).head(1), contract)[0]
files.atomic_write_text(layout.sample_request,
                         json.dumps(sample_request, indent=2, default=str) + "\n")
display(Markdown(f"```json\n{json.dumps(sample_request, indent=2, default=str)}\n```"))

# %% [markdown]
# ## Warnings from libraries
#
# Collected while the cells above ran (`track.collect_warnings`): one row per distinct warning.

# %%
display(Markdown(library_warnings.markdown()))
