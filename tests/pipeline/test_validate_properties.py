"""Corrupted cohorts: validation never crashes, the counts always add up, accepted is valid."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cohort import TABLES
from pipeline.errors import UnusableInputError
from pipeline.validate import validate_cohort
from tests.conftest import FIXTURE_TODAY, valid_cohort_tables, write_cohort

TEMPLATE = valid_cohort_tables()

# Cells a messy export holds: wrong types, impossible dates, other ids, quoting hazards.
NASTY = [
    "", " ", "x", "-1", "0", "1e400", "nan", "NaN", "inf", "1,5", "2.5", "99999",
    "2023-02-30", "2023-13-01", "01/02/2023", "2023-1-1", "0001-01-01", "9999-12-31",
    "2030-01-01", "1919", "true", "TRUE", "yes", "N", "Nm", "L", "R", "a", "c",
    "A001", "A002", "I001", "I003", "T001", "Jane Doe", "é", '"', "a,b", "line\nbreak",
]  # fmt: skip

# No bare carriage return: pandas' CSV writer leaves it unquoted, and in CSV it then is a
# line break, so the file would hold another row than the frame the test compares it with.
# No lone surrogate: no UTF-8 file can hold one (its bytes are an invalid file, a case of
# its own), and pandas' Arrow-backed strings refuse it before any file is written.
cell_values = st.one_of(
    st.sampled_from(NASTY),
    st.text(
        alphabet=st.characters(exclude_characters="\r", exclude_categories=("Cs",)), max_size=12
    ),
)


@st.composite
def corruptions(draw):
    """A list of edits to the template: set a cell, delete a row, or duplicate a row."""
    edits = []
    for _ in range(draw(st.integers(1, 6))):
        table = draw(st.sampled_from(TABLES))
        frame = TEMPLATE[table]
        kind = draw(st.sampled_from(["cell", "cell", "cell", "delete", "duplicate"]))
        row = draw(st.integers(0, len(frame) - 1))
        if kind == "cell":
            column = draw(st.sampled_from(list(frame.columns)))
            edits.append((kind, table, row, column, draw(cell_values)))
        else:
            edits.append((kind, table, row, None, None))
    return edits


def apply(edits) -> dict[str, pd.DataFrame]:
    tables = valid_cohort_tables()
    for kind, table, row, column, value in edits:
        frame = tables[table]
        row = min(row, len(frame) - 1)
        if row < 0:
            continue
        if kind == "cell":
            frame.loc[frame.index[row], column] = value
        elif kind == "delete":
            tables[table] = frame.drop(index=frame.index[row]).reset_index(drop=True)
        else:
            tables[table] = pd.concat([frame, frame.iloc[[row]]], ignore_index=True)
    return tables


def check_accounting(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    try:
        result = validate_cohort(folder, today=FIXTURE_TODAY)
    except UnusableInputError:
        return  # the only error validation may raise
    set_aside = result.set_aside
    for table, counts in result.counts.items():
        assert counts.rows == len(tables[table])
        assert counts.accepted + counts.set_aside == counts.rows
        lines = set_aside[set_aside["table"] == table]
        assert lines["row"].between(1, counts.rows).all()
        assert lines["row"].nunique() == counts.set_aside
        assert len(getattr(result.cohort, table)) == counts.accepted
    assert result.exit_code == (1 if len(set_aside) else 0)
    # What was accepted is a valid cohort on its own: validating it again sets nothing aside.
    again = write_cohort(
        {name: frame for name, frame in result.cohort.tables().items()}, folder / "accepted"
    )
    assert validate_cohort(again, today=FIXTURE_TODAY).set_aside.empty


# Each example validates a cohort twice (~0.1 s each), so these two are marked slow.
@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=corruptions(), fmt=st.sampled_from(["csv", "csv", "parquet"]))
def test_corrupted_cohort_never_crashes_and_counts_add_up(edits, fmt):
    tables = apply(edits)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_cohort(tables, Path(tmp) / "cohort", fmt=fmt)
        check_accounting(folder, tables)


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(
    table=st.sampled_from(TABLES),
    column_index=st.integers(0, 10),
    # One type per column, as Parquet stores it.
    values=st.one_of(
        st.lists(st.integers(-5, 3000), min_size=1),
        st.lists(st.floats(), min_size=1),
        st.lists(st.booleans(), min_size=1),
    ),
)
def test_wrongly_typed_parquet_columns_never_crash(table, column_index, values):
    """A typed Parquet column of the wrong type (numbers for dates, floats for ids...)."""
    tables = valid_cohort_tables()
    frame = tables[table]
    column = frame.columns[column_index % len(frame.columns)]
    typed = pd.Series([values[i % len(values)] for i in range(len(frame))])
    tables[table] = frame.assign(**{column: typed})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cohort"
        folder.mkdir()
        for name, written in tables.items():
            written.to_parquet(folder / f"{name}.parquet", index=False)
        check_accounting(folder, tables)


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(0, 400), junk=st.binary(max_size=8))
def test_damaged_csv_text_is_unusable_or_accounted_for(cut, junk):
    """Truncated files with stray bytes: either a clear unusable error or full accounting."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_cohort(valid_cohort_tables(), Path(tmp) / "cohort")
        path = folder / "return_to_run.csv"
        data = path.read_bytes()
        path.write_bytes(data[: cut % (len(data) + 1)] + junk)
        try:
            result = validate_cohort(folder, today=date(2024, 12, 31))
        except UnusableInputError as exc:
            assert "return_to_run.csv" in str(exc)
            return
        counts = result.counts["return_to_run"]
        assert counts.accepted + counts.set_aside == counts.rows
