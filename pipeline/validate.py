"""Validation: a cohort folder in, the accepted ``Cohort`` and every set-aside record out.

Single-table rules are the Pandera models of ``pipeline.schemas`` (run lazily, so every
failure of every row is collected at once); cross-table rules follow here: foreign keys,
return-to-run dates on or after the injury, and the cascade that sets aside whatever
depends on a set-aside record. Nothing is dropped or repaired silently: every input row is
either accepted or set aside with the rule it broke, and the counts add up per table.
"""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.compute as arrow_compute

from pipeline.cohort import TABLES, Cohort
from pipeline.episodes import FollowUpBehindRecords, follow_up_behind_records
from pipeline.io import FAILURE_COLUMNS, TableRead, find_table_file, read_table, write_rejects
from pipeline.schemas import PRIMARY_KEYS, ROW_RULE_COLUMNS, table_schema

__all__ = [
    "CROSS_TABLE_RULES",
    "SET_ASIDE_COLUMNS",
    "TableCounts",
    "ValidationResult",
    "format_summary",
    "report_document",
    "validate_cohort",
    "write_rejects",
]

SET_ASIDE_COLUMNS = ["table", "row", "key", "column", "rule", "value"]

# Which table each table depends on, and through which column (child -> parent).
PARENTS: dict[str, tuple[str, str]] = {
    "injuries": ("athlete_id", "athletes"),
    "strength_tests": ("athlete_id", "athletes"),
    "follow_up": ("athlete_id", "athletes"),
    "return_to_run": ("injury_id", "injuries"),
}
RETURN_DATES = (
    "phase1_end_date",
    "phase2_end_date",
    "phase3_end_date",
    "return_to_run_date",
    "return_to_sport_date",
)
AFTER_INJURY = "dates.after_injury"
CROSS_TABLE_RULES: dict[str, tuple[str, ...]] = {
    table: (f"{column}.exists", f"{column}.parent_set_aside")
    + ((AFTER_INJURY,) if table == "return_to_run" else ())
    for table, (column, _) in PARENTS.items()
}
# Pandera's names for its built-in checks, as contract rule suffixes.
_BUILTIN_RULES = {"not_nullable": "required", "field_uniqueness": "unique"}


@dataclass(frozen=True)
class TableCounts:
    """Rows read from one table, and how many were accepted or set aside (they add up)."""

    rows: int
    accepted: int
    set_aside: int


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validating one cohort folder.

    Attributes:
        cohort: the accepted records, typed as documented in ``pipeline.cohort``.
        set_aside: one line per rule failure: ``table, row`` (1-based data row in the
            file), ``key`` (the row's primary key), ``column, rule, value``.
        counts: per table, rows read, accepted and set aside (a row that breaks several
            rules counts once).
        usable: the cohort could be read (an unusable one raises instead of returning).
        follow_up: athletes whose records reach past their follow-up row (a warning: they
            are accepted, and follow-up runs to their latest record).
    """

    cohort: Cohort
    set_aside: pd.DataFrame
    counts: dict[str, TableCounts]
    usable: bool = True
    follow_up: FollowUpBehindRecords = FollowUpBehindRecords(0, 0)

    @property
    def exit_code(self) -> int:
        """0 when every record is valid, 1 when some were set aside."""
        return 0 if self.set_aside.empty else 1


def validate_cohort(folder: Path | str, today: date | None = None) -> ValidationResult:
    """Read and validate a cohort folder against the data contract.

    Args:
        folder: the folder holding the five tables.
        today: the run's date for the date-relative rules; ``None`` means today.

    Raises:
        UnusableInputError: the folder or a table cannot be read as the contract says.
    """
    today = today if today is not None else date.today()
    # Arrow's default allocator (mimalloc) keeps what the text of each table and the checks'
    # temporaries freed, so the peak grew with every table read; the system allocator hands
    # it back. Buffers remember their pool, so switching back afterwards is safe.
    previous_pool = arrow.default_memory_pool()
    arrow.set_memory_pool(arrow.system_memory_pool())
    try:
        return _validate_tables(folder, today)
    finally:
        arrow.set_memory_pool(previous_pool)
        _return_freed_memory()


def _return_freed_memory() -> None:
    """Hand the heap that reading a table freed back to the system (glibc keeps it).

    Without this the text of each table read so far stays in the process as free heap,
    raising the peak of every later table and of the scoring that follows (about 0.5 GiB
    at a million episodes).
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _validate_tables(folder: Path | str, today: date) -> ValidationResult:
    paths = {table: find_table_file(folder, table) for table in TABLES}
    reads, failures = {}, {}
    for table, path in paths.items():
        # One table at a time, keeping its cells as text only for the rows that broke a
        # single-table rule: those are quoted as written. Cross-table rules name id and date
        # cells of otherwise valid rows, which the typed frame quotes as the file shows them.
        read = read_table(path, table)
        failures[table] = _single_table_failures(read, today)
        reads[table] = read.keep_source_rows(failures[table]["position"])
        del read  # the whole source must go before the next table is read
        _return_freed_memory()
    failures = _cross_table_failures(reads, failures)

    set_aside_parts, counts, accepted_frames = [], {}, {}
    for table in TABLES:
        read, found = reads[table], failures[table]
        rejected = np.zeros(len(read.frame), dtype=bool)
        rejected[found["position"].to_numpy(dtype="int64")] = True
        # Without a rejected row the frame is used as it is: a copy of a large table
        # would double its memory for nothing.
        accepted_frames[table] = (
            read.frame.loc[~rejected].reset_index(drop=True) if rejected.any() else read.frame
        )
        counts[table] = TableCounts(
            rows=len(read.frame),
            accepted=int((~rejected).sum()),
            set_aside=int(rejected.sum()),
        )
        set_aside_parts.append(_describe(read, found))
    set_aside = pd.concat(set_aside_parts, ignore_index=True)
    cohort = Cohort(**accepted_frames)
    return ValidationResult(
        cohort, set_aside, counts, follow_up=follow_up_behind_records(cohort, today)
    )


# --- single-table rules -------------------------------------------------------------------------


def _single_table_failures(read: TableRead, today: date) -> pd.DataFrame:
    """Cell-type failures from reading plus every Pandera rule failure, one line each."""
    schema = table_schema(read.table, today)
    try:
        schema.validate(read.frame, lazy=True, inplace=True)
        checked = pd.DataFrame(columns=FAILURE_COLUMNS)
    except pa.errors.SchemaErrors as exc:
        checked = _failures_by_row(read, exc.failure_cases)
    found = pd.concat([read.failures, checked], ignore_index=True)
    # A cell that could not be read is missing in the typed frame; "required" would only
    # repeat the reading failure in other words.
    unreadable = set(zip(read.failures["position"], read.failures["column"], strict=True))
    repeats = [
        rule.endswith(".required") and (pos, col) in unreadable
        for pos, col, rule in zip(found["position"], found["column"], found["rule"], strict=True)
    ]
    return found.loc[~np.asarray(repeats, dtype=bool)].reset_index(drop=True)


def _failures_by_row(read: TableRead, cases: pd.DataFrame) -> pd.DataFrame:
    """Pandera failure cases mapped to (position, column, rule), one line per row and rule."""
    if cases["index"].isna().any():
        # Every check here is row-wise; a failure without a row (a wrong dtype) means the
        # reader broke its own contract, which is a bug to report, not a user error.
        raise RuntimeError(f"{read.table}: validation failure without a row:\n{cases}")
    rules = [
        f"{column}.{_BUILTIN_RULES[check]}" if check in _BUILTIN_RULES else check
        for column, check in zip(cases["column"], cases["check"], strict=True)
    ]
    columns = [
        ",".join(ROW_RULE_COLUMNS[rule]) if rule in ROW_RULE_COLUMNS else column
        for column, rule in zip(cases["column"], rules, strict=True)
    ]
    mapped = pd.DataFrame(
        {"position": cases["index"].astype("int64"), "column": columns, "rule": rules}
    )
    # Missing keys already break ".required"; they are not duplicates of each other.
    missing_key = [
        rule.endswith(".unique") and pd.isna(value)
        for rule, value in zip(rules, cases["failure_case"], strict=True)
    ]
    mapped = mapped.loc[~np.asarray(missing_key, dtype=bool)]
    # A row-level (dataframe) check is reported by Pandera once per column of the row.
    return mapped.drop_duplicates(["position", "rule"]).reset_index(drop=True)


# --- cross-table rules and the cascade ----------------------------------------------------------


def _cross_table_failures(
    reads: dict[str, TableRead], failures: dict[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """Add foreign-key, date and cascade failures, iterating until nothing more is set aside."""
    failures = dict(failures)
    for table, (column, parent) in PARENTS.items():
        keys = reads[table].frame[column]
        known = _is_in(keys, _keys(reads[parent]))
        orphan = keys.notna().to_numpy(dtype=bool) & ~known
        failures[table] = _add(failures[table], orphan, column, f"{column}.exists")
    failures["return_to_run"] = _add_dates_before_injury(reads, failures)

    before = failures
    while True:
        accepted = {t: _accepted_mask(reads[t], before[t]) for t in TABLES}
        after = dict(failures)
        for table, (column, parent) in PARENTS.items():
            # A duplicated key is set aside in every copy, so a key belongs to a set-aside
            # parent exactly when it is in the file but not among the accepted ones.
            rejected_parents = _keys(reads[parent])[~accepted[parent]]
            if rejected_parents.empty:
                continue
            parent_out = _is_in(reads[table].frame[column], rejected_parents)
            after[table] = _add(after[table], parent_out, column, f"{column}.parent_set_aside")
        if all(len(after[t]) == len(before[t]) for t in TABLES):
            return after
        before = after


def _add_dates_before_injury(
    reads: dict[str, TableRead], failures: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """Return-to-run dates before the injury they follow, against its accepted injury row."""
    injuries = reads["injuries"].frame
    usable_injuries = injuries.loc[_accepted_mask(reads["injuries"], failures["injuries"])]
    episodes = reads["return_to_run"].frame
    # Only accepted injuries are looked up, so their ids are unique and the lookup is exact.
    where = pd.Index(usable_injuries["injury_id"]).get_indexer(episodes["injury_id"])
    injury_dates = usable_injuries["injury_date"].to_numpy(dtype="datetime64[ns]")
    onset_dates = np.full(len(episodes), np.datetime64("NaT"), dtype="datetime64[ns]")
    onset_dates[where >= 0] = injury_dates[where[where >= 0]]
    onset = pd.Series(onset_dates, index=episodes.index)
    found = failures["return_to_run"]
    for column in RETURN_DATES:
        early = (episodes[column] < onset).fillna(False).to_numpy(dtype=bool)
        found = _add(found, early, column, AFTER_INJURY)
    return found


def _is_in(values: pd.Series, allowed: pd.Series) -> np.ndarray:
    """Which ids are among ``allowed`` (missing ids never are).

    Done in pyarrow: pandas' ``isin`` on string columns walks the allowed values in Python,
    which takes seconds for a few hundred thousand ids.
    """
    ids = arrow.array(values.astype("string")).cast(arrow.large_string())
    known = arrow.array(allowed.dropna().astype("string")).cast(arrow.large_string())
    found = arrow_compute.fill_null(arrow_compute.is_in(ids, value_set=known), False)
    return found.to_numpy(zero_copy_only=False)


def _keys(read: TableRead) -> pd.Series:
    return read.frame[PRIMARY_KEYS[read.table]]


def _accepted_mask(read: TableRead, found: pd.DataFrame) -> np.ndarray:
    accepted = np.ones(len(read.frame), dtype=bool)
    accepted[found["position"].to_numpy(dtype="int64")] = False
    return accepted


def _add(found: pd.DataFrame, mask: np.ndarray, column: str, rule: str) -> pd.DataFrame:
    positions = np.flatnonzero(mask)
    if positions.size == 0:
        return found
    new = pd.DataFrame({"position": positions, "column": column, "rule": rule})
    merged = pd.concat([found, new], ignore_index=True)
    return merged.drop_duplicates(["position", "column", "rule"]).reset_index(drop=True)


# --- reporting ----------------------------------------------------------------------------------


def _describe(read: TableRead, found: pd.DataFrame) -> pd.DataFrame:
    """Failures as set-aside lines quoting the file: row number, key and offending value."""
    if found.empty:
        return pd.DataFrame({name: pd.Series(dtype=_dtype(name)) for name in SET_ASIDE_COLUMNS})
    found = found.sort_values(["position", "rule"], kind="stable").reset_index(drop=True)
    positions = found["position"].to_numpy(dtype="int64")
    values = np.empty(len(found), dtype=object)
    for column, rows in found.groupby("column", sort=False).indices.items():
        values[rows] = _cells_text(read, positions[rows], column.split(","))
    return pd.DataFrame(
        {
            "table": read.table,
            "row": positions + 1,
            "key": _cells_text(read, positions, [PRIMARY_KEYS[read.table]]),
            "column": found["column"].to_numpy(dtype=object),
            "rule": found["rule"].to_numpy(dtype=object),
            "value": values,
        }
    )


def _dtype(name: str) -> str:
    return "int64" if name == "row" else "object"


def _cells_text(read: TableRead, positions: np.ndarray, columns: list[str]) -> list[str]:
    """The cells as the file shows them; several columns are quoted as ``name=value; ...``.

    Rows kept in ``read.source`` are quoted from it; any other row broke only cross-table
    rules, which name id and date cells that read back from the typed frame unchanged.
    """
    source = read.source
    from_source = np.isin(positions, source.index.to_numpy())
    texts = []
    for column in columns:
        if column not in source.columns:
            texts.append([""] * len(positions))
            continue
        cells = np.empty(len(positions), dtype=object)
        if from_source.any():
            kept = source[column].loc[positions[from_source]]
            cells[from_source] = [_cell_text(v) for v in kept]
        if not from_source.all():
            typed = read.frame[column].iloc[positions[~from_source]]
            was_datetime = pd.api.types.is_datetime64_any_dtype(source[column].dtype)
            cells[~from_source] = [_typed_cell_text(v, was_datetime) for v in typed]
        texts.append(cells.tolist())
    if len(columns) == 1:
        return texts[0]
    return [
        "; ".join(f"{c}={t}" for c, t in zip(columns, row, strict=True))
        for row in zip(*texts, strict=True)
    ]


def _typed_cell_text(value: object, was_datetime: bool) -> str:
    """A typed-frame cell as ``_cell_text`` quotes the source cell it was read from.

    A text column read from Parquet datetimes holds ``str(timestamp)``, which parses back to
    the very timestamp.
    """
    if was_datetime and isinstance(value, str):
        return _cell_text(pd.Timestamp(value))
    return _cell_text(value)


def _cell_text(value: object) -> str:
    if value is None or (not isinstance(value, (list, np.ndarray)) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return value.date().isoformat()
    return str(value)


def report_document(result: ValidationResult) -> dict:
    """The JSON report: ``usable``, per-table counts and every set-aside line."""
    return {
        "usable": result.usable,
        "tables": {
            table: {"rows": c.rows, "accepted": c.accepted, "set_aside": c.set_aside}
            for table, c in result.counts.items()
        },
        "warnings": {
            "follow_up_behind_records": {
                "athletes": result.follow_up.athletes,
                "records_after_observed_until": result.follow_up.records_after_observed_until,
                "records_without_follow_up_row": result.follow_up.records_without_follow_up_row,
            }
        },
        "set_aside": [
            {
                "table": str(line.table),
                "row": int(line.row),
                "key": str(line.key),
                "column": str(line.column),
                "rule": str(line.rule),
                "value": str(line.value),
            }
            for line in result.set_aside.itertuples(index=False)
        ],
    }


def format_summary(result: ValidationResult, limit: int | None = None) -> str:
    """Per-table counts and the set-aside lines, as a person reads them.

    Args:
        result: what ``validate_cohort`` returned.
        limit: print at most this many set-aside lines (``None``: all of them).
    """
    width = max(len(t) for t in result.counts)
    lines = [f"{'table':<{width}}  {'rows':>9}  {'accepted':>9}  {'set aside':>9}"]
    for table, c in result.counts.items():
        lines.append(f"{table:<{width}}  {c.rows:>9}  {c.accepted:>9}  {c.set_aside:>9}")
    total_rows = sum(c.set_aside for c in result.counts.values())
    warning = result.follow_up.message()
    if warning:
        lines += ["", warning]
    if result.set_aside.empty:
        lines.append("")
        lines.append("every record is valid")
        return "\n".join(lines)
    lines.append("")
    lines.append(
        f"set aside: {total_rows} record(s), {len(result.set_aside)} rule failure(s) "
        "(table, row in file, key, column, rule, value):"
    )
    shown = result.set_aside if limit is None else result.set_aside.head(limit)
    for line in shown.itertuples(index=False):
        # Row rules already quote their cells as name=value.
        cells = line.value if "," in line.column else f"{line.column}={line.value!r}"
        lines.append(f"  {line.table} row {line.row} (key {line.key!r}): {line.rule}  {cells}")
    if limit is not None and len(result.set_aside) > limit:
        lines.append(f"  ... {len(result.set_aside) - limit} more (write them all with --rejects)")
    return "\n".join(lines)
