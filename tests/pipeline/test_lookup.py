"""Lookups: unknowns averaged over the training distributions, answers mapped to features."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.config import FeaturesConfig, ScoreConfig, load_config
from pipeline.lookup import (
    LookupInputError,
    athlete_known_features,
    known_features,
    load_lookup_model,
    lookup_risk,
    reference_draws,
    store_database,
)

FEATURES = load_config(FeaturesConfig, name="features")
SETTINGS = load_config(ScoreConfig, name="score")


@pytest.fixture
def model(trained_model, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return load_lookup_model(trained_model["uri"])


def _lookup(model, known, **kwargs):
    return lookup_risk(model, known, config=SETTINGS.lookup, bands=SETTINGS.bands, **kwargs)


def test_with_nothing_known_the_risk_is_the_baseline(model):
    result = _lookup(model, {})
    draws = reference_draws(
        model.risk_model.reference_, list(model.risk_model.feature_names_in_),
        SETTINGS.lookup.samples, np.random.default_rng(SETTINGS.lookup.random_state),
    )  # fmt: skip
    spread = model.risk_model.predict_risk(draws).std()
    # Monte Carlo error: 4 standard errors of a mean of `samples` draws. Systematic part,
    # 0.04 (an eighth of a one-in-three baseline): the draws ignore correlations between
    # features, and the reference counts episodes unweighted while the base rate is
    # IPCW-weighted.
    tolerance = 0.04 + 4 * spread / np.sqrt(SETTINGS.lookup.samples)
    assert abs(result.risk - model.risk_model.base_rate_) < tolerance
    assert result.band == "moderate"
    assert result.factors == [] and result.lower_risk == []
    assert result.risk_low <= result.risk <= result.risk_high


def test_same_lookup_same_answer(model):
    known = known_features({"lsi": 0.8, "grade": 2}, FEATURES)
    assert _lookup(model, known) == _lookup(model, known)


def test_more_previous_injuries_never_lower_the_risk(model):
    # prior_injuries carries a +1 monotone constraint; the draws for the rest are the same.
    risks = [_lookup(model, {"prior_injuries": float(n)}).risk for n in (1, 2, 3, 5)]
    assert risks == sorted(risks)


def test_a_stronger_involved_limb_never_raises_the_risk(model):
    risks = [_lookup(model, known_features({"lsi": v}, FEATURES)).risk for v in (0.6, 0.8, 1.0)]
    assert risks == sorted(risks, reverse=True)


def test_factors_are_known_features_only_and_suggestions_lower_the_risk(model):
    answers = {"lsi": 0.7, "grade": 2, "site": "c", "days_to_return": 12, "phase3_done": "no"}
    known = known_features(answers, FEATURES)
    result = _lookup(model, known)
    assert {f.feature for f in result.factors} <= set(known)
    assert all(s.risk < result.risk for s in result.lower_risk)
    assert result.known == len(set(known) & set(model.risk_model.feature_names_in_))


def test_answers_map_onto_features_and_what_follows_from_them():
    known = known_features(
        {"grade": 2, "site": "c", "days_to_return": 17, "prior_injuries": 0, "ake": "yes"},
        FEATURES,
    )
    assert known["bamic_grade"] == 2 and known["intratendinous"] is True
    # Pollock et al. 2022: a 2c injury usually needs 34 days.
    assert known["return_to_sport_time_vs_grade"] == pytest.approx(17 / 34)
    assert known["prior_injuries_same_side"] == 0 and np.isnan(
        known["days_since_last_prior_injury"]
    )
    assert known["ake_discomfort"] is True
    assert known_features({}, FEATURES) == {}


@pytest.mark.parametrize(
    ("answers", "match"),
    [
        ({"sex": "X"}, "--sex: expected F or M"),
        ({"site": "d"}, "--site: expected a, b or c"),
        ({"grade": 7}, "--grade: expected a value from 0 to 4"),
        ({"lsi": -1}, "--lsi: expected a value"),
        ({"phase3_done": "perhaps"}, "--phase3-done: expected yes or no"),
        ({"lsi": 0.9, "lsi_test": "squat"}, "--lsi-test: expected one of"),
    ],
)
def test_answers_out_of_range_name_their_flag(answers, match):
    with pytest.raises(LookupInputError, match=match):
        known_features(answers, FEATURES)


def test_an_athlete_from_the_cohort_is_fully_known(model, trained_model):
    known, about = athlete_known_features(
        trained_model["cohort"], "A000001", FEATURES, as_of=trained_model["today"]
    )
    result = _lookup(model, known, about=about)
    assert result.unknown == 0 and "A000001" in result.about
    with pytest.raises(LookupInputError, match="no treated injury"):
        athlete_known_features(
            trained_model["cohort"], "A999999", FEATURES, as_of=dt.date(2026, 11, 1)
        )


def test_store_database_is_the_registry_store(trained_model, monkeypatch):
    from pipeline import registry

    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert registry.tracking_uri() == "sqlite:///" + store_database().as_posix()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert store_database() is None


def test_a_cached_lookup_does_not_import_mlflow(model, trained_model):
    code = (
        "import sys; from pipeline.lookup import load_lookup_model; "
        f"m = load_lookup_model({trained_model['uri']!r}); "
        "print(m.version, 'mlflow' in sys.modules)"
    )
    env = {**os.environ, "HAMRISK_HOME": str(trained_model["home"])}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [model.version, "False"]
