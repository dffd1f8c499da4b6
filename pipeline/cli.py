"""The ``hamrisk`` command: parse options, load config, call one stage, print its result.

No logic lives here and nothing happens at import time beyond building the Typer app.
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
    typer.echo(f"model {name} at {registry.tracking_uri()}")
    if versions.empty:
        typer.echo("no versions yet (run `hamrisk train`)")
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
