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
# # Prepare: contract, validation, splits
#
# Reads the raw data named in `params.yaml` (`data` section), infers and checks the data
# contract, and writes three disjoint seeded splits (each row's split follows from its id or
# content, so appended data never moves an earlier row). Nothing is written unless every rule
# holds, each split holding at least `prepare.min_positives` rows of either class among them.

# %% tags=["parameters"]
data_section = "data"
strategy = "auto"
test_size = 0.2
holdout_size = 0.1
seed = 42
min_positives = 10

# %%
import json

import pandas as pd
from IPython.display import Image, Markdown, display

from churnlab import config, data, files, roles, splits, track

library_warnings = track.collect_warnings()  # shown once, deduplicated, at the end
root = config.repo_root()
layout = files.Layout(root)
data_params = config.params_section(data_section, root=root)
params = {"data": data_params, "prepare": dict(strategy=strategy, test_size=test_size,
                                               holdout_size=holdout_size, seed=seed,
                                               min_positives=min_positives)}

# %% [markdown]
# ## Raw data

# %%
paths = data.expand_paths(data_params["path"], root)
raw = data.read_tables(paths, **data.csv_dialect(data_params))
sources = [str(p.relative_to(root)) for p in paths]
display(Markdown(f"**{raw.shape[0]:,} rows x {raw.shape[1]} columns** from {sources}"))
display(raw.head())

# %% [markdown]
# ## The contract and the splits
#
# Roles and dtypes are inferred (declared roles from `params.yaml` first); every training rule is
# checked before anything is written; ranges and categories are learned on the training split.

# %%
contract = roles.contract_from_params(raw, data_params)
contract, parts, dropped = splits.prepare_splits(raw, contract, strategy, test_size, holdout_size, seed, min_positives)
display(pd.DataFrame(contract["columns"]).T)

# %% [markdown]
# ## What was decided, and the line that changes it
#
# Inferences beyond the plain cases (numbers written as text, undeclared dates, identifier-like and
# high-cardinality columns), `data` entries skipped because this data lacks their column, and what
# the split means. The same lines are printed in the terminal by `dvc repro`.

# %%
decisions = [roles.ContractDecision(**d) for d in contract["decisions"]] + splits.split_decisions(contract, parts)
with pd.option_context("display.max_colwidth", None):  # the lines to change are shown whole
    display(pd.DataFrame([vars(d) for d in decisions], columns=["column", "decision", "why", "change"]))

# %% [markdown]
# ## Profile

# %%
clean = pd.concat(parts.values())
y = data.encode_target(clean[contract["target"]], contract["positive_label"])
display(Markdown(f"Rows without a target (dropped): **{dropped}**. "
                 f"Positive rate ({contract['positive_label']!r}): **{y.mean():.3f}**"))
features = list(contract["columns"])
display(pd.DataFrame({"role": {c: s["role"] for c, s in contract["columns"].items()},
                      "missing": clean[features].isna().sum(), "distinct": clean[features].nunique()}))
numeric = data.columns_by_role(contract, "numeric")
if numeric:
    display(clean[numeric].describe().T)
    axes = clean[numeric].hist(bins=30, figsize=(10, 2.5 * ((len(numeric) + 2) // 3)), layout=(-1, 3))
    profile_png = layout.scratch / "prepare_numeric.png"
    axes.flat[0].figure.savefig(profile_png)
    display(Image(filename=str(profile_png)))
for column in data.columns_by_role(contract, "categorical", "boolean"):
    display(clean[column].value_counts(dropna=False).rename(column).to_frame().T)

# %% [markdown]
# ## Splits

# %%
summary = pd.DataFrame({name: {"rows": len(part), "positive_rate": round(float(
    data.encode_target(part[contract["target"]], contract["positive_label"]).mean()), 4)}
    for name, part in parts.items()}).T
display(summary)

# %%
for name, part in parts.items():  # train, test, holdout
    files.atomic_write_bytes(getattr(layout, name), part.reset_index(drop=True).to_parquet(index=False))
files.atomic_write_text(layout.contract, json.dumps(contract, indent=2, sort_keys=True) + "\n")
summary_lines = [f"prepare: {len(clean):,} rows, {len(features)} columns, {contract['split']['strategy']} split; "
                 f"decisions (the report reports/prepare.ipynb lists them too):", *(f"  - {d}" for d in decisions)]
files.atomic_write_text(layout.scratch / "prepare.summary.txt", "\n".join(summary_lines) + "\n")

# %%
with track.stage_run("prepare", params, root) as run:
    import mlflow

    mlflow.log_metrics({f"{n}_rows": float(r["rows"]) for n, r in summary.iterrows()})
    mlflow.log_metric("train_positive_rate", float(summary.loc["train", "positive_rate"]))
    mlflow.log_artifact(str(layout.contract))
    mlflow.set_tag("contract_fingerprint", data.contract_fingerprint(contract))

# %% [markdown]
# ## Warnings from libraries
#
# Collected while the cells above ran (`track.collect_warnings`): one row per distinct warning.

# %%
display(Markdown(library_warnings.markdown()))
