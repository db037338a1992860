"""Feature-block ablation: does each optional block raise repeated 5x2-fold CV ROC-AUC? (`make bench-features`)

The training split is prepared as the pipeline prepares it (Telco by default, or a dataset of
bench/datasets.py). `selection.block_ablation` (what the featurize report runs, there with one family
and its default parameters) scores the base specification (params.yaml's `featurize` section with
every optional block off) and one variant per applicable block on the same folds: 2 folds x 5
repeats under the split strategy (`splits.repeated_folds`: repeated stratified k-fold for Telco; ten
expanding windows under time), with the shipped `train` parameters of logistic regression and
HistGradientBoosting. Printed per family and variant: the mean ROC-AUC, and the mean ± standard
error (SD / sqrt(10)) of the paired per-fold gain over the base. A block is on by default only when
its gain exceeds one SE.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import pandas as pd
import yaml
from datasets import DATASETS, load_dataset

from churnlab import selection, splits, workflow

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="telco", choices=list(DATASETS))
    parser.add_argument("--families", nargs="+", default=["logreg", "hist_gb"])
    parser.add_argument("--blocks", nargs="+", help="only these variants (default: every applicable block)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw, section = load_dataset(args.dataset)
    prepare = {**params["prepare"], **(DATASETS[args.dataset].prepare if args.dataset in DATASETS else {})}
    memory = workflow.prepare_in_memory(raw, {"data": section, "prepare": prepare})  # as bench/datasets.py prepares it
    contract, rows = memory.contract, memory.rows("train")
    X, y, groups = rows.X, rows.y, rows.groups
    folds = splits.repeated_folds(contract["split"]["strategy"], X, y, groups, n_splits=2, n_repeats=5, seed=42)
    started, tables = time.perf_counter(), []
    for family in args.families:
        table = selection.block_ablation(
            X, y, contract, params["featurize"], family, folds, groups, params["train"][family], only=args.blocks
        )
        tables.append(table.assign(family=family))
    table = pd.concat(tables)[["family", "variant", "roc_auc", "gain", "se", "helps"]].round(4)
    rows = table.to_dict(orient="records")
    seconds, strategy = time.perf_counter() - started, contract["split"]["strategy"]
    print(f"{args.dataset}: {len(X):,} training rows, {len(folds)} folds, {strategy} strategy ({seconds:.0f} s)")
    print(table.to_markdown(index=False))
    suffix = "" if not args.blocks else "-" + "-".join(sorted(args.blocks))
    out = ROOT / "bench" / "results" / f"ablation-{args.dataset}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": args.dataset,
        "training_rows": len(X),
        "folds": len(folds),
        "strategy": strategy,
        "seconds": round(seconds, 1),
        "rows": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")  # the docs' ablation tables read it (tools/bench_tables.py)


if __name__ == "__main__":
    main()
