"""IPCW-weighted metrics against sklearn / hand computation, and their statistical behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from models.estimators import RiskModel
from models.evaluation import (
    brier_score,
    calibration_curve,
    calibration_intercept,
    calibration_slope,
    evaluate,
    expected_calibration_error,
    log_loss,
    net_benefit,
    observed_expected,
    optimism_corrected,
    summarise,
    weighted_auc,
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1),
            st.sampled_from([0.1, 0.2, 0.35, 0.5, 0.8]),  # few values: many ties
            st.floats(0.1, 5.0),
        ),
        min_size=4,
        max_size=40,
    )
)
def test_metrics_match_sklearn_on_small_weighted_arrays(rows):
    y, p, w = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    if y.min() == y.max():
        assert np.isnan(weighted_auc(y, p, w))
        return
    assert weighted_auc(y, p, w) == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert brier_score(y, p, w) == pytest.approx(brier_score_loss(y, p, sample_weight=w))
    assert log_loss(y, p, w) == pytest.approx(sk_log_loss(y, p, sample_weight=w))


def test_unknown_outcomes_and_zero_weights_are_ignored():
    y = np.array([1.0, 0.0, np.nan, 1.0, 0.0])
    p = np.array([0.7, 0.2, 0.9, 0.4, 0.6])
    w = np.array([1.0, 2.0, 0.0, 1.5, 0.0])
    keep = [0, 1, 3]
    for metric in (weighted_auc, brier_score, log_loss, observed_expected, calibration_slope):
        assert metric(y, p, w) == pytest.approx(metric(y[keep], p[keep], w[keep]))


def test_observed_expected_and_ece_by_hand():
    y = np.array([0.0, 1.0, 0.0, 1.0])
    p = np.array([0.1, 0.3, 0.6, 0.8])
    w = np.array([1.0, 1.0, 2.0, 2.0])
    assert observed_expected(y, p, w) == pytest.approx(3.0 / (0.1 + 0.3 + 1.2 + 1.6))
    # Two bins of equal weight, rows never split: cumulative weight shares 1/6, 2/6, 4/6,
    # 6/6 put rows 0, 1 in the first bin and rows 2, 3 in the second.
    expected = (abs(1 - 0.4) + abs(2 - 2.8)) / 6
    assert expected_calibration_error(y, p, w, n_bins=2) == pytest.approx(expected)


def _calibrated_sample(n: int, seed: int, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.7, spread, size=n)
    p = expit(lp)
    y = (rng.random(n) < p).astype(float)
    return y, p


def _recalibration_se(p: np.ndarray) -> tuple[float, float]:
    """Fisher-information SEs of (slope, intercept) of logistic recalibration at truth."""
    x = np.column_stack([logit(p), np.ones(len(p))])
    info = (x * (p * (1 - p))[:, None]).T @ x
    cov = np.linalg.inv(info)
    return float(np.sqrt(cov[0, 0])), float(np.sqrt(1 / np.sum(p * (1 - p))))


def test_intercept_zero_and_slope_one_when_outcomes_follow_the_risks():
    y, p = _calibrated_sample(5000, seed=1)
    slope_se, intercept_se = _recalibration_se(p)
    assert abs(calibration_intercept(y, p)) < 4 * intercept_se
    assert abs(calibration_slope(y, p) - 1) < 4 * slope_se


def test_over_confident_risks_have_slope_below_one_and_scaled_risks_fail_in_the_large():
    y, p = _calibrated_sample(5000, seed=2)
    slope_se, intercept_se = _recalibration_se(p)
    over = expit(2 * logit(p))  # twice as extreme: slope should be near 0.5
    assert calibration_slope(y, over) < 1 - 4 * slope_se
    too_high = np.clip(1.5 * p, 0, 0.99)
    assert calibration_intercept(y, too_high) < -4 * intercept_se
    assert observed_expected(y, too_high) < 1


def test_bootstrap_interval_covers_the_truth_at_about_its_level():
    # 60 independent calibrated samples: the O/E interval should cover 1 in ~95%. With 60
    # trials the binomial SD of the coverage is 0.028, so >= 0.85 is a 3.5 SD bound.
    covered = 0
    for seed in range(60):
        y, p = _calibrated_sample(300, seed=100 + seed)
        est, low, high = evaluate(
            y, p, n_boot=150, random_state=seed, metrics=["observed_expected"]
        )["observed_expected"]
        assert low <= est <= high
        covered += low <= 1.0 <= high
    assert covered / 60 >= 0.85


def test_grouped_bootstrap_respects_clustering():
    # Each athlete's episode copied five times: resampling athletes gives the width of the
    # 300 independent athletes; resampling episodes pretends there are 1,500 (sqrt(5) ≈ 2.2
    # times narrower).
    y, p = _calibrated_sample(300, seed=7)
    y5, p5, groups = np.repeat(y, 5), np.repeat(p, 5), np.repeat(np.arange(300), 5)
    args = {"n_boot": 200, "random_state": 0, "metrics": ["brier"]}
    _, lo_g, hi_g = evaluate(y5, p5, groups=groups, **args)["brier"]
    _, lo_e, hi_e = evaluate(y5, p5, **args)["brier"]
    _, lo_1, hi_1 = evaluate(y, p, **args)["brier"]
    assert hi_g - lo_g > 1.6 * (hi_e - lo_e)
    assert hi_g - lo_g == pytest.approx(hi_1 - lo_1, rel=0.3)


def test_evaluate_returns_every_metric_and_summarises():
    y, p = _calibrated_sample(400, seed=3)
    result = evaluate(y, p, np.ones(400), n_boot=30, random_state=0)
    table = summarise(result)
    assert set(table.index) == {
        "auc",
        "brier",
        "log_loss",
        "calibration_intercept",
        "calibration_slope",
        "ece",
        "observed_expected",
    }
    assert (table["low"] <= table["estimate"]).all() and (table["estimate"] <= table["high"]).all()
    assert evaluate(y, p, n_boot=30, random_state=0) == evaluate(y, p, n_boot=30, random_state=0)


@pytest.mark.parametrize(
    ("p", "match"),
    [([0.2, 1.2], "row 1 has 1.2"), ([0.2, np.nan], "row 1"), ([0.2], "equal length")],
)
def test_bad_risks_are_clear_errors(p, match):
    with pytest.raises(ValueError, match=match):
        evaluate([1.0, 0.0], p, n_boot=0)


def test_net_benefit_by_hand():
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    p = np.array([0.9, 0.3, 0.6, 0.2, 0.1])
    w = np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    table = net_benefit(y, p, w, thresholds=[0.25, 0.5])
    # t = 0.25 (odds 1/3): treated rows 0, 1, 2 -> TP 2/6, FP 1/6.
    # t = 0.5 (odds 1): treated rows 0, 2 -> TP 1/6, FP 1/6.
    np.testing.assert_allclose(table["model"], [2 / 6 - 1 / 6 / 3, 0.0])
    np.testing.assert_allclose(table["treat_all"], [2 / 6 - 4 / 6 / 3, 2 / 6 - 4 / 6])
    assert (table["treat_none"] == 0).all()


def test_net_benefit_below_every_risk_equals_treat_all():
    y, p = _calibrated_sample(500, seed=4)
    t = [min(p) * 0.99]
    table = net_benefit(y, p, thresholds=t)
    assert table["model"][0] == pytest.approx(table["treat_all"][0])


def test_calibration_curve_of_calibrated_risks_follows_the_diagonal():
    # 4,000 episodes: with ~1,000 per quarter of the risk range the local observed rate has
    # SE about 0.016, so 0.05 is a 3 SE band around the diagonal.
    y, p = _calibrated_sample(4000, seed=5)
    curve = calibration_curve(y, p, n_boot=40, random_state=0)
    assert list(curve.columns) == ["predicted", "observed", "low", "high"]
    assert np.max(np.abs(curve["observed"] - curve["predicted"])) < 0.05
    assert (curve["low"] <= curve["observed"] + 1e-12).all()
    assert (curve["observed"] <= curve["high"] + 1e-12).all()


def test_calibration_curve_shows_over_confidence():
    y, p = _calibrated_sample(4000, seed=6)
    curve = calibration_curve(y, expit(2 * logit(p)), n_boot=0)
    low_end, high_end = curve.iloc[0], curve.iloc[-1]
    assert low_end["observed"] > low_end["predicted"]
    assert high_end["observed"] < high_end["predicted"]


def _noisy_cohort(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 15)), columns=[f"x{j}" for j in range(15)])
    y = (rng.random(n) < expit(-0.5 + 0.8 * X["x0"].to_numpy())).astype(float)
    return X, y


def test_optimism_correction_moves_toward_new_data_performance():
    # 200 episodes, 15 features of which 14 are noise, an almost unpenalised logistic
    # model: the apparent AUC is optimistic, the corrected one is closer to the AUC on a
    # large independent sample.
    X, y = _noisy_cohort(200, seed=1)
    X_new, y_new = _noisy_cohort(20_000, seed=2)

    def fit_fn(X, y, w, groups):
        return RiskModel(
            kind="logistic", params={"C": 100.0}, calibration="none", n_bootstrap=0
        ).fit(X, y, w, groups)

    table = optimism_corrected(
        fit_fn,
        X,
        y,
        np.ones(200),
        np.arange(200),
        n_boot=25,
        random_state=0,
        metrics=["auc", "calibration_slope"],
    )
    new_auc = weighted_auc(y_new, fit_fn(X, y, np.ones(200), np.arange(200)).predict_risk(X_new))
    auc = table.loc["auc"]
    assert auc["optimism"] > 0
    assert abs(auc["corrected"] - new_auc) < abs(auc["apparent"] - new_auc)
    # Overfitting shows as a corrected calibration slope below 1 (Steyerberg 2019, ch. 13).
    assert table.loc["calibration_slope", "corrected"] < 1
    assert (table["n_boot"] == 25).all()


def test_every_replicate_computed_at_once_equals_the_metric_computed_alone():
    # The batched forms (sums, the AUC's cumulative sum, Newton-Raphson for intercept and
    # slope) must give each replicate exactly what the metric itself gives on its weights.
    from models.evaluation import METRICS, _replicates, bootstrap_counts

    y, p = _calibrated_sample(300, seed=11)
    w = np.random.default_rng(2).uniform(0.5, 3.0, 300)
    groups = np.arange(300) // 3
    weights = bootstrap_counts(groups, 300, 25, random_state=4) * w[None, :]
    for name, metric in METRICS.items():
        estimate = metric(y, p, w)
        batched = _replicates(name, y, p, weights, estimate)
        alone = np.array([metric(y, p, row) for row in weights])
        np.testing.assert_allclose(batched, alone, rtol=1e-7, atol=1e-9, err_msg=name)


def test_bootstrap_counts_draw_whole_groups_as_many_as_there_are():
    groups = np.repeat(["a", "b", "c", "d"], [1, 2, 3, 4])
    from models.evaluation import bootstrap_counts

    counts = bootstrap_counts(groups, len(groups), 50, random_state=0)
    assert counts.shape == (50, 10)
    # Rows of one group are drawn together, and each replicate draws four groups.
    for start, size in ((0, 1), (1, 2), (3, 3), (6, 4)):
        assert (counts[:, start : start + size] == counts[:, [start]]).all()
    assert (counts[:, [0, 1, 3, 6]].sum(axis=1) == 4).all()
