"""Model quality against the simulator's truth, on an independent cohort (fixed seeds).

Train on one simulated cohort of 4,000 athletes, score a second cohort drawn with another
seed, and compare with the true first-year probabilities the simulator used. The criteria
are the product's acceptance targets for a cohort of this size.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from features.catalog import CATEGORICAL, MONOTONE
from models.estimators import RiskModel
from models.evaluation import weighted_auc
from pipeline.config import (
    FeaturesConfig,
    TrainConfig,
    load_config,
)
from pipeline.io import write_tables
from pipeline.train import (
    choose_candidate,
    fit_candidate,
    prepare_training_data,
)
from pipeline.validate import validate_cohort
from simulator.config import SimulationConfig
from simulator.simulate import simulate_cohort

pytestmark = pytest.mark.slow

ATHLETES = 4000
TRAIN_SEED, TEST_SEED = 101, 202
TODAY = dt.date(2026, 11, 26)


def _cohort(tmp_path, seed):
    features = load_config(FeaturesConfig, name="features")
    train = load_config(TrainConfig, name="train")
    sim = simulate_cohort(
        load_config(SimulationConfig, name="simulation"), athletes=ATHLETES, random_state=seed
    )
    folder = tmp_path / f"cohort-{seed}"
    write_tables(sim.tables, folder)
    data = prepare_training_data(
        validate_cohort(folder, today=TODAY).cohort, features, train, TODAY
    )
    truth = sim.truth.set_index("injury_id").loc[data.episodes["injury_id"].astype(str)]
    return data, truth["true_risk"].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def quality(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("quality")
    config = load_config(TrainConfig, name="train")
    train, _ = _cohort(tmp_path, TRAIN_SEED)
    test, truth = _cohort(tmp_path, TEST_SEED)
    candidate, _ = choose_candidate(train, config)
    model = fit_candidate(candidate, train, config)
    baseline = fit_candidate(config.model.baseline, train, config, n_bootstrap=0)
    # What a generic pipeline does: censored episodes dropped, no weights, no calibration.
    dropping = RiskModel(
        kind="lightgbm",
        params=dict(config.model.candidates[0].params),
        monotone=MONOTONE,
        categorical=CATEGORICAL,
        calibration="none",
        n_bootstrap=0,
        random_state=config.random_state,
    ).fit(train.features, train.labels, None, train.groups)
    risks = {
        "truth": truth,
        "hamrisk": model.predict_risk(test.features),
        "logistic": baseline.predict_risk(test.features),
        "dropping": dropping.predict_risk(test.features),
    }
    return {"test": test, "truth": truth, "risks": risks}


def _mse(quality, name):
    return float(np.mean((quality["risks"][name] - quality["truth"]) ** 2))


def _auc(quality, name):
    test = quality["test"]
    return weighted_auc(test.labels, quality["risks"][name], test.weights)


def test_mean_predicted_risk_within_a_hundredth_of_mean_true_risk(quality):
    assert abs(quality["risks"]["hamrisk"].mean() - quality["truth"].mean()) <= 0.01


def test_closer_to_the_truth_than_a_model_that_drops_censored_episodes(quality):
    assert _mse(quality, "hamrisk") < _mse(quality, "dropping")


def test_auc_within_0015_of_the_true_probabilities(quality):
    assert _auc(quality, "truth") - _auc(quality, "hamrisk") <= 0.015


def test_closer_to_the_truth_than_the_logistic_baseline(quality):
    assert _mse(quality, "hamrisk") < _mse(quality, "logistic")
