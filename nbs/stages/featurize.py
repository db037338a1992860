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

from churnlab import config, data, features, models, track

root = config.repo_root()
params = config.params_section(section, root=root)
contract = json.loads(config.resolve("artifacts/prepared/schema.json", root).read_text())
train = pd.read_parquet(config.resolve("artifacts/prepared/train.parquet", root))

# %%
spec, warnings = features.feature_spec(contract, params)
for w in warnings:
    display(Markdown(f"**Warning:** {w}"))
display(pd.DataFrame([{"block": b["block"], "columns": ", ".join(b["columns"])} for b in spec["blocks"]]))

# %% [markdown]
# ## What the model sees (fitted on train only)

# %%
X, groups = train.drop(columns=[contract["target"]]), data.split_groups(train, contract)
y = data.encode_target(train[contract["target"]], contract["positive_label"])  # target encoding, selection
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
# parameters, folds x repeats). `helps`: the mean paired ROC-AUC gain exceeds one standard error,
# the rule the shipped defaults follow. `on` is what this run's `featurize.blocks` says. A block that
# helps logistic regression may add nothing to the family `train` selects (gradient boosting finds
# interactions on its own): `bench/ablation.py` compares both with their tuned parameters.

# %%
setup = params["ablation"]
folds = data.repeated_folds(contract["split"]["strategy"], X, y, groups, setup["folds"], setup["repeats"],
                            params["seed"])
ablation = models.block_ablation(X, y, contract, params, setup["family"], folds, groups)
display(Markdown(f"{setup['family']}, {len(folds)} folds ({contract['split']['strategy']} strategy)"))
display(ablation.round(4))

# %%
config.atomic_write_text(config.resolve("artifacts/features/spec.json", root),
                         json.dumps(spec, indent=2, sort_keys=True) + "\n")
config.atomic_write_text(config.resolve("reports/ablation.json", root),
                         ablation.set_index("variant").to_json(orient="index", indent=2) + "\n")
with track.stage_run("featurize", params, root) as run:
    import mlflow

    mlflow.log_metrics({"raw_features": len(spec["dtypes"]), "model_inputs": len(names)})
    mlflow.log_dict(spec, "feature_spec.json")
    mlflow.log_table(ablation, "ablation.json")
    mlflow.log_text("\n".join(warnings), "warnings.txt")
