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
from typing import Any

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


# ---- a fitted timing's numbers -------------------------------------------------------------

# The pooled q of a bin enters as a log-odds offset, so 0 and 1 are kept this far away: a
# bin with no recurrence then adds at most 0.01% of the recurrences to the shape.
Q_CLIP = 1e-4


def shape_from_timing(
    q: np.ndarray, bin_edges: Sequence[float], horizons: Sequence[float]
) -> np.ndarray:
    """``P(T <= h | T <= W)`` at each horizon from the conditional bin hazards ``q``
    (``(n, bins - 1)`` or ``(bins - 1,)``); exactly 1 at the last horizon."""
    q = np.asarray(q, dtype=np.float64)
    edges = np.asarray(bin_edges, dtype=np.float64)
    with np.errstate(divide="ignore"):  # q = 1: every recurrence used up, log(0) = -inf
        before = -np.expm1(np.cumsum(np.log1p(-np.minimum(q, 1.0)), axis=-1))
    ones = np.ones((*before.shape[:-1], 1))
    cdf = np.concatenate([before, ones], axis=-1)
    shape = cdf[..., np.searchsorted(edges, np.asarray(horizons, dtype=np.float64))]
    shape[..., -1] = 1.0
    return shape


def centred_interval(
    shape: np.ndarray, members: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """The members' (``(members, episodes, horizons)``) deviations from their mean at the
    ``(1-level)/2`` and ``(1+level)/2`` percentiles added to ``shape``, clipped to [0, 1],
    containing the shape and monotone in the horizon."""
    members = members - members.mean(axis=0)
    lo, hi = np.quantile(members, [(1 - level) / 2, (1 + level) / 2], axis=0)
    low = np.minimum(np.clip(shape + lo, 0.0, 1.0), shape)
    high = np.maximum(np.clip(shape + hi, 0.0, 1.0), shape)
    low = np.maximum.accumulate(low, axis=1)
    high = np.minimum.accumulate(high[:, ::-1], axis=1)[:, ::-1]
    return low, high


@dataclass(frozen=True)
class LinearTiming:
    """A shift of every bin's log-odds by ``intercept + z @ coef``, ``z`` the episode's
    timing features as :class:`Standardised` gives them."""

    intercept: float
    coef: np.ndarray

    def logit(self, z: np.ndarray) -> np.ndarray:
        return self.intercept + z @ self.coef


@dataclass(frozen=True)
class Standardised:
    """The linear timing features of a feature matrix (``models.prep.FeaturePrep``'s):
    columns ``columns``, a blank read as ``center`` (the fit's median), then centred on
    ``mean`` and divided by ``scale`` (the fit's standard deviation, 1 if constant)."""

    columns: tuple[int, ...]
    center: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, m: np.ndarray, columns: Sequence[int]) -> Standardised:
        x = m[:, list(columns)]
        known = ~np.isnan(x)
        center = np.array(
            [np.median(x[known[:, j], j]) if known[:, j].any() else 0.0 for j in range(x.shape[1])]
        )
        filled = np.where(known, x, center)
        mean, sd = filled.mean(axis=0), filled.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        as_tuple = lambda v: tuple(float(a) for a in v)  # noqa: E731
        return cls(tuple(int(c) for c in columns), as_tuple(center), as_tuple(mean), as_tuple(sd))

    def transform(self, m: np.ndarray) -> np.ndarray:
        x = m[:, list(self.columns)]
        x = np.where(np.isnan(x), np.asarray(self.center), x)
        return (x - np.asarray(self.mean)) / np.asarray(self.scale)


def linear_timing(z: np.ndarray, q: np.ndarray, linear: LinearTiming) -> np.ndarray:
    """Each episode's ``q_j``, ``(episodes, bins - 1)``: the pooled ``q`` shifted on the
    log-odds scale by the linear effects of the episode's standardised features ``z``."""
    p = np.clip(np.asarray(q, dtype=np.float64), Q_CLIP, 1 - Q_CLIP)
    raw = (np.log(p) - np.log1p(-p))[None, :] + linear.logit(z)[:, None]
    return 1.0 / (1.0 + np.exp(-raw))


@dataclass(frozen=True)
class LinearShapeTiming:
    """A fitted timing whose deviations from the cohort's are linear effects only (no
    trees), as numpy (``models.incidence.TimingModel.compact``): the shape, and its
    interval from the bootstrap members, without LightGBM, scikit-learn or SciPy.

    ``fit`` and each of ``members`` are ``(q, linear)``: the pooled bin hazards and the
    linear effects (``None``: none in that member).
    """

    horizons: tuple[int, ...]
    bin_edges: tuple[float, ...]
    prep: Any  # models.prep.FeaturePrep, the timing model's
    design: Standardised
    fit: tuple[np.ndarray, LinearTiming | None]
    members: tuple[tuple[np.ndarray, LinearTiming | None], ...] = ()

    @property
    def interval_available(self) -> bool:
        return len(self.members) >= 2

    def _shapes(self, X: pd.DataFrame, fits) -> list[np.ndarray]:
        z = self.design.transform(self.prep.transform(X))
        out = []
        for q, linear in fits:
            timing = np.tile(q, (len(z), 1)) if linear is None else linear_timing(z, q, linear)
            out.append(shape_from_timing(timing, self.bin_edges, self.horizons))
        return out

    def predict_shape(self, X: pd.DataFrame) -> np.ndarray:
        return self._shapes(X, [self.fit])[0]

    def predict_shape_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As ``TimingModel.predict_shape_interval``, to the bit."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1) (got {level})")
        if not self.interval_available:
            raise ValueError("no bootstrap members: fit with n_bootstrap >= 2 for intervals")
        shape, *members = self._shapes(X, [self.fit, *self.members])
        return (shape, *centred_interval(shape, np.stack(members), level))


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
