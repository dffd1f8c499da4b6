"""The training stage: reproducibility, behaviour of the registered model, leakage, the CLI."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import build_feature_frame
from pipeline.config import FeaturesConfig, TrainConfig, load_config
from pipeline.episodes import index_episodes
from pipeline.io import write_tables
from pipeline.train import develop_model, prepare_training_data
from pipeline.validate import validate_cohort

FAST = Path(__file__).resolve().parent.parent / "data" / "train-fast.yaml"
HAMRISK = str(Path(sys.executable).parent / "hamrisk")


@pytest.fixture(scope="module")
def features_config() -> FeaturesConfig:
    return load_config(FeaturesConfig, name="features")


@pytest.fixture
def store(trained_model, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return trained_model


def _risk_model(uri):
    from pipeline import registry

    return registry.load_risk_model(uri).unwrap_python_model().risk_model


def _training_data(trained_model, features_config, config):
    """The trained fixture's cohort, validated, as training data under ``config``."""
    cohort = validate_cohort(trained_model["cohort"], today=trained_model["today"]).cohort
    return prepare_training_data(cohort, features_config, config, trained_model["today"])


def _frame(folder, today, features_config):
    cohort = validate_cohort(folder, today=today).cohort
    episodes = index_episodes(cohort, today, features_config.outcome)
    return cohort, episodes, build_feature_frame(cohort, episodes, features_config)


@pytest.mark.slow
def test_same_data_config_and_seed_give_the_same_model_and_metrics(trained_model, features_config):
    config = load_config(TrainConfig, FAST)
    data = _training_data(trained_model, features_config, config)
    first, second = develop_model(data, config), develop_model(data, config)
    pd.testing.assert_frame_equal(first.metrics, second.metrics)
    np.testing.assert_array_equal(first.test_risk, second.test_risk)


def test_monotone_directions_hold_on_the_registered_model(store):
    # Whatever step of the ladder was registered (literature model, an update, the stack).
    model = _risk_model(store["uri"])
    names = list(model.feature_names_in_)
    frame = pd.DataFrame({name: np.full(6, np.nan) for name in names})
    prep = getattr(model, "prep_", None)
    if prep is not None:  # the stack needs the fitted dtypes
        frame = frame.astype(
            {n: "float64" if k != "categorical" else "string" for n, k in prep.kinds_.items()}
        )
    more_injuries = frame.assign(prior_injuries=np.arange(6, dtype=float))
    assert np.all(np.diff(model.predict_risk(more_injuries)) >= 0)
    more_symmetric = frame.assign(lsi_knee_flexors_last_session=np.linspace(0.6, 1.1, 6))
    assert np.all(np.diff(model.predict_risk(more_symmetric)) <= 0)


def test_later_records_change_neither_features_nor_predictions(store, features_config, tmp_path):
    """Leakage: records dated after every prediction time are added; nothing moves."""
    today = store["today"]
    cohort, episodes, before = _frame(store["cohort"], today, features_config)
    model = _risk_model(store["uri"])
    later = pd.Timestamp(today) + pd.Timedelta(days=1)
    # Strength tests and a new injury the day after the run date: not known at any
    # prediction time. Written as files, so validation sees them like any clinic export.
    tables = {name: frame.copy() for name, frame in cohort.tables().items()}
    athlete = str(tables["athletes"]["athlete_id"].iloc[0])
    extra_tests = pd.DataFrame(
        {
            "test_id": ["LATE1", "LATE2"],
            "athlete_id": [athlete, athlete],
            "test_date": [later, later],
            "test": ["nordic_eccentric", "isokinetic_knee_flexion_concentric"],
            "left": [50.0, 20.0],
            "right": [400.0, 200.0],
            "unit": ["N", "Nm"],
        }
    )
    tables["strength_tests"] = pd.concat([tables["strength_tests"], extra_tests])
    side = tables["injuries"].loc[tables["injuries"]["athlete_id"] == athlete, "side"].iloc[0]
    extra_injury = pd.DataFrame(
        {"injury_id": ["LATE-I"], "athlete_id": [athlete], "injury_date": [later], "side": [side]}
    )
    tables["injuries"] = pd.concat([tables["injuries"], extra_injury])
    folder = tmp_path / "later"
    write_tables(tables, folder)
    # The run date moves forward with the records, as it would on the next nightly run.
    cohort_later = validate_cohort(folder, today=later.date()).cohort
    episodes_later = index_episodes(cohort_later, today, features_config.outcome)
    after = build_feature_frame(cohort_later, episodes_later, features_config)
    pd.testing.assert_frame_equal(before, after.loc[before.index])
    np.testing.assert_array_equal(
        model.predict_risk(before), model.predict_risk(after.loc[before.index])
    )


def test_predictions_do_not_depend_on_row_order_or_file_format(store, features_config, tmp_path):
    today = store["today"]
    cohort, _, reference = _frame(store["cohort"], today, features_config)
    model = _risk_model(store["uri"])
    rng = np.random.default_rng(5)
    shuffled = {
        name: frame.iloc[rng.permutation(len(frame))] for name, frame in cohort.tables().items()
    }
    folder = tmp_path / "shuffled-parquet"
    write_tables(shuffled, folder, fmt="parquet")
    _, _, frame = _frame(folder, today, features_config)
    frame = frame.loc[reference.index]
    pd.testing.assert_frame_equal(reference, frame)
    np.testing.assert_array_equal(model.predict_risk(reference), model.predict_risk(frame))


@pytest.mark.slow
def test_the_cli_trains_registers_and_gates_each_new_version(store, tmp_path):
    env = {"HAMRISK_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    command = [HAMRISK, "train", str(store["cohort"]), "--config", str(FAST)]
    command += ["--today", store["today"].isoformat()]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "registered hamstring-reinjury version 1 as champion" in first.stdout
    # Same data, config and seed: every episode was in version 1's development, so there is
    # nothing fair to compare the two on; its gates pass, so it takes over.
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "version 2 as champion" in second.stdout
    assert "no episode to compare with champion version 1" in second.stdout
    listed = subprocess.run(
        [HAMRISK, "models", "list", "--config", str(FAST)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "champion" in listed.stdout and "Traceback" not in listed.stderr


def test_a_cohort_too_small_to_train_is_a_clear_error(tmp_path):
    from tests.conftest import FIXTURE_TODAY, valid_cohort_tables

    folder = tmp_path / "tiny"
    write_tables(valid_cohort_tables(), folder)
    result = subprocess.run(
        [HAMRISK, "train", str(folder), "--config", str(FAST), "--today", str(FIXTURE_TODAY)],
        capture_output=True, text=True, env={"HAMRISK_HOME": str(tmp_path)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "training needs at least 10 of each" in result.stderr
    assert "Traceback" not in result.stderr


def test_training_reads_no_clock_inside_features(trained_model, features_config):
    """Two runs with the same ``today`` give the same episodes whatever the wall clock."""
    cohort = validate_cohort(trained_model["cohort"], today=trained_model["today"]).cohort
    first = index_episodes(cohort, trained_model["today"], features_config.outcome)
    second = index_episodes(cohort, dt.date(2026, 11, 1), features_config.outcome)
    pd.testing.assert_frame_equal(first, second)


def test_the_champion_is_compared_only_on_episodes_outside_its_development(store, features_config):
    """The fixture's champion was developed on the fixture's cohort: on that cohort there is
    nothing to compare on (NaN, all known episodes left out); once half the athletes are
    new episodes (other injury ids), it is compared on those alone."""
    import dataclasses

    from pipeline.train import compare_with_champion

    config = load_config(TrainConfig, FAST)
    data = _training_data(store, features_config, config)
    risk = np.full(len(data.labels), 0.3)
    comparison, metrics = compare_with_champion(
        "hamstring-reinjury", data, risk, config, literature_risk=risk
    )
    assert np.isnan(comparison.difference)
    assert metrics["reference_development_episodes_left_out"] == np.sum(data.weights > 0)
    athletes = np.unique(data.groups)
    new = np.isin(data.groups, athletes[::2])
    episodes = data.episodes.copy()
    episodes.loc[new, "injury_id"] = episodes.loc[new, "injury_id"].astype(str) + "-later"
    mixed = dataclasses.replace(data, episodes=episodes)
    comparison, metrics = compare_with_champion(
        "hamstring-reinjury", mixed, risk, config, literature_risk=risk
    )
    assert np.isfinite(comparison.difference)
    assert metrics["reference_development_episodes_left_out"] == np.sum(~new & (data.weights > 0))
    outside = int(np.sum(new & (data.weights > 0)))
    assert f"on the {outside} known outcomes outside its development" in comparison.reference


@pytest.mark.slow
def test_refit_on_all_measures_on_held_out_athletes_and_registers_the_fit_on_all(
    trained_model, features_config
):
    config = load_config(TrainConfig, FAST)
    config = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"refit_on_all": True})}
    )
    data = _training_data(trained_model, features_config, config)
    development = develop_model(data, config)
    kept = develop_model(
        data,
        config.model_copy(
            update={"evaluation": config.evaluation.model_copy(update={"refit_on_all": False})}
        ),
    )
    assert development.validation == "held-out" and "refitted on all" in (
        development.validation_reason
    )
    assert development.counts["train_episodes"] == len(data.labels)
    assert 0 < development.counts["test_episodes"] < len(data.labels)
    # The held-out figures are the procedure's on the training athletes, as without refit;
    # the registered model is another fit (on every episode).
    pd.testing.assert_frame_equal(development.metrics, kept.metrics)
    # The timing travels in its lightest form with a model served as registered (a
    # literature or updated one); a trained RiskModel keeps the full fit and compacts it
    # with itself.
    from models.estimators import RiskModel
    from models.incidence import TimingModel

    timing = development.model.timing_
    if isinstance(development.model, RiskModel):
        assert isinstance(timing, TimingModel)
    else:
        assert not isinstance(timing, TimingModel) or timing.booster_ is not None
        assert timing.predict_shape(data.features.iloc[:5]).shape == (5, len(timing.horizons))
    held_out = development.test.features
    assert not np.allclose(
        development.model.predict_risk(held_out), kept.model.predict_risk(held_out)
    )


@pytest.mark.slow
def test_small_cohorts_get_the_bootstrap_optimism_correction(trained_model, features_config):
    config = load_config(TrainConfig, FAST)
    config = config.model_copy(
        update={
            "evaluation": config.evaluation.model_copy(
                update={"optimism_boot": 2, "small_cohort_episodes": 10**6}
            )
        }
    )
    data = _training_data(trained_model, features_config, config)
    development = develop_model(data, config)
    optimism = development.optimism
    assert optimism is not None
    # Fitted on every episode, measured by the corrected performance, and it says so.
    assert development.validation == "optimism"
    assert development.counts["train_episodes"] == len(data.labels)
    assert development.counts["test_episodes"] == 0
    assert "small_cohort_episodes" in development.validation_reason
    shift = optimism.loc["auc", "optimism"]
    assert development.metrics.loc["auc", "estimate"] == pytest.approx(
        optimism.loc["auc", "apparent"] - shift
    )
    assert set(optimism.index) >= {"auc", "brier", "calibration_slope"}
    np.testing.assert_allclose(
        optimism["corrected"], optimism["apparent"] - optimism["optimism"], rtol=1e-12
    )
    assert (optimism["n_boot"] == 2).all()


@pytest.mark.slow
def test_a_small_clinic_gets_a_model_that_splits_and_intervals_that_are_not_empty(
    features_config, tmp_path
):
    # 250 athletes: the configured stumps (min_child_samples 80, 70% bags) could not split
    # here before the leaf size followed the sample size; training returned a constant.
    from scipy.stats import spearmanr

    from pipeline.train import fit_candidate
    from simulator.config import SimulationConfig
    from simulator.simulate import run_simulation

    simulation = load_config(SimulationConfig, name="simulation")
    config = load_config(TrainConfig, name="train")
    stumps = next(c for c in config.model.candidates if c.params.get("num_leaves") == 2)
    cohorts = {}
    for name, athletes, seed in (("train", 250, 5), ("test", 1000, 6)):
        run_simulation(
            simulation, tmp_path / name, athletes=athletes, random_state=seed, fmt="parquet"
        )
        cohort = validate_cohort(tmp_path / name, today=simulation.export_date).cohort
        cohorts[name] = prepare_training_data(
            cohort, features_config, config, simulation.export_date
        )
    model = fit_candidate(stumps, cohorts["train"], config, n_bootstrap=10)
    test = cohorts["test"]
    assessed = model.assess(test.features, contributions=False)
    truth = pd.read_csv(tmp_path / "test.truth.csv")
    true_risk = test.episodes[["injury_id"]].merge(truth, on="injury_id")["true_risk"]
    assert len(np.unique(assessed.risk)) > 50
    # Risks that follow the truth: Spearman's rho three null standard errors above zero.
    rho = spearmanr(assessed.risk, true_risk).statistic
    assert rho > 3 / np.sqrt(len(true_risk) - 1)
    assert (assessed.risk_ci_high - assessed.risk_ci_low > 0).all()
    assert len(model.members_) >= 8


@pytest.mark.slow
def test_the_ladder_tries_the_stack_only_when_the_sample_supports_it(
    trained_model, features_config
):
    from pipeline.config import LiteratureConfig
    from pipeline.train import LADDER_STEPS, fit_ladder

    literature = load_config(LiteratureConfig, name="literature")
    config = load_config(TrainConfig, FAST)
    data = _training_data(trained_model, features_config, config)
    args = (data.features, data.labels, data.weights, data.groups)
    for parameters, considered in ((10**4, False), (1, True)):
        settings = config.model_copy(
            update={"model": config.model.model_copy(update={"stack_parameters": parameters})}
        )
        ladder = fit_ladder(*args, settings, literature)
        table = ladder.table
        assert list(table.index) == list(LADDER_STEPS)
        assert table["kept"].sum() == 1 and table.loc[ladder.step, "kept"]
        assert not table.loc[~table["supported"], "kept"].any()
        stack = table.loc["stack"]
        assert bool(stack["supported"]) == considered
        if considered:
            assert np.isfinite(stack["cv_log_loss"])
            assert bool(stack["kept"]) == (ladder.step == "stack")
            others = table.drop(index="stack")["cv_log_loss"]
            if stack["kept"]:  # kept only for a CV log loss below the chosen update's
                assert stack["cv_log_loss"] < others.max()
        else:
            assert ladder.step != "stack" and ladder.selection is None
        # Never a constant model, never a zero-width interval.
        low, high = ladder.model.predict_interval(data.features)
        assert np.ptp(ladder.model.predict_risk(data.features)) > 0
        assert (np.asarray(high) - np.asarray(low) > 0).all()


def test_a_cohort_whose_literature_features_are_all_missing_is_refused(
    trained_model, features_config
):
    from pipeline.config import LiteratureConfig
    from pipeline.train import TrainingDataError, fit_ladder

    literature = load_config(LiteratureConfig, name="literature")
    config = load_config(TrainConfig, FAST)
    data = _training_data(trained_model, features_config, config)
    blank = data.features.copy()
    for name in {spec.column for spec in literature.effects.values()}:
        blank[name] = blank[name].mask(np.ones(len(blank), dtype=bool))
    with pytest.raises(TrainingDataError, match="same risk for every episode"):
        fit_ladder(blank, data.labels, data.weights, data.groups, config, literature)
