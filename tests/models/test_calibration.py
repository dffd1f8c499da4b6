"""Calibrators: a higher score never means a lower risk."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import CALIBRATORS, SigmoidCalibrator


def _draw(sign: float, n: int = 2000, seed: int = 3):
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(sign * 1.5 * score - 0.7)))).astype(float)
    w = rng.uniform(0.5, 2.0, size=n)
    return score, y, w


def test_sigmoid_follows_an_informative_score():
    score, y, w = _draw(+1.0)
    fitted = SigmoidCalibrator().fit(score, y, w)
    # The true slope is 1.5; with n = 2000 its standard error is about 0.07.
    assert fitted.slope_ == pytest.approx(1.5, abs=0.3)


def test_sigmoid_never_inverts_a_score_that_runs_against_the_outcome():
    score, y, w = _draw(-1.0)
    fitted = SigmoidCalibrator().fit(score, y, w)
    assert fitted.slope_ == 0.0
    risk = fitted.predict(score)
    # Flat at the weighted event rate: the constrained maximum likelihood.
    np.testing.assert_allclose(risk, np.sum(w * y) / np.sum(w), rtol=1e-6)


def test_a_fixed_slope_fits_only_calibration_in_the_large():
    score, y, w = _draw(-1.0)
    fitted = SigmoidCalibrator().fit(score, y, w, slope=1.0)
    assert fitted.slope_ == 1.0
    risk = fitted.predict(score)
    # The intercept's score equation: predicted and observed events agree in total.
    assert np.sum(w * risk) == pytest.approx(np.sum(w * y), rel=1e-6)
    assert np.all(np.diff(risk[np.argsort(score)]) >= 0)


@pytest.mark.parametrize("method", sorted(CALIBRATORS))
def test_every_calibrator_is_non_decreasing_in_the_score(method):
    for sign in (+1.0, -1.0):
        score, y, w = _draw(sign)
        fitted = CALIBRATORS[method]().fit(score, y, w)
        grid = np.linspace(-4, 4, 81)
        assert np.all(np.diff(fitted.predict(grid)) >= 0)
