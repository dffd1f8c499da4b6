"""Training stage: validated cohort -> labelled episodes -> features -> calibrated model.

``develop_model`` is the statistics (split, censoring weights, model choice, held-out and
temporal evaluation) and touches neither disk nor MLflow, so tests and benchmarks call it
directly; ``train_model`` wraps it with validation, the MLflow run, registration and the
promotion decision.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.model_selection import GroupShuffleSplit

from features import build_feature_frame
from features.catalog import FEATURES
from features.definition import FeatureDefinition
from models import plots
from models.estimators import RiskModel
from models.evaluation import (
    brier_score,
    calibration_curve,
    evaluate,
    log_loss,
    net_benefit,
    optimism_corrected,
    summarise,
)
from models.selection import select_model
from pipeline import registry
from pipeline.cohort import Cohort
from pipeline.config import CandidateConfig, FeaturesConfig, TrainConfig
from pipeline.episodes import (
    WeightDiagnostics,
    censoring_inputs,
    censoring_weights,
    development_fingerprint,
    index_episodes,
)
from pipeline.errors import HamriskError
from pipeline.validate import ValidationResult, validate_cohort

MONOTONE: dict[str, int] = {s.name: s.direction for s in FEATURES if s.direction}
CATEGORICAL: list[str] = [s.name for s in FEATURES if s.kind == "categorical"]


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
    """A fitted model and everything measured about it before registration."""

    model: RiskModel
    candidate: CandidateConfig
    selection: pd.DataFrame
    metrics: pd.DataFrame
    baseline_metrics: pd.DataFrame
    temporal_metrics: pd.DataFrame
    optimism: pd.DataFrame | None
    test: TrainingData
    test_risk: np.ndarray
    figures: dict[str, Figure] = field(repr=False)
    counts: dict[str, int] = field(default_factory=dict)


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


def choose_candidate(
    data: TrainingData, config: TrainConfig
) -> tuple[CandidateConfig, pd.DataFrame]:
    """The configured candidate with the lowest grouped-CV weighted log loss, and the table."""
    selection = select_model(
        data.features,
        data.labels,
        data.weights,
        data.groups,
        [c.model_dump() for c in config.model.candidates],
        cv=config.model.cv_folds,
        random_state=config.random_state,
        monotone=MONOTONE,
        categorical=CATEGORICAL,
        early_stopping=config.model.early_stopping_rounds,
    )
    return CandidateConfig.model_validate(selection.best), selection.table


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


def develop_model(data: TrainingData, config: TrainConfig) -> Development:
    """Choose, fit, calibrate and evaluate the model on held-out athletes.

    Steps: split athletes into training and held-out sets; choose among the candidates by
    grouped cross-validation on the training set; fit the winner (calibrated, with its
    bootstrap ensemble) and the logistic baseline on the training set; evaluate both on
    the held-out athletes with bootstrap CIs; repeat the fit on the earlier episodes and
    evaluate on the later ones (temporal check); add Harrell's optimism correction when
    the cohort is small.
    """
    train_rows, test_rows = _split_by_athlete(data, config)
    train, test = data.subset(train_rows), data.subset(test_rows)
    candidate, selection_table = choose_candidate(train, config)
    model = fit_candidate(candidate, train, config)
    baseline = fit_candidate(config.model.baseline, train, config, n_bootstrap=0)
    test_risk = model.predict_risk(test.features)
    n_boot = config.evaluation.n_boot
    metrics = _metrics(test, test_risk, config, n_boot)
    baseline_metrics = _metrics(test, baseline.predict_risk(test.features), config, n_boot)

    early_rows, late_rows = _split_by_time(data, config)
    early, late = data.subset(early_rows), data.subset(late_rows)
    temporal_model = fit_candidate(candidate, early, config, n_bootstrap=0)
    temporal_metrics = _metrics(late, temporal_model.predict_risk(late.features), config, n_boot)

    optimism = None
    if (
        len(data.labels) < config.evaluation.small_cohort_episodes
        and config.evaluation.optimism_boot
    ):
        optimism = optimism_corrected(
            lambda X, y, w, g: candidate_model(candidate, config, n_bootstrap=0).fit(X, y, w, g),
            data.features,
            data.labels,
            data.weights,
            data.groups,
            n_boot=config.evaluation.optimism_boot,
            random_state=config.random_state,
        )

    curve = calibration_curve(
        test.labels,
        test_risk,
        test.weights,
        groups=test.groups,
        n_boot=min(n_boot, 200),
        random_state=config.random_state,
    )
    figures = {
        "calibration": plots.calibration_figure(curve, title="Calibration, held-out athletes"),
        "roc": plots.roc_figure(
            test.labels, test_risk, test.weights, title="ROC, held-out athletes"
        ),
        "importance": plots.importance_figure(model.contributions(test.features)),
        "decision_curve": plots.decision_curve_figure(
            net_benefit(test.labels, test_risk, test.weights)
        ),
    }
    status = data.episodes["status"].value_counts()
    counts = {
        "episodes": len(data.labels),
        "athletes": len(np.unique(data.groups)),
        "train_episodes": len(train_rows),
        "test_episodes": len(test_rows),
        **{f"status_{k}": int(v) for k, v in status.items()},
    }
    return Development(
        model=model,
        candidate=candidate,
        selection=selection_table,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        temporal_metrics=temporal_metrics,
        optimism=optimism,
        test=test,
        test_risk=test_risk,
        figures=figures,
        counts=counts,
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


def _champion_metrics(name: str, test: TrainingData) -> dict[str, float] | None:
    """The current champion's Brier score and log loss on the new held-out set."""
    version = registry.champion_version(name)
    if version is None:
        return None
    champion = registry.load_risk_model(f"models:/{name}@champion")
    risk = champion.predict(registry.as_model_input(test.features))["risk"].to_numpy(
        dtype=np.float64
    )
    return {
        "brier": brier_score(test.labels, risk, test.weights),
        "log_loss": log_loss(test.labels, risk, test.weights),
    }


def train_model(
    folder: Path | str,
    features_config: FeaturesConfig,
    train_config: TrainConfig,
    *,
    config_files: Sequence[Path] = (),
    today: dt.date | None = None,
) -> TrainResult:
    """Validate ``folder``, develop the model, log it to MLflow, register and gate it.

    Raises:
        UnusableInputError: the cohort cannot be read.
        TrainingDataError: too few known outcomes to train.
        TrackingError: the MLflow tracking server cannot be reached.
    """
    today = today or dt.date.today()
    reg = train_config.registry
    validation = validate_cohort(folder, today=today)
    data = prepare_training_data(validation.cohort, features_config, train_config, today)
    # An unreachable tracking server is reported now, not after minutes of model fitting.
    registry.check_store()
    development = develop_model(data, train_config)
    champion = _champion_metrics(reg.model_name, development.test)
    metrics = {
        **_metric_dict("", development.metrics),
        **_metric_dict("baseline_", development.baseline_metrics),
        **_metric_dict("temporal_", development.temporal_metrics),
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
    if champion is not None:
        metrics.update({f"champion_{k}": v for k, v in champion.items()})
    run_id = registry.log_training_run(
        experiment=reg.experiment_name,
        params={
            "candidate": development.candidate.model_dump(),
            "calibration": development.model.calibration_,
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
        tags={"hamrisk.stage": "train", "hamrisk.candidate": development.candidate.kind},
    )
    # The gates are decided before the version exists, and the version is registered with
    # its decision as a tag: a run killed before the alias moves leaves a complete version
    # that says which alias it was meant to get, while the champion stays where it was.
    held_out = {k: float(development.metrics.loc[k, "estimate"]) for k in registry.METRIC_NAMES}
    decision = registry.decide_promotion(held_out, champion, reg.gates)
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
        f"chosen: {d.candidate.kind} {dict(d.candidate.params)}, "
        f"{d.model.calibration_} calibration",
        "",
        "held-out athletes (95% bootstrap CI):",
        _table(d.metrics),
        "",
        "logistic baseline on the same athletes: "
        f"AUC {d.baseline_metrics.loc['auc', 'estimate']:.3f}, "
        f"Brier {d.baseline_metrics.loc['brier', 'estimate']:.3f}",
        f"temporal check (later episodes): AUC {d.temporal_metrics.loc['auc', 'estimate']:.3f},"
        f" O/E {d.temporal_metrics.loc['oe_ratio', 'estimate']:.2f},"
        f" slope {d.temporal_metrics.loc['calibration_slope', 'estimate']:.2f}",
    ]
    if d.optimism is not None:
        lines += ["", "optimism-corrected (bootstrap, whole cohort):", _table(d.optimism)]
    lines += [
        "",
        f"MLflow run {result.run_id} at {registry.shown_uri(registry.tracking_uri())}",
        f"registered {result.model_name} version {result.version} as {result.decision.alias}: "
        + "; ".join(result.decision.reasons),
    ]
    return "\n".join(lines)
