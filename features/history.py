"""Injury history and the index injury itself, as known at the index injury.

Previous hamstring injuries are the strongest known risk factor for another one (Green et
al. 2020, BJSM: any previous injury RR 2.7, a recent one RR 4.8; de Vos et al. 2014: aOR
1.33 per previous injury). Counts use injuries dated strictly before the index injury,
which is on or before the prediction time, so nothing later can enter. The index
injury's own fields come from ``injury_rows``, the injuries table aligned to the episodes
(row i is episode i's injury, see ``features.timeline.align``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.timeline import EARLIEST_DAY, DatedRecords, day_numbers, last_position, shared_codes

SIDES = ("L", "R")


@dataclass(frozen=True)
class InjuryTimeline:
    """Every injury on record, searchable per athlete and per athlete-side.

    Attributes:
        by_athlete: injuries grouped by athlete.
        by_side: injuries grouped by athlete and side.
        athlete: each episode's group code in ``by_athlete``.
        athlete_side: each episode's group code in ``by_side``.
    """

    by_athlete: DatedRecords
    by_side: DatedRecords
    athlete: np.ndarray
    athlete_side: np.ndarray


def injury_timeline(injuries: pd.DataFrame, episodes: pd.DataFrame) -> InjuryTimeline:
    """Index the injuries table for the episodes' history look-ups."""
    record_athlete, episode_athlete = shared_codes(injuries["athlete_id"], episodes["athlete_id"])

    def side_code(athlete: np.ndarray, side: pd.Series) -> np.ndarray:
        code = pd.Index(SIDES).get_indexer(side.astype("string").fillna(""))
        return np.where(code >= 0, athlete * len(SIDES) + code, -1)

    day = day_numbers(injuries["injury_date"])
    return InjuryTimeline(
        by_athlete=DatedRecords.build(record_athlete, day),
        by_side=DatedRecords.build(side_code(record_athlete, injuries["side"]), day),
        athlete=episode_athlete,
        athlete_side=side_code(episode_athlete, episodes["side"]),
    )


def _before_index_injury(
    episodes: pd.DataFrame, window_days: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Closed day range of a history look-up: [index day - window, index day - 1]."""
    injury_day = day_numbers(episodes["injury_date"])
    if window_days is None:
        return np.full(len(injury_day), float(EARLIEST_DAY)), injury_day - 1
    return injury_day - window_days, injury_day - 1


def prior_injuries(timeline: InjuryTimeline, episodes: pd.DataFrame) -> pd.Series:
    """Earlier hamstring injuries, either side, before the index injury (count, all history)."""
    start, stop = timeline.by_athlete.window(timeline.athlete, *_before_index_injury(episodes))
    return pd.Series(stop - start, index=episodes.index, name="prior_injuries", dtype="float64")


def prior_injuries_same_side(timeline: InjuryTimeline, episodes: pd.DataFrame) -> pd.Series:
    """Hamstring injuries on the index side before the index injury (count, all history)."""
    start, stop = timeline.by_side.window(timeline.athlete_side, *_before_index_injury(episodes))
    return pd.Series(
        stop - start, index=episodes.index, name="prior_injuries_same_side", dtype="float64"
    )


def prior_injuries_recent(
    timeline: InjuryTimeline, episodes: pd.DataFrame, window_days: int
) -> pd.Series:
    """Hamstring injuries, either side, in the ``window_days`` days before the index (count)."""
    start, stop = timeline.by_athlete.window(
        timeline.athlete, *_before_index_injury(episodes, window_days)
    )
    return pd.Series(
        stop - start, index=episodes.index, name="prior_injuries_recent", dtype="float64"
    )


def days_since_last_prior_injury(timeline: InjuryTimeline, episodes: pd.DataFrame) -> pd.Series:
    """Days from the last earlier hamstring injury, either side, to the index one (NaN if none)."""
    first, last = _before_index_injury(episodes)
    start, stop = timeline.by_athlete.window(timeline.athlete, first, last)
    position = last_position(start, stop)
    last_day = np.where(position >= 0, timeline.by_athlete.day[np.maximum(position, 0)], np.nan)
    return pd.Series(
        (last + 1) - last_day, index=episodes.index, name="days_since_last_prior_injury"
    )


def bamic_grade(injury_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """BAMIC grade 0-4 of the index injury (ordinal, read as a number)."""
    return injury_rows["bamic_grade"].astype("float64")


def bamic_site(injury_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """BAMIC site of the index injury: a myofascial, b musculotendinous, c intratendinous."""
    return injury_rows["bamic_site"].astype("string")


def intratendinous(injury_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Index injury is intratendinous (BAMIC site c); grade 0 has no tear, so it is not."""
    site = injury_rows["bamic_site"].astype("string")
    grade = injury_rows["bamic_grade"]
    # Pollock et al. 2016 (BJSM 50:305): "c" injuries recur more often. A grade 0 injury
    # (MRI negative) has no site by definition, so it is known not to be intratendinous.
    result = (site == "c").astype("boolean")
    result = result.mask(site.isna(), pd.NA)
    result = result.mask(site.isna() & (grade == 0).fillna(False), False)
    return result.rename("intratendinous")


def muscle(injury_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Injured muscle of the index injury (``unknown`` as recorded)."""
    return injury_rows["muscle"].astype("string")


def mechanism(injury_rows: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """How the index injury happened: high-speed running, stretching or other."""
    return injury_rows["mechanism"].astype("string")
