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


# The run date of the scenario below; athlete B is still in rehab on it.
SCENARIO_AS_OF = "2021-04-01"


def scenario_cohort() -> Cohort:
    """Three athletes whose feature values are worked out by hand in the feature tests.

    A: returned to sport on 2020-01-22 after a left grade 2c injury on 2020-01-01, with two
       earlier injuries, a same-day right injury, and strength tests before, during and
       after rehab. B: right grade 0 injury on 2021-03-01, not yet back in sport on
       ``SCENARIO_AS_OF``. C: no strength test, nothing optional recorded.
    """
    return make_cohort(
        athletes=[
            {"athlete_id": "A", "sex": "F", "birth_year": 1990, "discipline": "sprint",
             "level": "elite", "body_mass_kg": 60.0},
            {"athlete_id": "B", "sex": "M"},
            {"athlete_id": "C"},
        ],
        injuries=[
            {"injury_id": "A-P1", "athlete_id": "A", "injury_date": "2018-03-01", "side": "L"},
            {"injury_id": "A-P2", "athlete_id": "A", "injury_date": "2019-06-01", "side": "R"},
            {"injury_id": "A-I", "athlete_id": "A", "injury_date": "2020-01-01", "side": "L",
             "muscle": "biceps_femoris_long_head", "bamic_grade": 2, "bamic_site": "c",
             "mechanism": "high_speed_running"},
            {"injury_id": "A-S", "athlete_id": "A", "injury_date": "2020-01-01", "side": "R"},
            {"injury_id": "B-I", "athlete_id": "B", "injury_date": "2021-03-01", "side": "R",
             "muscle": "unknown", "bamic_grade": 0},
            {"injury_id": "C-I", "athlete_id": "C", "injury_date": "2020-06-01", "side": "R",
             "muscle": "unknown"},
        ],
        strength_tests=[
            # A, Nordic: before the injury (not rehab), two in rehab, one after return.
            {"test_id": "A-T1", "athlete_id": "A", "test_date": "2019-12-01",
             "test": "nordic_eccentric", "left": 300.0, "right": 300.0},
            {"test_id": "A-T2", "athlete_id": "A", "test_date": "2020-01-06",
             "test": "nordic_eccentric", "left": 200.0, "right": 250.0},
            {"test_id": "A-T3", "athlete_id": "A", "test_date": "2020-01-20",
             "test": "nordic_eccentric", "left": 240.0, "right": 250.0},
            {"test_id": "A-T4", "athlete_id": "A", "test_date": "2020-02-10",
             "test": "nordic_eccentric", "left": 300.0, "right": 250.0},
            # A, isokinetic: a same-day hamstring/quadriceps pair, then a later hamstring test.
            {"test_id": "A-T5", "athlete_id": "A", "test_date": "2020-01-15",
             "test": "isokinetic_knee_flexion_concentric", "left": 100.0, "right": 120.0},
            {"test_id": "A-T6", "athlete_id": "A", "test_date": "2020-01-15",
             "test": "isokinetic_knee_extension_concentric", "left": 200.0, "right": 210.0},
            {"test_id": "A-T7", "athlete_id": "A", "test_date": "2020-01-20",
             "test": "isokinetic_knee_flexion_concentric", "left": 110.0, "right": 120.0},
            # A, isometric on the return-to-sport day itself (known at prediction time).
            {"test_id": "A-T8", "athlete_id": "A", "test_date": "2020-01-22",
             "test": "isometric_knee_flexion", "left": 90.0, "right": 100.0},
            # B (right side involved): no same-day isokinetic pair.
            {"test_id": "B-T1", "athlete_id": "B", "test_date": "2021-03-15",
             "test": "nordic_eccentric", "left": 200.0, "right": 150.0},
            {"test_id": "B-T2", "athlete_id": "B", "test_date": "2021-03-10",
             "test": "isokinetic_knee_flexion_concentric", "left": 100.0, "right": 90.0},
            {"test_id": "B-T3", "athlete_id": "B", "test_date": "2021-03-12",
             "test": "isokinetic_knee_extension_concentric", "left": 200.0, "right": 150.0},
        ],
        return_to_run=[
            {"injury_id": "A-I", "clinic_id": "K1", "phase1_end_date": "2020-01-08",
             "phase2_end_date": "2020-01-15", "phase3_end_date": "2020-01-20",
             "return_to_run_date": "2020-01-10", "return_to_sport_date": "2020-01-22",
             "peak_sprint_pct": 95.0, "pain_at_return": 1, "slr_deficit_deg": 5.0,
             "ake_discomfort": True},
            {"injury_id": "B-I", "clinic_id": "K1", "phase1_end_date": "2021-03-05",
             "return_to_run_date": "2021-03-20"},
            {"injury_id": "C-I", "clinic_id": "K2", "return_to_sport_date": "2020-07-01"},
        ],
        follow_up=[
            {"athlete_id": "A", "observed_until": "2021-03-01"},
            {"athlete_id": "B", "observed_until": "2021-03-31"},
            {"athlete_id": "C", "observed_until": "2021-03-31"},
        ],
    )  # fmt: skip


def feature_frame_of(cohort: Cohort, as_of: str = SCENARIO_AS_OF, **settings) -> pd.DataFrame:
    """Episodes as of ``as_of`` and their feature frame, with ``settings`` overriding config."""
    from features import build_feature_frame
    from pipeline.config import FeaturesConfig
    from pipeline.episodes import index_episodes

    config = FeaturesConfig(**settings)
    episodes = index_episodes(cohort, as_of, config.outcome)
    return build_feature_frame(cohort, episodes, config)


@pytest.fixture
def scenario():
    """The scenario's feature frame, one row per episode (A-I, B-I, C-I)."""
    return feature_frame_of(scenario_cohort())
