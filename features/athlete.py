"""Who the athlete is: age, sex, discipline, level, body mass.

These are athlete attributes without a date of their own; age is taken at the episode's
prediction time (Green et al. 2020: older age, SMD 1.6). Each function takes
``athlete_rows``, the athletes table aligned to the episodes (row i is episode i's athlete,
see ``features.timeline.align``).
"""

from __future__ import annotations

import pandas as pd


def age_years(athlete_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Age at prediction time, years (calendar year of prediction minus birth year)."""
    birth_year = athlete_rows["birth_year"].astype("float64")
    return (episodes["prediction_time"].dt.year.astype("float64") - birth_year).rename("age_years")


def sex(athlete_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Sex as recorded, F or M (time-invariant)."""
    return athlete_rows["sex"].astype("string")


def discipline(athlete_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Main discipline as recorded (time-invariant)."""
    return athlete_rows["discipline"].astype("string")


def level(athlete_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Competitive level as recorded: recreational, competitive or elite (time-invariant)."""
    return athlete_rows["level"].astype("string")


def body_mass_kg(athlete_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Body mass, kg, as recorded (the athletes table carries one undated value)."""
    return athlete_rows["body_mass_kg"].astype("float64")
