"""Tables shaped like the exports users bring, generated deterministically for the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def bank_table(n: int = 2500, seed: int = 0) -> pd.DataFrame:
    """A bank-churn export as a spreadsheet writes it: a row number, customer numbers in no order, a
    surname with thousands of levels, amounts with thousands separators ("146,769.54"), a join date as
    text, tenure that grows with how long ago the customer joined, a True/False column, a 0/1 flag with
    blanks, a price with two values, country names sometimes padded with a space, and the label as yes/no."""
    rng = np.random.default_rng(seed)
    names = np.array([f"Name{i:04d}" for i in range(2000)])
    share = 1 / np.arange(1, 2001) ** 0.6
    joined = pd.Timestamp("2024-12-31") - pd.to_timedelta(rng.integers(30, 3650, n), unit="D")
    tenure = ((pd.Timestamp("2024-12-31") - joined).days // 365).to_numpy()
    age = rng.integers(18, 80, n)
    active = rng.integers(0, 2, n)
    products = rng.choice([1, 2, 3, 4], n, p=[0.5, 0.4, 0.07, 0.03])
    geography = rng.choice(["France", "Spain", "Germany"], n, p=[0.5, 0.25, 0.25])
    balance = np.where(rng.random(n) < 0.35, 0.0, rng.normal(120_000, 30_000, n).clip(1_000))
    logit = (
        -3.2
        + 0.06 * (age - 40)
        - 0.9 * active
        + 0.7 * (geography == "Germany")
        + 1.2 * (products >= 3)
        + 0.000004 * balance
        - 0.05 * tenure
    )
    exited = rng.random(n) < 1 / (1 + np.exp(-logit))
    shapes = np.random.default_rng(seed + 1)  # the columns below leave the ones above as they were
    complained = np.where(shapes.random(n) < 0.2, np.nan, (shapes.random(n) < 0.1 + 0.3 * exited).astype(float))
    padded = np.where(shapes.random(n) < 0.1, np.char.add(geography.astype(str), " "), geography)  # Excel's "Spain "
    return pd.DataFrame(
        {
            "RowNumber": np.arange(1, n + 1),
            "CustomerId": 15_565_701 + rng.permutation(n * 7)[:n],
            "Surname": rng.choice(names, n, p=share / share.sum()),
            "CreditScore": rng.integers(350, 851, n),
            "Geography": padded,
            "Gender": rng.choice(["Female", "Male"], n),
            "Age": age,
            "Tenure": tenure,
            "Balance": [f"{b:,.2f}" for b in balance],
            "NumOfProducts": products,
            "IsActiveMember": active,
            "EstimatedSalary": [f"{s:,.2f}" for s in rng.uniform(10_000, 200_000, n)],
            "Joined": joined.strftime("%d %b %Y"),
            "autopay": shapes.random(n) < 0.6 - 0.2 * exited,  # a bool column: True/False in the CSV
            "complained": complained,  # a 0/1 flag with blanks
            "price_tier": np.where(shapes.random(n) < 0.5, 19.99, 29.99),  # a number with two values
            "Exited": np.where(exited, "yes", "no"),
        }
    )
