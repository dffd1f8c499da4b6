"""The ``hamrisk`` command: parse options, load config, call one stage, print its result.

What lives here is the command line's own: options checked and turned into config
overrides (``simulate``'s calendar, say) and each result put into words. The statistics
and the files are the stages'; nothing happens at import time beyond building the Typer app.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from pipeline.errors import HamriskError

app = typer.Typer(
    name="hamrisk",
    help="Hamstring reinjury risk at return to sport: validate, simulate, train, score, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(exc: HamriskError) -> typer.Exit:
    """Print a user-facing error on stderr and return the exit to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=exc.exit_code)


def _ensure_champion(uri: str) -> None:
    """Register the literature model as champion when ``uri`` is the champion of a model
    with no version yet (``pipeline.update.ensure_champion``); a no-op otherwise."""
    from pipeline.model_cache import resolve_local
    from pipeline.update import champion_name

    # The usual case, a SQLite store holding the version, costs one read-only query.
    if champion_name(uri) is None or resolve_local(uri) is not None:
        return
    from pipeline.config import FeaturesConfig, LiteratureConfig, RegistryFileConfig, load_config
    from pipeline.update import ensure_champion

    version = ensure_champion(
        uri,
        load_config(LiteratureConfig, name="literature"),
        load_config(FeaturesConfig, name="features"),
        load_config(RegistryFileConfig, name="train").registry.experiment_name,
    )
    if version is not None:
        typer.echo(
            f"no model was registered: the literature model is now version {version} "
            "(champion) until a trained or updated version passes the gates",
            err=True,
        )


# --- hamrisk validate: the cohort contract ---


@app.command("validate")
def validate(
    folder: Path = typer.Argument(..., help="Cohort folder with the five tables."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Write the set-aside records to this CSV file."
    ),
    today: datetime | None = typer.Option(
        None, "--today", formats=["%Y-%m-%d"], help="Date of the run (default: today)."
    ),
) -> None:
    """Check a cohort against the data contract: exit 0 valid, 1 some set aside, 2 unusable."""
    import json

    from pipeline.validate import format_summary, report_document, validate_cohort, write_rejects

    try:
        result = validate_cohort(folder, today=today.date() if today else None)
    except HamriskError as exc:
        if json_output:
            error = {key: getattr(exc, key, None) for key in ("path", "problem", "hint")}
            document = {"usable": False, "error": error, "tables": {}, "set_aside": []}
            typer.echo(json.dumps(document))
        raise fail(exc) from None
    if rejects is not None:
        try:
            write_rejects(result.set_aside, rejects)
        except OSError as exc:
            typer.echo(f"error: {rejects}: cannot write rejects ({exc.strerror})", err=True)
            raise typer.Exit(code=2) from None
    if json_output:
        typer.echo(json.dumps(report_document(result)))
    else:
        typer.echo(format_summary(result))
    raise typer.Exit(code=result.exit_code)


# --- hamrisk simulate: the synthetic cohort behind the demo and the tests ---


@app.command("simulate")
def simulate(
    out: Path = typer.Argument(
        ..., help="Cohort folder to write; the truth goes to OUT.truth.csv."
    ),
    athletes: int | None = typer.Option(
        None, "--athletes", min=1, help="Athletes to simulate (default: configs/simulation.yaml)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="random_state (default: configs/simulation.yaml)."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="csv or parquet (default: configs/simulation.yaml)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Simulation config (default: configs/simulation.yaml)."
    ),
    world: str | None = typer.Option(
        None,
        "--world",
        help="literature, unlike_papers or weak: one of the config's worlds (default: its world).",
    ),
    timing: str | None = typer.Option(
        None,
        "--timing",
        help="episode (a rushed return recurs earlier) or fixed: one timing curve for all"
        " (default: the config's recurrence.timing).",
    ),
    start: datetime | None = typer.Option(
        None,
        "--start",
        formats=["%Y-%m-%d"],
        help="First possible index injury (default: cohort_start in the config).",
    ),
    export: datetime | None = typer.Option(
        None,
        "--export",
        formats=["%Y-%m-%d"],
        help="Export date, the end of follow-up (default: export_date in the config).",
    ),
) -> None:
    """Write a synthetic cohort in the contract format, and its latent truth beside it."""
    from pydantic import ValidationError

    from pipeline.config import ConfigError, load_config
    from pipeline.io import FORMATS
    from simulator.config import SimulationConfig
    from simulator.simulate import run_simulation

    try:
        settings = load_config(SimulationConfig, config, name="simulation")
        # The calendar is data like any other setting: validated again with the override.
        calendar = {"cohort_start": start, "export_date": export}
        calendar = {key: value.date() for key, value in calendar.items() if value is not None}
        if calendar:
            settings = SimulationConfig.model_validate({**settings.model_dump(), **calendar})
        settings = settings.in_world(world, timing=timing)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    except ValidationError as exc:
        reason = "; ".join(err["msg"] for err in exc.errors())
        typer.echo(f"error: --start/--export: {reason}", err=True)
        raise typer.Exit(code=2) from None
    fmt = fmt or settings.format
    if fmt not in FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(FORMATS)}, got {fmt!r}", err=True)
        raise typer.Exit(code=2)
    try:
        summary = run_simulation(
            settings,
            out,
            athletes=athletes or settings.athletes,
            random_state=settings.random_state if seed is None else seed,
            fmt=fmt,
        )
    except OSError as exc:
        if exc.errno is None:  # the simulator's own refusal to mix formats in one folder
            typer.echo(f"error: {exc}", err=True)
        elif out.exists() and not out.is_dir():
            typer.echo(f"error: {out}: is a file, not a folder for the cohort", err=True)
        else:
            typer.echo(f"error: {out}: cannot write the cohort ({exc.strerror or exc})", err=True)
        raise typer.Exit(code=2) from None
    for name, rows in summary.rows.items():
        typer.echo(f"{name:<15} {rows:>9,} rows")
    typer.echo(f"index episodes  {summary.episodes:>9,} ({summary.provisional:,} not back yet)")
    typer.echo(f"base rate       {summary.mean_true_risk:>9.3f} mean true first-year risk")
    typer.echo(f"recurred        {summary.recurrence_share:>9.3f} latent, before censoring")
    typer.echo(f"censored        {summary.censored_share:>9.3f} first year not fully observed")
    typer.echo(f"truth AUC       {summary.truth_auc:>9.3f} true risk vs known first-year outcomes")
    typer.echo(f"world           {summary.world} (recurrence timing: {summary.timing})")
    typer.echo(f"cohort          {summary.folder}")
    typer.echo(f"truth           {summary.truth_path} (for tests and benchmarks only)")


# --- hamrisk models: the registered versions and the champion alias ---

models_app = typer.Typer(
    name="models",
    help="Registered model versions: list them, move the champion alias by hand.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

NAME_OPTION = typer.Option(None, "--name", help="Registered model (default: configs/train.yaml).")
TRAIN_CONFIG_OPTION = typer.Option(
    None, "--config", help="Training config with the registry section (configs/train.yaml)."
)


def _registry_config(path: Path | None):  # -> RegistryConfig, imported lazily
    from pipeline.config import ConfigError, RegistryFileConfig, load_config

    try:
        return load_config(RegistryFileConfig, path, name="train").registry
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


@models_app.command("list")
def models_list(name: str | None = NAME_OPTION, config: Path | None = TRAIN_CONFIG_OPTION) -> None:
    """Show every version with its aliases and key held-out metrics."""
    # MLflow is imported on use: it takes a second or two, which other commands need not pay.
    from pipeline import registry

    name = name or _registry_config(config).model_name
    try:
        versions = registry.list_versions(name)
    except HamriskError as exc:
        raise fail(exc) from None
    typer.echo(f"model {name} at {registry.shown_uri(registry.tracking_uri())}")
    if versions.empty:
        typer.echo(
            "no versions yet: `hamrisk lookup` or `hamrisk score` registers the literature "
            "model; `hamrisk train` or `hamrisk update` a clinic's own"
        )
        return
    shown = versions.assign(created=versions["created"].dt.strftime("%Y-%m-%d %H:%M UTC"))
    # The long run id goes last so the metrics stay beside the version they belong to.
    shown = shown[[c for c in shown.columns if c != "run_id"] + ["run_id"]]
    typer.echo(shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3f}"))


@models_app.command("promote")
def models_promote(
    version: int = typer.Argument(..., min=1, help="The version to make champion."),
    name: str | None = NAME_OPTION,
    config: Path | None = TRAIN_CONFIG_OPTION,
) -> None:
    """Move the champion alias to VERSION by hand, showing each promotion gate."""
    from pipeline import registry

    settings = _registry_config(config)
    name = name or settings.model_name
    try:
        decision = registry.promote(name, version, settings.gates)
    except HamriskError as exc:
        raise fail(exc) from None
    for gate in decision.gates:
        value = "not computed" if gate.value is None else f"{gate.value:.4f}"
        verdict = "pass" if gate.passed else "FAIL"
        typer.echo(f"{gate.name:<24} {value:>12}   needs {gate.threshold:<18} {verdict}")
    typer.echo(f"{name} version {version} is now {decision.alias}: " + "; ".join(decision.reasons))


# --- hamrisk train: features, calibrated model, MLflow run and registration ---


@app.command("train")
def train(
    folder: Path = typer.Argument(..., help="Cohort folder with the five tables."),
    config: Path | None = typer.Option(
        None, "--config", help="Training config (default: configs/train.yaml)."
    ),
    features_config: Path | None = typer.Option(
        None, "--features-config", help="Feature config (default: configs/features.yaml)."
    ),
    today: datetime | None = typer.Option(
        None, "--today", formats=["%Y-%m-%d"], help="Date of the run (default: today)."
    ),
) -> None:
    """Train, evaluate on held-out athletes, log to MLflow, register and gate a new version."""
    from pipeline.config import CONFIG_DIR, FeaturesConfig, TrainConfig, load_config
    from pipeline.train import format_training, train_model

    try:
        features_settings = load_config(FeaturesConfig, features_config, name="features")
        train_settings = load_config(TrainConfig, config, name="train")
        result = train_model(
            folder,
            features_settings,
            train_settings,
            config_files=[
                features_config or CONFIG_DIR / "features.yaml",
                config or CONFIG_DIR / "train.yaml",
            ],
            today=today.date() if today else None,
        )
    except HamriskError as exc:
        raise fail(exc) from None
    typer.echo(format_training(result))


# --- hamrisk update: a logistic model updated to this clinic's records ---


@app.command("update")
def update(
    folder: Path = typer.Argument(..., help="Cohort folder with the five tables."),
    from_uri: str | None = typer.Option(
        None,
        "--from",
        help="Model to update (default: the champion; the literature model on a fresh store).",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Training config: split, censoring, gates (configs/train.yaml)."
    ),
    literature_config: Path | None = typer.Option(
        None, "--literature-config", help="Updating settings (default: configs/literature.yaml)."
    ),
    today: datetime | None = typer.Option(
        None, "--today", formats=["%Y-%m-%d"], help="Date of the run (default: today)."
    ),
) -> None:
    """Update a model to this clinic's outcomes by closed testing; register and gate it."""
    from pipeline.config import CONFIG_DIR, LiteratureConfig, TrainConfig, load_config
    from pipeline.update import format_update, update_model

    try:
        train_settings = load_config(TrainConfig, config, name="train")
        literature = load_config(LiteratureConfig, literature_config, name="literature")
        parent = from_uri or f"models:/{train_settings.registry.model_name}@champion"
        _ensure_champion(parent)
        run = update_model(
            folder,
            literature,
            train_settings,
            parent_uri=parent,
            config_files=(
                config or CONFIG_DIR / "train.yaml",
                literature_config or CONFIG_DIR / "literature.yaml",
            ),
            today=today.date() if today else None,
        )
    except HamriskError as exc:
        raise fail(exc) from None
    typer.echo(format_update(run))


# --- hamrisk score: scheduled batch scoring ---

SCORE_EXIT_CODES = (
    "Exit codes: 0 every episode scored; 1 scored, some records set aside (see --rejects); "
    "2 unusable input, model URI, config or output; 3 the output is locked by another run "
    "for longer than --lock-timeout."
)


@app.command("score", help=f"Score every index episode of a cohort.\n\n{SCORE_EXIT_CODES}")
def score(
    folder: Path = typer.Argument(..., help="Cohort folder with the five tables."),
    out: Path = typer.Option(..., "--out", help="Predictions file, .csv or .parquet."),
    model: str | None = typer.Option(
        None, "--model", help="MLflow model URI (default: configs/score.yaml, the champion)."
    ),
    as_of: datetime | None = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"], help="Date predictions speak for (default: today)."
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Set-aside records (default: OUT's name + .rejects.csv beside it)."
    ),
    only_new: bool = typer.Option(
        False, "--only-new", help="Keep OUT and add only episodes not yet scored by this version."
    ),
    lock_timeout: float | None = typer.Option(
        None, "--lock-timeout", min=0, help="Seconds to wait for another run (default: config)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Scoring config (default: configs/score.yaml)."
    ),
) -> None:
    # No feature config: a model is scored with the feature definition it was trained on.
    import sys

    from pipeline.config import ScoreConfig, load_config
    from pipeline.score import format_scoring, run_scoring

    progress, finish = _score_progress(sys.stderr.isatty())
    try:
        settings = load_config(ScoreConfig, config, name="score")
        _ensure_champion(model or settings.model_uri)
        summary = run_scoring(
            folder,
            out,
            model=model or settings.model_uri,
            config=settings,
            as_of=as_of.date() if as_of else None,
            rejects=rejects,
            only_new=only_new,
            lock_timeout=lock_timeout,
            progress=progress,
        )
    except HamriskError as exc:
        finish()
        raise fail(exc) from None
    finish()
    typer.echo(format_scoring(summary))
    raise typer.Exit(code=summary.exit_code)


def _score_progress(on_terminal: bool):  # -> (progress callback, finish), built lazily
    """A rich progress bar on a terminal; otherwise one plain log line per chunk on stderr."""
    if not on_terminal:

        def log(done: int, total: int) -> None:
            stamp = datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
            typer.echo(f"{stamp} scored {done:,}/{total:,} episodes", err=True)

        return log, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("scoring", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


# --- hamrisk lookup: one athlete's risk, from a cohort or from a few answers ---


@app.command("lookup")
def lookup(
    folder: Path | None = typer.Argument(None, help="Cohort folder (with --athlete)."),
    athlete: str | None = typer.Option(
        None,
        "--athlete",
        help="Score this athlete's latest episode.",
    ),
    prior_injuries: int | None = typer.Option(
        None,
        "--prior-injuries",
        help="Earlier hamstring injuries.",
    ),
    lsi: float | None = typer.Option(
        None,
        "--lsi",
        help="Involved ÷ uninvolved strength, e.g. 0.86.",
    ),
    lsi_test: str | None = typer.Option(
        None,
        "--lsi-test",
        help="Test behind --lsi (default nordic_eccentric).",
    ),
    grade: int | None = typer.Option(None, "--grade", help="BAMIC grade 0-4."),
    site: str | None = typer.Option(None, "--site", help="BAMIC site a, b or c."),
    days_to_return: float | None = typer.Option(
        None,
        "--days-to-return",
        help="Days injury to return to sport.",
    ),
    phase3_done: str | None = typer.Option(
        None,
        "--phase3-done",
        help="Rehab phase 3 completed: yes/no.",
    ),
    ake: str | None = typer.Option(
        None,
        "--ake",
        help="Discomfort on active knee extension: yes/no.",
    ),
    peak_sprint: float | None = typer.Option(
        None,
        "--peak-sprint",
        help="Peak rehab sprint, % of top speed.",
    ),
    age: int | None = typer.Option(None, "--age", help="Age, whole years."),
    sex: str | None = typer.Option(None, "--sex", help="F or M."),
    level: str | None = typer.Option(None, "--level", help="recreational, competitive or elite."),
    discipline: str | None = typer.Option(None, "--discipline", help="Main discipline."),
    pain: float | None = typer.Option(None, "--pain", help="Pain 0-10 at return."),
    slr: float | None = typer.Option(None, "--slr", help="Straight-leg-raise deficit, degrees."),
    as_of: datetime | None = typer.Option(
        None,
        "--as-of",
        formats=["%Y-%m-%d"],
        help="Date (default: today).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="MLflow model URI (default: configs/score.yaml).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Scoring config (configs/score.yaml).",
    ),
) -> None:
    """One athlete's risk; anything not given is unknown, and with nothing known it is the baseline."""  # noqa: E501
    import json

    # No feature config: features are built as the model's own feature definition says.
    from pipeline.config import ScoreConfig, load_config
    from pipeline.lookup import (
        athlete_known_features,
        format_lookup,
        known_features,
        lookup_risk,
    )
    from pipeline.model_cache import load_model

    answers = {
        "prior_injuries": prior_injuries, "lsi": lsi, "lsi_test": lsi_test, "grade": grade,
        "site": site, "days_to_return": days_to_return, "phase3_done": phase3_done, "ake": ake,
        "peak_sprint": peak_sprint, "age": age, "sex": sex, "level": level,
        "discipline": discipline, "pain": pain, "slr": slr,
    }  # fmt: skip
    given = [key for key, value in answers.items() if value is not None]
    if (folder is None) != (athlete is None) or (athlete is not None and given):
        typer.echo(
            "error: give a cohort folder with --athlete ID, or answers such as --lsi 0.86 "
            "(not both)",
            err=True,
        )
        raise typer.Exit(code=2)
    try:
        settings = load_config(ScoreConfig, config, name="score")
        run_date = as_of.date() if as_of else datetime.now().date()
        _ensure_champion(model or settings.model_uri)
        loaded = load_model(model or settings.model_uri)
        if athlete is not None:
            known, about = athlete_known_features(folder, athlete, loaded, as_of=run_date)
        else:
            known, about = known_features(answers, loaded, as_of=run_date), ""
        result = lookup_risk(
            loaded,
            known,
            config=settings.lookup,
            bands=settings.bands,
            n_factors=settings.top_factors,
            about=about,
        )
    except HamriskError as exc:
        raise fail(exc) from None
    typer.echo(json.dumps(result.as_dict()) if json_output else format_lookup(result))


# --- hamrisk audit: stored predictions against the outcomes known today ---


@app.command("audit")
def audit(
    folder: Path = typer.Argument(..., help="Cohort folder with the current records."),
    predictions: list[Path] = typer.Option(
        ..., "--predictions", help="Predictions file from `hamrisk score` (repeatable)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for report.html and report.json."),
    by: str | None = typer.Option(
        None, "--by", help="Comma-separated groups (default: configs/audit.yaml)."
    ),
    min_cell: int | None = typer.Option(
        None, "--min-cell", min=1, help="Suppress cells with fewer episodes than this."
    ),
    log_to_mlflow: bool = typer.Option(
        False, "--log-to-mlflow", help="Log the audit as an MLflow run linked to each version."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Audit config (default: configs/audit.yaml)."
    ),
    today: datetime | None = typer.Option(
        None, "--today", formats=["%Y-%m-%d"], help="Date of the audit (default: today)."
    ),
    features_config: Path | None = typer.Option(
        None,
        "--features-config",
        help="Feature config for versions this store does not hold (default: "
        "configs/features.yaml); a version in the store uses its own.",
    ),
) -> None:
    """Audit stored predictions against outcomes known today.

    Exit 0 calibrated, 1 recalibration recommended, 2 unusable input, 3 too few outcomes.
    """
    from pipeline.audit import run_audit
    from pipeline.config import AuditConfig, FeaturesConfig, TrainConfig, load_config

    try:
        result = run_audit(
            folder,
            predictions,
            out,
            load_config(AuditConfig, config, name="audit"),
            load_config(FeaturesConfig, features_config, name="features"),
            by=[name.strip() for name in by.split(",") if name.strip()] if by else None,
            min_cell=min_cell,
            today=today.date() if today else None,
            log_to_mlflow=log_to_mlflow,
            # Censoring weights and the calibration tolerances as training uses them: one
            # section, one meaning.
            censoring=load_config(TrainConfig, name="train").censoring,
            gates=load_config(TrainConfig, name="train").registry.gates,
        )
    except HamriskError as exc:
        raise fail(exc) from None
    except OSError as exc:
        typer.echo(f"error: {out}: cannot write the report ({exc.strerror or exc})", err=True)
        raise typer.Exit(code=2) from None
    document = result.audit.document
    counts = document["outcomes"]
    typer.echo(f"verdict         {result.audit.verdict}")
    models = document.get("models") or {}
    for version, found in document["verdict"]["by_version"].items():
        described = models.get(version, {}).get("description")
        typer.echo(
            f"version {version:<8}{found['verdict']}"
            + (f"\n                model: {described}" if described else "")
            + "".join(f"\n                - {reason}" for reason in found["reasons"])
        )
    if "total" in counts:
        typer.echo(
            f"outcomes        {counts['recurred']:,} recurred, {counts['no_recurrence']:,} no "
            f"recurrence, {counts['pending']:,} pending, {counts['censored']:,} censored, "
            f"{counts['not_in_records']:,} not in records"
        )
    for version, found in document["in_sample"]["by_version"].items():
        if found["fingerprint_recorded"]:
            typer.echo(
                f"in-sample v{version:<6}{found['development_episodes']} development episodes "
                f"shown apart; verdict on the {found['new_episodes']} new ones"
            )
        else:
            typer.echo(f"in-sample v{version:<6}{found['note']}")
    weights = document["censoring_weights"]
    if "max_weight" in weights:
        typer.echo(
            f"weights         largest {weights['max_weight']:.2f}, effective sample size "
            f"{weights['effective_sample_size']:,.0f} of {weights['known_outcomes']:,} known"
        )
    for version, found in (document.get("drift") or {}).items():
        if found.get("most_shifted"):
            typer.echo(f"drift v{version:<8}most shifted: {', '.join(found['most_shifted'])}")
        elif not found.get("available", True):
            # Say so: an audit of a version this store no longer holds checks no drift.
            typer.echo(f"drift v{version:<8}not checked: {found.get('reason', 'unavailable')}")
    if result.run_id:
        typer.echo(f"mlflow run      {result.run_id}")
    typer.echo(f"report          {result.html}")
    typer.echo(f"figures         {result.json}")
    raise typer.Exit(code=result.audit.exit_code)
