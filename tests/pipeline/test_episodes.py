"""Index episodes: prediction time, follow-up and the recurred/no_recurrence/censored/pending
labels.

Every expected value below is worked out by hand from the dates in the case (2020 is a leap
year: 2020-02-01 + 365 days = 2021-01-31).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import OutcomeConfig
from pipeline.episodes import EPISODE_COLUMNS, index_episodes
from tests.features.conftest import make_cohort

AS_OF = "2024-01-01"
INDEX = {"injury_date": "2020-01-01", "side": "L"}
RETURN = "2020-02-01"


def one_episode(
    *,
    later: tuple[tuple[str, str], ...] = (),
    observed_until: str | None = "2023-01-01",
    returned: str | None = RETURN,
    injury_date: str = INDEX["injury_date"],
):
    """One athlete, one index episode (left side) and ``later`` (date, side) injuries."""
    injuries = [{"injury_id": "I0", "athlete_id": "A", "injury_date": injury_date, "side": "L"}]
    injuries += [
        {"injury_id": f"I{k}", "athlete_id": "A", "injury_date": d, "side": s}
        for k, (d, s) in enumerate(later, start=1)
    ]
    follow_up = (
        [] if observed_until is None else [{"athlete_id": "A", "observed_until": observed_until}]
    )
    return make_cohort(
        athletes=[{"athlete_id": "A"}],
        injuries=injuries,
        return_to_run=[{"injury_id": "I0", "clinic_id": "C", "return_to_sport_date": returned}],
        follow_up=follow_up,
    )


# (case, cohort arguments, same_side_only, status, label, event_days)
CASES = [
    (
        "recurrence 90 days after return",
        {"later": (("2020-05-01", "L"),)},
        True,
        "recurred",
        1.0,
        90.0,
    ),
    ("followed a full window, nothing", {}, True, "no_recurrence", 0.0, np.nan),
    (
        "lost before the window ended",
        {"observed_until": "2020-06-01"},
        True,
        "censored",
        np.nan,
        np.nan,
    ),
    ("no follow-up row at all", {"observed_until": None}, True, "censored", np.nan, np.nan),
    (
        "other side is not a recurrence",
        {"later": (("2020-05-01", "R"),)},
        True,
        "no_recurrence",
        0.0,
        np.nan,
    ),
    (
        "other side counts when allowed",
        {"later": (("2020-05-01", "R"),)},
        False,
        "recurred",
        1.0,
        90.0,
    ),
    ("exactly +365 days is in", {"later": (("2021-01-31", "L"),)}, True, "recurred", 1.0, 365.0),
    ("+366 days is out", {"later": (("2021-02-01", "L"),)}, True, "no_recurrence", 0.0, np.nan),
    (
        "on the prediction date is not one",
        {"later": ((RETURN, "L"),)},
        True,
        "no_recurrence",
        0.0,
        np.nan,
    ),
    (
        "during rehab is not one",
        {"later": (("2020-01-15", "L"),)},
        True,
        "no_recurrence",
        0.0,
        np.nan,
    ),
    (
        "a recurrence is known despite short follow-up",
        {"later": (("2020-05-01", "L"),), "observed_until": "2020-03-01"},
        True,
        "recurred",
        1.0,
        90.0,
    ),
    (
        "observed to the last day of the window",
        {"observed_until": "2021-01-31"},
        True,
        "no_recurrence",
        0.0,
        np.nan,
    ),
    (
        "observed to one day short of it",
        {"observed_until": "2021-01-30"},
        True,
        "censored",
        np.nan,
        np.nan,
    ),
    (
        "window not over yet",
        {"returned": "2023-06-01", "injury_date": "2023-05-01"},
        True,
        "pending",
        np.nan,
        np.nan,
    ),
    (
        "recurrence inside an open window",
        {"returned": "2023-06-01", "injury_date": "2023-05-01", "later": (("2023-12-01", "L"),)},
        True,
        "recurred",
        1.0,
        183.0,
    ),
    (
        "not yet returned",
        {"returned": None, "injury_date": "2023-11-01"},
        True,
        "pending",
        np.nan,
        np.nan,
    ),
    (
        "a recurrence after as_of is not known yet",
        {"returned": "2023-06-01", "injury_date": "2023-05-01", "later": (("2024-02-01", "L"),)},
        True,
        "pending",
        np.nan,
        np.nan,
    ),
]


@pytest.mark.parametrize(
    ("arguments", "same_side_only", "status", "label", "event_days"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_labels(arguments, same_side_only, status, label, event_days):
    outcome = OutcomeConfig(window_days=365, same_side_only=same_side_only)
    episode = index_episodes(one_episode(**arguments), AS_OF, outcome).iloc[0]
    assert episode["status"] == status
    np.testing.assert_equal(episode["label"], label)
    np.testing.assert_equal(episode["event_days"], event_days)


def test_columns_dtypes_and_one_row_per_treated_injury():
    cohort = one_episode(later=(("2020-05-01", "L"),))
    episodes = index_episodes(cohort, AS_OF, OutcomeConfig())
    assert tuple(episodes.columns) == EPISODE_COLUMNS
    # The later injury has no return_to_run row: it is history, not an episode.
    assert episodes["injury_id"].tolist() == ["I0"]
    assert str(episodes["prediction_time"].dtype) == "datetime64[ns]"
    assert episodes["provisional"].dtype == bool
    assert episodes["status"].dtype == "string"
    assert episodes.loc[0, "prediction_time"] == pd.Timestamp(RETURN)
    # 2020-02-01 to 2021-01-01 is 335 days (leap February), then 365 + 365 to 2023-01-01.
    assert episodes.loc[0, "followed_days"] == 1065.0


def test_provisional_episode_is_predicted_as_of_the_run_date():
    cohort = one_episode(returned=None, injury_date="2023-11-01", observed_until="2023-12-01")
    episode = index_episodes(cohort, AS_OF, OutcomeConfig()).iloc[0]
    assert episode["provisional"]
    assert episode["prediction_time"] == pd.Timestamp(AS_OF)
    assert episode["followed_days"] == -31.0


def test_return_dated_after_as_of_has_not_happened_yet():
    cohort = one_episode(returned="2023-03-01", injury_date="2023-01-01")
    episode = index_episodes(cohort, "2023-02-01", OutcomeConfig()).iloc[0]
    assert episode["provisional"]
    assert episode["prediction_time"] == pd.Timestamp("2023-02-01")


def test_injury_after_as_of_is_not_an_episode_yet():
    cohort = one_episode(returned=None, injury_date="2023-11-01")
    assert index_episodes(cohort, "2023-10-01", OutcomeConfig()).empty


def test_follow_up_after_as_of_is_not_known_yet():
    # Observed to 2023-01-01, but as of 2021-01-15 only 349 days after return are known,
    # and the window (ending 2021-01-31) is still open.
    episode = index_episodes(one_episode(), "2021-01-15", OutcomeConfig()).iloc[0]
    assert episode["followed_days"] == 349.0
    assert episode["status"] == "pending"


def test_recurrence_episode_is_an_index_episode_of_its_own():
    cohort = make_cohort(
        athletes=[{"athlete_id": "A"}],
        injuries=[
            {"injury_id": "I1", "athlete_id": "A", "injury_date": "2020-01-01", "side": "R"},
            {"injury_id": "I2", "athlete_id": "A", "injury_date": "2020-06-01", "side": "R"},
        ],
        return_to_run=[
            {"injury_id": "I1", "clinic_id": "C", "return_to_sport_date": "2020-02-01"},
            {"injury_id": "I2", "clinic_id": "C", "return_to_sport_date": "2020-07-01"},
        ],
        follow_up=[{"athlete_id": "A", "observed_until": "2022-01-01"}],
    )
    episodes = index_episodes(cohort, AS_OF, OutcomeConfig()).set_index("injury_id")
    assert episodes.loc["I1", "status"] == "recurred"
    assert episodes.loc["I2", "status"] == "no_recurrence"


def many_athletes_cohort():
    """Several athletes with interleaved histories, for order and mutation checks."""
    injuries, rtr, follow_up = [], [], []
    for a in range(6):
        for k in range(3):
            iid = f"I{a}{k}"
            day = pd.Timestamp("2019-01-01") + pd.Timedelta(days=150 * k + 17 * a)
            injuries.append(
                {
                    "injury_id": iid,
                    "athlete_id": f"A{a}",
                    "injury_date": day,
                    "side": "LR"[(a + k) % 2 if a % 3 else 0],
                }
            )
            if k < 2 or a % 2:
                rtr.append(
                    {
                        "injury_id": iid,
                        "clinic_id": "C",
                        "return_to_sport_date": day + pd.Timedelta(days=30),
                    }
                )
        follow_up.append(
            {
                "athlete_id": f"A{a}",
                "observed_until": pd.Timestamp("2020-03-01") + pd.Timedelta(days=90 * a),
            }
        )
    return make_cohort(
        athletes=[{"athlete_id": f"A{a}"} for a in range(6)],
        injuries=injuries,
        return_to_run=rtr,
        follow_up=follow_up,
    )


def test_statuses_and_labels_agree():
    episodes = index_episodes(many_athletes_cohort(), "2021-06-01", OutcomeConfig())
    assert set(episodes["status"]) <= {"recurred", "no_recurrence", "censored", "pending"}
    assert (episodes["label"] == 1.0).eq(episodes["status"] == "recurred").all()
    assert (episodes["label"] == 0.0).eq(episodes["status"] == "no_recurrence").all()
    assert episodes["label"].isna().eq(episodes["status"].isin(["censored", "pending"])).all()
    assert episodes["event_days"].notna().eq(episodes["status"] == "recurred").all()
    assert (episodes["event_days"].dropna() > 0).all()
    assert (episodes["event_days"].dropna() <= 365).all()


def test_input_is_not_mutated():
    cohort = many_athletes_cohort()
    before = {name: frame.copy(deep=True) for name, frame in cohort.tables().items()}
    index_episodes(cohort, "2021-06-01", OutcomeConfig())
    for name, frame in cohort.tables().items():
        pd.testing.assert_frame_equal(frame, before[name])


def test_row_order_does_not_matter():
    cohort = many_athletes_cohort()
    expected = index_episodes(cohort, "2021-06-01", OutcomeConfig())
    rng = np.random.default_rng(7)
    shuffled = type(cohort)(
        **{
            name: frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
            for name, frame in cohort.tables().items()
        }
    )
    pd.testing.assert_frame_equal(index_episodes(shuffled, "2021-06-01", OutcomeConfig()), expected)
