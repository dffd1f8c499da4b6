"""Index episodes: prediction time, follow-up and the recurred/no_recurrence/censored/pending
labels.

Every expected value below is worked out by hand from the dates in the case (2020 is a leap
year: 2020-02-01 + 365 days = 2021-01-31).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import CensoringConfig, OutcomeConfig
from pipeline.episodes import (
    EPISODE_COLUMNS,
    WeightDiagnostics,
    censoring_inputs,
    censoring_weights,
    development_fingerprint,
    follow_up_behind_records,
    in_development,
    index_episodes,
)
from pipeline.errors import HamriskError
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
    tests: tuple[str, ...] = (),
):
    """One athlete, one index episode (left side), ``later`` (date, side) injuries and
    strength tests on the ``tests`` dates."""
    injuries = [{"injury_id": "I0", "athlete_id": "A", "injury_date": injury_date, "side": "L"}]
    injuries += [
        {"injury_id": f"I{k}", "athlete_id": "A", "injury_date": d, "side": s}
        for k, (d, s) in enumerate(later, start=1)
    ]
    follow_up = (
        [] if observed_until is None else [{"athlete_id": "A", "observed_until": observed_until}]
    )
    strength = [
        {
            "test_id": f"T{k}",
            "athlete_id": "A",
            "test_date": d,
            "test": "nordic_eccentric",
            "left": 300.0,
            "right": 310.0,
            "unit": "N",
        }
        for k, d in enumerate(tests)
    ]
    return make_cohort(
        athletes=[{"athlete_id": "A"}],
        injuries=injuries,
        strength_tests=strength,
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
        "a strength test after observed_until proves a full window",
        {"observed_until": "2020-06-01", "tests": ("2021-03-01",)},
        True,
        "no_recurrence",
        0.0,
        np.nan,
    ),
    (
        "no follow-up row, but a test after the window",
        {"observed_until": None, "tests": ("2021-03-01",)},
        True,
        "no_recurrence",
        0.0,
        np.nan,
    ),
    (
        "an other-side injury after observed_until proves contact",
        {"observed_until": "2020-06-01", "later": (("2021-02-15", "R"),)},
        True,
        "no_recurrence",
        0.0,
        np.nan,
    ),
    (
        "a test after as_of proves nothing yet",
        {"observed_until": "2020-06-01", "tests": ("2024-03-01",)},
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
    # Follow-up ended a month before the prediction time: followed for no time, not -31 days.
    assert episode["followed_days"] == 0.0


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


# --- follow-up: observed_until, lengthened by the athlete's own records ------------------------


@pytest.mark.parametrize(
    ("arguments", "followed_days", "from_records"),
    [
        ({}, 1065.0, False),
        # 2020-02-01 to 2020-09-01: 213 days, from the test, not from observed_until.
        ({"observed_until": "2020-03-01", "tests": ("2020-09-01",)}, 213.0, True),
        ({"observed_until": None, "tests": ("2020-09-01",)}, 213.0, True),
        # The recurrence itself is a record: follow-up reaches it (90 days).
        ({"observed_until": "2020-03-01", "later": (("2020-05-01", "L"),)}, 90.0, True),
        # A record earlier than observed_until changes nothing.
        ({"tests": ("2020-09-01",)}, 1065.0, False),
        # No follow-up row and nothing after the return to sport: followed 0 days.
        ({"observed_until": None}, 0.0, True),
    ],
    ids=["observed", "test after", "no row, test", "recurrence", "test before", "no row"],
)
def test_follow_up_runs_to_the_latest_record(arguments, followed_days, from_records):
    episode = index_episodes(one_episode(**arguments), AS_OF, OutcomeConfig()).iloc[0]
    assert episode["followed_days"] == followed_days
    assert bool(episode["follow_up_from_records"]) is from_records


def test_administrative_end_is_the_latest_follow_up_of_the_cohort():
    # A is followed to 2022-01-01; B to 2023-01-01 (the export, as the records show it).
    cohort = make_cohort(
        athletes=[{"athlete_id": "A"}, {"athlete_id": "B"}],
        injuries=[
            {"injury_id": "I1", "athlete_id": "A", "injury_date": "2020-01-01", "side": "L"},
            {"injury_id": "I2", "athlete_id": "B", "injury_date": "2022-06-01", "side": "L"},
        ],
        return_to_run=[
            {"injury_id": "I1", "clinic_id": "C", "return_to_sport_date": "2020-02-01"},
            {"injury_id": "I2", "clinic_id": "C", "return_to_sport_date": "2022-07-01"},
        ],
        follow_up=[
            {"athlete_id": "A", "observed_until": "2022-01-01"},
            {"athlete_id": "B", "observed_until": "2023-01-01"},
        ],
    )
    episodes = index_episodes(cohort, AS_OF, OutcomeConfig()).set_index("injury_id")
    # 2020-02-01 -> 2023-01-01: 335 + 365 + 365 = 1065; 2022-07-01 -> 2023-01-01: 184.
    assert episodes.loc["I1", "administrative_days"] == 1065.0
    assert episodes.loc["I2", "administrative_days"] == 184.0
    assert episodes.loc["I2", "followed_days"] == 184.0
    assert episodes.loc["I2", "status"] == "censored"


def test_follow_up_properties_on_interleaved_histories():
    episodes = index_episodes(many_athletes_cohort(), "2021-06-01", OutcomeConfig())
    followed = episodes["followed_days"].to_numpy()
    assert not np.isnan(followed).any()
    assert (followed >= 0).all()
    assert (followed <= episodes["administrative_days"].to_numpy()).all()
    recurred = episodes["event_days"].notna().to_numpy()
    assert (episodes["event_days"].to_numpy()[recurred] <= followed[recurred]).all()


def test_follow_up_behind_records_counts_athletes():
    cohort = make_cohort(
        athletes=[{"athlete_id": a} for a in "ABC"],
        injuries=[
            {"injury_id": f"I{a}", "athlete_id": a, "injury_date": "2020-01-01", "side": "L"}
            for a in "ABC"
        ]
        + [{"injury_id": "IA2", "athlete_id": "A", "injury_date": "2021-05-01", "side": "R"}],
        return_to_run=[
            {"injury_id": f"I{a}", "clinic_id": "C", "return_to_sport_date": "2020-02-01"}
            for a in "ABC"
        ],
        # A's survey stops before A's later injury; B has no follow-up row; C is current.
        follow_up=[
            {"athlete_id": "A", "observed_until": "2021-01-01"},
            {"athlete_id": "C", "observed_until": "2023-01-01"},
        ],
    )
    found = follow_up_behind_records(cohort, AS_OF)
    assert (found.records_after_observed_until, found.records_without_follow_up_row) == (1, 1)
    assert found.athletes == 2
    assert "2 athlete(s)" in found.message()
    # As of a date before A's later injury, A's survey is not behind yet.
    assert follow_up_behind_records(cohort, "2021-03-01").records_after_observed_until == 0


# --- the censoring-weight inputs and the development fingerprint --------------------------------


def test_censoring_inputs_name_an_unknown_covariate():
    episodes = index_episodes(many_athletes_cohort(), "2021-06-01", OutcomeConfig())
    features = pd.DataFrame({"age_years": np.arange(len(episodes), dtype=float)})
    with pytest.raises(HamriskError, match=r"censoring\.covariates: level is not a feature"):
        censoring_inputs(episodes, features, CensoringConfig(covariates=("age_years", "level")))


def test_censoring_inputs_carry_the_episodes_follow_up():
    episodes = index_episodes(many_athletes_cohort(), "2021-06-01", OutcomeConfig())
    features = pd.DataFrame({"age_years": np.arange(len(episodes), dtype=float)})
    inputs = censoring_inputs(episodes, features, CensoringConfig(covariates=("age_years",)))
    np.testing.assert_array_equal(inputs.followed_days, episodes["followed_days"].to_numpy())
    np.testing.assert_array_equal(
        inputs.administrative_days, episodes["administrative_days"].to_numpy()
    )
    assert list(inputs.covariates.columns) == ["age_years"]
    weights = censoring_weights(inputs, 365, CensoringConfig(covariates=("age_years",)))
    assert (weights[episodes["status"].isin(["censored", "pending"]).to_numpy()] == 0).all()


def test_weight_diagnostics_kish():
    found = WeightDiagnostics.of(np.array([0.0, 1.0, 1.0, 2.0]))
    assert found.known == 3
    assert found.max_weight == 2.0
    assert found.effective_sample_size == pytest.approx(16 / 6)
    # Equal weights: the effective sample size is the number of known outcomes.
    assert WeightDiagnostics.of(np.full(7, 1.7)).effective_sample_size == pytest.approx(7)


def test_development_fingerprint_recognises_its_own_episodes_only():
    episodes = index_episodes(many_athletes_cohort(), "2021-06-01", OutcomeConfig())
    fitted, later = episodes.iloc[:5], episodes.iloc[5:]
    fingerprint = development_fingerprint(fitted)
    assert in_development(fitted, fingerprint).all()
    assert not in_development(later, fingerprint).any()
    # The same ids on other dates (another export restarting its numbering) are new.
    moved = fitted.assign(injury_date=fitted["injury_date"] + pd.Timedelta(days=1))
    assert not in_development(moved, fingerprint).any()
    # No id travels with the fingerprint, and a fresh salt gives other fingerprints.
    text = repr(fingerprint)
    assert not any(str(i) in text for i in episodes["injury_id"])
    assert set(development_fingerprint(fitted)["fingerprints"]).isdisjoint(
        fingerprint["fingerprints"]
    )
