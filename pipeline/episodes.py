"""Index episodes: one row per treated injury, with its prediction time and outcome.

An injury is an index episode when it has a ``return_to_run`` row (data contract). Its
prediction time is the return to sport; its outcome is the first later hamstring injury
of the same athlete (same side by default) within the window after that time. Whether
the outcome is known depends on how long the athlete was observed: an episode followed
for less than the window, without a recurrence, is censored, not a non-recurrence.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipeline.cohort import Cohort
from pipeline.config import OutcomeConfig

STATUSES: tuple[str, ...] = ("recurred", "no_recurrence", "censored", "pending")

EPISODE_COLUMNS: tuple[str, ...] = (
    "injury_id",
    "athlete_id",
    "clinic_id",
    "side",
    "injury_date",
    "prediction_time",
    "provisional",
    "followed_days",
    "event_days",
    "status",
    "label",
)


def index_episodes(
    cohort: Cohort, as_of: dt.date | str | pd.Timestamp, outcome: OutcomeConfig
) -> pd.DataFrame:
    """Every index episode with its prediction time, follow-up, outcome and label.

    Everything is read as known on ``as_of``: an episode whose injury is dated after it
    did not exist yet and is left out; a return to sport dated after it has not happened
    yet (the episode is provisional, predicted as of ``as_of``); injuries and follow-up
    after ``as_of`` are not yet known. A recurrence inside the window is known whatever
    the recorded follow-up says.

    Args:
        cohort: the validated cohort.
        as_of: the date the run speaks for (usually today).
        outcome: window length and the same-side rule.

    Returns:
        One row per episode, sorted by athlete, injury date and injury id, with the
        columns in ``EPISODE_COLUMNS``: ``prediction_time`` (datetime), ``provisional``
        (bool), ``followed_days`` (observed_until, capped at ``as_of``, minus prediction
        time; NaN when the athlete has no follow-up row), ``event_days`` (prediction time
        to the recurrence, NaN if none), ``status`` (one of ``STATUSES``) and ``label``
        (1.0 recurred, 0.0 no recurrence, NaN censored or pending).
    """
    as_of = pd.Timestamp(as_of).normalize()
    window = pd.Timedelta(days=outcome.window_days)
    injuries = cohort.injuries[["injury_id", "athlete_id", "injury_date", "side"]]

    episodes = cohort.return_to_run[["injury_id", "clinic_id", "return_to_sport_date"]].merge(
        injuries, on="injury_id", how="inner", validate="one_to_one"
    )
    episodes = episodes.loc[episodes["injury_date"] <= as_of]
    returned = episodes["return_to_sport_date"].notna() & (
        episodes["return_to_sport_date"] <= as_of
    )
    episodes = episodes.assign(
        prediction_time=episodes["return_to_sport_date"].where(returned, as_of),
        provisional=~returned.to_numpy(dtype=bool),
    )
    episodes["prediction_time"] = episodes["prediction_time"].astype("datetime64[ns]")

    event_date = _first_recurrence_date(episodes, injuries, as_of, window, outcome)
    observed_until = (
        cohort.follow_up.drop_duplicates("athlete_id")
        .set_index("athlete_id")["observed_until"]
        .reindex(episodes["athlete_id"])
        .to_numpy(dtype="datetime64[ns]")
    )
    # What happened after as_of is not known on as_of.
    observed_until = np.minimum(observed_until, as_of.to_datetime64())

    prediction_time = episodes["prediction_time"].to_numpy(dtype="datetime64[ns]")
    window_end = prediction_time + window.to_timedelta64()
    recurred = ~np.isnat(event_date)
    window_over = window_end <= as_of.to_datetime64()
    observed_window = ~np.isnat(observed_until) & (observed_until >= window_end)
    status = np.select(
        [recurred, ~window_over, observed_window],
        ["recurred", "pending", "no_recurrence"],
        default="censored",
    )
    label = np.select([recurred, status == "no_recurrence"], [1.0, 0.0], default=np.nan)

    one_day = np.timedelta64(1, "D")
    episodes = episodes.assign(
        followed_days=(observed_until - prediction_time) / one_day,
        event_days=(event_date - prediction_time) / one_day,
        status=pd.array(status, dtype="string"),
        label=label,
    )
    episodes = episodes.sort_values(["athlete_id", "injury_date", "injury_id"], kind="stable")
    return episodes.loc[:, list(EPISODE_COLUMNS)].reset_index(drop=True)


def _first_recurrence_date(
    episodes: pd.DataFrame,
    injuries: pd.DataFrame,
    as_of: pd.Timestamp,
    window: pd.Timedelta,
    outcome: OutcomeConfig,
) -> np.ndarray:
    """Date of the first later injury counting as a recurrence of each episode, else NaT.

    The window is (prediction time, prediction time + window]: an injury on the day of
    return is not a recurrence of this episode (the contract's half-open interval).
    """
    by = ["athlete_id", "side"] if outcome.same_side_only else ["athlete_id"]
    later = (
        injuries.loc[injuries["injury_date"] <= as_of, [*by, "injury_date"]]
        .rename(columns={"injury_date": "event_date"})
        .astype({"event_date": "datetime64[ns]"})
        .sort_values("event_date", kind="stable")
    )
    left = episodes[[*by, "prediction_time"]].assign(position=np.arange(len(episodes)))
    matched = pd.merge_asof(
        left.sort_values("prediction_time", kind="stable"),
        later,
        left_on="prediction_time",
        right_on="event_date",
        by=by,
        direction="forward",
        allow_exact_matches=False,
    )
    event_date = np.full(len(episodes), np.datetime64("NaT"), dtype="datetime64[ns]")
    event_date[matched["position"].to_numpy()] = matched["event_date"].to_numpy(
        dtype="datetime64[ns]"
    )
    in_window = event_date <= episodes["prediction_time"].to_numpy() + window.to_timedelta64()
    return np.where(in_window, event_date, np.datetime64("NaT"))
