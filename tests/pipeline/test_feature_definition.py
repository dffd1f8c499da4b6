"""A model version carries its feature definition: scoring, lookups and audits follow it."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import pipeline.config
from features import build_feature_frame
from features.catalog import FEATURES_BY_NAME
from features.definition import FeatureDefinition
from pipeline.cli import app
from pipeline.config import CONFIG_DIR, FeaturesConfig, load_config
from pipeline.episodes import index_episodes
from pipeline.model_cache import FeatureDefinitionError, load_model
from pipeline.validate import validate_cohort

COMPARED = ["injury_id", "risk", "risk_ci_low", "risk_ci_high", "risk_band", "top_factors"]


@pytest.fixture
def home(trained_model, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return trained_model["home"]


def _changed_configs(tmp_path):
    """A copy of configs/ whose features.yaml differs from training's in every setting."""
    folder = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, folder)
    settings = yaml.safe_load((folder / "features.yaml").read_text())
    settings["outcome"]["window_days"] = 90
    settings["prior_injury_window_days"] = 30
    settings["strength_trend_min_tests"] = 5
    settings["typical_return_days"]["by_grade"] = {0: 4, 1: 9, 2: 11, 3: 16, 4: 36}
    (folder / "features.yaml").write_text(yaml.safe_dump(settings))
    return folder


def _score(trained_model, out):
    args = ["score", str(trained_model["cohort"]), "--out", str(out), "--as-of", "2026-11-01"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code in (0, 1), done.output
    return pd.read_csv(out)[COMPARED]


def test_a_features_yaml_changed_after_training_leaves_the_champion_unchanged(
    trained_model, home, tmp_path, monkeypatch
):
    before = _score(trained_model, tmp_path / "before.csv")
    changed = _changed_configs(tmp_path)
    monkeypatch.setattr(pipeline.config, "CONFIG_DIR", changed)
    after = _score(trained_model, tmp_path / "after.csv")
    pd.testing.assert_frame_equal(before, after, check_exact=True)

    # The change matters: features built from the changed file differ from training's.
    model = load_model(trained_model["uri"])
    edited = load_config(FeaturesConfig, name="features")
    assert edited != model.definition.config
    cohort = validate_cohort(trained_model["cohort"], today=trained_model["today"]).cohort
    episodes = index_episodes(cohort, trained_model["today"], model.definition.config.outcome)
    trained_on = model.feature_frame(cohort, episodes)
    rebuilt = build_feature_frame(cohort, episodes, edited, columns=model.definition.names)
    assert not trained_on.equals(rebuilt)


def test_the_definition_records_the_training_settings_and_columns(trained_model, home):
    model = load_model(trained_model["uri"])
    definition = model.definition
    assert definition.config == load_config(FeaturesConfig, name="features")
    assert definition.names == list(model.risk_model.feature_names_in_)
    assert definition.differences() == []
    assert FeatureDefinition.from_dict(definition.as_dict()) == definition
    # The same definition from MLflow (a fresh load) and from the cache.
    assert load_model(trained_model["uri"]).definition == definition


def test_a_feature_computed_differently_since_training_is_refused(trained_model, home, monkeypatch):
    model = load_model(trained_model["uri"])
    spec = FEATURES_BY_NAME["prior_injuries_recent"]
    monkeypatch.setitem(FEATURES_BY_NAME, spec.name, dataclasses.replace(spec, version=2))
    message = r"version 1 in the model, 2 in the code"
    with pytest.raises(FeatureDefinitionError, match=rf"prior_injuries_recent: {message}"):
        load_model(trained_model["uri"])
    cohort = validate_cohort(trained_model["cohort"], today=trained_model["today"]).cohort
    episodes = index_episodes(cohort, trained_model["today"], model.definition.config.outcome)
    with pytest.raises(FeatureDefinitionError, match=rf"version {model.version} .*{message}"):
        model.feature_frame(cohort, episodes)


def test_a_feature_the_code_no_longer_has_is_named(trained_model, home, monkeypatch):
    model = load_model(trained_model["uri"])
    monkeypatch.delitem(FEATURES_BY_NAME, "slr_deficit_deg")
    with pytest.raises(FeatureDefinitionError, match="slr_deficit_deg: the code has no such"):
        model.check_features()


def test_a_cohort_that_cannot_supply_a_feature_is_refused(trained_model, home):
    model = load_model(trained_model["uri"])
    cohort = validate_cohort(trained_model["cohort"], today=trained_model["today"]).cohort
    episodes = index_episodes(cohort, trained_model["today"], model.definition.config.outcome)
    lacking = dataclasses.replace(cohort, injuries=cohort.injuries.drop(columns="mechanism"))
    with pytest.raises(FeatureDefinitionError, match="cannot supply .*'mechanism'"):
        model.feature_frame(lacking, episodes)


def test_features_do_not_import_pipeline():
    code = (
        "import sys, features, features.definition; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pipeline'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
