"""Athlete features on the hand-built scenario (tests/features/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_age_at_prediction_time(scenario):
    # A returned to sport in 2020 and was born in 1990; B has no birth year.
    assert scenario.loc["A-I", "age_years"] == 30.0
    assert np.isnan(scenario.loc["B-I", "age_years"])


def test_recorded_attributes(scenario):
    assert scenario.loc["A-I", ["sex", "discipline", "level"]].tolist() == ["F", "sprint", "elite"]
    assert scenario.loc["A-I", "body_mass_kg"] == 60.0
    assert scenario.loc["B-I", "sex"] == "M"
    assert scenario.loc["B-I", "discipline"] is pd.NA
    assert np.isnan(scenario.loc["C-I", "body_mass_kg"])
