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
# The date answered lookups speak for (their prediction time).
AS_OF = dt.date(2026, 11, 1)
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
    assert result.risk_ci_low <= result.risk <= result.risk_ci_high


def test_same_lookup_same_answer(model):
    known = known_features({"lsi": 0.8, "grade": 2}, model, as_of=AS_OF)
    assert _lookup(model, known) == _lookup(model, known)


def test_more_previous_injuries_never_lower_the_risk(model):
    # prior_injuries carries a +1 monotone constraint; the draws for the rest are the same.
    risks = [_lookup(model, {"prior_injuries": float(n)}).risk for n in (1, 2, 3, 5)]
    assert risks == sorted(risks)


def test_a_stronger_involved_limb_never_raises_the_risk(model):
    answers = [known_features({"lsi": v}, model, as_of=AS_OF) for v in (0.6, 0.8, 1.0)]
    risks = [_lookup(model, known).risk for known in answers]
    assert risks == sorted(risks, reverse=True)


def test_factors_are_known_features_only_and_suggestions_lower_the_risk(model):
    answers = {"lsi": 0.7, "grade": 2, "site": "c", "days_to_return": 12, "phase3_done": "no"}
    known = known_features(answers, model, as_of=AS_OF)
    result = _lookup(model, known)
    assert {f.feature for f in result.factors} <= set(known)
    assert all(s.risk < result.risk for s in result.lower_risk)
    assert result.known == len(set(known) & set(model.risk_model.feature_names_in_))


def test_answers_map_onto_features_and_what_follows_from_them(model):
    known = known_features(
        {"grade": 2, "site": "c", "days_to_return": 17, "prior_injuries": 0, "ake": "yes"},
        model,
        as_of=AS_OF,
    )
    assert known["bamic_grade"] == 2 and known["intratendinous"] is True
    # Pollock et al. 2022: a 2c injury usually needs 34 days.
    assert known["return_to_sport_time_vs_grade"] == pytest.approx(17 / 34)
    assert known["prior_injuries_same_side"] == 0 and np.isnan(
        known["days_since_last_prior_injury"]
    )
    assert known["ake_discomfort"] is True
    assert known_features({}, model, as_of=AS_OF) == {}
    # Grade 1 has one usual time whatever the site (Ekstrand et al. 2012: 17 days) ...
    assert known_features({"grade": 1, "days_to_return": 17}, model, as_of=AS_OF)[
        "return_to_sport_time_vs_grade"
    ] == pytest.approx(1.0)
    # ... grade 2 has two (Pollock et al. 2022: 34 days for 2c), so without a site it is not known.
    assert "return_to_sport_time_vs_grade" not in known_features(
        {"grade": 2, "days_to_return": 17}, model, as_of=AS_OF
    )
    # A grade 0 injury has no site (data contract), so it is known not to be intratendinous.
    grade0 = known_features({"grade": 0}, model, as_of=AS_OF)
    assert grade0["intratendinous"] is False and np.isnan(grade0["bamic_site"])


@pytest.mark.parametrize(
    ("answers", "match"),
    [
        # What the data contract rejects, with its rule id.
        ({"sex": "X"}, r"--sex X: .*rule athletes\.sex\.enum"),
        ({"site": "d", "grade": 2}, r"--site d: .*rule injuries\.bamic_site\.enum"),
        ({"grade": 7}, r"--grade 7: .*rule injuries\.bamic_grade\.range"),
        ({"grade": 0, "site": "c"}, r"--grade 0 --site c: .*rule injuries\.bamic_site\.grade"),
        ({"site": "b"}, r"--site b: .*rule injuries\.bamic_site\.grade"),
        ({"level": "pro"}, r"--level pro: .*rule athletes\.level\.enum"),
        ({"age": 5}, r"--age 5: .*rule athletes\.birth_year\.range"),
        ({"peak_sprint": 130}, r"--peak-sprint 130: .*rule return_to_run\.peak_sprint_pct"),
        ({"pain": 11}, r"--pain 11: .*rule return_to_run\.pain_at_return\.range"),
        ({"pain": 2.5}, r"--pain 2\.5: .*rule return_to_run\.pain_at_return\.integer"),
        ({"slr": 95}, r"--slr 95: .*rule return_to_run\.slr_deficit_deg\.range"),
        # What the flag itself does not allow.
        ({"lsi": -1}, "--lsi: expected a value"),
        ({"phase3_done": "perhaps"}, "--phase3-done: expected yes or no"),
        ({"lsi": 0.9, "lsi_test": "squat"}, "--lsi-test: expected one of"),
        ({"age": 30.5}, "--age: expected a whole number"),
        ({"days_to_return": -3}, "--days-to-return: expected a value"),
    ],
)
def test_answers_out_of_range_name_their_flag(model, answers, match):
    with pytest.raises(LookupInputError, match=match):
        known_features(answers, model, as_of=AS_OF)


def test_an_athlete_from_the_cohort_is_fully_known(model, trained_model):
    known, about = athlete_known_features(
        trained_model["cohort"], "A000001", model, as_of=trained_model["today"]
    )
    result = _lookup(model, known, about=about)
    assert result.unknown == 0 and "A000001" in result.about
    with pytest.raises(LookupInputError, match="no treated injury"):
        athlete_known_features(
            trained_model["cohort"], "A999999", model, as_of=dt.date(2026, 11, 1)
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
    settings["model"]["ladder"] = False  # the stack whatever the cohort's size
    # A timing without trees (the configured linear effects at most), which a compact model
    # carries as numpy; one with trees is the fitted model and loads LightGBM.
    configured = load_config(TrainConfig, name="train").incidence.linear_features
    settings["incidence"] = {
        **settings["incidence"],
        "max_rounds": 0,
        "linear_features": list(configured),
    }
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
    whole = RegisteredModel(full, model.name, model.version, model.definition)
    athlete, about = athlete_known_features(
        trained_model["cohort"], "A000001", model, as_of=trained_model["today"]
    )
    answers = [
        {},
        {"lsi": 0.7, "grade": 2, "site": "c", "days_to_return": 12, "phase3_done": "no"},
        {"prior_injuries": 0, "age": 31, "sex": "F", "level": "elite", "peak_sprint": 80},
    ]
    results = []
    for known in [known_features(a, model, as_of=AS_OF) for a in answers] + [athlete]:
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
        cached = pickle.load(handle)
    assert isinstance(cached["risk_model"], CompactRiskModel)
    # The cache entry carries the version's feature definition, as the registered model does.
    assert cached["feature_definition"] == model.definition.as_dict()


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


# --- answers and a cohort's records go through the same validation and feature functions ------


def _answers_of(known: dict) -> dict:
    """The flags a clinician would give for a cohort athlete whose features are ``known``."""
    answers = {
        "age": int(known["age_years"]),
        "sex": known["sex"],
        "level": known["level"],
        "discipline": known["discipline"],
        "prior_injuries": int(known["prior_injuries"]),
        "grade": int(known["bamic_grade"]),
        "site": known["bamic_site"],
        "days_to_return": int(known["days_injury_to_return_to_sport"]),
        "phase3_done": "yes" if known["phase3_done"] else "no",
        "ake": "yes" if known["ake_discomfort"] else "no",
        "peak_sprint": known["peak_sprint_pct"],
        "pain": int(known["pain_at_return"]),
        "slr": known["slr_deficit_deg"],
        "lsi": known["lsi_nordic"],
    }
    return answers


def _fully_recorded(model, trained_model, prior_injuries: int) -> str:
    """An athlete whose latest episode has every value the flags can give."""
    from pipeline.episodes import index_episodes
    from pipeline.validate import validate_cohort

    today = trained_model["today"]
    cohort = validate_cohort(trained_model["cohort"], today=today).cohort
    episodes = index_episodes(cohort, today, model.definition.config.outcome)
    latest = episodes.drop_duplicates("athlete_id", keep="last").reset_index(drop=True)
    frame = model.feature_frame(cohort, latest).reset_index(drop=True)
    needed = [
        "age_years", "sex", "level", "discipline", "bamic_grade", "bamic_site", "pain_at_return",
        "days_injury_to_return_to_sport", "peak_sprint_pct", "slr_deficit_deg", "lsi_nordic",
        "ake_discomfort",
    ]  # fmt: skip
    usable = frame[needed].notna().all(axis=1) & (frame["prior_injuries"] == prior_injuries)
    assert usable.any(), "the fixture cohort has no such athlete"
    return str(latest.loc[usable.idxmax(), "athlete_id"])


@pytest.mark.parametrize("prior_injuries", [0, 1])
def test_a_lookup_from_answers_gives_the_risk_of_the_same_athlete_from_the_cohort(
    model, trained_model, prior_injuries
):
    athlete = _fully_recorded(model, trained_model, prior_injuries)
    from_cohort, _ = athlete_known_features(
        trained_model["cohort"], athlete, model, as_of=trained_model["today"]
    )
    answers = _answers_of(from_cohort)
    from_answers = known_features(answers, model, as_of=AS_OF)
    # Every feature the answers determine, and only those: the rest is averaged over.
    assert len(from_answers) >= len(answers) + 2
    same = {name: from_cohort[name] for name in from_answers}
    assert from_answers == same
    assert _lookup(model, from_answers) == _lookup(model, same)
    if prior_injuries == 0:
        assert from_answers["prior_injuries_recent"] == 0.0
    else:
        # Which side and when the earlier injury was is not answered: not known.
        assert "prior_injuries_same_side" not in from_answers
