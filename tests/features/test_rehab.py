"""Rehab timeline, phases and return measures on the hand-built scenario (conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import TypicalReturnDays
from tests.features.conftest import feature_frame_of, scenario_cohort

NAN = float("nan")


def values(frame: pd.DataFrame, column: str) -> list:
    return frame[column].astype("object").where(frame[column].notna(), NAN).tolist()


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        # A: injured 2020-01-01, first run 01-10, back in sport 01-22. B: injured
        # 2021-03-01, first run 03-20, not back by 2021-04-01. C: back on 2020-07-01.
        ("days_injury_to_return_to_run", [9.0, 19.0, NAN]),
        ("days_return_to_run_to_return_to_sport", [12.0, NAN, NAN]),
        ("days_injury_to_return_to_sport", [21.0, NAN, 30.0]),
        ("days_injury_to_phase1_end", [7.0, 4.0, NAN]),
        ("days_injury_to_phase2_end", [14.0, NAN, NAN]),
        ("days_injury_to_phase3_end", [19.0, NAN, NAN]),
        ("phase1_done", [True, True, False]),
        ("phase2_done", [True, False, False]),
        ("phase3_done", [True, False, False]),
        ("peak_sprint_pct", [95.0, NAN, NAN]),
        ("pain_at_return", [1.0, NAN, NAN]),
        ("slr_deficit_deg", [5.0, NAN, NAN]),
        ("ake_discomfort", [True, NAN, NAN]),
    ],
)
def test_rehab_features(scenario, column, expected):
    assert scenario.index.tolist() == ["A-I", "B-I", "C-I"]
    np.testing.assert_equal(values(scenario, column), expected)


def test_time_against_grade(scenario):
    # A is BAMIC 2c: Pollock et al. 2022 give 34 days for 2c. C has no grade.
    assert scenario.loc["A-I", "return_to_sport_time_vs_grade"] == pytest.approx(21 / 34)
    assert np.isnan(scenario.loc["C-I", "return_to_sport_time_vs_grade"])
    # Without the intratendinous table, grade 2 reads Ekstrand's 22 days.
    plain = TypicalReturnDays(intratendinous={})
    frame = feature_frame_of(scenario_cohort(), typical_return_days=plain)
    assert frame.loc["A-I", "return_to_sport_time_vs_grade"] == pytest.approx(21 / 22)


def test_provisional_episode_sees_nothing_after_as_of():
    # As of 2021-03-15, B's first run (03-20) has not happened; phase 1 (03-05) has.
    frame = feature_frame_of(scenario_cohort(), as_of="2021-03-15")
    assert np.isnan(frame.loc["B-I", "days_injury_to_return_to_run"])
    assert frame.loc["B-I", "days_injury_to_phase1_end"] == 4.0
