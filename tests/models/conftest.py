"""Synthetic episodes with a known logistic truth, shared by the model tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

MONOTONE = {"prior_injuries": 1, "lsi": -1}
CATEGORICAL = ["discipline"]
DISCIPLINE_EFFECT = {"sprint": 0.5, "football": 0.0, "rugby": -0.3}


@dataclass(frozen=True)
class Episodes:
    X: pd.DataFrame
    y: np.ndarray  # 1.0 / 0.0, NaN where censored
    w: np.ndarray  # 1 for known outcomes, 0 for censored (censoring independent of risk)
    groups: np.ndarray
    true_risk: np.ndarray


def true_logit(X: pd.DataFrame) -> np.ndarray:
    """The truth the tests recover: more prior injuries up, more symmetric limb down."""
    lsi = X["lsi"].to_numpy(dtype=np.float64, na_value=np.nan)
    lsi = np.where(np.isnan(lsi), 0.85, lsi)
    sex = X["male"].astype("Float64").to_numpy(dtype=np.float64, na_value=0.0)
    disc = X["discipline"].map(DISCIPLINE_EFFECT).astype("Float64").fillna(0.0).to_numpy()
    return (
        -0.9
        + 0.45 * X["prior_injuries"].to_numpy(dtype=np.float64)
        - 4.0 * (lsi - 0.9)
        + 0.03 * (X["age"].to_numpy(dtype=np.float64) - 25.0)
        + 0.3 * sex
        + disc
    )


def make_episodes(n: int, random_state: int, censored_share: float = 0.15) -> Episodes:
    rng = np.random.default_rng(random_state)
    # Athletes with one to three episodes each, so grouping matters.
    athletes = rng.integers(0, max(1, int(n / 1.6)), size=n)
    lsi = rng.normal(0.88, 0.09, size=n)
    lsi[rng.random(n) < 0.2] = np.nan  # not tested
    male = pd.array(rng.random(n) < 0.7, dtype="boolean")
    male[rng.random(n) < 0.05] = pd.NA
    X = pd.DataFrame(
        {
            "prior_injuries": rng.poisson(0.8, size=n).astype(np.float64),
            "lsi": lsi,
            "age": rng.normal(25, 4, size=n),
            "male": male,
            "discipline": pd.array(
                rng.choice(list(DISCIPLINE_EFFECT), size=n, p=[0.3, 0.5, 0.2]), dtype="string"
            ),
        }
    )
    risk = expit(true_logit(X))
    y = (rng.random(n) < risk).astype(np.float64)
    censored = rng.random(n) < censored_share
    y[censored] = np.nan
    w = np.where(censored, 0.0, 1.0)
    return Episodes(X=X, y=y, w=w, groups=athletes, true_risk=risk)


@pytest.fixture(scope="session")
def episodes() -> Episodes:
    return make_episodes(1500, random_state=11)


@pytest.fixture(scope="session")
def holdout() -> Episodes:
    return make_episodes(3000, random_state=12)
