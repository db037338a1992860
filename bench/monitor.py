"""Drift-monitoring benchmark (`make bench`; `QUICK=1`: 20 resamples instead of 200).

A synthetic population of 50 columns (10 normal, 10 log-normal, 10 integer-valued Poisson, 20
categorical with 2 to 40 levels; 5% missing values in a few columns). Reference and current windows
are independent draws (n = 5,000 each). Side by side, on the same windows:

- churnlab: `drift.feature_drift` (KS / chi-square against a precomputed reference profile,
  Benjamini-Hochberg at `monitor.alpha`), dataset drift at `monitor.drift_share`;
- the tutorial approach: `scipy.stats.ks_2samp` on every column (categories as codes) at p < 0.05,
  no correction, dataset drift when any column drifts.

Reported: the false alarm rate (share of no-drift resamples in which any column is flagged), the
detection rate (share of resamples with a 0.2-SD mean shift in one numeric column in which that
column is flagged; normal, log-normal and integer columns apart; the integer column's Poisson mean
moves by 0.2 SD, so it stays integer), and the time to monitor a 1,000,000 x 50 window against a
100,000-row reference whose profile is precomputed (per-column drift, dataset drift and prediction
drift on 1,000,000 scores), the domain classifier apart on 50,000 rows.
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


def tutorial_flags(reference: pd.DataFrame, current: pd.DataFrame) -> set[str]:
    flagged = set()
    for name in reference.columns:
        a, b = reference[name], current[name]
        if not pd.api.types.is_numeric_dtype(a):
            levels = pd.Categorical(pd.concat([a, b]).astype("str")).categories
            a, b = (pd.Categorical(s.astype("str"), categories=levels).codes for s in (a, b))
        if (
            stats.ks_2samp(
                np.asarray(a, float)[~np.isnan(np.asarray(a, float))],
                np.asarray(b, float)[~np.isnan(np.asarray(b, float))],
            ).pvalue
            < 0.05
        ):
            flagged.add(name)
    return flagged


def rates(pop: dict, settings: dict, resamples: int, n: int = 5_000) -> dict:
    "False alarm and detection rates of both approaches."
    out = {
        "false_alarm": {"churnlab": 0, "tutorial": 0},
        **{f"detect_{k}": {"churnlab": 0, "tutorial": 0} for k in KINDS},
    }
    for i in range(resamples):
        reference = draw(pop, n, 10_000 + i)
        current = draw(pop, n, 20_000 + i)
        profile = drift.profile_reference(reference, CONTRACT)  # once per reference, as in production
        out["false_alarm"]["churnlab"] += bool(churnlab_flags(profile, current, settings))
        out["false_alarm"]["tutorial"] += bool(tutorial_flags(reference, current))
        for kind, columns in KINDS.items():
            column = columns[i % 10]
            shifted = draw(pop, n, 30_000 + i, shift=(kind, column))
            out[f"detect_{kind}"]["churnlab"] += f"x{column}" in churnlab_flags(profile, shifted, settings)
            out[f"detect_{kind}"]["tutorial"] += f"x{column}" in tutorial_flags(reference, shifted)
    return {k: {a: v / resamples for a, v in row.items()} for k, row in out.items()}


def timings(pop: dict, settings: dict) -> dict:
    "Seconds to monitor a 1,000,000 x 50 window against a precomputed 100,000-row profile."
    reference, current = draw(pop, 100_000, 1), draw(pop, 1_000_000, 2)
    rng = np.random.default_rng(3)
    ref_scores, scores = rng.beta(2, 5, 20_000), rng.beta(2, 5, 1_000_000)
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
    tutorial_flags(reference, current)
    tutorial_s = time.perf_counter() - started
    return {
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
    parser.add_argument("--quick", action="store_true", help="20 resamples instead of 200")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "monitor.json"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")  # the tutorial's default method
    settings = config.params_section("monitor", root=ROOT)
    resamples = 20 if args.quick else 200
    pop = population()
    started = time.perf_counter()
    result = {
        "resamples": resamples,
        "n": 5_000,
        "rates": rates(pop, settings, resamples),
        "timing": timings(pop, settings),
    }
    result["total_s"] = time.perf_counter() - started
    table = pd.DataFrame(result["rates"]).T[["churnlab", "tutorial"]]
    print(f"\nDrift detection, {resamples} resamples of n = 5,000 vs 5,000 (50 columns):")
    print(table.to_markdown(floatfmt=".3f"))
    t = result["timing"]
    print(f"\n1,000,000 x 50 window vs a 100,000-row reference (profile precomputed in {t['profile_s']:.2f} s):")
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
