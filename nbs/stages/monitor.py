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
# # Monitor: the reference profile and the monitoring loop on demo batches
#
# Writes the reference every `churnlab monitor` run compares against (`artifacts/reference/`: the
# training features' profile, the out-of-sample test scores' profile of each model version the
# evaluate stage scored (the candidate and the champion, each keyed by its registry version: live
# scores are judged against their own model's), a row sample), then monitors
# two production batches made deterministically from the **holdout** split: one unchanged, and one
# with a **simulated** shift (`monitor.demo_shift` in `params.yaml`). Neither is real production
# data. Results: `reports/monitoring.json` (top level: the unchanged batch; `simulated_batches`: the
# shifted one), plots in `reports/monitoring/`, one row per batch in the monitoring history.
#
# Under a **time** split the holdout is the latest period, later than every training row: it is not
# an unchanged batch (whatever moved with time shows as drift, and a cohort split moves tenure by
# construction). There, the unchanged batch is a seeded sample of the training period, the reference
# itself, checked for feature drift only (the model fitted those rows: no score or performance
# figure), and the holdout
# is monitored as it is, as `later_period`: the drift to expect when time moves on.

# %% tags=["parameters"]
section = "monitor"

# %%
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from IPython.display import Image, Markdown, display
from scipy import stats

from churnlab import config, data, drift, evaluate, files, models, monitor, plots, sinks, track

library_warnings = track.collect_warnings()  # shown once, deduplicated, at the end
root = config.repo_root()
layout = files.Layout(root)
settings = config.params_section(section, root=root)
pipeline, meta = models.load_model(layout.model)
contract = meta["contract"]
train = pd.read_parquet(layout.train)
holdout = pd.read_parquet(layout.holdout)
test_scores = pd.read_parquet(layout.test_scores)
# the performance baseline: the candidate's test metrics (reports/metrics.json's numbers) from its test scores
baseline = evaluate.classification_metrics(test_scores["y"].to_numpy(), test_scores["probability"].to_numpy(),
                                           meta["threshold"])

# %% [markdown]
# ## The reference (computed once, reused by every monitoring run)

# %%
profile = drift.profile_reference(train, contract)
versions = json.loads(layout.gate_versions.read_text())  # the registered candidate and the champion
scores_reference = monitor.score_reference(test_scores, versions, models.artifact_sha256(layout.model),
                                           settings["estimate"])
score_profile = scores_reference["profiles"][scores_reference["candidate"]]  # the demo batches are the candidate's
sample = train.sample(min(len(train), settings["domain_max_rows"] // 2), random_state=settings["seed"])
monitor.write_reference(layout.reference, profile, scores_reference, sample)
display(Markdown(f"{len(profile['columns'])} monitored columns from {profile['rows']:,} training rows; "
                 f"{score_profile['n']:,} test scores (mean {score_profile['mean']:.3f}); score profiles for "
                 f"model versions {sorted(scores_reference['profiles'])} (champion: v{scores_reference['champion']})"))
for version, reference in scores_reference["estimation"].items():
    if not version.startswith("local-"):
        display(Markdown(f"Estimating performance without labels, v{version}: calibration on {reference['rows']:,} "
                         f"test rows (cross-fitted) **{'holds' if reference['check']['holds'] else 'fails'}** "
                         f"({reference['check']['reason']}); test ROC-AUC {reference['test_roc_auc']:.4f}, estimated "
                         f"from the scores alone {reference['test_estimated_roc_auc']:.4f}"))


# %% [markdown]
# ## Demo batches from holdout (the shifted one is simulated)

# %% [markdown]
# The shift is a stage's demo, not a library function: `apply_shift` moves the configured columns
# (`monitor.demo_shift`), or, when none of them exists in this data, the numeric column most
# rank-correlated with the scores by half a standard deviation.

# %%
def apply_shift(frame: pd.DataFrame, shift: dict[str, dict], profile: dict[str, Any], seed: int = 0):
    "A shifted copy of `frame` and the list of what was done (or skipped)."
    out, done, rng = frame.copy(), [], np.random.default_rng(seed)
    for column, how in shift.items():
        if column not in out.columns:
            done.append(f"{column}: absent from the data, skipped")
            continue
        if "scale" in how:
            out[column] = out[column] * how["scale"]
            done.append(f"{column} x {how['scale']}")
        elif "add_sd" in how:
            out[column] = out[column] + how["add_sd"] * profile["columns"][column]["std"]
            done.append(f"{column} + {how['add_sd']} SD")
        else:
            moved = rng.random(len(out)) < how["share"]
            out.loc[moved, column] = how["to"]
            done.append(f"{int(moved.sum())} rows of {column} set to {how['to']!r}")
    return out, done


def key_numeric_column(frame: pd.DataFrame, scores: np.ndarray, columns: dict[str, str]) -> str | None:
    "The numeric column most rank-correlated with the model's scores (None without numeric columns)."
    strength = {c: abs(stats.spearmanr(frame[c], scores, nan_policy="omit").statistic)
                for c, kind in columns.items() if kind == "numeric"}
    return max(strength, key=lambda c: np.nan_to_num(strength[c])) if strength else None


def demo_shift(shift: dict[str, dict], columns: list[str], key_numeric: str | None) -> dict[str, dict]:
    "The configured shift when one of its columns exists, else +0.5 SD on `key_numeric`."
    if any(c in columns for c in shift) or key_numeric is None:
        return shift
    return {key_numeric: {"add_sd": 0.5}}


# %%
holdout_scores = models.score(pipeline, holdout, meta["threshold"])["probability"].to_numpy()
key = key_numeric_column(holdout, holdout_scores, drift.monitored_columns(contract))
shift = demo_shift(settings["demo_shift"], list(holdout.columns), key)
shifted, notes = apply_shift(holdout, shift, profile, settings["seed"])
shifted_scores = models.score(pipeline, shifted, meta["threshold"])["probability"].to_numpy()
batches = {"unchanged": (holdout, holdout_scores, []), "shifted": (shifted, shifted_scores, notes)}
time_split = contract["split"]["strategy"] == "time"
if time_split:
    reference_period = train.sample(min(len(train), len(holdout)), random_state=settings["seed"])
    period_scores = models.score(pipeline, reference_period, meta["threshold"])["probability"].to_numpy()
    batches = {"unchanged": (reference_period, period_scores, []), "later_period": (holdout, holdout_scores, []),
               "shifted": (shifted, shifted_scores, notes)}
    display(Markdown(f"Time split: the unchanged batch is {len(reference_period):,} training rows; the holdout "
                     "(the latest period) is monitored as `later_period`."))
display(Markdown(f"Simulated shift (on the holdout): {'; '.join(notes)}"))

# %%
reports = {}
for name, (batch, scores, what) in batches.items():
    labels = data.encode_target(batch[contract["target"]], contract["positive_label"])
    fitted = time_split and name == "unchanged"  # rows the model fitted: their scores and labels say nothing
    labels, scores = (None, None) if fitted else (labels, scores)
    versions_of_rows = None if fitted else np.full(len(batch), scores_reference["candidate"])
    report = monitor.monitor_window(profile, batch, settings, scores=scores, score_profile=score_profile,
                                    reference_sample=sample, labels=labels, threshold=meta["threshold"],
                                    baseline=baseline, estimation=scores_reference["estimation"],
                                    score_versions=versions_of_rows)
    reports[name] = {**report, "batch": name, "simulated": bool(what), "shift": what,
                     "churners": None if labels is None else int(np.sum(labels))}
    display(Markdown(f"### {name}{' (simulated)' if what else ''}: dataset drift **{report['dataset_drift']}** "
                     f"(share {report['drift_share']:.2f}); alerts: {[a['type'] for a in report['alerts']]}"))
    display(pd.DataFrame(report["features"]).T[["method", "statistic", "p_value", "p_value_adjusted", "drift"]])
    figure = plots.plot_window(profile, batch, report["features"], f"{name}: reference (training) vs batch")
    path = layout.monitoring_plots / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    display(Image(filename=str(path)))

# %% [markdown]
# ## Predictions and performance

# %%
display(pd.DataFrame({n: {"score PSI": (r["prediction_drift"] or {}).get("statistic"),
                          "mean score": (r["prediction_drift"] or {}).get("mean"),
                          "domain AUC": r["multivariate"]["roc_auc"],
                          **{f"{k} (drop)": v for k, v in (r["performance"] or {"drop": {}})["drop"].items()}}
                      for n, r in reports.items()}).T.style.format("{:.4f}", na_rep="-"))

# %% [markdown]
# ## Performance estimated without labels, beside the realised figures
#
# Each batch's estimate is made from its scores alone (`monitor.estimate`); the realised figures use
# the labels the demo batches carry. The interval is where the realised figure should fall when the
# calibration measured on test still holds on the batch; `trusted` is whether the batch's labels agree
# (a concept shift would break it, and the labels are the only way to see one). The simulated shift
# edits features and keeps each row's label, so for the model it *is* a concept shift: a customer
# billed 20% more churns no more than before. Expect its labels to disagree with its estimate.

# %%
def estimate_vs_realised(report: dict) -> dict[str, Any]:
    "One row of the table: estimated (interval) and realised ROC-AUC and F1, expected and actual churners."
    est, realised = report.get("estimated_performance") or {}, (report["performance"] or {}).get("metrics", {})
    if not est.get("estimated"):
        return {"estimate": est.get("reason", "no scores: no estimate")}
    low, high = est["intervals"]["roc_auc"]
    return {"estimated ROC-AUC": f"{est['metrics']['roc_auc']:.4f} [{low:.4f}, {high:.4f}]",
            "realised ROC-AUC": realised.get("roc_auc"), "estimated F1": est["metrics"]["f1"],
            "realised F1": realised.get("f1"), "expected churners": round(est["metrics"]["expected_positives"], 1),
            "churners": report["churners"], "trusted": est["trusted"], "why": est["reason"]}


display(pd.DataFrame({name: estimate_vs_realised(r) for name, r in reports.items()}).T)

# %% [markdown]
# ## History (every monitoring run, demo batches included, labelled by source)

# %%
history_url = config.monitoring_history_url(settings.get("history_url"))
now = datetime.now(UTC).isoformat()
for name, report in reports.items():
    sinks.append_history(history_url, report, f"demo:{name}", now)
history = sinks.read_history(history_url)
display(plots.plot_history(history, plots.history_thresholds(settings)))

# %%
with track.stage_run("monitor", settings, root) as run:
    import mlflow

    mlflow.log_dict(score_profile, "score_profile.json")  # the candidate's, found later by its version's tag
    track.set_version_tag(versions["registered_model"], scores_reference["candidate"], "score_profile_run_id",
                          run.info.run_id)

    for name, report in reports.items():
        mlflow.log_metrics({f"{name}_{k}": float(v) for k, v in sinks.headline(report).items() if v is not None})
    mlflow.log_dict(reports, "monitoring.json")
files.atomic_write_text(layout.monitoring, json.dumps(
    {**reports["unchanged"], "simulated_batches": {"shifted": reports["shifted"]},
     **({"later_period": reports["later_period"]} if time_split else {})}, indent=2, default=float) + "\n")

# %% [markdown]
# ## Warnings from libraries
#
# Collected while the cells above ran (`track.collect_warnings`): one row per distinct warning.

# %%
display(Markdown(library_warnings.markdown()))
