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
# # Train: cross-validated selection and the candidate
#
# Every family in `train.candidates` is ONE pipeline (features + model), cross-validated on the
# training split with folds that follow the split strategy; fitted transformations never see a
# validation row. The families are compared on the training rows the tuning study never saw
# (`tune.share`), so the tuned family's estimate is as honest as the others'; `train.selection_rule:
# one_se` takes the cheapest family within one paired SE of the best. A logistic stack of the
# families (`train.ensemble: auto`) replaces it only when its nested CV beats the best single family
# by more than one SE. The choice is refitted once on all training rows: the **candidate**. Its
# decision threshold is chosen on out-of-fold predictions.

# %% tags=["parameters"]
section = "train"

# %%
import json

import pandas as pd
from IPython.display import Markdown, display

from churnlab import config, features, files, models, pyfunc, selection, splits, track, trust, workflow

library_warnings = track.collect_warnings()  # shown once, deduplicated, at the end
root = config.repo_root()
layout = files.Layout(root)
params = config.params_section(section, root=root)
tuned = json.loads(layout.best_params.read_text())
if params.get("use_tuned"):
    params = selection.with_tuned(params, tuned)
    display(Markdown(f"`train.use_tuned`: **{tuned['family']}** uses the tuned parameters of trial {tuned['trial']} "
                     f"(CV {tuned['metric']} {tuned['value']:.4f} over {tuned['finished_trials']} trials): "
                     f"`{json.dumps(tuned['params'])}`"))
rows = workflow.training_rows(root)
contract, spec, X, y, groups = rows.contract, rows.spec, rows.X, rows.y, rows.groups
splitter = splits.cv_splitter(contract["split"]["strategy"], params["cv_folds"], params["seed"])
tuning_rows = selection.tuned_rows(tuned, params, y, groups)  # left out of the comparison (honest selection)

# %% [markdown]
# ## Cross-validation, selection, threshold, final fit

# %%
with track.progress(None, "train: CV folds + final fit") as bar:
    fit = selection.select_and_fit(X, y, spec, params, splitter, groups, progress=bar,
                                   high_cardinality=features.columns_by_role(contract, "high_cardinality"),
                                   exclude=tuning_rows)
cv_results, chosen, threshold, selected = fit.cv, fit.family, fit.threshold, fit.selected_cv
candidate, timings = fit.candidate, fit.timings
table = pd.DataFrame({f: {"mean": r["mean"], "std": r["std"], "folds": len(r["scores"]),
                          "operations_per_record": r["operations"], "single_record_ms": r["latency_ms"]}
                      for f, r in cv_results.items()}).T
display(table.style.format({"mean": "{:.4f}", "std": "{:.4f}", "single_record_ms": "{:.1f}"}))
budget, cap = params.get("latency_budget_ms"), params.get("max_operations_per_record")
display(Markdown(
    f"Eligibility: at most `train.max_operations_per_record` = {cap} operations per record (a count, so the "
    f"choice does not depend on machine load). Measured single-record latency (through the pipeline, on this "
    f"machine now; reported, never deciding) against `train.latency_budget_ms` = {budget}: "
    + ", ".join(f"{f} {r['latency_ms']:.1f} ms{' (over)' if budget and r['latency_ms'] > budget else ''}"
                for f, r in cv_results.items())))
display(Markdown(f"Rows: selection, calibration and threshold on **{fit.rows['selection']:,}** of "
                 f"{fit.rows['final_fit']:,} training rows ({fit.rows['tuning_excluded']:,} left out because the "
                 f"tuning study saw them; `train.selection_max_rows` = {params.get('selection_max_rows')}: a seeded "
                 f"stratified subsample); the candidate is fitted on all **{fit.rows['final_fit']:,}**."))
display(Markdown(f"Candidate family: **{chosen}** (CV {params['cv_metric']} "
                 f"{selected['mean']:.4f} ± {selected['std']:.4f}); threshold by "
                 f"`{params['threshold_rule']}` on out-of-fold scores: **{threshold:.4f}**"))
meta = workflow.artifact_metadata(fit, params, contract, X, root, tuned)
display(Markdown(workflow.selection_markdown(meta)))

# %% [markdown]
# ## Target encoding (`train.target_encoding: auto`): tried on the chosen family, kept only where it helps
#
# The families above were compared with the high-cardinality columns one-hot encoded (their frequent
# levels, the rest pooled). When the data has such columns, the chosen family is cross-validated
# once more on the same folds with them target-encoded; that is kept when the mean paired gain over
# the folds exceeds its standard error.

# %%
encoding = fit.target_encoding
verdict = "not tried" if encoding is None else ("kept" if encoding["kept"] else "not kept")
if encoding is None:
    why = "`train.target_encoding` is off" if params.get("target_encoding") != "auto" else "no such column"
    display(Markdown(f"Not tried: {why}."))
else:
    display(Markdown(
        f"Target-encoding {', '.join(encoding['columns'])}: CV {params['cv_metric']} {encoding['mean']:.4f} against "
        f"{cv_results[chosen]['mean']:.4f} one-hot, paired gain {encoding['gain']:+.4f} (SE {encoding['se']:.4f}): "
        f"**{verdict}**."))

# %% [markdown]
# ## Calibration (kept only where log loss and Brier both improve by more than one SE)

# %%
if fit.calibration:
    display(pd.DataFrame(fit.calibration).T.style.format("{:.5f}"))
display(Markdown(f"Calibration applied: **{fit.calibration_method or 'none'}**"))

# %%
cv_summary = workflow.cv_summary(fit, params["cv_metric"])
timings.update({f"single_record_ms_{f}": round(r["latency_ms"], 3) for f, r in cv_results.items()})
with track.stage_run("train", params, root) as run:
    import mlflow

    mlflow.log_metrics({f"cv_{params['cv_metric']}_{f}": r["mean"] for f, r in cv_results.items()})
    mlflow.log_metrics({"threshold": threshold, **timings, **{f"{k}_rows": v for k, v in fit.rows.items()}})
    mlflow.set_tags({"family": chosen, "contract_fingerprint": meta["contract_fingerprint"],
                     "target_encoding": verdict})
    meta["mlflow_run_id"] = run.info.run_id
    models.save_model(candidate, meta, layout.model)
    signed = trust.sign_artifact(layout.model)  # with $CHURNLAB_SIGNING_KEY: churnlab.sig beside the model
    pyfunc.log_model(layout.model, X.head(5), meta)  # the folder as an MLflow pyfunc: what `evaluate` registers
    mlflow.set_tag("signed", str(signed).lower())
display(Markdown(f"Saved to `{layout.paths()['model']}` and logged to MLflow run `{run.info.run_id}`; "
                 + ("signed with `$CHURNLAB_SIGNING_KEY`." if signed else "not signed (no `$CHURNLAB_SIGNING_KEY`).")))
files.atomic_write_text(layout.cv,
                         json.dumps(cv_summary, indent=2, sort_keys=True) + "\n")
files.atomic_write_text(layout.timings, json.dumps(timings, indent=2) + "\n")

# %% [markdown]
# ## Warnings from libraries
#
# Collected while the cells above ran (`track.collect_warnings`): one row per distinct warning.

# %%
display(Markdown(library_warnings.markdown()))
