"""The rehab of the index episode: its timeline, phases and return-to-sport measures.

Dates come from the episode's ``return_to_run`` row and count only when dated on or
before the prediction time; for a provisional episode (not yet back in sport, scored as
of a date) a later date is not known yet and reads as missing. The measures recorded at
return (peak sprint, pain, straight-leg raise, active knee extension) are known at the
return to sport, so they are the row's own values. ``rehab_rows`` is the return_to_run
table aligned to the episodes (row i is episode i's row, see ``features.timeline.align``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import TypicalReturnDays

PHASES: dict[int, str] = {
    1: "pain settled, controlled loading tolerated",
    2: "capacity in the lengthened position built",
    3: "high-speed running and sprinting restored",
}


def _known_date(rehab_rows: pd.DataFrame, episodes: pd.DataFrame, column: str) -> pd.Series:
    """A rehab date, NaT when missing or dated after the prediction time."""
    date = rehab_rows[column]
    return date.where(date <= episodes["prediction_time"])


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype("float64")


def days_injury_to_return_to_run(rehab_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Days from injury to first run, known by prediction time (NaN otherwise)."""
    first_run = _known_date(rehab_rows, episodes, "return_to_run_date")
    return _days(first_run, episodes["injury_date"]).rename("days_injury_to_return_to_run")


def days_return_to_run_to_return_to_sport(
    rehab_rows: pd.DataFrame, episodes: pd.DataFrame
) -> pd.Series:
    """Days from first run to return to sport (NaN while provisional)."""
    first_run = _known_date(rehab_rows, episodes, "return_to_run_date")
    returned = episodes["prediction_time"].where(~episodes["provisional"].astype(bool))
    return _days(returned, first_run).rename("days_return_to_run_to_return_to_sport")


def days_injury_to_return_to_sport(episodes: pd.DataFrame) -> pd.Series:
    """Days from injury to return to sport (NaN while provisional)."""
    returned = episodes["prediction_time"].where(~episodes["provisional"].astype(bool))
    return _days(returned, episodes["injury_date"]).rename("days_injury_to_return_to_sport")


def return_to_sport_time_vs_grade(
    injury_rows: pd.DataFrame, episodes: pd.DataFrame, typical: TypicalReturnDays
) -> pd.Series:
    """Days injury to return to sport ÷ the usual days for the BAMIC grade (ratio)."""
    # Zein et al. 2024 (BJSM 58:766): each day longer to return lowers risk (aRR 0.99);
    # the same 20 days is quick for a grade 3 and slow for a grade 1.
    grade = injury_rows["bamic_grade"].astype("float64").to_numpy()
    site_c = (injury_rows["bamic_site"] == "c").fillna(False).to_numpy(dtype=bool)
    usual = np.full(len(episodes), np.nan)
    for g, days in typical.by_grade.items():
        usual[grade == g] = days
    for g, days in typical.intratendinous.items():
        usual[(grade == g) & site_c] = days
    took = days_injury_to_return_to_sport(episodes).to_numpy()
    return pd.Series(took / usual, index=episodes.index, name="return_to_sport_time_vs_grade")


def phase_done(rehab_rows: pd.DataFrame, episodes: pd.DataFrame, phase: int) -> pd.Series:
    """Rehab phase ``phase`` recorded as completed on or before prediction time (boolean)."""
    # The end date is the record that the phase was done: without one on or before the
    # prediction time the phase is not recorded as completed (False, not missing).
    ended = _known_date(rehab_rows, episodes, f"phase{phase}_end_date")
    return ended.notna().astype("boolean").rename(f"phase{phase}_done")


def days_injury_to_phase_end(
    rehab_rows: pd.DataFrame, episodes: pd.DataFrame, phase: int
) -> pd.Series:
    """Days from injury to the end of rehab phase ``phase``, known by prediction time."""
    ended = _known_date(rehab_rows, episodes, f"phase{phase}_end_date")
    return _days(ended, episodes["injury_date"]).rename(f"days_injury_to_phase{phase}_end")


def peak_sprint_pct(rehab_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Fastest rehab sprint before return, % of pre-injury maximum speed (at return)."""
    return rehab_rows["peak_sprint_pct"].astype("float64")


def pain_at_return(rehab_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Pain 0-10 numeric rating at return to sport."""
    return rehab_rows["pain_at_return"].astype("float64")


def slr_deficit_deg(rehab_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Passive straight-leg-raise deficit, involved vs uninvolved, degrees at return."""
    return rehab_rows["slr_deficit_deg"].astype("float64")


def ake_discomfort(rehab_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Discomfort on the active knee extension test at return to sport (boolean)."""
    return rehab_rows["ake_discomfort"].astype("boolean")
