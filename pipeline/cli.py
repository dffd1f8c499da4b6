"""The ``hamrisk`` command: parse options, load config, call one stage, print its result.

No logic lives here and nothing happens at import time beyond building the Typer app.
"""

from __future__ import annotations

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
