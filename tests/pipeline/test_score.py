"""Scoring stage and its edge: properties of the predictions, chunking, the predictions file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import FeaturesConfig, RiskBandsConfig, ScoreConfig, load_config
from pipeline.episodes import index_episodes
from pipeline.errors import HamriskError
from pipeline.model_cache import load_model
from pipeline.predictions import PredictionsFileError, as_csv_text, read_predictions
from pipeline.score import OutputError, athlete_chunks, run_scoring, score_episodes
from pipeline.validate import validate_cohort

FEATURES = load_config(FeaturesConfig, name="features")
SETTINGS = load_config(ScoreConfig, name="score")


@pytest.fixture(scope="module")
def scored(trained_model, tmp_path_factory):
    """The fixture cohort scored in-process once, with its model and episodes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(trained_model["home"]))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        model = load_model(trained_model["uri"])
    today = trained_model["today"]
    cohort = validate_cohort(trained_model["cohort"], today=today).cohort
    predictions = score_episodes(
        cohort,
        model,
        as_of=today,
        bands=SETTINGS.bands,
        scored_at=pd.Timestamp("2026-11-01T03:00:00Z"),
    )
    episodes = index_episodes(cohort, today, FEATURES.outcome)
    return {"model": model, "cohort": cohort, "predictions": predictions, "episodes": episodes}


def test_one_row_per_index_episode_with_risk_inside_its_interval(scored):
    predictions, episodes = scored["predictions"], scored["episodes"]
    assert predictions["injury_id"].tolist() == episodes["injury_id"].astype(str).tolist()
    risk = predictions["risk"].to_numpy()
    assert np.all((risk >= 0) & (risk <= 1))
    assert np.all(predictions["risk_ci_low"] <= risk) and np.all(
        risk <= predictions["risk_ci_high"]
    )
    assert (predictions["model_version"] == scored["model"].version).all()


def test_provisional_exactly_when_no_return_to_sport_by_as_of(scored, trained_model):
    predictions, cohort = scored["predictions"], scored["cohort"]
    returned = cohort.return_to_run.set_index(cohort.return_to_run["injury_id"].astype(str))[
        "return_to_sport_date"
    ]
    rts = returned.reindex(predictions["injury_id"]).to_numpy()
    as_of = pd.Timestamp(trained_model["today"])
    expected = pd.isna(rts) | (rts > as_of.to_datetime64())
    assert predictions["provisional"].to_numpy().tolist() == expected.tolist()
    assert predictions["provisional"].any(), "the fixture cohort has athletes not back yet"
    # A provisional episode is predicted as of the run's date.
    provisional = predictions[predictions["provisional"]]
    assert (provisional["prediction_time"] == as_of).all()


def test_bands_follow_the_base_rate(scored):
    predictions = scored["predictions"]
    base = scored["model"].risk_model.base_rate_
    risk = predictions["risk"]
    assert (predictions.loc[risk < 0.5 * base, "risk_band"] == "low").all()
    assert (predictions.loc[risk >= 1.5 * base, "risk_band"] == "high").all()
    middle = (risk >= 0.5 * base) & (risk < 1.5 * base)
    assert (predictions.loc[middle, "risk_band"] == "moderate").all()


@pytest.mark.parametrize(
    ("risk", "band"),
    [(0.0, "low"), (0.149, "low"), (0.15, "moderate"), (0.449, "moderate"), (0.45, "high")],
)
def test_band_edges_at_half_and_one_and_a_half_times_the_baseline(risk, band):
    assert RiskBandsConfig().band(np.array([risk]), 0.3)[0] == band


def test_top_factors_are_the_largest_contributions_in_words(scored):
    predictions = scored["predictions"]
    for text in predictions["top_factors"]:
        parts = text.split("; ")
        assert 1 <= len(parts) <= 3
        assert all(p.endswith(("(raises risk)", "(lowers risk)")) for p in parts)
    # The first factor of each row is the feature with the largest |contribution|.
    model = scored["model"].risk_model
    from features import build_feature_frame
    from features.catalog import FEATURES_BY_NAME

    episodes = scored["episodes"].head(20)
    features = build_feature_frame(scored["cohort"], episodes, FEATURES)
    features = features[list(model.feature_names_in_)]
    contributions = model.contributions(features)
    for i, name in enumerate(contributions.abs().idxmax(axis=1)):
        value, row = features.iloc[i][name], features.iloc[i].to_dict()
        words = FEATURES_BY_NAME[name].phrase(value, row)
        assert predictions["top_factors"].iloc[i].startswith(words)


def test_chunks_never_split_an_athlete_and_stay_near_their_size(scored):
    cohort, size = scored["cohort"], 40
    chunks = athlete_chunks(cohort, size)
    flat = np.concatenate(chunks)
    assert len(flat) == len(set(flat)), "an athlete appears in two chunks"
    per_athlete = scored["episodes"]["athlete_id"].astype(str).value_counts()
    assert set(flat) == set(per_athlete.index)
    largest = per_athlete.max()
    for chunk in chunks:
        assert per_athlete[list(chunk)].sum() <= size + largest - 1


def _run(trained_model, out, **kwargs):
    settings = kwargs.pop("settings", SETTINGS)
    return run_scoring(
        trained_model["cohort"],
        out,
        model=kwargs.pop("model"),
        config=settings,
        as_of=trained_model["today"],
        today=trained_model["today"],
        **kwargs,
    )


def test_chunk_size_does_not_change_the_predictions(scored, trained_model, tmp_path):
    small = SETTINGS.model_copy(update={"chunk_episodes": 50})
    seen = []
    _run(trained_model, tmp_path / "a.parquet", model=scored["model"], settings=small,
         progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    _run(trained_model, tmp_path / "b.parquet", model=scored["model"])
    a, b = read_predictions(tmp_path / "a.parquet"), read_predictions(tmp_path / "b.parquet")
    columns = [c for c in a.columns if c != "scored_at"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    assert len(seen) > 1 and seen[-1][0] == seen[-1][1] == len(a)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_row_order_of_the_files_does_not_change_the_predictions(scored, trained_model, tmp_path):
    # Sorted exports are cut into chunks by slicing, others by one sort: both must give
    # every athlete's whole record to one chunk.
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for path in Path(trained_model["cohort"]).glob("*.csv"):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.sample(frac=1.0, random_state=3).to_csv(shuffled / path.name, index=False)
    small = SETTINGS.model_copy(update={"chunk_episodes": 50})
    _run(trained_model, tmp_path / "sorted.parquet", model=scored["model"], settings=small)
    _run(
        {**trained_model, "cohort": shuffled},
        tmp_path / "shuffled.parquet",
        model=scored["model"],
        settings=small,
    )
    a = read_predictions(tmp_path / "sorted.parquet").set_index("injury_id").sort_index()
    b = read_predictions(tmp_path / "shuffled.parquet").set_index("injury_id").sort_index()
    columns = [c for c in a.columns if c != "scored_at"]
    pd.testing.assert_frame_equal(a[columns], b[columns])


def test_csv_round_trip_keeps_every_digit(scored, trained_model, tmp_path):
    out = tmp_path / "p.csv"
    _run(trained_model, out, model=scored["model"])
    read = read_predictions(out)
    expected = scored["predictions"]
    np.testing.assert_array_equal(read["risk"].to_numpy(), expected["risk"].to_numpy())
    assert read["top_factors"].tolist() == expected["top_factors"].tolist()
    assert (out.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: f.drop(columns=["risk_band"]), r"missing column\(s\) risk_band"),
        (lambda f: f.assign(risk=f["risk"] + 2), r"row 1, column risk: must be a number in"),
        (
            lambda f: f.assign(provisional="maybe"),
            "row 1, column provisional: must be True or False, got 'maybe'",
        ),
        (
            lambda f: f.assign(risk_ci_low=f["risk_ci_high"]),
            r"row 1, breaks the predictions contract: risk_ci_low <= risk <= risk_ci_high",
        ),
    ],
)
def test_a_damaged_predictions_file_is_a_clear_error(scored, tmp_path, edit, match):
    path = tmp_path / "p.csv"
    good = scored["predictions"].head(5)
    edit(as_csv_text(good)).to_csv(path, index=False)
    with pytest.raises(PredictionsFileError, match=match):
        read_predictions(path)


def test_only_new_refuses_a_file_of_another_model(scored, trained_model, tmp_path):
    out = tmp_path / "p.csv"
    _run(trained_model, out, model=scored["model"])
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    frame.assign(model_name="another-model").to_csv(out, index=False)
    with pytest.raises(OutputError, match="another model .another-model."):
        _run(trained_model, out, model=scored["model"], only_new=True)


@pytest.mark.parametrize("name", ["p.txt", "p", "p.xlsx"])
def test_output_must_be_csv_or_parquet(scored, trained_model, tmp_path, name):
    with pytest.raises(OutputError, match="must end in .csv or .parquet"):
        _run(trained_model, tmp_path / name, model=scored["model"])


def test_unknown_version_lists_the_versions_that_exist(trained_model, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(HamriskError, match=r"no such model version.*1 \(champion\)"):
        load_model("models:/hamstring-reinjury/99")


def test_as_of_before_an_injury_leaves_it_out(scored, trained_model):
    early = dt.date(2024, 1, 1)
    predictions = score_episodes(
        scored["cohort"], scored["model"], as_of=early,
        bands=SETTINGS.bands, scored_at=pd.Timestamp("2026-11-01T03:00:00Z"),
    )  # fmt: skip
    injuries = scored["cohort"].injuries.set_index("injury_id")["injury_date"]
    dates = injuries.reindex(predictions["injury_id"]).to_numpy()
    assert len(predictions) < len(scored["predictions"])
    assert (dates <= np.datetime64(early)).all()
    assert (predictions["prediction_time"] <= pd.Timestamp(early)).all()


def test_a_cohort_without_episodes_scores_to_an_empty_file(scored, trained_model, tmp_path):
    empty = dt.date(1990, 1, 1)
    out = tmp_path / "p.parquet"
    run_scoring(
        trained_model["cohort"], out, model=scored["model"], config=SETTINGS, as_of=empty,
        today=trained_model["today"],
    )  # fmt: skip
    assert read_predictions(out).empty
    assert Path(f"{out}.lock").exists()


def test_csv_cells_are_quoted_only_when_they_must_be(scored, tmp_path):
    from pipeline.predictions import csv_text

    predictions = scored["predictions"].head(3)
    plain = csv_text(predictions, header=True).decode().splitlines()
    assert plain[0] == ",".join(predictions.columns)
    assert '"' not in "".join(plain)
    renamed = predictions.assign(model_name='clinic, "north"')
    path = tmp_path / "quoted.csv"
    path.write_bytes(csv_text(renamed, header=True))
    assert pd.read_csv(path)["model_name"].tolist() == ['clinic, "north"'] * 3
