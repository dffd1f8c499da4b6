"""Step tables of additive tree ensembles agree with LightGBM's own predictions."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from models.additive import tabulate, univariate_trees

N_CATEGORIES = 4
# Raw scores are sums of T leaf values of magnitude < 1; summing them in another order
# moves the result by at most about T * 2.2e-16 (T = 400 trees here), far below this.
TOLERANCE = 1e-10


def _data(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n),
            rng.integers(0, N_CATEGORIES, n).astype(float),
            rng.normal(size=n),
            np.where(rng.random(n) < 0.3, 0.0, rng.exponential(size=n)),
        ]
    )
    X[rng.random(n) < 0.1, 0] = np.nan
    X[rng.random(n) < 0.1, 1] = np.nan
    logit = X[:, 2] + (X[:, 1] == 2) - np.nan_to_num(X[:, 0]) ** 2 / 2 + (X[:, 3] == 0)
    y = (logit + rng.logistic(size=n) > 0).astype(float)
    return X, y


def _booster(seed: int, **params) -> lgb.Booster:
    X, y = _data(seed)
    settings = dict(
        objective="binary",
        num_leaves=2,
        learning_rate=0.1,
        min_child_samples=20,
        verbosity=-1,
        seed=seed,
        deterministic=True,
    )
    settings.update(params)
    data = lgb.Dataset(X, y, categorical_feature=[1], params={"verbosity": -1})
    return lgb.train(settings, data, num_boost_round=400)


def _probe_rows(tables, seed: int) -> np.ndarray:
    """Random rows, and rows sitting at, just below and just above every step."""
    X, _ = _data(seed + 100, 2000)
    rows = [X]
    for j, steps in enumerate(tables.steps):
        if steps is None:
            values = np.array([*range(N_CATEGORIES), N_CATEGORIES, -1.0, np.nan])
        else:
            values = np.concatenate(
                [steps, np.nextafter(steps, -np.inf), np.nextafter(steps, np.inf), [np.nan, 0.0]]
            )
        block = np.resize(X, (len(values), X.shape[1]))  # other columns: random rows
        block[:, j] = values
        rows.append(block)
    return np.vstack(rows)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"extra_trees": True, "feature_fraction": 0.5, "bagging_fraction": 0.7, "bagging_freq": 1},
        {"zero_as_missing": True},
        {"use_missing": False},
        {"num_leaves": 4, "interaction_constraints": [[0], [1], [2], [3]]},
    ],
    ids=["stumps", "randomised-stumps", "zero-as-missing", "no-missing", "univariate-trees"],
)
def test_tables_reproduce_predict_and_shap(params):
    booster = _booster(1, **params)
    tables = tabulate([booster], 4, {1: N_CATEGORIES})
    assert tables is not None
    m = _probe_rows(tables, 1)
    bins = tables.bins(m)
    np.testing.assert_allclose(
        tables.raw_scores(bins)[:, 0], booster.predict(m, raw_score=True), rtol=0, atol=TOLERANCE
    )
    np.testing.assert_allclose(
        tables.contributions(bins),
        booster.predict(m, pred_contrib=True)[:, :-1],
        rtol=0,
        atol=TOLERANCE,
    )


def test_several_ensembles_share_one_search():
    boosters = [_booster(seed, extra_trees=True) for seed in (1, 2, 3)]
    tables = tabulate(boosters, 4, {1: N_CATEGORIES})
    assert tables is not None and tables.n_ensembles == 3
    m = _probe_rows(tables, 2)
    raw = tables.raw_scores(tables.bins(m))
    for k, booster in enumerate(boosters):
        np.testing.assert_allclose(
            raw[:, k], booster.predict(m, raw_score=True), rtol=0, atol=TOLERANCE
        )


def test_trees_on_two_features_are_not_tabulated():
    booster = _booster(1, num_leaves=7)
    assert not univariate_trees(booster.dump_model())
    assert tabulate([booster], 4, {1: N_CATEGORIES}) is None
    # One additive ensemble among them is not enough.
    assert tabulate([_booster(1), booster], 4, {1: N_CATEGORIES}) is None


def test_a_feature_never_split_on_contributes_nothing():
    X, y = _data(3)
    X[:, 2] = 0.5  # constant: no split can use it
    data = lgb.Dataset(X, y, categorical_feature=[1], params={"verbosity": -1})
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 2, "verbosity": -1}, data, num_boost_round=50
    )
    tables = tabulate([booster], 4, {1: N_CATEGORIES})
    m = _probe_rows(tables, 3)
    contributions = tables.contributions(tables.bins(m))
    np.testing.assert_array_equal(contributions[:, 2], 0.0)
    np.testing.assert_allclose(
        tables.raw_scores(tables.bins(m))[:, 0],
        booster.predict(m, raw_score=True),
        rtol=0,
        atol=TOLERANCE,
    )
