"""The risk over time of a fitted risk model: its one-year risk spread by a timing shape.

Numpy only, so a compact model (``models/compact.py``) and a lookup read curves without
LightGBM, scikit-learn or SciPy. The shape comes from the model's own timing
(``models.incidence.TimingModel``, or its compact form :class:`FixedTiming` when the fit
kept the cohort's shape) or, for a model version without one, from the published timing of
recurrences (:class:`PublishedTiming`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CumulativeIncidence:
    """Risk of a recurrence by each horizon, per episode, and its interval.

    ``risk``, ``low`` and ``high`` are ``(episodes, horizons)``; ``low``/``high`` are
    ``None`` when no interval was given.
    """

    horizons: tuple[int, ...]
    risk: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None

    def frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """Columns ``risk_{h}d`` (and ``risk_{h}d_ci_low``, ``risk_{h}d_ci_high``) per horizon."""
        columns: dict[str, np.ndarray] = {}
        for k, h in enumerate(self.horizons):
            columns[f"risk_{h}d"] = self.risk[:, k]
            if self.low is not None and self.high is not None:
                columns[f"risk_{h}d_ci_low"] = self.low[:, k]
                columns[f"risk_{h}d_ci_high"] = self.high[:, k]
        return pd.DataFrame(columns, index=index)


def cumulative_incidence(
    risk: np.ndarray,
    shape: np.ndarray,
    horizons: Sequence[int],
    risk_ci_low: np.ndarray | None = None,
    risk_ci_high: np.ndarray | None = None,
    shape_low: np.ndarray | None = None,
    shape_high: np.ndarray | None = None,
) -> CumulativeIncidence:
    """The one-year risk spread over the horizons by each episode's shape.

    ``risk * shape``: non-decreasing in the horizon when the shape is, and equal to
    ``risk`` at the last horizon.

    The interval: given only the one-year interval, that interval times the shape (the
    level's uncertainty alone). Given the shape's interval too
    (:meth:`TimingModel.predict_shape_interval`), the two half-widths are combined on the
    log scale as independent errors, ``sqrt(a**2 + b**2)`` with ``a``, ``b`` the log-ratios
    of each bound to its estimate (the delta method for a product); the bounds are then
    kept monotone in the horizon, the upper one at most the one-year upper bound, and at
    the last horizon they are the one-year interval.

    Raises:
        ValueError: arrays that do not match, a risk outside [0, 1] or a shape that is not
            a non-decreasing curve ending at 1 (named by row), a bound given alone.
    """
    risk = np.asarray(risk, dtype=np.float64)
    shape = np.asarray(shape, dtype=np.float64)
    horizons = tuple(int(h) for h in horizons)
    expected = (len(risk), len(horizons))
    if shape.shape != expected:
        raise ValueError(f"shape is {shape.shape}, expected {expected}")
    bad = np.flatnonzero(~np.isfinite(risk) | (risk < 0) | (risk > 1))
    if bad.size:
        raise ValueError(f"risk must be in [0, 1]; row {bad[0]} has {risk[bad[0]]}")
    broken = (
        ~np.isfinite(shape).all(axis=1)
        | (shape < 0).any(axis=1)
        | (np.diff(shape, axis=1) < 0).any(axis=1)
        | (shape[:, -1] != 1.0)
    )
    if broken.any():
        i = int(np.flatnonzero(broken)[0])
        raise ValueError(f"shape must rise from >= 0 to exactly 1; row {i} is {shape[i]}")
    if (risk_ci_low is None) != (risk_ci_high is None):
        raise ValueError("give both risk_ci_low and risk_ci_high, or neither")
    if (shape_low is None) != (shape_high is None):
        raise ValueError("give both shape_low and shape_high, or neither")
    curve = risk[:, None] * shape
    if risk_ci_low is None and shape_low is None:
        return CumulativeIncidence(horizons, curve, None, None)
    r_lo = risk if risk_ci_low is None else np.asarray(risk_ci_low, dtype=np.float64)
    r_hi = risk if risk_ci_high is None else np.asarray(risk_ci_high, dtype=np.float64)
    if r_lo.shape != risk.shape or r_hi.shape != risk.shape:
        raise ValueError(f"risk_ci_low and risk_ci_high must have shape {risk.shape}")
    if shape_low is None:
        return CumulativeIncidence(horizons, curve, r_lo[:, None] * shape, r_hi[:, None] * shape)
    s_lo = np.asarray(shape_low, dtype=np.float64)
    s_hi = np.asarray(shape_high, dtype=np.float64)
    if s_lo.shape != expected or s_hi.shape != expected:
        raise ValueError(f"shape_low and shape_high must have shape {expected}")
    with np.errstate(divide="ignore", invalid="ignore"):
        down = np.hypot(np.log(risk / r_lo)[:, None], np.log(shape / s_lo))
        up = np.hypot(np.log(r_hi / risk)[:, None], np.log(s_hi / shape))
        low = np.where(curve > 0, curve * np.exp(-down), 0.0)
        high = np.where(curve > 0, curve * np.exp(up), r_hi[:, None] * s_hi)
    low = np.nan_to_num(np.minimum(low, curve), nan=0.0)
    high = np.minimum(np.nan_to_num(np.maximum(high, curve), nan=1.0), r_hi[:, None])
    low[:, -1], high[:, -1] = r_lo, r_hi
    low = np.maximum.accumulate(low, axis=1)
    high = np.minimum.accumulate(high[:, ::-1], axis=1)[:, ::-1]
    return CumulativeIncidence(horizons, curve, low, high)


# ---- the curve of a fitted risk model ------------------------------------------------------

#: ``curve_shape`` of a curve whose timing was learned with the model (:class:`TimingModel`).
SHAPE_FITTED = "fitted"
#: ``curve_shape`` of a curve spread over time by the published timing of recurrences.
SHAPE_PUBLISHED = "published"


def weibull_shape_curve(
    horizons: Sequence[int], weibull_shape: float, median_days: float
) -> np.ndarray:
    """``P(T <= h | T <= W)`` at each horizon for a Weibull recurrence time truncated to the
    last horizon ``W``, its scale solved so that the median among recurrences within ``W``
    is ``median_days``; exactly 1 at ``W``.

    With ``F(t) = 1 - exp(-(t / s) ** k)`` the truncated median ``m`` solves
    ``F(m) = F(W) / 2``; the solution in ``s`` is found by bisection on the log scale
    (``F(m) / F(W)`` falls as ``s`` grows).

    Raises:
        ValueError: a shape that is not positive, or a median outside (0, W).
    """
    hz = np.asarray(horizons, dtype=np.float64)
    window = float(hz[-1])
    if not weibull_shape > 0:
        raise ValueError(f"weibull_shape must be positive (got {weibull_shape})")
    if not 0 < median_days < window:
        raise ValueError(f"median_days must be in (0, {window:g}) (got {median_days})")

    def ratio(t: np.ndarray | float, log_scale: float) -> np.ndarray:
        return -np.expm1(-((np.asarray(t) / np.exp(log_scale)) ** weibull_shape)) / -np.expm1(
            -((window / np.exp(log_scale)) ** weibull_shape)
        )

    lo, hi = np.log(1e-3), np.log(1e9)
    for _ in range(200):
        mid = (lo + hi) / 2
        if ratio(median_days, mid) > 0.5:
            lo = mid
        else:
            hi = mid
    shape = ratio(hz, (lo + hi) / 2)
    shape[-1] = 1.0
    return np.maximum.accumulate(shape)


@dataclass(frozen=True)
class PublishedTiming:
    """One timing curve for every episode, from the published timing of recurrences.

    For a model version that carries no :class:`TimingModel` (versions registered before
    one was fitted, a model built from the literature): the one-year risk is spread over the
    horizons by the same shape for all. Its interval is that of the one-year risk alone.
    """

    horizons: tuple[int, ...]
    shape: tuple[float, ...]

    @classmethod
    def from_config(cls, config) -> PublishedTiming:
        """From ``pipeline.config.IncidenceConfig`` (duck-typed): ``horizons``,
        ``published_weibull_shape``, ``published_median_days``."""
        horizons = tuple(int(h) for h in config.horizons)
        curve = weibull_shape_curve(
            horizons, config.published_weibull_shape, config.published_median_days
        )
        return cls(horizons, tuple(float(v) for v in curve))

    def predict_shape(self, X: pd.DataFrame) -> np.ndarray:
        return np.tile(np.asarray(self.shape, dtype=np.float64), (len(X), 1))


@dataclass(frozen=True)
class FixedTiming:
    """A fitted timing that is the same for every episode, as numpy-free tuples
    (``models.incidence.TimingModel.fixed``): the shape and, when the fit had bootstrap
    members, its interval at ``level``."""

    horizons: tuple[int, ...]
    shape: tuple[float, ...]
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    level: float | None = None

    @property
    def interval_available(self) -> bool:
        return self.low is not None

    def predict_shape(self, X: pd.DataFrame) -> np.ndarray:
        return np.tile(np.asarray(self.shape, dtype=np.float64), (len(X), 1))

    def predict_shape_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.low is None or self.high is None:
            raise ValueError("no bootstrap members: fit with n_bootstrap >= 2 for intervals")
        if level != self.level:
            raise ValueError(f"the interval was kept at level {self.level}, not {level}")

        def tile(v: tuple[float, ...]) -> np.ndarray:
            return np.tile(np.asarray(v, dtype=np.float64), (len(X), 1))

        return tile(self.shape), tile(self.low), tile(self.high)


def risk_curve(
    model,
    X: pd.DataFrame,
    risk: np.ndarray,
    risk_ci_low: np.ndarray,
    risk_ci_high: np.ndarray,
    published: PublishedTiming,
    level: float = 0.95,
    timing_interval: bool = True,
) -> tuple[pd.DataFrame, str]:
    """Columns ``risk_{h}d``, ``risk_{h}d_ci_low``, ``risk_{h}d_ci_high`` for every horizon but
    the last (the last is ``risk`` itself), and where the shape came from.

    The shape is the model's own :class:`TimingModel` (``model.timing_``) when it carries
    one (:data:`SHAPE_FITTED`; its bootstrap interval is combined with the one-year one when
    it has members and ``timing_interval``), else ``published``'s (:data:`SHAPE_PUBLISHED`).
    Without the timing's interval each horizon's interval is the one-year interval times
    the shape: the level's uncertainty alone (one prediction of the timing instead of one
    per bootstrap member).
    """
    timing = getattr(model, "timing_", None)
    shape_low = shape_high = None
    if timing is not None:
        source, horizons = SHAPE_FITTED, tuple(int(h) for h in timing.horizons)
        interval = getattr(timing, "interval_available", None)
        if interval is None:  # a TimingModel: an interval needs two bootstrap members
            interval = len(getattr(timing, "members_", ())) >= 2
        if interval and timing_interval:
            shape, shape_low, shape_high = timing.predict_shape_interval(X, level)
        else:
            shape = timing.predict_shape(X)
    else:
        source, horizons = SHAPE_PUBLISHED, published.horizons
        shape = published.predict_shape(X)
    curve = cumulative_incidence(
        np.asarray(risk, dtype=np.float64),
        shape,
        horizons,
        np.asarray(risk_ci_low, dtype=np.float64),
        np.asarray(risk_ci_high, dtype=np.float64),
        shape_low,
        shape_high,
    )
    frame = curve.frame(X.index)
    last = horizons[-1]
    return frame.drop(
        columns=[f"risk_{last}d", f"risk_{last}d_ci_low", f"risk_{last}d_ci_high"]
    ), source
