"""Who the athlete is: age, sex, discipline, level, body mass.

These are athlete attributes without a date of their own; age is taken at the episode's
prediction time (Green et al. 2020: older age, SMD 1.6).
"""

from __future__ import annotations

import pandas as pd


def _athlete(athletes: pd.DataFrame, episodes: pd.DataFrame, column: str) -> pd.Series:
    """One athletes column aligned to the episodes."""
    values = athletes.set_index("athlete_id")[column].reindex(episodes["athlete_id"].to_numpy())
    return values.set_axis(episodes.index).rename(column)


def age_years(athletes: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Age at prediction time, years (calendar year of prediction minus birth year)."""
    birth_year = _athlete(athletes, episodes, "birth_year").astype("float64")
    return (episodes["prediction_time"].dt.year.astype("float64") - birth_year).rename("age_years")


def sex(athletes: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Sex as recorded, F or M (time-invariant)."""
    return _athlete(athletes, episodes, "sex").astype("string")


def discipline(athletes: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Main discipline as recorded (time-invariant)."""
    return _athlete(athletes, episodes, "discipline").astype("string")


def level(athletes: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Competitive level as recorded: recreational, competitive or elite (time-invariant)."""
    return _athlete(athletes, episodes, "level").astype("string")


def body_mass_kg(athletes: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Body mass, kg, as recorded (the athletes table carries one undated value)."""
    return _athlete(athletes, episodes, "body_mass_kg").astype("float64")
