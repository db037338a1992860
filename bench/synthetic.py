"""A deterministic synthetic churn table with the shapes real exports have, and each row's true probability.

`churn_table(n, seed)` returns (raw frame as a CSV export would hold it, true probability per row).
The columns: an integer `customer_id` (shuffled, unique), `signup_date` as ISO text, `monthly_spend`
as text with blanks (a number column exported as strings), `tenure_months` and `support_calls`
(counts), `overdue_amount` (zero-inflated), `data_usage_gb`, `plan` and `region` (a few levels),
`city` (2,000 Zipf-distributed levels: most rows in a few cities, a long tail of rare ones),
`autopay` (True/False), `complained` (a 0/1 flag with blanks) and the target `churned` (yes/no).

The target is drawn from a known logistic model of the columns as exported (non-linear in tenure
and spend, an interaction of plan and calls, a random effect per city; a blank spend or complaint
flag has its own effect), so the true probability is a function of what a model sees, and its
ROC-AUC on any split, the oracle, is the ceiling every model is measured against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CITIES = 2_000
TARGET, POSITIVE = "churned", "yes"
DATA_SECTION = {"target": TARGET, "positive_label": POSITIVE, "id_columns": ["customer_id"]}


def _zipf_levels(rng: np.random.Generator, n: int, levels: int, exponent: float = 1.1) -> np.ndarray:
    "Level indices 0..levels-1 drawn with probability proportional to 1 / rank**exponent."
    weights = 1.0 / np.arange(1, levels + 1) ** exponent
    return rng.choice(levels, size=n, p=weights / weights.sum())


def churn_table(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    "The raw table of `n` customers and the true churn probability of each row (same order)."
    rng = np.random.default_rng(seed)
    city_effect = np.random.default_rng(seed + 1).normal(0.0, 0.6, CITIES)  # fixed per seed, not per size
    tenure = rng.integers(0, 73, n)
    spend = np.round(rng.gamma(4.0, 18.0, n), 2)
    calls = rng.poisson(1.2, n)
    overdue = np.where(rng.random(n) < 0.8, 0.0, np.round(rng.lognormal(3.0, 1.0, n), 2))
    usage = np.round(rng.gamma(2.0, 6.0, n), 1)
    plan = rng.choice(["monthly", "annual", "two_year"], n, p=[0.55, 0.3, 0.15])
    region = rng.choice(["north", "south", "east", "west", "central"], n)
    city = _zipf_levels(rng, n, CITIES)
    autopay = rng.random(n) < 0.45
    complained = (rng.random(n) < 0.12).astype(float)
    spend_blank, complained_blank = rng.random(n) < 0.05, rng.random(n) < 0.08  # cells the export leaves empty
    monthly = plan == "monthly"
    logit = (
        -2.1
        - 1.6 * np.log1p(tenure / 6.0) / np.log1p(12.0)
        + np.where(spend_blank, 0.3, 0.9 * np.tanh((spend - 70.0) / 40.0))
        + 0.35 * calls * monthly
        + 0.05 * calls
        + 0.8 * (overdue > 0)
        + 0.004 * np.minimum(overdue, 200.0)
        - 0.03 * usage
        + 1.1 * monthly
        - 0.6 * (plan == "two_year")
        - 0.5 * autopay
        + np.where(complained_blank, 0.4, 1.0 * complained)
        + city_effect[city]
    )
    probability = 1.0 / (1.0 + np.exp(-logit))
    churned = rng.random(n) < probability
    signup = pd.Timestamp("2024-12-01") - pd.to_timedelta(tenure * 30 + rng.integers(0, 30, n), unit="D")
    spend_text = np.where(spend_blank, "", np.char.mod("%.2f", spend))  # 5% blank cells
    complained_text = np.where(complained_blank, "", np.char.mod("%d", complained))  # 8% blank
    frame = pd.DataFrame(
        {
            "customer_id": rng.permutation(np.arange(100_000, 100_000 + n)),
            "signup_date": signup.strftime("%Y-%m-%d"),
            "monthly_spend": spend_text,
            "tenure_months": tenure,
            "support_calls": calls,
            "overdue_amount": overdue,
            "data_usage_gb": usage,
            "plan": plan,
            "region": region,
            "city": np.char.add("city_", city.astype(str)),
            "autopay": np.where(autopay, "True", "False"),
            "complained": complained_text,
            TARGET: np.where(churned, POSITIVE, "no"),
        }
    )
    return frame, probability


if __name__ == "__main__":
    frame, p = churn_table(20_000)
    print(frame.head().to_string())
    print(f"positives {np.mean(frame[TARGET] == POSITIVE):.3f}; mean true probability {p.mean():.3f}")
