"""Probability calibration: Platt (sigmoid) and isotonic maps from a classifier's score.

Both calibrators are small numpy objects with ``fit(score, y, w)`` and ``predict(score)``
so that scoring a million rows is one vectorised call and the fitted model pickles without
pulling in extra estimator state. ``score`` is the classifier's raw log-odds.

The weighted logistic fit used by the sigmoid map is also the recalibration model behind
the calibration intercept and slope in :mod:`models.evaluation` (Cox 1958; Van Calster
et al. 2016, J Clin Epidemiol 74:167), so it lives here, beside its first caller.

SciPy and scikit-learn are imported where they are used: the compact model a lookup loads
(:mod:`models.compact`) shares :func:`clip_probability` and must not import them (about a
second of the lookup's start-up).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

# Probabilities are kept this far from 0 and 1 so that log loss and logit stay finite
# (an isotonic step at exactly 0 would otherwise make one episode's loss infinite).
PROBABILITY_EPS = 1e-6

CalibrationMethod = Literal["sigmoid", "isotonic", "none"]


def clip_probability(p: np.ndarray) -> np.ndarray:
    """``p`` clipped to [PROBABILITY_EPS, 1 - PROBABILITY_EPS]."""
    return np.clip(p, PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)


def fit_weighted_logistic(
    design: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    offset: np.ndarray | None = None,
    ridge: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> np.ndarray:
    """Weighted logistic regression by Newton–Raphson; returns the coefficients.

    ``design`` carries its own intercept column when one is wanted. ``offset`` enters the
    linear predictor with a fixed coefficient of 1 (calibration-in-the-large). ``ridge``
    adds ``ridge/2 * ||beta||^2`` to the loss (the intercept, if any, included: callers use
    it only for tiny stabilising values). Step-halving keeps each step a descent step, so
    quasi-separated data end at a large but finite coefficient instead of diverging.
    """
    from scipy.special import expit

    design = np.asarray(design, dtype=np.float64)
    if design.ndim == 1:
        design = design[:, None]
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    off = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=np.float64)
    beta = np.zeros(design.shape[1])

    def loss(b: np.ndarray) -> float:
        eta = design @ b + off
        # log(1 + exp(eta)) - y*eta, written stably.
        return float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) + 0.5 * ridge * b @ b)

    current = loss(beta)
    for _ in range(max_iter):
        p = expit(design @ beta + off)
        grad = design.T @ (w * (p - y)) + ridge * beta
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + ridge * np.eye(len(beta))
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        scale = 1.0
        while scale > 1e-8:
            candidate = beta - scale * step
            new = loss(candidate)
            if new <= current + 1e-12:
                break
            scale /= 2
        else:
            break
        beta, previous, current = candidate, current, new
        if previous - current < tol * (1.0 + abs(current)):
            break
    return beta


class SigmoidCalibrator:
    """Platt scaling: ``p = expit(a * score + b)`` fitted by weighted maximum likelihood."""

    method = "sigmoid"

    def fit(
        self, score: np.ndarray, y: np.ndarray, w: np.ndarray, slope: float | None = None
    ) -> SigmoidCalibrator:
        """Fit slope and intercept, or only the intercept when ``slope`` is given (an
        update of calibration-in-the-large that keeps the score's own spread)."""
        score = np.asarray(score, dtype=np.float64)
        if slope is not None:
            self.slope_ = float(slope)
            (self.intercept_,) = fit_weighted_logistic(
                np.ones((len(score), 1)), y, w, offset=self.slope_ * score, ridge=1e-6
            )
            return self
        design = np.column_stack([score, np.ones(len(score))])
        # A tiny ridge keeps the fit finite on perfectly separable folds.
        self.slope_, self.intercept_ = fit_weighted_logistic(design, y, w, ridge=1e-6)
        if self.slope_ < 0:
            # A higher score may never mean a lower risk. Cross-fitted scores of a weak model
            # on a small cohort can run against the outcome by chance (each held-out fold
            # leans away from what its training folds saw); the maximum likelihood with the
            # slope held at or above zero is then the flat fit, the weighted event rate.
            self.slope_ = 0.0
            (self.intercept_,) = fit_weighted_logistic(np.ones((len(score), 1)), y, w, ridge=1e-6)
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return clip_probability(expit(self.slope_ * score + self.intercept_))


class IsotonicCalibrator:
    """Weighted isotonic regression of the outcome on the score, applied by interpolation."""

    method = "isotonic"

    def fit(self, score: np.ndarray, y: np.ndarray, w: np.ndarray) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(np.asarray(score, dtype=np.float64), y, sample_weight=w)
        self.x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        return clip_probability(np.interp(score, self.x_, self.y_))


class IdentityCalibrator:
    """No recalibration: the classifier's own probability."""

    method = "none"

    def fit(self, score: np.ndarray, y: np.ndarray, w: np.ndarray) -> IdentityCalibrator:
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return clip_probability(expit(score))


CALIBRATORS = {
    "sigmoid": SigmoidCalibrator,
    "isotonic": IsotonicCalibrator,
    "none": IdentityCalibrator,
}


def weighted_log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean binary log loss (natural log)."""
    p = clip_probability(np.asarray(p, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    return float(-np.sum(w * (y * np.log(p) + (1 - y) * np.log1p(-p))) / np.sum(w))


def choose_calibration(
    score: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray,
    cv: int,
    candidates: tuple[str, ...] = ("sigmoid", "isotonic"),
) -> tuple[str, dict[str, float]]:
    """Pick the calibrator with the lowest grouped-CV weighted log loss.

    ``score`` should be out-of-fold scores (cross-fitted), so that each calibrator is
    judged on scores the classifier did not see. Folds keep each group whole. Ties go to
    the first candidate (sigmoid): with few events isotonic regression overfits (Niculescu-
    Mizil & Caruana 2005, ICML), so the simpler map wins unless it is clearly worse.

    Returns:
        the chosen method and the CV log loss of every candidate.
    """
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    folds = min(cv, n_groups)
    losses = {name: 0.0 for name in candidates}
    if folds < 2:
        return candidates[0], {name: float("nan") for name in candidates}
    total = 0.0
    for train, test in GroupKFold(n_splits=folds).split(score, y, groups):
        for name in candidates:
            cal = CALIBRATORS[name]().fit(score[train], y[train], w[train])
            losses[name] += weighted_log_loss(y[test], cal.predict(score[test]), w[test]) * (
                w[test].sum()
            )
        total += w[test].sum()
    losses = {name: value / total for name, value in losses.items()}
    best = min(candidates, key=lambda name: (losses[name], candidates.index(name)))
    return best, losses


def logit_clipped(p: np.ndarray) -> np.ndarray:
    """Log-odds of ``p`` after clipping away from 0 and 1."""
    from scipy.special import logit

    return logit(clip_probability(np.asarray(p, dtype=np.float64)))
