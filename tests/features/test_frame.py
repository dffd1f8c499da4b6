"""The feature frame as a whole: shape, dtypes, point in time, purity, order invariance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features import build_feature_frame
from features.catalog import DTYPES, FEATURE_NAMES, FEATURES
from pipeline.cohort import Cohort
from pipeline.config import FeaturesConfig
from pipeline.episodes import index_episodes
from tests.features.conftest import SCENARIO_AS_OF, feature_frame_of, scenario_cohort, table


def test_columns_dtypes_and_index(scenario):
    assert tuple(scenario.columns) == FEATURE_NAMES
    assert scenario.index.name == "injury_id"
    assert scenario.index.tolist() == ["A-I", "B-I", "C-I"]
    for spec in FEATURES:
        assert str(scenario[spec.name].dtype) == DTYPES[spec.kind], spec.name


def test_index_follows_the_episodes_order():
    cohort = scenario_cohort()
    config = FeaturesConfig()
    episodes = index_episodes(cohort, SCENARIO_AS_OF, config.outcome).iloc[[2, 0, 1]]
    frame = build_feature_frame(cohort, episodes, config)
    assert frame.index.tolist() == episodes["injury_id"].tolist()


def test_missing_episode_column_is_a_clear_error():
    cohort = scenario_cohort()
    episodes = index_episodes(cohort, SCENARIO_AS_OF, FeaturesConfig().outcome)
    with pytest.raises(ValueError, match="prediction_time"):
        build_feature_frame(cohort, episodes.drop(columns="prediction_time"), FeaturesConfig())


def with_rows(cohort: Cohort, **rows: list[dict]) -> Cohort:
    """``cohort`` with ``rows`` appended to the named tables."""
    changed = {
        name: pd.concat([getattr(cohort, name), table(name, extra)], ignore_index=True)
        for name, extra in rows.items()
    }
    return dataclasses.replace(cohort, **changed)


def test_records_after_prediction_time_change_nothing():
    """Leakage: later tests, injuries, rehab dates and returns leave every feature as it was.

    A's prediction time is 2020-01-22 (return to sport); B is provisional as of 2021-04-01;
    C returned on 2020-07-01.
    """
    cohort = scenario_cohort()
    later = with_rows(
        cohort,
        strength_tests=[
            {"test_id": f"X{k}", "athlete_id": a, "test_date": d, "test": t, "left": 1.0,
             "right": 500.0}
            for k, (a, d, t) in enumerate([
                ("A", "2020-01-23", "nordic_eccentric"),
                ("A", "2020-01-23", "isokinetic_knee_extension_concentric"),
                ("A", "2020-03-01", "isokinetic_knee_flexion_concentric"),
                ("A", "2020-03-01", "isokinetic_knee_extension_concentric"),
                ("B", "2021-04-02", "nordic_eccentric"),
                ("B", "2021-04-02", "isokinetic_knee_flexion_eccentric"),
                ("C", "2020-07-02", "isometric_knee_flexion"),
            ])
        ],
        injuries=[
            {"injury_id": "A-later", "athlete_id": "A", "injury_date": "2020-03-01", "side": "L"},
            {"injury_id": "C-later", "athlete_id": "C", "injury_date": "2020-07-02", "side": "R"},
        ],
    )  # fmt: skip
    # Rehab dates after the prediction time: B's first run and phases after as_of, a
    # return to sport after as_of, C's phases after its return.
    rehab = later.return_to_run.set_index("injury_id")
    rehab.loc["B-I", ["phase2_end_date", "phase3_end_date"]] = pd.Timestamp("2021-04-05")
    rehab.loc["B-I", "return_to_sport_date"] = pd.Timestamp("2021-05-01")
    rehab.loc["C-I", ["phase1_end_date", "phase3_end_date"]] = pd.Timestamp("2020-07-05")
    later = dataclasses.replace(later, return_to_run=rehab.reset_index())

    before = feature_frame_of(cohort)
    after = feature_frame_of(later)
    # The later injuries are not episodes (no return_to_run row), so the rows match.
    pd.testing.assert_frame_equal(after, before)


def test_inputs_are_not_mutated():
    cohort = scenario_cohort()
    config = FeaturesConfig()
    episodes = index_episodes(cohort, SCENARIO_AS_OF, config.outcome)
    tables = {name: frame.copy(deep=True) for name, frame in cohort.tables().items()}
    episodes_before = episodes.copy(deep=True)
    build_feature_frame(cohort, episodes, config)
    for name, frame in cohort.tables().items():
        pd.testing.assert_frame_equal(frame, tables[name])
    pd.testing.assert_frame_equal(episodes, episodes_before)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_row_order_of_the_tables_does_not_matter(seed):
    cohort = scenario_cohort()
    rng = np.random.default_rng(seed)
    shuffled = Cohort(
        **{
            name: frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
            for name, frame in cohort.tables().items()
        }
    )
    pd.testing.assert_frame_equal(feature_frame_of(shuffled), feature_frame_of(cohort))


@pytest.mark.slow
def test_simulated_cohort_fills_every_feature(tmp_path):
    """On a simulated clinic export, through validation, no feature is missing everywhere."""
    from pipeline.config import load_config
    from pipeline.io import write_tables
    from pipeline.validate import validate_cohort
    from simulator.config import SimulationConfig
    from simulator.simulate import simulate_cohort

    config = load_config(SimulationConfig, name="simulation")
    simulated = simulate_cohort(config, athletes=300, random_state=11)
    write_tables(simulated.tables, tmp_path, "csv")
    as_of = config.export_date
    cohort = validate_cohort(tmp_path, today=as_of).cohort
    features = FeaturesConfig()
    episodes = index_episodes(cohort, as_of, features.outcome)
    frame = build_feature_frame(cohort, episodes, features)
    assert len(frame) == len(episodes) > 0
    entirely_missing = [name for name in FEATURE_NAMES if frame[name].isna().all()]
    assert entirely_missing == []
