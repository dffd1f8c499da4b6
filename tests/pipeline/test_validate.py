"""validate_cohort: one failing example per contract rule, the cascade, the row accounting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cohort import TABLES
from pipeline.schemas import rule_ids
from pipeline.validate import (
    CROSS_TABLE_RULES,
    SET_ASIDE_COLUMNS,
    format_summary,
    report_document,
    validate_cohort,
)
from tests.conftest import FIXTURE_TODAY, valid_cohort_tables, write_cohort


@dataclass(frozen=True)
class Case:
    """Cell edits (table, 0-based row, column, text) and the rule they must break."""

    edits: tuple[tuple[str, int, str, str], ...]
    table: str
    rule: str
    rows: tuple[int, ...]  # 1-based file rows expected to break the rule, and no others


def case(table: str, row: int, column: str, value: str, rule: str) -> Case:
    return Case(((table, row, column, value),), table, rule, (row + 1,))


CASES = {
    # athletes
    "athlete_id.required": case("athletes", 2, "athlete_id", "", "athlete_id.required"),
    "athlete_id.unique": Case(
        (("athletes", 1, "athlete_id", "A001"),), "athletes", "athlete_id.unique", (1, 2)
    ),
    "athlete_id.pattern": case("athletes", 0, "athlete_id", "Jane Doe", "athlete_id.pattern"),
    "athlete_id.pattern.long": case("athletes", 0, "athlete_id", "A" * 65, "athlete_id.pattern"),
    "sex.enum": case("athletes", 0, "sex", "f", "sex.enum"),
    "birth_year.integer": case("athletes", 0, "birth_year", "19x5", "birth_year.integer"),
    "birth_year.range.low": case("athletes", 0, "birth_year", "1919", "birth_year.range"),
    "birth_year.range.high": case("athletes", 0, "birth_year", "2015", "birth_year.range"),
    "discipline.enum": case("athletes", 0, "discipline", "football", "discipline.enum"),
    "level.enum": case("athletes", 0, "level", "pro", "level.enum"),
    "body_mass_kg.number": case("athletes", 0, "body_mass_kg", "62,5", "body_mass_kg.number"),
    "body_mass_kg.range": case("athletes", 0, "body_mass_kg", "250", "body_mass_kg.range"),
    # injuries
    "injuries.injury_id.required": case("injuries", 0, "injury_id", "", "injury_id.required"),
    "injuries.injury_id.unique": Case(
        (("injuries", 1, "injury_id", "I001"),), "injuries", "injury_id.unique", (1, 2)
    ),
    "injuries.athlete_id.required": case("injuries", 0, "athlete_id", "", "athlete_id.required"),
    "injuries.athlete_id.exists": case("injuries", 0, "athlete_id", "A999", "athlete_id.exists"),
    "injuries.athlete_id.parent_set_aside": Case(
        (("athletes", 2, "sex", "X"),), "injuries", "athlete_id.parent_set_aside", (4,)
    ),
    "injury_date.date_format": case(
        "injuries", 0, "injury_date", "2023-02-30", "injury_date.date_format"
    ),
    "injury_date.date_format.dmy": case(
        "injuries", 0, "injury_date", "01/03/2022", "injury_date.date_format"
    ),
    "injury_date.required": case("injuries", 0, "injury_date", "", "injury_date.required"),
    "injury_date.not_future": case(
        "injuries", 1, "injury_date", "2025-01-01", "injury_date.not_future"
    ),
    "side.required": case("injuries", 0, "side", "", "side.required"),
    "side.enum": case("injuries", 0, "side", "left", "side.enum"),
    "muscle.enum": case("injuries", 0, "muscle", "hamstring", "muscle.enum"),
    "bamic_grade.integer": case("injuries", 0, "bamic_grade", "2.5", "bamic_grade.integer"),
    "bamic_grade.range": case("injuries", 0, "bamic_grade", "5", "bamic_grade.range"),
    "bamic_site.enum": case("injuries", 0, "bamic_site", "d", "bamic_site.enum"),
    "bamic_site.grade": case("injuries", 3, "bamic_site", "a", "bamic_site.grade"),
    "bamic_site.grade.missing": case("injuries", 0, "bamic_grade", "", "bamic_site.grade"),
    "mechanism.enum": case("injuries", 0, "mechanism", "sprinting", "mechanism.enum"),
    # strength_tests
    "test_id.required": case("strength_tests", 0, "test_id", "", "test_id.required"),
    "test_id.unique": Case(
        (("strength_tests", 4, "test_id", "T001"),), "strength_tests", "test_id.unique", (1, 5)
    ),
    "tests.athlete_id.required": case("strength_tests", 0, "athlete_id", "", "athlete_id.required"),
    "tests.athlete_id.exists": case("strength_tests", 0, "athlete_id", "a001", "athlete_id.exists"),
    "tests.athlete_id.parent_set_aside": Case(
        (("athletes", 1, "level", "pro"),),
        "strength_tests",
        "athlete_id.parent_set_aside",
        (3, 4, 5),
    ),
    "test_date.date_format": case(
        "strength_tests", 0, "test_date", "2022-4-1", "test_date.date_format"
    ),
    "test_date.required": case("strength_tests", 0, "test_date", "", "test_date.required"),
    "test.required": case("strength_tests", 0, "test", "", "test.required"),
    "test.enum": case("strength_tests", 0, "test", "nordic", "test.enum"),
    "left.number": case("strength_tests", 0, "left", "abc", "left.number"),
    "left.number.nan": case("strength_tests", 0, "left", "NaN", "left.number"),
    "left.number.inf": case("strength_tests", 0, "left", "inf", "left.number"),
    "left.required": case("strength_tests", 0, "left", "", "left.required"),
    "left.positive": case("strength_tests", 0, "left", "0", "left.positive"),
    "right.number": case("strength_tests", 0, "right", "n/a", "right.number"),
    "right.required": case("strength_tests", 0, "right", "", "right.required"),
    "right.positive": case("strength_tests", 0, "right", "-5", "right.positive"),
    "unit.required": case("strength_tests", 0, "unit", "", "unit.required"),
    "unit.enum": case("strength_tests", 0, "unit", "kg", "unit.enum"),
    "unit.matches_test": case("strength_tests", 0, "unit", "Nm", "unit.matches_test"),
    "unit.matches_test.isokinetic": case("strength_tests", 1, "unit", "N", "unit.matches_test"),
    # return_to_run
    "rtr.injury_id.required": case("return_to_run", 0, "injury_id", "", "injury_id.required"),
    "rtr.injury_id.unique": Case(
        (("return_to_run", 1, "injury_id", "I001"),), "return_to_run", "injury_id.unique", (1, 2)
    ),
    "rtr.injury_id.exists": case("return_to_run", 0, "injury_id", "I999", "injury_id.exists"),
    "rtr.injury_id.parent_set_aside": Case(
        (("injuries", 0, "side", "X"),), "return_to_run", "injury_id.parent_set_aside", (1,)
    ),
    "clinic_id.required": case("return_to_run", 0, "clinic_id", "", "clinic_id.required"),
    "phase1_end_date.date_format": case(
        "return_to_run", 0, "phase1_end_date", "2022-03-32", "phase1_end_date.date_format"
    ),
    "phase2_end_date.date_format": case(
        "return_to_run", 0, "phase2_end_date", "24.03.2022", "phase2_end_date.date_format"
    ),
    "phase3_end_date.date_format": case(
        "return_to_run", 0, "phase3_end_date", "2022-04-05T10:00", "phase3_end_date.date_format"
    ),
    "return_to_run_date.date_format": case(
        "return_to_run", 0, "return_to_run_date", "soon", "return_to_run_date.date_format"
    ),
    "return_to_sport_date.date_format": case(
        "return_to_run", 0, "return_to_sport_date", "1600-01-01", "return_to_sport_date.date_format"
    ),
    "peak_sprint_pct.number": case(
        "return_to_run", 0, "peak_sprint_pct", "95%", "peak_sprint_pct.number"
    ),
    "peak_sprint_pct.range": case(
        "return_to_run", 0, "peak_sprint_pct", "110.5", "peak_sprint_pct.range"
    ),
    "pain_at_return.integer": case(
        "return_to_run", 0, "pain_at_return", "low", "pain_at_return.integer"
    ),
    "pain_at_return.range": case(
        "return_to_run", 0, "pain_at_return", "11", "pain_at_return.range"
    ),
    "slr_deficit_deg.number": case(
        "return_to_run", 0, "slr_deficit_deg", "five", "slr_deficit_deg.number"
    ),
    "slr_deficit_deg.range": case(
        "return_to_run", 0, "slr_deficit_deg", "-1", "slr_deficit_deg.range"
    ),
    "ake_discomfort.boolean": case(
        "return_to_run", 0, "ake_discomfort", "yes", "ake_discomfort.boolean"
    ),
    "phase_dates.order": case(
        "return_to_run", 0, "phase1_end_date", "2022-03-30", "phase_dates.order"
    ),
    "phase_dates.order.skipping_missing": Case(
        (
            ("return_to_run", 0, "phase2_end_date", ""),
            ("return_to_run", 0, "phase3_end_date", "2022-03-05"),
        ),
        "return_to_run",
        "phase_dates.order",
        (1,),
    ),
    "return_dates.order": case(
        "return_to_run", 0, "return_to_sport_date", "2022-03-15", "return_dates.order"
    ),
    "dates.after_injury": case(
        "return_to_run", 0, "phase1_end_date", "2022-02-01", "dates.after_injury"
    ),
    # follow_up
    "fu.athlete_id.required": case("follow_up", 0, "athlete_id", "", "athlete_id.required"),
    "fu.athlete_id.unique": Case(
        (("follow_up", 2, "athlete_id", "A002"),), "follow_up", "athlete_id.unique", (2, 3)
    ),
    "fu.athlete_id.exists": case("follow_up", 0, "athlete_id", "A 001", "athlete_id.exists"),
    "fu.athlete_id.parent_set_aside": Case(
        (("athletes", 0, "body_mass_kg", "20"),), "follow_up", "athlete_id.parent_set_aside", (1,)
    ),
    "observed_until.date_format": case(
        "follow_up", 0, "observed_until", "2024-06", "observed_until.date_format"
    ),
    "observed_until.required": case(
        "follow_up", 0, "observed_until", "", "observed_until.required"
    ),
}


def validate_edited(tmp_path: Path, edits) -> tuple[dict[str, pd.DataFrame], object]:
    tables = valid_cohort_tables()
    for table, row, column, value in edits:
        tables[table].loc[row, column] = value
    folder = write_cohort(tables, tmp_path / "cohort")
    return tables, validate_cohort(folder, today=FIXTURE_TODAY)


def test_every_rule_has_a_failing_example():
    covered = {(c.table, c.rule) for c in CASES.values()}
    for table in TABLES:
        expected = set(rule_ids(table)) | set(CROSS_TABLE_RULES.get(table, ()))
        assert expected == {rule for t, rule in covered if t == table}, table


@pytest.mark.parametrize("example", CASES.values(), ids=CASES.keys())
def test_rule_failure_is_set_aside_with_its_rule(tmp_path, example):
    tables, result = validate_edited(tmp_path, example.edits)
    lines = result.set_aside
    broke = lines[(lines["table"] == example.table) & (lines["rule"] == example.rule)]
    assert sorted(broke["row"]) == sorted(example.rows)
    keys = tables[example.table].iloc[[r - 1 for r in example.rows]]
    assert list(broke["key"]) == list(keys[keys.columns[0]])
    assert result.counts[example.table].set_aside >= len(example.rows)
    assert result.exit_code == 1


def test_valid_cohort_is_accepted_whole(cohort_dir):
    result = validate_cohort(cohort_dir, today=FIXTURE_TODAY)
    assert result.exit_code == 0 and result.usable
    assert result.set_aside.empty and list(result.set_aside.columns) == SET_ASIDE_COLUMNS
    for table, frame in valid_cohort_tables().items():
        assert result.counts[table].rows == result.counts[table].accepted == len(frame)


def test_offending_value_is_quoted_as_in_the_file(tmp_path):
    _, result = validate_edited(tmp_path, [("injuries", 2, "injury_date", "2023-02-30")])
    line = result.set_aside.iloc[0]
    assert line.to_dict() == {
        "table": "injuries",
        "row": 3,
        "key": "I003",
        "column": "injury_date",
        "rule": "injury_date.date_format",
        "value": "2023-02-30",
    }


def test_unreadable_required_cell_is_not_reported_twice(tmp_path):
    _, result = validate_edited(tmp_path, [("strength_tests", 0, "left", "abc")])
    assert list(result.set_aside["rule"]) == ["left.number"]


def test_cascade_sets_aside_everything_that_depends_on_a_bad_athlete(tmp_path):
    # A001 has injuries I001 (an index episode) and I002, tests T001-T002 and a follow-up.
    _, result = validate_edited(tmp_path, [("athletes", 0, "birth_year", "1850")])
    counts = {t: (c.rows, c.accepted, c.set_aside) for t, c in result.counts.items()}
    assert counts == {
        "athletes": (3, 2, 1),
        "injuries": (4, 2, 2),
        "strength_tests": (5, 3, 2),
        "return_to_run": (2, 1, 1),
        "follow_up": (3, 2, 1),
    }
    rtr = result.set_aside[result.set_aside["table"] == "return_to_run"]
    assert list(rtr["rule"]) == ["injury_id.parent_set_aside"] and list(rtr["key"]) == ["I001"]
    assert set(result.cohort.injuries["athlete_id"]) == {"A002", "A003"}
    assert list(result.cohort.return_to_run["injury_id"]) == ["I003"]


def test_row_with_several_failures_counts_once_and_reports_each(tmp_path):
    edits = [("athletes", 0, "sex", "x"), ("athletes", 0, "level", "pro")]
    _, result = validate_edited(tmp_path, edits)
    athletes = result.set_aside[result.set_aside["table"] == "athletes"]
    assert sorted(athletes["rule"]) == ["level.enum", "sex.enum"]
    assert result.counts["athletes"].set_aside == 1


def test_counts_add_up_and_match_the_set_aside_rows(tmp_path):
    edits = [(t, r, c, v) for example in CASES.values() for t, r, c, v in example.edits][:25]
    _, result = validate_edited(tmp_path, edits)
    for table, counts in result.counts.items():
        assert counts.accepted + counts.set_aside == counts.rows
        lines = result.set_aside[result.set_aside["table"] == table]
        assert lines["row"].nunique() == counts.set_aside
        assert len(getattr(result.cohort, table)) == counts.accepted


def test_cohort_has_the_documented_dtypes(cohort_dir):
    cohort = validate_cohort(cohort_dir, today=FIXTURE_TODAY).cohort
    kinds = {
        "athlete_id": "string",
        "birth_year": "Int64",
        "body_mass_kg": "float64",
        "injury_date": "datetime64[ns]",
        "muscle": "string",
        "bamic_grade": "Int64",
        "left": "float64",
        "ake_discomfort": "boolean",
        "return_to_sport_date": "datetime64[ns]",
        "observed_until": "datetime64[ns]",
    }
    for frame in cohort.tables().values():
        for column, dtype in frame.dtypes.items():
            if column in kinds:
                assert str(dtype) == kinds[column] or dtype == kinds[column], column
    assert list(cohort.return_to_run["ake_discomfort"]) == [False, True]
    # The contract reads a missing muscle as "unknown".
    assert cohort.injuries.loc[3, "muscle"] == "unknown"


@pytest.mark.parametrize(
    ("today", "birth_year", "accepted"),
    [(date(2024, 12, 31), "2014", True), (date(2024, 1, 1), "2014", True),
     (date(2023, 12, 31), "2014", False), (date(2024, 6, 1), "1920", True)],
)  # fmt: skip
def test_birth_year_bound_follows_the_run_date(tmp_path, today, birth_year, accepted):
    tables = valid_cohort_tables()
    tables["athletes"].loc[2, "birth_year"] = birth_year
    result = validate_cohort(write_cohort(tables, tmp_path / "c"), today=today)
    assert (result.counts["athletes"].set_aside == 0) is accepted


def test_injury_on_the_run_date_is_not_in_the_future(tmp_path):
    tables = valid_cohort_tables()
    tables["injuries"].loc[1, "injury_date"] = "2025-01-01"
    folder = write_cohort(tables, tmp_path / "c")
    assert validate_cohort(folder, today=date(2025, 1, 1)).exit_code == 0
    assert validate_cohort(folder, today=date(2024, 12, 31)).exit_code == 1


def test_summary_and_report_name_every_set_aside_line(tmp_path):
    _, result = validate_edited(tmp_path, [("strength_tests", 1, "left", "-3")])
    text = format_summary(result)
    assert "strength_tests row 2 (key 'T002'): left.positive  left='-3'" in text
    document = report_document(result)
    assert document["tables"]["strength_tests"] == {"rows": 5, "accepted": 4, "set_aside": 1}
    assert document["set_aside"] == [
        {
            "table": "strength_tests",
            "row": 2,
            "key": "T002",
            "column": "left",
            "rule": "left.positive",
            "value": "-3",
        }
    ]


def test_summary_limit_says_how_many_lines_are_left_out(tmp_path):
    edits = [
        ("strength_tests", 0, "left", "0"),
        ("strength_tests", 1, "right", "-5"),
        ("strength_tests", 2, "unit", "kg"),
    ]
    _, result = validate_edited(tmp_path, edits)
    assert len(result.set_aside) == 3
    text = format_summary(result, limit=1)
    assert "left.positive" in text and "right.positive" not in text and "2 more" in text


# --- the command line -------------------------------------------------------------------------

runner = CliRunner()


def test_cli_exit_codes_and_summary(tmp_path, cohort_dir):
    ok = runner.invoke(app, ["validate", str(cohort_dir), "--today", "2024-12-31"])
    assert ok.exit_code == 0, ok.output
    assert "every record is valid" in ok.stdout
    tables = valid_cohort_tables()
    tables["injuries"].loc[0, "side"] = "left"
    bad = write_cohort(tables, tmp_path / "bad")
    some = runner.invoke(app, ["validate", str(bad), "--today", "2024-12-31"])
    assert some.exit_code == 1
    assert "injuries row 1 (key 'I001'): side.enum  side='left'" in some.stdout


def test_cli_json_is_one_document(tmp_path):
    tables = valid_cohort_tables()
    tables["athletes"].loc[1, "athlete_id"] = "Jane Doe"
    folder = write_cohort(tables, tmp_path / "c")
    out = runner.invoke(app, ["validate", str(folder), "--json", "--today", "2024-12-31"])
    assert out.exit_code == 1
    document = json.loads(out.stdout)
    assert set(document) == {"usable", "tables", "warnings", "set_aside"}
    assert document["usable"] is True
    assert set(document["tables"]) == set(TABLES)
    assert {"table", "row", "key", "column", "rule", "value"} == set(document["set_aside"][0])
    assert {line["rule"] for line in document["set_aside"]} == {
        "athlete_id.pattern",
        "athlete_id.exists",  # A002's injury, tests and follow-up now point nowhere
        "injury_id.parent_set_aside",  # and A002's injury I003 had a return-to-run row
    }


def test_cli_rejects_file_is_private_and_complete(tmp_path):
    tables = valid_cohort_tables()
    tables["strength_tests"].loc[0, "unit"] = "Nm"
    folder = write_cohort(tables, tmp_path / "c")
    rejects = tmp_path / "out" / "rejects.csv"
    out = runner.invoke(
        app, ["validate", str(folder), "--rejects", str(rejects), "--today", "2024-12-31"]
    )
    assert out.exit_code == 1
    written = pd.read_csv(rejects, dtype=str)
    assert list(written.columns) == SET_ASIDE_COLUMNS
    assert list(written["rule"]) == ["unit.matches_test"]
    assert os.stat(rejects).st_mode & 0o777 == 0o600


def test_real_command_reports_unusable_cohort_without_traceback(tmp_path, cohort_dir):
    (cohort_dir / "injuries.csv").write_bytes(b"injury_id;athlete_id\nI1;A1\n")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hamrisk"), "validate", str(cohort_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "injuries.csv" in proc.stderr and "semicolons" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
