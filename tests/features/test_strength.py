"""Strength symmetry, trend, per-kg strength and H:Q ratio on the hand-built scenario.

A's left side is involved, B's right side (tests/features/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.features.conftest import feature_frame_of, make_cohort, scenario_cohort


def test_lsi_at_the_last_rehab_test(scenario):
    # A Nordic: the last rehab test is 01-20 (240 / 250); 2019-12-01 is before the injury
    # and 2020-02-10 after the return, so neither counts.
    assert scenario.loc["A-I", "lsi_nordic"] == pytest.approx(240 / 250)
    assert scenario.loc["A-I", "lsi_isokinetic_flexion_concentric"] == pytest.approx(110 / 120)
    assert scenario.loc["A-I", "lsi_isokinetic_extension_concentric"] == pytest.approx(200 / 210)
    # Tested on the return-to-sport day itself: known at prediction time.
    assert scenario.loc["A-I", "lsi_isometric_flexion"] == pytest.approx(0.9)
    assert np.isnan(scenario.loc["A-I", "lsi_isokinetic_flexion_eccentric"])
    # B's involved side is the right: 150 / 200.
    assert scenario.loc["B-I", "lsi_nordic"] == pytest.approx(0.75)
    assert scenario.loc["C-I", [f"lsi_{s}" for s in ("nordic", "isometric_flexion")]].isna().all()


def test_lsi_trend_per_week(scenario):
    # Nordic LSI 0.80 on day 5 and 0.96 on day 19: 0.16 over two weeks.
    assert scenario.loc["A-I", "lsi_change_per_week_nordic"] == pytest.approx(0.08)
    # Flexion 100/120 on day 14, 110/120 on day 19: (10/120) per 5/7 week.
    assert scenario.loc["A-I", "lsi_change_per_week_isokinetic_flexion_concentric"] == (
        pytest.approx(10 / 120 * 7 / 5)
    )
    # One extension test: no trend.
    assert np.isnan(scenario.loc["A-I", "lsi_change_per_week_isokinetic_extension_concentric"])
    assert np.isnan(scenario.loc["B-I", "lsi_change_per_week_nordic"])


def test_lsi_trend_needs_the_configured_number_of_tests():
    frame = feature_frame_of(scenario_cohort(), strength_trend_min_tests=3)
    assert np.isnan(frame.loc["A-I", "lsi_change_per_week_nordic"])


def test_lsi_trend_is_the_least_squares_slope():
    # Three tests on days 0, 7 and 21 with LSI 0.70, 0.80, 0.84 (right involved).
    # x = 0, 1, 3 weeks (mean 4/3), y mean 0.78: Sxy = (0.32 - 0.02 + 0.30) / 3 = 0.2,
    # Sxx = (16 + 1 + 25) / 9 = 14/3, slope = 0.2 / (14/3) = 3/70 per week.
    y = [0.70, 0.80, 0.84]
    days = ["2020-01-01", "2020-01-08", "2020-01-22"]
    cohort = make_cohort(
        athletes=[{"athlete_id": "A"}],
        injuries=[{"injury_id": "I", "athlete_id": "A", "injury_date": days[0], "side": "R"}],
        strength_tests=[
            {"test_id": f"T{k}", "athlete_id": "A", "test_date": d, "test": "nordic_eccentric",
             "left": 100.0, "right": 100.0 * lsi}
            for k, (d, lsi) in enumerate(zip(days, y, strict=True))
        ],
        return_to_run=[{"injury_id": "I", "clinic_id": "K", "return_to_sport_date": "2020-02-01"}],
    )  # fmt: skip
    frame = feature_frame_of(cohort)
    assert frame.loc["I", "lsi_change_per_week_nordic"] == pytest.approx(3 / 70)


def test_strength_per_kg(scenario):
    assert scenario.loc["A-I", "involved_per_kg_nordic"] == pytest.approx(240 / 60)
    assert scenario.loc["A-I", "involved_per_kg_isometric_flexion"] == pytest.approx(90 / 60)
    assert scenario.loc["A-I", "involved_per_kg_isokinetic_flexion_concentric"] == (
        pytest.approx(110 / 60)
    )
    # B has no body mass on record.
    assert np.isnan(scenario.loc["B-I", "involved_per_kg_nordic"])


def test_hamstring_quadriceps_ratio(scenario):
    # A: same-session pair on 01-15 (100 / 200) wins over the later lone flexion test.
    assert scenario.loc["A-I", "hamstring_quadriceps_ratio"] == pytest.approx(0.5)
    # B: no same-day pair, so the last of each: right 90 / right 150.
    assert scenario.loc["B-I", "hamstring_quadriceps_ratio"] == pytest.approx(0.6)
    assert np.isnan(scenario.loc["C-I", "hamstring_quadriceps_ratio"])


def test_tested_in_rehab(scenario):
    assert scenario["strength_tested_in_rehab"].tolist() == [True, True, False]


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_two_tests_on_one_day_use_the_highest_test_id(order):
    rows = [
        {"test_id": "T1", "athlete_id": "A", "test_date": "2020-01-10",
         "test": "nordic_eccentric", "left": 100.0, "right": 200.0},
        {"test_id": "T2", "athlete_id": "A", "test_date": "2020-01-10",
         "test": "nordic_eccentric", "left": 150.0, "right": 200.0},
    ]  # fmt: skip
    cohort = make_cohort(
        athletes=[{"athlete_id": "A"}],
        injuries=[{"injury_id": "I", "athlete_id": "A", "injury_date": "2020-01-01", "side": "L"}],
        strength_tests=[rows[k] for k in order],
        return_to_run=[{"injury_id": "I", "clinic_id": "K", "return_to_sport_date": "2020-02-01"}],
    )
    frame = feature_frame_of(cohort)
    assert frame.loc["I", "lsi_nordic"] == pytest.approx(0.75)


def test_knee_flexor_symmetry_of_the_last_session(scenario):
    # A's last flexor test day in rehab is the return day, isometric only: 90 / 100. The
    # Nordic and isokinetic tests of 01-20 belong to an earlier session.
    assert scenario.loc["A-I", "lsi_knee_flexors_last_session"] == pytest.approx(0.9)
    # B's last session is the Nordic of 03-15 (right involved): 150 / 200; the isokinetic
    # flexion of 03-10 is older.
    assert scenario.loc["B-I", "lsi_knee_flexors_last_session"] == pytest.approx(0.75)
    assert np.isnan(scenario.loc["C-I", "lsi_knee_flexors_last_session"])


def test_involved_nordic_force(scenario):
    # A: the last rehab Nordic (01-20), left side; the post-return 300 N is not known yet.
    assert scenario.loc["A-I", "nordic_involved_force_n"] == pytest.approx(240.0)
    assert scenario.loc["B-I", "nordic_involved_force_n"] == pytest.approx(150.0)
    assert np.isnan(scenario.loc["C-I", "nordic_involved_force_n"])
