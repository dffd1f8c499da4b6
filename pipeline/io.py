"""Reading and writing cohort tables: the file edge of the pipeline.

Reading follows the data contract (``docs/data-contract.md``): each table is ``NAME.csv`` or
``NAME.parquet`` in the cohort folder. CSV cells are read as text first and every contract
column is then parsed explicitly, so a cell that is not a valid value of its type (an
impossible date, text in a numeric column) becomes a row-level failure with a rule id
(``injury_date.date_format``, ``left.number``) rather than a silent missing value or an
error for the whole file. Problems that make a whole file unreadable raise
``UnusableInputError`` naming the file, the problem and, where it can be guessed, the fix.
"""

from __future__ import annotations

import csv
import difflib
import errno
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from pipeline.cohort import TABLES
from pipeline.errors import UnusableInputError
from pipeline.schemas import MISSING_MEANS, READ_RULES, ColumnSpec, column_specs

FORMATS = ("csv", "parquet")

_DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
# Exactly the characters Python's str.strip() removes (str.isspace), for Arrow's RE2.
_BLANK_PATTERN = r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}]*"
# datetime64[ns] spans 1677-09-21 … 2262-04-11; dates outside cannot be held by a Cohort.
_EARLIEST_DATE = pd.Timestamp("1678-01-01")
_LATEST_DATE = pd.Timestamp("2261-12-31")
# Integers are parsed through float64, which is exact only up to 2**53.
_LARGEST_INTEGER = 2.0**53
_TRUE = ("true", "1")
_FALSE = ("false", "0")
# The first bytes read to check the header before Arrow reads the whole file.
_HEADER_BYTES = 1 << 16
_OTHER_DELIMITERS = {";": "semicolons (;)", "\t": "tabs", "|": "vertical bars (|)"}
FAILURE_COLUMNS = ["position", "column", "rule"]


def write_tables(tables: dict[str, pd.DataFrame], folder: Path | str, fmt: str = "csv") -> None:
    """Write each table to ``folder/NAME.{csv,parquet}`` in the contract's file format.

    CSV dates are written as ISO ``YYYY-MM-DD`` and missing values as empty cells.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False, date_format="%Y-%m-%d", lineterminator="\n")
        else:
            frame.to_parquet(path, index=False)


def write_rejects(set_aside: pd.DataFrame, path: Path | str) -> None:
    """Write set-aside records as CSV, readable by the owner only (they hold athlete ids).

    The file appears complete or not at all: it is written next to its target and renamed.
    """
    path = Path(path)
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                # mkdir would report "File exists", which names neither the path nor the fix.
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as out:
        set_aside.to_csv(out, index=False, lineterminator="\n")


@contextmanager
def atomic_file(path: Path, mode: str = "w", suffix: str = "") -> Iterator[IO[Any]]:
    """A file that appears at ``path`` complete or not at all, readable by its owner only.

    The one way hamrisk writes an output. Written next to its target (``.NAME.XXXX`` +
    ``suffix``), flushed to disk, renamed over it on success (a rename is atomic within a
    folder) and the rename itself made durable; removed on any failure the process
    survives. A killed process leaves its temporary behind: a caller that holds a lock on
    ``path`` removes those with ``remove_stale_temporaries``. ``mkstemp`` creates the file
    with mode 0o600, so no other user can read it at any point: outputs hold athlete ids.
    """
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with os.fdopen(handle, mode, **text) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def remove_stale_temporaries(path: Path, suffix: str) -> None:
    """Remove the temporaries of ``path`` that ``atomic_file`` calls with ``suffix`` left
    behind when killed. Only for a caller holding a lock on ``path``: no other writer is
    using them then."""
    for stale in path.parent.glob(f".{path.name}.*{suffix}"):
        stale.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX: fsync the directory), where it can be."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename stands regardless
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TableRead:
    """One table as read from its file, before any contract rule beyond cell types.

    Attributes:
        table: the contract table name.
        path: the file it was read from.
        frame: contract columns in contract order with the dtypes of ``pipeline.cohort``
            (missing optional columns added as all missing), then any extra columns.
        source: the cells exactly as read (text for CSV), to quote offending values,
            indexed by position (0-based data row); after ``keep_source_rows`` only some rows.
        failures: cells that are not a valid value of their column's type: ``position``
            (0-based data row), ``column``, ``rule``.
    """

    table: str
    path: Path
    frame: pd.DataFrame
    source: pd.DataFrame
    failures: pd.DataFrame

    def keep_source_rows(self, positions: np.ndarray | pd.Series) -> TableRead:
        """This read with ``source`` cut to the rows at ``positions``, the rest let go.

        Every cell of a large export as text would otherwise stay in memory beside its
        typed frame for as long as the read is kept.
        """
        rows = np.unique(np.asarray(positions, dtype="int64"))
        return replace(self, source=self.source.iloc[rows])


def find_table_file(folder: Path | str, table: str) -> Path:
    """The one file holding ``table`` in ``folder`` (``.csv`` or ``.parquet``).

    Raises:
        UnusableInputError: the folder does not exist, the table has no file, or has two.
    """
    folder = Path(folder)
    if not folder.exists():
        raise UnusableInputError(folder, "cohort folder not found")
    if not folder.is_dir():
        raise UnusableInputError(folder, "is a file, not a cohort folder", "pass the folder")
    candidates = [folder / f"{table}.{fmt}" for fmt in FORMATS]
    present = [path for path in candidates if path.is_file()]
    if len(present) == 2:
        raise UnusableInputError(
            folder,
            f"both {table}.csv and {table}.parquet exist, so which one to read is ambiguous",
            "keep only one of them",
        )
    if present:
        return present[0]
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    stems = {name.rsplit(".", 1)[0].lower(): name for name in names}
    close = stems.get(table) or next(
        (stems[s] for s in difflib.get_close_matches(table, list(stems), n=1, cutoff=0.75)),
        None,
    )
    hint = (
        f"found {close}: rename it to {table}.csv or {table}.parquet"
        if close
        else f"export the {table} table as {table}.csv or {table}.parquet"
    )
    raise UnusableInputError(
        candidates[0], f"required table {table} is missing ({table}.csv or .parquet)", hint
    )


def read_table(path: Path | str, table: str) -> TableRead:
    """Read one contract table from a CSV or Parquet file and parse its columns.

    Raises:
        UnusableInputError: the file cannot be read as the contract says.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnusableInputError(path, "file is empty (0 bytes)", f"export the {table} table again")
    source = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    _check_columns(path, table, source)
    return _parse_table(path, table, source)


def read_cohort_tables(folder: Path | str) -> dict[str, TableRead]:
    """Read the five contract tables of a cohort folder, in contract order.

    Raises:
        UnusableInputError: the folder or one of its tables cannot be read.
    """
    paths = {table: find_table_file(folder, table) for table in TABLES}
    return {table: read_table(path, table) for table, path in paths.items()}


# --- files to frames ----------------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell of a contract CSV as text, with the header checked for what breaks reading."""
    with path.open("rb") as handle:
        start = handle.read(_HEADER_BYTES)
    # Only the header line is decoded here, and Arrow reads the file itself: a copy of the
    # whole file in memory (or its lines as millions of small strings) would multiply the
    # peak memory of a large export. Arrow checks the rest is UTF-8; any doubt goes through
    # _decode, which names the bad byte.
    end = start.find(b"\n")
    if end < 0 and len(start) == _HEADER_BYTES:
        start = path.read_bytes()  # a header longer than the first block: rare and small
        end = start.find(b"\n")
    try:
        first_line = (start if end < 0 else start[:end]).decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        first_line = _decode(path, path.read_bytes())  # raises, naming the byte and line
    if start.startswith((b"\xff\xfe", b"\xfe\xff", b"PK\x03\x04")):
        _decode(path, start)  # raises: UTF-16 or a spreadsheet, with the fix
    if not first_line.strip():
        raise UnusableInputError(path, "has no header row", "the first line must name the columns")
    header = next(csv.reader([first_line]))
    _check_delimiter(path, first_line, header)
    cells = _read_well_formed_csv(path, start.startswith(b"\xef\xbb\xbf"), len(header))
    if cells is not None:
        return cells
    data = path.read_bytes()
    _decode(path, data)  # a file Arrow could not read may not be UTF-8: say so first
    try:
        # header=None: the header row fixes the field count, so a data row with more fields
        # is an error instead of pandas silently turning the first column into an index.
        cells = pd.read_csv(
            io.BytesIO(data),
            header=None,
            dtype=str,
            na_filter=False,
            encoding="utf-8-sig",
            skip_blank_lines=True,
        )
    except pd.errors.ParserError as exc:
        raise UnusableInputError(
            path,
            f"cannot be read as CSV: {str(exc).replace('Error tokenizing data. C error: ', '')}",
            "a text cell probably holds an unquoted comma or quote; quote such cells",
        ) from None
    return _named_columns(cells)


def _read_well_formed_csv(path: Path, bom: bool, n_columns: int) -> pd.DataFrame | None:
    """Every cell as text under its header name with Arrow's CSV reader, or ``None`` when
    a row is malformed.

    Arrow keeps text in compact buffers instead of one Python object per cell, which cuts
    reading time and peak memory several-fold on large exports. Any row it cannot parse
    (a field count that differs from the header's, say) sends the file back to the
    pandas reader, whose messages and handling of short rows the contract documents.
    """
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    try:
        with pa.OSFile(str(path), "rb") as source:
            if bom:
                source.seek(3)
            table = pa_csv.read_csv(
                source,
                read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(
                    column_types={f"f{i}": pa.large_string() for i in range(n_columns)},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    null_values=[],
                    check_utf8=True,
                    auto_dict_encode=False,
                    include_missing_columns=False,
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0:
        return None
    # The first row names the columns (as in _named_columns); slicing and selecting in
    # Arrow are zero-copy, so the cells are converted to pandas exactly once.
    names = [str(table.column(i)[0].as_py()) for i in range(table.num_columns)]
    keep = [i for i, name in enumerate(names) if name.strip()]
    table = table.select(keep).slice(1).rename_columns([names[i] for i in keep])
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    return table.to_pandas(types_mapper=lambda _: text, self_destruct=True, split_blocks=True)


def _named_columns(cells: pd.DataFrame) -> pd.DataFrame:
    """The first row as column names; columns with no name are dropped."""
    names = [str(name) for name in cells.iloc[0]]
    cells = cells.iloc[1:].reset_index(drop=True)
    cells.columns = names
    keep = [bool(name.strip()) for name in names]
    # Columns with no header name (a trailing delimiter on every line) are not data.
    return cells.loc[:, keep]


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnusableInputError(
            path, "is UTF-16 encoded, not UTF-8", "re-export the file as UTF-8 (CSV UTF-8)"
        )
    if data.startswith(b"PK\x03\x04"):
        raise UnusableInputError(
            path, "is a spreadsheet workbook, not CSV text", "save the sheet as CSV UTF-8"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UnusableInputError(
            path,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})",
            "re-export the file as UTF-8 (in Excel: CSV UTF-8)",
        ) from None


def _check_delimiter(path: Path, header_line: str, header: list[str]) -> None:
    commas = header_line.count(",")
    for delimiter, called in _OTHER_DELIMITERS.items():
        if header_line.count(delimiter) > commas:
            raise UnusableInputError(
                path,
                f"columns are separated by {called}, not commas",
                "export as comma-separated CSV (in Excel: CSV UTF-8 (comma delimited))",
            )
    named = [name for name in header if name.strip()]
    duplicated = sorted({name for name in named if named.count(name) > 1})
    if duplicated:
        raise UnusableInputError(
            path,
            f"header names columns more than once: {', '.join(duplicated)}",
            "keep one column of each name",
        )


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise UnusableInputError(
            path, f"cannot be read as Parquet ({type(exc).__name__})", "export the table again"
        ) from None
    frame.columns = [str(name) for name in frame.columns]
    duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise UnusableInputError(
            path,
            f"has more than one column named {', '.join(duplicated)}",
            "keep one column of each name",
        )
    return frame.reset_index(drop=True)


def _check_columns(path: Path, table: str, source: pd.DataFrame) -> None:
    present = list(source.columns)
    for spec in column_specs(table):
        if spec.required and spec.name not in present:
            raise UnusableInputError(
                path,
                f"required column {spec.name} is missing",
                _closest_header_hint(spec.name, present),
            )


def _closest_header_hint(name: str, present: list[str]) -> str:
    by_case = [p for p in present if p.strip().lower() == name.lower()]
    close = by_case or difflib.get_close_matches(name, present, n=1, cutoff=0.75)
    if close:
        return f"the header has {close[0]!r}; rename it to {name!r} (names are case-sensitive)"
    return f"add a {name} column; the header has: {', '.join(present) or 'no columns'}"


# --- text to typed columns ----------------------------------------------------------------------


def _parse_table(path: Path, table: str, source: pd.DataFrame) -> TableRead:
    n_rows = len(source)
    columns: dict[str, pd.Series] = {}
    failures: list[pd.DataFrame] = []
    for spec in column_specs(table):
        if spec.name in source.columns:
            values, bad = _parse_column(source[spec.name], spec)
        else:
            values, bad = _parse_column(pd.Series([pd.NA] * n_rows, dtype="string"), spec)
        default = MISSING_MEANS.get(table, {}).get(spec.name)
        if default is not None:
            values = values.fillna(default)
        columns[spec.name] = values
        if bad.any():
            positions = np.flatnonzero(bad)
            failures.append(
                pd.DataFrame(
                    {
                        "position": positions,
                        "column": spec.name,
                        "rule": f"{spec.name}.{READ_RULES[spec.kind]}",
                    }
                )
            )
    contract = {spec.name for spec in column_specs(table)}
    for name in source.columns:
        if name not in contract:
            extra = source[name]
            columns[name] = extra.astype("string") if extra.dtype == "str" else extra
    frame = pd.DataFrame(columns, index=pd.RangeIndex(n_rows))
    failure_frame = (
        pd.concat(failures, ignore_index=True)
        if failures
        else pd.DataFrame({"position": pd.Series(dtype="int64"), "column": [], "rule": []})
    )
    return TableRead(table, path, frame, source, failure_frame[FAILURE_COLUMNS])


def _parse_column(raw: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, np.ndarray]:
    """The column in its contract dtype, and which cells could not be read as that type."""
    raw = raw.reset_index(drop=True)
    if spec.kind == "date" and pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return _typed_dates(raw)
    if spec.kind in ("number", "integer") and _is_plain_numeric(raw.dtype):
        numbers = raw.to_numpy(dtype="float64", na_value=np.nan)
        return _typed_numbers(numbers, ~np.isnan(numbers), spec.kind)
    if spec.kind == "boolean" and pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean"), np.zeros(len(raw), dtype=bool)
    if raw.dtype == object:
        inferred = pd.api.types.infer_dtype(raw, skipna=True)
        if spec.kind == "date" and inferred in ("date", "datetime"):
            return _typed_dates(pd.to_datetime(raw))
        if spec.kind == "boolean" and inferred == "boolean":
            return raw.astype("boolean"), np.zeros(len(raw), dtype=bool)
    text = _as_text(raw)
    # Matched in place: stripping would copy every cell of the column first.
    blank = _matches(text, _BLANK_PATTERN) | text.isna().to_numpy(dtype=bool)
    if blank.any():
        text = text.mask(blank)
    if spec.kind == "text":
        return text.astype("string"), np.zeros(len(raw), dtype=bool)
    if spec.kind == "date":
        return _text_dates(text, blank)
    if spec.kind in ("number", "integer"):
        return _typed_numbers(_text_numbers(text), ~blank, spec.kind)
    # boolean: the contract allows true/false in any letter case, or 1/0
    lowered = text.str.strip().str.lower()
    flags = pd.Series(pd.NA, index=text.index, dtype="boolean")
    flags[lowered.isin(_TRUE).fillna(False).astype(bool)] = True
    flags[lowered.isin(_FALSE).fillna(False).astype(bool)] = False
    return flags, ~blank & flags.isna().to_numpy()


def _as_text(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(raw.dtype) and raw.dtype != object:
        return raw.astype("string")
    return raw.map(lambda value: value if pd.isna(value) else str(value)).astype("string")


def _is_plain_numeric(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _typed_dates(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Datetimes from a typed (Parquet) column: a date is a midnight with no time zone."""
    if getattr(values.dtype, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    missing = values.isna().to_numpy()
    has_time = (values != values.dt.normalize()).fillna(False).to_numpy(dtype=bool)
    dates, out_of_span = _within_span(values.mask(has_time))
    return dates, ~missing & (has_time | out_of_span)


def _arrow_text(text: pd.Series) -> Any:
    """The column as an Arrow string array, without copying an Arrow-backed one."""
    import pyarrow as pa

    return pa.table({"cell": text.astype("string[pyarrow]")})["cell"]


def _matches(text: pd.Series, pattern: str) -> np.ndarray:
    """Which cells match ``pattern`` whole (RE2 syntax, as Arrow reads it); missing: no."""
    import pyarrow.compute as pc

    found = pc.match_substring_regex(_arrow_text(text), f"^(?:{pattern})$")
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def _text_numbers(text: pd.Series) -> np.ndarray:
    """Numbers from text, NaN where a cell is not one.

    Arrow's cast reads a clean column without turning every cell into a Python object
    first (pandas' parser does, about 0.5 GiB for 6.6 million strength values); any cell it
    refuses sends the column to pandas, whose reading (surrounding spaces allowed) the
    contract documents. For the cells both accept they agree (tests/pipeline/test_io.py).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(_arrow_text(text), pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _text_dates(text: pd.Series, blank: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """``YYYY-MM-DD`` text as dates, in Arrow: pandas' parser would first turn every cell
    into a Python object (about 0.5 GiB for 6.6 million test dates)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = _arrow_text(text)
    well_formed = pc.match_substring_regex(cells, f"^{_DATE_PATTERN}$")
    parsed = pc.strptime(cells, format="%Y-%m-%d", unit="s", error_is_null=True)

    # Arrow rolls an impossible day over (2024-02-30 reads as 2024-03-01): a date is one
    # only if its month and day read back as written (compared as numbers turned to text;
    # Arrow's strftime is an order of magnitude slower than the parsing itself).
    def two_digits(values: Any) -> Any:
        return pc.utf8_lpad(pc.cast(values, pa.string()), width=2, padding="0")

    month_day = pc.binary_join_element_wise(
        two_digits(pc.month(parsed)), two_digits(pc.day(parsed)), "-"
    )
    written = pc.cast(pc.utf8_slice_codeunits(cells, 5, 10), pa.string())
    as_written = pc.equal(month_day, written)
    inside = pc.and_(
        pc.greater_equal(parsed, pa.scalar(_EARLIEST_DATE.to_pydatetime(), pa.timestamp("s"))),
        pc.less_equal(parsed, pa.scalar(_LATEST_DATE.to_pydatetime(), pa.timestamp("s"))),
    )
    valid = pc.fill_null(pc.and_(pc.and_(well_formed, as_written), inside), False)
    dates = pc.if_else(valid, parsed, pa.scalar(None, pa.timestamp("s")))
    values = dates.cast(pa.timestamp("ns")).to_numpy().astype("datetime64[ns]")
    return pd.Series(values), ~blank & ~valid.to_numpy()


def _within_span(dates: pd.Series) -> tuple[pd.Series, np.ndarray]:
    outside = ((dates < _EARLIEST_DATE) | (dates > _LATEST_DATE)).fillna(False).to_numpy(bool)
    return dates.mask(outside).astype("datetime64[ns]"), outside


def _typed_numbers(
    values: np.ndarray, present: np.ndarray, kind: str
) -> tuple[pd.Series, np.ndarray]:
    """Floats (whole numbers for integer columns); a present cell that is not one fails.

    ``present`` marks cells that hold something: NaN there is text that is not a number.
    """
    finite = np.isfinite(values)
    bad = present & ~finite
    if kind == "integer":
        whole = finite & (np.abs(values) <= _LARGEST_INTEGER)
        whole[whole] = values[whole] == np.round(values[whole])
        bad |= finite & ~whole
        ints = pd.array(np.where(whole, values, 0).astype("int64"), dtype="Int64")
        ints[~whole] = pd.NA
        return pd.Series(ints), bad
    return pd.Series(np.where(finite, values, np.nan), dtype="float64"), bad
