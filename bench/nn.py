"""TabularNNClassifier vs the training loop a tutorial writes (`make bench`; `--device cuda` on a GPU).

Same layers (Linear → BatchNorm → ReLU → Dropout, 64 and 32 units, dropout 0.3, linear head), same
early-stopping patience and ReduceLROnPlateau on validation loss, same validation split. The
tutorial loop uses a Dataset returning one row at a time, a DataLoader with batch size 32 and
Adam at 1e-3. Figures: seconds per epoch, epochs and wall time to the early-stopped best
(fit overhead included), test ROC-AUC, on Telco and on a synthetic frame (1,000,000 x 30 for
seconds per epoch, 200,000 rows for time to best). The tutorial loop's epochs are capped so the
benchmark stays in budget; a capped figure is marked ">=". Our estimator runs twice: with the
tutorial's layers at batch size 1024, and as `params.yaml` ships it (`train.nn`: numeric embeddings).
Telco figures are over 5 seeds (median times, mean ROC-AUC).
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


def tutorial_fit(X, y, device, max_epochs: int, max_batches: int | None = None, seed: int = 0) -> dict:
    "The tutorial loop, early-stopped like ours; `max_batches` caps one epoch for per-epoch timing."
    torch.manual_seed(seed)
    started = time.perf_counter()
    fit_idx, val_idx = train_test_split(np.arange(len(y)), test_size=0.15, stratify=y, random_state=seed)
    loader = DataLoader(RowDataset(X[fit_idx], y[fit_idx]), batch_size=32, shuffle=True, drop_last=True)
    X_v, y_v = torch.tensor(X[val_idx]).to(device), torch.tensor(y[val_idx], dtype=torch.float32).to(device)
    net = tutorial_net(X.shape[1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=PATIENCE // 3)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_state, since, epoch_times, best_epoch, best_time = np.inf, None, 0, [], 0, 0.0
    for epoch in range(max_epochs):
        t0 = time.perf_counter()
        net.train()
        for b, (xb, yb) in enumerate(loader):
            if max_batches is not None and b >= max_batches:
                break
            xb, yb = xb.to(device), yb.to(device)
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
            seconds *= len(loader) / min(max_batches, len(loader))
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
        "epochs_to_best": best_epoch + 1,
        "wall_to_best": best_time,
        "capped": since < PATIENCE and epoch + 1 == max_epochs,
    }


def tutorial_proba(net, X, device) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(torch.tensor(X).to(device)).squeeze(1)).cpu().numpy()


def shipped_options() -> dict:
    "The estimator's options as `params.yaml` ships them (`train.nn`), minus pipeline-level keys."
    options = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["nn"]
    return {k: v for k, v in options.items() if k not in {"embeddings", "device"}}


SAME_LAYERS = {"batch_size": 1024, "numeric_embedding_dim": 0}


def ours_fit(X, y, device, options: dict, max_epochs: int = 200, seed: int = 0) -> dict:
    "Our estimator with `options`, the tutorial's patience; per-epoch time includes fit overhead."
    started = time.perf_counter()
    options = {**options, "patience": PATIENCE, "max_epochs": max_epochs, "device": device, "random_state": seed}
    clf = TabularNNClassifier(**options).fit(X, y)
    wall = time.perf_counter() - started
    per_epoch = wall / clf.n_epochs_
    return {
        "clf": clf,
        "sec_per_epoch": per_epoch,
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
        "sec_per_epoch": float(np.median([f["sec_per_epoch"] for f in fits])),
        "epochs_to_best": int(np.median([f["epochs_to_best"] for f in fits])),
        "wall_to_best": float(np.median([f["wall_to_best"] for f in fits])),
        "capped": any(f.get("capped") for f in fits),
    }


def row(dataset, method, fit, auc) -> dict:
    mark = ">=" if fit.get("capped") else ""
    return {
        "dataset": dataset,
        "method": method,
        "sec_per_epoch": round(fit["sec_per_epoch"], 3),
        "epochs_to_best": f"{mark}{fit['epochs_to_best']}",
        "wall_to_best_s": f"{mark}{fit['wall_to_best']:.1f}",
        "test_roc_auc": None if auc is None else round(auc, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "nn.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []

    shipped = shipped_options()
    ours_variants = {
        f"churnlab, same layers (bs {SAME_LAYERS['batch_size']})": SAME_LAYERS,
        f"churnlab, as shipped (bs {shipped['batch_size']}, numeric emb. {shipped['numeric_embedding_dim']})": shipped,
    }

    def compare(dataset, X, y, X_test, y_test, tutorial_epochs: int, seeds) -> None:
        "Fit each method to its early-stopped best per seed and score the same test rows (medians, mean AUC)."
        for method, options in ours_variants.items():
            fits = [ours_fit(X, y, args.device, options, seed=s) for s in seeds]
            aucs = [roc_auc_score(y_test, f["clf"].predict_proba(X_test)[:, 1]) for f in fits]
            rows.append(row(dataset, method, summarise(fits), float(np.mean(aucs))))
        fits = [tutorial_fit(X, y, device, max_epochs=tutorial_epochs, seed=s) for s in seeds]
        aucs = [roc_auc_score(y_test, tutorial_proba(f["net"], X_test, device)) for f in fits]
        rows.append(row(dataset, "tutorial loop (row Dataset, bs 32)", summarise(fits), float(np.mean(aucs))))
        print(pd.DataFrame(rows).to_string(index=False), flush=True)

    compare("telco (5 seeds)", *telco_matrices(), tutorial_epochs=20 if args.quick else 80, seeds=range(5))

    n_big, n_mid = (200_000, 50_000) if args.quick else (1_000_000, 200_000)
    Xb, yb = synthetic(n_big)
    for method, options in ours_variants.items():
        fit = ours_fit(Xb, yb, args.device, options, max_epochs=2)
        rows.append(row(f"synthetic {n_big:,} x 30 (per epoch)", method, fit, None))
    tut = tutorial_fit(Xb, yb, device, max_epochs=1, max_batches=2000)
    rows.append(row(f"synthetic {n_big:,} x 30 (per epoch)", "tutorial loop (2,000 batches, extrapolated)", tut, None))
    del Xb, yb

    Xm, ym = synthetic(n_mid + 50_000, seed=1)
    compare(
        f"synthetic {n_mid:,} (time to best)",
        Xm[:n_mid],
        ym[:n_mid],
        Xm[n_mid:],
        ym[n_mid:],
        tutorial_epochs=2 if args.quick else 15,
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
