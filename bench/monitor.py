"""Drift-monitoring benchmark (`make bench`; `QUICK=1`: 20 resamples instead of 200).

A synthetic population of 50 columns (10 normal, 10 log-normal, 10 integer-valued Poisson, 20
categorical with 2 to 40 levels; 5% missing values in a few columns). Reference and current windows
are independent draws (n = 5,000 each). Side by side, on the same windows:

- churnlab: `drift.feature_drift` (KS / chi-square against a precomputed reference profile,
  Benjamini-Hochberg at `monitor.alpha`), dataset drift at `monitor.drift_share`;
- the tutorial approach: `scipy.stats.ks_2samp` on every column (categories as codes), twice from the
  same p-values: corrected the same way (Benjamini-Hochberg at `monitor.alpha`, dataset drift when
  any column drifts), so that detection is compared at matched false-alarm rates; and as written
  (p < 0.05 per column, no correction).

Reported: the false alarm rate (share of no-drift resamples in which any column is flagged), the
detection rate (share of resamples with a 0.2-SD mean shift in one numeric column in which that
column is flagged; normal, log-normal and integer columns apart; the integer column's Poisson mean
moves by 0.2 SD, so it stays integer); the milliseconds each approach spends on its per-column
tests of one 5,000 vs 5,000 window (the same computation on the same rows); and the time to
monitor a 1,000,000 x 50 window against a 100,000-row reference whose profile is precomputed
(per-column drift, dataset drift and prediction drift on 1,000,000 scores), the domain classifier
apart on 50,000 rows. That last row compares
different computations (distances on profiles past `monitor.test_max_rows` vs exact KS on raw rows)
and says so.

The estimate of performance without labels (`monitor.estimate`) is validated apart, in
`bench/estimate.py` (run next by `make bench`): it needs a fitted model and labelled windows, not
this population.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from churnlab import config, drift, files, monitor

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"normal": range(0, 10), "lognormal": range(10, 20), "integer": range(20, 30)}


def population(seed: int = 0) -> dict:
    "The fixed parameters of the synthetic population."
    rng = np.random.default_rng(seed)
    return {
        "normal": [(rng.uniform(-5, 5), rng.uniform(0.5, 20)) for _ in range(10)],
        "lognormal": [(rng.uniform(0, 3), rng.uniform(0.3, 1.2)) for _ in range(10)],
        "poisson": [rng.uniform(0.5, 30) for _ in range(10)],
        "categorical": [rng.dirichlet(np.full(k, 0.7)) for k in rng.integers(2, 41, 20)],
    }


def draw(pop: dict, n: int, seed: int, shift: tuple[str, int] | None = None) -> pd.DataFrame:
    "n rows of the population; `shift=(kind, column)` moves that column's mean by 0.2 SD."
    rng = np.random.default_rng(seed)
    columns = {}
    for j, (mu, sd) in enumerate(pop["normal"]):
        columns[f"x{j}"] = rng.normal(mu, sd, n) + (0.2 * sd if shift == ("normal", j) else 0)
    for j, (mu, sigma) in enumerate(pop["lognormal"]):
        sd = np.sqrt((np.exp(sigma**2) - 1) * np.exp(2 * mu + sigma**2))
        columns[f"x{10 + j}"] = rng.lognormal(mu, sigma, n) + (0.2 * sd if shift == ("lognormal", 10 + j) else 0)
    for j, lam in enumerate(pop["poisson"]):
        lam = lam + 0.2 * np.sqrt(lam) if shift == ("integer", 20 + j) else lam
        columns[f"x{20 + j}"] = rng.poisson(lam, n).astype(float)
    for j, p in enumerate(pop["categorical"]):
        columns[f"c{j}"] = pd.array(LEVELS[rng.choice(len(p), n, p=p)], dtype="str")
    frame = pd.DataFrame(columns)
    for name in ("x3", "x14", "x25"):
        frame.loc[rng.random(n) < 0.05, name] = np.nan
    frame.loc[rng.random(n) < 0.05, "c3"] = None
    return frame


LEVELS = np.array([f"L{i}" for i in range(64)], dtype=object)
CONTRACT = {
    "columns": {
        **{f"x{j}": {"role": "numeric"} for j in range(30)},
        **{f"c{j}": {"role": "categorical"} for j in range(20)},
    }
}


def churnlab_flags(profile: dict, current: pd.DataFrame, settings: dict) -> set[str]:
    features = drift.feature_drift(
        profile,
        current,
        settings["alpha"],
        settings["test_max_rows"],
        settings["wasserstein_threshold"],
        settings["jensen_shannon_threshold"],
        settings["missing_share_change"],
    )
    return {c for c, r in features.items() if r["drift"]}


def tutorial_pvalues(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    "The tutorial's test: `scipy.stats.ks_2samp` on every column, categories as codes, missing values left out."
    pvalues = {}
    for name in reference.columns:
        a, b = reference[name], current[name]
        if not pd.api.types.is_numeric_dtype(a):
            levels = pd.Categorical(pd.concat([a, b]).astype("str")).categories
            a, b = (pd.Categorical(s.astype("str"), categories=levels).codes for s in (a, b))
        a, b = np.asarray(a, float), np.asarray(b, float)
        pvalues[name] = stats.ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).pvalue
    return pvalues


def tutorial_flags(pvalues: dict[str, float], alpha: float, corrected: bool) -> set[str]:
    "As written: p < alpha per column, uncorrected. Corrected: Benjamini-Hochberg at alpha, as churnlab."
    names = list(pvalues)
    values = np.array([pvalues[n] for n in names])
    if corrected:
        values = stats.false_discovery_control(values, method="bh")
    return {n for n, v in zip(names, values, strict=True) if v < alpha}


METHODS = ["churnlab", "tutorial, BH at monitor.alpha", "tutorial as written (p < 0.05)"]


def rates(pop: dict, settings: dict, resamples: int, n: int = 5_000) -> tuple[dict, dict]:
    """False alarm and detection rates of each method on the same windows, and the seconds each spends per
    window computing its per-column tests (the same computation: p-values of every column on n vs n rows)."""
    out = {"false_alarm": dict.fromkeys(METHODS, 0), **{f"detect_{k}": dict.fromkeys(METHODS, 0) for k in KINDS}}
    seconds = {"churnlab": 0.0, "tutorial": 0.0}
    windows = 0

    def flags(profile, reference, current) -> dict[str, set[str]]:
        nonlocal windows
        windows += 1
        started = time.perf_counter()
        ours = churnlab_flags(profile, current, settings)
        seconds["churnlab"] += time.perf_counter() - started
        started = time.perf_counter()
        pvalues = tutorial_pvalues(reference, current)
        seconds["tutorial"] += time.perf_counter() - started
        return {
            METHODS[0]: ours,
            METHODS[1]: tutorial_flags(pvalues, settings["alpha"], corrected=True),
            METHODS[2]: tutorial_flags(pvalues, 0.05, corrected=False),
        }

    for i in range(resamples):
        reference = draw(pop, n, 10_000 + i)
        current = draw(pop, n, 20_000 + i)
        profile = drift.profile_reference(reference, CONTRACT)  # once per reference, as in production
        for method, flagged in flags(profile, reference, current).items():
            out["false_alarm"][method] += bool(flagged)
        for kind, columns in KINDS.items():
            column = columns[i % 10]
            shifted = draw(pop, n, 30_000 + i, shift=(kind, column))
            for method, flagged in flags(profile, reference, shifted).items():
                out[f"detect_{kind}"][method] += f"x{column}" in flagged
    per_window = {method: 1000 * total / windows for method, total in seconds.items()}
    return {k: {a: v / resamples for a, v in row.items()} for k, row in out.items()}, per_window


def timings(pop: dict, settings: dict, rows: int = 1_000_000) -> dict:
    "Seconds to monitor a `rows` x 50 window (1,000,000; 200,000 with --quick) against a 100,000-row profile."
    reference, current = draw(pop, 100_000, 1), draw(pop, rows, 2)
    rng = np.random.default_rng(3)
    ref_scores, scores = rng.beta(2, 5, 20_000), rng.beta(2, 5, rows)
    started = time.perf_counter()
    profile, score_profile = drift.profile_reference(reference, CONTRACT), drift.numeric_profile(ref_scores)
    profile_s = time.perf_counter() - started
    started = time.perf_counter()
    report = monitor.monitor_window(profile, current, settings, scores=scores, score_profile=score_profile)
    window_s = time.perf_counter() - started
    started = time.perf_counter()
    domain = drift.domain_classifier_auc(
        reference, current, drift.monitored_columns(CONTRACT), settings["domain_max_rows"]
    )
    domain_s = time.perf_counter() - started
    started = time.perf_counter()
    tutorial_pvalues(reference, current)
    tutorial_s = time.perf_counter() - started
    return {
        "window_rows": rows,
        "profile_s": profile_s,
        "window_s": window_s,
        "domain_s": domain_s,
        "tutorial_window_s": tutorial_s,
        "domain_auc": domain["roc_auc"],
        "domain_rows": domain["rows"],
        "dataset_drift": report["dataset_drift"],
        "drifted_columns": sum(r["drift"] for r in report["features"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10 resamples, a 200,000-row window")
    parser.add_argument("--output", help="default bench/results/monitor.json (monitor-quick.json with --quick)")
    args = parser.parse_args()
    args.output = args.output or str(ROOT / "bench" / "results" / f"monitor{'-quick' if args.quick else ''}.json")
    warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")  # the tutorial's default method
    settings = config.params_section("monitor", root=ROOT)
    resamples = 10 if args.quick else 200
    pop = population()
    started = time.perf_counter()
    detection, per_window_ms = rates(pop, settings, resamples)
    result = {
        "resamples": resamples,
        "n": 5_000,
        "alpha": settings["alpha"],
        "rates": detection,
        "tests_ms_per_window": per_window_ms,
        "timing": timings(pop, settings, 200_000 if args.quick else 1_000_000),
    }
    result["total_s"] = time.perf_counter() - started
    table = pd.DataFrame(result["rates"]).T[METHODS]
    print(f"\nDrift detection, {resamples} resamples of n = 5,000 vs 5,000 (50 columns; measured):")
    print(table.to_markdown(floatfmt=".3f"))
    print(
        "\nPer-column tests on one 5,000 vs 5,000 window (the same computation; measured, ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in per_window_ms.items())
    )
    t = result["timing"]
    print(
        f"\n{t['window_rows']:,} x 50 window vs a 100,000-row reference "
        f"(profile precomputed in {t['profile_s']:.2f} s). "
        "Different computations: churnlab's distances on profiles past monitor.test_max_rows, the tutorial's "
        "exact KS on the raw rows:"
    )
    print(
        pd.DataFrame(
            {
                "seconds": {
                    "churnlab: per-column drift + dataset drift + prediction drift": t["window_s"],
                    "tutorial: ks_2samp per column on the raw rows": t["tutorial_window_s"],
                    f"domain classifier, {t['domain_rows']:,} rows (3-fold CV)": t["domain_s"],
                }
            }
        ).to_markdown(floatfmt=".2f")
    )
    files.atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
