"""One rule for judging calibration: the verdict table, and its behaviour over simulated cohorts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from models.judgement import (
    FAIL,
    NOT_ENOUGH,
    PASS,
    Tolerance,
    calibration_interval,
    judge_calibration,
    judge_interval,
)
from pipeline.config import CONFIG_DIR, TrainConfig, load_config

GATES = load_config(TrainConfig, CONFIG_DIR / "train.yaml").registry.gates
RULES = {
    metric: Tolerance.of(getattr(GATES, metric))
    for metric in ("calibration_slope", "calibration_intercept", "observed_expected")
}
SLOPE = Tolerance((0.8, 1.2), (0.6, 1.4))


@pytest.mark.parametrize(
    ("estimate", "low", "high", "verdict"),
    [
        (1.0, 0.9, 1.1, PASS),  # inside
        (0.75, 0.65, 0.85, PASS),  # reaches the tolerance, stays within the decisive range
        (0.5, 0.3, 0.7, FAIL),  # wholly below
        (1.5, 1.3, 1.7, FAIL),  # wholly above
        (1.0, 0.5, 1.5, NOT_ENOUGH),  # covers the tolerance and well beyond it
        (0.7, 0.4, 0.85, NOT_ENOUGH),  # reaches the tolerance and far below
        (0.7, 0.6, 0.8, PASS),  # touching both boundaries counts as inside
        (float("nan"), float("nan"), float("nan"), NOT_ENOUGH),
    ],
)
def test_verdict_table(estimate, low, high, verdict):
    judged = judge_interval(estimate, low, high, SLOPE, "calibration slope")
    assert judged.verdict == verdict
    assert "calibration slope" in judged.reason


def test_reversed_interval_and_bad_rule_raise():
    with pytest.raises(ValueError, match="above high"):
        judge_interval(1.0, 1.2, 0.8, SLOPE)
    with pytest.raises(ValueError, match="decisive"):
        Tolerance((0.8, 1.2), (0.9, 1.4))


def test_intervals_of_a_perfect_model_cover_the_ideal():
    rng = np.random.default_rng(1)
    p = expit(rng.normal(-0.8, 0.8, 20_000))
    y = (rng.random(p.size) < p).astype(float)
    for metric, ideal in (
        ("calibration_slope", 1),
        ("calibration_intercept", 0),
        ("observed_expected", 1),
    ):
        estimate, low, high = calibration_interval(y, p, None, metric)
        assert low < ideal < high, metric
        assert low < estimate < high


def test_unknown_outcomes_and_zero_weights_are_left_out():
    rng = np.random.default_rng(2)
    p = expit(rng.normal(-0.8, 0.8, 500))
    y = (rng.random(p.size) < p).astype(float)
    padded_y = np.concatenate([y, [np.nan] * 50, [1.0] * 50])
    padded_p = np.concatenate([p, [0.5] * 100])
    w = np.concatenate([np.ones(550), np.zeros(50)])
    for metric in RULES:
        assert calibration_interval(padded_y, padded_p, w, metric) == pytest.approx(
            calibration_interval(y, p, None, metric)
        )


def test_one_outcome_class_is_not_enough():
    judged = judge_calibration(np.zeros(100), np.full(100, 0.3), None, "calibration_slope", SLOPE)
    assert judged.verdict == NOT_ENOUGH


def _verdicts(n: int, cohorts: int, distort, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    found: dict[str, list[str]] = {metric: [] for metric in RULES}
    for _ in range(cohorts):
        p = expit(rng.normal(-0.8, 0.8, n))  # mean risk about a third
        y = (rng.random(n) < p).astype(float)
        for metric, rule in RULES.items():
            found[metric].append(judge_calibration(y, distort(p), None, metric, rule).verdict)
    return {metric: np.array(v) for metric, v in found.items()}


@pytest.mark.slow
def test_well_calibrated_model_is_not_failed():
    """At 300 episodes a true model is failed well under 5% of the time (nominal <= 2.5%).

    400 cohorts: the binomial SE of a 2.5% rate is 0.8%, so 5% is three SEs above it.
    """
    verdicts = _verdicts(300, 400, lambda p: p, seed=11)
    for metric, found in verdicts.items():
        assert np.mean(found == FAIL) <= 0.05, metric


@pytest.mark.slow
def test_risks_times_one_and_a_half_are_not_passed():
    """Risks x 1.5 (O:E about 0.67): calibration-in-the-large fails it in >= 95% of cohorts
    from 300 episodes, O:E from 1,000 (measured: 99.7% and 100%; at 300 O:E fails 65% and
    leaves the rest "not enough"); neither passes it in more than 10% at any size tried."""

    def times_one_and_a_half(p):
        return np.minimum(1.5 * p, 0.999)

    for n in (100, 300, 1000):
        verdicts = _verdicts(n, 200, times_one_and_a_half, seed=12 + n)
        for metric in ("calibration_intercept", "observed_expected"):
            assert np.mean(verdicts[metric] == PASS) <= 0.10, (n, metric)
        if n >= 300:
            assert np.mean(verdicts["calibration_intercept"] == FAIL) >= 0.95
        if n >= 1000:
            assert np.mean(verdicts["observed_expected"] == FAIL) >= 0.95


@pytest.mark.slow
def test_overfitted_model_slope_is_detected():
    """Log-odds doubled around the mean (slope 0.5): the slope fails it in >= 90% of cohorts
    from 1,000 episodes and never passes it in more than 5% (measured: 100% at 1,000, 87%
    at 300)."""

    def doubled(p):
        return expit(2 * (np.log(p / (1 - p)) + 0.8) - 0.8)

    for n in (300, 1000):
        found = _verdicts(n, 150, doubled, seed=21 + n)["calibration_slope"]
        assert np.mean(found == PASS) <= 0.05, n
        if n >= 1000:
            assert np.mean(found == FAIL) >= 0.90
