"""Cold start of ``hamrisk lookup`` for one athlete against ``mlflow models predict``.

Both are fresh processes that load the same registered model from the private store and
score one record; the median of repeated runs is reported with its spread.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure import Spread, progress, run_child
from bench.scoring import command_missing, hamrisk_command
from bench.store import BenchModel, child_env

LOOKUP_AIM_SECONDS = 2.0
LOOKUP_ARGS = (
    "--prior-injuries",
    "2",
    "--lsi",
    "0.86",
    "--grade",
    "2",
    "--site",
    "c",
    "--days-to-return",
    "21",
    "--phase3-done",
    "no",
)
# The lookup's values under their feature names, the rest unknown.
RECORD = {
    "prior_injuries": 2.0,
    "lsi_nordic": 0.86,
    "bamic_grade": 2.0,
    "bamic_site": "c",
    "intratendinous": 1.0,
    "days_injury_to_return_to_sport": 21.0,
    # Pollock et al. 2022: a 2c injury usually needs 34 days (configs/features.yaml).
    "return_to_sport_time_vs_grade": 21.0 / 34.0,
    "phase3_done": 0.0,
    "strength_tested_in_rehab": 1.0,
}


@dataclass(frozen=True)
class LookupBench:
    lookup: Spread | None
    mlflow: Spread | None
    lookup_command: str
    mlflow_command: str
    not_measured: dict[str, str]
    first: float | None = None  # the first lookup of a version, which fills the cache


def _model_input(model: BenchModel) -> pd.DataFrame:
    """One row in the model's input format with the record's values, the rest missing."""
    from features.catalog import FEATURES

    # The answers' feature values (pipeline.lookup builds them from the loaded model).
    record = dict(RECORD)
    row = {}
    for spec in FEATURES:
        value = record.get(spec.name)
        if isinstance(value, bool | np.bool_):
            value = float(value)
        row[spec.name] = (
            value if value is not None else (np.nan if spec.kind != "categorical" else None)
        )
    return pd.DataFrame([row], columns=[s.name for s in FEATURES])


def _write_input(path: Path, frame: pd.DataFrame) -> None:
    data = [
        [None if (isinstance(v, float) and np.isnan(v)) else v for v in row]
        for row in frame.itertuples(index=False)
    ]
    path.write_text(json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": data}}))


def run_lookup(work: Path, model: BenchModel, repeats: int) -> LookupBench:
    env = child_env(model.home)
    hamrisk = str(hamrisk_command())
    lookup_argv = [hamrisk, "lookup", *LOOKUP_ARGS, "--model", model.uri]
    input_path = work / "lookup-input.json"
    mlflow_argv = [
        str(Path(sys.executable).with_name("mlflow")),
        "models",
        "predict",
        "-m",
        model.uri,
        "-i",
        str(input_path),
        "-t",
        "json",
        "--env-manager",
        "local",
    ]
    not_measured: dict[str, str] = {}
    lookup, first = None, None
    missing = command_missing("lookup", env)
    if missing:
        not_measured["lookup"] = missing
    else:
        # The first lookup of a version loads it through MLflow and caches it for the next
        # ones: timed apart, then the cached cold starts. Scoring has filled the cache with
        # the same version already, so it is emptied first.
        from pipeline.model_cache import CACHE_FOLDER

        shutil.rmtree(model.home / CACHE_FOLDER, ignore_errors=True)
        progress("lookup: hamrisk lookup, first of this version (fills the cache)")
        child = run_child(lookup_argv, env=env)
        first = child.seconds if child.returncode == 0 else None
        seconds = []
        for run in range(repeats):
            progress(f"lookup: hamrisk lookup cold start, run {run + 1}/{repeats}")
            child = run_child(lookup_argv, env=env)
            if child.returncode != 0:
                not_measured["lookup"] = (
                    f"`hamrisk lookup` exited {child.returncode}: "
                    + (child.stderr.strip().splitlines() or ["no message"])[-1]
                )
                break
            seconds.append(child.seconds)
        else:
            lookup = Spread(tuple(seconds))
    _write_input(input_path, _model_input(model))
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": "sqlite:///" + str(model.home / "mlruns.db")}
    mlflow_env.pop("HAMRISK_HOME", None)
    seconds = []
    mlflow = None
    for run in range(repeats):
        progress(f"lookup: mlflow models predict cold start, run {run + 1}/{repeats}")
        child = run_child(mlflow_argv, env=mlflow_env, cwd=work)
        if child.returncode != 0:
            not_measured["mlflow"] = (
                f"`mlflow models predict` exited {child.returncode}: "
                + (child.stderr.strip().splitlines() or ["no message"])[-1]
            )
            break
        seconds.append(child.seconds)
    else:
        mlflow = Spread(tuple(seconds))
    shown = lambda argv: " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))  # noqa: E731
    return LookupBench(
        lookup=lookup,
        mlflow=mlflow,
        first=first,
        lookup_command=shown(lookup_argv).replace(model.uri, "MODEL"),
        mlflow_command=shown(mlflow_argv)
        .replace(model.uri, "MODEL")
        .replace(str(input_path), "record.json"),
        not_measured=not_measured,
    )


def render_lookup(b: LookupBench) -> str:
    lines = [
        "## Lookup cold start",
        "",
        "Fresh processes, each loading the registered model (MODEL, a version in the private"
        " store) and scoring one record; `hamrisk lookup` reads the version from its cache"
        " after the first lookup of it:",
        "",
        f"- `{b.lookup_command}`",
        f"- `{b.mlflow_command}`, where `record.json` holds the same values under their"
        " feature names, every other feature missing",
        "",
        "| command | seconds |",
        "|---|---|",
    ]
    if b.first is not None:
        lines.append(
            f"| `hamrisk lookup`, first of a new version (loads it through MLflow and caches"
            f" it; 1 run) | {b.first:.2f} |"
        )
    lines += [
        f"| `hamrisk lookup` | {b.lookup.format() if b.lookup else 'not measured'} |",
        f"| `mlflow models predict` | {b.mlflow.format() if b.mlflow else 'not measured'} |",
    ]
    if b.lookup and b.mlflow:
        ratio = b.lookup.median / b.mlflow.median
        lines += ["", f"Ratio lookup ÷ mlflow predict: {ratio:.2f}×."]
    if b.lookup:
        ok = b.lookup.median < LOOKUP_AIM_SECONDS
        lines += [
            "",
            f"Aim: a lookup well under {LOOKUP_AIM_SECONDS:.0f} s —"
            f" {'met' if ok else '**missed**'} ({b.lookup.median:.2f} s median).",
        ]
    for what, reason in b.not_measured.items():
        lines += ["", f"Not measured ({what}): {reason}."]
    return "\n".join(lines)
