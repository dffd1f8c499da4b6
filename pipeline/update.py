"""The literature model as the first champion, and updating a model to a clinic's records.

A clinic with no history of its own still gets an answer: the first time a command needs
``models:/NAME@champion`` and the store holds no version of ``NAME``, the literature model
(:mod:`models.literature`, ``configs/literature.yaml``) is built and registered as version 1
with ``champion`` (:func:`ensure_champion`). Its coefficients are the published effects; its
intercept is solved on a *reference population* (:func:`reference_features`): the features of
typical treated episodes drawn by the simulator's covariate model in its ``literature`` world
with the configured seed. Only features are read, never the simulated outcomes.

``hamrisk update`` (:func:`update_model`) then updates a logistic model (the literature model,
or an updated one, from this store or another clinic's) to this clinic's records by the
closed testing of :mod:`models.updating`: labels and IPCW weights exactly as training builds
them (``prepare_training_data``), the update fitted on the same athletes training would fit
on and judged on the same held-out athletes with the same bootstrap, and the same promotion
decision as ``train``. A trained LightGBM or logistic ``RiskModel`` is refused: it has no
published standard errors to centre a revision on, and ``hamrisk train`` refits it whole.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import importlib.metadata
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.catalog import CATEGORICAL, MONOTONE
from features.definition import FeatureDefinition
from models.served import ServedLinearModel, model_kind
from pipeline.config import FeaturesConfig, LiteratureConfig, TrainConfig
from pipeline.errors import HamriskError

if TYPE_CHECKING:
    # SciPy, glum and statsmodels are imported on use: a lookup that finds its model
    # registered pays for none of them.
    from models.literature import LiteratureModel
    from models.updating import UpdateResult

# What every output says of a model no clinic's outcomes have checked yet.
UNCHECKED_NOTE = "published effects only: not yet checked against this clinic's outcomes"


class UpdateError(HamriskError):
    """The model named cannot be updated (a trained, non-logistic model, say)."""

    exit_code = 2


# --- the literature model and its reference population ------------------------------------


def config_digest(literature: LiteratureConfig) -> str:
    """SHA-256 of the literature settings: which published figures a version was built from."""
    text = json.dumps(literature.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reference_features(literature: LiteratureConfig, features: FeaturesConfig) -> pd.DataFrame:
    """The reference population's feature frame (features only, never outcomes).

    The simulator's ``literature`` world draws ``reference.athletes`` athletes with
    ``reference.random_state``; their tables are read through the data contract like any
    clinic's export and their returned index episodes' features are built as scoring builds
    them.
    """
    from features import build_feature_frame
    from pipeline.config import load_config
    from pipeline.episodes import index_episodes
    from pipeline.io import write_tables
    from pipeline.validate import validate_cohort
    from simulator.config import SimulationConfig
    from simulator.simulate import simulate_cohort

    settings = load_config(SimulationConfig, name="simulation").in_world(literature.reference.world)
    reference = literature.reference
    sim = simulate_cohort(settings, reference.athletes, reference.random_state)
    with tempfile.TemporaryDirectory(prefix="hamrisk-reference-") as folder:
        write_tables(sim.tables, folder)
        cohort = validate_cohort(folder, today=settings.export_date).cohort
    episodes = index_episodes(cohort, settings.export_date, features.outcome)
    episodes = episodes[~episodes["provisional"].to_numpy(dtype=bool)].reset_index(drop=True)
    return build_feature_frame(cohort, episodes, features)


@dataclass(frozen=True)
class LiteratureBuild:
    """The fitted literature model ready to log: model, definition, example, params, tags."""

    risk_model: ServedLinearModel
    definition: FeatureDefinition
    input_example: pd.DataFrame
    params: dict[str, Any]
    tags: dict[str, str]
    coefficients: pd.DataFrame


def build_literature_model(
    literature: LiteratureConfig, features: FeaturesConfig
) -> LiteratureBuild:
    """Fit the literature model on the reference population, with what registration logs."""
    from models.literature import LiteratureModel
    from pipeline.train import synthetic_input_example

    reference = reference_features(literature, features)
    model = LiteratureModel.from_config(literature).fit(reference)
    served = ServedLinearModel(model, "literature").fit(reference, categorical=CATEGORICAL)
    names = list(reference.columns)
    coefficients = model.coefficients()
    params: dict[str, Any] = {
        "baseline_risk": literature.baseline_risk,
        "baseline_risk_interval": list(literature.baseline_risk_interval),
        "intercept": round(model.intercept_, 6),
        "reference": literature.reference.model_dump(),
        "reference_episodes": len(reference),
        "effects": {
            row.term: {
                "column": row.column,
                "coefficient": round(float(row.coefficient), 6),
                "se": round(float(row.se), 6),
                "odds_ratio_per": round(float(row.odds_ratio_per), 4),
                "per": row.per,
            }
            for row in coefficients.itertuples()
        },
    }
    from pipeline.registry import as_model_input

    return LiteratureBuild(
        risk_model=served,
        definition=FeatureDefinition.of(features, names, importlib.metadata.version("hamrisk")),
        input_example=as_model_input(synthetic_input_example(reference)),
        params=params,
        tags={
            "hamrisk.stage": "literature",
            "hamrisk.kind": "literature",
            "hamrisk.config_digest": config_digest(literature),
        },
        coefficients=coefficients,
    )


def ensure_champion(
    uri: str, literature: LiteratureConfig, features: FeaturesConfig, experiment: str
) -> int | None:
    """Register the literature model as ``champion`` when ``uri`` is ``models:/NAME@champion``
    and the store holds no version of ``NAME``; return the version registered, else ``None``.

    Cheap when a version exists: a SQLite store is read directly, without MLflow.
    """
    from pipeline import model_cache

    name = champion_name(uri)
    if name is None or model_cache.resolve_local(uri) is not None:
        return None
    from pipeline import registry

    return registry.register_first_version(
        name, experiment, lambda: build_literature_model(literature, features)
    )


def champion_name(uri: str) -> str | None:
    """``NAME`` of ``models:/NAME@champion``, else ``None``."""
    prefix, suffix = "models:/", "@champion"
    if uri.startswith(prefix) and uri.endswith(suffix) and "/" not in uri[len(prefix) :]:
        return uri[len(prefix) : -len(suffix)] or None
    return None


# --- hamrisk update -----------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateRun:
    """What ``hamrisk update`` reports."""

    parent_uri: str
    parent_version: str
    parent_kind: str
    result: UpdateResult
    metrics: pd.DataFrame
    counts: dict[str, int]
    run_id: str
    model_name: str
    version: int
    decision: Any


def _base_of(risk_model: Any, uri: str) -> LiteratureModel:
    """The logistic model to update: the literature model, or an updated one taken as the new
    starting point (its coefficients, the published standard errors)."""
    from models.literature import LiteratureModel
    from models.updating import UpdatedModel

    kind = model_kind(risk_model)
    if kind == "trained":
        raise UpdateError(
            f"{uri}: a trained model ({type(risk_model).__name__}) has no published effects "
            "to update; `hamrisk update` updates the literature model or an updated one "
            "(use `hamrisk train` to refit a trained model, or --from the literature model)"
        )
    model = risk_model.model
    if isinstance(model, LiteratureModel):
        return model
    if isinstance(model, UpdatedModel):
        if getattr(model, "extension_", None) is not None:
            raise UpdateError(
                f"{uri}: an extended model (effects of records no paper measured, "
                f"{', '.join(model.extension_.columns[:3])}...) cannot be the starting point "
                "of another update: its new terms have no published standard errors to centre "
                "a revision on. Update from the literature model, or `hamrisk train` on the "
                "pooled records"
            )
        base = copy.copy(model.base)
        base.intercept_ = float(model.intercept_)
        base.coef_ = np.asarray(model.coef_, dtype=np.float64).copy()
        base.base_rate_ = float(model.base_rate_)
        return base
    raise UpdateError(f"{uri}: cannot update a {type(model).__name__}")


def update_model(
    folder: Path | str,
    literature: LiteratureConfig,
    train_config: TrainConfig,
    *,
    parent_uri: str,
    config_files: tuple[Path, ...] = (),
    today: dt.date | None = None,
) -> UpdateRun:
    """Update the model ``parent_uri`` names to the records in ``folder``; register the result.

    The update is fitted on the athletes training fits on (``develop_model``'s split by
    athlete) and evaluated on the held-out athletes with the same bootstrap, so its gates and
    its comparison with the champion are the ones ``train`` applies.

    Raises:
        UnusableInputError: the cohort cannot be read.
        TrainingDataError: too few known outcomes.
        UpdateError: the parent is a trained (non-logistic) model.
        TrackingError: the store cannot be reached.
    """
    from models.literature import LiteratureModel
    from models.updating import update_from_config
    from pipeline import registry
    from pipeline.episodes import development_fingerprint
    from pipeline.model_cache import load_model
    from pipeline.train import (
        _metric_dict,
        _metrics,
        _split_by_athlete,
        compare_with_champion,
        prepare_training_data,
        synthetic_input_example,
    )
    from pipeline.validate import validate_cohort

    today = today or dt.date.today()
    reg = train_config.registry
    parent = load_model(parent_uri)
    base = _base_of(parent.risk_model, parent_uri)
    validation = validate_cohort(folder, today=today)
    # The parent's feature settings, not today's configs/features.yaml: the update reads the
    # same columns, built the same way, as the model it starts from.
    parent.check_features()
    data = prepare_training_data(validation.cohort, parent.definition.config, train_config, today)
    registry.check_store()
    train_rows, test_rows = _split_by_athlete(data, train_config)
    train, test = data.subset(train_rows), data.subset(test_rows)
    result = update_from_config(
        base, train.features, train.labels, train.weights, train.groups, literature.updating,
        MONOTONE,
    )  # fmt: skip
    served = ServedLinearModel(result.model, "updated").fit(train.features, categorical=CATEGORICAL)
    n_boot = train_config.evaluation.n_boot
    risk = served.predict_risk(test.features)
    held_out = _metrics(test, risk, train_config, n_boot)
    # The literature model centred on this clinic's episodes, as train's ladder starts from:
    # the reference when the store has no champion.
    literature_model = LiteratureModel.from_config(literature).fit(train.features, CATEGORICAL)
    comparison, comparison_metrics = compare_with_champion(
        reg.model_name,
        test,
        risk,
        train_config,
        literature_risk=literature_model.predict_risk(test.features),
    )
    counts = {
        "episodes": len(data.labels),
        "athletes": len(np.unique(data.groups)),
        "train_episodes": len(train_rows),
        "test_episodes": len(test_rows),
    }
    metrics = {
        **_metric_dict("", held_out),
        **{f"n_{k}": float(v) for k, v in counts.items()},
        "effective_episodes": result.effective_episodes,
        "update_events": result.events,
        **data.weight_diagnostics.metrics(),
    }
    for test_ in result.tests:
        key = f"lr_{test_.extensive}_vs_{test_.simpler}"
        metrics[f"{key}_statistic"] = test_.statistic
        metrics[f"{key}_df"] = test_.df
        metrics[f"{key}_p"] = test_.p_value
    if result.penalty_strength is not None:
        metrics["penalty_strength"] = float(result.penalty_strength)
    metrics.update(comparison_metrics)
    names = [str(c) for c in base.feature_names_in_]
    run_id = registry.log_training_run(
        experiment=reg.experiment_name,
        params={
            "parent_uri": parent_uri,
            "parent_version": parent.version,
            "update_step": result.step,
            "steps": {
                record.step: ("supported" if record.supported else "refused: " + record.reason)
                for record in result.steps
            },
            "updating": literature.updating.model_dump(),
            "split": train_config.split.model_dump(),
            "censoring": train_config.censoring.model_dump(),
            "random_state": train_config.random_state,
        },
        metrics=metrics,
        config_files=list(config_files),
        fingerprint=registry.data_fingerprint(folder),
        development_episodes=development_fingerprint(train.episodes.loc[train.weights > 0]),
        feature_names=names,
        figures={},
        risk_model=served,
        feature_definition=parent.definition,
        input_example=registry.as_model_input(synthetic_input_example(data.features)[names]),
        tags={
            "hamrisk.stage": "update",
            "hamrisk.kind": "updated",
            "hamrisk.parent": f"{parent.name}/{parent.version}",
            "hamrisk.update_step": result.step,
        },
    )
    decision = registry.decide_promotion(_metric_dict("", held_out), comparison, reg.gates)
    tags = {
        **registry.decision_tags(decision),
        "hamrisk.kind": "updated",
        "hamrisk.parent": f"{parent.name}/{parent.version}",
        "hamrisk.update_step": result.step,
        "hamrisk.update_reasons": "; ".join(result.reasons)[:4000],
    }
    version = registry.register(run_id, reg.model_name, tags=tags)
    registry.set_alias(reg.model_name, version, decision.alias)
    return UpdateRun(
        parent_uri=parent_uri,
        parent_version=parent.version,
        parent_kind=model_kind(parent.risk_model),
        result=result,
        metrics=held_out,
        counts=counts,
        run_id=run_id,
        model_name=reg.model_name,
        version=version,
        decision=decision,
    )


def format_update(run: UpdateRun) -> str:
    """The human-readable report of one update."""
    r = run.result
    lines = [
        f"parent: {run.parent_uri} (version {run.parent_version}, {run.parent_kind})",
        "episodes: " + ", ".join(f"{k} {v:,}" for k, v in run.counts.items()),
        f"known outcomes: {r.effective_episodes:.1f} effective, {r.events:.1f} recurrences "
        f"(rate {r.event_rate:.3f})",
        "steps:",
    ]
    for record in r.steps:
        state = "available" if record.supported else "refused"
        lines.append(f"  {record.step:<14}{state}: {record.reason}")
    for t in r.tests:
        verdict = "beats" if t.significant else "does not beat"
        lines.append(
            f"  LR test {t.extensive} {verdict} {t.simpler}: chi2 {t.statistic:.2f} on "
            f"{t.df:.1f} df, p {t.p_value:.3f}"
        )
    lines.append(f"chosen step: {r.step}" + (f" ({'; '.join(r.reasons)})" if r.reasons else ""))
    lines += [
        "",
        "held-out athletes (95% bootstrap CI):",
        run.metrics.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"),
        "",
        f"registered {run.model_name} version {run.version} (updated from version "
        f"{run.parent_version}) as {run.decision.alias}: " + "; ".join(run.decision.reasons),
    ]
    return "\n".join(lines)
