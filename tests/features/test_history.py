"""Injury history and the index injury, on the hand-built scenario (tests/features/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.features.conftest import feature_frame_of, make_cohort


def test_prior_injury_counts(scenario):
    # A: L 2018-03-01 and R 2019-06-01 before the index; the R injury on the index day
    # itself is not earlier. Same side (L): 2018-03-01 only. Within 365 days: 2019-06-01.
    assert scenario.loc["A-I", "prior_injuries"] == 2.0
    assert scenario.loc["A-I", "prior_injuries_same_side"] == 1.0
    assert scenario.loc["A-I", "prior_injuries_recent"] == 1.0
    assert scenario.loc[["B-I", "C-I"], "prior_injuries"].tolist() == [0.0, 0.0]


def test_days_since_last_prior_injury(scenario):
    # 2019-06-01 to 2020-01-01: 30 + 31 + 31 + 30 + 31 + 30 + 31 = 214 days.
    assert scenario.loc["A-I", "days_since_last_prior_injury"] == 214.0
    assert np.isnan(scenario.loc["B-I", "days_since_last_prior_injury"])


def test_recent_window_is_a_setting_and_closed_at_its_start():
    cohort = make_cohort(
        athletes=[{"athlete_id": "A"}],
        injuries=[
            {"injury_id": "P", "athlete_id": "A", "injury_date": "2019-01-01", "side": "L"},
            {"injury_id": "I", "athlete_id": "A", "injury_date": "2020-01-01", "side": "L"},
        ],
        return_to_run=[{"injury_id": "I", "clinic_id": "K"}],
    )
    # 2019-01-01 is exactly 365 days before 2020-01-01: inside a 365-day window, not 364.
    assert feature_frame_of(cohort).loc["I", "prior_injuries_recent"] == 1.0
    window_364 = feature_frame_of(cohort, prior_injury_window_days=364)
    assert window_364.loc["I", "prior_injuries_recent"] == 0.0


def test_index_injury_fields(scenario):
    assert scenario.loc["A-I", "bamic_grade"] == 2.0
    assert scenario.loc["A-I", "bamic_site"] == "c"
    assert scenario.loc["A-I", "muscle"] == "biceps_femoris_long_head"
    assert scenario.loc["A-I", "mechanism"] == "high_speed_running"
    assert scenario["mechanism"].isna().tolist() == [False, True, True]


def test_intratendinous(scenario):
    # A is site c; B is grade 0, which has no tear, so known not intratendinous; C has
    # neither grade nor site, so it is unknown.
    assert scenario["intratendinous"].tolist()[:2] == [True, False]
    assert scenario.loc["C-I", "intratendinous"] is pd.NA
