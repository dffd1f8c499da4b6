"""Cumulative incidence of a recurrence at several horizons, anchored to the one-year risk.

For a horizon ``h`` inside the outcome window ``W`` the probability of a recurrence by ``h``
factorises exactly::

    P(T <= h | x) = P(T <= W | x) * P(T <= h | T <= W, x)

The first factor is the calibrated one-year risk of :class:`~models.estimators.RiskModel`.
The second, the *shape*, is when a recurrence falls given that it falls within the window;
it runs from 0 to 1, never decreases, and is 1 at ``W``. So a curve built as ``risk *
shape`` is non-decreasing in the horizon and equals ``risk`` at ``W`` by construction:
the calibration and the interval of the one-year risk carry over unchanged, and only the
timing is learned here.

The shape comes from a piecewise-exponential hazard model (Friedman 1982, Ann Stat
10:101): time after return to sport is cut into bins (weekly to 12 weeks, coarser after;
``configs/train.yaml``, ``incidence.bin_edges``), each episode's hazard is constant within a
bin, and each episode contributes one row per bin it was at risk in, with the days it was
at risk there as exposure and 1 if it recurred there. The Poisson likelihood of those rows
with ``log(exposure)`` as offset *is* the exact likelihood of the censored recurrence
times under piecewise-constant hazards, so an athlete lost to follow-up on day 40
contributes exposure up to day 40 and no more, and a bin partly covered counts for the
days it covered (a discrete-time logistic hazard would have to drop or fully count such a
bin). This is the "piecewise-exponential additive model" route to machine-learning
survival analysis (Bender et al. 2021, ECML PKDD, "A general machine learning framework
for survival analysis"): LightGBM's Poisson objective with the offset as ``init_score``.

Small cohorts: the offset also holds the cohort's pooled hazard of each bin (events over
exposure, the maximum-likelihood time-only model, whose curve is the Kaplan–Meier shape up
to the binning), and the trees only learn deviations from it. The number of boosting rounds
is chosen by grouped cross-validation (an athlete's episodes stay in one fold) on the
held-out Poisson deviance, starting from zero rounds: when the data cannot show that
timing depends on the features, the fit stays at the cohort's shape. Time since return
(the bin's first day) is a feature, so trees with more than one split can learn
covariate-dependent timing (non-proportional hazards), not only covariate-dependent level.
Hazards are positive, so every curve is finite and monotone at any sample size.

Intervals (:func:`cumulative_incidence`): the one-year risk's bootstrap interval
(:meth:`RiskModel.predict_interval`) times the shape. They carry the estimation
uncertainty of the one-year level, not of the timing: at a few hundred episodes the
early horizons' intervals are too narrow by the shape's own sampling error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupKFold
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from models.prep import FeaturePrep

# A bin with no recurrence has a pooled hazard of zero, whose log cannot be an offset; it is
# floored at this fraction of the cohort's mean hazard, which adds well under 0.1% to any
# cumulative incidence while leaving the trees a finite starting point.
_HAZARD_FLOOR = 1e-3
# LightGBM's Poisson objective (default poisson_max_delta_step) has hessian exp(score + 0.7),
# i.e. about 2.01 x the expected count: min_sum_hessian_in_leaf in units of expected events.
_POISSON_MAX_DELTA_STEP = 0.7
# Rounds without a better held-out deviance after which a fold's boosting stops.
_PATIENCE_ROUNDS = 100
# Episodes per prediction chunk: bounds the (episodes x bins) x features matrix.
_CHUNK_EPISODES = 20_000


@dataclass(frozen=True)
class PersonPeriods:
    """One row per (episode, bin) the episode was at risk in."""

    episode: np.ndarray  # position of the episode in the input
    bin: np.ndarray  # index of the bin
    exposure: np.ndarray  # days at risk in the bin (> 0)
    event: np.ndarray  # 1.0 if the recurrence fell in this bin


def check_follow_up(followed: np.ndarray, event: np.ndarray) -> None:
    """Raise ValueError, naming the row, for follow-up that cannot be right."""
    if followed.shape != event.shape or followed.ndim != 1:
        raise ValueError(
            "followed_days and event_days must be 1-D of equal length "
            f"(got {followed.shape} and {event.shape})"
        )
    bad = np.flatnonzero(~np.isfinite(followed) | (followed < 0))
    if bad.size:
        raise ValueError(
            f"followed_days must be a non-negative number; row {bad[0]} has {followed[bad[0]]}"
        )
    bad = np.flatnonzero(~np.isnan(event) & ((event <= 0) | (event > followed)))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"event_days must lie in (0, followed_days] (a recurrence comes after the "
            f"prediction time); row {i} has event_days={event[i]} and followed_days={followed[i]}"
        )


def _check_edges(bin_edges: Sequence[float], horizons: Sequence[float]) -> np.ndarray:
    edges = np.asarray(bin_edges, dtype=np.float64)
    hz = np.asarray(horizons, dtype=np.float64)
    for name, values in (("bin_edges", edges), ("horizons", hz)):
        if values.ndim != 1 or values.size == 0 or values[0] <= 0 or np.any(np.diff(values) <= 0):
            raise ValueError(f"{name} must be positive days in increasing order (got {values})")
    if not np.isin(hz, edges).all():
        raise ValueError(f"every horizon must be a bin edge (horizons {hz}, edges {edges})")
    if edges[-1] != hz[-1]:
        raise ValueError(f"the last bin edge {edges[-1]} must be the last horizon {hz[-1]}")
    return edges


def person_periods(
    followed_days: np.ndarray | pd.Series,
    event_days: np.ndarray | pd.Series,
    bin_edges: Sequence[float],
) -> PersonPeriods:
    """Split each episode's time at risk over the bins ``(0, e1], (e1, e2], ...``.

    An episode is at risk from day 0 until its recurrence (if it recurred by the last
    edge) or the end of its follow-up, whichever comes first, and at most until the last
    edge. A recurrence on day ``t`` falls in the bin whose right edge is the first ``>= t``.

    Raises:
        ValueError: inconsistent follow-up, named by row.
    """
    followed = np.asarray(followed_days, dtype=np.float64)
    event = np.asarray(event_days, dtype=np.float64)
    check_follow_up(followed, event)
    edges = np.asarray(bin_edges, dtype=np.float64)
    starts = np.r_[0.0, edges[:-1]]
    recurred = ~np.isnan(event) & (event <= edges[-1])
    stop = np.where(recurred, event, np.minimum(followed, edges[-1]))
    exposure = np.clip(np.minimum(stop[:, None], edges) - starts, 0.0, None)
    events = np.zeros_like(exposure)
    rows = np.flatnonzero(recurred)
    events[rows, np.searchsorted(edges, event[rows], side="left")] = 1.0
    episode, bin_ = np.nonzero(exposure > 0)
    return PersonPeriods(
        episode=episode, bin=bin_, exposure=exposure[episode, bin_], event=events[episode, bin_]
    )


def pooled_hazard(periods: PersonPeriods, n_bins: int) -> np.ndarray:
    """Per-day hazard of each bin for the whole cohort: recurrences over days at risk.

    The maximum-likelihood piecewise-constant hazard without covariates. A bin nobody was
    followed into takes the hazard of the last bin with exposure.

    Raises:
        ValueError: no recurrence at all (there is no timing to estimate).
    """
    events = np.bincount(periods.bin, weights=periods.event, minlength=n_bins)
    exposure = np.bincount(periods.bin, weights=periods.exposure, minlength=n_bins)
    if events.sum() == 0:
        raise ValueError("no recurrence within the window: the timing of recurrences is unknown")
    hazard = np.divide(events, exposure, out=np.full(n_bins, np.nan), where=exposure > 0)
    hazard = pd.Series(hazard).ffill().to_numpy()  # exposure ends with follow-up, not before
    return hazard


def shape_from_hazard(hazard: np.ndarray, bin_edges: Sequence[float], horizons: Sequence[float]):
    """``F(h) / F(W)`` at each horizon from per-day hazards ``(n, bins)`` or ``(bins,)``.

    ``F(t) = 1 - exp(-H(t))`` with ``H`` the integrated piecewise-constant hazard; the last
    horizon's value is exactly 1.
    """
    edges = np.asarray(bin_edges, dtype=np.float64)
    widths = np.diff(np.r_[0.0, edges])
    cumulative = np.cumsum(np.asarray(hazard) * widths, axis=-1)
    incidence = -np.expm1(-cumulative)
    at = np.searchsorted(edges, np.asarray(horizons, dtype=np.float64))
    shape = incidence[..., at] / incidence[..., -1:]
    shape[..., -1] = 1.0
    return shape


class TimingModel(BaseEstimator):
    """When a recurrence falls, given that it falls within the window (module docstring).

    Args:
        bin_edges: right ends of the hazard bins, days; the last is the outcome window
            (``IncidenceConfig.bin_edges`` in ``pipeline/config.py``, sources there).
        horizons: days at which shapes are reported; each a bin edge, the last the window
            (``IncidenceConfig.horizons``).
        max_rounds: most boosting rounds tried by cross-validation (0: the cohort's shape).
        learning_rate, num_leaves, reg_lambda: LightGBM's.
        min_leaf_events: about how many expected recurrences a leaf needs.
        cv: grouped folds for choosing the number of rounds.
        categorical: features to treat as categories (text columns always are).
        random_state: seed for folds and LightGBM.

    Fitted attributes: ``prep_``, ``feature_names_in_``, ``pooled_hazard_`` (per day, one
    per bin), ``cv_deviance_`` (held-out Poisson deviance by number of rounds, from 0),
    ``n_rounds_``, ``booster_`` (``None`` when zero rounds won).
    """

    def __init__(
        self,
        bin_edges: Sequence[int],
        horizons: Sequence[int],
        max_rounds: int = 400,
        learning_rate: float = 0.05,
        num_leaves: int = 4,
        min_leaf_events: float = 10.0,
        reg_lambda: float = 10.0,
        cv: int = 5,
        categorical: Sequence[str] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.bin_edges = bin_edges
        self.horizons = horizons
        self.max_rounds = max_rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_leaf_events = min_leaf_events
        self.reg_lambda = reg_lambda
        self.cv = cv
        self.categorical = categorical
        self.random_state = random_state

    @classmethod
    def from_config(cls, config, categorical=None, random_state=None) -> TimingModel:
        """An unfitted model from ``pipeline.config.IncidenceConfig`` (duck-typed here:
        ``models/`` does not import ``pipeline/``)."""
        return cls(
            bin_edges=tuple(config.bin_edges),
            horizons=tuple(config.horizons),
            max_rounds=config.max_rounds,
            learning_rate=config.learning_rate,
            num_leaves=config.num_leaves,
            min_leaf_events=config.min_leaf_events,
            reg_lambda=config.reg_lambda,
            cv=config.cv_folds,
            categorical=categorical,
            random_state=random_state,
        )

    # ---- fitting -------------------------------------------------------------------

    def fit(
        self,
        X: pd.DataFrame,
        followed_days: np.ndarray | pd.Series,
        event_days: np.ndarray | pd.Series,
        groups: np.ndarray | pd.Series | None = None,
    ) -> TimingModel:
        """Fit the pooled hazard and the boosted deviations from it.

        Args:
            X: features, one row per episode (the risk model's feature frame).
            followed_days: days from prediction time to the end of follow-up.
            event_days: days from prediction time to the recurrence, NaN if none in the
                window (the episodes frame's columns of the same names).
            groups: athlete ids for the folds; ``None``: each episode its own athlete.

        Raises:
            ValueError: inconsistent inputs (named by row), or no recurrence at all.
        """
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of features, got {type(X).__name__}")
        edges = _check_edges(self.bin_edges, self.horizons)
        if not (isinstance(self.cv, int) and self.cv >= 2):
            raise ValueError(f"cv must be an integer >= 2 (got {self.cv!r})")
        if not (isinstance(self.max_rounds, int) and self.max_rounds >= 0):
            raise ValueError(f"max_rounds must be a non-negative integer (got {self.max_rounds!r})")
        followed = np.asarray(followed_days, dtype=np.float64)
        if followed.shape != (len(X),):
            raise ValueError(f"followed_days has shape {followed.shape}, expected ({len(X)},)")
        g = np.arange(len(X)) if groups is None else np.asarray(groups)
        if g.shape != (len(X),):
            raise ValueError(f"groups has shape {g.shape}, expected ({len(X)},)")
        periods = person_periods(followed, event_days, edges)

        self.prep_ = FeaturePrep().fit(X, list(self.categorical or ()))
        self.feature_names_in_ = self.prep_.feature_names_
        self.n_features_in_ = len(self.feature_names_in_)
        self.pooled_hazard_ = pooled_hazard(periods, len(edges))
        matrix = self._design(self.prep_.transform(X), periods.episode, periods.bin)

        rng = check_random_state(self.random_state)
        self._seed = int(rng.randint(np.iinfo(np.int32).max))
        self.cv_deviance_ = self._cross_validated_deviance(matrix, periods, g[periods.episode], rng)
        self.n_rounds_ = int(np.argmin(self.cv_deviance_))
        self.booster_ = None
        if self.n_rounds_ > 0:
            offset = _offset(periods, self.pooled_hazard_)
            self.booster_ = self._boost(matrix, periods.event, offset, self.n_rounds_)
        return self

    def _design(self, m: np.ndarray, episode: np.ndarray, bin_: np.ndarray) -> np.ndarray:
        """Features of each row's episode and, last, the first day of the row's bin."""
        starts = np.r_[0.0, np.asarray(self.bin_edges, dtype=np.float64)[:-1]]
        return np.column_stack([m[episode], starts[bin_]])

    def _params(self) -> dict:
        return {
            "objective": "poisson",
            "poisson_max_delta_step": _POISSON_MAX_DELTA_STEP,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "reg_lambda": self.reg_lambda,
            "min_sum_hessian_in_leaf": self.min_leaf_events * np.exp(_POISSON_MAX_DELTA_STEP),
            "min_child_samples": 1,
            "seed": self._seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbosity": -1,
        }

    def _dataset(self, matrix: np.ndarray, event: np.ndarray, offset: np.ndarray) -> lgb.Dataset:
        return lgb.Dataset(
            matrix,
            label=event,
            init_score=offset,
            feature_name=[f"f{j}" for j in range(matrix.shape[1])],
            categorical_feature=self.prep_.categorical_index_,
            free_raw_data=True,
            params={"verbosity": -1},
        )

    def _boost(
        self, matrix: np.ndarray, event: np.ndarray, offset: np.ndarray, rounds: int
    ) -> lgb.Booster:
        return lgb.train(self._params(), self._dataset(matrix, event, offset), rounds)

    def _held_out_path(
        self,
        train: tuple[np.ndarray, np.ndarray, np.ndarray],
        valid: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Held-out Poisson deviance after 0, 1, ... rounds, until ``max_rounds`` or until
        ``_PATIENCE_ROUNDS`` rounds without improvement."""
        train_set = self._dataset(*train)
        vm, ve, vo = valid
        valid_set = lgb.Dataset(vm, label=ve, init_score=vo, reference=train_set)
        record: dict = {}
        lgb.train(
            {**self._params(), "metric": "poisson"},
            train_set,
            num_boost_round=self.max_rounds,
            valid_sets=[valid_set],
            valid_names=["held_out"],
            callbacks=[
                lgb.record_evaluation(record),
                lgb.early_stopping(_PATIENCE_ROUNDS, first_metric_only=True, verbose=False),
            ],
        )
        # LightGBM's "poisson" metric is the row mean of exp(raw) - y * raw (init_score
        # included), i.e. half the deviance below divided by the rows.
        per_round = 2.0 * len(ve) * np.asarray(record["held_out"]["poisson"])
        return np.r_[_poisson_deviance(ve, vo), per_round]

    def _cross_validated_deviance(
        self,
        matrix: np.ndarray,
        periods: PersonPeriods,
        groups: np.ndarray,
        rng: np.random.RandomState,
    ) -> np.ndarray:
        if self.max_rounds == 0:
            return np.zeros(1)
        n_groups = len(np.unique(groups))
        if n_groups < self.cv:
            raise ValueError(f"cv={self.cv} folds need at least {self.cv} athletes, got {n_groups}")
        folds = GroupKFold(
            n_splits=self.cv, shuffle=True, random_state=int(rng.randint(np.iinfo(np.int32).max))
        )
        n_bins = len(self.bin_edges)
        paths = []
        for train, test in folds.split(matrix, groups=groups):
            train_periods = _take(periods, train)
            try:
                hazard = pooled_hazard(train_periods, n_bins)
            except ValueError:
                hazard = self.pooled_hazard_  # no recurrence in this fold's training part
            paths.append(
                self._held_out_path(
                    (matrix[train], periods.event[train], _offset(train_periods, hazard)),
                    (matrix[test], periods.event[test], _offset(_take(periods, test), hazard)),
                )
            )
        # Folds stop early at different rounds; all ran at least this far, and every fold
        # had stopped improving past its own best before stopping.
        common = min(len(path) for path in paths)
        return np.sum([path[:common] for path in paths], axis=0)

    # ---- prediction ----------------------------------------------------------------

    def predict_hazard(self, X: pd.DataFrame) -> np.ndarray:
        """Per-day hazard of each bin, ``(episodes, bins)``."""
        check_is_fitted(self, "pooled_hazard_")
        n_bins = len(self.bin_edges)
        if self.booster_ is None:
            return np.tile(self.pooled_hazard_, (len(X), 1))
        m = self.prep_.transform(X)
        floor = _floored(self.pooled_hazard_)
        out = np.empty((len(X), n_bins))
        for start in range(0, len(X), _CHUNK_EPISODES):
            chunk = m[start : start + _CHUNK_EPISODES]
            episode = np.repeat(np.arange(len(chunk)), n_bins)
            bin_ = np.tile(np.arange(n_bins), len(chunk))
            raw = self.booster_.predict(self._design(chunk, episode, bin_), raw_score=True)
            out[start : start + len(chunk)] = floor * np.exp(raw.reshape(len(chunk), n_bins))
        return out

    def predict_shape(self, X: pd.DataFrame) -> np.ndarray:
        """``P(T <= h | T <= W, x)`` at each horizon, ``(episodes, horizons)``: from 0 to 1,
        non-decreasing, exactly 1 at the last horizon."""
        return shape_from_hazard(self.predict_hazard(X), self.bin_edges, self.horizons)

    @property
    def cohort_shape_(self) -> np.ndarray:
        """The pooled (time-only) shape at each horizon: the fallback the fit starts from."""
        check_is_fitted(self, "pooled_hazard_")
        return shape_from_hazard(_floored(self.pooled_hazard_), self.bin_edges, self.horizons)


def _floored(hazard: np.ndarray) -> np.ndarray:
    return np.maximum(hazard, _HAZARD_FLOOR * hazard.mean())


def _offset(periods: PersonPeriods, hazard: np.ndarray) -> np.ndarray:
    """log(expected recurrences) of each row under the pooled hazard."""
    return np.log(periods.exposure) + np.log(_floored(hazard))[periods.bin]


def _take(periods: PersonPeriods, rows: np.ndarray) -> PersonPeriods:
    return PersonPeriods(
        episode=periods.episode[rows],
        bin=periods.bin[rows],
        exposure=periods.exposure[rows],
        event=periods.event[rows],
    )


def _poisson_deviance(event: np.ndarray, raw: np.ndarray) -> float:
    """Poisson deviance (without the saturated term, which does not depend on the fit)."""
    return float(2.0 * np.sum(np.exp(raw) - event * raw))


@dataclass(frozen=True)
class CumulativeIncidence:
    """Risk of a recurrence by each horizon, per episode, and its interval.

    ``risk``, ``low`` and ``high`` are ``(episodes, horizons)``; ``low``/``high`` are
    ``None`` when no interval of the one-year risk was given.
    """

    horizons: tuple[int, ...]
    risk: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None

    def frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """Columns ``risk_{h}d`` (and ``risk_{h}d_low``, ``risk_{h}d_high``) per horizon."""
        columns: dict[str, np.ndarray] = {}
        for k, h in enumerate(self.horizons):
            columns[f"risk_{h}d"] = self.risk[:, k]
            if self.low is not None and self.high is not None:
                columns[f"risk_{h}d_low"] = self.low[:, k]
                columns[f"risk_{h}d_high"] = self.high[:, k]
        return pd.DataFrame(columns, index=index)


def cumulative_incidence(
    risk: np.ndarray,
    shape: np.ndarray,
    horizons: Sequence[int],
    risk_low: np.ndarray | None = None,
    risk_high: np.ndarray | None = None,
) -> CumulativeIncidence:
    """The one-year risk spread over the horizons by each episode's shape.

    ``risk * shape``: non-decreasing in the horizon when the shape is, and equal to
    ``risk`` at the last horizon. The interval is the one-year interval times the shape
    (the one-year level's uncertainty only; module docstring).

    Raises:
        ValueError: shapes that do not match, a risk outside [0, 1] or a shape that is not
            a non-decreasing curve ending at 1 (named by row).
    """
    risk = np.asarray(risk, dtype=np.float64)
    shape = np.asarray(shape, dtype=np.float64)
    horizons = tuple(int(h) for h in horizons)
    if shape.shape != (len(risk), len(horizons)):
        raise ValueError(f"shape is {shape.shape}, expected ({len(risk)}, {len(horizons)})")
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
    low = high = None
    if (risk_low is None) != (risk_high is None):
        raise ValueError("give both risk_low and risk_high, or neither")
    if risk_low is not None:
        low = np.asarray(risk_low, dtype=np.float64)[:, None] * shape
        high = np.asarray(risk_high, dtype=np.float64)[:, None] * shape
    return CumulativeIncidence(horizons, risk[:, None] * shape, low, high)
