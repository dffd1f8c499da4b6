"""Inverse-probability-of-censoring weights (IPCW) for a fixed-window binary outcome.

An episode's outcome over the window is known when it recurred within the window or was
followed for the whole window; it is unknown when follow-up stopped earlier without a
recurrence. Dropping the unknown ones overstates risk (recurrences surface early, before
follow-up is lost), and counting them as non-recurrences understates it. IPCW re-weights
each known outcome by the inverse probability of having remained under observation until
the outcome became known, ``1 / G(t-)``, with ``t`` the recurrence time for recurrences and
the window for non-recurrences (Robins & Rotnitzky 1992; Uno et al. 2007, JASA 102:527;
Vock et al. 2016, J Biomed Inform 61:119, "adapting machine learning techniques to
censored time-to-event data: a general-purpose approach using IPCW").

Two estimates of the censoring survival ``G``:

* ``"km"``: Kaplan–Meier of the censoring times, valid when loss to follow-up is
  independent of the episode's risk.
* ``"covariate"``: a Cox proportional-hazards model of the censoring hazard on the given
  covariates, ``G_i(t) = exp(-H0(t) exp(x_i' beta))``, Breslow baseline, ridge-penalised,
  written with numpy. Chosen over a discrete-time logistic hazard because follow-up is
  recorded in days: the Cox model needs no choice of time bins, gives ``G_i(t-)`` at the
  exact recurrence day, reduces to (the Nelson–Aalen analogue of) Kaplan–Meier when the
  covariates carry no information, and its risk-set sums vectorise as cumulative sums.
  The ridge penalty keeps the fit finite with many or collinear covariates.

Administrative censoring is not loss to follow-up. Follow-up also ends because the cohort
was exported: every episode's longest possible follow-up, ``administrative_days`` (export
date minus prediction time), is known in advance for every episode, whether or not the
athlete drops out (Type I, fixed censoring; Kalbfleisch & Prentice 2002, The Statistical
Analysis of Failure Time Data, 2nd ed., section 1.2). So it is treated as a known end, not
modelled as a hazard:

* the censoring model (Kaplan–Meier or Cox) counts as events only real losses: follow-up
  that stopped before both the window and the administrative end; reaching the export
  date ends an episode's time at risk of being lost without being a loss. Calendar time
  therefore need not, and must not, enter as a linear dropout covariate (it would teach
  the model that recent episodes "drop out" because they were exported);
* an episode whose administrative end falls before the end of its window cannot have a
  known non-recurrence, whatever its athlete does: weighting its recurrences alone would
  count only the early events of that group (a positivity violation; Cole & Hernán 2008,
  Am J Epidemiol 168:656). Such episodes weigh 0, recurrences included, and only inform
  the loss-to-follow-up hazard. Within the remaining episodes the window closes before
  the export, so ``G`` is the probability of not being lost.

Ties follow the usual convention that recurrences come before censorings on the same day:
an episode that recurred on day ``t`` was at risk of being censored only before ``t``.

Weights are truncated at ``max_weight`` (default 10, i.e. ``G`` floored at 0.1): a weight
above 10 means that fewer than one in ten comparable episodes stayed observed, and one such
episode would otherwise dominate the fit (Cole & Hernán 2008, Am J Epidemiol 168:656, on
truncating extreme inverse-probability weights).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

DEFAULT_MAX_WEIGHT = 10.0
# Penalty on the standardised Cox coefficients, in units of the log partial likelihood: one
# pseudo-observation's worth, negligible next to hundreds of censorings but enough to keep
# separable or collinear covariates finite.
_COX_RIDGE = 1.0


def outcome_known(
    followed_days: np.ndarray, event_days: np.ndarray, window_days: float
) -> np.ndarray:
    """True where the window's outcome is known: a recurrence in the window or full follow-up."""
    followed = np.asarray(followed_days, dtype=np.float64)
    event = np.asarray(event_days, dtype=np.float64)
    recurred = ~np.isnan(event) & (event <= window_days)
    return recurred | (followed >= window_days)


def _validate(
    followed: np.ndarray, event: np.ndarray, administrative: np.ndarray, window_days: float
) -> None:
    if followed.shape != event.shape or followed.ndim != 1 or administrative.shape != event.shape:
        raise ValueError(
            f"followed_days, event_days and administrative_days must be 1-D of equal length "
            f"(got {followed.shape}, {event.shape} and {administrative.shape})"
        )
    bad = np.flatnonzero(np.isnan(administrative) | (administrative < followed))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"administrative_days must be a number at least followed_days; row {i} has "
            f"administrative_days={administrative[i]} and followed_days={followed[i]}"
        )
    if not window_days > 0:
        raise ValueError(f"window_days must be positive (got {window_days})")
    bad = np.flatnonzero(np.isnan(followed) | (followed < 0))
    if bad.size:
        raise ValueError(
            f"followed_days must be a non-negative number; row {bad[0]} has {followed[bad[0]]}"
        )
    bad = np.flatnonzero(~np.isnan(event) & ((event < 0) | (event > followed)))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"event_days must lie in [0, followed_days]; row {i} has event_days={event[i]} "
            f"and followed_days={followed[i]}"
        )


def _censoring_data(
    followed: np.ndarray, event: np.ndarray, administrative: np.ndarray, window_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time at risk of loss, loss indicator, and a tie-breaking risk-set time.

    A loss is follow-up that stopped before the window and before the administrative end;
    follow-up that reached the administrative end stops being at risk there, unlost.
    """
    recurred = ~np.isnan(event) & (event <= window_days)
    time = np.where(recurred, event, np.minimum(followed, window_days))
    censored = ~recurred & (followed < window_days) & (followed < administrative)
    # Recurrences leave the censoring risk set just before censorings on the same day.
    risk_time = np.where(recurred, np.nextafter(time, -np.inf), time)
    return time, censored, risk_time


def _km_survival_before(
    time: np.ndarray, censored: np.ndarray, risk_time: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """Kaplan–Meier censoring survival G(t-) evaluated at each ``at``."""
    cens_times = np.unique(time[censored])
    if cens_times.size == 0:
        return np.ones(len(at))
    sorted_risk = np.sort(risk_time)
    at_risk = len(risk_time) - np.searchsorted(sorted_risk, cens_times, side="left")
    d = np.bincount(np.searchsorted(cens_times, time[censored]), minlength=cens_times.size)
    surv = np.cumprod(1.0 - d / at_risk)
    # G(t-) multiplies the factors of censoring times strictly before t.
    k = np.searchsorted(cens_times, at, side="left")
    return np.concatenate([[1.0], surv])[k]


def covariate_matrix(covariates: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Numeric, standardised design for the censoring model.

    Booleans become 0/1, text columns become one indicator per category seen, missing
    numeric values are set to the column median with a missingness indicator beside them,
    and every column is standardised (constant columns dropped).
    """
    frame = pd.DataFrame(covariates).reset_index(drop=True)
    parts: list[np.ndarray] = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_string_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype):
            dummies = pd.get_dummies(col.astype("string"), dummy_na=True, dtype=np.float64)
            parts.append(dummies.to_numpy())
            continue
        if isinstance(col.dtype, pd.BooleanDtype) or col.dtype == bool:
            values = col.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        if missing.all():
            continue
        if missing.any():
            values = np.where(missing, np.nanmedian(values), values)
            parts.append(missing.astype(np.float64)[:, None])
        parts.append(values[:, None])
    if not parts:
        return np.zeros((len(frame), 0))
    design = np.hstack(parts)
    sd = design.std(axis=0)
    keep = sd > 0
    return (design[:, keep] - design[:, keep].mean(axis=0)) / sd[keep]


def _cox_censoring_survival_before(
    time: np.ndarray,
    censored: np.ndarray,
    risk_time: np.ndarray,
    design: np.ndarray,
    at: np.ndarray,
    ridge: float = _COX_RIDGE,
    max_iter: int = 50,
) -> np.ndarray:
    """Per-row Cox censoring survival ``G_i(at_i-)`` (Breslow baseline, ridge penalty)."""
    n, p = design.shape
    order = np.argsort(-risk_time, kind="stable")  # descending: a cumsum is a risk-set sum
    x = design[order]
    rt = risk_time[order]
    d = censored[order].astype(np.float64)
    # Index of the last row (in descending order) sharing each row's risk time, so that
    # tied rows see the same risk set.
    last = np.searchsorted(-rt, -rt, side="right") - 1
    beta = np.zeros(p)

    def penalised(b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        eta = x @ b
        shift = eta.max() if n else 0.0
        r = np.exp(eta - shift)
        s0 = np.cumsum(r)[last]
        loglik = np.sum(d * (eta - shift - np.log(s0))) - 0.5 * ridge * b @ b
        return loglik, r, s0, eta

    current, r, s0, _ = penalised(beta)
    for _ in range(max_iter if p else 0):
        s1 = np.cumsum(r[:, None] * x, axis=0)[last]
        mean_x = s1 / s0[:, None]
        grad = (d[:, None] * (x - mean_x)).sum(axis=0) - ridge * beta
        # Hessian = sum over censorings of the risk-set covariance: X' diag(r * A) X - sum
        # of d_i m_i m_i', with A_j the Breslow increments summed over censorings at or
        # before row j's time (rows later in the descending order).
        increments = d / s0
        a = np.cumsum(increments[::-1])[::-1]
        # a_j must sum the increments of censorings with risk time <= rt_j: those are at
        # positions >= first row sharing rt_j.
        first = np.searchsorted(-rt, -rt, side="left")
        a = a[first]
        info = (x * (r * a)[:, None]).T @ x - (mean_x * d[:, None]).T @ mean_x
        info += ridge * np.eye(p)
        step = np.linalg.solve(info, grad)
        scale = 1.0
        while scale > 1e-6:
            candidate = beta + scale * step
            new, r_new, s0_new, _ = penalised(candidate)
            if new >= current - 1e-12:
                break
            scale /= 2
        else:
            break
        beta, previous, current, r, s0 = candidate, current, new, r_new, s0_new
        if abs(current - previous) < 1e-9 * (1.0 + abs(current)):
            break
    eta = design @ beta
    shift = eta.max() if n else 0.0
    # Breslow cumulative baseline hazard (relative to exp(shift)) at each censoring time.
    cens_times = np.unique(time[censored])
    if cens_times.size == 0:
        return np.ones(n)
    r_all = np.exp(eta - shift)
    sorted_idx = np.argsort(risk_time, kind="stable")
    tail = np.cumsum(r_all[sorted_idx][::-1])[::-1]
    start = np.searchsorted(risk_time[sorted_idx], cens_times, side="left")
    s0_at = tail[start]
    deaths = np.bincount(np.searchsorted(cens_times, time[censored]), minlength=cens_times.size)
    h0 = np.cumsum(deaths / s0_at)
    k = np.searchsorted(cens_times, at, side="left")
    h_before = np.concatenate([[0.0], h0])[k]
    return np.exp(-h_before * r_all)


def ipcw_weights(
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    window_days: float,
    covariates: pd.DataFrame | np.ndarray | None = None,
    method: Literal["km", "covariate"] = "km",
    max_weight: float = DEFAULT_MAX_WEIGHT,
    administrative_days: np.ndarray | pd.Series | None = None,
) -> np.ndarray:
    """IPCW weights: 0 where the outcome is unknown, ``min(1 / G(t-), max_weight)`` elsewhere.

    Args:
        followed_days: days from prediction time to the end of follow-up.
        event_days: days from prediction time to the first recurrence, NaN if none.
        window_days: the outcome window.
        covariates: one row per episode, for ``method="covariate"`` (numeric, boolean
            and text columns; missing values allowed).
        method: ``"km"`` (Kaplan–Meier) or ``"covariate"`` (Cox censoring model).
        max_weight: truncation cap (see the module docstring).
        administrative_days: days from prediction time to the export date, the longest
            follow-up the episode could have had (``None``: no administrative end).

    Returns:
        float64 weights, one per episode. Episodes whose window had not closed by the
        administrative end get 0, recurrences included (module docstring); so do
        censored ones.

    Raises:
        ValueError: inconsistent inputs, named by row.
    """
    followed = np.asarray(followed_days, dtype=np.float64)
    event = np.asarray(event_days, dtype=np.float64)
    administrative = (
        np.full(followed.shape, np.inf)
        if administrative_days is None
        else np.asarray(administrative_days, dtype=np.float64)
    )
    _validate(followed, event, administrative, window_days)
    if not max_weight >= 1:
        raise ValueError(f"max_weight must be at least 1 (got {max_weight})")
    time, censored, risk_time = _censoring_data(followed, event, administrative, window_days)
    known = outcome_known(followed, event, window_days) & (administrative >= window_days)
    if method == "km":
        g = _km_survival_before(time, censored, risk_time, time)
    elif method == "covariate":
        if covariates is None:
            raise ValueError('method="covariate" needs covariates')
        design = covariate_matrix(covariates)
        if design.shape[0] != len(followed):
            raise ValueError(
                f"covariates have {design.shape[0]} rows, follow-up has {len(followed)}"
            )
        g = _cox_censoring_survival_before(time, censored, risk_time, design, time)
    else:
        raise ValueError(f'method must be "km" or "covariate" (got {method!r})')
    weights = np.zeros(len(followed))
    with np.errstate(divide="ignore"):
        weights[known] = np.minimum(1.0 / g[known], max_weight)
    return weights
