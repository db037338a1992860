"""Performance estimated without labels, against the realised figures (`make bench`; `--quick`: 10 windows).

One synthetic table (`bench/synthetic.py`, 300,000 rows, one seed, so that every part shares the same
city effects): the pipeline's `hist_gb` is fitted on the training split of its first 40,000 rows;
the next 20,000 are the labelled test rows from which the monitor stage builds the estimation
reference (`estimate.estimation_reference`: the recalibration map and its cross-fitted calibration
check); windows are drawn from the remaining 240,000 (the pool), never seen by the model.

Covariate shifts: each window is a weighted sample without replacement from the pool (the
Efraimidis-Spirakis keys `E / w`, smallest first), so its rows keep their own labels and
P(churn | customer) is unchanged while the mix moves: `tenure` (weight exp(-s x tenure / 24): new
customers), `plan` (monthly contracts weighted s), `spend` (exp(s x (spend - 70) / 40)), `city`
(cities outside the 50 largest weighted s), each at two strengths, and `none`. The **concept
shift** keeps the customers (a uniform sample) and relabels them from the true logit
+ 3 x tenure / 72 - 1.5 (long-standing customers now churn more than the model learnt).

Each window is estimated as `churnlab monitor` estimates it (`estimate.window_estimate`, no labels)
and compared with its realised figures (all its labels). Beside it: the figure a team has without
this (the test ROC-AUC carried over), and the floor set by label noise: the ROC-AUC expected from
the rows' *true* probabilities (what a perfect estimator would say), whose share within 0.02 is the
most any estimator can reach on windows of that size. The label check: with 25%, 50% and all of a
window's labels arrived, the share of windows whose estimate is flagged untrustworthy (false flags
under covariate shifts, detections under the concept shift).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from churnlab import config, data, estimate, files, models, workflow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from synthetic import DATA_SECTION, POSITIVE, TARGET, churn_table  # noqa: E402

FIT_ROWS, TEST_ROWS, TABLE_ROWS, THRESHOLD = 40_000, 20_000, 300_000, 0.3
LABELLED_SHARES = (0.25, 0.5, 1.0)


def fitted_world(seed: int = 0) -> dict:
    "The model's scores, the labels and the true probabilities of the test rows and of the pool."
    raw, truth = churn_table(TABLE_ROWS, seed)
    mem = workflow.prepare_in_memory(raw.iloc[:FIT_ROWS], {"data": DATA_SECTION})
    rows = mem.rows("train")
    pipeline = models.make_pipeline(mem.spec, "hist_gb", {}, 42).fit(rows.X, rows.y)
    rest = data.clean_frame(raw.iloc[FIT_ROWS:], mem.contract).reset_index(drop=True)
    scores = pipeline.predict_proba(rest[models.input_columns(pipeline)])[:, 1]
    y = (raw[TARGET].iloc[FIT_ROWS:] == POSITIVE).to_numpy().astype(int)
    pool = rest.iloc[TEST_ROWS:].reset_index(drop=True)
    return {
        "test": (y[:TEST_ROWS], scores[:TEST_ROWS]),
        "scores": scores[TEST_ROWS:],
        "y": y[TEST_ROWS:],
        "truth": truth[FIT_ROWS + TEST_ROWS :],
        "pool": pool,
        "fitted_rows": int(len(rows.y)),
    }


def shift_weights(pool) -> dict[str, tuple[str, float, np.ndarray]]:
    "name -> (kind, strength, sampling weight per pool row)."
    tenure = pool["tenure_months"].to_numpy(dtype=float)
    spend = np.nan_to_num(pool["monthly_spend"].to_numpy(dtype=float) - 70.0)  # blank spend: unweighted
    monthly = (pool["plan"].astype("str") == "monthly").to_numpy()
    tail = pool["city"].astype("str").str.removeprefix("city_").astype(int).to_numpy() >= 50
    out = {"none": ("none", 0.0, np.ones(len(pool)))}
    for s in (1.0, 2.0):
        out[f"tenure x{s:g}"] = ("tenure", s, np.exp(-s * tenure / 24))
        out[f"spend x{s:g}"] = ("spend", s, np.exp(s * spend / 40))
    for s in (3.0, 0.3):
        out[f"plan x{s:g}"] = ("plan", s, np.where(monthly, s, 1.0))
    for s in (3.0, 6.0):
        out[f"city x{s:g}"] = ("city", s, np.where(tail, s, 1.0))
    return out


def weighted_sample(weights: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    "`size` rows drawn without replacement with probability proportional to `weights` (Efraimidis-Spirakis)."
    keys = rng.exponential(size=len(weights)) / weights
    return np.argpartition(keys, size)[:size]


def judge_window(
    world: dict,
    rows: np.ndarray,
    y: np.ndarray,
    truth: np.ndarray,
    references: dict,
    settings: dict,
    test_auc: float,
    rng: np.random.Generator,
) -> dict:
    """One window (its labels `y`, drawn from the true probabilities `truth`): the estimate without labels against
    the realised figures, and the label check at each share."""
    scores, versions = world["scores"][rows], np.full(len(rows), "1")
    est = estimate.window_estimate(scores, versions, references, THRESHOLD, settings)
    realised, low_high = roc_auc_score(y, scores), est["intervals"]["roc_auc"]
    churners_low, churners_high = est["intervals"]["expected_positives"]
    flagged = {}
    for share in LABELLED_SHARES:
        arrived = np.where(rng.random(len(rows)) < share, y, np.nan)
        flagged[share] = not estimate.window_estimate(scores, versions, references, THRESHOLD, settings, arrived)[
            "trusted"
        ]
    return {
        "realised": realised,
        "error": est["metrics"]["roc_auc"] - realised,
        "covered": low_high[0] <= realised <= low_high[1],
        "width": low_high[1] - low_high[0],
        "carried_error": test_auc - realised,
        "oracle_error": estimate.expected_roc_auc(scores, truth) - realised,
        "f1_error": est["metrics"]["f1"] - f1_score(y, scores >= THRESHOLD),
        "churners_error": (est["metrics"]["expected_positives"] - y.sum()) / max(y.sum(), 1),
        "churners_covered": churners_low <= y.sum() <= churners_high,
        **{f"flag_{k}": v for k, v in flagged.items()},
    }


def summary(name: str, kind: str, strength: float, size: int, judged: list[dict]) -> dict:
    "One table row: shares and mean errors over the windows of one shift and size."
    col = {k: np.array([j[k] for j in judged], dtype=float) for k in judged[0]}
    return {
        "shift": name,
        "kind": kind,
        "strength": strength,
        "rows": size,
        "windows": len(judged),
        "realised_roc_auc": float(col["realised"].mean()),
        "within_0.02": float(np.mean(np.abs(col["error"]) <= 0.02)),
        "oracle_within_0.02": float(np.mean(np.abs(col["oracle_error"]) <= 0.02)),
        "carried_within_0.02": float(np.mean(np.abs(col["carried_error"]) <= 0.02)),
        "bias": float(col["error"].mean()),
        "mean_abs_error": float(np.abs(col["error"]).mean()),
        "coverage": float(col["covered"].mean()),
        "interval_width": float(col["width"].mean()),
        "f1_mean_abs_error": float(np.abs(col["f1_error"]).mean()),
        "churners_mean_abs_rel_error": float(np.abs(col["churners_error"]).mean()),
        "churners_coverage": float(col["churners_covered"].mean()),
        "flagged": {str(s): float(col[f"flag_{s}"].mean()) for s in LABELLED_SHARES},
    }


def concept_labels(world: dict, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    "New labels for the same customers, and their new true probabilities: the true logit + 3 x tenure / 72 - 1.5."
    p = world["truth"][rows]
    tenure = world["pool"]["tenure_months"].to_numpy(dtype=float)[rows]
    shifted = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 3 * tenure / 72 - 1.5)))
    return (rng.random(len(rows)) < shifted).astype(int), shifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 windows per shift and size instead of 50")
    parser.add_argument("--output", help="default bench/results/estimate.json (estimate-quick.json with --quick)")
    args = parser.parse_args()
    output = Path(args.output or ROOT / "bench" / "results" / f"estimate{'-quick' if args.quick else ''}.json")
    windows, started = 10 if args.quick else 50, time.perf_counter()
    settings = {**config.params_section("monitor", root=ROOT)["estimate"], "seed": 0}
    world = fitted_world()
    test_y, test_scores = world["test"]
    reference = estimate.estimation_reference(
        test_y, test_scores, settings["calibration_bins"], settings["calibration_alpha"], settings["max_ece"]
    )
    references, rng = {"1": reference}, np.random.default_rng(7)
    rows_out = []
    for size in (2_000, 5_000):
        for name, (kind, strength, weights) in shift_weights(world["pool"]).items():
            judged = []
            for _ in range(windows):
                rows = weighted_sample(weights, size, rng)
                labels = world["y"][rows], world["truth"][rows]
                judged.append(judge_window(world, rows, *labels, references, settings, reference["test_roc_auc"], rng))
            rows_out.append(summary(name, kind, strength, size, judged))
        judged = []
        for _ in range(windows):
            rows = rng.choice(len(world["scores"]), size, replace=False)
            labels = concept_labels(world, rows, rng)
            judged.append(judge_window(world, rows, *labels, references, settings, reference["test_roc_auc"], rng))
        rows_out.append(summary("concept", "concept", 1.0, size, judged))
        print(f"{size:,}-row windows done ({time.perf_counter() - started:.0f} s)", flush=True)
    report = {
        "windows_per_cell": windows,
        "threshold": THRESHOLD,
        "fitted_rows": world["fitted_rows"],
        "test_rows": TEST_ROWS,
        "pool_rows": int(len(world["scores"])),
        "settings": settings,
        "reference": reference,
        "rows": rows_out,
        "seconds": round(time.perf_counter() - started, 1),
    }
    files.atomic_write_text(output, json.dumps(report, indent=2) + "\n")
    print_table(report)


def print_table(report: dict) -> None:
    "The table the docs show (rendered by tools/bench_tables.py from the same results)."
    sys.path.insert(0, str(ROOT / "tools"))
    from bench_tables import estimate_table

    print("\n" + estimate_table(report))


if __name__ == "__main__":
    main()
