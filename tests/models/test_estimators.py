"""RiskModel: scikit-learn contract, monotone directions, calibration, pickling."""

from __future__ import annotations

import pickle

import cloudpickle
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from models.estimators import RiskModel, make_risk_model
from tests.models.conftest import CATEGORICAL, MONOTONE

SMALL_LGB = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7}
STUMPS = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 2, "extra_trees": True}


def _model(kind: str = "lightgbm", **kwargs) -> RiskModel:
    if kind == "stumps":
        kind, kwargs = "lightgbm", {"params": STUMPS, **kwargs}
    options = dict(
        kind=kind,
        params=SMALL_LGB if kind == "lightgbm" else None,
        monotone=MONOTONE,
        categorical=CATEGORICAL,
        cv=3,
        n_bootstrap=4,
        random_state=0,
    )
    options.update(kwargs)
    return RiskModel(**options)


@pytest.fixture(scope="module", params=["lightgbm", "stumps", "logistic"])
def fitted(request, episodes) -> RiskModel:
    return _model(request.param).fit(episodes.X, episodes.y, episodes.w, episodes.groups)


def test_fit_returns_self_and_sets_learned_attributes(episodes):
    model = _model()
    assert model.fit(episodes.X, episodes.y, episodes.w, episodes.groups) is model
    assert list(model.feature_names_in_) == list(episodes.X.columns)
    assert model.calibration_ in ("sigmoid", "isotonic")
    assert isinstance(model.classifier_, lgb.Booster)
    # clone() works only if __init__ stored its arguments untouched.
    assert clone(model).get_params() == model.get_params()


def test_logistic_baseline_is_one_pipeline(fitted):
    if fitted.kind == "logistic":
        assert isinstance(fitted.classifier_, Pipeline)


def test_probabilities_are_valid(fitted, holdout):
    proba = fitted.predict_proba(holdout.X)
    assert proba.shape == (len(holdout.X), 2)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba[:, 1], fitted.predict_risk(holdout.X))


def test_base_rate_is_weighted_event_rate(fitted, episodes):
    known = episodes.w > 0
    assert fitted.base_rate_ == pytest.approx(np.mean(episodes.y[known]))


def test_predictions_invariant_to_row_order(fitted, holdout):
    order = np.random.default_rng(0).permutation(len(holdout.X))
    shuffled = holdout.X.iloc[order]
    np.testing.assert_array_equal(
        fitted.predict_risk(shuffled), fitted.predict_risk(holdout.X)[order]
    )


def test_column_order_and_extra_columns_do_not_matter(fitted, holdout):
    reordered = holdout.X[holdout.X.columns[::-1]].assign(unused=1.0)
    np.testing.assert_array_equal(fitted.predict_risk(reordered), fitted.predict_risk(holdout.X))


def test_fit_is_deterministic_for_a_random_state(episodes, holdout):
    X = holdout.X.iloc[:500]
    for kind in ("lightgbm", "logistic"):
        a = _model(kind).fit(episodes.X, episodes.y, episodes.w, episodes.groups)
        b = _model(kind).fit(episodes.X, episodes.y, episodes.w, episodes.groups)
        np.testing.assert_array_equal(a.predict_risk(X), b.predict_risk(X))
        np.testing.assert_array_equal(a.predict_interval(X), b.predict_interval(X))


def test_outcomes_unrelated_to_the_features_still_give_a_model_that_is_not_constant(episodes):
    # Pure noise: cross-fitted scores may run against the outcome, and the Platt slope
    # would then be 0. Training must still not return a constant (nor empty intervals).
    noise = np.random.default_rng(8).random(len(episodes.y)) < 0.3
    y = np.where(np.isnan(episodes.y), np.nan, noise.astype(float))
    model = _model("stumps", n_bootstrap=4).fit(episodes.X, y, episodes.w, episodes.groups)
    low, high = model.predict_interval(episodes.X)
    assert np.ptp(model.predict_risk(episodes.X)) > 0
    assert (high > low).all()
    if model.calibration_ == "sigmoid":
        assert model.calibrator_.slope_ > 0


def test_rounds_are_chosen_within_the_ceiling_and_leaves_follow_the_sample(episodes):
    ceiling = {**SMALL_LGB, "n_estimators": 400, "learning_rate": 0.3, "min_child_samples": 500}
    model = _model(params=ceiling, n_bootstrap=0).fit(
        episodes.X, episodes.y, episodes.w, episodes.groups
    )
    # A high learning rate overfits long before 400 rounds: early stopping cuts it short.
    assert 1 <= model.params_["n_estimators"] < 400
    assert model.classifier_.current_iteration() == model.params_["n_estimators"]
    # 500 rows per leaf cannot split 1,500 episodes; the cap lets a fold of them split.
    fold_rows = np.sum(episodes.w > 0) * (1 - 1 / model.cv)
    assert model.params_["min_child_samples"] == int(fold_rows / 20)
    assert np.ptp(model.predict_risk(episodes.X)) > 0


def _grid(X: pd.DataFrame, column: str, values: np.ndarray) -> pd.DataFrame:
    """Every row of X repeated for every value of ``column``, values varying fastest."""
    rows = X.loc[X.index.repeat(len(values))].reset_index(drop=True)
    rows[column] = np.tile(values, len(X))
    return rows


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("prior_injuries", np.arange(0.0, 7.0)),
        ("lsi", np.linspace(0.5, 1.2, 15)),
    ],
)
def test_monotone_directions_hold(episodes, column, values):
    model = _model().fit(episodes.X, episodes.y, episodes.w, episodes.groups)
    base = episodes.X.iloc[:200]
    risk = model.predict_risk(_grid(base, column, values)).reshape(len(base), len(values))
    steps = np.diff(risk, axis=1) * MONOTONE[column]
    assert steps.min() >= -1e-12
    # The constraint must not have flattened the effect away.
    assert (risk[:, -1] - risk[:, 0]).mean() * MONOTONE[column] > 0.02


def test_unseen_category_is_treated_as_missing(fitted, holdout):
    X = holdout.X.iloc[:50].copy()
    unseen = X.assign(discipline=pd.array(["curling"] * 50, dtype="string"))
    missing = X.assign(discipline=pd.array([pd.NA] * 50, dtype="string"))
    np.testing.assert_array_equal(fitted.predict_risk(unseen), fitted.predict_risk(missing))


def test_missing_values_everywhere_still_score(fitted, holdout):
    X = holdout.X.iloc[:5].copy()
    for col in X.columns:
        X[col] = X[col].where(pd.Series(False, index=X.index))
    risk = fitted.predict_risk(X)
    assert np.all(np.isfinite(risk)) and np.all((risk > 0) & (risk < 1))


def test_pickle_round_trip_gives_identical_predictions(fitted, holdout):
    X = holdout.X.iloc[:500]
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        restored = loads(dumps(fitted))
        np.testing.assert_array_equal(restored.predict_risk(X), fitted.predict_risk(X))
        np.testing.assert_array_equal(restored.predict_interval(X), fitted.predict_interval(X))
        pd.testing.assert_frame_equal(restored.contributions(X), fitted.contributions(X))


def test_interval_contains_the_risk(fitted, holdout):
    low, high = fitted.predict_interval(holdout.X)
    risk = fitted.predict_risk(holdout.X)
    assert np.all((low >= 0) & (low <= risk) & (risk <= high) & (high <= 1))
    assert np.median(high - low) > 0
    narrow_low, narrow_high = fitted.predict_interval(holdout.X, level=0.5)
    assert np.all(narrow_high - narrow_low <= high - low + 1e-12)


@pytest.mark.parametrize("method", ["shap", "path"])
def test_contributions_add_up_to_the_raw_score(fitted, holdout, method):
    X = holdout.X.iloc[:300]
    contrib = fitted.contributions(X, method=method)
    assert list(contrib.columns) == list(X.columns) and contrib.index.equals(X.index)
    raw = fitted._raw_score(fitted.classifier_, fitted.prep_.transform(X))
    offset = raw - contrib.sum(axis=1).to_numpy()
    # The remainder is one constant (the expected value / intercept at the mean).
    np.testing.assert_allclose(offset, offset[0], atol=1e-8)


def test_assess_equals_the_separate_methods(fitted, holdout):
    X = holdout.X.iloc[:400]
    assessed = fitted.assess(X, level=0.9)
    np.testing.assert_allclose(assessed.risk, fitted.predict_risk(X), rtol=0, atol=1e-12)
    low, high = fitted.predict_interval(X, level=0.9)
    # Rounding apart: with contributions, LightGBM's raw score is their sum.
    np.testing.assert_allclose(assessed.risk_ci_low, low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(assessed.risk_ci_high, high, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(assessed.contributions, fitted.contributions(X), atol=1e-12)
    assert fitted.assess(X, contributions=False).contributions is None


def test_stumps_are_scored_from_step_tables_that_match_the_trees(fitted, holdout):
    if fitted.kind == "logistic":
        assert fitted.additive_ is None
        return
    if fitted.params["num_leaves"] > 2:
        assert fitted.additive_ is None  # trees with interactions are walked by LightGBM
        return
    assert fitted.additive_ is not None
    X = holdout.X.iloc[:500]
    m = fitted.prep_.transform(X)
    # Against LightGBM walking the very same trees: rounding apart, the same numbers.
    walked = fitted.calibrator_.predict(fitted.classifier_.predict(m, raw_score=True))
    np.testing.assert_allclose(fitted.predict_risk(X), walked, rtol=0, atol=1e-12)
    shap = fitted.classifier_.predict(m, pred_contrib=True)[:, :-1]
    np.testing.assert_allclose(fitted.contributions(X).to_numpy(), shap, rtol=0, atol=1e-10)
    # Each member's calibrated log-odds from its own trees and Platt map; the interval is
    # the point risk's log-odds -/+ 1.96 of their standard deviations.
    members = np.array(
        [
            slope * b.predict(m, raw_score=True) + intercept
            for b, (slope, intercept) in zip(
                fitted.members_, fitted.member_calibration_, strict=True
            )
        ]
    )
    sd = members.std(axis=0, ddof=1)
    z = 1.959963984540054
    logit = np.log(walked / (1 - walked))
    low, high = fitted.predict_interval(X)
    expected_low = np.minimum(1 / (1 + np.exp(z * sd - logit)), walked)
    expected_high = np.maximum(1 / (1 + np.exp(-z * sd - logit)), walked)
    np.testing.assert_allclose(low, expected_low, atol=1e-12, rtol=0)
    np.testing.assert_allclose(high, expected_high, atol=1e-12, rtol=0)


def test_a_model_pickled_without_step_tables_builds_them(fitted, holdout):
    X = holdout.X.iloc[:100]
    old = pickle.loads(pickle.dumps(fitted))
    del old.additive_
    np.testing.assert_array_equal(old.predict_risk(X), fitted.predict_risk(X))
    assert (old.additive_ is None) == (fitted.additive_ is None)


def test_calibration_improves_a_miscalibrated_by_design_model(episodes, holdout):
    # Deep trees, a high learning rate and tiny leaves overfit: over-confident risks. The
    # calibrated model shares its classifier with the uncalibrated one (same seed), so the
    # comparison isolates the calibrator.
    overfit = {"n_estimators": 150, "learning_rate": 0.3, "num_leaves": 63, "min_child_samples": 2}
    for method in ("sigmoid", "isotonic"):
        model = _model(params=overfit, calibration=method, n_bootstrap=0, early_stopping=0).fit(
            episodes.X, episodes.y, episodes.w, episodes.groups
        )
        raw = model._raw_score(model.classifier_, model.prep_.transform(holdout.X))
        uncalibrated = np.mean((1 / (1 + np.exp(-raw)) - holdout.true_risk) ** 2)
        calibrated = np.mean((model.predict_risk(holdout.X) - holdout.true_risk) ** 2)
        assert calibrated <= uncalibrated, method


def test_unknown_outcomes_without_weights_are_left_out(episodes, holdout):
    dropped = _model().fit(episodes.X, episodes.y, None, episodes.groups)
    explicit = _model().fit(episodes.X, episodes.y, (episodes.w > 0).astype(float), episodes.groups)
    np.testing.assert_array_equal(dropped.predict_risk(holdout.X), explicit.predict_risk(holdout.X))


def test_reference_holds_proportions_not_rows(fitted, episodes):
    ref = fitted.reference_
    assert set(ref) == set(episodes.X.columns)
    for spec in ref.values():
        assert sum(spec["proportions"]) + spec["missing"] == pytest.approx(1.0)
        assert len(spec["proportions"]) <= 11  # bins, never one entry per row
    # Interior quantiles only: no edge is the smallest or largest (one athlete's) value.
    for name in ("age", "lsi"):
        values = episodes.X[name].dropna()
        edges = np.asarray(ref[name]["edges"])
        assert np.all((edges > values.min()) & (edges < values.max()))


def test_factory_builds_the_same_estimator():
    model = make_risk_model("logistic", {"C": 0.5}, random_state=3, cv=4)
    assert model.get_params()["params"] == {"C": 0.5} and model.cv == 4


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"kind": "forest"}, "kind must be"),
        ({"calibration": "beta"}, "calibration must be"),
        ({"cv": 1}, "cv must be"),
        ({"monotone": {"height": 1}}, "not in the feature frame"),
        ({"monotone": {"discipline": 1}}, "categorical feature has no direction"),
        ({"monotone": {"lsi": 2}}, "-1, 0 or \\+1"),
        ({"categorical": ["sport"]}, "categorical names column"),
    ],
)
def test_bad_parameters_are_clear_errors(episodes, change, match):
    with pytest.raises(ValueError, match=match):
        _model(**change).fit(episodes.X, episodes.y, episodes.w, episodes.groups)


def _bad_targets(episodes):
    y_two = episodes.y.copy()
    y_two[3] = 2.0
    w_neg = episodes.w.copy()
    w_neg[4] = -1.0
    w_nan_y = episodes.w.copy()
    w_nan_y[np.flatnonzero(np.isnan(episodes.y))[0]] = 1.0
    return [
        ({"y": y_two}, "row 3 has 2.0"),
        ({"sample_weight": w_neg}, "row 4 has -1.0"),
        ({"sample_weight": w_nan_y}, "unknown outcome"),
        ({"y": episodes.y[:-1]}, "y has shape"),
        ({"groups": episodes.groups[:-1]}, "groups has shape"),
    ]


def test_bad_targets_are_clear_errors(episodes):
    for change, match in _bad_targets(episodes):
        args = {"y": episodes.y, "sample_weight": episodes.w, "groups": episodes.groups, **change}
        with pytest.raises(ValueError, match=match):
            _model().fit(episodes.X, **args)


def test_missing_feature_at_predict_names_it(fitted, holdout):
    with pytest.raises(ValueError, match="lsi"):
        fitted.predict_risk(holdout.X.drop(columns="lsi"))


def test_non_numeric_value_names_column_and_row(episodes):
    X = episodes.X.assign(age=episodes.X["age"].astype(object))
    X.loc[7, "age"] = "twenty"
    with pytest.raises(ValueError, match="column 'age'.*row 7"):
        _model().fit(X, episodes.y, episodes.w, episodes.groups)


def test_path_contributions_rank_features_like_shap(episodes, holdout):
    # All 60 rounds (no early stopping): enough trees for the attributions to settle.
    model = _model(n_bootstrap=0, calibration="none", early_stopping=0).fit(
        episodes.X, episodes.y, episodes.w, episodes.groups
    )
    X = holdout.X.iloc[:500]
    shap = model.contributions(X, method="shap").abs().mean()
    path = model.contributions(X, method="path").abs().mean()
    # The two attributions differ row by row but agree on what matters overall.
    assert shap.idxmax() == path.idxmax()
    with pytest.raises(ValueError, match="method must be"):
        model.contributions(X, method="lime")
