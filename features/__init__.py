"""Point-in-time features: one row per index episode, as known at its prediction time.

Every feature is a pure function named after its column (``features.athlete``,
``features.history``, ``features.rehab``, ``features.strength``); this module only calls
them in catalog order. Missing inputs stay missing: the model handles them.
"""

from __future__ import annotations

import pandas as pd

from features import athlete, history, rehab, strength
from features.catalog import DTYPES, FEATURE_NAMES, FEATURES
from features.timeline import align
from pipeline.cohort import Cohort
from pipeline.config import FeaturesConfig

EPISODE_INPUTS: tuple[str, ...] = (
    "injury_id",
    "athlete_id",
    "side",
    "injury_date",
    "prediction_time",
    "provisional",
)


def build_feature_frame(
    cohort: Cohort, episodes: pd.DataFrame, config: FeaturesConfig
) -> pd.DataFrame:
    """The feature frame of ``episodes`` (from ``pipeline.episodes.index_episodes``).

    Args:
        cohort: the validated cohort the episodes come from.
        episodes: one row per episode with at least ``EPISODE_INPUTS``.
        config: feature settings.

    Returns:
        Indexed by ``injury_id`` in the episodes' order, with exactly the columns of
        ``features.catalog.FEATURES`` in order: float64 numeric, ``boolean`` booleans and
        ``string`` categoricals, missing where an input is missing.

    Raises:
        ValueError: ``episodes`` lacks a column the features need.
    """
    absent = [column for column in EPISODE_INPUTS if column not in episodes.columns]
    if absent:
        raise ValueError(f"episodes frame lacks column(s) {absent}; build it with index_episodes")
    episodes = episodes.reset_index(drop=True)
    injuries = history.injury_timeline(cohort.injuries, episodes)
    tests = strength.strength_timeline(cohort.strength_tests, episodes)
    # Each table's row for each episode, looked up once by id.
    a = align(cohort.athletes, "athlete_id", episodes["athlete_id"])
    i = align(cohort.injuries, "injury_id", episodes["injury_id"])
    r = align(cohort.return_to_run, "injury_id", episodes["injury_id"])
    ep = episodes

    columns: list[pd.Series] = [
        athlete.age_years(a, ep),
        athlete.sex(a, ep),
        athlete.discipline(a, ep),
        athlete.level(a, ep),
        athlete.body_mass_kg(a, ep),
        history.prior_injuries(injuries, ep),
        history.prior_injuries_same_side(injuries, ep),
        history.prior_injuries_recent(injuries, ep, config.prior_injury_window_days),
        history.days_since_last_prior_injury(injuries, ep),
        history.bamic_grade(i, ep),
        history.bamic_site(i, ep),
        history.intratendinous(i, ep),
        history.muscle(i, ep),
        history.mechanism(i, ep),
        rehab.days_injury_to_return_to_run(r, ep),
        rehab.days_return_to_run_to_return_to_sport(r, ep),
        rehab.days_injury_to_return_to_sport(ep),
        rehab.return_to_sport_time_vs_grade(i, ep, config.typical_return_days),
        *(rehab.phase_done(r, ep, phase) for phase in rehab.PHASES),
        *(rehab.days_injury_to_phase_end(r, ep, phase) for phase in rehab.PHASES),
        rehab.peak_sprint_pct(r, ep),
        rehab.pain_at_return(r, ep),
        rehab.slr_deficit_deg(r, ep),
        rehab.ake_discomfort(r, ep),
        *(strength.lsi_at_last_test(tests, ep, test) for test in strength.TESTS),
        strength.lsi_knee_flexors_last_session(tests, ep),
        strength.nordic_involved_force_n(tests, ep),
        *(
            strength.lsi_change_per_week(tests, ep, test, config.strength_trend_min_tests)
            for test in strength.TESTS
        ),
        *(strength.involved_per_kg(tests, a, ep, test) for test in strength.TESTS),
        strength.hamstring_quadriceps_ratio(tests, ep),
        strength.strength_tested_in_rehab(tests, ep),
    ]
    names = tuple(column.name for column in columns)
    if names != FEATURE_NAMES:
        # A catalog entry without its function (or the reverse) is a programming error.
        raise AssertionError(f"feature functions {names} do not match the catalog")
    frame = pd.concat(columns, axis=1).astype({s.name: DTYPES[s.kind] for s in FEATURES})
    return frame.set_axis(pd.Index(episodes["injury_id"].astype("string"), name="injury_id"))
