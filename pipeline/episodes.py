"""Index episodes: one row per treated injury, its prediction time, follow-up and outcome.

This module is the one definition, for training, scoring and audits, of:

* the **index episode**: an injury with a ``return_to_run`` row (data contract); its
  prediction time is the return to sport;
* the **outcome statuses**: the first later hamstring injury of the same athlete (same
  side by default) within the window after that time; without one, an episode followed
  for less than the window is censored, not a non-recurrence;
* **follow-up**: an athlete is known to be followed at least until their latest dated
  record (injury, strength test, any ``return_to_run`` date) on or before the as-of date,
  because a record is proof of contact. Follow-up ends at the later of ``observed_until``
  and that date (``follow_up_end``): clinics' own records often postdate the follow-up
  survey's last contact, and an athlete without a follow-up row is still followed until
  their last record, not dropped;
* the **censoring-weight inputs** (``censoring_inputs``): followed days, event days, the
  administrative end and the covariates of the loss-to-follow-up model, built once for
  training and audits alike;
* the **development fingerprint** of the episodes a model was fitted on, so an audit can
  tell them from new ones without storing any id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute

from models.censoring import ipcw_weights
from pipeline.cohort import Cohort
from pipeline.config import CensoringConfig, OutcomeConfig
from pipeline.errors import HamriskError

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
    "administrative_days",
    "follow_up_from_records",
    "event_days",
    "status",
    "label",
)

# Every dated column of the records that proves the athlete was in contact on that date.
_CONTACT_DATES: dict[str, tuple[str, ...]] = {
    "injuries": ("injury_date",),
    "strength_tests": ("test_date",),
    "return_to_run": (
        "phase1_end_date",
        "phase2_end_date",
        "phase3_end_date",
        "return_to_run_date",
        "return_to_sport_date",
    ),
}


def index_episodes(
    cohort: Cohort, as_of: dt.date | str | pd.Timestamp, outcome: OutcomeConfig
) -> pd.DataFrame:
    """Every index episode with its prediction time, follow-up, outcome and label.

    Everything is read as known on ``as_of``: an episode whose injury is dated after it
    did not exist yet and is left out; a return to sport dated after it has not happened
    yet (the episode is provisional, predicted as of ``as_of``); injuries and follow-up
    after ``as_of`` are not yet known. Follow-up ends at ``follow_up_end`` (the later of
    ``observed_until`` and the athlete's latest record), so a recurrence on record always
    lies within it.

    Args:
        cohort: the validated cohort.
        as_of: the date the run speaks for (usually today).
        outcome: window length and the same-side rule.

    Returns:
        One row per episode, sorted by athlete, injury date and injury id, with the
        columns in ``EPISODE_COLUMNS``: ``prediction_time`` (datetime), ``provisional``
        (bool), ``followed_days`` (``follow_up_end`` minus prediction time, floored at
        0), ``administrative_days`` (the cohort's records end, ``records_end``, minus
        prediction time, floored at 0: how long the episode could have been followed at
        most), ``follow_up_from_records`` (True where the athlete's records reach past
        ``observed_until`` or there is no follow-up row: the follow-up rule lengthened
        it), ``event_days`` (prediction time to the recurrence, NaN if none), ``status``
        (one of ``STATUSES``) and ``label`` (1.0 recurred, 0.0 no recurrence, NaN
        censored or pending).
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
    follow_up = follow_up_end(cohort, as_of)
    observed_until = (
        follow_up["follow_up_end"].reindex(episodes["athlete_id"]).to_numpy(dtype="datetime64[ns]")
    )
    from_records = (
        follow_up["from_records"].reindex(episodes["athlete_id"]).fillna(False).to_numpy(bool)
    )
    end_of_records = records_end(follow_up, as_of).to_datetime64()

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
    # A prediction time after the end of follow-up (a provisional episode, say) has been
    # followed for no time at all: censored at day 0, it weighs 0.
    followed = np.fmax((observed_until - prediction_time) / one_day, 0.0)
    episodes = episodes.assign(
        followed_days=followed,
        administrative_days=np.fmax((end_of_records - prediction_time) / one_day, 0.0),
        follow_up_from_records=from_records,
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


# --- follow-up: observed_until, or later when the records prove contact ----------------------


def last_contact(cohort: Cohort, as_of: dt.date | str | pd.Timestamp) -> pd.Series:
    """Each athlete's latest dated record on or before ``as_of`` (proof of contact).

    Returns:
        ``datetime64[ns]`` dates indexed by ``athlete_id`` (athletes without any dated
        record are absent).
    """
    as_of = pd.Timestamp(as_of).normalize().to_datetime64().astype("datetime64[ns]")
    # Athletes as integer codes, one maximum per code: grouping millions of dates by a
    # string id took seconds at 50,000 athletes.
    injuries = cohort.injuries
    athletes = pyarrow.compute.unique(_arrow_text(injuries["athlete_id"]))
    codes = {
        "injuries": _positions(injuries["athlete_id"], athletes),
        "strength_tests": _positions(cohort.strength_tests["athlete_id"], athletes),
    }
    owner = _positions(cohort.return_to_run["injury_id"], _arrow_text(injuries["injury_id"]))
    codes["return_to_run"] = np.where(owner >= 0, codes["injuries"][np.maximum(owner, 0)], -1)
    # Dates as int64 nanoseconds (NaT is the smallest), so the maximum takes numpy's fast path.
    never = np.iinfo(np.int64).min
    latest = np.full(len(athletes), never, dtype=np.int64)
    limit = as_of.astype(np.int64)
    for table, columns in _CONTACT_DATES.items():
        frame = getattr(cohort, table)
        for column in columns:
            dates = frame[column].to_numpy(dtype="datetime64[ns]").view(np.int64)
            keep = (codes[table] >= 0) & (dates != never) & (dates <= limit)
            np.maximum.at(latest, codes[table][keep], dates[keep])
    found = latest != never
    latest = latest.view("datetime64[ns]")
    ids = pd.array(athletes.to_numpy(zero_copy_only=False)[found], dtype="string")
    return pd.Series(latest[found], index=pd.Index(ids, name="athlete_id"))


def _arrow_text(values: pd.Series) -> pyarrow.Array:
    """Ids as an Arrow string array (the cohort's ``string`` columns are Arrow-backed)."""
    return pyarrow.Array.from_pandas(values.astype("string"))


def _positions(values: pd.Series, keys: pyarrow.Array) -> np.ndarray:
    """Position of each value in ``keys`` (-1 when absent), hashed in Arrow."""
    found = pyarrow.compute.index_in(_arrow_text(values), value_set=keys)
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def follow_up_end(cohort: Cohort, as_of: dt.date | str | pd.Timestamp) -> pd.DataFrame:
    """Per athlete, the date until which their injury status is known on ``as_of``.

    The later of ``observed_until`` (capped at ``as_of``: what happened after it is not
    known on it) and the athlete's latest record on or before ``as_of``.

    Returns:
        indexed by ``athlete_id``: ``observed_until`` (NaT without a follow-up row),
        ``last_record`` (NaT without a dated record), ``follow_up_end`` and
        ``from_records`` (True where the records reach past ``observed_until``, or there
        is no follow-up row but there are records).
    """
    as_of = pd.Timestamp(as_of).normalize()
    observed = (
        cohort.follow_up.drop_duplicates("athlete_id")
        .assign(athlete_id=lambda f: f["athlete_id"].astype("string"))
        .set_index("athlete_id")["observed_until"]
        .astype("datetime64[ns]")
        .clip(upper=as_of)
    )
    contact = last_contact(cohort, as_of)
    frame = pd.DataFrame({"observed_until": observed, "last_record": contact})
    frame.index.name = "athlete_id"
    obs = frame["observed_until"].to_numpy(dtype="datetime64[ns]")
    last = frame["last_record"].to_numpy(dtype="datetime64[ns]")
    frame["follow_up_end"] = np.fmax(obs, last).astype("datetime64[ns]")
    frame["from_records"] = ~np.isnat(last) & (np.isnat(obs) | (last > obs))
    return frame


def records_end(follow_up: pd.DataFrame, as_of: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    """The cohort's export date as the records show it: the latest end of anyone's follow-up.

    Every athlete still followed when the cohort was exported is observed until the
    export, so no follow-up can reach past it; an episode whose window ends later has an
    outcome nobody could know yet (administrative censoring), whoever dropped out.
    """
    as_of = pd.Timestamp(as_of).normalize()
    ends = follow_up["follow_up_end"].dropna()
    return min(as_of, ends.max()) if len(ends) else as_of


@dataclass(frozen=True)
class FollowUpBehindRecords:
    """Athletes whose records show contact after their follow-up row says (or without one).

    Not an error: the records are not wrong, the follow-up survey is behind them. Follow-up
    is taken to the latest record (``follow_up_end``).
    """

    records_after_observed_until: int
    records_without_follow_up_row: int

    @property
    def athletes(self) -> int:
        """Athletes the follow-up rule lengthens."""
        return self.records_after_observed_until + self.records_without_follow_up_row

    def message(self) -> str:
        """One line for the validation summary (empty when no athlete is affected)."""
        if not self.athletes:
            return ""
        return (
            f"warning: follow-up behind the records for {self.athletes:,} athlete(s) "
            f"({self.records_after_observed_until:,} with a record dated after "
            f"observed_until, {self.records_without_follow_up_row:,} with records but no "
            "follow_up row): accepted; follow-up runs to each athlete's latest record"
        )


def follow_up_behind_records(
    cohort: Cohort, as_of: dt.date | str | pd.Timestamp
) -> FollowUpBehindRecords:
    """Count the athletes whose follow-up the records lengthen (``follow_up_end``)."""
    frame = follow_up_end(cohort, as_of).loc[lambda f: f["from_records"]]
    without = int(frame["observed_until"].isna().sum())
    return FollowUpBehindRecords(
        records_after_observed_until=len(frame) - without,
        records_without_follow_up_row=without,
    )


# --- censoring-weight inputs: one builder for training and audits -----------------------------


@dataclass(frozen=True)
class CensoringInputs:
    """What the censoring model needs, one row per episode (see ``models.censoring``)."""

    followed_days: np.ndarray
    event_days: np.ndarray
    administrative_days: np.ndarray
    covariates: pd.DataFrame | None


def censoring_inputs(
    episodes: pd.DataFrame, features: pd.DataFrame, censoring: CensoringConfig
) -> CensoringInputs:
    """The censoring-weight inputs of ``episodes`` (rows of ``index_episodes``).

    Args:
        episodes: episodes with ``followed_days``, ``administrative_days`` and
            ``event_days``.
        features: their feature frame, row for row (only the covariates are read).
        censoring: the ``censoring`` section of configs/train.yaml.

    Raises:
        HamriskError: a configured covariate is not a feature column, or the frames do
            not have one row per episode.
    """
    if len(features) != len(episodes):
        raise HamriskError(
            f"censoring inputs: {len(episodes)} episodes but {len(features)} feature rows"
        )
    covariates = None
    if censoring.method == "covariate":
        unknown = [c for c in censoring.covariates if c not in features.columns]
        if unknown:
            raise HamriskError(
                f"configs/train.yaml, censoring.covariates: {', '.join(unknown)} is not a "
                "feature column"
            )
        # Calendar time is not a covariate: the export date ends follow-up on a known day,
        # which administrative_days carries; a dropout hazard must not learn it.
        covariates = features.loc[:, list(censoring.covariates)].reset_index(drop=True)
    return CensoringInputs(
        followed_days=episodes["followed_days"].to_numpy(dtype=np.float64),
        event_days=episodes["event_days"].to_numpy(dtype=np.float64),
        administrative_days=episodes["administrative_days"].to_numpy(dtype=np.float64),
        covariates=covariates,
    )


def censoring_weights(
    inputs: CensoringInputs, window_days: float, censoring: CensoringConfig
) -> np.ndarray:
    """IPCW weights of ``inputs`` with the configured method and truncation."""
    return ipcw_weights(
        inputs.followed_days,
        inputs.event_days,
        window_days,
        covariates=inputs.covariates,
        method=censoring.method,
        max_weight=censoring.max_weight,
        administrative_days=inputs.administrative_days,
    )


@dataclass(frozen=True)
class WeightDiagnostics:
    """How uneven the censoring weights are (docs/model-card.md, "Censoring")."""

    known: int
    max_weight: float
    effective_sample_size: float

    @classmethod
    def of(cls, weights: np.ndarray) -> WeightDiagnostics:
        """Kish's effective sample size (sum w)^2 / sum w^2 over the known outcomes."""
        w = np.asarray(weights, dtype=np.float64)
        w = w[w > 0]
        if not w.size:
            return cls(known=0, max_weight=float("nan"), effective_sample_size=0.0)
        return cls(
            known=int(w.size),
            max_weight=float(w.max()),
            effective_sample_size=float(w.sum() ** 2 / np.sum(w**2)),
        )

    def metrics(self, prefix: str = "ipcw_") -> dict[str, float]:
        """As MLflow metrics."""
        return {
            f"{prefix}known": float(self.known),
            f"{prefix}max_weight": self.max_weight,
            f"{prefix}effective_sample_size": self.effective_sample_size,
        }

    def text(self) -> str:
        """One line for a printed summary."""
        return (
            f"censoring weights: {self.known:,} known outcomes, largest weight "
            f"{self.max_weight:.2f}, effective sample size {self.effective_sample_size:,.0f} "
            f"(Kish)"
        )


# --- development fingerprint: which episodes a model was fitted on, without their ids ---------

FINGERPRINT_HEX_CHARS = 16


def episode_fingerprints(episodes: pd.DataFrame, salt: str) -> np.ndarray:
    """Truncated salted SHA-256 of each episode's athlete id, injury id and injury date.

    The three together identify an episode: ids alone are reused across exports (a
    simulated cohort and a clinic's sequential ids both restart at 1). 16 hex characters
    (64 bits) make a chance collision between 10^5 episodes about 3e-10 likely.
    """
    dates = pd.to_datetime(episodes["injury_date"]).dt.strftime("%Y-%m-%d").fillna("")
    keys = (
        episodes["athlete_id"].astype("string").fillna("")
        + "|"
        + episodes["injury_id"].astype("string").fillna("")
        + "|"
        + dates.astype("string")
    )
    prefix = salt.encode()
    return np.array(
        [
            hashlib.sha256(prefix + key.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS]
            for key in keys.tolist()
        ],
        dtype=object,
    )


def development_fingerprint(episodes: pd.DataFrame) -> dict[str, Any]:
    """The fingerprint set of the episodes a model is fitted on, with its fresh salt.

    The salt keeps the set from being matched against a list of guessed ids without it;
    it is stored beside the set so the audit can fingerprint its own episodes the same way.
    """
    salt = secrets.token_hex(16)
    return {
        "scheme": f"sha256(salt + athlete_id|injury_id|injury_date)[:{FINGERPRINT_HEX_CHARS}]",
        "salt": salt,
        "episodes": len(episodes),
        "fingerprints": sorted(set(episode_fingerprints(episodes, salt).tolist())),
    }


def in_development(episodes: pd.DataFrame, fingerprint: Mapping[str, Any]) -> np.ndarray:
    """True for the episodes the fingerprinted model was fitted on."""
    known = set(fingerprint.get("fingerprints", ()))
    found = episode_fingerprints(episodes, str(fingerprint.get("salt", "")))
    return np.array([f in known for f in found], dtype=bool)
