"""Training stage: validated cohort -> labelled episodes -> features -> calibrated model.

``develop_model`` is the statistics (split, censoring weights, model choice, held-out and
temporal evaluation) and touches neither disk nor MLflow, so tests and benchmarks call it
directly; ``train_model`` wraps it with validation, the MLflow run, registration and the
promotion decision.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.model_selection import GroupShuffleSplit

from features import build_feature_frame
from features.catalog import CATEGORICAL, FEATURES, MONOTONE
from features.definition import FeatureDefinition
from models import plots
from models.estimators import RiskModel
from models.evaluation import (
    calibration_curve,
    evaluate,
    log_loss,
    net_benefit,
    optimism_corrected,
    summarise,
)
from models.incidence import TimingModel
from models.literature import LiteratureModel
from models.samplesize import max_r2_cs, minimum_sample_size
from models.selection import select_model
from models.updating import STEPS, cross_validated_losses, update_from_config
from pipeline import registry
from pipeline.cohort import Cohort
from pipeline.config import (
    CandidateConfig,
    FeaturesConfig,
    LiteratureConfig,
    TrainConfig,
    check_incidence_window,
    load_config,
)
from pipeline.episodes import (
    WeightDiagnostics,
    censoring_inputs,
    censoring_weights,
    development_fingerprint,
    in_development,
    index_episodes,
)
from pipeline.errors import HamriskError
from pipeline.validate import ValidationResult, validate_cohort


class TrainingDataError(HamriskError):
    """The cohort is valid but cannot support training (too few outcomes, say)."""

    exit_code = 2


@dataclass(frozen=True)
class TrainingData:
    """Episodes with a prediction time, their features, labels, IPCW weights and athletes."""

    episodes: pd.DataFrame
    features: pd.DataFrame
    labels: np.ndarray
    weights: np.ndarray
    groups: np.ndarray

    @property
    def follow_up_from_records(self) -> int:
        """Episodes whose follow-up the athlete's records lengthened (``pipeline.episodes``)."""
        return int(self.episodes["follow_up_from_records"].sum())

    @property
    def weight_diagnostics(self) -> WeightDiagnostics:
        """Largest censoring weight and Kish's effective sample size."""
        return WeightDiagnostics.of(self.weights)

    def subset(self, rows: np.ndarray) -> TrainingData:
        """The episodes at positions ``rows``."""
        return TrainingData(
            episodes=self.episodes.iloc[rows],
            features=self.features.iloc[rows],
            labels=self.labels[rows],
            weights=self.weights[rows],
            groups=self.groups[rows],
        )


@dataclass(frozen=True)
class Development:
    """A fitted model and everything measured about it before registration.

    ``model`` is the ladder's choice: the literature model, an update of it
    (``models.updating.UpdatedModel``) or a :class:`RiskModel` from the candidates
    (``candidate`` set). ``validation`` is ``optimism`` (fitted on all the episodes,
    performance optimism-corrected by bootstrapping the whole procedure) or ``held-out``
    (fitted on the training athletes, measured on the others), ``validation_reason`` why.
    ``metrics`` are the performance the gates judge (corrected, or held-out), ``test`` and
    ``test_risk`` the episodes they were measured on and the model's risks there,
    ``baseline_metrics`` the literature model's as is on the same episodes (it has used no
    outcome, so its figures are honest either way), ``log_loss_optimism`` what the
    correction added to the log loss (0 held out).
    """

    model: Any
    candidate: CandidateConfig | None
    selection: pd.DataFrame | None
    ladder: pd.DataFrame
    step: str
    metrics: pd.DataFrame
    baseline_metrics: pd.DataFrame
    temporal_metrics: pd.DataFrame
    optimism: pd.DataFrame | None
    test: TrainingData
    test_risk: np.ndarray
    literature_risk: np.ndarray
    validation: str
    validation_reason: str
    figures: dict[str, Figure] = field(repr=False)
    counts: dict[str, int] = field(default_factory=dict)
    log_loss_optimism: float = 0.0
    literature_log_loss_optimism: float = 0.0

    def shift_against(self, literature: bool) -> float:
        """What the optimism correction adds to a log-loss difference: the new model's
        optimism, less the literature model's when that is the reference (fitted on the
        same episodes, it shares the optimism of centring on them)."""
        return self.log_loss_optimism - (self.literature_log_loss_optimism if literature else 0.0)


@dataclass(frozen=True)
class TrainResult:
    """What ``hamrisk train`` reports."""

    validation: ValidationResult
    development: Development
    data: TrainingData
    run_id: str
    model_name: str
    version: int
    decision: registry.PromotionDecision


def prepare_training_data(
    cohort: Cohort, features_config: FeaturesConfig, train_config: TrainConfig, as_of: dt.date
) -> TrainingData:
    """Episodes with a return to sport, their point-in-time features and IPCW weights.

    Episodes without a return to sport have no prediction time yet and are not trained on.
    Censored and pending episodes stay in with weight 0: they still inform the censoring
    model, and dropping them would bias the risk upward when follow-up is lost unevenly.
    Follow-up and the censoring inputs come from ``pipeline.episodes``, as in the audit.
    """
    episodes = index_episodes(cohort, as_of, features_config.outcome)
    episodes = episodes[~episodes["provisional"].to_numpy(dtype=bool)].reset_index(drop=True)
    features = build_feature_frame(cohort, episodes, features_config)
    weights = censoring_weights(
        censoring_inputs(episodes, features, train_config.censoring),
        features_config.outcome.window_days,
        train_config.censoring,
    )
    labels = episodes["label"].to_numpy(dtype=np.float64)
    known = weights > 0
    positives = int(np.sum(labels[known] == 1))
    negatives = int(np.sum(labels[known] == 0))
    # Riley et al. (binary outcomes) ask for far more; below this nothing can be estimated.
    if positives < 10 or negatives < 10:
        raise TrainingDataError(
            f"only {positives} recurrences and {negatives} non-recurrences with a known "
            "outcome: training needs at least 10 of each"
        )
    return TrainingData(
        episodes=episodes,
        features=features,
        labels=labels,
        weights=weights,
        groups=episodes["athlete_id"].astype(str).to_numpy(),
    )


def candidate_model(
    candidate: CandidateConfig, config: TrainConfig, n_bootstrap: int | None = None
) -> RiskModel:
    """The unfitted :class:`RiskModel` of one candidate with the configured calibration."""
    return RiskModel(
        kind=candidate.kind,
        params=dict(candidate.params),
        monotone=MONOTONE if candidate.kind == "lightgbm" else None,
        categorical=CATEGORICAL,
        calibration=config.model.calibration,
        cv=config.model.cv_folds,
        n_bootstrap=config.model.n_bootstrap if n_bootstrap is None else n_bootstrap,
        early_stopping=config.model.early_stopping_rounds,
        random_state=config.random_state,
    )


def fit_candidate(
    candidate: CandidateConfig,
    data: TrainingData,
    config: TrainConfig,
    n_bootstrap: int | None = None,
) -> RiskModel:
    """Fit one candidate with the configured calibration on ``data``."""
    return candidate_model(candidate, config, n_bootstrap).fit(
        data.features, data.labels, data.weights, data.groups
    )


def fit_timing(data: TrainingData, config: TrainConfig) -> TimingModel:
    """When a recurrence falls, learned on the same episodes, features and athletes as the
    one-year model (``models/incidence.py``).

    Weighted by Kaplan–Meier censoring weights over all episodes, the export date a
    censoring time like any other, not by the one-year model's weights: those are 0 for an
    episode whose window had not closed by the export date, since whether it recurs within
    the year is unknown, but the day of a recurrence it already had is known. At 2,000
    simulated athletes that keeps 801 recurrences instead of 688, and without covariates
    the fit is exactly the cohort's Kaplan–Meier shape.
    """
    return TimingModel.from_config(
        config.incidence, categorical=CATEGORICAL, random_state=config.random_state
    ).fit(
        data.features,
        data.episodes["followed_days"].to_numpy(dtype=np.float64),
        data.episodes["event_days"].to_numpy(dtype=np.float64),
        groups=data.groups,
    )


def choose_candidate(
    data: TrainingData, config: TrainConfig
) -> tuple[CandidateConfig, pd.DataFrame]:
    """The configured candidate with the lowest grouped-CV weighted log loss, and the table."""
    return _choose(data.features, data.labels, data.weights, data.groups, config)


def _choose(
    X: pd.DataFrame, y: np.ndarray, w: np.ndarray, groups: np.ndarray, config: TrainConfig
) -> tuple[CandidateConfig, pd.DataFrame]:
    selection = select_model(
        X,
        y,
        w,
        groups,
        [c.model_dump() for c in config.model.candidates],
        cv=config.model.cv_folds,
        random_state=config.random_state,
        monotone=MONOTONE,
        categorical=CATEGORICAL,
        early_stopping=config.model.early_stopping_rounds,
        rule=config.model.selection,
    )
    return CandidateConfig.model_validate(selection.best), selection.table


def _chosen_loss(selection: pd.DataFrame) -> float:
    """The grouped-CV log loss of the candidate the selection chose."""
    return float(selection.loc[selection["chosen"], "log_loss"].iloc[0])


# The ladder's steps as the run reports them: the literature model as is, its updates
# (models/updating.py), the candidates.
LADDER_STEPS = ("literature", "intercept", "recalibration", "revision", "extension", "stack")
_STEP_NAMES = dict(zip(STEPS, LADDER_STEPS, strict=False))


@dataclass(frozen=True)
class Ladder:
    """The model the ladder chose, the step it is, and each step's record (``table``)."""

    model: Any
    step: str
    table: pd.DataFrame
    literature: LiteratureModel
    candidate: CandidateConfig | None = None
    selection: pd.DataFrame | None = None


def _usable(model: Any, X: pd.DataFrame) -> str | None:
    """Why ``model`` must not be registered (constant risk, a zero-width interval), or None."""
    risk = np.asarray(model.predict_risk(X), dtype=np.float64)
    low, high = model.predict_interval(X)
    if len(risk) > 1 and np.ptp(risk) <= 1e-9:
        return "it predicts the same risk for every episode"
    if np.any(np.asarray(high) - np.asarray(low) <= 0):
        return "some of its intervals have zero width"
    return None


def fit_ladder(
    X: pd.DataFrame,
    y: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray,
    config: TrainConfig,
    literature: LiteratureConfig,
    *,
    explain: bool = True,
) -> Ladder:
    """Climb from the literature model as far as the cohort supports, and stop there.

    The literature model takes ``X`` as its reference population. Its updates (new
    intercept, recalibration, penalised revision and extension) are each kept only when the
    sample meets Riley et al. 2020's minimum for the step and the closed test favours it, the
    penalised steps beyond a kept recalibration or revision also when their grouped-CV loss
    is lower (``models.updating``). The candidates (LightGBM stack and the penalised logistic) are
    tried only when the sample meets Riley's minimum for ``model.stack_parameters`` and
    kept only when their grouped-CV IPCW log loss is below the chosen update's. A model
    that predicts one risk for all or gives a zero-width interval is never chosen: the
    ladder steps back to the literature model. ``explain=False`` skips the CV losses of
    steps that decide nothing (inside the optimism bootstrap).
    """
    base = LiteratureModel.from_config(literature).fit(X, CATEGORICAL)
    if not config.model.ladder:
        candidate, selection = _choose(X, y, w, groups, config)
        model = candidate_model(candidate, config).fit(X, y, w, groups)
        problem = _usable(model, X)
        if problem is not None:
            raise TrainingDataError(f"the candidates cannot be used on this cohort: {problem}")
        row = {"step": "stack", "supported": True, "required_episodes": None,
               "cv_log_loss": _chosen_loss(selection), "kept": True,
               "reason": "model.ladder is false: the candidates alone"}  # fmt: skip
        return Ladder(model, "stack", pd.DataFrame([row]).set_index("step"), base, candidate,
                      selection)  # fmt: skip
    update = update_from_config(base, X, y, w, groups, literature.updating, MONOTONE)
    stack_considered = False
    sizes = literature.updating.sample_size
    rate, r2, n_eff = update.event_rate, update.anticipated_r2_cs, update.effective_episodes
    need = None
    if r2 is not None and np.isfinite(rate) and 0 < r2 < min(max_r2_cs(rate), sizes.shrinkage):
        need = minimum_sample_size(
            config.model.stack_parameters, rate, r2, sizes.shrinkage, sizes.r2_optimism,
            sizes.risk_margin,
        ).minimum  # fmt: skip
    stack_considered = need is not None and n_eff >= need
    losses = {}
    if explain or stack_considered:
        losses = cross_validated_losses(
            base, X, y, w, groups, literature.updating, update.penalty_strength,
            update.extension_prior_sd, MONOTONE,
        )  # fmt: skip
    chosen = update.step
    rows = []
    for record in update.steps:
        if record.step == chosen:
            reason = "; ".join(update.reasons) or record.reason
        elif not record.supported:
            reason = record.reason
        elif STEPS.index(record.step) > STEPS.index(chosen):
            reason = "a simpler step is kept: " + "; ".join(update.reasons)
        else:
            reason = "a fuller step is kept: " + "; ".join(update.reasons)
        rows.append(
            {
                "step": _STEP_NAMES[record.step],
                "supported": bool(record.supported),
                "required_episodes": record.required_episodes,
                "cv_log_loss": losses.get(record.step, np.nan),
                "kept": record.step == chosen,
                "reason": reason,
            }
        )
    model, step = update.model, _STEP_NAMES[chosen]
    candidate = selection = None
    stack_row = {"step": "stack", "supported": stack_considered, "required_episodes": need,
                 "cv_log_loss": np.nan, "kept": False}  # fmt: skip
    if need is None:
        stack_row["reason"] = "no sample size can be computed at this outcome rate and R²"
    elif not stack_considered:
        stack_row["reason"] = (
            f"{n_eff:.0f} effective known outcomes; Riley et al. 2020 ask for {need} for "
            f"{config.model.stack_parameters} parameters"
        )
    else:
        candidate, selection = _choose(X, y, w, groups, config)
        best = _chosen_loss(selection)
        reference = losses.get(chosen, np.nan)
        stack_row["cv_log_loss"] = best
        if best < reference:
            fitted = candidate_model(candidate, config).fit(X, y, w, groups)
            problem = _usable(fitted, X)
            if problem is None:
                model, step = fitted, "stack"
                for row in rows:
                    if row["kept"]:
                        row.update(kept=False, reason=row["reason"] + "; superseded by the stack")
                stack_row.update(
                    kept=True,
                    reason=f"CV log loss {best:.4f} below the {step_name(chosen)}'s "
                    f"{reference:.4f}",
                )
            else:
                stack_row["reason"] = f"refused: {problem}"
        else:
            stack_row["reason"] = (
                f"CV log loss {best:.4f} not below the {step_name(chosen)}'s {reference:.4f}"
            )
    rows.append(stack_row)
    problem = _usable(model, X)
    if problem is not None and model is not base:
        for row in rows:
            if row["kept"]:
                row.update(kept=False, reason=f"refused: {problem}")
        rows[0].update(kept=True, reason="the chosen step was refused: " + problem)
        model, step, candidate = base, "literature", None
    problem = _usable(model, X)
    if problem is not None:
        raise TrainingDataError(
            f"the literature model cannot be used on this cohort: {problem} (are the "
            "features it reads recorded?)"
        )
    table = pd.DataFrame(rows).set_index("step")
    return Ladder(model, step, table, base, candidate if step == "stack" else None, selection)


def step_name(step: str) -> str:
    """The ladder's name for an update step (``none`` is the literature model as is)."""
    return _STEP_NAMES.get(step, step)


def _metrics(
    data: TrainingData, risk: np.ndarray, config: TrainConfig, n_boot: int
) -> pd.DataFrame:
    return summarise(
        evaluate(
            data.labels,
            risk,
            data.weights,
            n_boot=n_boot,
            random_state=config.random_state,
            groups=data.groups,
        )
    ).rename(index={"observed_expected": "oe_ratio"})


def _split_by_athlete(data: TrainingData, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    splitter = GroupShuffleSplit(
        n_splits=1, test_size=config.split.test_fraction, random_state=config.random_state
    )
    train, test = next(splitter.split(data.features, groups=data.groups))
    return np.sort(train), np.sort(test)


def _split_by_time(data: TrainingData, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    times = data.episodes["prediction_time"].to_numpy()
    cutoff = np.quantile(
        times.astype("datetime64[D]").astype(np.int64), 1 - config.split.temporal_test_fraction
    )
    later = times.astype("datetime64[D]").astype(np.int64) > cutoff
    return np.flatnonzero(~later), np.flatnonzero(later)


def _shifted(metrics: pd.DataFrame, optimism: pd.DataFrame) -> pd.DataFrame:
    """Estimates and interval ends moved by each metric's optimism (Harrell's correction
    applied to the apparent bootstrap interval: the interval keeps its width)."""
    shift = optimism["optimism"].rename(index={"observed_expected": "oe_ratio"})
    # The ECE is a distance from 0 whose bootstrap is biased upward: it is shown apparent.
    shift = shift.reindex(metrics.index).fillna(0.0).drop("ece", errors="ignore")
    shift = shift.reindex(metrics.index).fillna(0.0)
    return metrics.sub(shift, axis=0)


def _log_loss_optimism(optimism: pd.DataFrame) -> float:
    """What Harrell's correction adds to the apparent log loss (0 when not estimated)."""
    if "log_loss" not in optimism.index:
        return 0.0
    value = float(optimism.loc["log_loss", "optimism"])
    return -value if np.isfinite(value) else 0.0


def develop_model(
    data: TrainingData, config: TrainConfig, literature: LiteratureConfig | None = None
) -> Development:
    """Choose the model along the ladder, fit it and measure it without wasting outcomes.

    Below ``evaluation.small_cohort_episodes`` the model is fitted on every episode and its
    performance is the apparent one corrected by Harrell's bootstrap of the whole procedure,
    ladder choice included (``optimism_boot`` replicates), with the apparent bootstrap
    interval shifted alike: a held-out quarter of a small clinic would cost a quarter of its
    outcomes and leave too few to judge. Above it the athletes are split, the ladder is
    fitted on the training ones and measured on the held-out ones. Either way the ladder is
    refitted on the earlier episodes and measured on the later ones (temporal check), and
    the literature model as is is measured on the same episodes as the chosen one.
    """
    literature = literature or load_config(LiteratureConfig, name="literature")
    n_boot = config.evaluation.n_boot
    n = len(data.labels)
    small = n < config.evaluation.small_cohort_episodes
    if small and config.evaluation.optimism_boot:
        fit_data = test = data
        validation = "optimism"
        reason = (
            f"{n} episodes, below evaluation.small_cohort_episodes "
            f"({config.evaluation.small_cohort_episodes}): fitted on all of them, performance "
            f"corrected for optimism by {config.evaluation.optimism_boot} bootstrap refits of "
            "the whole procedure, ladder choice included"
        )
    else:
        train_rows, test_rows = _split_by_athlete(data, config)
        fit_data, test = data.subset(train_rows), data.subset(test_rows)
        validation = "held-out"
        reason = (
            f"{n} episodes, at least evaluation.small_cohort_episodes "
            f"({config.evaluation.small_cohort_episodes}): fitted on "
            f"{1 - config.split.test_fraction:.0%} of the athletes, measured on the others"
            if not small
            else "optimism_boot is 0: fitted on the training athletes, measured on the others"
        )
    ladder = fit_ladder(
        fit_data.features, fit_data.labels, fit_data.weights, fit_data.groups, config, literature
    )
    test_risk = np.asarray(ladder.model.predict_risk(test.features), dtype=np.float64)
    literature_risk = np.asarray(ladder.literature.predict_risk(test.features), dtype=np.float64)
    metrics = _metrics(test, test_risk, config, n_boot)
    baseline_metrics = _metrics(test, literature_risk, config, n_boot)
    if validation == "held-out" and config.evaluation.refit_on_all:
        # Measured: the procedure on the training athletes. Registered: the same procedure
        # on every episode (the held-out figures are then a slightly pessimistic estimate).
        fit_data = data
        ladder = fit_ladder(
            data.features, data.labels, data.weights, data.groups, config, literature
        )
        reason += "; the registered model is then refitted on all of them"
    model = ladder.model
    # The registered model carries its timing, fitted on the episodes the registered model
    # was: the pyfunc, the model cache and the compact model spread the one-year risk over
    # the horizons with it (models.curve.risk_curve).
    timing = fit_timing(fit_data, config)
    # A trained RiskModel keeps the full fit and compacts it with itself (RiskModel.compact);
    # a literature or updated model is served as it is registered, so it carries the
    # lightest form that gives the same numbers (a lookup then imports no LightGBM unless
    # the timing kept trees).
    model.timing_ = timing if isinstance(model, RiskModel) else timing.compact()

    optimism = None
    log_loss_optimism = literature_log_loss_optimism = 0.0
    if validation == "optimism":

        def bootstrap(fit: Callable[..., Any], **options: Any) -> pd.DataFrame:
            return optimism_corrected(
                fit, data.features, data.labels, data.weights, data.groups,
                n_boot=config.evaluation.optimism_boot, random_state=config.random_state,
                **options,
            )  # fmt: skip

        optimism = bootstrap(
            lambda X, y, w, g: fit_ladder(X, y, w, g, config, literature, explain=False).model
        )
        metrics = _shifted(metrics, optimism)
        log_loss_optimism = _log_loss_optimism(optimism)
        literature_log_loss_optimism = _log_loss_optimism(
            bootstrap(
                lambda X, y, w, g: LiteratureModel.from_config(literature).fit(X, CATEGORICAL),
                metrics=["log_loss"],
            )
        )

    early_rows, late_rows = _split_by_time(data, config)
    early, late = data.subset(early_rows), data.subset(late_rows)
    temporal = fit_ladder(
        early.features, early.labels, early.weights, early.groups, config, literature,
        explain=False,
    ).model  # fmt: skip
    temporal_metrics = _metrics(late, temporal.predict_risk(late.features), config, n_boot)

    where = "all episodes, apparent" if validation == "optimism" else "held-out athletes"
    curve = calibration_curve(
        test.labels,
        test_risk,
        test.weights,
        groups=test.groups,
        n_boot=min(n_boot, 200),
        random_state=config.random_state,
    )
    figures = {
        "calibration": plots.calibration_figure(curve, title=f"Calibration, {where}"),
        "roc": plots.roc_figure(test.labels, test_risk, test.weights, title=f"ROC, {where}"),
        "importance": plots.importance_figure(model.contributions(test.features)),
        "decision_curve": plots.decision_curve_figure(
            net_benefit(test.labels, test_risk, test.weights)
        ),
    }
    status = data.episodes["status"].value_counts()
    counts = {
        "episodes": n,
        "athletes": len(np.unique(data.groups)),
        "train_episodes": len(fit_data.labels),
        "test_episodes": 0 if validation == "optimism" else len(test.labels),
        **{f"status_{k}": int(v) for k, v in status.items()},
    }
    return Development(
        model=model,
        candidate=ladder.candidate,
        selection=ladder.selection,
        ladder=ladder.table,
        step=ladder.step,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        temporal_metrics=temporal_metrics,
        optimism=optimism,
        test=test,
        test_risk=test_risk,
        literature_risk=literature_risk,
        validation=validation,
        validation_reason=reason,
        figures=figures,
        counts=counts,
        log_loss_optimism=log_loss_optimism,
        literature_log_loss_optimism=literature_log_loss_optimism,
    )


def synthetic_input_example(features: pd.DataFrame) -> pd.DataFrame:
    """Two made-up rows for the model's signature: a typical episode and one with nothing known.

    The typical row is built from per-column medians and most frequent categories, so it
    describes no real athlete; the second row shows that every feature may be missing.
    """
    typical: dict[str, Any] = {}
    for spec in FEATURES:
        column = features[spec.name]
        if spec.kind == "numeric":
            typical[spec.name] = (
                float(np.round(column.median(), 2)) if column.notna().any() else np.nan
            )
        else:
            mode = column.dropna().mode()
            typical[spec.name] = mode.iloc[0] if len(mode) else pd.NA
    example = pd.DataFrame([typical, dict.fromkeys(typical)], columns=features.columns)
    return example.astype(features.dtypes.to_dict())


def _metric_dict(prefix: str, table: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, row in table.iterrows():
        out[f"{prefix}{name}"] = float(row["estimate"])
        out[f"{prefix}{name}_ci_low"] = float(row["low"])
        out[f"{prefix}{name}_ci_high"] = float(row["high"])
    return out


def log_loss_difference(
    test: TrainingData,
    risk: np.ndarray,
    reference_risk: np.ndarray,
    n_boot: int,
    random_state: int,
    shift: float = 0.0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """IPCW log loss of ``risk`` minus that of ``reference_risk`` on the same episodes, with a
    paired bootstrap interval over athletes; ``shift`` (the new model's log-loss optimism)
    is added to all three."""
    estimate = log_loss(test.labels, risk, test.weights) - log_loss(
        test.labels, reference_risk, test.weights
    )
    _, index = np.unique(test.groups, return_inverse=True)
    n_groups = int(index.max()) + 1 if len(index) else 0
    rng = np.random.default_rng(random_state)
    draws = []
    for _ in range(n_boot):
        times = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[index]
        w = test.weights * times
        if not np.any(w > 0):
            continue
        draws.append(log_loss(test.labels, risk, w) - log_loss(test.labels, reference_risk, w))
    if len(draws) < 2:
        return estimate + shift, float("nan"), float("nan")
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return estimate + shift, float(low) + shift, float(high) + shift


def _comparison(
    name: str, development: Development, config: TrainConfig
) -> tuple[registry.Comparison, dict[str, float]]:
    """The new model's log loss against the champion's (or, with none, the literature
    model's) on the episodes it was measured on."""
    return compare_with_champion(
        name,
        development.test,
        development.test_risk,
        config,
        literature_risk=development.literature_risk,
        shift=development.shift_against,
    )


def compare_with_champion(
    name: str,
    test: TrainingData,
    risk: np.ndarray,
    config: TrainConfig,
    *,
    literature_risk: np.ndarray,
    shift: Callable[[bool], float] = lambda literature: 0.0,
) -> tuple[registry.Comparison, dict[str, float]]:
    """``risk``'s IPCW log loss against the champion's on ``test`` (or, with no champion,
    ``literature_risk``'s), with a paired bootstrap interval; ``shift(literature)`` is the
    optimism correction to add. ``train`` and ``update`` both judge a new version by it.

    A champion is compared only on the episodes outside its own development (the
    fingerprint set its training run logged): on those it was fitted or measured on, its
    log loss is in-sample and would beat an identical retraining. With no such episode
    left, the difference is NaN and the decision says the two could not be compared.
    """
    version = registry.champion_version(name)
    left_out = 0
    if version is None:
        reference, judged = "the literature model", False
        reference_risk = literature_risk
    else:
        fingerprint = registry.development_episodes(name, version)
        if fingerprint is not None:
            seen = in_development(test.episodes, fingerprint)
            left_out = int(seen.sum())
            test, risk = test.subset(np.flatnonzero(~seen)), np.asarray(risk)[~seen]
        reference, judged = f"champion version {version}", registry.champion_judged(name)
        if left_out:
            known = int(np.sum(test.weights > 0))
            reference += f" (on the {known} known outcomes outside its development)"
        reference_risk = np.empty(0)
        if len(test.labels):
            champion = registry.load_risk_model(f"models:/{name}@champion")
            reference_risk = champion.predict(registry.as_model_input(test.features))[
                "risk"
            ].to_numpy(dtype=np.float64)
    if not np.any(test.weights > 0):
        nan = float("nan")
        comparison = registry.Comparison(reference, judged, nan, nan, nan)
        return comparison, {"reference_development_episodes_left_out": float(left_out)}
    estimate, low, high = log_loss_difference(
        test,
        risk,
        reference_risk,
        config.evaluation.n_boot,
        config.random_state,
        shift=shift(version is None),
        level=config.registry.gates.level,
    )
    metrics = {
        "reference_log_loss": log_loss(test.labels, reference_risk, test.weights),
        "log_loss_vs_reference": estimate,
        "log_loss_vs_reference_ci_low": low,
        "log_loss_vs_reference_ci_high": high,
        "reference_development_episodes_left_out": float(left_out),
    }
    return registry.Comparison(reference, judged, estimate, low, high), metrics


def _ladder_params(development: Development) -> dict[str, str]:
    out = {"validation": development.validation, "validation_reason": development.validation_reason,
           "ladder_step": development.step}  # fmt: skip
    for step, row in development.ladder.iterrows():
        verdict = "kept" if row["kept"] else ("refused" if not row["supported"] else "not kept")
        out[f"ladder_{step}"] = f"{verdict}: {row['reason']}"[:2000]
    return out


def _ladder_metrics(development: Development) -> dict[str, float]:
    out: dict[str, float] = {}
    for step, row in development.ladder.iterrows():
        out[f"ladder_{step}_supported"] = float(bool(row["supported"]))
        out[f"ladder_{step}_kept"] = float(bool(row["kept"]))
        if row["required_episodes"] is not None and np.isfinite(float(row["required_episodes"])):
            out[f"ladder_{step}_required_episodes"] = float(row["required_episodes"])
        if np.isfinite(float(row["cv_log_loss"])):
            out[f"ladder_{step}_cv_log_loss"] = float(row["cv_log_loss"])
    return out


def train_model(
    folder: Path | str,
    features_config: FeaturesConfig,
    train_config: TrainConfig,
    *,
    config_files: Sequence[Path] = (),
    today: dt.date | None = None,
    literature: LiteratureConfig | None = None,
) -> TrainResult:
    """Validate ``folder``, develop the model, log it to MLflow, register and gate it.

    Raises:
        UnusableInputError: the cohort cannot be read.
        TrainingDataError: too few known outcomes to train.
        TrackingError: the MLflow tracking server cannot be reached.
    """
    literature = literature or load_config(LiteratureConfig, name="literature")
    today = today or dt.date.today()
    reg = train_config.registry
    check_incidence_window(train_config.incidence, features_config.outcome.window_days)
    validation = validate_cohort(folder, today=today)
    data = prepare_training_data(validation.cohort, features_config, train_config, today)
    # An unreachable tracking server is reported now, not after minutes of model fitting.
    registry.check_store()
    development = develop_model(data, train_config, literature)
    comparison, comparison_metrics = _comparison(reg.model_name, development, train_config)
    metrics = {
        **_metric_dict("", development.metrics),
        **_metric_dict("baseline_", development.baseline_metrics),
        **_metric_dict("temporal_", development.temporal_metrics),
        **_ladder_metrics(development),
        **comparison_metrics,
        **{f"n_{k}": float(v) for k, v in development.counts.items()},
        "n_follow_up_from_records": float(data.follow_up_from_records),
        **data.weight_diagnostics.metrics(),
    }
    if development.optimism is not None:
        metrics.update(
            {
                f"optimism_corrected_{k}": float(v)
                for k, v in development.optimism["corrected"].items()
            }
        )
    run_id = registry.log_training_run(
        experiment=reg.experiment_name,
        params={
            "candidate": development.candidate.model_dump() if development.candidate else "none",
            "calibration": getattr(development.model, "calibration_", development.step),
            **_ladder_params(development),
            "censoring": train_config.censoring.model_dump(),
            "split": train_config.split.model_dump(),
            "random_state": train_config.random_state,
            "outcome": features_config.outcome.model_dump(),
        },
        metrics=metrics,
        config_files=list(config_files),
        fingerprint=registry.data_fingerprint(folder),
        # Episodes whose outcome the development used (fit, selection, held-out metrics);
        # censored and pending ones weigh 0 and stay new to the model's judgement.
        development_episodes=development_fingerprint(data.episodes.loc[data.weights > 0]),
        feature_names=list(development.model.feature_names_in_),
        figures=development.figures,
        risk_model=development.model,
        # The model carries how its training frame was built: scoring, lookups and audits
        # rebuild its features from this, not from whatever configs/features.yaml says then.
        feature_definition=FeatureDefinition.of(
            features_config,
            list(development.model.feature_names_in_),
            importlib.metadata.version("hamrisk"),
        ),
        input_example=registry.as_model_input(synthetic_input_example(data.features)),
        tags={"hamrisk.stage": "train", "hamrisk.candidate": development.step},
    )
    # The gates are decided before the version exists, and the version is registered with
    # its decision as a tag: a run killed before the alias moves leaves a complete version
    # that says which alias it was meant to get, while the champion stays where it was.
    decision = registry.decide_promotion(
        _metric_dict("", development.metrics), comparison, reg.gates
    )
    version = registry.register(run_id, reg.model_name, tags=registry.decision_tags(decision))
    registry.set_alias(reg.model_name, version, decision.alias)
    return TrainResult(
        validation=validation,
        development=development,
        data=data,
        run_id=run_id,
        model_name=reg.model_name,
        version=version,
        decision=decision,
    )


def _table(table: pd.DataFrame) -> str:
    return table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")


def format_training(result: TrainResult) -> str:
    """The human-readable report of one training run."""
    d = result.development
    counts = result.validation.counts
    set_aside = sum(c.set_aside for c in counts.values())
    lines = [
        f"records: {sum(c.rows for c in counts.values()):,} read, {set_aside:,} set aside"
        + (" (run `hamrisk validate` for the list)" if set_aside else ""),
        "episodes: " + ", ".join(f"{k.removeprefix('status_')} {v:,}" for k, v in d.counts.items()),
        f"follow-up lengthened by the athlete's own records: {result.data.follow_up_from_records:,}"
        " episodes",
        result.data.weight_diagnostics.text(),
        "",
        "ladder (each step kept only when the sample supports it and the data favour it):",
        _table(
            d.ladder.assign(
                required_episodes=d.ladder["required_episodes"].astype("Float64"),
                reason=d.ladder["reason"].str.slice(0, 110),
            )
        ),
        "chosen: "
        + d.step
        + (
            f" ({d.candidate.kind} {dict(d.candidate.params)}, "
            f"{getattr(d.model, 'calibration_', '')} calibration)"
            if d.candidate
            else ""
        ),
        f"validation: {d.validation} ({d.validation_reason})",
        "",
        (
            "optimism-corrected performance (95% interval: apparent bootstrap, shifted):"
            if d.validation == "optimism"
            else "held-out athletes (95% bootstrap CI):"
        ),
        _table(d.metrics),
        "",
        "the literature model as is on the same episodes: "
        f"AUC {d.baseline_metrics.loc['auc', 'estimate']:.3f}, "
        f"log loss {d.baseline_metrics.loc['log_loss', 'estimate']:.3f}",
        f"temporal check (later episodes): AUC {d.temporal_metrics.loc['auc', 'estimate']:.3f},"
        f" O/E {d.temporal_metrics.loc['oe_ratio', 'estimate']:.2f},"
        f" slope {d.temporal_metrics.loc['calibration_slope', 'estimate']:.2f}",
    ]
    if d.optimism is not None:
        lines += ["", "optimism (bootstrap of the whole procedure):", _table(d.optimism)]
    lines += [
        "",
        f"MLflow run {result.run_id} at {registry.shown_uri(registry.tracking_uri())}",
        f"registered {result.model_name} version {result.version} as {result.decision.alias}: "
        + "; ".join(result.decision.reasons),
    ]
    return "\n".join(lines)
