"""Messy clinic exports through the real command line: one clear message, never a traceback.

The reader and every contract rule are tested rule by rule at the function level in
``tests/pipeline/test_validate.py`` and ``test_io.py``; here the cases of a messy export go
through the installed ``hamrisk`` command (``validate``) and through ``hamrisk train``, and
each must come back as the documented exit code with a message that names the file or the
table, row, key, column, rule and offending value.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cohort import TABLES
from tests.robustness.conftest import TRAIN_FAST, run_hamrisk, simulate

TODAY = "2026-11-01"
WRONG_UNIT = {"N": "Nm", "Nm": "N"}


def read_text_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {
        name: pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in TABLES
    }


def write_text_tables(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    return folder


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("sim") / "cohort", athletes=40, seed=5)


def messy_export(tables: dict[str, pd.DataFrame]) -> list[tuple[str, int, str, str, str]]:
    """Break one row per case of a messy export; return (table, row, column, value, rule)."""
    rtr = tables["return_to_run"]
    both = rtr.index[(rtr["return_to_run_date"] != "") & (rtr["return_to_sport_date"] != "")]
    late_run = rtr.loc[both[0], "return_to_sport_date"]
    late_run = (pd.Timestamp(late_run) + timedelta(days=10)).date().isoformat()
    tests = tables["strength_tests"]
    cases = [
        ("athletes", 5, "athlete_id", tables["athletes"].loc[4, "athlete_id"], "athlete_id.unique"),
        ("athletes", 8, "body_mass_kg", "250", "body_mass_kg.range"),
        ("injuries", 3, "athlete_id", "A999999", "athlete_id.exists"),
        ("injuries", 6, "injury_date", "2023-02-30", "injury_date.date_format"),
        ("injuries", 9, "side", "left", "side.enum"),
        ("injuries", 11, "injury_date", "2030-05-01", "injury_date.not_future"),
        ("strength_tests", 2, "test_date", "01/03/2022", "test_date.date_format"),
        ("strength_tests", 4, "left", "abc", "left.number"),
        ("strength_tests", 6, "right", "-5", "right.positive"),
        ("strength_tests", 8, "left", "0", "left.positive"),
        ("strength_tests", 10, "unit", WRONG_UNIT[tests.loc[10, "unit"]], "unit.matches_test"),
        ("return_to_run", int(both[0]), "return_to_run_date", late_run, "return_dates.order"),
        ("return_to_run", int(both[1]), "peak_sprint_pct", "150", "peak_sprint_pct.range"),
        ("return_to_run", int(both[2]), "ake_discomfort", "maybe", "ake_discomfort.boolean"),
        ("follow_up", 7, "observed_until", "31.12.2025", "observed_until.date_format"),
    ]
    for table, row, column, value, _ in cases:
        tables[table].loc[row, column] = value
    return cases


def test_real_validate_names_every_bad_record_of_a_messy_export(simulated, tmp_path):
    tables = read_text_tables(simulated)
    cases = messy_export(tables)
    folder = write_text_tables(tables, tmp_path / "messy")
    text = run_hamrisk("validate", str(folder), "--today", TODAY, home=tmp_path)
    as_json = run_hamrisk("validate", str(folder), "--json", "--today", TODAY, home=tmp_path)
    for proc in (text, as_json):
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
    document = json.loads(as_json.stdout)
    lines = {(d["table"], d["row"], d["column"], d["rule"]): d for d in document["set_aside"]}
    for table, row, column, value, rule in cases:
        key_column = {"return_to_run": "injury_id", "strength_tests": "test_id"}.get(
            table, "athlete_id" if table != "injuries" else "injury_id"
        )
        key = tables[table].loc[row, key_column]
        # The row rules quote every cell they read, so match the rule's line by its rule id.
        found = [d for (t, r, _, ru), d in lines.items() if (t, r, ru) == (table, row + 1, rule)]
        assert len(found) == 1, (table, row, rule)
        assert found[0]["key"] == key and value in found[0]["value"]
        assert column in found[0]["column"].split(",")
        assert f"{table} row {row + 1} (key '{key}'): {rule}" in text.stdout
    for name, counts in document["tables"].items():
        assert counts["rows"] == len(tables[name])
        assert counts["accepted"] + counts["set_aside"] == counts["rows"]


# --- hamrisk train on exports that cannot be read, or cannot support a model -----------------


def semicolons(folder: Path) -> None:
    path = folder / "injuries.csv"
    path.write_text(path.read_text().replace(",", ";"))


def latin1(folder: Path) -> None:
    path = folder / "athletes.csv"
    path.write_bytes(path.read_text().replace("sprint", "spr\u00efnt").encode("latin-1"))


def empty(folder: Path) -> None:
    (folder / "strength_tests.csv").write_bytes(b"")


def header_only(folder: Path) -> None:
    path = folder / "athletes.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")


def missing_table(folder: Path) -> None:
    (folder / "follow_up.csv").rename(folder / "followup.csv")


def missing_column(folder: Path) -> None:
    frame = pd.read_csv(folder / "return_to_run.csv", dtype=str, keep_default_na=False)
    frame.drop(columns="clinic_id").to_csv(folder / "return_to_run.csv", index=False)


TRAIN_CASES = {
    # case: (change, what stderr must say after "error: ")
    "wrong_delimiter": (semicolons, r"injuries\.csv: columns are separated by semicolons"),
    "wrong_encoding": (latin1, r"athletes\.csv: is not UTF-8 text \(byte 0xef on line \d+\)"),
    "empty_file": (empty, r"strength_tests\.csv: file is empty"),
    "missing_table": (missing_table, r"follow_up\.csv: required table .*found followup\.csv"),
    "missing_column": (missing_column, r"return_to_run\.csv: required column clinic_id"),
    # Every athlete set aside leaves no outcomes: training says so instead of fitting nothing.
    "header_only": (header_only, r"only 0 recurrences and 0 non-recurrences"),
}


@pytest.mark.parametrize(("change", "message"), TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_train_on_an_unusable_cohort_exits_2_with_one_message(
    simulated, tmp_path, private_home, change, message
):
    folder = write_text_tables(read_text_tables(simulated), tmp_path / "cohort")
    change(folder)
    result = CliRunner().invoke(
        app, ["train", str(folder), "--config", str(TRAIN_FAST), "--today", TODAY]
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert pd.Series([result.stderr]).str.contains(message).all(), result.stderr


def test_real_train_on_an_unusable_cohort_has_no_traceback(simulated, tmp_path):
    folder = write_text_tables(read_text_tables(simulated), tmp_path / "cohort")
    latin1(folder)
    proc = run_hamrisk(
        "train", str(folder), "--config", str(TRAIN_FAST), "--today", TODAY, home=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "athletes.csv" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# --- hamrisk audit on predictions files that are not what scoring wrote ----------------------


def predictions_of(cohort: Path, model: str = "hamstring-reinjury") -> pd.DataFrame:
    """A predictions file as ``hamrisk score`` writes it: one row per index episode."""
    episodes = pd.read_csv(cohort / "return_to_run.csv", dtype=str, keep_default_na=False)
    injuries = pd.read_csv(cohort / "injuries.csv", dtype=str).set_index("injury_id")
    return pd.DataFrame(
        {
            "injury_id": episodes["injury_id"],
            "athlete_id": injuries.loc[episodes["injury_id"], "athlete_id"].to_numpy(),
            "clinic_id": episodes["clinic_id"],
            "prediction_time": episodes["return_to_sport_date"].replace("", TODAY),
            "provisional": episodes["return_to_sport_date"].eq(""),
            "risk": 0.3,
            "model_name": model,
            "model_version": "1",
        }
    )


def _write(frame: pd.DataFrame, path: Path, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


# Missing columns, another model and bad cells are in tests/pipeline/test_audit.py.
AUDIT_CASES = {
    # case: (predictions file from the valid frame, what stderr must say)
    "no_rows": (lambda frame, path: _write(frame.head(0), path), "holds no rows"),
    "empty_file": (lambda frame, path: path.write_bytes(b"") or path, "cannot read"),
    "wrong_delimiter": (
        lambda frame, path: _write(frame, path, sep=";"),
        r"the header is separated by ';', not by commas",
    ),
    "not_found": (lambda frame, path: path, "predictions file not found"),
    "workbook": (
        lambda frame, path: (
            path.with_suffix(".xlsx").write_bytes(b"PK\x03\x04") or path.with_suffix(".xlsx")
        ),
        r"must be a \.csv or \.parquet file",
    ),
}


@pytest.mark.parametrize(("make", "message"), AUDIT_CASES.values(), ids=AUDIT_CASES.keys())
def test_audit_of_a_bad_predictions_file_exits_2_naming_it(
    simulated, tmp_path, private_home, make, message
):
    path = make(predictions_of(simulated), tmp_path / "predictions.csv")
    result = CliRunner().invoke(
        app,
        ["audit", str(simulated), "--predictions", str(path), "--out", str(tmp_path / "audit"),
         "--today", TODAY],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: {path}: ") and result.stderr.count("\n") == 1
    assert pd.Series([result.stderr]).str.contains(message).all(), result.stderr
    assert not (tmp_path / "audit").exists()


def test_the_undamaged_predictions_file_is_audited(simulated, tmp_path, private_home):
    """The control: the file the cases above damage is itself accepted."""
    path = _write(predictions_of(simulated), tmp_path / "predictions.csv")
    result = CliRunner().invoke(
        app,
        ["audit", str(simulated), "--predictions", str(path), "--out", str(tmp_path / "audit"),
         "--today", TODAY],
    )  # fmt: skip
    assert result.exit_code in (0, 1, 3), result.output
    assert (tmp_path / "audit" / "report.json").is_file()
