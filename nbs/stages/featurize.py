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
# transformed by a fit on the training split only.

# %% tags=["parameters"]
section = "featurize"

# %%
import json

import pandas as pd
from IPython.display import Markdown, display

from churnlab import config, data, features, track

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
y = data.encode_target(train[contract["target"]], contract["positive_label"])  # target encoding, selection
preprocessor = features.fit_with_groups(features.build_preprocessor(spec), train, y, data.split_groups(train, contract))
names = preprocessor.get_feature_names_out()
sample = pd.DataFrame(preprocessor.transform(train.head(5)), columns=names)
display(Markdown(f"{len(spec['dtypes'])} raw feature columns -> **{len(names)} model inputs**"))
display(sample.T)

# %%
config.atomic_write_text(config.resolve("artifacts/features/spec.json", root),
                         json.dumps(spec, indent=2, sort_keys=True) + "\n")
with track.stage_run("featurize", params, root) as run:
    import mlflow

    mlflow.log_metrics({"raw_features": len(spec["dtypes"]), "model_inputs": len(names)})
    mlflow.log_dict(spec, "feature_spec.json")
    mlflow.log_text("\n".join(warnings), "warnings.txt")
