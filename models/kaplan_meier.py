"""Observed cumulative incidence by Kaplan–Meier, for audits and as the bench's peer curve.

The Kaplan–Meier estimate (Kaplan & Meier 1958, JASA 53:457) of ``1 - S(h)`` is the
proportion recurred by day ``h`` had every episode been followed that long, under
independent censoring, with its 95% interval from the exponential Greenwood formula
(log(-log) scale; Kalbfleisch & Prentice 2002, sec. 1.4), which stays inside [0, 1]. The
same formulas as ``lifelines``' ``KaplanMeierFitter``, written here with numpy because
lifelines 0.30.3 requires pandas < 3 and installing it downgrades the pandas 3 the
pipeline's schemas are written for (265 tests failed with it); the test file checks both
against a dozen episodes worked by hand. Ties follow the usual convention: a
recurrence on day ``t`` comes before a loss to follow-up on the same day, so the
episode censored on day ``t`` is still at risk then.

Calibration at a horizon (:func:`horizon_calibration`) compares, within each group (a risk
band, say), the Kaplan–Meier incidence with the mean predicted incidence over the same
episodes, the approach of Royston & Altman 2013 (BMC Med Res Methodol 13:33) for survival
models; observed/expected takes the interval of the observed incidence divided by the
expected one, treating the mean prediction as fixed (Debray et al. 2017, BMJ 356:i6460,
on O/E with the standard error of the observed).

Competing events (other injuries, retirement) are treated as censoring, as everywhere
in hamrisk: the estimate is the incidence in the absence of the competing event.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from models.incidence import check_follow_up

_COLUMNS = ("episodes", "at_risk", "events", "incidence", "incidence_low", "incidence_high")


def _times(
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    horizons: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizons, and each episode's time (recurrence, or end of follow-up, capped at the
    last horizon) and whether it recurred by then."""
    followed = np.asarray(followed_days, dtype=np.float64)
    event = np.asarray(event_days, dtype=np.float64)
    check_follow_up(followed, event)
    hz = np.asarray(horizons, dtype=np.float64)
    if hz.ndim != 1 or hz.size == 0 or hz[0] <= 0 or np.any(np.diff(hz) <= 0):
        raise ValueError(f"horizons must be positive days in increasing order (got {hz})")
    recurred = ~np.isnan(event) & (event <= hz[-1])
    time = np.where(recurred, event, np.minimum(followed, hz[-1]))
    return hz, time, recurred


def _km_table(time: np.ndarray, recurred: np.ndarray, hz: np.ndarray, level: float) -> np.ndarray:
    """``(horizons, 6)`` rows in the order of ``_COLUMNS``."""
    n = len(time)
    out = np.empty((len(hz), len(_COLUMNS)))
    out[:, 0] = n
    sorted_time = np.sort(time)
    out[:, 1] = n - np.searchsorted(sorted_time, hz, side="left")
    out[:, 2] = np.searchsorted(np.sort(time[recurred]), hz, side="right")
    if n == 0:
        out[:, 3:] = np.nan
        return out
    # Risk set at each recurrence day: everyone whose time is on or after it, so an episode
    # lost on the same day is still at risk (recurrences first).
    days = np.unique(time[recurred])
    at_risk = n - np.searchsorted(sorted_time, days, side="left")
    deaths = np.bincount(np.searchsorted(days, time[recurred]), minlength=days.size)
    survival = np.cumprod(1.0 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
    k = np.searchsorted(days, hz, side="right")  # recurrence days on or before each horizon
    s = np.r_[1.0, survival][k]
    var = np.r_[0.0, greenwood][k]
    out[:, 3] = 1.0 - s
    # Exponential Greenwood: log(-log S) has standard error sqrt(var) / |log S|, so S's
    # bounds are S ** exp(-+z se), inside (0, 1) by construction.
    z = norm.ppf((1 + level) / 2)
    inside = (s > 0) & (s < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var) / np.abs(np.log(s))
        out[:, 4] = np.where(inside, 1.0 - s ** np.exp(-z * se), 0.0)
        out[:, 5] = np.where(inside, 1.0 - s ** np.exp(z * se), 1.0)
    # With no recurrence yet the Greenwood variance is 0 and the interval would collapse
    # to [0, 0]; the exact binomial upper bound for 0 events in the episodes still at risk
    # (Clopper & Pearson 1934) is the honest statement of what was seen.
    none = out[:, 2] == 0
    out[none, 4] = 0.0
    out[none, 5] = 1.0 - ((1 - level) / 2) ** (1.0 / np.maximum(out[none, 1], 1.0))
    # Everyone still at risk recurred: incidence 1, lower bound the exact binomial one for
    # that many events in that many.
    full = s == 0
    last_at_risk = np.r_[1.0, at_risk][k]  # at the last recurrence day on or before h
    out[full, 4] = ((1 - level) / 2) ** (1.0 / last_at_risk[full])
    out[full, 5] = 1.0
    return out


def km_incidence(
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    horizons: Sequence[int],
    level: float = 0.95,
) -> pd.DataFrame:
    """Kaplan–Meier cumulative incidence at each horizon, with its interval.

    Args:
        followed_days: days from prediction time to the end of follow-up.
        event_days: days from prediction time to the recurrence, NaN if none.
        horizons: days, increasing; follow-up is cut at the last.
        level: confidence level of the interval.

    Returns:
        One row per horizon (index ``horizon_days``): ``episodes``, ``at_risk`` (still
        followed and not recurred just before the horizon), ``events`` (recurrences by
        the horizon), ``incidence``, ``incidence_low``, ``incidence_high``.

    Raises:
        ValueError: inconsistent follow-up (named by row), bad horizons or level.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1) (got {level})")
    hz, time, recurred = _times(followed_days, event_days, horizons)
    table = _km_table(time, recurred, hz, level)
    frame = pd.DataFrame(
        table, columns=list(_COLUMNS), index=pd.Index(hz.astype(int), name="horizon_days")
    )
    return frame.astype({c: np.int64 for c in _COLUMNS[:3]})


def observed_incidence(
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    horizons: Sequence[int],
    by: np.ndarray | pd.Series | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """:func:`km_incidence` within each group of ``by`` (a risk band, a clinic), long format.

    Returns:
        Columns ``group``, ``horizon_days`` and those of :func:`km_incidence`; groups in
        sorted order. ``by=None``: one group, ``"all"``.
    """
    followed = np.asarray(followed_days, dtype=np.float64)
    event = np.asarray(event_days, dtype=np.float64)
    labels = _labels(by, len(followed))
    parts = []
    for group in sorted(pd.unique(labels), key=str):
        rows = labels == group
        part = km_incidence(followed[rows], event[rows], horizons, level).reset_index()
        parts.append(part.assign(group=group))
    frame = pd.concat(parts, ignore_index=True)
    return frame[["group", "horizon_days", *_COLUMNS]]


def _labels(by: np.ndarray | pd.Series | None, n: int) -> np.ndarray:
    if by is None:
        return np.full(n, "all", dtype=object)
    labels = np.asarray(by, dtype=object)
    if labels.shape != (n,):
        raise ValueError(f"by has shape {labels.shape}, expected ({n},)")
    missing = pd.isna(labels)
    if missing.any():
        raise ValueError(f"by has a missing group at row {int(np.flatnonzero(missing)[0])}")
    return labels


def cohort_shape(
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    horizons: Sequence[int],
) -> np.ndarray:
    """The cohort's Kaplan–Meier timing: ``F(h) / F(W)`` at each horizon, ``W`` the last.

    Raises:
        ValueError: no recurrence by the last horizon (there is no timing to spread by).
    """
    table = km_incidence(followed_days, event_days, horizons)
    incidence = table["incidence"].to_numpy()
    if not incidence[-1] > 0:
        raise ValueError("no recurrence within the window: the cohort's timing is unknown")
    shape = incidence / incidence[-1]
    shape[-1] = 1.0
    return shape


def spread_by_cohort_shape(
    risk: np.ndarray,
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    horizons: Sequence[int],
) -> np.ndarray:
    """The one-year risk spread over the horizons by the cohort's Kaplan–Meier shape.

    The peer a covariate-dependent timing model must beat: every episode gets the same
    timing, ``risk * F_KM(h) / F_KM(W)``; ``(episodes, horizons)``.
    """
    risk = np.asarray(risk, dtype=np.float64)
    return risk[:, None] * cohort_shape(followed_days, event_days, horizons)[None, :]


def horizon_calibration(
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    predicted: np.ndarray,
    horizons: Sequence[int],
    by: np.ndarray | pd.Series | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Observed (Kaplan–Meier) against expected (mean predicted) incidence per group and horizon.

    Args:
        predicted: ``(episodes, horizons)`` predicted cumulative incidence.
        by: group of each episode (a risk band); ``None``: the whole cohort.

    Returns:
        :func:`observed_incidence`'s columns plus ``expected`` (mean prediction over the
        group's episodes, censored ones included, as the Kaplan–Meier speaks for all of
        them), ``oe_ratio``, ``oe_low``, ``oe_high`` (NaN where nothing was expected).
    """
    pred = np.asarray(predicted, dtype=np.float64)
    n = len(np.asarray(followed_days))
    if pred.shape != (n, len(horizons)):
        raise ValueError(f"predicted is {pred.shape}, expected ({n}, {len(horizons)})")
    bad = np.argwhere(~np.isfinite(pred) | (pred < 0) | (pred > 1))
    if bad.size:
        i, k = bad[0]
        raise ValueError(
            f"predicted incidence must be in [0, 1]; row {i}, horizon {horizons[k]} "
            f"has {pred[i, k]}"
        )
    frame = observed_incidence(followed_days, event_days, horizons, by, level)
    labels = _labels(by, n)
    expected = []
    for group in sorted(pd.unique(labels), key=str):
        expected.append(pred[labels == group].mean(axis=0))
    frame["expected"] = np.concatenate(expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = frame["expected"] > 0
        for column, source in (
            ("oe_ratio", "incidence"),
            ("oe_low", "incidence_low"),
            ("oe_high", "incidence_high"),
        ):
            frame[column] = np.where(positive, frame[source] / frame["expected"], np.nan)
    return frame
