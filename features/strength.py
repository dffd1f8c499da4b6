"""Strength in rehab: symmetry, its trend, strength per kg and the hamstring:quadriceps ratio.

Only tests dated in the episode's rehab, from the injury date to the prediction time
(both included), count: a test after the prediction time is not known yet, and a test
before the injury speaks of a limb that was not injured yet. Symmetry is involved ÷
uninvolved, the involved side being the episode's side (data contract). When one athlete
has several tests of one type on one day, the one with the highest ``test_id`` is used,
so the result never depends on the order of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.timeline import DatedRecords, day_numbers, expand, last_position, shared_codes, take

# Contract test name -> column stem. The last one is the quadriceps, used for the
# hamstring:quadriceps ratio; the first four are hamstring tests.
TESTS: dict[str, str] = {
    "nordic_eccentric": "nordic",
    "isometric_knee_flexion": "isometric_flexion",
    "isokinetic_knee_flexion_concentric": "isokinetic_flexion_concentric",
    "isokinetic_knee_flexion_eccentric": "isokinetic_flexion_eccentric",
    "isokinetic_knee_extension_concentric": "isokinetic_extension_concentric",
}
UNITS: dict[str, str] = {
    "nordic_eccentric": "N",
    "isometric_knee_flexion": "N",
    "isokinetic_knee_flexion_concentric": "Nm",
    "isokinetic_knee_flexion_eccentric": "Nm",
    "isokinetic_knee_extension_concentric": "Nm",
}
HAMSTRING = "isokinetic_knee_flexion_concentric"
QUADRICEPS = "isokinetic_knee_extension_concentric"


@dataclass(frozen=True)
class StrengthTimeline:
    """The strength tests, searchable per athlete and test type, with each episode's rehab.

    Attributes:
        tests: one test per athlete, type and day, grouped by athlete × test type.
        pairs: days an athlete did both the hamstring and quadriceps isokinetic tests,
            grouped by athlete, with each side's ratio in ``left``/``right``.
        rehab: per test type, each episode's ``[start, stop)`` range of ``tests`` dated
            from its injury to its prediction time.
        rehab_pairs: each episode's range of ``pairs`` in the same window.
        left_involved: the episode's side is left.
    """

    tests: DatedRecords
    pairs: DatedRecords
    rehab: dict[str, tuple[np.ndarray, np.ndarray]]
    rehab_pairs: tuple[np.ndarray, np.ndarray]
    left_involved: np.ndarray

    def involved(self, records: DatedRecords, position: np.ndarray, rows=None) -> np.ndarray:
        """The involved side's value at ``position`` (NaN at -1); ``rows`` maps to episodes."""
        left_involved = self.left_involved if rows is None else self.left_involved[rows]
        return np.where(
            left_involved,
            take(records.frame["left"].to_numpy(), position),
            take(records.frame["right"].to_numpy(), position),
        )

    def uninvolved(self, records: DatedRecords, position: np.ndarray, rows=None) -> np.ndarray:
        """The uninvolved side's value at ``position`` (NaN at -1)."""
        left_involved = self.left_involved if rows is None else self.left_involved[rows]
        return np.where(
            left_involved,
            take(records.frame["right"].to_numpy(), position),
            take(records.frame["left"].to_numpy(), position),
        )


def strength_timeline(strength_tests: pd.DataFrame, episodes: pd.DataFrame) -> StrengthTimeline:
    """Index the strength tests for the episodes' rehab look-ups."""
    tests = strength_tests.loc[strength_tests["test"].isin(list(TESTS))]
    athlete, episode_athlete = shared_codes(tests["athlete_id"], episodes["athlete_id"])
    records = pd.DataFrame(
        {
            "athlete": athlete,
            "test": pd.Index(list(TESTS)).get_indexer(tests["test"]),
            "day": day_numbers(tests["test_date"]).astype("int64"),
            "left": tests["left"].to_numpy(dtype="float64"),
            "right": tests["right"].to_numpy(dtype="float64"),
        }
    )
    records = _one_test_a_day(records, tests["test_id"])
    pairs = records.loc[records["test"] == list(TESTS).index(HAMSTRING)].merge(
        records.loc[records["test"] == list(TESTS).index(QUADRICEPS)],
        on=["athlete", "day"],
        suffixes=("_h", "_q"),
        validate="one_to_one",
    )
    pairs = pairs.assign(
        left=pairs["left_h"] / pairs["left_q"], right=pairs["right_h"] / pairs["right_q"]
    )
    by_test = DatedRecords.build(
        records["athlete"].to_numpy() * len(TESTS) + records["test"].to_numpy(),
        records["day"].to_numpy(),
        records[["left", "right"]],
    )
    by_athlete = DatedRecords.build(
        pairs["athlete"].to_numpy(), pairs["day"].to_numpy(), pairs[["left", "right"]]
    )
    first_day = day_numbers(episodes["injury_date"])
    last_day = day_numbers(episodes["prediction_time"])
    return StrengthTimeline(
        tests=by_test,
        pairs=by_athlete,
        rehab={
            test: by_test.window(episode_athlete * len(TESTS) + code, first_day, last_day)
            for code, test in enumerate(TESTS)
        },
        rehab_pairs=by_athlete.window(episode_athlete, first_day, last_day),
        left_involved=(episodes["side"] == "L").fillna(False).to_numpy(dtype=bool),
    )


def _one_test_a_day(records: pd.DataFrame, test_id: pd.Series) -> pd.DataFrame:
    """Keep one test per athlete, type and day: the one with the highest ``test_id``."""
    same_day = records.duplicated(["athlete", "test", "day"], keep=False).to_numpy()
    if not same_day.any():
        return records
    rank = np.zeros(len(records), dtype="int64")
    rank[same_day] = pd.factorize(test_id[same_day], sort=True)[0]
    return (
        records.assign(rank=rank)
        .sort_values(["athlete", "test", "day", "rank"], kind="stable")
        .drop_duplicates(["athlete", "test", "day"], keep="last")
        .drop(columns="rank")
    )


def lsi_at_last_test(timeline: StrengthTimeline, episodes: pd.DataFrame, test: str) -> pd.Series:
    """Involved ÷ uninvolved (ratio) at the last ``test`` in rehab, on or before prediction."""
    position = last_position(*timeline.rehab[test])
    lsi = timeline.involved(timeline.tests, position) / timeline.uninvolved(
        timeline.tests, position
    )
    return pd.Series(lsi, index=episodes.index, name=f"lsi_{TESTS[test]}")


def lsi_change_per_week(
    timeline: StrengthTimeline, episodes: pd.DataFrame, test: str, min_tests: int
) -> pd.Series:
    """Least-squares slope of the ``test`` LSI over rehab (ratio per week; ≥ min_tests tests)."""
    row, position = expand(*timeline.rehab[test])
    lsi = timeline.involved(timeline.tests, position, row) / timeline.uninvolved(
        timeline.tests, position, row
    )
    weeks = (timeline.tests.day[position] - day_numbers(episodes["injury_date"])[row]) / 7.0
    n_episodes = len(episodes)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(row, weights=values, minlength=n_episodes)

    n = total(np.ones_like(weeks))
    sx, sy, sxy, sxx = total(weeks), total(lsi), total(weeks * lsi), total(weeks * weeks)
    spread = n * sxx - sx * sx
    # One test per day (see module docstring), so two or more tests always span time.
    usable = (n >= min_tests) & (spread > 0)
    slope = np.full(n_episodes, np.nan)
    slope[usable] = (n * sxy - sx * sy)[usable] / spread[usable]
    return pd.Series(slope, index=episodes.index, name=f"lsi_change_per_week_{TESTS[test]}")


def involved_per_kg(
    timeline: StrengthTimeline, athlete_rows: pd.DataFrame, episodes: pd.DataFrame, test: str
) -> pd.Series:
    """Involved side at the last ``test`` in rehab ÷ body mass (N/kg or Nm/kg)."""
    position = last_position(*timeline.rehab[test])
    mass = athlete_rows["body_mass_kg"].to_numpy(dtype="float64")
    value = timeline.involved(timeline.tests, position) / mass
    return pd.Series(value, index=episodes.index, name=f"involved_per_kg_{TESTS[test]}")


def hamstring_quadriceps_ratio(timeline: StrengthTimeline, episodes: pd.DataFrame) -> pd.Series:
    """Involved concentric isokinetic knee flexion ÷ extension torque in rehab (ratio)."""
    # Same-session ratio where both were tested on one day (the latest such day); else
    # the last test of each.
    pair = last_position(*timeline.rehab_pairs)
    same_day = timeline.involved(timeline.pairs, pair)
    flexion = timeline.involved(timeline.tests, last_position(*timeline.rehab[HAMSTRING]))
    extension = timeline.involved(timeline.tests, last_position(*timeline.rehab[QUADRICEPS]))
    ratio = np.where(pair >= 0, same_day, flexion / extension)
    return pd.Series(ratio, index=episodes.index, name="hamstring_quadriceps_ratio")


def strength_tested_in_rehab(timeline: StrengthTimeline, episodes: pd.DataFrame) -> pd.Series:
    """Any strength test between injury and prediction time, both included (boolean)."""
    tested = np.zeros(len(episodes), dtype=bool)
    for start, stop in timeline.rehab.values():
        tested |= stop > start
    return pd.Series(tested, index=episodes.index, name="strength_tested_in_rehab").astype(
        "boolean"
    )


def lsi_knee_flexors_last_session(timeline: StrengthTimeline, episodes: pd.DataFrame) -> pd.Series:
    """Mean involved ÷ uninvolved over the knee-flexor tests of the last rehab session (ratio).

    Bourne et al. 2015 (AJSM 43:2663) read between-limb imbalance over the eccentric
    knee-flexor session as a whole; averaging the flexor tests done on the last test day
    uses every measurement of that session instead of one test type.
    """
    flexors = [test for test in TESTS if test != QUADRICEPS]
    days, ratios = [], []
    for test in flexors:
        position = last_position(*timeline.rehab[test])
        days.append(
            np.where(position >= 0, take(timeline.tests.day.astype("float64"), position), np.nan)
        )
        ratios.append(
            timeline.involved(timeline.tests, position)
            / timeline.uninvolved(timeline.tests, position)
        )
    day = np.vstack(days)
    ratio = np.vstack(ratios)
    with np.errstate(all="ignore"):
        last_day = np.nanmax(np.where(np.isnan(day), -np.inf, day), axis=0)
        in_session = day == last_day[None, :]
        total = np.where(in_session, ratio, 0.0).sum(axis=0)
        count = in_session.sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return pd.Series(mean, index=episodes.index, name="lsi_knee_flexors_last_session")


def nordic_involved_force_n(timeline: StrengthTimeline, episodes: pd.DataFrame) -> pd.Series:
    """Involved-side force at the last Nordic test from injury to prediction time (N)."""
    # Timmins et al. 2016 (BJSM 50:1524): eccentric knee-flexor force below 337 N carried
    # RR 4.4; the absolute force, not only its symmetry, is the risk factor.
    position = last_position(*timeline.rehab["nordic_eccentric"])
    value = timeline.involved(timeline.tests, position)
    return pd.Series(value, index=episodes.index, name="nordic_involved_force_n")
