"""Point-in-time features: one row per index episode, as known at its prediction time.

Every feature is a pure function named after its column (``features.athlete``,
``features.history``, ``features.rehab``, ``features.strength``), registered once in
``features.catalog.FEATURES``; this module builds their shared inputs and calls them in
registry order. Missing inputs stay missing: the model handles them. Nothing here imports
``pipeline``: a cohort is anything with the four tables the features read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pandas as pd

from features import history, strength
from features.catalog import FEATURE_NAMES, FEATURES_BY_NAME, Inputs
from features.config import FeaturesConfig
from features.timeline import align

EPISODE_INPUTS: tuple[str, ...] = (
    "injury_id",
    "athlete_id",
    "side",
    "injury_date",
    "prediction_time",
    "provisional",
)


class CohortTables(Protocol):
    """The validated tables features read (``pipeline.cohort.Cohort`` is one)."""

    @property
    def athletes(self) -> pd.DataFrame: ...
    @property
    def injuries(self) -> pd.DataFrame: ...
    @property
    def strength_tests(self) -> pd.DataFrame: ...
    @property
    def return_to_run(self) -> pd.DataFrame: ...


def build_feature_frame(
    cohort: CohortTables,
    episodes: pd.DataFrame,
    config: FeaturesConfig,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The feature frame of ``episodes`` (from ``pipeline.episodes.index_episodes``).

    Args:
        cohort: the validated cohort the episodes come from.
        episodes: one row per episode with at least ``EPISODE_INPUTS``.
        config: feature settings.
        columns: the columns to compute, in this order (default every registered one).

    Returns:
        Indexed by ``injury_id`` in the episodes' order, with the columns asked for: float64
        numeric, ``boolean`` booleans and ``string`` categoricals, missing where an input
        is missing.

    Raises:
        ValueError: ``episodes`` lacks a column the features need.
        KeyError: a column in ``columns`` is not registered (the message names it).
    """
    absent = [column for column in EPISODE_INPUTS if column not in episodes.columns]
    if absent:
        raise ValueError(f"episodes frame lacks column(s) {absent}; build it with index_episodes")
    names = FEATURE_NAMES if columns is None else tuple(columns)
    unknown = [name for name in names if name not in FEATURES_BY_NAME]
    if unknown:
        raise KeyError(f"no registered feature named {', '.join(unknown)}")
    episodes = episodes.reset_index(drop=True)
    inputs = Inputs(
        episodes=episodes,
        # Each table's row for each episode, looked up once by id.
        athletes=align(cohort.athletes, "athlete_id", episodes["athlete_id"]),
        injuries=align(cohort.injuries, "injury_id", episodes["injury_id"]),
        rehab=align(cohort.return_to_run, "injury_id", episodes["injury_id"]),
        history=history.injury_timeline(cohort.injuries, episodes),
        strength=strength.strength_timeline(cohort.strength_tests, episodes),
        config=config,
    )
    specs = [FEATURES_BY_NAME[name] for name in names]
    frame = pd.concat([spec.compute(inputs).rename(spec.name) for spec in specs], axis=1).astype(
        {spec.name: spec.dtype for spec in specs}
    )
    return frame.set_axis(pd.Index(episodes["injury_id"].astype("string"), name="injury_id"))
