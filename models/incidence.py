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

The shape is learned from the recurrences alone, as the distribution of the recurrence
time among episodes that recur within the window: a discrete-time hazard on bins of days
(weekly to 12 weeks, coarser after; ``configs/train.yaml``, ``incidence.bin_edges``),
``q_j(x) = P(T in bin j | T after bin j starts, T <= W, x)``, fitted as a weighted binary
classification on one row per (recurrence, bin reached) with the bin's first day as a
feature (Singer & Willett 1993, J Educ Stat 18:155, for the person-period form). The last
bin's ``q`` is 1, so the shape reaches exactly 1 at ``W``, and ``0 < q < 1`` elsewhere makes
it rise monotonically.

Censoring: a recurrence is seen only if follow-up lasted until it, so late recurrences are
under-represented among those seen. Each recurrence is weighted by the inverse probability
of having been followed until it, ``1 / G(t-)`` (:func:`models.censoring.ipcw_weights`;
training passes none, so Kaplan–Meier's over all episodes, the export date a censoring time
like any other: ``pipeline.train.fit_timing``). An athlete lost on day 40 thus counts in the
censoring risk set for 40 days and no more, and raises the weight of the recurrences seen
after day 40, the ones that athlete could have added. Without covariates this weighted
distribution of recurrence times *is* the Kaplan–Meier estimate (Satten & Datta 2001, Am
Stat 55:207, "The Kaplan–Meier estimator as an inverse-probability-of-censoring weighted
average"), so the fit starts from the cohort's Kaplan–Meier shape, the peer of
:func:`models.kaplan_meier.spread_by_cohort_shape`.

Why not a hazard model of all episodes (a piecewise-exponential Poisson model, the classic
route) turned into ``F(h) / F(W)``: trees fitted to the whole hazard spend their splits on the
one-year *level*, which the risk model already gives, and a hazard scaled up by a level
effect saturates ``F`` earlier, so every high-risk episode gets an earlier shape whether or
not timing depends on anything. On worlds where it does not (``bench/incidence.py``) that
made the curves at 28 and 90 days worse than the cohort's single shape at every size, 18 x
worse at 10,000 episodes. Conditioning on recurrence keeps the level out of the shape.

Linear effects: the few features named in ``linear_features`` (configured: the clinic's
markers of a rushed return) shift every bin's log-odds by ``b0 + z @ b``, ``z`` the
features standardised (a blank read as the median), the pooled ``q_j`` as offset: a
discrete-time hazard close to proportional hazards, so a Weibull whose time scale moves
with the features is fitted nearly exactly. An L2-penalised weighted logistic regression
(glum); the penalty is chosen by grouped cross-validation on the held-out weighted log loss
among ``linear_penalties``, and kept only if its gain over no linear effect is more than
one standard error between folds (the rule of the trees' rounds below). On the simulator's
cohorts of 2,000 athletes (``bench/curves.py``, ~800 recurrences) three linear effects
gained 4.3 (standard error 1.9) and 9.6 (4.2) with timing that depends on the episode, and
lost with timing that does not; trees alone kept zero rounds there, additive effects of
three weak features being hard for shallow trees to find.

Small cohorts: the trees learn deviations from the cohort's shape (the pooled ``q_j``, plus
the linear effects if kept, as ``init_score``), and the number of boosting rounds is chosen
by grouped cross-validation (an athlete's episodes stay in one fold) on the held-out
weighted log loss, starting from zero rounds: unless the optimum's gain over zero rounds is
more than one standard error (between folds), no trees are kept; with no linear effect
either, the fit stays at the cohort's Kaplan–Meier shape, so when the recurrences cannot
show that timing depends on the features the curve is the cohort's. Every curve is finite
and monotone at any size.

Intervals (:func:`models.curve.cumulative_incidence`): the one-year risk's bootstrap interval
(:meth:`RiskModel.predict_interval`) carries the level's estimation uncertainty; the
timing's comes from refits on athletes resampled with replacement
(:meth:`TimingModel.predict_shape_interval`, penalty and rounds held at those chosen), and
the two are combined on the log scale as independent errors. Neither carries the uncertainty
of choosing the penalty or the number of rounds, nor the outcome's own randomness; with the
timing's interval left out, the early horizons' intervals are too narrow at a few hundred
episodes by the shape's sampling error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from glum import GeneralizedLinearRegressor
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupKFold
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from models.censoring import ipcw_weights
from models.curve import (
    Q_CLIP,
    FixedTiming,
    LinearShapeTiming,
    LinearTiming,
    Standardised,
    centred_interval,
    linear_timing,
    shape_from_timing,
)
from models.prep import FeaturePrep, check_weights

# Rounds without a better held-out loss after which a fold's boosting stops.
_PATIENCE_ROUNDS = 100
# Episodes per prediction chunk: bounds the (episodes x bins) x features matrix.
_CHUNK_EPISODES = 20_000


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
    if edges.size < 2:
        raise ValueError("bin_edges needs at least two bins")
    return edges


@dataclass(frozen=True)
class RecurrencePeriods:
    """One row per (recurrence, bin it reached), the last bin left out (its ``q`` is 1)."""

    episode: np.ndarray  # position of the episode in the input
    bin: np.ndarray  # index of the bin
    event: np.ndarray  # 1.0 in the bin the recurrence fell in
    weight: np.ndarray  # the episode's inverse probability of censoring weight

    def take(self, rows: np.ndarray) -> RecurrencePeriods:
        return RecurrencePeriods(
            self.episode[rows], self.bin[rows], self.event[rows], self.weight[rows]
        )


def recurrence_periods(
    event_days: np.ndarray, weights: np.ndarray, bin_edges: Sequence[float]
) -> RecurrencePeriods:
    """Person-period rows of the recurrences within the last edge that have a weight.

    A recurrence on day ``t`` falls in the bin whose right edge is the first ``>= t``; it
    contributes a 0 row for each earlier bin and a 1 row for its own (none for the last
    bin, where every remaining recurrence falls by definition).
    """
    edges = np.asarray(bin_edges, dtype=np.float64)
    event = np.asarray(event_days, dtype=np.float64)
    recurred = np.flatnonzero(~np.isnan(event) & (event <= edges[-1]) & (weights > 0))
    event_bin = np.searchsorted(edges, event[recurred], side="left")
    reps = np.minimum(event_bin, len(edges) - 2) + 1
    episode = np.repeat(recurred, reps)
    bin_ = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    hit = (bin_ == np.repeat(event_bin, reps)).astype(np.float64)
    return RecurrencePeriods(episode, bin_, hit, weights[episode])


def pooled_timing(periods: RecurrencePeriods, n_bins: int) -> np.ndarray:
    """Weighted share of the recurrences still to come that fall in each bin (``q_j``).

    One value per bin but the last. A bin no weighted recurrence reached gets 1: the
    recurrences were all used up before it.
    """
    hits = np.bincount(periods.bin, weights=periods.weight * periods.event, minlength=n_bins - 1)
    reached = np.bincount(periods.bin, weights=periods.weight, minlength=n_bins - 1)
    return np.divide(hits, reached, out=np.ones(n_bins - 1), where=reached > 0)


class TimingModel(BaseEstimator):
    """When a recurrence falls, given that it falls within the window (module docstring).

    Args:
        bin_edges: right ends of the hazard bins, days; the last is the outcome window
            (``IncidenceConfig.bin_edges`` in ``pipeline/config.py``, sources there).
        horizons: days at which shapes are reported; each a bin edge, the last the window
            (``IncidenceConfig.horizons``).
        max_rounds: most boosting rounds tried by cross-validation (0: the cohort's shape).
        learning_rate, num_leaves, reg_lambda: LightGBM's.
        min_leaf_events: about how many (weighted) recurrences a leaf needs.
        linear_features: numeric or boolean features whose linear effect on every bin's
            log-odds of the hazard is fitted before the trees (empty: none); each a column
            of ``X``.
        linear_penalties: L2 strengths tried for the linear effects (glum's ``alpha``, per
            unit of weight, on standardised features); the cross-validated best of these
            is kept if clearly better than no linear effect (as the trees' rounds).
        cv: grouped folds for choosing the penalty and the number of rounds.
        n_bootstrap: refits on athletes resampled with replacement, for
            :meth:`predict_shape_interval` (0: none).
        categorical: features to treat as categories (text columns always are).
        random_state: seed for folds and LightGBM.

    Fitted attributes: ``prep_``, ``feature_names_in_``, ``n_features_in_``,
    ``pooled_timing_`` (the cohort's ``q``, one per bin but the last), ``linear_``
    (:class:`LinearTiming`, ``None`` when no linear effect was kept), ``linear_penalty_``
    (the penalty kept, ``None`` for none), ``linear_cv_loss_`` (held-out weighted log loss
    summed over folds: no linear effect, then each penalty), ``cv_loss_``
    (held-out weighted log loss summed over folds, by number of rounds from 0),
    ``n_rounds_`` (the cross-validated optimum if clear of noise, else 0), ``booster_``
    (``None`` for zero rounds), ``members_`` (the bootstrap refits' pooled timing, linear
    effects and booster).
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
        linear_features: Sequence[str] = (),
        linear_penalties: Sequence[float] = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003),
        cv: int = 5,
        n_bootstrap: int = 20,
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
        self.linear_features = linear_features
        self.linear_penalties = linear_penalties
        self.cv = cv
        self.n_bootstrap = n_bootstrap
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
            linear_features=tuple(config.linear_features),
            linear_penalties=tuple(config.linear_penalties),
            cv=config.cv_folds,
            n_bootstrap=config.n_bootstrap,
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
        sample_weight: np.ndarray | pd.Series | None = None,
    ) -> TimingModel:
        """Fit the cohort's timing and the boosted deviations from it.

        Args:
            X: features, one row per episode (the risk model's feature frame).
            followed_days: days from prediction time to the end of follow-up.
            event_days: days from prediction time to the recurrence, NaN if none in the
                window (the episodes frame's columns of the same names).
            groups: athlete ids for the folds; ``None``: each episode its own athlete.
            sample_weight: inverse probability of censoring weights (only recurrences'
                are read), e.g. the ones the risk model was trained with. ``None``:
                Kaplan–Meier censoring weights, untruncated, so that the fit without
                covariates is exactly the Kaplan–Meier shape.

        Raises:
            ValueError: inconsistent inputs (named by row), or no recurrence at all.
        """
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of features, got {type(X).__name__}")
        edges = _check_edges(self.bin_edges, self.horizons)
        if not (isinstance(self.cv, int) and self.cv >= 2):
            raise ValueError(f"cv must be an integer >= 2 (got {self.cv!r})")
        if not (isinstance(self.n_bootstrap, int) and self.n_bootstrap >= 0):
            raise ValueError(
                f"n_bootstrap must be a non-negative integer (got {self.n_bootstrap!r})"
            )
        if not (isinstance(self.max_rounds, int) and self.max_rounds >= 0):
            raise ValueError(f"max_rounds must be a non-negative integer (got {self.max_rounds!r})")
        followed = np.asarray(followed_days, dtype=np.float64)
        event = np.asarray(event_days, dtype=np.float64)
        check_follow_up(followed, event)
        n = len(X)
        if followed.shape != (n,):
            raise ValueError(f"followed_days has shape {followed.shape}, expected ({n},)")
        g = np.arange(n) if groups is None else np.asarray(groups)
        if g.shape != (n,):
            raise ValueError(f"groups has shape {g.shape}, expected ({n},)")
        if sample_weight is None:
            weights = ipcw_weights(followed, event, edges[-1], method="km", max_weight=np.inf)
        else:
            weights = check_weights(sample_weight, n)
        periods = recurrence_periods(event, weights, edges)
        if periods.event.sum() == 0:
            raise ValueError(
                "no recurrence within the window: the timing of recurrences is unknown"
            )

        self.prep_ = FeaturePrep().fit(X, list(self.categorical or ()))
        self.feature_names_in_ = self.prep_.feature_names_
        self.n_features_in_ = len(self.feature_names_in_)
        self.pooled_timing_ = pooled_timing(periods, len(edges))
        m = self.prep_.transform(X)
        matrix = self._design(m, periods.episode, periods.bin)
        z = self._fit_linear_design(m)

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        folds = self._folds(g[periods.episode], rng, linear=z is not None)
        linear_losses = self._cross_validated_linear(z, periods, folds)
        self.linear_cv_loss_ = linear_losses.sum(axis=0)
        choice = _best_if_clear_of_noise(linear_losses)
        self.linear_penalty_ = None if choice == 0 else float(self.linear_penalties[choice - 1])
        self.linear_ = None
        if self.linear_penalty_ is not None:
            self.linear_ = _fit_linear(z, periods, self.pooled_timing_, self.linear_penalty_)
        fold_losses = self._cross_validated_loss(matrix, z, periods, folds, seed)
        self.cv_loss_ = fold_losses.sum(axis=0)
        self.n_rounds_ = _rounds_if_clear_of_noise(fold_losses)
        self.booster_, self.members_ = None, []
        if self.n_rounds_ > 0:
            offset = self._offset(z, periods, self.pooled_timing_, self.linear_)
            self.booster_ = self._refit(matrix, periods, offset, seed)
        labels, index = np.unique(g[periods.episode], return_inverse=True)
        for _ in range(self.n_bootstrap):
            # Resampling athletes with replacement = weighting each row by how many times
            # its athlete was drawn; the number of rounds stays the one chosen above.
            times = np.bincount(rng.randint(len(labels), size=len(labels)), minlength=len(labels))
            drawn = times[index] > 0
            member = periods.take(np.flatnonzero(drawn))
            member = RecurrencePeriods(
                member.episode, member.bin, member.event, member.weight * times[index][drawn]
            )
            q = pooled_timing(member, len(edges))
            linear = booster = None
            if self.linear_penalty_ is not None:
                linear = _fit_linear(z, member, q, self.linear_penalty_)
            if self.n_rounds_ > 0:
                offset = self._offset(z, member, q, linear)
                booster = self._refit(matrix[drawn], member, offset, seed)
            self.members_.append((q, linear, booster))
        return self

    def _refit(
        self, matrix: np.ndarray, periods: RecurrencePeriods, offset: np.ndarray, seed: int
    ) -> lgb.Booster:
        data = self._dataset(matrix, periods, offset)
        return lgb.train(self._params(seed), data, num_boost_round=self.n_rounds_)

    # ---- the linear effects --------------------------------------------------------

    def _fit_linear_design(self, m: np.ndarray) -> np.ndarray | None:
        """Fit the standardisation of the linear timing features (a blank read as the
        median; an indicator of each blank doubled the parameters and lost the effect in
        cross-validation at 2,000 simulated athletes) and return their design for ``m``;
        ``None`` if none."""
        self.linear_design_ = None
        if not self.linear_features:
            return None
        names = list(self.feature_names_in_)
        unknown = [f for f in self.linear_features if f not in names]
        if unknown:
            raise ValueError(f"linear_features {unknown} are not columns of X")
        text = [f for f in self.linear_features if self.prep_.kinds_[f] == "categorical"]
        if text:
            raise ValueError(f"linear_features must be numeric or boolean; {text} are categories")
        self.linear_design_ = Standardised.fit(m, [names.index(f) for f in self.linear_features])
        return self._linear_z(m)

    def _linear_z(self, m: np.ndarray) -> np.ndarray | None:
        design = getattr(self, "linear_design_", None)  # None, or absent in older pickles
        return None if design is None else design.transform(m)

    def _offset(
        self,
        z: np.ndarray | None,
        periods: RecurrencePeriods,
        q: np.ndarray,
        linear: LinearTiming | None,
    ) -> np.ndarray:
        """Each row's log-odds before the trees: the pooled ``q`` plus the linear effects."""
        offset = _offset(periods, q)
        if linear is not None:
            offset = offset + linear.logit(z[periods.episode])
        return offset

    def _folds(
        self, groups: np.ndarray, rng: np.random.RandomState, linear: bool
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Grouped folds of the person-period rows (an athlete's in one fold); none when
        there is nothing to choose or fewer athletes with a recurrence than folds."""
        if (self.max_rounds == 0 and not linear) or len(np.unique(groups)) < self.cv:
            return []
        folds = GroupKFold(
            n_splits=self.cv, shuffle=True, random_state=int(rng.randint(np.iinfo(np.int32).max))
        )
        return list(folds.split(groups, groups=groups))

    def _cross_validated_linear(
        self,
        z: np.ndarray | None,
        periods: RecurrencePeriods,
        folds: list[tuple[np.ndarray, np.ndarray]],
    ) -> np.ndarray:
        """``(folds, 1 + penalties)``: each fold's held-out loss with no linear effect,
        then with the linear effects at each penalty (``(1, 1)`` zeros: nothing to try)."""
        if z is None or not folds:
            return np.zeros((1, 1))
        n_bins = len(self.bin_edges)
        losses = np.empty((len(folds), 1 + len(self.linear_penalties)))
        for f, (train, test) in enumerate(folds):
            train_periods, test_periods = periods.take(train), periods.take(test)
            q = pooled_timing(train_periods, n_bins)
            losses[f, 0] = _log_loss(test_periods, _offset(test_periods, q))
            for k, alpha in enumerate(self.linear_penalties):
                linear = _fit_linear(z, train_periods, q, alpha)
                losses[f, k + 1] = _log_loss(test_periods, self._offset(z, test_periods, q, linear))
        return losses

    def _design(self, m: np.ndarray, episode: np.ndarray, bin_: np.ndarray) -> np.ndarray:
        """Features of each row's episode and, last, the first day of the row's bin."""
        starts = np.r_[0.0, np.asarray(self.bin_edges, dtype=np.float64)[:-1]]
        return np.column_stack([m[episode], starts[bin_]])

    def _params(self, seed: int) -> dict:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "reg_lambda": self.reg_lambda,
            # The binary hessian w p (1 - p) is about the weighted recurrences in the leaf
            # when p, a bin's share of the recurrences still to come, is small.
            "min_sum_hessian_in_leaf": self.min_leaf_events,
            "min_child_samples": 1,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbosity": -1,
        }

    def _dataset(
        self, matrix: np.ndarray, periods: RecurrencePeriods, offset: np.ndarray, reference=None
    ) -> lgb.Dataset:
        return lgb.Dataset(
            matrix,
            label=periods.event,
            weight=periods.weight,
            init_score=offset,
            reference=reference,
            feature_name=[f"f{j}" for j in range(matrix.shape[1])],
            categorical_feature=self.prep_.categorical_index_,
            free_raw_data=True,
            params={"verbosity": -1},
        )

    def _held_out_path(
        self,
        train: tuple[np.ndarray, RecurrencePeriods, np.ndarray],
        valid: tuple[np.ndarray, RecurrencePeriods, np.ndarray],
        seed: int,
    ) -> np.ndarray:
        """Held-out weighted log loss (summed) after 0, 1, ... rounds, until ``max_rounds``
        or until ``_PATIENCE_ROUNDS`` rounds without improvement."""
        train_set = self._dataset(*train)
        vm, vp, vo = valid
        valid_set = self._dataset(vm, vp, vo, reference=train_set)
        record: dict = {}
        lgb.train(
            {**self._params(seed), "metric": "binary_logloss"},
            train_set,
            num_boost_round=self.max_rounds,
            valid_sets=[valid_set],
            valid_names=["held_out"],
            callbacks=[
                lgb.record_evaluation(record),
                lgb.early_stopping(_PATIENCE_ROUNDS, first_metric_only=True, verbose=False),
            ],
        )
        # LightGBM's metric is the weighted mean (init_score included); sums add over folds.
        total = vp.weight.sum()
        per_round = total * np.asarray(record["held_out"]["binary_logloss"])
        return np.r_[_log_loss(vp, vo), per_round]

    def _cross_validated_loss(
        self,
        matrix: np.ndarray,
        z: np.ndarray | None,
        periods: RecurrencePeriods,
        folds: list[tuple[np.ndarray, np.ndarray]],
        seed: int,
    ) -> np.ndarray:
        """``(folds, rounds + 1)``: each fold's held-out loss by number of rounds from 0,
        the trees starting from the fold's pooled timing and linear effects (if kept)."""
        # Fewer athletes with a recurrence than folds: nothing to validate on, so the
        # cohort's shape (zero rounds).
        if self.max_rounds == 0 or not folds:
            return np.zeros((1, 1))
        n_bins = len(self.bin_edges)
        paths = []
        for train, test in folds:
            train_periods, test_periods = periods.take(train), periods.take(test)
            q = pooled_timing(train_periods, n_bins)
            linear = None
            if self.linear_penalty_ is not None:
                linear = _fit_linear(z, train_periods, q, self.linear_penalty_)
            paths.append(
                self._held_out_path(
                    (matrix[train], train_periods, self._offset(z, train_periods, q, linear)),
                    (matrix[test], test_periods, self._offset(z, test_periods, q, linear)),
                    seed,
                )
            )
        # Folds stop early at different rounds; all ran at least this far, and every fold
        # had stopped improving past its own best before stopping.
        common = min(len(path) for path in paths)
        return np.array([path[:common] for path in paths])

    # ---- prediction ----------------------------------------------------------------

    def predict_timing(self, X: pd.DataFrame) -> np.ndarray:
        """Each episode's ``q_j``, ``(episodes, bins - 1)``: the share of its recurrences
        still to come that fall in bin ``j``."""
        check_is_fitted(self, "pooled_timing_")
        m = self.prep_.transform(X)  # checks the columns even when no trees read them
        return self._timing(m, self.pooled_timing_, getattr(self, "linear_", None), self.booster_)

    def _timing(
        self,
        m: np.ndarray,
        q: np.ndarray,
        linear: LinearTiming | None,
        booster: lgb.Booster | None,
    ) -> np.ndarray:
        n_rows = len(self.bin_edges) - 1
        if booster is None and linear is None:
            return np.tile(q, (len(m), 1))
        if booster is None:
            return linear_timing(self._linear_z(m), q, linear)
        base = logit(np.clip(q, Q_CLIP, 1 - Q_CLIP))[None, :]
        if linear is not None:
            base = base + linear.logit(self._linear_z(m))[:, None]
        base = np.broadcast_to(base, (len(m), n_rows))
        out = np.empty((len(m), n_rows))
        for start in range(0, len(m), _CHUNK_EPISODES):
            chunk = m[start : start + _CHUNK_EPISODES]
            episode = np.repeat(np.arange(len(chunk)), n_rows)
            bin_ = np.tile(np.arange(n_rows), len(chunk))
            raw = booster.predict(self._design(chunk, episode, bin_), raw_score=True)
            out[start : start + len(chunk)] = expit(
                base[start : start + len(chunk)] + raw.reshape(len(chunk), n_rows)
            )
        return out

    def predict_shape_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The shape, and a bootstrap interval for it at each horizon.

        Method as :meth:`RiskModel.predict_interval`: the members' deviations from their
        mean, at the ``(1-level)/2`` and ``(1+level)/2`` percentiles, added to the shape
        (a centred percentile interval), clipped to [0, 1], made monotone in the horizon
        and containing the shape; 1 to 1 at the last horizon. It carries the sampling error
        of the timing (with the number of rounds held fixed), not the one-year level's.

        Returns:
            ``(shape, low, high)``, each ``(episodes, horizons)``.

        Raises:
            ValueError: fitted with fewer than 2 bootstrap members, or ``level`` outside (0, 1).
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1) (got {level})")
        check_is_fitted(self, "pooled_timing_")
        if len(self.members_) < 2:
            raise ValueError("no bootstrap members: fit with n_bootstrap >= 2 for intervals")
        compact = self.compact()
        if isinstance(compact, LinearShapeTiming):  # the same numbers as its compact form
            return compact.predict_shape_interval(X, level)
        m = self.prep_.transform(X)
        shape = shape_from_timing(
            self._timing(m, self.pooled_timing_, getattr(self, "linear_", None), self.booster_),
            self.bin_edges,
            self.horizons,
        )
        members = np.stack(
            [
                shape_from_timing(self._timing(m, *member), self.bin_edges, self.horizons)
                for member in map(_member, self.members_)
            ]
        )
        return (shape, *centred_interval(shape, members, level))

    def fixed(self, level: float = 0.95) -> FixedTiming | None:
        """The fit as numpy arrays when it kept the cohort's shape (no linear effect and zero
        rounds, in the bootstrap members too): the same shape and interval at ``level`` for
        every episode, to the bit. ``None`` when the shape depends on the features."""
        check_is_fitted(self, "pooled_timing_")
        members = [_member(member) for member in self.members_]
        if (
            self.booster_ is not None
            or getattr(self, "linear_", None) is not None
            or any(lin is not None or b is not None for _, lin, b in members)
        ):
            return None
        shape = self.cohort_shape_[None, :]
        if len(self.members_) < 2:
            return FixedTiming(tuple(self.horizons), tuple(shape[0]))
        members = np.stack(
            [shape_from_timing(q, self.bin_edges, self.horizons)[None, :] for q, _, _ in members]
        )
        low, high = centred_interval(shape, members, level)
        return FixedTiming(
            tuple(self.horizons), tuple(shape[0]), tuple(low[0]), tuple(high[0]), level
        )

    def predict_shape(self, X: pd.DataFrame) -> np.ndarray:
        """``P(T <= h | T <= W, x)`` at each horizon, ``(episodes, horizons)``: from 0 to 1,
        non-decreasing, exactly 1 at the last horizon."""
        return shape_from_timing(self.predict_timing(X), self.bin_edges, self.horizons)

    def compact(self, level: float = 0.95) -> FixedTiming | LinearShapeTiming | TimingModel:
        """The fit in the lightest form that gives the same numbers: :meth:`fixed` when it
        kept the cohort's shape; :class:`LinearShapeTiming` (numpy only) when its only
        deviations are linear effects, in the bootstrap members too; else the model."""
        fixed = self.fixed(level)
        if fixed is not None:
            return fixed
        members = [_member(member) for member in self.members_]
        if self.booster_ is not None or any(b is not None for _, _, b in members):
            return self
        return LinearShapeTiming(
            horizons=tuple(int(h) for h in self.horizons),
            bin_edges=tuple(float(e) for e in self.bin_edges),
            prep=self.prep_,
            design=self.linear_design_,
            fit=(self.pooled_timing_, self.linear_),
            members=tuple((q, linear) for q, linear, _ in members),
        )

    @property
    def cohort_shape_(self) -> np.ndarray:
        """The cohort's shape at each horizon (Kaplan–Meier's), where the fit starts from."""
        check_is_fitted(self, "pooled_timing_")
        return shape_from_timing(self.pooled_timing_, self.bin_edges, self.horizons)


def _best_if_clear_of_noise(fold_losses: np.ndarray) -> int:
    """The option (column of ``(folds, options)`` held-out losses) with the lowest summed
    loss, if its gain over option 0 (rounds: zero rounds; linear effects: none) is more
    than one standard error; option 0 otherwise.

    The standard error is that of the summed gain, from its spread between folds (paired,
    so the folds' different sizes and loss levels cancel), as in the one-standard-error
    rule (Breiman et al. 1984, *Classification and Regression Trees*, sec. 3.4.3). Taking
    the fewest rounds within one error of the best, that rule's usual form, underfitted
    covariate-dependent timing (bench/incidence.py: twice the optimum's error at 10,000
    episodes); the plain optimum let the trees chase noise at 500 episodes.
    """
    gain = fold_losses - fold_losses[:, :1]
    total = gain.sum(axis=0)
    best = int(np.argmin(total))
    folds = len(fold_losses)
    if best == 0 or folds < 2:
        return 0
    se = np.sqrt(folds) * gain[:, best].std(ddof=1)
    return best if -total[best] > se else 0


# The trees' rounds: column k is k rounds.
_rounds_if_clear_of_noise = _best_if_clear_of_noise


def _member(member: tuple) -> tuple:
    """A bootstrap member as ``(q, linear, booster)`` (older fits kept ``(q, booster)``)."""
    return member if len(member) == 3 else (member[0], None, member[1])


def _fit_linear(
    z: np.ndarray, periods: RecurrencePeriods, q: np.ndarray, alpha: float
) -> LinearTiming:
    """The linear effects on every bin's log-odds, the pooled ``q`` as offset: an
    L2-penalised weighted logistic regression (glum; intercept unpenalised)."""
    glm = GeneralizedLinearRegressor(
        family="binomial",
        alpha=alpha,
        l1_ratio=0.0,
        fit_intercept=True,
        gradient_tol=1e-8,
        max_iter=200,
    )
    # One OpenMP thread: glum's threads cost more than they save on a few thousand rows
    # (models/updating.py).
    with threadpool_limits(limits=1, user_api="openmp"):
        glm.fit(
            z[periods.episode], periods.event, sample_weight=periods.weight,
            offset=_offset(periods, q),
        )  # fmt: skip
    return LinearTiming(float(glm.intercept_), np.asarray(glm.coef_, dtype=np.float64))


def _offset(periods: RecurrencePeriods, q: np.ndarray) -> np.ndarray:
    """Each row's log-odds under the pooled timing ``q``."""
    return logit(np.clip(q, Q_CLIP, 1 - Q_CLIP))[periods.bin]


def _log_loss(periods: RecurrencePeriods, raw: np.ndarray) -> float:
    """Weighted binary log loss, summed, of log-odds ``raw``."""
    p = expit(raw)
    y, w = periods.event, periods.weight
    return float(-np.sum(w * (y * np.log(p) + (1 - y) * np.log1p(-p))))
