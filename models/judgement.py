"""One rule for judging calibration, for promotion gates and audit verdicts alike.

A calibration metric is judged from its interval, never from its point estimate (Van Calster
et al. 2019, BMC Med 17:230), against a clinically relevant ``tolerance`` and a wider
``decisive`` range (``configs/train.yaml``, ``registry.gates``):

- ``fail`` only when the interval lies wholly outside the tolerance: the data show the
  miscalibration is larger than tolerable;
- ``pass`` when the interval overlaps the tolerance and stays within the decisive range:
  nothing tolerable is ruled out and nothing far off is left possible;
- ``not enough outcomes to judge`` otherwise: the interval reaches both into the tolerance
  and well outside it (or could not be computed), so more outcomes are needed.

A well-calibrated model is therefore failed with probability below ``(1 - level) / 2``
whatever the sample size, and a badly miscalibrated one is passed only when its interval is
too wide to exclude the tolerance yet narrow enough to stay in the decisive range, which
the test measures (``tests/models/test_judgement.py``).

The intervals (:func:`calibration_interval`) are Wald intervals: the calibration slope
(``logit y ~ a + b logit p``) and calibration-in-the-large (``logit y ~ a + logit p`` as
offset) from a weighted logistic GLM (statsmodels), O:E on the log scale with the sandwich
variance of the observed count, ``sum w^2 (y - p O/E)^2 / O^2``. IPCW weights enter through
Kish's effective sample size (weights rescaled to sum to ``(sum w)^2 / sum w^2``), as in
:mod:`models.updating`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import statsmodels.api as sm
from numpy.typing import ArrayLike
from scipy.special import logit
from scipy.stats import norm

PASS = "pass"
FAIL = "fail"
NOT_ENOUGH = "not enough outcomes to judge"
Verdict = Literal["pass", "fail", "not enough outcomes to judge"]
Metric = Literal["calibration_slope", "calibration_intercept", "observed_expected"]
METRICS: tuple[Metric, ...] = ("calibration_slope", "calibration_intercept", "observed_expected")
_CLIP = 1e-6


@dataclass(frozen=True)
class Tolerance:
    """A metric's clinically acceptable range and the wider range a verdict needs."""

    tolerance: tuple[float, float]
    decisive: tuple[float, float]
    source: str = ""

    def __post_init__(self) -> None:
        (lo, hi), (wide_lo, wide_hi) = self.tolerance, self.decisive
        if not wide_lo < lo < hi < wide_hi:
            raise ValueError(
                f"needs decisive[0] < tolerance[0] < tolerance[1] < decisive[1], got "
                f"tolerance {self.tolerance}, decisive {self.decisive}"
            )

    @classmethod
    def of(cls, config: Any) -> Tolerance:
        """From ``pipeline.config.ToleranceConfig`` (read by attribute)."""
        return cls(tuple(config.tolerance), tuple(config.decisive), config.source)


@dataclass(frozen=True)
class Judgement:
    """A verdict with the interval it rests on and the reason in words."""

    metric: str
    verdict: Verdict
    estimate: float
    low: float
    high: float
    tolerance: tuple[float, float]
    decisive: tuple[float, float]
    reason: str


def judge_interval(
    estimate: float, low: float, high: float, rule: Tolerance, metric: str = "metric"
) -> Judgement:
    """The verdict for an estimate and its interval (module docstring).

    Raises:
        ValueError: ``low > high``.
    """
    values = [estimate, low, high]
    lo, hi = rule.tolerance
    wide_lo, wide_hi = rule.decisive
    if not all(np.isfinite(values)):
        verdict, reason = NOT_ENOUGH, f"{metric} or its interval could not be estimated"
    elif low > high:
        raise ValueError(f"interval low {low} is above high {high}")
    elif high < lo or low > hi:
        verdict = FAIL
        reason = (
            f"{metric} {estimate:.3g} ({low:.3g} to {high:.3g}) lies wholly outside the "
            f"tolerance {lo:g} to {hi:g}"
        )
    elif wide_lo <= low and high <= wide_hi:
        verdict = PASS
        reason = (
            f"{metric} {estimate:.3g} ({low:.3g} to {high:.3g}) reaches the tolerance "
            f"{lo:g} to {hi:g} and stays within {wide_lo:g} to {wide_hi:g}"
        )
    else:
        verdict = NOT_ENOUGH
        reason = (
            f"{metric} {estimate:.3g} ({low:.3g} to {high:.3g}) reaches both the tolerance "
            f"{lo:g} to {hi:g} and beyond {wide_lo:g} to {wide_hi:g}: more outcomes needed"
        )
    return Judgement(
        metric, verdict, float(estimate), float(low), float(high), rule.tolerance,
        rule.decisive, reason,
    )  # fmt: skip


def calibration_interval(
    y: ArrayLike, p: ArrayLike, w: ArrayLike | None, metric: Metric, level: float = 0.95
) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of a calibration metric over the known outcomes.

    Rows with an unknown outcome (NaN) or zero weight are left out. NaN for all three when
    there are no recurrences or no non-recurrences among them.

    Raises:
        ValueError: an unknown metric, ``level`` outside (0, 1), or mismatched lengths.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS} (got {metric!r})")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1) (got {level})")
    y, p, w = _known(y, p, w)
    nan = (math.nan, math.nan, math.nan)
    if len(y) == 0 or y.min() == y.max():
        return nan
    z = float(norm.ppf(0.5 + level / 2))
    if metric == "observed_expected":
        observed, expected = float(np.sum(w * y)), float(np.sum(w * p))
        ratio = observed / expected
        se = math.sqrt(float(np.sum(w**2 * (y - p * ratio) ** 2))) / observed
        return ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se)
    w = w * (np.sum(w) / np.sum(w**2))  # Kish: sum of weights = effective sample size
    score = logit(np.clip(p, _CLIP, 1 - _CLIP))
    ones = np.ones((len(y), 1))
    if metric == "calibration_slope":
        if np.ptp(score) == 0:
            return nan
        design, offset, k = np.column_stack([ones, score]), None, 1
    else:
        design, offset, k = ones, score, 0
    family = sm.families.Binomial()
    try:
        fitted = sm.GLM(y, design, family=family, offset=offset, var_weights=w).fit()
    except (ValueError, np.linalg.LinAlgError):
        return nan
    estimate = float(fitted.params[k])
    se = float(np.sqrt(fitted.cov_params()[k, k]))
    return estimate, estimate - z * se, estimate + z * se


def judge_calibration(
    y: ArrayLike,
    p: ArrayLike,
    w: ArrayLike | None,
    metric: Metric,
    rule: Tolerance,
    level: float = 0.95,
) -> Judgement:
    """:func:`judge_interval` on :func:`calibration_interval`."""
    estimate, low, high = calibration_interval(y, p, w, metric, level)
    return judge_interval(estimate, low, high, rule, metric)


def _known(y: ArrayLike, p: ArrayLike, w: ArrayLike | None) -> tuple[np.ndarray, ...]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.where(np.isnan(y), 0.0, 1.0) if w is None else np.asarray(w, dtype=np.float64)
    if not (y.shape == p.shape == w.shape) or y.ndim != 1:
        raise ValueError(f"y, p and w must be 1-d of one length ({y.shape}, {p.shape}, {w.shape})")
    keep = ~np.isnan(y) & (w > 0) & ~np.isnan(p)
    return y[keep], np.clip(p[keep], _CLIP, 1 - _CLIP), w[keep]
