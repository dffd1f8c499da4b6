"""Censoring-aware (IPCW-weighted) performance of predicted risks, with bootstrap CIs.

Every metric takes ``y`` (1.0 recurred, 0.0 not, NaN unknown), ``p`` (predicted risk) and
``w`` (IPCW weights, 0 for unknown outcomes). Weighting the known outcomes by the inverse
probability of remaining observed makes each metric estimate what it would be had every
episode been followed for the whole window (Gerds & Schumacher 2006, Biom J 48:1029, for
the Brier score; Uno et al. 2007, JASA 102:527, for the AUC).

Calibration follows Van Calster et al. 2016 (J Clin Epidemiol 74:167) and Steyerberg 2019
(*Clinical Prediction Models*, 2nd ed., ch. 15): calibration-in-the-large is the intercept
of a logistic model with ``logit(p)`` as offset (0 is ideal); the slope is the coefficient
of ``logit(p)`` in a logistic recalibration model (1 is ideal, below 1 means predictions
too extreme). Confidence intervals resample athletes (groups), because an athlete's
episodes are not independent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit

from models.calibration import (
    clip_probability,
    fit_weighted_logistic,
    logit_clipped,
    weighted_log_loss,
)

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def known_outcomes(y: Any, p: Any, w: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float arrays restricted to rows with a known outcome and positive weight."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    if not (y.shape == p.shape == w.shape) or y.ndim != 1:
        raise ValueError(
            f"y, p and w must be 1-D of equal length (got {y.shape}, {p.shape}, {w.shape})"
        )
    bad = np.flatnonzero(np.isnan(p) | (p < 0) | (p > 1))
    if bad.size:
        raise ValueError(f"predicted risk must be in [0, 1]; row {bad[0]} has {p[bad[0]]}")
    keep = ~np.isnan(y) & (w > 0)
    return y[keep], p[keep], w[keep]


def weighted_auc(y: Any, p: Any, w: Any | None = None) -> float:
    """Weighted concordance: P(p_case > p_control), ties counting one half."""
    y, p, w = known_outcomes(y, p, w)
    pos, neg = w * y, w * (1 - y)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    _, inverse = np.unique(p, return_inverse=True)
    pos_at = np.bincount(inverse, weights=pos)
    neg_at = np.bincount(inverse, weights=neg)
    neg_below = np.cumsum(neg_at) - neg_at
    return float(np.sum(pos_at * (neg_below + 0.5 * neg_at)) / (total_pos * total_neg))


def brier_score(y: Any, p: Any, w: Any | None = None) -> float:
    """Weighted mean squared difference between outcome and risk."""
    y, p, w = known_outcomes(y, p, w)
    return float(np.sum(w * (p - y) ** 2) / np.sum(w)) if w.sum() > 0 else float("nan")


def log_loss(y: Any, p: Any, w: Any | None = None) -> float:
    """Weighted mean negative log-likelihood (natural log; risks clipped to 1e-6)."""
    y, p, w = known_outcomes(y, p, w)
    return weighted_log_loss(y, p, w) if w.sum() > 0 else float("nan")


def calibration_intercept(y: Any, p: Any, w: Any | None = None) -> float:
    """Calibration-in-the-large: intercept with ``logit(p)`` as offset (ideal 0)."""
    y, p, w = known_outcomes(y, p, w)
    if w.sum() <= 0:
        return float("nan")
    return float(fit_weighted_logistic(np.ones((len(y), 1)), y, w, offset=logit_clipped(p))[0])


def calibration_slope(y: Any, p: Any, w: Any | None = None) -> float:
    """Slope of ``logit(p)`` in a weighted logistic recalibration (ideal 1)."""
    y, p, w = known_outcomes(y, p, w)
    if w.sum() <= 0 or np.ptp(p) == 0:
        return float("nan")
    design = np.column_stack([logit_clipped(p), np.ones(len(y))])
    return float(fit_weighted_logistic(design, y, w)[0])


def expected_calibration_error(y: Any, p: Any, w: Any | None = None, n_bins: int = 10) -> float:
    """Weighted mean |observed - predicted| over ``n_bins`` bins of equal weight.

    Equal-weight (quantile) bins rather than equal-width ones, because risks cluster near
    the base rate and equal-width bins would leave most of them nearly empty (Nixon et al.
    2019, "Measuring calibration in deep learning", adaptive ECE).
    """
    y, p, w = known_outcomes(y, p, w)
    if w.sum() <= 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    bins = np.empty(len(p), dtype=np.int64)
    bins[order] = np.minimum((cum * n_bins - 1e-9).astype(np.int64), n_bins - 1).clip(0)
    obs = np.bincount(bins, weights=w * y, minlength=n_bins)
    exp = np.bincount(bins, weights=w * p, minlength=n_bins)
    return float(np.sum(np.abs(obs - exp)) / w.sum())


def observed_expected(y: Any, p: Any, w: Any | None = None) -> float:
    """Weighted observed events over expected events (ideal 1)."""
    y, p, w = known_outcomes(y, p, w)
    expected = np.sum(w * p)
    return float(np.sum(w * y) / expected) if expected > 0 else float("nan")


METRICS: dict[str, Metric] = {
    "auc": weighted_auc,
    "brier": brier_score,
    "log_loss": log_loss,
    "calibration_intercept": calibration_intercept,
    "calibration_slope": calibration_slope,
    "ece": expected_calibration_error,
    "observed_expected": observed_expected,
}


def _group_index(groups: Any | None, n: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.arange(n), n
    _, index = np.unique(np.asarray(groups), return_inverse=True)
    return index, int(index.max()) + 1 if n else 0


def bootstrap_counts(
    groups: Any | None, n: int, n_boot: int, random_state: int | None
) -> np.ndarray:
    """How many times each of ``n`` rows is drawn in each replicate (``n_boot`` x ``n``).

    Replicates draw whole groups (athletes) with replacement, as many as there are;
    ``None`` draws rows. Every draw is made at once, so callers can compute each
    replicate's weighted statistic as one matrix product.
    """
    index, n_groups = _group_index(groups, n)
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    offsets = (np.arange(n_boot)[:, None] * n_groups + draws).ravel()
    times = np.bincount(offsets, minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    return times[:, index]


def _batched_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted AUC of each replicate (rows of ``weights``), ties counting one half."""
    order = np.argsort(p, kind="stable")
    ps, ys, ws = p[order], y[order], weights[:, order]
    pos, neg = ws * ys, ws * (1 - ys)
    start = np.searchsorted(ps, ps, side="left")
    end = np.searchsorted(ps, ps, side="right")
    cum = np.concatenate([np.zeros((len(ws), 1)), np.cumsum(neg, axis=1)], axis=1)
    below = cum[:, start]
    tied = cum[:, end] - below
    return np.sum(pos * (below + 0.5 * tied), axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _batched_intercept(
    y: np.ndarray, x: np.ndarray, weights: np.ndarray, start: float, max_steps: int = 50
) -> np.ndarray:
    """Calibration-in-the-large per replicate: logistic intercept with offset ``x``."""
    a = np.full(len(weights), start if np.isfinite(start) else 0.0)
    for _ in range(max_steps):
        mu = expit(a[:, None] + x[None, :])
        step = np.sum(weights * (y - mu), axis=1) / np.sum(weights * mu * (1 - mu), axis=1)
        a = a + step
        if not np.nanmax(np.abs(step)) > 1e-9:
            break
    return a


def _batched_slope(
    y: np.ndarray, x: np.ndarray, weights: np.ndarray, max_steps: int = 50
) -> np.ndarray:
    """Calibration slope per replicate: coefficient of ``x`` in ``logit P(y) = a + b x``.

    Newton-Raphson from the full-sample fit (itself from a = 0, b = 1), so each replicate
    needs a few steps; replicates that do not converge (quasi-separation in a small cell)
    are dropped rather than reported.
    """
    full = weights.mean(axis=0, keepdims=True)
    a, b, _ = _newton_slope(y, x, full, np.zeros(1), np.ones(1), max_steps)
    a, b, converged = _newton_slope(
        y, x, weights, np.repeat(a, len(weights)), np.repeat(b, len(weights)), max_steps
    )
    return np.where(converged, b, np.nan)


def _newton_slope(
    y: np.ndarray, x: np.ndarray, weights: np.ndarray, a: np.ndarray, b: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    converged = np.zeros(len(weights), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(steps):
            mu = expit(a[:, None] + b[:, None] * x[None, :])
            r = weights * (y - mu)
            h = weights * mu * (1 - mu)
            g0, g1 = r.sum(axis=1), r @ x
            h00, h01, h11 = h.sum(axis=1), h @ x, h @ (x * x)
            det = h00 * h11 - h01**2
            da = (h11 * g0 - h01 * g1) / det
            db = (h00 * g1 - h01 * g0) / det
            a, b = a + da, b + db
            converged = np.abs(da) + np.abs(db) < 1e-8
            if converged.all():
                break
    return a, b, converged & np.isfinite(b)


def _replicates(
    name: str,
    y: np.ndarray,
    p: np.ndarray,
    weights: np.ndarray,
    estimate: float,
) -> np.ndarray:
    """``name`` in every replicate (rows of ``weights``, known outcomes only).

    O/E, Brier and log loss are weighted sums, the AUC a cumulative sum over the rows
    sorted by risk, intercept and slope a batched Newton-Raphson started from the
    full-sample fit: a per-replicate loop of logistic fits made an audit of a few thousand
    episodes take tens of seconds. A metric without a batched form is computed replicate
    by replicate.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "observed_expected":
            return (weights @ y) / (weights @ p)
        if name == "brier":
            return (weights @ (p - y) ** 2) / weights.sum(axis=1)
        if name == "log_loss":
            q = clip_probability(p)
            loss = -(y * np.log(q) + (1 - y) * np.log1p(-q))
            return (weights @ loss) / weights.sum(axis=1)
        if name == "auc":
            return _batched_auc(y, p, weights)
        if name == "calibration_intercept":
            return _batched_intercept(y, logit_clipped(p), weights, estimate)
        if name == "calibration_slope":
            return _batched_slope(y, logit_clipped(p), weights)
        return np.array([METRICS[name](y, p, row) for row in weights])


def evaluate(
    y: Any,
    p: Any,
    w: Any | None = None,
    n_boot: int = 200,
    random_state: int | None = None,
    groups: Any | None = None,
    level: float = 0.95,
    metrics: Sequence[str] | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Each metric with a bootstrap percentile CI: the one bootstrap of held-out
    evaluation in training and of the outcome audit.

    Replicates resample the groups (athletes) that hold a known outcome, each group's
    IPCW weights counted as many times as it is drawn; the censoring weights themselves
    are not re-estimated. A replicate where a metric is undefined (no recurrence drawn,
    a slope that does not converge) is left out of that metric's interval.

    Args:
        y, p, w: outcomes (NaN unknown), risks, IPCW weights.
        n_boot: bootstrap replicates (0: no interval, low and high are NaN).
        random_state: seed of the resampling.
        groups: athlete ids; replicates resample whole athletes. ``None``: episodes.
        level: CI coverage.
        metrics: names from :data:`METRICS` (default all).

    Returns:
        ``{metric: (estimate, low, high)}``.
    """
    names = list(metrics or METRICS)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    known_outcomes(y, p, w)  # validate once, with row numbers in the message
    estimates = {m: METRICS[m](y, p, w) for m in names}
    if n_boot <= 0:
        return {m: (estimates[m], float("nan"), float("nan")) for m in names}
    keep = ~np.isnan(y) & (w > 0)
    yk, pk, wk = y[keep], p[keep], w[keep]
    gk = None if groups is None else np.asarray(groups)[keep]
    weights = bootstrap_counts(gk, len(yk), n_boot, random_state) * wk[None, :]
    alpha = (1 - level) / 2
    out = {}
    for m in names:
        values = _replicates(m, yk, pk, weights, estimates[m])
        values = values[np.isfinite(values)]
        low, high = np.quantile(values, [alpha, 1 - alpha]) if values.size else (np.nan, np.nan)
        out[m] = (estimates[m], float(low), float(high))
    return out


def net_benefit(
    y: Any,
    p: Any,
    w: Any | None = None,
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Weighted net benefit of treating when ``p >= threshold`` (Vickers & Elkin 2006).

    ``NB = TP/N - FP/N * t / (1 - t)``, against treating everyone and treating no one (0).

    Returns:
        columns ``threshold``, ``model``, ``treat_all``, ``treat_none``.
    """
    y, p, w = known_outcomes(y, p, w)
    t = np.linspace(0.1, 0.6, 51) if thresholds is None else np.asarray(thresholds, dtype=float)
    if np.any((t <= 0) | (t >= 1)):
        raise ValueError("thresholds must lie strictly between 0 and 1")
    total = w.sum()
    odds = t / (1 - t)
    treated = p[None, :] >= t[:, None]
    tp = (treated * (w * y)).sum(axis=1) / total
    fp = (treated * (w * (1 - y))).sum(axis=1) / total
    prevalence = np.sum(w * y) / total
    return pd.DataFrame(
        {
            "threshold": t,
            "model": tp - fp * odds,
            "treat_all": prevalence - (1 - prevalence) * odds,
            "treat_none": np.zeros(len(t)),
        }
    )


def _spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis (Harrell 2015, *Regression Modeling Strategies*, 2.4.5)."""
    k = len(knots)
    scale = (knots[-1] - knots[0]) ** 2
    cols = [x]
    tail_a, tail_b = knots[-2], knots[-1]
    for j in range(k - 2):
        tj = knots[j]
        term = (
            np.maximum(x - tj, 0) ** 3
            - np.maximum(x - tail_a, 0) ** 3 * (tail_b - tj) / (tail_b - tail_a)
            + np.maximum(x - tail_b, 0) ** 3 * (tail_a - tj) / (tail_b - tail_a)
        )
        cols.append(term / scale)
    return np.column_stack(cols)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: Sequence[float]) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    cum = (np.cumsum(w[order]) - 0.5 * w[order]) / w.sum()
    return np.interp(q, cum, x[order])


def calibration_curve(
    y: Any,
    p: Any,
    w: Any | None = None,
    groups: Any | None = None,
    n_boot: int = 200,
    random_state: int | None = None,
    level: float = 0.95,
    grid: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Smoothed observed risk against predicted risk, with a bootstrap band.

    The smoother is a weighted logistic regression of the outcome on a restricted cubic
    spline of ``logit(p)`` with four knots at the 5th, 35th, 65th and 95th weighted
    percentiles (Harrell's defaults); Austin & Steyerberg 2014 (Stat Med 33:517) found
    spline and loess calibration curves equally accurate. Knots are fixed across bootstrap
    replicates, which resample athletes.

    Returns:
        columns ``predicted``, ``observed``, ``low``, ``high`` over ``grid`` (default 50
        points spanning the 2nd to 98th weighted percentile of ``p``).
    """
    y_all = np.asarray(y, dtype=np.float64)
    w_all = np.ones(len(y_all)) if w is None else np.asarray(w, dtype=np.float64)
    keep = ~np.isnan(y_all) & (w_all > 0)
    yk, pk, wk = known_outcomes(y, p, w)
    gk = None if groups is None else np.asarray(groups)[keep]
    x = logit_clipped(pk)
    knots = np.unique(_weighted_quantile(x, wk, [0.05, 0.35, 0.65, 0.95]))
    if grid is None:
        lo, hi = _weighted_quantile(pk, wk, [0.02, 0.98])
        grid = np.linspace(lo, hi, 50)
    grid = clip_probability(np.asarray(grid, dtype=np.float64))

    def design(values: np.ndarray) -> np.ndarray:
        basis = _spline_basis(values, knots) if len(knots) >= 3 else values[:, None]
        return np.column_stack([basis, np.ones(len(values))])

    fit_design, grid_design = design(x), design(logit_clipped(grid))
    # A tiny ridge keeps replicates with few events in a tail finite.
    observed = expit(grid_design @ fit_weighted_logistic(fit_design, yk, wk, ridge=1e-4))
    if n_boot <= 0:
        band = np.full((2, len(grid)), np.nan)
    else:
        counts = bootstrap_counts(gk, len(yk), n_boot, random_state)
        curves = np.array(
            [
                expit(grid_design @ fit_weighted_logistic(fit_design, yk, wk * times, ridge=1e-4))
                for times in counts
            ]
        )
        alpha = (1 - level) / 2
        band = np.quantile(curves, [alpha, 1 - alpha], axis=0)
    return pd.DataFrame({"predicted": grid, "observed": observed, "low": band[0], "high": band[1]})


class _RiskPredictor(Protocol):
    def predict_risk(self, X: pd.DataFrame) -> np.ndarray: ...


def optimism_corrected(
    fit_fn: Callable[[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray], _RiskPredictor],
    X: pd.DataFrame,
    y: Any,
    w: Any,
    groups: Any,
    n_boot: int = 50,
    random_state: int | None = None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Harrell's bootstrap optimism correction (``rms::validate``; Harrell et al. 1996,
    Stat Med 15:361; Steyerberg 2019, ch. 17).

    The model is refitted on each bootstrap sample of athletes; its performance on that
    sample minus its performance on the original data estimates the optimism of the
    apparent performance. Preferred over a split sample when the cohort is small, since
    every episode is used both to fit and to validate.

    Args:
        fit_fn: ``fit_fn(X, y, w, groups)`` -> a fitted model with ``predict_risk(X)``.
        X, y, w, groups: the development data (``w`` IPCW weights).
        n_boot: bootstrap refits.
        random_state: seed of the resampling.
        metrics: names from :data:`METRICS` (default all).

    Returns:
        one row per metric: ``apparent``, ``optimism`` (mean over refits), ``corrected``
        (apparent minus optimism), ``n_boot`` (refits that produced a value).
    """
    names = list(metrics or METRICS)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    groups = np.asarray(groups)
    X = X.reset_index(drop=True)

    def scores(
        model: _RiskPredictor, frame: pd.DataFrame, yy: np.ndarray, ww: np.ndarray
    ) -> np.ndarray:
        risk = clip_probability(np.asarray(model.predict_risk(frame), dtype=np.float64))
        return np.array([METRICS[m](yy, risk, ww) for m in names])

    apparent = scores(fit_fn(X, y, w, groups), X, y, w)
    labels, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(labels))]
    rng = np.random.default_rng(random_state)
    optimism = []
    for _ in range(n_boot):
        draw = rng.integers(0, len(labels), size=len(labels))
        rows = np.concatenate([members[g] for g in draw])
        # Each drawn athlete becomes a distinct pseudo-athlete, so grouped folds inside
        # fit_fn keep each copy whole.
        boot_groups = np.repeat(np.arange(len(draw)), [len(members[g]) for g in draw])
        Xb = X.iloc[rows].reset_index(drop=True)
        yb, wb = y[rows], w[rows]
        try:
            model = fit_fn(Xb, yb, wb, boot_groups)
        except ValueError:
            continue  # a replicate without both outcomes cannot be fitted; skip it
        optimism.append(scores(model, Xb, yb, wb) - scores(model, X, y, w))
    opt = np.array(optimism) if optimism else np.full((1, len(names)), np.nan)
    mean_opt = np.nanmean(opt, axis=0)
    return pd.DataFrame(
        {
            "apparent": apparent,
            "optimism": mean_opt,
            "corrected": apparent - mean_opt,
            "n_boot": np.sum(~np.isnan(opt), axis=0) if optimism else 0,
        },
        index=pd.Index(names, name="metric"),
    )


def summarise(results: Mapping[str, tuple[float, float, float]]) -> pd.DataFrame:
    """``evaluate``'s dict as a table with columns estimate, low, high."""
    return pd.DataFrame.from_dict(
        dict(results), orient="index", columns=["estimate", "low", "high"]
    ).rename_axis("metric")
