"""Grouped-CV model selection on the weighted log loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models.selection import select_model
from tests.models.conftest import CATEGORICAL, MONOTONE

CANDIDATES = [
    {"kind": "lightgbm", "params": {"n_estimators": 40, "num_leaves": 4, "learning_rate": 0.1}},
    {"kind": "logistic", "params": {"C": 1.0}},
]


def test_table_and_choice_are_consistent_and_reproducible(episodes):
    args = dict(cv=3, random_state=0, monotone=MONOTONE, categorical=CATEGORICAL)
    result = select_model(episodes.X, episodes.y, episodes.w, episodes.groups, CANDIDATES, **args)
    table = result.table
    assert list(table["kind"]) == ["lightgbm", "logistic"]
    assert set(table.columns) >= {"log_loss", "log_loss_sd", "brier", "brier_sd", "rank"}
    # One-standard-error rule: the chosen is within one SE of the best, and no simpler
    # candidate is; the lowest mean is always within.
    assert table["chosen"].sum() == 1
    chosen = table.loc[table["chosen"]].iloc[0]
    assert chosen["kind"] == result.best["kind"]
    assert chosen["within_one_se"]
    assert table.loc[table["rank"] == 1, "within_one_se"].all()
    simpler = table[table["complexity"] < chosen["complexity"]]
    assert not simpler["within_one_se"].any()
    lowest = select_model(
        episodes.X, episodes.y, episodes.w, episodes.groups, CANDIDATES, rule="min", **args
    )
    best_row = table.loc[table["log_loss"].idxmin()]
    assert lowest.best["kind"] == best_row["kind"] and best_row["rank"] == 1
    assert ((table["brier"] > 0) & (table["brier"] < 0.25)).all()
    again = select_model(episodes.X, episodes.y, episodes.w, episodes.groups, CANDIDATES, **args)
    pd.testing.assert_frame_equal(table, again.table)


def test_selects_trees_for_a_step_shaped_truth():
    # Risk jumps at a threshold and has an interaction: no linear logit fits it, and
    # 1,500 episodes are enough for the boosted trees to win on held-out log loss.
    rng = np.random.default_rng(3)
    n = 1500
    X = pd.DataFrame({"a": rng.uniform(0, 1, n), "b": rng.uniform(0, 1, n)})
    lp = np.where((X["a"] > 0.5) ^ (X["b"] > 0.5), 1.5, -1.5)
    y = (rng.random(n) < expit(lp)).astype(float)
    result = select_model(X, y, np.ones(n), np.arange(n), CANDIDATES, cv=3, random_state=0)
    assert result.best["kind"] == "lightgbm"


def test_one_se_prefers_the_logistic_on_a_logistic_truth_and_min_may_not():
    """A truth linear on the logit: the trees cannot beat the logistic regression by more
    than noise, so the one-SE rule takes the logistic whatever the noise ranks first."""
    rng = np.random.default_rng(11)
    n = 2000
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (rng.random(n) < expit(-0.7 + 0.6 * X["a"] - 0.4 * X["b"])).astype(float)
    result = select_model(X, y, np.ones(n), np.arange(n), CANDIDATES, cv=5, random_state=0)
    assert result.best["kind"] == "logistic"
    assert result.table.set_index("kind").at["logistic", "within_one_se"]


@pytest.mark.parametrize(
    ("candidates", "match"),
    [
        ([], "at least one candidate"),
        ([{"kind": "svm"}], "candidate 0 needs kind"),
        ([{"kind": "logistic", "grid": {}}], "unknown key"),
    ],
)
def test_bad_candidates_are_clear_errors(episodes, candidates, match):
    with pytest.raises(ValueError, match=match):
        select_model(episodes.X, episodes.y, episodes.w, episodes.groups, candidates, cv=3)
