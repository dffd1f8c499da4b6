"""Updating a published model from a clinic's outcomes, by closed testing.

From least to most (Steyerberg et al. 2004, Stat Med 23:2567; Janssen et al. 2008, J Clin
Epidemiol 61:76), with ``o`` the base model's linear predictor and ``Z`` its centred terms:

- ``none``: ``logit p = o``;
- ``intercept`` (calibration-in-the-large): ``logit p = o + a``;
- ``recalibration`` (logistic recalibration): ``logit p = a + g o``;
- ``revision``: ``logit p = a + g o + Z d``, the recalibration with every coefficient
  re-estimated under an L2 penalty centred on the recalibrated published one (``g`` times
  it): ``lambda/2 sum_j d_j^2 / se_j^2``, with ``se_j`` the published standard error, so
  ``lambda = 1`` is a normal prior with exactly the published uncertainty around the
  recalibrated effects. ``a`` and ``g`` are not penalised, so the revision nests the
  recalibration (a strong penalty leaves the recalibration, never less: in a clinic where
  every effect is weaker than published, the slope shrinks them all at the cost of one
  parameter). ``lambda`` is chosen from a grid by grouped cross-validation (an athlete's
  episodes stay in one fold) on the held-out weighted log loss. Fitted with glum
  (per-coefficient L2; the slope's weight 0);
- ``extension`` (Steyerberg 2019, *Clinical Prediction Models*, ch. 20, "model extension"):
  ``logit p = a + g o + Z d + E e``, the revision at its penalty plus the clinic's other
  records ``E``: every numeric or yes/no feature that no published term reads (peak sprint,
  phase 3, pain at return, body mass...), median-imputed and standardised, each with a normal
  prior centred on 0 (no effect) of standard deviation ``tau`` per standard deviation of the
  feature. The literature is silent on them, so they start at nothing and move only as far
  as the clinic's outcomes carry them; ``tau`` is chosen from a grid by the same grouped
  cross-validation. A revision can only re-weigh what the papers measured; a clinic whose
  risk also depends on something they did not (or whose records carry more than the
  published terms) needs this step to reach the spread of its true risk.

The closed testing procedure (Vergouwe et al. 2017, Stat Med 36:4529) compares the most
extensive step the sample supports with each simpler one by a likelihood-ratio test, from
``none`` upwards, and keeps the first that the extensive step does not beat at level
``alpha``; if it beats them all, it is kept. When it keeps the recalibration or the
revision, the penalised step beyond it of least grouped cross-validated log loss (the
revision or the extension, at the penalty already chosen, on the same folds) is compared
with it on the held-out athletes: each episode's held-out loss under both, the mean
difference per unit weight, and a one-sided paired z-test at ``alpha`` whose standard error
treats athletes as the independent units. The fuller step is kept only when it predicts
held-out athletes better at that level. The revision nests the recalibration (a strong
penalty leaves the common slope) and the extension the revision (a small prior SD leaves
the revision); a likelihood-ratio test spreads a penalised step's gain over many shrunken
terms and may keep the simpler step where held-out athletes show the fuller one predicts
better. Without the level the comparison would favour the penalised steps, whose penalty
was chosen on these folds: the least loss alone moved 8 of 8 cohorts drawn from a
recalibration plus one small unpublished effect (0.15 log-odds per SD) to the extension,
4 of them farther from the truth, 16% farther on average; with the level, 1 of 20 cohorts
drawn from a recalibration alone moved. The closed test alone still
decides whether to move off the published model and its intercept at all, so a clinic
like the papers keeps them.

A penalised step's likelihood is the unpenalised one at the penalised estimate, and its
degrees of freedom ``trace(2A - A A)`` with ``A = (D'WD + P)^-1 D'WD`` (Hastie & Tibshirani
1990, see :class:`StepRecord`); its effective number of parameters, which Riley's criteria
read, is ``trace(A)`` (Gray 1992, JASA 87:942).

Riley et al. 2020's minimum sample size (:mod:`models.samplesize`, at the anticipated R² of
the base model's own risks, :func:`models.samplesize.anticipated_r2_cs`, and the observed
outcome rate) is computed for every step and reported, but it gates only the revision and
the extension:

- the intercept and the recalibration re-estimate one or two numbers of a model that already
  exists, and the closed test is the guard made for them (Vergouwe et al. 2017 designed it
  for validation samples of a few hundred). Riley's criteria are for developing a model: an
  intercept held to criterion 3 (overall risk within +/-0.05, about 340 episodes at a third)
  would keep a published baseline that is off by 0.15 rather than move it on 250 episodes
  whose own estimate is off by 0.06 at most. Their minimum is shown beside them as what a
  newly developed model of that size would need.
- the revision (and the extension) is supported when the sample meets Riley's minimum for
  its *effective* number of parameters (``trace(A)``, rounded up, at the penalty
  cross-validation chose): a
  strong penalty towards the published effects is a model of few effective parameters, and
  Gray's trace is how penalised models are counted (judgement: Riley et al. count
  unpenalised parameters; their criteria at the effective number ask the same shrinkage of
  the part of the model the data move).

A step the sample does not support is refused, with the numbers, and is never fitted into
the result. A recalibration whose slope is not positive is refused too: it would make a
constant or inverted model. "No update" is always available.

IPCW weights count the information of the known outcomes only through Kish's effective
sample size (Kish 1965): every fit and test uses the weights rescaled to sum to
``(sum w)^2 / sum w^2``, so a likelihood-ratio test is not fed an inflated sample.

Intervals of an updated model are its GLM's own: Wald on the log-odds scale from the fitted
parameters' covariance, the published coefficients taken as fixed in the offset. For the
revision and the extension the covariance is the penalised one, ``(D'WD + P)^-1``, the
posterior covariance of the normal prior (written out here: glum reports covariances for
unpenalised fits only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit, xlogy

from models.compact import Assessment
from models.literature import LinearRisk, LiteratureModel, wald_assessment
from models.prep import check_targets
from models.samplesize import (
    anticipated_r2_cs,
    max_r2_cs,
    minimum_sample_size,
    overall_risk_sample_size,
)

Step = Literal["none", "intercept", "recalibration", "revision", "extension"]
# Per-column lower and upper bounds of a penalised fit's coefficients (``None``: free).
Bounds = tuple[np.ndarray, np.ndarray] | None
STEPS: tuple[Step, ...] = ("none", "intercept", "recalibration", "revision", "extension")
# Below this many degrees of freedom between two steps a likelihood-ratio test says nothing.
_MIN_TEST_DF = 0.5
_EPS = 1e-12


@dataclass(frozen=True)
class StepRecord:
    """Why a step was available or refused before testing, and its fit when available.

    ``parameters`` counts the intercept; a fitted revision's or extension's is its effective
    number (Gray's ``trace(A)``, ``A = (D'WD + P)^-1 D'WD``), which Riley's criteria read.
    ``test_df``: the degrees of freedom its likelihood-ratio tests use, ``trace(2A - A A)``
    for a penalised fit (Hastie & Tibshirani 1990, *Generalized Additive Models*, §3.5 and
    §6.8: under the null the unpenalised log-likelihood gained at a penalised estimate is a
    sum of ``2a - a^2`` weighted chi-squares, ``a`` the eigenvalues of ``A``, so ``trace(A)``
    would under-count it), ``None`` for an unpenalised one (its parameter count).
    """

    step: Step
    supported: bool
    parameters: float
    required_episodes: int | None
    reason: str
    log_likelihood: float | None = None
    test_df: float | None = None


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """One test of the closed procedure: the extensive step against a simpler one."""

    extensive: Step
    simpler: Step
    statistic: float
    df: float
    p_value: float
    significant: bool


@dataclass(frozen=True)
class UpdateResult:
    """What ``update_model`` chose and why.

    Attributes:
        step: the chosen step.
        model: the updated model (for ``none``, the base model itself); both offer
            ``predict_risk``, ``predict_interval``, ``contributions`` and ``assess``.
        steps: every step, whether the sample supported it, and why.
        tests: the likelihood-ratio tests in the order made.
        penalty_strength: the revision's ``lambda`` chosen by cross-validation (``None``
            when the revision was not fitted).
        extension_prior_sd: the extension's ``tau`` chosen by cross-validation (``None``
            when the extension was not fitted).
        effective_episodes: Kish's effective number of known outcomes.
        events: weighted recurrences among them; ``event_rate`` their weighted share.
        anticipated_r2_cs: the R² the sample sizes were computed at.
        tested_step: the step the closed test kept, before the cross-validated comparison
            with the penalised steps beyond it (``step`` when that comparison kept it).
    """

    step: Step
    model: LiteratureModel | UpdatedModel
    steps: tuple[StepRecord, ...]
    tests: tuple[LikelihoodRatioTest, ...]
    penalty_strength: float | None
    effective_episodes: float
    events: float
    event_rate: float
    anticipated_r2_cs: float | None
    reasons: tuple[str, ...] = field(default=())
    extension_prior_sd: float | None = None
    tested_step: Step | None = None


@dataclass(frozen=True)
class Extension:
    """The clinic's records no published term reads, as the extension's linear terms.

    Each column is read as a number (yes/no as 1/0), a blank as the column's median, then
    standardised: a coefficient is log-odds per standard deviation of its feature.
    """

    columns: tuple[str, ...]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray

    @classmethod
    def from_frame(cls, X: pd.DataFrame, exclude: tuple[str, ...]) -> Extension:
        """Every numeric or boolean column of ``X`` not in ``exclude`` that varies in ``X``
        (features only: no outcome is read, so cross-validation folds may share it)."""
        columns, medians, means, scales = [], [], [], []
        for column in X.columns:
            series = X[column]
            if column in exclude or not (
                pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
            ):
                continue
            values = _numbers(series)
            if np.isnan(values).all():
                continue
            median = float(np.nanmedian(values))
            filled = np.where(np.isnan(values), median, values)
            scale = float(filled.std())
            if scale <= 1e-12:
                continue
            columns.append(str(column))
            medians.append(median)
            means.append(float(filled.mean()))
            scales.append(scale)
        return cls(tuple(columns), np.array(medians), np.array(means), np.array(scales))

    @classmethod
    def of(cls, base: LiteratureModel, X: pd.DataFrame) -> Extension:
        """The extension of ``base`` on ``X``: the columns ``base`` knows and no term reads."""
        known = set(base.feature_names_in_)
        return cls.from_frame(X[[c for c in X.columns if c in known]], tuple(base.term_columns_))

    def penalties(self, published: np.ndarray, prior_sd: float) -> np.ndarray:
        """The revision's per-term penalties ``published``, then ``1 / prior_sd^2`` for each
        of the extension's terms."""
        return np.concatenate([published, np.full(len(self.columns), prior_sd**-2.0)])

    def bounds(self, published: int, monotone: Mapping[str, int] | None) -> Bounds:
        """Bounds of a fit on ``[o, Z, E]`` (``published`` columns in ``Z``): an extension
        term whose feature has a known direction in ``monotone`` (+1: more never lowers the
        risk, -1: never raises it, as the LightGBM candidates are constrained) keeps that
        sign; ``None`` when no term has one."""
        signs = np.array([int((monotone or {}).get(c, 0)) for c in self.columns])
        if not signs.any():
            return None
        lower = np.full(1 + published + len(signs), -np.inf)
        upper = np.full(1 + published + len(signs), np.inf)
        lower[1 + published :][signs > 0] = 0.0
        upper[1 + published :][signs < 0] = 0.0
        return lower, upper

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, columns)``: each feature median-imputed and standardised."""
        if not self.columns:
            return np.zeros((len(X), 0))
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"the features lack the extension's columns {missing}")
        values = np.column_stack([_numbers(X[c]) for c in self.columns])
        values = np.where(np.isnan(values), self.medians, values)
        return (values - self.means) / self.scales


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series.astype("object"), errors="coerce").to_numpy(dtype=np.float64)


class UpdatedModel(LinearRisk):
    """The base model after an ``intercept``, ``recalibration``, ``revision`` or
    ``extension`` update.

    Same interface as :class:`models.literature.LiteratureModel`. Attributes: ``base``,
    ``step``, ``params_`` (``[a]``, ``[a, g]``, ``[a, g, d_1..d_K]`` or ``[a, g, d_1..d_K,
    e_1..e_M]``), ``covariance_``, ``intercept_`` and ``coef_`` (the effective log-odds
    intercept and per-term coefficients, the extension's terms after the published ones),
    ``extension_`` (:class:`Extension`, or ``None``), ``feature_names_in_``, ``terms_``,
    ``base_rate_`` (weighted event rate of the updating sample).
    """

    def __init__(
        self,
        base: LiteratureModel,
        step: Step,
        params: np.ndarray,
        covariance: np.ndarray,
        base_rate: float,
        extension: Extension | None = None,
    ) -> None:
        if step not in STEPS[1:]:
            raise ValueError(f"an updated model's step is one of {STEPS[1:]} ({step!r})")
        if (step == "extension") != (extension is not None):
            raise ValueError("an extension, and only an extension, carries extension terms")
        self.base = base
        self.step = step
        self.params_ = np.asarray(params, dtype=np.float64)
        self.covariance_ = np.asarray(covariance, dtype=np.float64)
        self.feature_names_in_ = base.feature_names_in_
        self.extension_ = extension
        self.terms_ = tuple(base.terms_) + (extension.columns if extension is not None else ())
        # The training distributions drift checks and lookups read, the base model's.
        self.reference_ = getattr(base, "reference_", None)
        self.prep_ = getattr(base, "prep_", None)
        self.base_rate_ = float(base_rate)
        a = self.params_[0]
        if step == "intercept":
            self.intercept_, self.coef_ = base.intercept_ + a, base.coef_.copy()
        elif step == "recalibration":
            g = self.params_[1]
            self.intercept_, self.coef_ = a + g * base.intercept_, g * base.coef_
        elif len(self.params_) == len(base.coef_) + 1:
            # A revision fitted before the slope was part of it: ``[a, d]``.
            self.intercept_, self.coef_ = base.intercept_ + a, base.coef_ + self.params_[1:]
        else:
            k = len(base.coef_)
            g, d, e = self.params_[1], self.params_[2 : 2 + k], self.params_[2 + k :]
            self.intercept_ = a + g * base.intercept_
            self.coef_ = np.concatenate([g * base.coef_ + d, e])

    def term_matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The base model's centred terms, then the extension's standardised ones."""
        z = self.base.term_matrix(X)
        extension = getattr(self, "extension_", None)
        return z if extension is None else np.column_stack([z, extension.matrix(X)])

    def feature_map(self) -> np.ndarray:
        mapping = self.base.feature_map()
        extension = getattr(self, "extension_", None)
        if extension is None:
            return mapping
        columns = list(self.feature_names_in_)
        extra = np.zeros((len(extension.columns), len(columns)))
        for k, column in enumerate(extension.columns):
            extra[k, columns.index(column)] = 1.0
        return np.vstack([mapping, extra])

    def _design(self, z: np.ndarray) -> np.ndarray:
        ones = np.ones((len(z), 1))
        if self.step == "intercept":
            return ones
        o = self.base.intercept_ + z[:, : len(self.base.coef_)] @ self.base.coef_
        if self.step == "recalibration":
            return np.column_stack([ones, o])
        if len(self.params_) == len(self.base.coef_) + 1:
            return np.column_stack([ones, z])
        return np.column_stack([ones, o, z])

    def linear_predictor(self, X: pd.DataFrame) -> np.ndarray:
        return self.intercept_ + self.term_matrix(X) @ self.coef_

    def assess(
        self, X: pd.DataFrame, level: float = 0.95, contributions: bool = True
    ) -> Assessment:
        """Risk, the GLM's Wald interval and per-feature contributions (module docstring)."""
        z = self.term_matrix(X)
        design = self._design(z)
        se = np.sqrt(np.einsum("ij,jk,ik->i", design, self.covariance_, design))
        eta = self.intercept_ + z @ self.coef_
        return wald_assessment(
            eta, se, z * self.coef_, self.feature_map(), self.feature_names_in_, X.index, level,
            contributions,
        )  # fmt: skip


def update_model(
    base: LiteratureModel,
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    sample_weight: np.ndarray | pd.Series | None = None,
    groups: np.ndarray | pd.Series | None = None,
    *,
    alpha: float = 0.05,
    penalty_strengths: tuple[float, ...] = (0.25, 1.0, 4.0, 16.0, 64.0),
    extension_prior_sd: tuple[float, ...] = (),
    monotone: Mapping[str, int] | None = None,
    cv_folds: int = 5,
    random_state: int | None = None,
    shrinkage: float = 0.9,
    r2_optimism: float = 0.05,
    risk_margin: float = 0.05,
) -> UpdateResult:
    """Choose and fit the update of ``base`` that the clinic's outcomes support.

    Args:
        base: a fitted base model (``term_matrix``, ``coef_``, ``coef_se_``, ``intercept_``).
        X: the clinic's feature frame, one row per episode.
        y: 1.0 recurred, 0.0 no recurrence, NaN unknown.
        sample_weight: IPCW weights (0 for unknown outcomes); ``None``: 1 where known.
        groups: athlete ids for the cross-validation folds; ``None``: one per episode.
        alpha: level of each likelihood-ratio test.
        penalty_strengths: the grid of ``lambda`` for the revision.
        extension_prior_sd: the grid of ``tau`` for the extension; empty: no extension.
        monotone: feature -> +1 / -1, the directions the extension's terms keep
            (:meth:`Extension.bounds`); ``None``: every term free.
        cv_folds: folds of the grouped cross-validation.
        random_state: seeds the folds.
        shrinkage, r2_optimism, risk_margin: Riley et al. 2020 criteria for the sample size.

    Raises:
        ValueError: inputs of the wrong shape, labels other than 0/1/NaN, negative weights,
            a known-outcome weight on an unknown label, or an empty grid.
    """
    if not penalty_strengths or min(penalty_strengths) <= 0:
        raise ValueError(f"penalty_strengths must be positive and non-empty ({penalty_strengths})")
    if extension_prior_sd and min(extension_prior_sd) <= 0:
        raise ValueError(f"extension_prior_sd must be positive ({extension_prior_sd})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) (got {alpha})")
    y_arr, w_arr, g_arr = check_targets(X, y, sample_weight, groups)
    known = w_arr > 0
    z_all = base.term_matrix(X)
    o_all = base.intercept_ + z_all @ base.coef_
    z, o, yk, wk, gk = z_all[known], o_all[known], y_arr[known], w_arr[known], g_arr[known]
    n_eff = float(wk.sum() ** 2 / np.sum(wk**2)) if known.any() else 0.0
    wk = wk * (n_eff / wk.sum()) if known.any() else wk
    events = float(np.sum(wk * yk))
    rate = events / n_eff if n_eff > 0 else float("nan")

    records: dict[Step, StepRecord] = {}
    ll_none = _log_likelihood(yk, expit(o), wk)
    records["none"] = StepRecord("none", True, 0, None, "always available", ll_none)
    if n_eff == 0 or events < 1 or n_eff - events < 1:
        reason = (
            f"{n_eff:.0f} known outcomes with {events:.0f} recurrences: both outcomes are "
            "needed to estimate anything"
        )
        for step in STEPS[1:]:
            records[step] = StepRecord(step, False, 0, None, reason)
        return _result("none", base, records, (), None, n_eff, events, rate, None, [reason])

    r2 = anticipated_r2_cs(expit(o))
    allowed_r2 = r2 if 0 < r2 < min(max_r2_cs(rate), shrinkage) else None

    fits: dict[Step, tuple[np.ndarray, ...]] = {}
    # The penalised steps' terms and per-term penalties, as fitted.
    penalised: dict[Step, tuple[np.ndarray, np.ndarray, Bounds]] = {}
    # Intercept: only the overall risk is estimated (Riley's criterion 3 alone, shown).
    need = overall_risk_sample_size(rate, risk_margin)
    fits["intercept"] = _fit_glm(np.ones((len(yk), 1)), yk, wk, o)
    records["intercept"] = StepRecord(
        "intercept", True, 1, need,
        "the closed test decides"
        + ("" if n_eff >= need else f" (a new model's overall risk within ±{risk_margin} would "
           f"need {need} episodes; this one has {n_eff:.0f})"),
        fits["intercept"][2],
    )  # fmt: skip
    need = (
        None
        if allowed_r2 is None
        else _parameter_criteria(1, rate, allowed_r2, shrinkage, r2_optimism)
    )
    fit = _fit_glm(np.column_stack([np.ones(len(yk)), o]), yk, wk, None)
    if fit[0][1] <= 0:
        records["recalibration"] = StepRecord(
            "recalibration", False, 2, need,
            f"fitted slope {fit[0][1]:.3f} is not positive: a recalibration would make a "
            "constant or inverted model",
        )  # fmt: skip
    else:
        fits["recalibration"] = fit
        records["recalibration"] = StepRecord(
            "recalibration", True, 2, need,
            "the closed test decides"
            + ("" if need is None or n_eff >= need else
               f" (a new one-parameter model would need {need} episodes for shrinkage "
               f"{shrinkage}; this one has {n_eff:.0f})"),
            fit[2],
        )  # fmt: skip
    lam = tau = extension = None
    if allowed_r2 is None:
        records["revision"] = StepRecord(
            "revision", False, 1 + len(base.coef_), None,
            f"anticipated R² {r2:.4f} is outside what the outcome rate allows",
        )  # fmt: skip
    else:
        search = _PenaltySearch(
            yk, wk, gk, o, cv_folds, random_state, n_eff,
            lambda k: _parameter_criteria(k, rate, allowed_r2, shrinkage, r2_optimism),
        )  # fmt: skip
        published = 1.0 / base.coef_se_**2
        records["revision"], fit, lam = search.best(
            "revision", z, [(s, s * published) for s in sorted(penalty_strengths)]
        )
        if fit is not None:
            fits["revision"] = fit
            penalised["revision"] = (z, lam * published, None)
    if extension_prior_sd:
        if "revision" not in fits:
            reason = "the revision it extends was not fitted"
        else:
            extension = Extension.of(base, X)
            reason = "" if extension.columns else "no recorded feature is left out of the terms"
        if reason:
            records["extension"] = StepRecord("extension", False, 0, None, reason)
        else:
            ez = np.column_stack([z, extension.matrix(X)[known]])
            grid = [
                (t, extension.penalties(lam * published, t))
                for t in sorted(extension_prior_sd, reverse=True)
            ]
            bounds = extension.bounds(len(published), monotone)
            records["extension"], fit, tau = search.best("extension", ez, grid, bounds)
            if fit is not None:
                fits["extension"] = fit
                penalised["extension"] = (ez, dict(grid)[tau], bounds)
    else:
        records["extension"] = StepRecord("extension", False, 0, None, "no prior SD configured")

    available = [s for s in STEPS if s == "none" or s in fits]
    extensive = available[-1]
    tests: list[LikelihoodRatioTest] = []
    reasons: list[str] = []
    chosen: Step = extensive
    if extensive == "none":
        reasons.append("no update is supported by the sample; the base model is kept")
        chosen = "none"
    else:
        top_ll, top_df = records[extensive].log_likelihood, _df(extensive, records)
        for simpler in available[:-1]:
            df = top_df - _df(simpler, records)
            statistic = max(2.0 * (top_ll - records[simpler].log_likelihood), 0.0)
            if df < _MIN_TEST_DF:
                reasons.append(
                    f"{extensive} adds {df:.2f} effective parameters over {simpler}: {simpler} kept"
                )
                chosen = simpler
                break
            p_value = float(_chi2().sf(statistic, df))
            significant = p_value < alpha
            tests.append(
                LikelihoodRatioTest(extensive, simpler, statistic, df, p_value, significant)
            )
            if not significant:
                reasons.append(
                    f"{extensive} does not improve on {simpler} (LR {statistic:.2f} on "
                    f"{df:.2f} df, p = {p_value:.3f} >= {alpha}): {simpler} kept"
                )
                chosen = simpler
                break
            reasons.append(
                f"{extensive} improves on {simpler} (LR {statistic:.2f} on {df:.2f} df, "
                f"p = {p_value:.3g})"
            )
    tested = chosen
    fuller = [s for s in penalised if STEPS.index(s) > STEPS.index(chosen)]
    if chosen in ("recalibration", "revision") and fuller:
        # The closed test re-weighs the published effects; how far beyond their common
        # slope the clinic's outcomes carry them is asked of held-out athletes (docstring).
        held_out = _held_out_losses(
            o, yk, wk, gk, [chosen, *fuller], penalised, cv_folds, random_state
        )
        best = min(fuller, key=lambda s: np.nansum(held_out[s]))
        difference, p_value = _paired_difference(held_out[best], held_out[chosen], wk, gk)
        if p_value < alpha:
            reasons.append(
                f"{best} predicts held-out athletes better than {chosen} (grouped "
                f"cross-validated log loss {difference:+.4f} per episode, p = {p_value:.3g}): "
                f"{best} kept"
            )
            chosen = best
        elif np.isfinite(p_value):
            reasons.append(
                f"{best} does not predict held-out athletes better than {chosen} (grouped "
                f"cross-validated log loss {difference:+.4f} per episode, p = {p_value:.3f} "
                f">= {alpha})"
            )
    if chosen == "none":
        model: LiteratureModel | UpdatedModel = base
    else:
        params, covariance = fits[chosen][:2]
        model = UpdatedModel(
            base, chosen, params, covariance, rate, extension if chosen == "extension" else None
        )
    return _result(
        chosen, model, records, tuple(tests), lam, n_eff, events, rate, r2, reasons,
        tau, tested,
    )  # fmt: skip


def _result(
    step: Step,
    model: LiteratureModel | UpdatedModel,
    records: dict[Step, StepRecord],
    tests: tuple[LikelihoodRatioTest, ...],
    lam: float | None,
    n_eff: float,
    events: float,
    rate: float,
    r2: float | None,
    reasons: list[str],
    tau: float | None = None,
    tested: Step | None = None,
) -> UpdateResult:
    return UpdateResult(
        step=step,
        model=model,
        steps=tuple(records[s] for s in STEPS),
        tests=tests,
        penalty_strength=lam,
        effective_episodes=n_eff,
        events=events,
        event_rate=rate,
        anticipated_r2_cs=r2,
        reasons=tuple(reasons),
        extension_prior_sd=tau,
        tested_step=step if tested is None else tested,
    )


def _df(step: Step, records: dict[Step, StepRecord]) -> float:
    if step == "none":
        return 0.0
    record = records[step]
    return float(record.parameters if record.test_df is None else record.test_df)


def _log_likelihood(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(np.sum(w * (xlogy(y, p) + xlogy(1 - y, 1 - p))))


def _fit_glm(
    design: np.ndarray, y: np.ndarray, w: np.ndarray, offset: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Unpenalised weighted logistic GLM (statsmodels): params, covariance, log-lik, df."""
    import statsmodels.api as sm

    model = sm.GLM(y, design, family=sm.families.Binomial(), offset=offset, var_weights=w)
    fitted = model.fit()
    eta = design @ fitted.params + (0.0 if offset is None else offset)
    ll = _log_likelihood(y, expit(eta), w)
    return np.asarray(fitted.params), np.asarray(fitted.cov_params()), ll, float(design.shape[1])


def _penalised_regressor(penalties: np.ndarray, total_weight: float, bounds: Bounds = None) -> Any:
    # glum minimises  deviance / (2 sum w) + alpha/2 b' P2 b, i.e. (-loglik + 1/2 d' P d)
    # / sum w when alpha = 1 / sum w and P2 = P: the revision's lam / se^2 (lam = 1 is the
    # published prior), the extension's 1 / tau^2. Its columns are [o, Z(, E)]: the slope on
    # the base model's linear predictor goes free.
    from glum import GeneralizedLinearRegressor

    return GeneralizedLinearRegressor(
        family="binomial",
        alpha=1.0 / total_weight,
        l1_ratio=0.0,
        P2=np.concatenate([[0.0], penalties]),
        fit_intercept=True,
        gradient_tol=1e-8,
        max_iter=200,
        lower_bounds=None if bounds is None else bounds[0],
        upper_bounds=None if bounds is None else bounds[1],
    )


def _fit_penalised(
    z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    o: np.ndarray,
    penalties: np.ndarray,
    bounds: Bounds = None,
) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Penalised revision or extension: params ``[a, g, d(, e)]``, penalised covariance,
    log-lik, effective number of parameters ``trace(A)`` and the tests' ``trace(2A - A A)``
    (:class:`StepRecord`)."""
    columns = np.column_stack([o, z])
    with _one_thread():
        regressor = _penalised_regressor(penalties, w.sum(), bounds).fit(
            columns, y, sample_weight=w
        )
    params = np.concatenate([[regressor.intercept_], regressor.coef_])
    design = np.column_stack([np.ones(len(y)), columns])
    p = expit(design @ params)
    information = design.T @ (design * (w * p * (1 - p))[:, None])
    covariance = np.linalg.inv(information + np.diag(np.concatenate([[0.0, 0.0], penalties])))
    hat = covariance @ information
    edf = float(np.trace(hat))
    return params, covariance, _log_likelihood(y, p, w), edf, 2 * edf - float(np.trace(hat @ hat))


def _parameter_criteria(
    parameters: int, rate: float, r2: float, shrinkage: float, r2_optimism: float
) -> int:
    """Riley et al. 2020's criteria 1 and 2 (shrinkage, optimism in R²) for ``parameters``:
    the part of the minimum that grows with the model. Criterion 3, the overall risk, is the
    intercept's and is shown with it."""
    size = minimum_sample_size(parameters, rate, r2, shrinkage, r2_optimism)
    return max(size.shrinkage, size.optimism)


@dataclass(frozen=True)
class _PenaltySearch:
    """Choosing the penalty of a revision or an extension: the known outcomes, their folds
    and Riley's minimum for a number of effective parameters (``required``)."""

    y: np.ndarray
    w: np.ndarray
    groups: np.ndarray
    o: np.ndarray
    cv_folds: int
    random_state: int | None
    n_eff: float
    required: Callable[[int], int]

    def best(
        self,
        step: Step,
        z: np.ndarray,
        grid: list[tuple[float, np.ndarray]],
        bounds: Bounds = None,
    ) -> tuple[StepRecord, tuple[np.ndarray, ...] | None, float | None]:
        """The fit at the grid point of least cross-validated loss among those whose
        effective number of parameters (beyond the intercept, rounded up) the sample
        supports, with its record; refused, with the numbers, when even the grid's most
        penalised point (its last) asks for more. ``grid``: (setting, per-column penalties)."""
        folds = _group_folds(
            n_splits=min(self.cv_folds, len(np.unique(self.groups))),
            shuffle=True,
            random_state=self.random_state,
        )
        losses = np.zeros(len(grid))
        with _one_thread():
            for train, test in folds.split(z, self.y, self.groups):
                if len(np.unique(self.y[train])) < 2:
                    continue
                for k, (_, penalties) in enumerate(grid):
                    regressor = _penalised_regressor(penalties, self.w[train].sum(), bounds).fit(
                        np.column_stack([self.o[train], z[train]]), self.y[train],
                        sample_weight=self.w[train],
                    )  # fmt: skip
                    eta = regressor.intercept_ + (
                        np.column_stack([self.o[test], z[test]]) @ regressor.coef_
                    )
                    losses[k] -= _log_likelihood(self.y[test], expit(eta), self.w[test])
        fits = [_fit_penalised(z, self.y, self.w, self.o, p, bounds) for _, p in grid]
        effective = [max(1, int(np.ceil(fit[3] - 1 - 1e-9))) for fit in fits]
        needs = [self.required(k) for k in effective]
        allowed = [i for i in range(len(grid)) if needs[i] <= self.n_eff]
        setting = "penalty" if step == "revision" else "prior SD"
        if not allowed:
            i = len(grid) - 1
            return (
                StepRecord(
                    step, False, fits[i][3], needs[i],
                    f"{self.n_eff:.0f} effective known outcomes; Riley et al. 2020 ask for "
                    f"{needs[i]} for {effective[i]} effective parameters even at {setting} "
                    f"{grid[i][0]:g}",
                ),
                None,
                None,
            )  # fmt: skip
        best = int(np.argmin(losses))
        i = min(allowed, key=lambda k: losses[k])
        note = "" if i == best else (
            f"; cross-validation preferred {setting} {grid[best][0]:g} ({effective[best]} "
            f"effective parameters, {needs[best]} episodes needed)"
        )  # fmt: skip
        return (
            StepRecord(
                step, True, fits[i][3], needs[i],
                f"{self.n_eff:.0f} effective known outcomes meet Riley et al. 2020's "
                f"{needs[i]} for {effective[i]} effective parameters at {setting} "
                f"{grid[i][0]:g}{note}",
                fits[i][2],
                fits[i][4],
            ),
            fits[i],
            float(grid[i][0]),
        )  # fmt: skip


def _group_folds(**options: Any) -> Any:
    from sklearn.model_selection import GroupKFold

    return GroupKFold(**options)


def _chi2() -> Any:
    from scipy.stats import chi2

    return chi2


# Fitting imports glum, statsmodels, scikit-learn and scipy.stats where they are used: serving
# an updated model (a lookup unpickles this module) needs none of them.
def _one_thread() -> Any:
    # glum's OpenMP threads cost far more in synchronisation than they save on a few
    # thousand rows: one update of 1,200 episodes took 20 s with two threads on a shared
    # 2-core machine, 2 s with one.
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def update_from_config(
    base: LiteratureModel,
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    sample_weight: np.ndarray | pd.Series | None,
    groups: np.ndarray | pd.Series | None,
    config: object,
    monotone: Mapping[str, int] | None = None,
) -> UpdateResult:
    """:func:`update_model` with the settings of ``pipeline.config.UpdatingConfig``."""
    sizes = config.sample_size
    return update_model(
        base, X, y, sample_weight, groups,
        alpha=config.alpha,
        penalty_strengths=tuple(config.penalty_strengths),
        extension_prior_sd=tuple(config.extension_prior_sd),
        monotone=monotone,
        cv_folds=config.cv_folds,
        random_state=config.random_state,
        shrinkage=sizes.shrinkage,
        r2_optimism=sizes.r2_optimism,
        risk_margin=sizes.risk_margin,
    )  # fmt: skip


def cross_validated_losses(
    base: LiteratureModel,
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    sample_weight: np.ndarray | pd.Series | None,
    groups: np.ndarray | pd.Series | None,
    config: object,
    penalty_strength: float | None = None,
    extension_prior_sd: float | None = None,
    monotone: Mapping[str, int] | None = None,
) -> dict[Step, float]:
    """Each step's grouped-CV IPCW log loss (weighted mean over held-out known outcomes).

    Every step is refitted on each fold's training athletes and scored on its held-out ones,
    so the numbers compare steps fairly with each other and with other models scored on
    grouped folds. The revision uses ``penalty_strength`` (the one chosen on all the data;
    choosing it again inside each fold would cost the grid again per fold for a loss that
    moves little); ``None`` leaves the revision out. The extension likewise uses
    ``extension_prior_sd`` at that penalty (``None``: left out), its terms' directions from
    ``monotone`` as in :func:`update_model`. A fold whose training athletes lack either
    outcome is skipped. Steps never fitted read NaN.
    """
    y_arr, w_arr, g_arr = check_targets(X, y, sample_weight, groups)
    known = w_arr > 0
    z_all = base.term_matrix(X)
    o_all = base.intercept_ + z_all @ base.coef_
    z, o, yk, wk, gk = z_all[known], o_all[known], y_arr[known], w_arr[known], g_arr[known]
    steps: list[Step] = ["none", "intercept", "recalibration"]
    penalties: dict[Step, tuple[np.ndarray, np.ndarray, Bounds]] = {}
    if penalty_strength is not None:
        steps.append("revision")
        published = penalty_strength / base.coef_se_**2
        penalties["revision"] = (z, published, None)
        if extension_prior_sd is not None:
            extension = Extension.of(base, X)
            steps.append("extension")
            penalties["extension"] = (
                np.column_stack([z, extension.matrix(X)[known]]),
                extension.penalties(published, extension_prior_sd),
                extension.bounds(len(published), monotone),
            )
    held_out = _held_out_losses(
        o, yk, wk, gk, steps, penalties, config.cv_folds, config.random_state
    )
    scored = np.isfinite(held_out["none"])
    total = float(wk[scored].sum())
    if total == 0:
        return dict.fromkeys(STEPS, float("nan"))
    return {s: (float(held_out[s][scored].sum()) / total if s in steps else float("nan"))
            for s in STEPS}  # fmt: skip


def _paired_difference(
    loss: np.ndarray, reference: np.ndarray, w: np.ndarray, groups: np.ndarray
) -> tuple[float, float]:
    """Mean held-out log loss of one step minus another's on the same episodes (weighted,
    per unit weight), and the one-sided p-value that it is below 0: a paired z-test whose
    standard error treats athletes as the independent units (a ratio estimator's cluster
    variance). ``loss``, ``reference``: each episode's weighted loss, NaN where unscored."""
    scored = np.isfinite(loss) & np.isfinite(reference)
    if not scored.any():
        return float("nan"), float("nan")
    _, index = np.unique(groups[scored], return_inverse=True)
    difference = np.bincount(index, weights=(loss - reference)[scored])
    weight = np.bincount(index, weights=w[scored])
    mean = float(difference.sum() / weight.sum())
    n = len(weight)
    if n < 2:
        return mean, float("nan")
    se = float(np.sqrt(n / (n - 1) * np.sum((difference - mean * weight) ** 2)) / weight.sum())
    if se <= 0:
        return mean, float("nan")
    return mean, float(NormalDist().cdf(mean / se))


def _held_out_losses(
    o: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray,
    steps: list[Step],
    penalised: dict[Step, tuple[np.ndarray, np.ndarray, Bounds]],
    cv_folds: int,
    random_state: int | None,
) -> dict[Step, np.ndarray]:
    """Each known outcome's weighted log loss under each of ``steps`` fitted without its
    athlete's fold (grouped CV; the penalised ones at their terms and penalties in
    ``penalised``); NaN in a fold whose training athletes lack an outcome, or everywhere
    when there are fewer than two athletes or one outcome class."""
    losses = {step: np.full(len(y), np.nan) for step in steps}
    n_groups = len(np.unique(groups))
    if n_groups < 2 or len(np.unique(y)) < 2:
        return losses
    folds = _group_folds(n_splits=min(cv_folds, n_groups), shuffle=True, random_state=random_state)
    with _one_thread():
        for train, test in folds.split(o, y, groups):
            if len(np.unique(y[train])) < 2:
                continue
            wt = w[train] * (w[train].sum() / np.sum(w[train] ** 2))
            for step in steps:
                if step == "none":
                    eta = o[test]
                elif step == "intercept":
                    params = _fit_glm(np.ones((len(train), 1)), y[train], wt, o[train])[0]
                    eta = o[test] + params[0]
                elif step == "recalibration":
                    design = np.column_stack([np.ones(len(train)), o[train]])
                    params = _fit_glm(design, y[train], wt, None)[0]
                    eta = params[0] + params[1] * o[test]
                else:
                    terms, penalty, bounds = penalised[step]
                    params = _fit_penalised(terms[train], y[train], wt, o[train], penalty, bounds)[
                        0
                    ]
                    eta = params[0] + params[1] * o[test] + terms[test] @ params[2:]
                p = np.clip(expit(eta), _EPS, 1 - _EPS)
                losses[step][test] = -w[test] * (xlogy(y[test], p) + xlogy(1 - y[test], 1 - p))
    return losses
