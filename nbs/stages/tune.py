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
# # Tune: top the Optuna study up to `tune.n_trials`
#
# The study tunes `tune.family` over its search space in `params.yaml`. Each trial
# cross-validates the whole candidate pipeline on the training split with folds that follow the
# split strategy; a pruner stops bad trials after a fold. Trials run sequentially with a seeded
# TPE sampler, so the best parameters are the same on every clone; `churnlab tune --n-trials N`
# adds parallel (unseeded) workers to the same study. The study lives in `tune.storage`
# (git-ignored state, not a DVC output); its identity (`study_name: auto`) hashes every tracked
# input of the objective (training rows, feature spec, family, space, fixed params, folds, seed,
# metric, pruner), so a `featurize` change starts a new study and an empty store gives the same
# `best_params.json`.

# %% tags=["parameters"]
section = "tune"

# %%
import pandas as pd
from IPython.display import Image, Markdown, display

from churnlab import config, files, track, tune, workflow

library_warnings = track.collect_warnings()  # shown once, deduplicated, at the end
root = config.repo_root()
layout = files.Layout(root)
params = config.params_section(section, root=root)
study, objective = workflow.tuning_session(params, root, seed=params["seed"])
display(Markdown(f"Study **{study.study_name}**: {tune.finished_trials(study)} finished trials before this run; "
                 f"target {params['n_trials']}, family `{params['family']}`, metric `{params['metric']}`, "
                 f"{params['cv_folds']}-fold CV on **{study.user_attrs['setup']['rows']:,}** training rows "
                 f"(`tune.share` = {params.get('share')} of them, at most `tune.max_rows` = "
                 f"{params.get('max_rows')}: a seeded stratified subsample; train compares the families on the "
                 f"others), "
                 f"pruner `{params['pruner']}`."))

# %% [markdown]
# ## Trials

# %%
with track.stage_run("tune", params, root) as run:
    import mlflow

    with track.progress(max(0, params["n_trials"] - tune.finished_trials(study)), "tune: trials") as bar:
        ran = tune.top_up(study, objective, params["n_trials"], params["timeout"],
                          [track.trial_logger(params["metric"]), lambda study, trial: bar.update()], progress=True)
    best = tune.best_record(study)
    mlflow.log_params({f"best_{k}": v for k, v in best["params"].items()})
    mlflow.log_metrics({f"best_{params['metric']}": best["value"], "new_trials": ran,
                        "finished_trials": best["finished_trials"], "trial_rows": study.user_attrs["setup"]["rows"]})
    mlflow.set_tags({"optuna_study": study.study_name, "tune_role": "stage"})
    plots_dir = layout.tune_plots
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, figure in tune.tune_plots(study).items():
        figure.savefig(plots_dir / f"{name}.png", dpi=100)
        mlflow.log_artifact(str(plots_dir / f"{name}.png"), "plots")
trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
display(Markdown(f"This run added **{ran}** trials."))
display(trials.tail(20))

# %% [markdown]
# ## Best parameters

# %%
display(Markdown(f"Best trial **{best['trial']}**: CV {best['metric']} **{best['value']:.4f}**"))
display(pd.Series(best["params"], name="value").to_frame())
for name in ("optimization_history", "param_importances", "parallel_coordinate"):
    if (plots_dir / f"{name}.png").exists():
        display(Image(filename=str(plots_dir / f"{name}.png")))
files.atomic_write_text(layout.best_params, tune.best_params_json(best))

# %% [markdown]
# ## Warnings from libraries
#
# Collected while the cells above ran (`track.collect_warnings`): one row per distinct warning.

# %%
display(Markdown(library_warnings.markdown()))
