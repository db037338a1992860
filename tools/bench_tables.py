"""The docs' benchmark tables, generated from `bench/results/*.json` (`make docs`; `--check` fails on a stale one).

A generated block sits in a Markdown cell of a notebook (README.md and the docs pages are rendered
from the notebooks) between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`. NAME picks the renderer
in RENDERERS, which reads the results a benchmark wrote: the figures are the benchmark's, never typed.
A benchmark run rewrites its JSON; `python tools/bench_tables.py` (or `make docs`) rewrites the
blocks; `python tools/bench_tables.py --check` (run by the tests) lists every block that differs
from what its JSON renders to.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NOTEBOOKS = [
    ROOT / "nbs" / "index.ipynb",
    ROOT / "nbs" / "02_features.ipynb",
    ROOT / "nbs" / "guides" / "byod.ipynb",
    ROOT / "nbs" / "guides" / "reasons.ipynb",
]
NAMES = {"telco": "Telco"}
FOLDS = {"time": "expanding windows, each fitted on the past"}
BLOCK = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n(?:.*?\n)?<!-- /bench:(?P=name) -->", re.S)


def results(name: str):
    "One benchmark's results file, parsed."
    path = RESULTS / name
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(ROOT)} is missing: run the benchmark that writes it (make bench)")
    return json.loads(path.read_text())


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False)


def _table(header: list[str], rows: list[list[str]]) -> str:
    "A Markdown table as the guides write them (`|---|` rules; repeated column names allowed)."
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _gain(row: dict) -> str:
    "A variant's paired gain over the base as `+0.0040 ± 0.0005` (blank for the base itself)."
    if row["variant"] == "base":
        return ""
    gain = f"{row['gain']:+.4f}"
    return f"{'0.0000' if gain in ('+0.0000', '-0.0000') else gain} ± {row['se']:.4f}"


def _by_variant(report: dict) -> dict[str, dict[str, dict]]:
    "variant -> family -> row, in the order the ablation ran them."
    table: dict[str, dict[str, dict]] = {}
    for row in report["rows"]:
        table.setdefault(row["variant"], {})[row["family"]] = row
    return table


def _families(report: dict) -> list[str]:
    return list(dict.fromkeys(r["family"] for r in report["rows"]))


def ablation_table(report: dict) -> str:
    "One dataset's block ablation: ROC-AUC and paired gain ± SE per family and variant."
    families = _families(report)
    head = (
        f"`python bench/ablation.py` (measured, part of `make bench-features`; {report['seconds']:.0f} s): the "
        f"{NAMES.get(report['dataset'], report['dataset'])} training split ({report['training_rows']:,} rows), "
        f"{report['folds']} folds ({FOLDS.get(report['strategy'], 'repeated 5x2')}, {report['strategy']} strategy) "
        "with the shipped `train` parameters; gain = the "
        "paired per-fold ROC-AUC difference against the base (every optional block off), mean ± SE over the folds."
    )
    rows = [[variant, *_family_cells(families, by_family)] for variant, by_family in _by_variant(report).items()]
    return head + "\n\n" + _table(["block", *_family_header(families)], rows)


def _family_header(families: list[str]) -> list[str]:
    return [h for f in families for h in (f"{f} ROC-AUC", "gain ± SE")]


def _family_cells(families: list[str], by_family: dict[str, dict]) -> list[str]:
    "ROC-AUC and gain ± SE of each family (blank where a family did not run the variant)."
    cells = []
    for family in families:
        row = by_family.get(family)
        cells += ["", ""] if row is None else [f"{row['roc_auc']:.4f}", _gain(row)]
    return cells


def date_parts_table(reports: list[dict]) -> str:
    "Date parts on the dated datasets: base and date_parts per dataset, one row each."
    rows = []
    for report in reports:
        families = _families(report)
        for variant, by_family in _by_variant(report).items():
            size = f" ({report['training_rows']:,})" if variant == "base" else ""
            rows.append([f"{report['dataset']}, {variant}{size}", *_family_cells(families, by_family)])
    commands = ", ".join(
        f"`python bench/ablation.py --dataset {r['dataset']} --blocks date_parts` ({r['seconds']:.0f} s)"
        for r in reports
    )
    head = f"Measured with {commands}; {reports[0]['folds']} folds ({FOLDS['time']}) under the time strategy.\n\n"
    return head + _table(["dataset (training rows)", *_family_header(_families(reports[0]))], rows)


def _interval(pair: list[float]) -> str:
    return f"{pair[0]:+.4f} to {pair[1]:+.4f}".replace("-", "−")


def datasets_table(entries: list[dict]) -> str:
    "The pipeline on other datasets: the candidate against the seed-style recipe and a default HistGB."
    header = [
        "dataset", "what it covers", "rows (train + test)", "test positives", "chosen",
        "candidate ROC-AUC (95% CI)", "seed-style", "default HistGB", "candidate − seed-style",
        "candidate − HistGB", "target encoding", "`dvc repro`",
    ]  # fmt: skip
    rows = [
        [
            e["dataset"]
            + "".join(
                f", `prepare.{k}: {v}`" for k, v in (e["prepare"] if isinstance(e["prepare"], dict) else {}).items()
            ),
            e["covers"],
            f"{e['rows']:,}",
            f"{e['test_positives']:,} ({e['positive_rate']:.1%})",
            e["family"],
            f"{e['candidate']:.4f} ({e['candidate_ci95'][0]:.4f}–{e['candidate_ci95'][1]:.4f})",
            f"{e['seed_style']:.4f}",
            f"{e['default_hist_gb']:.4f}",
            _interval(e["minus_seed_style_ci95"]),
            _interval(e["minus_hist_gb_ci95"]),
            e["target_encoding"],
            f"{e['repro_seconds']:.0f} s",
        ]
        for e in entries
    ]
    families = list(dict.fromkeys(f for e in entries for f in e["cv"]))
    cv = [[e["dataset"], *(e["cv"].get(f, "") for f in families)] for e in entries]
    return (
        "Measured with `python bench/datasets.py` on 2 cores (`bench/results/datasets.json`; the positive "
        "rates are the test splits'):\n\n" + _table(header, rows) + "\n\nCross-validated ROC-AUC of each family on "
        "the training split (mean ± SD over the folds; `reports/cv.json` of each run), from which `train` chose:\n\n"
        + _table(["dataset", *families], cv)
    )


PEER_NAMES = {
    "catboost": "CatBoost default",
    "lightgbm": "LightGBM default",
    "xgboost": "XGBoost default",
    "default_hist_gb": "HistGB default (one-hot)",
    "seed_style": "seed-style RF",
    "autogluon": "AutoGluon medium",
}
DEFAULT_PEERS = ("catboost", "lightgbm", "xgboost", "default_hist_gb")


def _signed(value: float) -> str:
    return f"{value:+.4f}".replace("-", "−")


def frontier_table(entries: list[dict]) -> str:
    "The champion against library defaults and AutoGluon on the same test rows, with intervals and times."
    measured = [e for e in entries if e.get("peers")]
    if not measured:
        return "Not measured yet: run `python bench/datasets.py` (with its peers)."
    peers = [p for p in PEER_NAMES if any(p in e["peers"] for e in measured)]
    header = ["dataset", "champion (chosen)", *(PEER_NAMES[p] for p in peers), "champion − best default",
              "champion − AutoGluon", "blend"]  # fmt: skip
    rows, shortfalls = [], []
    for e in measured:
        found = e["peers"]
        best = max((p for p in DEFAULT_PEERS if p in found), key=lambda p: found[p]["roc_auc"])
        shortfalls.append((e["dataset"], e["candidate"] - found[best]["roc_auc"], best))
        auto = found.get("autogluon")
        rows.append([
            e["dataset"],
            f"{e['candidate']:.4f} ({e['family']}, {e['repro_seconds']:.0f} s)",
            *(f"{found[p]['roc_auc']:.4f} ({found[p]['seconds']:.0f} s)" if p in found else "" for p in peers),
            f"{_signed(e['candidate'] - found[best]['roc_auc'])} ({_interval(found[best]['minus_ci95'])}; "
            f"{PEER_NAMES[best]})",
            f"{_signed(e['candidate'] - auto['roc_auc'])} ({_interval(auto['minus_ci95'])})" if auto else "",
            e.get("ensemble", "not tried"),
        ])  # fmt: skip
    mean = sum(e["candidate"] for e in measured) / len(measured)
    auto_mean = [e["peers"]["autogluon"]["roc_auc"] for e in measured if "autogluon" in e["peers"]]
    below = [f"{d} ({_signed(gap)} vs {PEER_NAMES[p]})" for d, gap, p in shortfalls if gap < -0.005]
    summary = (
        f"Mean test ROC-AUC over the {len(measured)} datasets: champion {mean:.4f}"
        + (f", AutoGluon medium {sum(auto_mean) / len(auto_mean):.4f}" if len(auto_mean) == len(measured) else "")
        + ". More than 0.005 below the best default peer: "
        + (", ".join(below) or "none")
        + "."
    )
    return (
        "Measured with `python bench/datasets.py` on 2 cores (`bench/results/datasets.json`): each peer fitted on "
        "the same training rows and scored on the same test rows as the champion (what `dvc repro` promoted); "
        "in brackets its seconds to fit and score (the champion's: the whole `dvc repro`, which is also "
        "AutoGluon's `time_limit`), and for the differences the 95% paired-bootstrap interval.\n\n"
        + _table(header, rows)
        + "\n\n"
        + summary
    )


def families_table(entries: list[dict]) -> str:
    "Each family's CV ROC-AUC against hist_gb's on the same folds, and the blend's nested CV, per dataset."
    families = list(dict.fromkeys(f for e in entries for f in e["families"]))
    rows = []
    for e in entries:
        cells = [f"{e['families'][f]['mean']:.4f} ({e['families'][f]['gain_vs_hist_gb']:+.4f} ± "
                 f"{e['families'][f]['se']:.4f}; {e['families'][f]['seconds']:.0f} s)" if f in e["families"] else ""
                 for f in families]  # fmt: skip
        blend = e["blend"]
        verdict = (f"{blend['mean']:.4f} ({'+'.join(blend['members'])}: {blend['gain']:+.4f} ± {blend['se']:.4f} "
                   f"over the best family{', adopted' if blend['adopted'] else ''}"
                   f"{', earlier folds only' if blend.get('ordered') else ''})") if blend.get("mean") else \
            "not tried (time-ordered folds)"  # fmt: skip
        native = e.get("with_catboost")
        with_catboost = f"{native['mean']:.4f} ({native['gain']:+.4f} ± {native['se']:.4f})" if native else ""
        rows.append([e["dataset"], f"{e['rows']:,}", *cells, verdict, with_catboost])
    return (
        "Measured with `python bench/families.py` on 2 cores (`bench/results/families.json`): 5-fold CV ROC-AUC of "
        "the training split only, each family with its shipped `train` block (untuned), in brackets its paired "
        "gain over `hist_gb` on the same folds ± SE and its CV seconds; the blend (`train.ensemble: auto`) "
        "scored nested on the same folds (under time-ordered folds, each fold with weights fitted on the earlier ones "
        "only; the first fold is not scored); and the blend `catboost` would make if it could join the one-hot "
        "families (train does not build it: its codes cannot share their matrix), with its gain over the best "
        "single family:\n\n"
        + _table(["dataset", "training rows", *(f"`{f}`" for f in families), "blend", "blend with `catboost`"], rows)
    )


def rules_table(entries: list[dict]) -> str:
    "Each selection policy's outer-fold ROC-AUC per dataset, its paired difference to `best`, and its picks."

    def cell(policy: dict) -> str:
        picks = ", ".join(f"{family} x{n}" for family, n in pd.Series(policy["picks"]).value_counts().items())
        se = f" ± {policy['se']:.4f}" if policy.get("se") is not None else ""
        return f"{policy['mean']:.4f} ({policy['minus_best']:+.4f}{se}; {picks})"

    rows = [[e["dataset"], f"{e['rows']:,}", f"{e['outer_folds']} ({e['strategy']})", *(cell(e[p]) for p in
             ("best", "one_se", "shipped"))] for e in entries]  # fmt: skip
    return (
        "Measured with `python bench/rules.py` on 2 cores (`bench/results/rules.json`): nested CV of the training "
        "split only. On each outer fold's training rows, selection runs as train does (shipped candidates and "
        "blocks, untuned, 5 inner folds); each policy's pick is fitted there and scored on the outer validation "
        "rows. Outer-fold mean ROC-AUC, in brackets the paired difference to `best` ± SE and the picks:\n\n"
        + _table(["dataset", "training rows", "outer folds", "`best`", "`one_se`", "`one_se` + blend (shipped)"], rows)
        + f"\n\nOver the {len(entries)} datasets (the mean of each dataset's difference; datasets taken as "
        + "independent for the SE): "
        + "; ".join(_pooled(entries, p) for p in ("one_se", "shipped"))
        + "."
    )


def _pooled(entries: list[dict], policy: str) -> str:
    "The mean over datasets of `policy` minus `best`, with the SE of that mean (the per-dataset SEs, independent)."
    gains = np.array([e[policy]["minus_best"] for e in entries])
    se = np.sqrt(sum((e[policy]["se"] or 0.0) ** 2 for e in entries)) / len(entries)
    label = "`one_se` + blend (shipped)" if policy == "shipped" else f"`{policy}`"
    return f"{label} − `best` {gains.mean():+.4f} (SE {se:.4f})"


def scale_tables(report: dict) -> str:
    "The README's size tables: per-stage time and memory with growth exponents, AUC against the oracle, parts."
    sizes, growth = report["sizes"], report["growth"]
    pairs = list(zip(sizes, sizes[1:], strict=False))
    stages = pd.DataFrame(
        [
            {
                "stage": stage,
                **{
                    f"{r['rows']:,} rows": "{seconds:.0f} s, {peak_rss_mb:,} MB".format(**r["stages"][stage])
                    for r in sizes
                },
                **{
                    f"exponent {a['rows']:,}->{b['rows']:,}": g for (a, b), g in zip(pairs, growth[stage], strict=False)
                },
            }
            for stage in sizes[0]["stages"]
        ]
        + [
            {
                "stage": "**dvc repro**",
                **{f"{r['rows']:,} rows": f"**{r['repro_seconds'] / 60:.1f} min**" for r in sizes},
                **{
                    f"exponent {a['rows']:,}->{b['rows']:,}": g
                    for (a, b), g in zip(pairs, growth["repro"], strict=False)
                },
            }
        ]
    )
    keys = ["rows", "test_rows", "test_positive_rate", "family", "oracle", "champion", "default_hist_gb"]
    aucs = pd.DataFrame([{k: r[k] for k in keys} for r in sizes])
    aucs["champion - oracle"] = (aucs["champion"] - aucs["oracle"]).round(4)
    aucs["champion - default_hist_gb"] = (aucs["champion"] - aucs["default_hist_gb"]).round(4)
    return "\n\n".join(
        [
            "Wall time and peak RSS per stage, and the growth exponent (slope of log time vs log rows; 1 is "
            "linear), measured by `make bench-scale` on 2 cores (`bench/results/scale.json`):",
            _markdown(stages),
            "Test ROC-AUC on each size's own test split (measured, same run): the oracle is the generator's true "
            "probability; `default_hist_gb` is a default HistGradientBoosting on the project's features fitted on "
            "every training row:",
            _markdown(aucs),
            "Parts measured on their own (same run):",
            _markdown(pd.DataFrame(report["parts"]).astype(object).fillna("")),
        ]
    )


def shadow_table(report: dict) -> str:
    "The champion's p50 with the shadow challenger off and on, per round and client count, and the median ratio."
    rows = [
        [
            str(row["clients"]),
            " / ".join(f"{v:.3f}" for v in row["p50_off_ms"]),
            " / ".join(f"{v:.3f}" for v in row["p50_on_ms"]),
            f"{row['ratio']:.3f}",
        ]
        for row in report["summary"]
    ]
    rounds = len(report["summary"][0]["p50_off_ms"])
    header = ["clients", "champion p50 off, ms (each run)", "p50 on, ms (each run)", "median on / median off"]
    return (
        f"Measured with `python bench/shadow.py` ({rounds} runs of {report['seconds_per_run']:.0f} s per mode, "
        "alternating off and on: the same champion, requests and load generator, in one run; the spread of the "
        "off runs is the noise to read the ratio against):\n\n" + _table(header, rows)
    )


def serve_tables(report: dict) -> str:
    "The serving stack alone (same pipeline), then the system as shipped vs the seed recipe, then batch scoring."
    by = {(r["service"], r["load"]): r for r in report["load"]}
    levels = list(dict.fromkeys(r["load"] for r in report["load"]))

    def comparison(other: str, ratios: list[dict]) -> str:
        rows = [
            [
                level,
                f"{by[('churnlab', level)]['p50_ms']:.2f}",
                f"{by[(other, level)]['p50_ms']:.2f}",
                f"{by[('churnlab', level)]['per_s']:,.0f}",
                f"{by[(other, level)]['per_s']:,.0f}",
                f"{r['p50_ratio']:.1f}x",
                f"{r['throughput_ratio']:.1f}x",
            ]
            for level, r in zip(levels, ratios, strict=True)
        ]
        header = ["load", "churnlab p50 ms", f"{other} p50 ms", "churnlab req/s", f"{other} req/s"]
        return _table([*header, "p50: other / churnlab", "throughput: churnlab / other"], rows)

    model, aucs = report["model"], report["test_roc_auc"]
    batch = [
        [r["method"], f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['rows_per_s']:,.0f}", f"{r['peak_rss_mb']:,.0f}"]
        for r in report["batch"]
    ]
    return "\n\n".join(
        [
            f"Measured with `python bench/serve.py` ({report['seconds_per_level']:.0f} s per load level; server on "
            "one core, load generator on the other). **The serving stack alone**: the same fitted pipeline "
            f"(the candidate, {model['family']}) behind `churnlab serve` and behind the plain FastAPI pattern (a "
            "pydantic model and a DataFrame per request, one `predict_proba`); both return the same "
            f"probabilities (largest difference on 50 records: {report['same_pipeline_max_difference']:.0e}), and "
            "churnlab also logs every prediction:",
            comparison("plain, same pipeline", report["stack_ratios"]),
            "**The system as shipped vs the seed recipe**: the same `churnlab serve` against the tutorial service "
            "as written (its own RandomForest(100) on `get_dummies` + StandardScaler, `predict` and "
            "`predict_proba` per call). Model choice AND serving stack differ here, so this ratio is not an "
            f"engineering figure alone. Test ROC-AUC: churnlab {aucs['churnlab']:.4f}, tutorial "
            f"{aucs['tutorial']:.4f}.",
            comparison("tutorial, as written", report["shipped_vs_seed_ratios"]),
            "Batch scoring with the same pipeline, each method in its own process (peak RSS is that process's "
            "own; the input file is written beforehand):",
            _table(["method", "rows", "seconds", "rows/s", "peak RSS MB"], batch),
        ]
    )


def serve_sizing(report: dict) -> str:
    "The sizing sentence of the cluster section: one replica's measured rates."
    by = {(r["service"], r["load"]): r for r in report["load"]}
    single, batch = by[("churnlab", "1 record, 32 clients")], by[("churnlab", "batch of 1,000, 1 client")]
    return (
        f"About {single['per_s']:,.0f} single-record requests/s per replica (p99 {single['p99_ms']:.0f} ms at 32 "
        f"concurrent clients), or about {batch['per_s']:,.0f} batches of 1,000 records/s "
        f"({batch['per_s'] * 1000:,.0f} records/s); measured by `python bench/serve.py` (one service process, "
        "the load generator on the same 2-core machine)."
    )


def monitor_tables(report: dict) -> str:
    "Drift detection at matched false-alarm rates, the same tests timed per window, and the 1M-row window."
    methods = list(report["rates"]["false_alarm"])
    labels = {"false_alarm": "false alarm (no drift: any column flagged)"}
    rows = [
        [
            labels.get(k, f"detects a 0.2-SD shift, {k.removeprefix('detect_')} column"),
            *(f"{v[m]:.3f}" for m in methods),
        ]
        for k, v in report["rates"].items()
    ]
    timing = report["timing"]
    window = [
        ["churnlab: per-column drift + dataset drift + prediction drift", f"{timing['window_s']:.2f}"],
        ["tutorial: ks_2samp per column on the raw rows", f"{timing['tutorial_window_s']:.2f}"],
        [f"domain classifier, {timing['domain_rows']:,} rows (3-fold CV)", f"{timing['domain_s']:.2f}"],
    ]
    per_window = report["tests_ms_per_window"]
    return "\n\n".join(
        [
            f"Measured with `python bench/monitor.py`: {report['resamples']} resamples of {report['n']:,} vs "
            f"{report['n']:,} rows over 50 synthetic columns. The tutorial's KS p-values are read twice: "
            f"corrected as churnlab corrects (Benjamini-Hochberg at `monitor.alpha` = {report['alpha']}), "
            "which matches the false-alarm rates, and as written:",
            _table(["share of resamples", *methods], rows),
            f"The per-column tests of one {report['n']:,}-row window, the same computation on both sides: "
            f"churnlab {per_window['churnlab']:.1f} ms, `ks_2samp` on every column {per_window['tutorial']:.1f} ms. "
            f"A 1,000,000 x 50 window against a 100,000-row reference (its profile built once, in "
            f"{timing['profile_s']:.2f} s). These are different computations: churnlab's distances on profiles "
            "past `monitor.test_max_rows`, against exact KS on the raw rows:",
            _table(["1,000,000-row window", "seconds"], window),
        ]
    )


def estimate_table(report: dict) -> str:
    "Performance estimated without labels vs realised, per shift and window size, with the label check."
    shares = list(report["rows"][0]["flagged"])
    rows = [
        [
            r["shift"],
            f"{r['rows']:,}",
            f"{r['realised_roc_auc']:.3f}",
            f"{r['within_0.02']:.2f}",
            f"{r['oracle_within_0.02']:.2f}",
            f"{r['carried_within_0.02']:.2f}",
            f"{r['bias']:+.4f}",
            f"{r['coverage']:.2f}",
            f"{r['churners_mean_abs_rel_error']:.3f}",
            " / ".join(f"{r['flagged'][s]:.2f}" for s in shares),
        ]
        for r in report["rows"]
    ]
    covariate = [r for r in report["rows"] if r["kind"] != "concept"]
    pooled = {
        size: sum(r["within_0.02"] * r["windows"] for r in covariate if r["rows"] == size)
        / sum(r["windows"] for r in covariate if r["rows"] == size)
        for size in sorted({r["rows"] for r in covariate})
    }
    floor = {
        size: sum(r["oracle_within_0.02"] * r["windows"] for r in covariate if r["rows"] == size)
        / sum(r["windows"] for r in covariate if r["rows"] == size)
        for size in pooled
    }
    coverage = {
        size: sum(r["coverage"] * r["windows"] for r in covariate if r["rows"] == size)
        / sum(r["windows"] for r in covariate if r["rows"] == size)
        for size in pooled
    }
    check = report["reference"]["check"]
    header = [
        "shift",
        "window rows",
        "realised ROC-AUC",
        "estimate within 0.02",
        "noise floor",
        "test ROC-AUC carried over",
        "bias",
        f"{report['settings']['confidence']:.0%} interval coverage",
        "churners: mean rel. error",
        "untrusted with " + " / ".join("all" if s == "1.0" else f"{float(s):.0%}" for s in shares) + " labels",
    ]
    return "\n\n".join(
        [
            f"Measured with `python bench/estimate.py` ({report['seconds']:.0f} s): {report['windows_per_cell']} "
            f"windows per row, drawn from {report['pool_rows']:,} synthetic rows the model never saw "
            f"(`hist_gb` fitted on {report['fitted_rows']:,}); the estimation reference from "
            f"{report['test_rows']:,} labelled test rows (calibration {check['reason']}; test ROC-AUC "
            f"{report['reference']['test_roc_auc']:.4f}, estimated from its scores "
            f"{report['reference']['test_estimated_roc_auc']:.4f}). Shares of windows; *noise floor*: the share "
            "within 0.02 of the ROC-AUC expected from the rows' true probabilities, the most any estimator "
            "can reach (the realised figure itself carries label noise); *untrusted*: the share flagged by the "
            "check of the labels that have arrived (false flags under covariate shift, detections under the "
            "concept shift):",
            _table(header, rows),
            "Over all covariate shifts: the estimate is within 0.02 of the realised ROC-AUC in "
            + ", ".join(
                f"{pooled[s]:.0%} of {s:,}-row windows (noise floor {floor[s]:.0%}; the "
                f"{report['settings']['confidence']:.0%} interval held the realised value in {coverage[s]:.0%})"
                for s in pooled
            )
            + ".",
        ]
    )


def nn_table(report: dict) -> str:
    "The network against the plain and the tutorial loops: steps, time per epoch and per step, time to best, AUC."
    rows = [
        [
            r["dataset"],
            r["method"],
            r["figures"],
            f"{r['steps_per_epoch']:,}",
            f"{r['sec_per_epoch']:.3f}",
            f"{r['ms_per_step']:.2f}",
            r["epochs_to_best"],
            r["wall_to_best_s"],
            ""
            if r["test_roc_auc"] is None
            else f"{r['test_roc_auc']:.4f}"
            + ("" if r["test_roc_auc_sd"] is None else f" ± {r['test_roc_auc_sd']:.4f}"),
        ]
        for r in report["rows"]
    ]
    header = ["data", "method", "figures", "steps/epoch", "s/epoch", "ms/step", "epochs to best", "s to best"]
    return (
        f"Measured with `python bench/nn.py` ({report['device']}): the same layers, patience, plateau schedule "
        "and validation share on every side. The tutorial loop takes 32x more optimiser steps per epoch, so read "
        "it by time to best at the ROC-AUC it reaches and by ms per step, not by seconds per epoch. `>=`: the "
        "epoch cap stopped it first. Test ROC-AUC is mean ± SD over the seeds:\n\n"
        + _table([*header, "test ROC-AUC"], rows)
    )


def nn_ablation_table(report: dict) -> str:
    "The network's options by 5-fold CV on two training splits, paired against the shipped defaults."
    datasets = [k.removesuffix(" vs defaults") for k in report["rows"][0] if k.endswith(" vs defaults")]

    def paired(row: dict, dataset: str) -> str:
        if row is report["rows"][0]:
            return ""
        return f"{row[f'{dataset} vs defaults']:+.4f} ± {row[f'{dataset} vs defaults SE']:.4f}"

    rows = [[r["variant"], *(r[d] for d in datasets), *(paired(r, d) for d in datasets)] for r in report["rows"]]
    header = ["variant", *(f"{NAMES.get(d, d)} CV ROC-AUC" for d in datasets)]
    return (
        f"`python bench/nn_ablation.py` (measured, part of `make bench-features`; {report['seconds']:.0f} s): "
        "5-fold stratified CV ROC-AUC on each training split (mean ± SE over the folds) of the pipeline with "
        "`train.model: nn` and one option changed from `params.yaml`'s `train.nn`; against the defaults: the "
        "paired per-fold difference on the same folds, mean ± SE:\n\n"
        + _table([*header, *(f"{NAMES.get(d, d)} vs defaults" for d in datasets)], rows)
    )


def explain_table(report: dict) -> str:
    "Reason codes per family: what they add up to, how exactly, and the latency of `?explain=3`."
    rows = [
        [
            f"`{r['family']}`",
            r["method"],
            r["output"],
            "exact" if r["exact"] else "estimated (additive)",
            f"{r['max_additivity_gap']:.1e}",
            "yes" if r["compiled"] else "no",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['p50_ms_without_codes']:.2f}",
        ]
        for r in report["rows"]
    ]
    return (
        f"Measured with `python bench/explain.py` ({report['seconds']:.0f} s) on the Telco splits: each family "
        f"fitted on the training split with its `params.yaml` block; additivity on 1,000 test rows; latency per "
        f"record, one at a time, {report['rows'][0]['records']} records, one thread (what `POST /predict?explain=3` "
        "computes, HTTP and validation excluded, as they are the same with or without codes):\n\n"
        + _table(
            [
                "family",
                "method",
                "adds up to",
                "Shapley values",
                "max abs(sum + base - output)",
                "compiled",
                "p50 ms, ?explain=3",
                "p99 ms",
                "p50 ms, no codes",
            ],
            rows,
        )
    )


def explain_example(report: dict) -> str:
    "One Telco test customer's contributions on every raw column, summing to the model's log-odds."
    row = next(r for r in report["rows"] if r["family"] == "hist_gb")
    example = row["example"]
    lines = [["base value (the training cover's expected log-odds)", f"{example['base']:+.4f}"]]
    lines += [[f"`{column}`", f"{value:+.4f}"] for column, value in example["contributions"]]
    lines += [["**sum**", f"**{example['sum']:+.4f}**"], ["the model's log-odds", f"{example['output']:+.4f}"]]
    return (
        "The first test customer of the Telco splits, explained by the `hist_gb` family (`python "
        "bench/explain.py`): every raw column's contribution (one-hot levels and missing-value indicators "
        f"summed back), largest first. The sum is the model's log-odds, probability {example['probability']:.4f}:\n\n"
        + _table(["raw column", "contribution (log-odds)"], lines)
    )


def bench_times_table(report: dict) -> str:
    "Where `make bench`'s time goes, per script."
    rows = [[f"`bench/{r['script']}`", f"{r['seconds']:.0f}"] for r in report["rows"]]
    return (
        f"`make bench` took {report['total_seconds'] / 60:.1f} min (measured by `bench/run_all.py`, which "
        "runs each script in turn):\n\n"
        + _table(["benchmark", "seconds"], [*rows, ["total", f"{report['total_seconds']:.0f}"]])
    )


RENDERERS: dict[str, Callable[[], str]] = {
    "scale": lambda: scale_tables(results("scale.json")),
    "ablation-telco": lambda: ablation_table(results("ablation-telco.json")),
    "ablation-date-parts": lambda: date_parts_table(
        [results(f"ablation-{d}-date_parts.json") for d in ("loans", "flights")]
    ),
    "datasets": lambda: datasets_table(results("datasets.json")),
    "frontier": lambda: frontier_table(results("datasets.json")),
    "families": lambda: families_table(results("families.json")),
    "rules": lambda: rules_table(results("rules.json")),
    "shadow": lambda: shadow_table(results("shadow.json")),
    "serve": lambda: serve_tables(results("serve.json")),
    "serve-sizing": lambda: serve_sizing(results("serve.json")),
    "monitor": lambda: monitor_tables(results("monitor.json")),
    "estimate": lambda: estimate_table(results("estimate.json")),
    "explain": lambda: explain_table(results("explain.json")),
    "explain-example": lambda: explain_example(results("explain.json")),
    "nn": lambda: nn_table(results("nn.json")),
    "nn-ablation": lambda: nn_ablation_table(results("nn_ablation.json")),
    "bench-times": lambda: bench_times_table(results("bench_times.json")),
}


def refreshed(text: str) -> str:
    "`text` with every generated block rendered anew from its results."

    def render(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise KeyError(f"<!-- bench:{name} -->: no renderer of that name in tools/bench_tables.py")
        return f"<!-- bench:{name} -->\n{RENDERERS[name]()}\n<!-- /bench:{name} -->"

    return BLOCK.sub(render, text)


def _markdown_cells(path: Path):
    "The notebook at `path` and its Markdown cells that hold a generated block."
    notebook = nbformat.read(path, as_version=4)
    return notebook, [c for c in notebook.cells if c.cell_type == "markdown" and BLOCK.search(c.source)]


def blocks(notebooks: list[Path] = NOTEBOOKS) -> dict[str, Path]:
    "Every generated block's name -> the notebook that holds it."
    return {m["name"]: path for path in notebooks for c in _markdown_cells(path)[1] for m in BLOCK.finditer(c.source)}


def stale(notebooks: list[Path] = NOTEBOOKS) -> list[str]:
    "`notebook: block` for each generated block that differs from what its results render to."
    out = []
    for path in notebooks:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for cell in _markdown_cells(path)[1]:
            fresh = {m["name"]: m[0] for m in BLOCK.finditer(refreshed(cell.source))}
            out += [f"{shown}: {m['name']}" for m in BLOCK.finditer(cell.source) if m[0] != fresh[m["name"]]]
    return out


def write(notebooks: list[Path] = NOTEBOOKS) -> list[Path]:
    "Rewrite the generated blocks in place; the notebooks that changed."
    changed = []
    for path in notebooks:
        notebook, cells = _markdown_cells(path)
        before = [c.source for c in cells]
        for cell in cells:
            cell.source = refreshed(cell.source)
        if [c.source for c in cells] != before:
            nbformat.write(notebook, path)
            changed.append(path)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list stale blocks and exit 1 if any; write nothing")
    args = parser.parse_args()
    if args.check:
        found = stale()
        print("\n".join(f"stale: {s} (run python tools/bench_tables.py)" for s in found) or "bench tables: fresh")
        sys.exit(1 if found else 0)
    for path in write():
        print(f"rewrote the generated tables of {path}")


if __name__ == "__main__":
    main()
