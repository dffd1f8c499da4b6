"""Predictions files: the column contract, writing, atomic replacement and reading.

The file ``hamrisk score`` writes and ``hamrisk score --only-new`` and ``hamrisk audit``
read back. Every column is declared once in ``COLUMNS``: its kind fixes its dtype, its
Pandera check, how it is written to CSV and how a cell is read back. A column that is not
always written (a risk curve's horizon, say) is declared with ``required=False``: written
when the frame holds it, read and checked when the file holds it.

Writing goes through ``pipeline.io.atomic_file`` (fsync, then rename): a reader never sees
half a file. Reading has one set of rules for a cell's value; the one choice a reader
makes is which columns it needs (``require``): scoring needs every required column to
append to a file, the audit only those it judges (``AUDITED_COLUMNS``), because it also
audits predictions assembled outside ``hamrisk score`` (an earlier version's files, a
clinic's own export of the same columns).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import pyarrow as pyarrow
import pyarrow.parquet as pq
from pyarrow import csv as pa_csv

from pipeline.errors import UnusableInputError
from pipeline.io import atomic_file
from pipeline.schemas import ID_PATTERN

FORMATS = (".csv", ".parquet")
RISK_BANDS = ("low", "moderate", "high")
# The horizons a predictions file carries before the window (``configs/train.yaml``
# ``incidence.horizons`` but the last).
CURVE_HORIZONS = (28, 90, 180)
CURVE_RISK_COLUMNS = tuple(
    f"risk_{h}d{end}" for h in CURVE_HORIZONS for end in ("", "_ci_low", "_ci_high")
)
CURVE_COLUMNS = (*CURVE_RISK_COLUMNS, "curve_shape")
# Names files written before the interval was named for what it is (a confidence interval
# of the model's estimate, not a range for the athlete's true risk) used; read as the new.
LEGACY_NAMES = {
    f"risk{h}{end}": f"risk{h}_ci{end}"
    for h in ("", *(f"_{h}d" for h in CURVE_HORIZONS))
    for end in ("_low", "_high")
}
# Temporaries of a predictions file end in this, so a run holding the file's lock can find
# and remove what a killed run left behind (``pipeline.io.remove_stale_temporaries``).
TEMP_SUFFIX = ".partial"


@dataclass(frozen=True)
class PredictionColumn:
    """One column of a predictions file.

    Attributes:
        name: the column name.
        kind: ``id`` (an athlete or injury id), ``text``, ``words`` (text kept exactly,
            spaces included), ``version`` (a positive whole number, as text), ``date``,
            ``instant`` (a UTC time), ``flag`` (True/False), ``probability`` (in [0, 1])
            or ``band`` (one of ``RISK_BANDS``).
        required: always written; ``False`` for a column written only when computed.
        nullable: may be missing in a row.
    """

    name: str
    kind: str
    required: bool = True
    nullable: bool = False


COLUMNS: tuple[PredictionColumn, ...] = (
    PredictionColumn("injury_id", "id"),
    PredictionColumn("athlete_id", "id"),
    PredictionColumn("clinic_id", "text", nullable=True),
    PredictionColumn("prediction_time", "date"),
    PredictionColumn("provisional", "flag"),
    PredictionColumn("risk", "probability"),
    PredictionColumn("risk_ci_low", "probability"),
    PredictionColumn("risk_ci_high", "probability"),
    # The cumulative incidence before the window's end (whose is ``risk``): blank in rows
    # written before the curve was scored (files kept by ``--only-new``); ``curve_shape`` says
    # whether the timing is the model's own (``fitted``) or the published one (``published``).
    *(
        PredictionColumn(f"risk_{h}d{end}", "probability", required=False)
        for h in CURVE_HORIZONS
        for end in ("", "_ci_low", "_ci_high")
    ),
    PredictionColumn("curve_shape", "text", required=False, nullable=True),
    PredictionColumn("risk_band", "band"),
    PredictionColumn("top_factors", "words"),
    PredictionColumn("model_name", "text"),
    PredictionColumn("model_version", "version"),
    PredictionColumn("scored_at", "instant"),
)
COLUMNS_BY_NAME = {column.name: column for column in COLUMNS}
PREDICTION_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
# What `hamrisk score` writes: the required columns and the curve.
SCORED_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.required or c.name in CURVE_COLUMNS
)
# What an audit judges a prediction on; the rest of a file is optional to it.
AUDITED_COLUMNS: tuple[str, ...] = (
    "injury_id",
    "athlete_id",
    "clinic_id",
    "prediction_time",
    "risk",
    "model_name",
    "model_version",
)
# Each kind's dtype in a frame, and the rule a cell of it breaks, in a reader's words.
_DTYPES: dict[str, Any] = {
    "id": str,
    "text": str,
    "words": str,
    "version": str,
    "date": "datetime64[ns]",
    "instant": pd.DatetimeTZDtype("ns", "UTC"),
    "flag": bool,
    "probability": "float64",
    "band": str,
}
_RULES = {
    "id": f"must be an id ({ID_PATTERN})",
    "text": "required",
    "words": "required",
    "version": "must be a positive whole number",
    "date": "must be a date (YYYY-MM-DD)",
    "instant": "must be an ISO 8601 time",
    "flag": "must be True or False",
    "probability": "must be a number in [0, 1]",
    "band": f"must be one of {', '.join(RISK_BANDS)}",
}


class PredictionsFileError(UnusableInputError):
    """A predictions file that cannot be read, or breaks the column contract (exit 2)."""


# --- the contract -----------------------------------------------------------------------------


def _checks(column: PredictionColumn) -> list[pa.Check]:
    if column.kind == "id":
        return [pa.Check.str_matches(f"^{ID_PATTERN}$")]
    if column.kind == "version":
        return [pa.Check.str_matches(r"^[1-9][0-9]*$")]
    if column.kind == "probability":
        return [pa.Check.ge(0.0), pa.Check.le(1.0)]
    if column.kind == "band":
        return [pa.Check.isin(RISK_BANDS)]
    return []


def predictions_schema(names: Sequence[str] | None = None) -> pa.DataFrameSchema:
    """The Pandera schema of a predictions frame holding ``names`` (default: the required
    columns), in declared order; one row per (episode, model version)."""
    names = PREDICTION_COLUMNS if names is None else tuple(names)
    declared = [c for c in COLUMNS if c.name in names]
    checks = []
    if {"risk", "risk_ci_low", "risk_ci_high"} <= set(names):
        checks.append(
            pa.Check(
                lambda f: (f["risk_ci_low"] <= f["risk"]) & (f["risk"] <= f["risk_ci_high"]),
                name="risk_interval.order",
                error="risk_ci_low <= risk <= risk_ci_high",
            )
        )
    unique = ["injury_id", "model_version"]
    return pa.DataFrameSchema(
        {
            c.name: pa.Column(
                _DTYPES[c.kind],
                checks=_checks(c),
                nullable=c.nullable or c.kind == "probability" and not c.required,
            )
            for c in declared
        },
        checks=checks,
        strict=True,
        ordered=True,
        unique=unique if set(unique) <= set(names) else None,
        name="Predictions",
    )


def predictions_columns(frame: pd.DataFrame) -> list[str]:
    """The declared columns ``frame`` holds, in declared order (its file's header)."""
    return [c.name for c in COLUMNS if c.name in frame.columns]


def empty_predictions(names: Sequence[str] | None = None) -> pd.DataFrame:
    """A predictions frame with no rows and the contract's dtypes (default: what
    ``hamrisk score`` writes)."""
    names = SCORED_COLUMNS if names is None else tuple(names)
    return pd.DataFrame(
        {c.name: pd.Series(dtype=_DTYPES[c.kind]) for c in COLUMNS if c.name in names}
    )


# --- writing ----------------------------------------------------------------------------------


def output_format(path: Path) -> str:
    """``.csv`` or ``.parquet`` from the file name, or ``""`` for any other extension."""
    suffix = path.suffix.lower()
    return suffix if suffix in FORMATS else ""


class PredictionsWriter:
    """Appends predictions frames to one CSV or Parquet stream (see ``write_predictions``)."""

    def __init__(self, stream: IO[bytes], fmt: str) -> None:
        self.fmt = fmt
        self.rows = 0
        self._stream = stream
        self._header_written = False
        self._parquet: Any = None
        self._schema: Any = None

    def write(self, predictions: pd.DataFrame) -> None:
        """Append ``predictions``; the first frame, even an empty one, sets the header."""
        started = self._header_written or self._parquet is not None
        if started and predictions.empty:
            return
        predictions = predictions[predictions_columns(predictions)]
        if self.fmt == ".csv":
            self._stream.write(csv_text(predictions, header=not self._header_written))
            self._header_written = True
        else:
            table = _arrow_predictions(predictions)
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self._stream, self._schema)
            self._parquet.write_table(table.cast(self._schema))
        self.rows += len(predictions)

    def close(self) -> None:
        """Write the header of a file that got no frame at all, and end the Parquet file."""
        if not self._header_written and self._parquet is None:
            self.write(empty_predictions())
        if self._parquet is not None:
            self._parquet.close()


@contextmanager
def write_predictions(path: Path) -> Iterator[PredictionsWriter]:
    """A writer whose frames appear at ``path`` complete, or not at all.

    Written to a temporary file beside ``path`` (ending in ``TEMP_SUFFIX``), flushed to
    disk and renamed over it by ``pipeline.io.atomic_file``.

    Raises:
        OSError: the file cannot be written.
    """
    with atomic_file(path, "wb", suffix=TEMP_SUFFIX) as stream:
        writer = PredictionsWriter(stream, output_format(path))
        yield writer
        writer.close()


def csv_text(predictions: pd.DataFrame, header: bool) -> bytes:
    """The rows as CSV, by Arrow's writer (an order of magnitude faster than pandas' here).

    Cells are quoted only when they must be: ids, bands and factor words have no commas,
    quotes or line breaks, so a file reads plainly with ``cut`` or ``awk``. A chunk that
    holds such a cell (a model name with a comma, say) is written with its text quoted.
    """
    table = pyarrow.Table.from_pandas(as_csv_text(predictions), preserve_index=False)
    names = ",".join(table.column_names) + "\n" if header else ""
    body = pyarrow.BufferOutputStream()
    try:
        pa_csv.write_csv(
            table, body, pa_csv.WriteOptions(include_header=False, quoting_style="none")
        )
    except pyarrow.ArrowInvalid:  # a cell with a comma, quote or line break
        body = pyarrow.BufferOutputStream()
        pa_csv.write_csv(table, body, pa_csv.WriteOptions(include_header=False))
    return names.encode() + body.getvalue().to_pybytes()


def as_csv_text(predictions: pd.DataFrame) -> pd.DataFrame:
    """Dates as ``YYYY-MM-DD``, instants as ISO 8601 UTC and flags as ``True``/``False``,
    as a person reads them."""
    text: dict[str, Any] = {}
    for name in predictions.columns:
        kind = COLUMNS_BY_NAME[name].kind if name in COLUMNS_BY_NAME else None
        values = predictions[name]
        if kind == "flag":
            text[name] = np.where(values.to_numpy(dtype=bool), "True", "False")
        elif kind == "date":
            text[name] = values.dt.strftime("%Y-%m-%d")
        elif kind == "instant":
            text[name] = values.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return predictions.assign(**text)


def _arrow_predictions(predictions: pd.DataFrame) -> pyarrow.Table:
    """The frame as an Arrow table, UTC instants handed over as such (pyarrow's own
    conversion of a time-zone aware column goes through a deprecated pandas path)."""
    instants = [c for c in predictions.columns if COLUMNS_BY_NAME[c].kind == "instant"]
    table = pyarrow.Table.from_pandas(predictions.drop(columns=instants), preserve_index=False)
    for name in instants:
        utc = predictions[name].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        values = pyarrow.array(utc, pyarrow.timestamp("ns")).cast(pyarrow.timestamp("ns", tz="UTC"))
        table = table.add_column(list(predictions.columns).index(name), name, values)
    return table


# --- reading ----------------------------------------------------------------------------------


def read_predictions(
    path: Path | str, *, require: Sequence[str] = PREDICTION_COLUMNS
) -> pd.DataFrame:
    """A predictions file (CSV or Parquet by extension), checked against the contract.

    Args:
        path: the file.
        require: the columns the file must hold; declared columns beyond them are read
            and checked when present. Undeclared columns are ignored.

    Returns:
        the declared columns the file holds, in declared order, in their contract dtypes.

    Raises:
        PredictionsFileError: the file is missing or unreadable, lacks a column, or holds
            a value that breaks a rule (file, row, column, rule and value named).
    """
    path = Path(path)
    fmt = output_format(path)
    if not fmt:
        raise PredictionsFileError(path, "predictions must be a .csv or .parquet file")
    try:
        if fmt == ".csv":
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        else:
            raw = pd.read_parquet(path)
    except FileNotFoundError:
        raise PredictionsFileError(path, "predictions file not found") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PredictionsFileError(path, f"cannot read the predictions file ({exc})") from None
    legacy = {old: new for old, new in LEGACY_NAMES.items() if old in raw.columns}
    if legacy and not any(new in raw.columns for new in legacy.values()):
        raw = raw.rename(columns=legacy)
    missing = [c for c in require if c not in raw.columns]
    header = str(raw.columns[0]) if len(raw.columns) == 1 else ""
    delimiter = next((d for d in (";", "\t", "|") if d in header), None)
    if missing and delimiter is not None:
        raise PredictionsFileError(
            path,
            f"the header is separated by {delimiter!r}, not by commas",
            "re-export the predictions as comma-separated CSV",
        )
    if missing:
        raise PredictionsFileError(
            path,
            f"missing column(s) {', '.join(missing)}",
            "read a file written by `hamrisk score`, or write to a new file",
        )
    frame = pd.DataFrame(
        {
            c.name: _parse(path, raw[c.name].reset_index(drop=True), c)
            for c in COLUMNS
            if c.name in raw.columns
        },
        index=pd.RangeIndex(len(raw)),
    )
    # A file written before the curve was scored carries none: its curve reads as blank.
    if "risk_ci_high" in frame.columns and not any(c in raw.columns for c in CURVE_COLUMNS):
        frame = frame.assign(
            **{c: np.full(len(frame), np.nan) for c in CURVE_RISK_COLUMNS},
            curve_shape=pd.Series([None] * len(frame), dtype=str, index=frame.index),
        )[[c.name for c in COLUMNS if c.name in frame.columns or c.name in CURVE_COLUMNS]]
    try:
        return predictions_schema(list(frame.columns)).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        raise _schema_error(path, raw, exc) from None


def _parse(path: Path, raw: pd.Series, column: PredictionColumn) -> pd.Series:
    """``raw`` (text from CSV, or typed from Parquet) in the column's dtype.

    Raises:
        PredictionsFileError: a cell that is not a value of the column's kind.
    """
    kind = column.kind
    if kind == "date" and pd.api.types.is_datetime64_any_dtype(raw.dtype):
        dates = raw.dt.tz_localize(None) if getattr(raw.dtype, "tz", None) else raw
        return dates.dt.normalize().astype("datetime64[ns]")
    if kind == "instant" and pd.api.types.is_datetime64_any_dtype(raw.dtype):
        if getattr(raw.dtype, "tz", None) is None:
            return raw.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
        return raw.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if kind == "flag" and pd.api.types.is_bool_dtype(raw.dtype) and not raw.isna().any():
        return raw.astype(bool)
    if kind == "probability" and pd.api.types.is_float_dtype(raw.dtype):
        return raw.astype("float64")
    present = ~raw.isna().to_numpy()
    text = raw.astype("string")
    if kind != "words":
        text = text.str.strip()
    blank = ~present | (text == "").fillna(True).to_numpy(dtype=bool)
    if kind == "words":
        return text.fillna("").astype(str)
    if kind in ("id", "text", "band"):
        if not column.nullable:
            _fail(path, raw, np.flatnonzero(blank), column.name, "required")
        return text.mask(blank).astype(str)
    if kind == "version":
        # A spreadsheet or a float column writes version 3 as "3.0".
        version = text.str.removesuffix(".0")
        bad = ~version.fillna("").str.fullmatch(r"[1-9][0-9]*").fillna(False).to_numpy(bool)
        _fail(path, raw, np.flatnonzero(bad), column.name, _RULES[kind])
        return version.astype(str)
    if kind == "flag":
        flags = text.str.lower().map({"true": True, "false": False})
        _fail(path, raw, np.flatnonzero(flags.isna().to_numpy()), column.name, _RULES[kind])
        return flags.astype(bool)
    if kind == "probability":
        numbers = _numbers(text.mask(blank))
        bad = np.isnan(numbers) if column.required else (~blank & np.isnan(numbers))
        bad |= ~np.isnan(numbers) & ~((numbers >= 0) & (numbers <= 1))
        _fail(path, raw, np.flatnonzero(bad), column.name, _RULES[kind])
        return pd.Series(numbers, dtype="float64")
    if kind in ("date", "instant"):
        times = pd.to_datetime(text.mask(blank), errors="coerce", format="ISO8601", utc=True)
        _fail(path, raw, np.flatnonzero(times.isna().to_numpy()), column.name, _RULES[kind])
        if kind == "instant":
            return times.astype("datetime64[ns, UTC]")
        return times.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    raise ValueError(f"unknown column kind {kind!r}")


def _numbers(text: pd.Series) -> np.ndarray:
    """Floats from text, NaN where a cell is not a number.

    Python's float() reads back exactly the shortest repr the writer produced, so a
    rewritten file repeats the digits it was read with.
    """
    cells = text.to_numpy(dtype=object, na_value=None)
    try:
        return np.array([np.nan if c is None else c for c in cells], dtype=np.float64)
    except ValueError:
        pass
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell) if cell is not None else np.nan
        except ValueError:
            out[i] = np.nan
    return out


def _fail(path: Path, raw: pd.Series, rows: np.ndarray, column: str, rule: str) -> None:
    if rows.size:
        first = int(rows[0])
        value = raw.iloc[first]
        extra = f" (and {rows.size - 1} more rows)" if rows.size > 1 else ""
        raise PredictionsFileError(
            path, f"row {first + 1}, column {column}: {rule}, got {value!r}{extra}"
        )


def _schema_error(path: Path, raw: pd.DataFrame, exc: pandera.errors.SchemaErrors) -> Exception:
    cases = exc.failure_cases
    # A column's own rule says more than a row rule the same bad value also breaks.
    cases = cases.iloc[np.argsort(cases["schema_context"] != "Column", kind="stable")]
    first = cases.iloc[0]
    row = "" if pd.isna(first["index"]) else f"row {int(first['index']) + 1}, "
    if first["schema_context"] == "Column":
        column = str(first["column"])
        kind = COLUMNS_BY_NAME[column].kind if column in COLUMNS_BY_NAME else ""
        value = raw[column].iloc[int(first["index"])] if row else first["failure_case"]
        return PredictionsFileError(
            path, f"{row}column {column}: {_RULES.get(kind, first['check'])}, got {value!r}"
        )
    check = str(first["check"])
    if "unique" in check or "duplicate" in check.lower():
        rule = "one row per injury_id and model_version"
    else:
        rule = "risk_ci_low <= risk <= risk_ci_high"
    return PredictionsFileError(
        path, f"{row}breaks the predictions contract: {rule}, got {first['failure_case']!r}"
    )
