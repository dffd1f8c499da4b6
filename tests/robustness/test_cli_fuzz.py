"""Corrupted cohorts through ``hamrisk validate --json``: no crash, documented exit codes.

Each example takes a valid simulated cohort and damages it the way exports get damaged:
cells edited to wrong types and impossible values, rows deleted or duplicated, and whole
files re-encoded, re-delimited, truncated or padded with stray bytes. The command must
answer every one with exit 0, 1 or 2, one JSON document that agrees with the exit code,
and, for a usable cohort, accepted + set aside = rows for every table.

The figure quoted in ``docs/security.md`` comes from this test; reproduce it with
``.venv/bin/pytest tests/robustness/test_cli_fuzz.py -s``.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cohort import TABLES
from tests.robustness.conftest import run_hamrisk, simulate

TODAY = "2026-11-01"
MAX_EXAMPLES = 100
# Each of these starts the installed command (about 2 s), so they are fewer.
INSTALLED_EXAMPLES = 10
TALLY: Counter[str] = Counter()


def _simulated_text_tables() -> dict[str, pd.DataFrame]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = simulate(Path(tmp) / "cohort", athletes=15, seed=21)
        return {
            name: pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
            for name in TABLES
        }


TEMPLATE = _simulated_text_tables()
IDS = sorted(
    set(TEMPLATE["athletes"]["athlete_id"].head(3)) | set(TEMPLATE["injuries"]["injury_id"].head(3))
)
NASTY = [
    "", " ", "x", "-1", "0", "1e400", "nan", "inf", "1,5", "2.5", "99999", "-0",
    "2023-02-30", "2023-13-01", "01/02/2023", "2023-1-1", "0001-01-01", "9999-12-31",
    "2031-01-01", "1919", "true", "FALSE", "yes", "N", "Nm", "L", "R", "a", "c",
    "Jane Doe", "\u00e9", '"', "a,b", "line\nbreak", "=1+1", "\x00", "\ufeffA1", *IDS,
]  # fmt: skip
cell_values = st.one_of(
    st.sampled_from(NASTY),
    st.text(
        alphabet=st.characters(exclude_characters="\r", exclude_categories=["Cs"]), max_size=10
    ),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def frame_edits(draw):
    """Edits to the text tables: set a cell, delete a row, duplicate a row, drop a column."""
    edits = []
    for _ in range(draw(st.integers(1, 8))):
        table = draw(st.sampled_from(TABLES))
        frame = TEMPLATE[table]
        kind = draw(st.sampled_from(["cell"] * 5 + ["delete", "duplicate", "drop_column"]))
        row = draw(st.integers(0, len(frame) - 1))
        column = draw(st.sampled_from(list(frame.columns)))
        edits.append((kind, table, row, column, draw(cell_values) if kind == "cell" else None))
    return edits


FILE_DAMAGE = ["bom", "crlf", "latin1", "utf16", "semicolons", "one_line_semicolons",
               "truncate", "junk", "nul", "no_header", "empty", "parquet"]  # fmt: skip


@st.composite
def file_damage(draw):
    """Damage to the bytes of whole files: (kind, table, position, junk bytes)."""
    return [
        (
            draw(st.sampled_from(FILE_DAMAGE)),
            draw(st.sampled_from(TABLES)),
            draw(st.integers(0, 10**6)),
            draw(st.binary(min_size=1, max_size=6)),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]


def apply_edits(edits) -> dict[str, pd.DataFrame]:
    tables = {name: frame.copy() for name, frame in TEMPLATE.items()}
    for kind, table, row, column, value in edits:
        frame = tables[table]
        if len(frame) == 0:
            continue
        row = min(row, len(frame) - 1)
        if kind == "cell" and column in frame.columns:
            frame.loc[frame.index[row], column] = value
        elif kind == "delete":
            tables[table] = frame.drop(index=frame.index[row]).reset_index(drop=True)
        elif kind == "duplicate":
            tables[table] = pd.concat([frame, frame.iloc[[row]]], ignore_index=True)
        elif kind == "drop_column" and column in frame.columns:
            tables[table] = frame.drop(columns=column)
    return tables


def damage_file(folder: Path, kind: str, table: str, where: int, junk: bytes) -> None:
    path = folder / f"{table}.csv"
    if not path.exists():
        return
    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    if kind == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + data)
    elif kind == "crlf":
        path.write_bytes(data.replace(b"\n", b"\r\n"))
    elif kind == "latin1":
        path.write_bytes(text.encode("latin-1", errors="replace"))
    elif kind == "utf16":
        path.write_bytes(text.encode("utf-16"))
    elif kind == "semicolons":
        path.write_bytes(data.replace(b",", b";"))
    elif kind == "one_line_semicolons":
        lines = data.split(b"\n")
        lines[where % len(lines)] = lines[where % len(lines)].replace(b",", b";")
        path.write_bytes(b"\n".join(lines))
    elif kind == "truncate":
        path.write_bytes(data[: where % (len(data) + 1)])
    elif kind == "junk":
        cut = where % (len(data) + 1)
        path.write_bytes(data[:cut] + junk + data[cut:])
    elif kind == "nul":
        cut = where % (len(data) + 1)
        path.write_bytes(data[:cut] + b"\x00" + data[cut:])
    elif kind == "no_header":
        path.write_bytes(data.split(b"\n", 1)[-1])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "parquet":
        pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None).to_parquet(
            folder / f"{table}.parquet", index=False
        )
        path.unlink()


runner = CliRunner()


@dataclass(frozen=True)
class Answer:
    exit_code: int
    stdout: str
    stderr: str


def invoke_in_process(folder: Path) -> Answer:
    """The Typer app in this process: fast, and a crash surfaces as the exception itself."""
    result = runner.invoke(app, ["validate", str(folder), "--json", "--today", TODAY])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        TALLY["crashes"] += 1
        raise result.exception
    return Answer(result.exit_code, result.stdout, result.stderr)


def invoke_installed(folder: Path) -> Answer:
    """The installed ``hamrisk`` command in its own process."""
    proc = run_hamrisk("validate", str(folder), "--json", "--today", TODAY, home=folder.parent)
    if "Traceback" in proc.stderr:
        TALLY["crashes"] += 1
    return Answer(proc.returncode, proc.stdout, proc.stderr)


def check_corrupt_cohort(edits, damage, invoke) -> None:
    TALLY["cohorts"] += 1
    tables = apply_edits(edits)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cohort"
        folder.mkdir()
        for name, frame in tables.items():
            frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        for kind, table, where, junk in damage:
            damage_file(folder, kind, table, where, junk)
        result = invoke(folder)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code in (0, 1, 2)
    document = json.loads(result.stdout)
    TALLY[f"exit {result.exit_code}"] += 1
    if result.exit_code == 2:
        assert document["usable"] is False
        assert result.stderr.startswith("error: ") and document["error"]["path"]
        return
    assert document["usable"] is True
    assert (result.exit_code == 1) == bool(document["set_aside"])
    damaged = {table for _, table, _, _ in damage}
    for name, counts in document["tables"].items():
        assert counts["accepted"] + counts["set_aside"] == counts["rows"]
        if name not in damaged:  # the bytes still hold exactly the edited frame
            assert counts["rows"] == len(tables[name])
        rows = {line["row"] for line in document["set_aside"] if line["table"] == name}
        assert len(rows) == counts["set_aside"]
        assert all(1 <= row <= counts["rows"] for row in rows)


SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@settings(max_examples=MAX_EXAMPLES, **SETTINGS)
@given(edits=frame_edits(), damage=file_damage())
def validate_corrupt_cohort(edits, damage):
    check_corrupt_cohort(edits, damage, invoke_in_process)


@settings(max_examples=INSTALLED_EXAMPLES, **SETTINGS)
@given(edits=frame_edits(), damage=file_damage())
def validate_corrupt_cohort_installed(edits, damage):
    check_corrupt_cohort(edits, damage, invoke_installed)


@pytest.mark.slow
def test_corrupt_cohorts_never_crash_validate(capsys):
    TALLY.clear()
    validate_corrupt_cohort()
    validate_corrupt_cohort_installed()
    with capsys.disabled():
        print(
            f"\nhamrisk validate --json: {TALLY['cohorts']} corrupt cohorts "
            f"({INSTALLED_EXAMPLES} through the installed command), {TALLY['crashes']} crashes; "
            + ", ".join(f"{k} x{v}" for k, v in sorted(TALLY.items()) if k.startswith("exit"))
        )
    assert TALLY["cohorts"] >= MAX_EXAMPLES + INSTALLED_EXAMPLES
    assert TALLY["crashes"] == 0
    # Every kind of outcome was reached, so the damage is neither too mild nor too harsh.
    assert TALLY["exit 0"] and TALLY["exit 1"] and TALLY["exit 2"]
