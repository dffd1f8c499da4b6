"""Small in-memory cohorts with the dtypes of a validated ``Cohort`` (pipeline/cohort.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
import pytest

from pipeline.cohort import Cohort

COLUMNS: dict[str, dict[str, str]] = {
    "athletes": {
        "athlete_id": "string",
        "sex": "string",
        "birth_year": "Int64",
        "discipline": "string",
        "level": "string",
        "body_mass_kg": "float64",
    },
    "injuries": {
        "injury_id": "string",
        "athlete_id": "string",
        "injury_date": "datetime64[ns]",
        "side": "string",
        "muscle": "string",
        "bamic_grade": "Int64",
        "bamic_site": "string",
        "mechanism": "string",
    },
    "strength_tests": {
        "test_id": "string",
        "athlete_id": "string",
        "test_date": "datetime64[ns]",
        "test": "string",
        "left": "float64",
        "right": "float64",
        "unit": "string",
    },
    "return_to_run": {
        "injury_id": "string",
        "clinic_id": "string",
        "phase1_end_date": "datetime64[ns]",
        "phase2_end_date": "datetime64[ns]",
        "phase3_end_date": "datetime64[ns]",
        "return_to_run_date": "datetime64[ns]",
        "return_to_sport_date": "datetime64[ns]",
        "peak_sprint_pct": "float64",
        "pain_at_return": "Int64",
        "slr_deficit_deg": "float64",
        "ake_discomfort": "boolean",
    },
    "follow_up": {"athlete_id": "string", "observed_until": "datetime64[ns]"},
}

UNITS = {
    "nordic_eccentric": "N",
    "isometric_knee_flexion": "N",
    "isokinetic_knee_flexion_concentric": "Nm",
    "isokinetic_knee_flexion_eccentric": "Nm",
    "isokinetic_knee_extension_concentric": "Nm",
}


def table(name: str, rows: Iterable[Mapping[str, object]] = ()) -> pd.DataFrame:
    """One contract table from row dicts; absent optional columns are all missing."""
    columns = COLUMNS[name]
    rows = [dict(row) for row in rows]
    if name == "strength_tests":
        for row in rows:
            row.setdefault("unit", UNITS[row["test"]])
    frame = pd.DataFrame(rows, columns=list(columns))
    for column, dtype in columns.items():
        values = frame[column]
        if dtype.startswith("datetime"):
            values = pd.to_datetime(values)
        frame[column] = values.astype(dtype)
    return frame


def make_cohort(
    athletes: Iterable[Mapping[str, object]] = (),
    injuries: Iterable[Mapping[str, object]] = (),
    strength_tests: Iterable[Mapping[str, object]] = (),
    return_to_run: Iterable[Mapping[str, object]] = (),
    follow_up: Iterable[Mapping[str, object]] = (),
) -> Cohort:
    """A ``Cohort`` from row dicts, typed exactly as validation hands it on."""
    return Cohort(
        athletes=table("athletes", athletes),
        injuries=table("injuries", injuries),
        strength_tests=table("strength_tests", strength_tests),
        return_to_run=table("return_to_run", return_to_run),
        follow_up=table("follow_up", follow_up),
    )


@pytest.fixture
def cohort_factory():
    """Build a typed in-memory cohort: ``cohort_factory(athletes=[...], injuries=[...])``."""
    return make_cohort
