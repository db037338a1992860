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
# # Featurize: the feature pipeline specification
#
# Chooses feature blocks by column role (from the contract) and writes the **unfitted**
# specification that `train` fits inside every cross-validation fold. The sample below is
# transformed by a fit on the training split only; the ablation measures what each optional block
# would add on this data.

# %% tags=["parameters"]
section = "featurize"

# %%
import json

import pandas as pd
from IPython.display import Markdown, display

from churnlab import config, features, files, selection, splits, track

library_warnings = track.collect_warnings()  # shown once, deduplicated, at the end
root = config.repo_root()
layout = files.Layout(root)
params = config.params_section(section, root=root)
contract = json.loads(layout.contract.read_text())
train = pd.read_parquet(layout.train)

# %%
spec, warnings = features.feature_spec(contract, params)
for w in warnings:
    display(Markdown(f"**Warning:** {w}"))
display(pd.DataFrame([{"block": b["block"], "columns": ", ".join(b["columns"])} for b in spec["blocks"]]))

# %% [markdown]
# ## What the model sees (fitted on train only)

# %%
rows = splits.model_rows(train, contract)  # y: for target encoding and the ablation
X, y, groups = rows.X, rows.y, rows.groups
preprocessor = features.fit_with_groups(features.build_preprocessor(spec), X, y, groups)
names = preprocessor.get_feature_names_out()
sample = pd.DataFrame(preprocessor.transform(X.head(5)), columns=names)
display(Markdown(f"{len(spec['dtypes'])} raw feature columns -> **{len(names)} model inputs**"))
display(sample.T)

# %% [markdown]
# ## Ablation: does each optional block help on this data?
#
# Every applicable optional block switched on alone against the base (all off), scored on the same
# repeated folds under the split strategy (`featurize.ablation`: family with its default
# parameters, folds x repeats), on at most `featurize.ablation.max_rows` training rows (a seeded,
# stratified subsample: a ranking of blocks needs no more; nothing here is fitted for serving).
# `helps`: the mean paired ROC-AUC gain exceeds one standard error, the rule the shipped defaults
# follow. `on` is what this run's `featurize.blocks` says.
#
# **The verdicts are for the ablation's family only.** `train` chooses its family later, on
# cross-validation (`reports/cv.json` names it), and a block that helps logistic regression often
# adds nothing to gradient boosting, which finds interactions on its own; switching such a block on
# can even change which family wins. Before turning a block on, measure it for the family `train`
# chose: set `featurize.ablation.family` to that family and rerun `dvc repro featurize`, or run
# `bench/ablation.py`, which compares both with their tuned parameters.

# %%
setup = params["ablation"]
X_ab, y_ab, groups_ab = splits.capped(X, y, groups, setup.get("max_rows"), params["seed"])
folds = splits.repeated_folds(contract["split"]["strategy"], X_ab, y_ab, groups_ab, setup["folds"], setup["repeats"],
                            params["seed"])
with track.progress(None, "featurize: ablation folds") as bar:
    ablation = selection.block_ablation(X_ab, y_ab, contract, params, setup["family"], folds, groups_ab, progress=bar)
helping = ablation.loc[ablation["helps"] & (ablation["variant"] != "base"), "variant"].tolist()
display(Markdown(f"Measured with **{setup['family']}** (default parameters) on {len(y_ab):,} of {len(y):,} rows, "
                 f"{len(folds)} folds "
                 f"({contract['split']['strategy']} strategy). Blocks that help {setup['family']}: "
                 f"{', '.join(helping) or 'none'}; this says nothing about other families (see above)."))
display(ablation.round(4))

# %%
files.atomic_write_text(layout.feature_spec,
                         json.dumps(spec, indent=2, sort_keys=True) + "\n")
files.atomic_write_text(layout.ablation,
                         ablation.set_index("variant").to_json(orient="index", indent=2) + "\n")
with track.stage_run("featurize", params, root) as run:
    import mlflow

    mlflow.log_metrics({"raw_features": len(spec["dtypes"]), "model_inputs": len(names), "ablation_rows": len(y_ab)})
    mlflow.log_dict(spec, "feature_spec.json")
    mlflow.log_table(ablation, "ablation.json")
    mlflow.log_text("\n".join(warnings), "warnings.txt")

# %% [markdown]
# ## Warnings from libraries
#
# Collected while the cells above ran (`track.collect_warnings`): one row per distinct warning.

# %%
display(Markdown(library_warnings.markdown()))
