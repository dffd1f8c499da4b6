"""The literature model: a logistic risk model built from published effect sizes, no outcomes.

A clinic that has recorded a few dozen return-to-sport episodes cannot fit a model, yet the
literature has measured the main risk factors (``configs/literature.yaml``). Each published
ratio becomes a log-odds coefficient on one term of one feature column (:func:`log_odds_effect`):
a risk ratio is converted to an odds ratio at the unexposed risk of its source population
(Zhang & Yu 1998, JAMA 280:1690), scaled to the term's unit, and its standard error read off
the published 95% CI on the log scale. ``configs/literature.yaml`` writes down every judgement.

``fit`` learns nothing from outcomes: it takes a *reference population*, a feature frame the
caller builds (the clinic's own index episodes, features only), centres every term on its mean
there, and solves the intercept so that the mean risk of that population equals the configured
baseline. A missing value takes the reference mean, so it contributes nothing: the risk of an
athlete with nothing recorded is the reference population's typical one.

The 95% interval of a risk propagates the published uncertainty: the log effects are taken as
independent normals with their published SEs (different studies, different cohorts), the
baseline as normal on the logit scale with the configured range, so the linear predictor has
variance ``se_0^2 + sum_j (z_j se_j)^2`` for centred terms ``z_j`` (exact for a linear
predictor; the re-solved intercept's dependence on the coefficients is ignored, which the
centring makes second order). ``assess`` returns the same :class:`models.compact.Assessment`
as ``RiskModel.assess``: risk, interval and per-feature contributions on the log-odds scale,
each term's coefficient times its centred value, summed per feature column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from models.compact import Assessment
from models.drift import build_reference
from models.prep import FeaturePrep

# Published intervals are 95% intervals.
# statistics.NormalDist, not scipy.stats: serving a literature or updated model (a lookup
# unpickles this module) then imports no scipy.stats, half a second of a cold start.
_Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class PublishedEffect:
    """One published effect on one term of a feature column (see configs/literature.yaml).

    Attributes:
        name: the effect's name.
        column: the feature column it reads.
        term: ``linear`` (the value clipped to ``clip``), ``at_least`` (1 when the value is at
            least ``threshold``) or ``equals`` (1 when the value equals ``level``).
        measure: ``OR`` (used as is) or ``RR`` (converted at ``unexposed_risk``).
        ratio, ci: the published ratio and its 95% CI.
        per: the term units the ratio applies to (negative: risk rises as the value falls).
        log_scale_factor: multiplies the log effect and its SE (a documented judgement).
    """

    name: str
    column: str
    term: Literal["linear", "at_least", "equals"]
    measure: Literal["OR", "RR"]
    ratio: float
    ci: tuple[float, float]
    per: float
    source: str
    clip: tuple[float, float] | None = None
    threshold: float | None = None
    level: str | bool | None = None
    unexposed_risk: float | None = None
    log_scale_factor: float = 1.0

    def values(self, column: pd.Series) -> np.ndarray:
        """The term for each row, NaN where the column is missing."""
        if self.term == "equals" and not isinstance(self.level, bool):
            text = column.astype("string")
            return (text == str(self.level)).astype("Float64").to_numpy(np.float64, na_value=np.nan)
        numbers = _as_float(column, self.column)
        if self.term == "equals":
            return np.where(np.isnan(numbers), np.nan, (numbers == float(self.level)) * 1.0)
        if self.term == "at_least":
            return np.where(np.isnan(numbers), np.nan, (numbers >= self.threshold) * 1.0)
        if self.clip is not None:
            numbers = np.clip(numbers, *self.clip)
        return numbers


def odds_ratio_from_risk_ratio(risk_ratio: float, unexposed_risk: float) -> float:
    """Zhang & Yu 1998 (JAMA 280:1690): ``OR = RR (1 - p0) / (1 - RR p0)``.

    Raises:
        ValueError: ``RR * p0 >= 1`` (the exposed risk would reach 1) or ``p0`` outside (0, 1).
    """
    if not 0 < unexposed_risk < 1:
        raise ValueError(f"unexposed_risk must be in (0, 1) (got {unexposed_risk})")
    if risk_ratio * unexposed_risk >= 1:
        raise ValueError(
            f"RR {risk_ratio} x unexposed risk {unexposed_risk} >= 1: no odds ratio exists"
        )
    return risk_ratio * (1 - unexposed_risk) / (1 - risk_ratio * unexposed_risk)


def log_odds_effect(effect: PublishedEffect) -> tuple[float, float]:
    """``(coefficient, standard error)`` per unit of the effect's term, on the log-odds scale.

    The point estimate is the (converted) odds ratio's log divided by ``per``; the SE is the
    published CI's log width over 2 x 1.96, unconverted (Zhang-Yu applied to CI bounds
    explodes near ``1 / p0``; McNutt et al. 2003), divided by ``|per|``. Both are multiplied
    by ``log_scale_factor``.
    """
    ratio = effect.ratio
    if effect.measure == "RR":
        ratio = odds_ratio_from_risk_ratio(ratio, effect.unexposed_risk)
    low, high = effect.ci
    se = (math.log(high) - math.log(low)) / (2 * _Z95)
    scale = effect.log_scale_factor / effect.per
    return math.log(ratio) * scale, se * abs(scale)


class LinearRisk:
    """What a logistic risk model serves from its ``linear_predictor`` and ``assess``: the
    risk, the interval and the contributions the pyfunc, scoring and lookups ask for."""

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Risk of a recurrence within the window, one per row."""
        return expit(self.linear_predictor(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, 2)``: probability of no recurrence, of a recurrence."""
        p = self.predict_risk(X)
        return np.column_stack([1.0 - p, p])

    def predict_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """The interval of each row's risk, from the coefficients' uncertainty."""
        assessed = self.assess(X, level, contributions=False)
        return assessed.risk_ci_low, assessed.risk_ci_high

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to the log-odds: coefficient x centred term, per column."""
        return self.assess(X, contributions=True).contributions


class LiteratureModel(LinearRisk):
    """A logistic model from published effects, centred on a reference population.

    Args:
        effects: the published effects, one term each.
        baseline_risk: the reference population's mean first-year risk.
        baseline_risk_interval: its 95% range (normal on the logit scale).

    Fitted attributes (``fit``): ``feature_names_in_`` (the reference frame's columns),
    ``terms_`` (effect names), ``term_columns_``, ``coef_`` and ``coef_se_`` (per unit of each
    term), ``reference_means_`` (each term's mean in the reference population, 0 where it was
    never recorded there), ``intercept_`` (log-odds at the reference means), ``intercept_se_``,
    ``base_rate_`` (= ``baseline_risk``).
    """

    def __init__(
        self,
        effects: Sequence[PublishedEffect],
        baseline_risk: float,
        baseline_risk_interval: tuple[float, float],
    ) -> None:
        self.effects = tuple(effects)
        self.baseline_risk = baseline_risk
        self.baseline_risk_interval = baseline_risk_interval

    @classmethod
    def from_config(cls, config: Any) -> LiteratureModel:
        """From ``pipeline.config.LiteratureConfig`` (read by attribute: no import of it)."""
        effects = [
            PublishedEffect(name=name, **spec.model_dump()) for name, spec in config.effects.items()
        ]
        return cls(effects, config.baseline_risk, tuple(config.baseline_risk_interval))

    def fit(
        self, reference: pd.DataFrame, categorical: Sequence[str] | None = None
    ) -> LiteratureModel:
        """Centre the terms on ``reference`` and solve the intercept for the baseline risk.

        Args:
            reference: the reference population's feature frame, one row per episode; only
                features are read, never outcomes.
            categorical: the categorical columns (default: those not numeric or boolean),
                for ``reference_`` and ``prep_``, the training distributions drift checks
                and lookups read, as they do a ``RiskModel``'s.

        Raises:
            ValueError: no effects, an empty reference, a column the effects need is missing
                or holds a value that is not a number, or an invalid baseline.
        """
        if not self.effects:
            raise ValueError("the literature model needs at least one published effect")
        if not isinstance(reference, pd.DataFrame) or reference.empty:
            raise ValueError("the reference population must be a non-empty feature frame")
        low, high = self.baseline_risk_interval
        if not 0 < low < self.baseline_risk < high < 1:
            raise ValueError(
                f"baseline_risk {self.baseline_risk} must lie inside baseline_risk_interval "
                f"{self.baseline_risk_interval}, within (0, 1)"
            )
        names = [e.name for e in self.effects]
        if len(set(names)) != len(names):
            raise ValueError(f"effect names must be unique: {names}")
        self.feature_names_in_ = np.asarray([str(c) for c in reference.columns], dtype=object)
        self.terms_ = tuple(names)
        self.term_columns_ = tuple(e.column for e in self.effects)
        _check_columns(reference, self.term_columns_)
        found = [log_odds_effect(e) for e in self.effects]
        self.coef_ = np.array([c for c, _ in found])
        self.coef_se_ = np.array([s for _, s in found])
        raw = self._raw_terms(reference)
        with np.errstate(invalid="ignore"):
            means = np.nanmean(np.where(np.isnan(raw), np.nan, raw), axis=0)
        self.reference_means_ = np.where(np.isnan(means), 0.0, means)
        centred = self.term_matrix(reference) @ self.coef_
        target = self.baseline_risk

        def gap(b: float) -> float:
            return float(np.mean(expit(b + centred))) - target

        from scipy.optimize import brentq  # fitting only: lookups load no optimiser

        self.intercept_ = float(brentq(gap, -30.0, 30.0, xtol=1e-12))
        self.intercept_se_ = float((logit(high) - logit(low)) / (2 * _Z95))
        self.base_rate_ = float(target)
        if categorical is None:
            categorical = [
                c for c in reference.columns
                if not (pd.api.types.is_numeric_dtype(reference[c])
                        or pd.api.types.is_bool_dtype(reference[c]))
            ]  # fmt: skip
        categorical = [c for c in categorical if c in reference.columns]
        self.reference_ = build_reference(reference, categorical=categorical)
        self.prep_ = FeaturePrep().fit(reference, categorical)
        return self

    def coefficients(self) -> pd.DataFrame:
        """One row per term: column, log-odds coefficient and SE per unit, odds ratio per
        ``per`` units with its 95% interval, reference mean and source (for a model card)."""
        self._check_fitted()
        per = np.array([e.per for e in self.effects])
        return pd.DataFrame(
            {
                "term": self.terms_,
                "column": self.term_columns_,
                "coefficient": self.coef_,
                "se": self.coef_se_,
                "per": per,
                "odds_ratio_per": np.exp(self.coef_ * per),
                "low": np.exp(self.coef_ * per - _Z95 * self.coef_se_ * np.abs(per)),
                "high": np.exp(self.coef_ * per + _Z95 * self.coef_se_ * np.abs(per)),
                "reference_mean": self.reference_means_,
                "source": [e.source for e in self.effects],
            }
        )

    # ---- the design the updates share ---------------------------------------------

    def _raw_terms(self, X: pd.DataFrame) -> np.ndarray:
        return np.column_stack([e.values(X[e.column]) for e in self.effects])

    def term_matrix(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, terms)``: each term minus its reference mean, 0 where the value is missing."""
        self._check_fitted()
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of features, got {type(X).__name__}")
        _check_columns(X, self.term_columns_)
        centred = self._raw_terms(X) - self.reference_means_
        return np.where(np.isnan(centred), 0.0, centred)

    def linear_predictor(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of a recurrence, one per row."""
        self._check_fitted()
        return self.intercept_ + self.term_matrix(X) @ self.coef_

    def feature_map(self) -> np.ndarray:
        """``(terms, features)`` 0/1: which feature column each term reads."""
        self._check_fitted()
        columns = list(self.feature_names_in_)
        mapping = np.zeros((len(self.terms_), len(columns)))
        for k, column in enumerate(self.term_columns_):
            if column in columns:
                mapping[k, columns.index(column)] = 1.0
        return mapping

    # ---- prediction ----------------------------------------------------------------

    def assess(
        self, X: pd.DataFrame, level: float = 0.95, contributions: bool = True
    ) -> Assessment:
        """Risk, its interval and, if asked, the contributions, from one pass over ``X``.

        Raises:
            ValueError: ``level`` outside (0, 1), or a column the effects read is missing.
        """
        self._check_fitted()
        z = self.term_matrix(X)
        eta = self.intercept_ + z @ self.coef_
        se = np.sqrt(self.intercept_se_**2 + (z**2) @ (self.coef_se_**2))
        return wald_assessment(
            eta, se, z * self.coef_, self.feature_map(), self.feature_names_in_, X.index, level,
            contributions,
        )  # fmt: skip

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ValueError("the literature model is not fitted: call fit(reference) first")


def wald_assessment(
    eta: np.ndarray,
    se: np.ndarray,
    term_contributions: np.ndarray,
    feature_map: np.ndarray,
    feature_names: Sequence[str],
    index: pd.Index,
    level: float,
    contributions: bool,
) -> Assessment:
    """Risk ``expit(eta)``, the interval ``expit(eta -/+ z se)`` and, if asked, the
    ``(n, terms)`` contributions summed into feature columns by ``feature_map``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1) (got {level})")
    half = NormalDist().inv_cdf(0.5 + level / 2) * se
    frame = None
    if contributions:
        frame = pd.DataFrame(
            term_contributions @ feature_map, columns=list(feature_names), index=index
        )
    return Assessment(expit(eta), expit(eta - half), expit(eta + half), frame)


def _check_columns(X: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = sorted({c for c in columns if c not in X.columns})
    if missing:
        raise ValueError(f"feature frame lacks column(s) the literature model reads: {missing}")


def _as_float(column: pd.Series, name: str) -> np.ndarray:
    try:
        return pd.to_numeric(column.astype("Float64")).to_numpy(np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
        row = column.index[bad.to_numpy()][0] if bad.any() else "?"
        raise ValueError(
            f"column {name!r}: expected numbers, row {row!r} has {column.get(row, '?')!r}"
        ) from None


def effects_from_mapping(specs: Mapping[str, Mapping[str, Any]]) -> list[PublishedEffect]:
    """Published effects from plain mappings (name -> fields), as tests and scripts write them."""
    return [PublishedEffect(name=name, **dict(fields)) for name, fields in specs.items()]
