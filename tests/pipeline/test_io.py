"""The file edge: real-world CSV/Parquet exports accepted, unreadable ones named and explained."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import UnusableInputError
from pipeline.io import read_table, write_rejects
from pipeline.validate import SET_ASIDE_COLUMNS, validate_cohort
from tests.conftest import FIXTURE_TODAY, valid_cohort_tables, write_cohort

runner = CliRunner()


def rewrite(path: Path, transform: Callable[[str], str], encoding: str = "utf-8") -> None:
    path.write_bytes(transform(path.read_text(encoding="utf-8")).encode(encoding))


def accepted_whole(folder: Path) -> bool:
    result = validate_cohort(folder, today=FIXTURE_TODAY)
    expected = {name: len(frame) for name, frame in valid_cohort_tables().items()}
    return result.exit_code == 0 and {t: c.accepted for t, c in result.counts.items()} == expected


# --- exports that must be accepted -------------------------------------------------------------


def add_bom(folder: Path) -> None:
    for path in folder.glob("*.csv"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


def use_crlf(folder: Path) -> None:
    for path in folder.glob("*.csv"):
        rewrite(path, lambda text: text.replace("\n", "\r\n"))


def add_extra_column(folder: Path) -> None:
    athletes = pd.read_csv(folder / "athletes.csv", dtype=str, keep_default_na=False)
    athletes.insert(1, "notes", ["a, quoted note", "", "x"])
    athletes.to_csv(folder / "athletes.csv", index=False)


def drop_optional_columns(folder: Path) -> None:
    for name, keep in [
        ("athletes", ["athlete_id"]),
        ("injuries", ["injury_id", "athlete_id", "injury_date", "side"]),
        ("return_to_run", ["clinic_id", "injury_id"]),
    ]:
        frame = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
        frame[keep].to_csv(folder / f"{name}.csv", index=False)


def trailing_delimiter(folder: Path) -> None:
    rewrite(folder / "follow_up.csv", lambda text: text.replace("\n", ",\n"))


def whitespace_cells(folder: Path) -> None:
    rewrite(folder / "athletes.csv", lambda text: text.replace("A003,,", "A003,  ,"))


ACCEPTED = {
    "bom": add_bom,
    "crlf": use_crlf,
    "bom_and_crlf": lambda folder: (add_bom(folder), use_crlf(folder)),
    "extra_column": add_extra_column,
    "missing_optional_columns": drop_optional_columns,
    "unnamed_trailing_column": trailing_delimiter,
    "whitespace_only_cell_is_blank": whitespace_cells,
}


@pytest.mark.parametrize("transform", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_real_world_csv_variants_are_accepted(cohort_dir, transform):
    transform(cohort_dir)
    assert accepted_whole(cohort_dir)


def test_missing_optional_columns_are_present_and_missing(cohort_dir):
    drop_optional_columns(cohort_dir)
    cohort = validate_cohort(cohort_dir, today=FIXTURE_TODAY).cohort
    assert list(cohort.athletes.columns[:6]) == [
        "athlete_id",
        "sex",
        "birth_year",
        "discipline",
        "level",
        "body_mass_kg",
    ]
    assert cohort.athletes["birth_year"].isna().all()
    assert str(cohort.athletes["birth_year"].dtype) == "Int64"
    assert cohort.return_to_run["return_to_sport_date"].isna().all()
    assert (cohort.injuries["muscle"] == "unknown").all()


def test_extra_columns_are_kept_as_text(cohort_dir):
    add_extra_column(cohort_dir)
    athletes = validate_cohort(cohort_dir, today=FIXTURE_TODAY).cohort.athletes
    assert athletes["notes"].tolist()[0] == "a, quoted note"


def test_header_only_table_has_no_rows(cohort_dir):
    (cohort_dir / "strength_tests.csv").write_text(
        "test_id,athlete_id,test_date,test,left,right,unit\n"
    )
    result = validate_cohort(cohort_dir, today=FIXTURE_TODAY)
    assert result.counts["strength_tests"].rows == 0 and result.exit_code == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("True", True), ("1", True), ("false", False),
     ("FALSE", False), ("0", False), ("", None)],
)  # fmt: skip
def test_ake_discomfort_reads_true_false_any_case_or_1_0(tmp_path, text, expected):
    tables = valid_cohort_tables()
    tables["return_to_run"].loc[0, "ake_discomfort"] = text
    result = validate_cohort(write_cohort(tables, tmp_path / "c"), today=FIXTURE_TODAY)
    value = result.cohort.return_to_run.loc[0, "ake_discomfort"]
    assert (value is pd.NA) if expected is None else (value == expected)


def test_parse_failures_are_row_level_not_silent_missing(tmp_path):
    tables = valid_cohort_tables()
    tables["injuries"].loc[1, "injury_date"] = "2023-02-30"
    tables["injuries"].loc[2, "bamic_grade"] = "three"
    folder = write_cohort(tables, tmp_path / "c")
    read = read_table(folder / "injuries.csv", "injuries")
    assert read.failures.to_dict("records") == [
        {"position": 1, "column": "injury_date", "rule": "injury_date.date_format"},
        {"position": 2, "column": "bamic_grade", "rule": "bamic_grade.integer"},
    ]
    assert read.source.loc[1, "injury_date"] == "2023-02-30"


def test_whole_number_written_with_decimals_is_an_integer(tmp_path):
    tables = valid_cohort_tables()
    tables["athletes"].loc[0, "birth_year"] = "1995.0"
    result = validate_cohort(write_cohort(tables, tmp_path / "c"), today=FIXTURE_TODAY)
    assert result.exit_code == 0 and result.cohort.athletes.loc[0, "birth_year"] == 1995


def test_parquet_with_text_columns_matches_csv(tmp_path):
    csv_cohort = validate_cohort(
        write_cohort(valid_cohort_tables(), tmp_path / "csv"), today=FIXTURE_TODAY
    ).cohort
    parquet = write_cohort(valid_cohort_tables(), tmp_path / "pq", fmt="parquet")
    parquet_cohort = validate_cohort(parquet, today=FIXTURE_TODAY).cohort
    for name, frame in csv_cohort.tables().items():
        pd.testing.assert_frame_equal(frame, parquet_cohort.tables()[name])


def test_parquet_with_typed_columns_matches_csv(tmp_path):
    cohort = validate_cohort(
        write_cohort(valid_cohort_tables(), tmp_path / "csv"), today=FIXTURE_TODAY
    ).cohort
    folder = tmp_path / "typed"
    folder.mkdir()
    for name, frame in cohort.tables().items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    again = validate_cohort(folder, today=FIXTURE_TODAY)
    assert again.exit_code == 0
    for name, frame in cohort.tables().items():
        pd.testing.assert_frame_equal(frame, again.cohort.tables()[name])


def test_parquet_timestamp_with_time_of_day_is_not_a_date(tmp_path):
    cohort = validate_cohort(
        write_cohort(valid_cohort_tables(), tmp_path / "csv"), today=FIXTURE_TODAY
    ).cohort
    folder = tmp_path / "typed"
    folder.mkdir()
    for name, frame in cohort.tables().items():
        if name == "follow_up":
            frame = frame.assign(observed_until=frame["observed_until"] + pd.Timedelta(hours=9))
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    result = validate_cohort(folder, today=FIXTURE_TODAY)
    assert set(result.set_aside.query("table == 'follow_up'")["rule"]) == {
        "observed_until.date_format"
    }


def test_write_rejects_is_owner_only(tmp_path):
    lines = pd.DataFrame([["injuries", 3, "I003", "side", "side.enum", "left"]])
    lines.columns = SET_ASIDE_COLUMNS
    path = tmp_path / "rejects.csv"
    write_rejects(lines, path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert pd.read_csv(path, dtype=str).loc[0, "value"] == "left"
    assert [p.name for p in tmp_path.iterdir()] == ["rejects.csv"]


# --- exports that make the cohort unusable -----------------------------------------------------


def remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def replace_text(name: str, old: str, new: str, encoding: str = "utf-8"):
    return lambda folder: rewrite(folder / name, lambda text: text.replace(old, new), encoding)


def write_bytes(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def also_parquet(folder: Path) -> None:
    pd.read_csv(folder / "athletes.csv", dtype=str).to_parquet(folder / "athletes.parquet")


def damaged_parquet(folder: Path) -> None:
    (folder / "injuries.csv").unlink()
    (folder / "injuries.parquet").write_bytes(b"PAR1 not really parquet")


def parquet_without_side(folder: Path) -> None:
    injuries = pd.read_csv(folder / "injuries.csv", dtype=str).drop(columns="side")
    injuries.to_parquet(folder / "injuries.parquet")
    (folder / "injuries.csv").unlink()


UNUSABLE = {
    # case: (change to a valid cohort, file named in the message, problem pattern, hint pattern)
    "required_table_missing": (
        remove("follow_up.csv"), "follow_up.csv", "required table follow_up is missing", "export"
    ),
    "table_misnamed": (
        lambda folder: (folder / "athletes.csv").rename(folder / "Athletes.csv"),
        "athletes.csv",
        "required table athletes is missing",
        "found Athletes.csv",
    ),
    "both_formats": (also_parquet, "cohort", "both athletes.csv and athletes.parquet", "only one"),
    "empty_file": (
        write_bytes("injuries.csv", b""), "injuries.csv", r"empty \(0 bytes\)", "export"
    ),
    "blank_file": (
        write_bytes("injuries.csv", b"\r\n\r\n"), "injuries.csv", "no header row", "first line"
    ),
    "latin1": (
        replace_text("athletes.csv", "sprint", "sprïnt", encoding="latin-1"),
        "athletes.csv",
        r"not UTF-8 text \(byte 0xef on line 2\)",
        "UTF-8",
    ),
    "utf16": (
        lambda folder: rewrite(folder / "athletes.csv", str, encoding="utf-16"),
        "athletes.csv",
        "UTF-16",
        "UTF-8",
    ),
    "workbook": (
        write_bytes("athletes.csv", b"PK\x03\x04rest-of-a-zip"),
        "athletes.csv",
        "spreadsheet workbook",
        "CSV UTF-8",
    ),
    "semicolons": (
        replace_text("injuries.csv", ",", ";"), "injuries.csv", "semicolons", "comma-separated"
    ),
    "tabs": (replace_text("injuries.csv", ",", "\t"), "injuries.csv", "tabs", "comma-separated"),
    "pipes": (
        replace_text("injuries.csv", ",", "|"), "injuries.csv", "vertical bars", "comma-separated"
    ),
    "required_column_missing": (
        replace_text("injuries.csv", ",side,", ",laterality,"),
        "injuries.csv",
        "required column side is missing",
        "add a side column",
    ),
    "required_column_typo": (
        replace_text("injuries.csv", "injury_date", "injury_dat"),
        "injuries.csv",
        "required column injury_date is missing",
        "'injury_dat'; rename it to 'injury_date'",
    ),
    "required_column_case": (
        replace_text("follow_up.csv", "athlete_id", "Athlete_ID"),
        "follow_up.csv",
        "required column athlete_id is missing",
        "'Athlete_ID'; rename it to 'athlete_id'",
    ),
    "duplicated_header": (
        replace_text("athletes.csv", "level", "sex"),
        "athletes.csv",
        "more than once: sex",
        "one column",
    ),
    "extra_field_in_a_row": (
        replace_text("athletes.csv", "A002,M", "A002,M,extra"),
        "athletes.csv",
        "Expected 6 fields in line 3, saw 7",
        "unquoted comma",
    ),
    "damaged_parquet": (
        damaged_parquet,
        "injuries.parquet",
        "cannot be read as Parquet",
        "export",
    ),
    "parquet_missing_required_column": (
        parquet_without_side,
        "injuries.parquet",
        "required column side is missing",
        "side",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "file", "problem", "hint"), UNUSABLE.values(), ids=UNUSABLE.keys()
)
def test_unusable_cohort_names_file_problem_and_fix(cohort_dir, change, file, problem, hint):
    change(cohort_dir)
    with pytest.raises(UnusableInputError, match=problem) as caught:
        validate_cohort(cohort_dir, today=FIXTURE_TODAY)
    assert caught.value.path.endswith(file)
    assert caught.value.hint is not None and hint in caught.value.hint


@pytest.mark.parametrize(
    ("change", "file", "problem", "hint"), UNUSABLE.values(), ids=UNUSABLE.keys()
)
def test_unusable_cohort_exits_2_with_a_message_and_no_traceback(
    cohort_dir, change, file, problem, hint
):
    change(cohort_dir)
    result = runner.invoke(app, ["validate", str(cohort_dir), "--today", "2024-12-31"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: ") and file in result.stderr
    assert "Traceback" not in result.output
    as_json = runner.invoke(app, ["validate", str(cohort_dir), "--json"])
    assert as_json.exit_code == 2 and '"usable": false' in as_json.stdout


@pytest.mark.parametrize("missing", ["nowhere", "athletes.csv"])
def test_cohort_folder_missing_or_a_file(cohort_dir, missing):
    with pytest.raises(UnusableInputError, match="cohort folder not found|not a cohort folder"):
        validate_cohort(cohort_dir / missing)
    result = runner.invoke(app, ["validate", str(cohort_dir / missing)])
    assert result.exit_code == 2 and missing in result.stderr


@pytest.mark.parametrize(
    ("cell", "read_as"),
    [
        ("2024-02-29", "2024-02-29"),
        ("2023-02-29", None),  # no such day: Arrow alone would roll it over to March 1st
        ("2024-04-31", None),
        ("2024-13-01", None),
        ("2024-00-10", None),
        ("1678-01-01", "1678-01-01"),  # the span datetime64[ns] holds
        ("1677-12-31", None),
        ("2261-12-31", "2261-12-31"),
        ("2262-01-01", None),
        ("0001-01-01", None),
        ("2024-1-05", None),
        ("2024-01-05T00:00", None),
        ("\uff12\uff10\uff12\uff14-01-05", None),  # full-width digits
    ],
)
def test_date_cells_are_read_only_when_they_are_real_dates(cell, read_as):
    from pipeline.io import _parse_column
    from pipeline.schemas import column_specs

    spec = next(c for c in column_specs("strength_tests") if c.name == "test_date")
    values, bad = _parse_column(pd.Series([cell, "2020-06-01", None], dtype="string"), spec)
    expected = pd.NaT if read_as is None else pd.Timestamp(read_as)
    assert values.iloc[0] == expected if read_as else pd.isna(values.iloc[0])
    assert list(bad) == [read_as is None, False, False]
    assert values.iloc[1] == pd.Timestamp("2020-06-01") and pd.isna(values.iloc[2])


@pytest.mark.parametrize(
    "cell",
    ["1e3", "+1.5", ".5", "5.", "00012", "1.5e400", "1e-400", "0.30000000000000004", "-2"],
)
def test_numbers_read_by_arrow_agree_with_pandas(cell):
    import numpy as np

    from pipeline.io import _text_numbers

    text = pd.Series([cell, None], dtype="string")
    expected = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    np.testing.assert_array_equal(_text_numbers(text), expected)


@pytest.mark.parametrize("cell", [" 1.5", "1.5 ", "1,5", "1_000", "0x10", "12abc", "\u0661"])
def test_a_cell_arrow_refuses_sends_the_column_to_pandas(cell):
    import numpy as np

    from pipeline.io import _text_numbers

    text = pd.Series(["2.5", cell], dtype="string")
    expected = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    np.testing.assert_array_equal(_text_numbers(text), expected)
