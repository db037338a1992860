"""TabularNNClassifier vs hand-written training loops (`make bench`; `--device cuda` on a GPU).

All methods have the same layers (Linear → BatchNorm → ReLU → Dropout, 64 and 32 units, dropout 0.3,
linear head), the same early-stopping patience, ReduceLROnPlateau on validation loss and the same
validation share. The two baselines:
- **the competent plain loop**: the tensors in memory, shuffled index batches of 1,024, AdamW at our
  learning rate and weight decay. It is what a practitioner who knows PyTorch writes, so it is the
  baseline for engineering claims;
- **the tutorial loop**: a row-at-a-time Dataset, a DataLoader at batch size 32 and Adam at 1e-3.
  Its epochs take 32x more optimiser steps, so compare it by time to best at the AUC it reaches,
  and by cost per step, never by seconds per epoch alone.
Our estimator runs with the tutorial's layers at batch size 1,024 and as `params.yaml` ships it
(`train.nn`: numeric embeddings).

Figures per method: optimiser steps per epoch, seconds per epoch and per step, epochs and wall time
to the early-stopped best (fit overhead included), and test ROC-AUC (mean and SD over seeds). They
are measured on Telco (5 seeds) and on a synthetic frame: 1,000,000 x 30 for one epoch, 100,000
rows for time to best. The tutorial loop's epochs are capped (80 on Telco, 6 on the 100,000 rows)
to keep the benchmark in budget; a capped figure is marked ">=". Its 1M-row epoch is timed on 2,000
batches and scaled, and it is labelled "extrapolated" (its ms per step is measured). Every other
figure is measured.
Runs with PYTHONPATH=src on a machine's own Python (torch >= 2.11, scikit-learn, pandas).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset

from churnlab import features, workflow
from churnlab.nn import TabularNNClassifier

ROOT = Path(__file__).resolve().parents[1]
PATIENCE = 10
PLAIN_NAME = "plain loop (tensors in memory, bs 1024, AdamW)"
TUTORIAL_NAME = "tutorial loop (row Dataset, bs 32, Adam)"


class RowDataset(Dataset):
    "What a tutorial writes: one row per __getitem__."

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return torch.tensor(self.X[i]), torch.tensor(self.y[i], dtype=torch.float32)


def tutorial_net(n_inputs: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_inputs, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(64, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(32, 1),
    )


def loop_fit(X, y, device, max_epochs: int, seed: int, plain: bool, max_batches: int | None = None) -> dict:
    """A hand-written training loop, early-stopped like ours on the same validation share.

    `plain=False` is the tutorial: a row Dataset and a DataLoader at batch size 32, Adam at 1e-3.
    `plain=True` is the competent plain loop: the tensors in memory, shuffled index batches of 1,024,
    AdamW at our learning rate and weight decay. Same layers, patience and ReduceLROnPlateau for both.
    `max_batches` caps one epoch for per-epoch timing (the epoch's time is then extrapolated)."""
    torch.manual_seed(seed)
    started = time.perf_counter()
    fit_idx, val_idx = train_test_split(np.arange(len(y)), test_size=0.15, stratify=y, random_state=seed)
    X_v, y_v = torch.tensor(X[val_idx]).to(device), torch.tensor(y[val_idx], dtype=torch.float32).to(device)
    net = tutorial_net(X.shape[1]).to(device)
    if plain:
        X_f, y_f = torch.tensor(X[fit_idx]).to(device), torch.tensor(y[fit_idx], dtype=torch.float32).to(device)
        steps = -(-len(fit_idx) // PLAIN["batch_size"])
        opt = torch.optim.AdamW(net.parameters(), lr=PLAIN["lr"], weight_decay=PLAIN["weight_decay"])

        def batches():
            order = torch.randperm(len(fit_idx), device=device)
            for start in range(0, len(order), PLAIN["batch_size"]):
                idx = order[start : start + PLAIN["batch_size"]]
                if len(idx) > 1:  # BatchNorm needs two rows
                    yield X_f[idx], y_f[idx]
    else:
        loader = DataLoader(RowDataset(X[fit_idx], y[fit_idx]), batch_size=32, shuffle=True, drop_last=True)
        steps, opt = len(loader), torch.optim.Adam(net.parameters(), lr=1e-3)

        def batches():
            for xb, yb in loader:
                yield xb.to(device), yb.to(device)

    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=PATIENCE // 3)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_state, since, epoch_times, best_epoch, best_time = np.inf, None, 0, [], 0, 0.0
    for epoch in range(max_epochs):
        t0 = time.perf_counter()
        net.train()
        for b, (xb, yb) in enumerate(batches()):
            if max_batches is not None and b >= max_batches:
                break
            opt.zero_grad()
            loss = loss_fn(net(xb).squeeze(1), yb)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val = loss_fn(net(X_v).squeeze(1), y_v).item()
        sched.step(val)
        seconds = time.perf_counter() - t0
        if max_batches is not None:
            seconds *= steps / min(max_batches, steps)
        epoch_times.append(seconds)
        if val < best - 1e-5:
            best, best_state, since, best_epoch = val, {k: v.clone() for k, v in net.state_dict().items()}, 0, epoch
            best_time = time.perf_counter() - started
        else:
            since += 1
            if since >= PATIENCE:
                break
    net.load_state_dict(best_state)
    net.eval()
    return {
        "net": net,
        "sec_per_epoch": float(np.median(epoch_times)),
        "steps_per_epoch": steps,
        "epochs_to_best": best_epoch + 1,
        "wall_to_best": best_time,
        "capped": since < PATIENCE and epoch + 1 == max_epochs,
        "extrapolated": max_batches is not None and max_batches < steps,
    }


def tutorial_proba(net, X, device) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(torch.tensor(X).to(device)).squeeze(1)).cpu().numpy()


def shipped_options() -> dict:
    "The estimator's options as `params.yaml` ships them (`train.nn`), minus pipeline-level keys."
    options = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["nn"]
    return {k: v for k, v in options.items() if k not in {"embeddings", "device"}}


SAME_LAYERS = {"batch_size": 1024, "numeric_embedding_dim": 0}
PLAIN = {"batch_size": 1024, "lr": 3e-3, "weight_decay": 1e-4}  # the plain loop: our estimator's defaults


def ours_fit(X, y, device, options: dict, max_epochs: int = 200, seed: int = 0) -> dict:
    "Our estimator with `options`, the tutorial's patience; per-epoch time includes fit overhead."
    started = time.perf_counter()
    options = {**options, "patience": PATIENCE, "max_epochs": max_epochs, "device": device, "random_state": seed}
    clf = TabularNNClassifier(**options).fit(X, y)
    wall = time.perf_counter() - started
    per_epoch = wall / clf.n_epochs_
    fitted_rows = len(y) - int(np.ceil(len(y) * clf.validation_fraction))
    return {
        "clf": clf,
        "sec_per_epoch": per_epoch,
        "steps_per_epoch": -(-fitted_rows // clf.batch_size),
        "epochs_to_best": clf.best_epoch_ + 1,
        "wall_to_best": per_epoch * (clf.best_epoch_ + 1),
        "wall_total": wall,
    }


def telco_matrices() -> tuple[np.ndarray, ...]:
    raw = pd.read_csv(ROOT / "data" / "wa_churn.csv")
    telco = {"target": "churn", "positive_label": "Yes", "id_columns": ["rownames"]}
    memory = workflow.prepare_in_memory(raw, {"data": telco})
    train, test = memory.rows("train"), memory.rows("test")
    pre = features.build_preprocessor(memory.spec).fit(train.X)
    return pre.transform(train.X).astype(np.float32), train.y, pre.transform(test.X).astype(np.float32), test.y


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    "30 features: 20 numeric, 10 categorical (5 levels, one-hot), a nonlinear logistic signal."
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 20)).astype(np.float32)
    cats = rng.integers(0, 5, size=(n, 10))
    onehot = np.eye(5, dtype=np.float32)[cats].reshape(n, 50)
    logit = num[:, 0] - 0.8 * num[:, 1] + 0.5 * num[:, 2] * num[:, 3] + 0.6 * (cats[:, 0] == 2) - 1.2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return np.hstack([num, onehot]), y


def summarise(fits: list[dict]) -> dict:
    "Median time figures over seeds; capped when any tutorial run hit its epoch cap."
    return {
        "steps_per_epoch": fits[0]["steps_per_epoch"],
        "extrapolated": any(f.get("extrapolated") for f in fits),
        "sec_per_epoch": float(np.median([f["sec_per_epoch"] for f in fits])),
        "epochs_to_best": int(np.median([f["epochs_to_best"] for f in fits])),
        "wall_to_best": float(np.median([f["wall_to_best"] for f in fits])),
        "capped": any(f.get("capped") for f in fits),
    }


def row(dataset, method, fit, aucs: list[float] | None) -> dict:
    "One table row; `aucs` over seeds (mean and SD), figures measured unless marked extrapolated."
    mark = ">=" if fit.get("capped") else ""
    return {
        "dataset": dataset,
        "method": method,
        "figures": "extrapolated (part of an epoch)" if fit.get("extrapolated") else "measured",
        "steps_per_epoch": fit["steps_per_epoch"],
        "sec_per_epoch": round(fit["sec_per_epoch"], 3),
        "ms_per_step": round(1000 * fit["sec_per_epoch"] / fit["steps_per_epoch"], 3),
        "epochs_to_best": f"{mark}{fit['epochs_to_best']}",
        "wall_to_best_s": f"{mark}{fit['wall_to_best']:.1f}",
        "test_roc_auc": None if aucs is None else round(float(np.mean(aucs)), 4),
        "test_roc_auc_sd": None if aucs is None or len(aucs) < 2 else round(float(np.std(aucs, ddof=1)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", help="default bench/results/nn.json (nn-quick.json with --quick)")
    args = parser.parse_args()
    args.output = args.output or str(ROOT / "bench" / "results" / f"nn{'-quick' if args.quick else ''}.json")
    device = torch.device(args.device)
    rows = []

    shipped = shipped_options()
    ours_variants = {
        f"churnlab, same layers (bs {SAME_LAYERS['batch_size']})": SAME_LAYERS,
        f"churnlab, as shipped (bs {shipped['batch_size']}, numeric emb. {shipped['numeric_embedding_dim']})": shipped,
    }

    def compare(dataset, X, y, X_test, y_test, tutorial_epochs: int, seeds) -> None:
        "Fit each method to its early-stopped best per seed and score the same test rows (medians; AUC mean, SD)."
        for method, options in ours_variants.items():
            fits = [ours_fit(X, y, args.device, options, seed=s) for s in seeds]
            aucs = [roc_auc_score(y_test, f["clf"].predict_proba(X_test)[:, 1]) for f in fits]
            rows.append(row(dataset, method, summarise(fits), aucs))
        for method, plain, epochs in ((PLAIN_NAME, True, 200), (TUTORIAL_NAME, False, tutorial_epochs)):
            fits = [loop_fit(X, y, device, max_epochs=epochs, seed=s, plain=plain) for s in seeds]
            aucs = [roc_auc_score(y_test, tutorial_proba(f["net"], X_test, device)) for f in fits]
            rows.append(row(dataset, method, summarise(fits), aucs))
        print(pd.DataFrame(rows).to_string(index=False), flush=True)

    seeds = range(2 if args.quick else 5)
    telco = f"telco ({len(seeds)} seeds)"
    compare(telco, *telco_matrices(), tutorial_epochs=5 if args.quick else 80, seeds=seeds)

    n_big, n_mid = (30_000, 10_000) if args.quick else (1_000_000, 100_000)
    Xb, yb = synthetic(n_big)
    per_epoch = f"synthetic {n_big:,} x 30 (per epoch)"
    for method, options in ours_variants.items():
        rows.append(row(per_epoch, method, ours_fit(Xb, yb, args.device, options, max_epochs=2), None))
    rows.append(row(per_epoch, PLAIN_NAME, loop_fit(Xb, yb, device, max_epochs=2, seed=0, plain=True), None))
    tutorial = loop_fit(Xb, yb, device, max_epochs=1, seed=0, plain=False, max_batches=2000)
    rows.append(row(per_epoch, f"{TUTORIAL_NAME}, 2,000 batches", tutorial, None))
    del Xb, yb

    Xm, ym = synthetic(n_mid + 50_000, seed=1)
    compare(
        f"synthetic {n_mid:,} (time to best)",
        Xm[:n_mid],
        ym[:n_mid],
        Xm[n_mid:],
        ym[n_mid:],
        tutorial_epochs=2 if args.quick else 6,
        seeds=[0],
    )

    table = pd.DataFrame(rows)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\ndevice: {name}; torch {torch.__version__}")
    print(table.to_string(index=False))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": name, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
