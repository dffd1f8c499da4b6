"""Lookups: unknowns averaged over the training distributions, answers mapped to features."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from models.compact import CompactRiskModel
from pipeline.config import (
    FeaturesConfig,
    ScoreConfig,
    TrainConfig,
    load_config,
)
from pipeline.lookup import (
    LookupInputError,
    athlete_known_features,
    known_features,
    lookup_risk,
    reference_draws,
)
from pipeline.model_cache import RegisteredModel, load_model, store_database

FEATURES = load_config(FeaturesConfig, name="features")
SETTINGS = load_config(ScoreConfig, name="score")
TESTS_DIR = Path(__file__).resolve().parent.parent
LOOKUP = ["lookup", "--prior-injuries", "2", "--lsi", "0.86", "--grade", "2", "--site", "c"]


@pytest.fixture
def model(trained_model, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return load_model(trained_model["uri"])


def _lookup(model, known, **kwargs):
    return lookup_risk(model, known, config=SETTINGS.lookup, bands=SETTINGS.bands, **kwargs)


def test_with_nothing_known_the_risk_is_the_baseline(model):
    result = _lookup(model, {})
    rm, n = model.risk_model, SETTINGS.lookup.samples
    names = list(rm.feature_names_in_)
    # What the lookup estimates with nothing known: the mean risk over independent draws
    # from the training marginals. An independent draw 25 times larger estimates it too;
    # the two may differ by their Monte Carlo errors, 4 standard errors of the difference.
    large = rm.predict_risk(reference_draws(rm.reference_, names, 25 * n, np.random.default_rng(7)))
    tolerance = 4 * large.std() * np.sqrt(1 / n + 1 / (25 * n))
    assert abs(result.risk - large.mean()) < tolerance
    # That mean is the model's baseline up to what the draws leave out (correlations between
    # features; IPCW weights): it reads as "moderate", like a typical athlete, and nothing
    # is named as driving it.
    assert rm.base_rate_ * SETTINGS.bands.low_below < result.risk
    assert result.risk < rm.base_rate_ * SETTINGS.bands.high_from
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
        "import sys; from pipeline.model_cache import load_model; "
        f"m = load_model({trained_model['uri']!r}); "
        "print(m.version, 'mlflow' in sys.modules)"
    )
    env = {**os.environ, "HAMRISK_HOME": str(trained_model["home"])}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [model.version, "False"]


# --- an additive model (boosted stumps), looked up in its compact form -----------------------


@pytest.fixture(scope="module")
def stumps_store(trained_model, tmp_path_factory):
    """The fixture cohort's model as boosted stumps, registered in a store of its own."""
    from pipeline.train import train_model

    settings = yaml.safe_load((TESTS_DIR / "data" / "train-fast.yaml").read_text())
    stumps = {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 2, "min_child_samples": 30}
    settings["model"]["candidates"] = [{"kind": "lightgbm", "params": stumps}]
    root = tmp_path_factory.mktemp("stumps")
    (root / "store").mkdir()
    (root / "train.yaml").write_text(yaml.safe_dump(settings))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(root / "store"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = train_model(
            trained_model["cohort"],
            FEATURES,
            load_config(TrainConfig, root / "train.yaml"),
            today=trained_model["today"],
        )
    return {"home": root / "store", "uri": f"models:/{result.model_name}/{result.version}"}


@pytest.fixture
def stumps(stumps_store, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(stumps_store["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return stumps_store


def test_an_additive_model_is_looked_up_in_compact_form_with_the_same_answers(
    stumps, trained_model
):
    from pipeline import registry

    model = load_model(stumps["uri"])
    assert isinstance(model.risk_model, CompactRiskModel)
    full = registry.load_risk_model(stumps["uri"]).unwrap_python_model().risk_model
    whole = RegisteredModel(full, model.name, model.version)
    athlete, about = athlete_known_features(
        trained_model["cohort"], "A000001", FEATURES, as_of=trained_model["today"]
    )
    answers = [
        {},
        {"lsi": 0.7, "grade": 2, "site": "c", "days_to_return": 12, "phase3_done": "no"},
        {"prior_injuries": 0, "age": 31, "sex": "F", "level": "elite", "peak_sprint": 80},
    ]
    results = []
    for known in [known_features(a, FEATURES) for a in answers] + [athlete]:
        results.append(_lookup(model, known, about=about))
        # The same numbers to the bit, so the printout and the JSON do not change.
        assert results[-1] == _lookup(whole, known, about=about)
    assert any(r.factors for r in results) and any(r.lower_risk for r in results)


def test_the_cache_holds_the_compact_form_and_never_reads_another_format(stumps):
    load_model(stumps["uri"])
    (entry,) = (stumps["home"] / ".cache" / "models").rglob("*.pkl")
    other = entry.with_name("model.1.pkl")  # a file of another format, beside it
    other.write_bytes(b"an entry in another format")
    entry.unlink()
    model = load_model(stumps["uri"])
    assert isinstance(model.risk_model, CompactRiskModel)
    assert entry.is_file()
    with entry.open("rb") as handle:
        assert isinstance(pickle.load(handle), CompactRiskModel)


def test_a_cached_lookup_imports_no_mlflow_lightgbm_sklearn_or_scipy(stumps):
    load_model(stumps["uri"])
    code = (
        "import atexit, sys; "
        "atexit.register(lambda: print(sorted(m for m in "
        "('mlflow', 'lightgbm', 'sklearn', 'scipy') if m in sys.modules))); "
        f"sys.argv = ['hamrisk', *{[*LOOKUP, '--model', stumps['uri'], '--json']!r}]; "
        "from pipeline.cli import app; app()"
    )
    env = {**os.environ, "HAMRISK_HOME": str(stumps["home"])}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '"risk_band"' in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"
