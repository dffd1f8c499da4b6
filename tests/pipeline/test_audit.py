"""Outcome audits: known-truth verdicts, censoring, multiplicity, privacy and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.audit import (
    CALIBRATED,
    RECALIBRATE,
    TOO_FEW,
    audit_outcomes,
    breakdown_verdicts,
    read_predictions,
)
from pipeline.cli import app
from pipeline.config import (
    AuditConfig,
    FeaturesConfig,
    GatesConfig,
    ToleranceConfig,
    TrainConfig,
    load_config,
)
from pipeline.episodes import development_fingerprint, index_episodes
from pipeline.validate import validate_cohort
from simulator.config import SimulationConfig
from simulator.simulate import simulate_cohort, write_simulated

# 4,000 athletes give about 5,500 index episodes and 4,100 known outcomes (40% recurred):
# SE(ln O/E) = sqrt((1 - 0.4) / (4100 * 0.4)) = 0.019, so the 95% interval of O/E is about
# +/-0.04, narrow enough that scaling every risk by 1.5 (O/E near 0.7) or flattening the
# slope to 1/0.3 is far outside it, and wide enough that the true risks are not rejected
# by the small bias left by weighting for informative loss to follow-up.
ATHLETES = 4000
SEED = 7
MODEL = "hamstring-reinjury"
FEATURES = load_config(FeaturesConfig, name="features")
CONFIG = load_config(AuditConfig, name="audit")
# The audit weighs censoring exactly as training does: the censoring section of train.yaml.
CENSORING = load_config(TrainConfig, name="train").censoring


@pytest.fixture(scope="module")
def known_truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A simulated cohort and predictions equal to its true first-year risks."""
    settings = load_config(SimulationConfig, name="simulation")
    sim = simulate_cohort(settings, ATHLETES, SEED)
    folder = tmp_path_factory.mktemp("known-truth") / "cohort"
    write_simulated(sim, folder)
    as_of = settings.export_date
    cohort = validate_cohort(folder, today=as_of).cohort
    episodes = index_episodes(cohort, as_of, FEATURES.outcome)
    truth = sim.truth[["injury_id", "true_risk"]].astype({"injury_id": "string"})
    matched = episodes.merge(truth, on="injury_id", how="inner", validate="one_to_one")
    predictions = pd.DataFrame(
        {
            "injury_id": matched["injury_id"],
            "athlete_id": matched["athlete_id"],
            "clinic_id": matched["clinic_id"],
            "prediction_time": matched["prediction_time"],
            "provisional": matched["provisional"].to_numpy(dtype=bool),
            "risk": matched["true_risk"].to_numpy(dtype=np.float64),
            "model_name": MODEL,
            "model_version": "1",
            "scored_at": pd.Timestamp("2026-06-30", tz="UTC"),
        }
    )
    return {
        "cohort": cohort,
        "folder": folder,
        "as_of": as_of,
        "predictions": predictions,
        "status": matched["status"].to_numpy(dtype=str),
    }


def _audit(known_truth: dict, risk: np.ndarray, development=None, **overrides):
    config = CONFIG.model_copy(update=overrides) if overrides else CONFIG
    return audit_outcomes(
        known_truth["cohort"],
        known_truth["predictions"].assign(risk=risk),
        as_of=known_truth["as_of"],
        config=config,
        features_config=FEATURES,
        by=(),
        censoring=CENSORING,
        development=development,
    )


def _version_cell(audit) -> dict:
    return audit.document["breakdowns"][1]["cells"][0]


@pytest.mark.slow
def test_true_probabilities_are_calibrated(known_truth):
    risk = known_truth["predictions"]["risk"].to_numpy()
    audit = _audit(known_truth, risk)
    cell = _version_cell(audit)
    oe = cell["metrics"]["observed_expected"]
    slope = cell["metrics"]["calibration_slope"]
    assert oe["low"] <= 1 <= oe["high"]
    assert slope["low"] <= 1 <= slope["high"]
    assert audit.verdict == CALIBRATED and audit.exit_code == 0
    assert cell["reasons"] == []


@pytest.mark.slow
def test_development_episodes_are_shown_apart_and_not_judged(known_truth):
    risk = known_truth["predictions"]["risk"].to_numpy()
    predictions = known_truth["predictions"]
    # The first half of the athletes were the model's development data.
    athletes = np.sort(predictions["athlete_id"].astype(str).unique())
    fitted = predictions["athlete_id"].astype(str).isin(athletes[: len(athletes) // 2])
    episodes = index_episodes(known_truth["cohort"], known_truth["as_of"], FEATURES.outcome)
    fitted_episodes = episodes.loc[
        episodes["injury_id"].isin(predictions.loc[fitted.to_numpy(), "injury_id"])
    ]
    audit = _audit(known_truth, risk, development={"1": development_fingerprint(fitted_episodes)})
    found = audit.document["in_sample"]["by_version"]["1"]
    assert found["fingerprint_recorded"] is True
    assert found["development_episodes"] == int(fitted.sum())
    assert found["new_episodes"] == len(predictions) - int(fitted.sum())
    # Every verdict counts the new episodes only; the development ones are shown apart.
    assert _version_cell(audit)["n"] == found["new_episodes"]
    samples = audit.document["breakdowns"][-1]
    assert samples["by"] == "sample"
    by_group = {c["group"]: c for c in samples["cells"]}
    assert by_group["development"]["n"] == found["development_episodes"]
    assert by_group["development"]["verdict"] == "shown, not judged"
    # All of it development data: nothing new to judge, and the report says so.
    every = _audit(known_truth, risk, development={"1": development_fingerprint(episodes)})
    assert every.verdict == "too few outcomes yet"
    assert every.document["in_sample"]["by_version"]["1"]["new_episodes"] == 0


@pytest.mark.slow
def test_without_a_fingerprint_the_report_says_episodes_cannot_be_told_apart(known_truth):
    audit = _audit(known_truth, known_truth["predictions"]["risk"].to_numpy())
    found = audit.document["in_sample"]["by_version"]["1"]
    assert found["fingerprint_recorded"] is False
    assert "cannot be told apart" in found["note"]
    assert _version_cell(audit)["n"] == len(known_truth["predictions"])


@pytest.mark.slow
def test_risks_scaled_by_one_and_a_half_need_recalibration_because_oe_below_one(known_truth):
    risk = np.clip(known_truth["predictions"]["risk"].to_numpy() * 1.5, 0, 0.99)
    audit = _audit(known_truth, risk)
    cell = _version_cell(audit)
    assert audit.verdict == RECALIBRATE and audit.exit_code == 1
    assert cell["metrics"]["observed_expected"]["high"] < 1
    assert any(r.startswith("O/E") and "risks too high" in r for r in cell["reasons"])


@pytest.mark.slow
def test_risks_flattened_toward_the_mean_need_recalibration_because_slope_above_one(
    known_truth,
):
    p = known_truth["predictions"]["risk"].to_numpy()
    audit = _audit(known_truth, p.mean() + 0.3 * (p - p.mean()))
    cell = _version_cell(audit)
    assert audit.verdict == RECALIBRATE
    assert cell["metrics"]["calibration_slope"]["low"] > 1
    assert any(r.startswith("slope") and "too moderate" in r for r in cell["reasons"])
    # Flattening keeps the mean, so the ratio is not the reason.
    assert not any(r.startswith("O/E") for r in cell["reasons"])


def test_pending_and_censored_episodes_are_never_non_recurrences(known_truth):
    status = known_truth["status"]
    unknown = np.isin(status, ["pending", "censored"])
    assert unknown.sum() > 500  # the property below is tested on many such episodes
    risk = known_truth["predictions"]["risk"].to_numpy()
    base = _audit(known_truth, risk, n_boot=20)
    # Any risk on an episode whose outcome is unknown must leave every metric unchanged;
    # were they counted as non-recurrences, 0.99 on them would halve O/E.
    moved = _audit(known_truth, np.where(unknown, 0.99, risk), n_boot=20)
    before, after = _version_cell(base), _version_cell(moved)
    for metric, found in before["metrics"].items():
        assert after["metrics"][metric]["estimate"] == pytest.approx(found["estimate"], rel=1e-9)
    counts = base.document["outcomes"]
    for name in ("recurred", "no_recurrence", "pending", "censored"):
        assert counts[name] == int(np.sum(status == name))
    assert counts["evaluable"] == counts["recurred"] + counts["no_recurrence"]


def test_small_cells_are_suppressed(known_truth):
    predictions = known_truth["predictions"]
    # Keep 4 episodes of clinic C01 and all of C02: C01 falls under --min-cell 10.
    c01 = np.flatnonzero((predictions["clinic_id"] == "C01").to_numpy())[:4]
    c02 = np.flatnonzero((predictions["clinic_id"] == "C02").to_numpy())
    subset = predictions.iloc[np.concatenate([c01, c02])].reset_index(drop=True)
    audit = audit_outcomes(
        known_truth["cohort"],
        subset,
        as_of=known_truth["as_of"],
        config=CONFIG.model_copy(update={"n_boot": 20}),
        features_config=FEATURES,
        by=("clinic_id",),
        min_cell=10,
    )
    clinics = {c["group"]: c for c in audit.document["breakdowns"][3]["cells"]}
    assert clinics["C01"]["suppressed"] is True
    assert clinics["C01"]["n"] == "suppressed (< 10)"
    assert not {"counts", "metrics", "expected_risk"} & set(clinics["C01"])
    assert clinics["C02"]["suppressed"] is False and clinics["C02"]["n"] == len(c02)
    for breakdown in audit.document["breakdowns"]:
        for cell in breakdown["cells"]:
            assert cell["suppressed"] or cell["n"] >= 10


def _simulated_rows(rng: np.random.Generator, clinics: int, per_clinic: int) -> pd.DataFrame:
    n = clinics * per_clinic
    risk = rng.beta(2, 4, n)
    label = (rng.random(n) < risk).astype(np.float64)
    return pd.DataFrame(
        {
            "clinic_id": np.repeat([f"C{i:02d}" for i in range(clinics)], per_clinic),
            "athlete_id": np.arange(n).astype(str),
            "risk": risk,
            "label": label,
            "weight": np.ones(n),
            "status": np.where(label == 1, "recurred", "no_recurrence"),
        }
    )


@pytest.mark.slow
def test_a_calibrated_model_is_not_flagged_by_chance_in_one_of_many_clinics():
    # 10 audits of a perfectly calibrated model over 20 clinics of 150 episodes. With the
    # Bonferroni adjustment the chance that any clinic is flagged is at most 5% per audit,
    # so 3 or more flagged audits out of 10 has probability below 1.2% (binomial); without
    # it each audit makes 40 tests at 5% and flags some clinic about 87% of the time, so
    # fewer than 5 flagged audits has probability below 0.1%: the check can fail.
    rng = np.random.default_rng(20261126)
    audits = [_simulated_rows(rng, clinics=20, per_clinic=150) for _ in range(10)]
    # Tolerances shrunk to 1 +/- 0.001 make "wholly outside the tolerance" "excludes 1", so
    # the check measures the multiplicity adjustment itself (the configured tolerances only
    # make a chance flag rarer still).
    adjusted = CONFIG.model_copy(update={"n_boot": 100, "oe_ci_width": 1.0})
    unadjusted = adjusted.model_copy(update={"multiplicity": "none"})
    near_one = {"tolerance": (0.999, 1.001), "decisive": (0.01, 100.0), "source": "test"}
    gates = GatesConfig(
        calibration_slope=ToleranceConfig(**near_one),
        observed_expected=ToleranceConfig(**near_one),
    )

    def flagged(config: AuditConfig) -> int:
        count = 0
        for rows in audits:
            cells = breakdown_verdicts("clinic_id", rows, "clinic_id", config, 10, gates)["cells"]
            count += any(c["verdict"] == RECALIBRATE for c in cells)
        return count

    assert flagged(adjusted) <= 2
    assert flagged(unadjusted) >= 5


def test_too_few_outcomes_says_how_many_more_are_needed(known_truth):
    subset = known_truth["predictions"].iloc[:60]
    audit = audit_outcomes(
        known_truth["cohort"],
        subset,
        as_of=known_truth["as_of"],
        config=CONFIG.model_copy(update={"n_boot": 20}),
        features_config=FEATURES,
        by=(),
    )
    cell = _version_cell(audit)
    assert audit.verdict == TOO_FEW and audit.exit_code == 3
    known = cell["counts"]["evaluable"]
    assert cell["additional_outcomes_needed"] == cell["outcomes_needed"] - known > 0
    assert f"{cell['additional_outcomes_needed']} more" in cell["reasons"][0]


def _provisional_and_final(known_truth: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One returned episode's prediction at its return to sport, and a provisional one made
    nine days after it (the return was entered late), scored earlier, with another risk."""
    predictions = known_truth["predictions"]
    final = predictions.loc[~predictions["provisional"]].iloc[[0]]
    provisional = final.assign(
        provisional=True,
        prediction_time=final["prediction_time"] + pd.Timedelta(days=9),
        scored_at=final["scored_at"] - pd.Timedelta(days=30),
        risk=0.9,
    )
    return provisional, final


def test_an_episode_scored_provisionally_and_at_return_is_judged_on_the_latter(known_truth):
    from pipeline.audit import _match_outcomes

    provisional, final = _provisional_and_final(known_truth)
    as_of = pd.Timestamp(known_truth["as_of"])
    rows = _match_outcomes(known_truth["cohort"], pd.concat([final, provisional]), as_of, FEATURES)
    assert len(rows) == 1
    assert rows["risk"].iloc[0] == final["risk"].iloc[0] and not rows["provisional"].iloc[0]


def test_a_provisional_prediction_is_judged_from_the_return_and_rebuilt_as_provisional(
    known_truth,
):
    from pipeline.audit import _match_outcomes, _rebuild_features

    provisional, final = _provisional_and_final(known_truth)
    as_of = pd.Timestamp(known_truth["as_of"])
    cohort = known_truth["cohort"]
    alone = _match_outcomes(cohort, provisional, as_of, FEATURES)
    returned = _match_outcomes(cohort, final, as_of, FEATURES)
    # The outcome is the episode's, on the window from the return to sport on record.
    outcome = ["status", "label", "followed_days", "event_days"]
    pd.testing.assert_frame_equal(alone[outcome], returned[outcome])
    # The features are those the model saw: no return to sport yet, so no time to it.
    seen = _rebuild_features(cohort, alone, FEATURES)
    rebuilt = _rebuild_features(cohort, returned, FEATURES)
    assert np.isnan(seen["days_injury_to_return_to_sport"].iloc[0])
    assert rebuilt["days_injury_to_return_to_sport"].iloc[0] >= 0


# --- the predictions file and the CLI -------------------------------------------------------


def _write_predictions(known_truth: dict, path: Path, rows: int = 200, **changes) -> Path:
    frame = known_truth["predictions"].iloc[:rows].copy()
    for column, value in changes.items():
        if value is None:
            frame = frame.drop(columns=column)
        else:
            frame[column] = value
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"risk": None}, r"missing column\(s\) risk"),
        ({"model_name": "other-model"}, r"predictions of model 'other-model'"),
        ({"risk": 1.5}, r"row 1, column risk: must be a number in \[0, 1\], got '1.5'"),
        ({"prediction_time": "soon"}, r"row 1, column prediction_time: must be a date"),
        ({"model_version": "latest"}, r"column model_version: must be a positive whole"),
    ],
)
def test_unusable_predictions_exit_2_with_a_clear_message(known_truth, tmp_path, changes, message):
    path = _write_predictions(known_truth, tmp_path / "predictions.csv", **changes)
    result = CliRunner().invoke(
        app,
        ["audit", str(known_truth["folder"]), "--predictions", str(path), "--out", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert re.search(message, result.stderr), result.stderr


def test_a_version_missing_from_the_store_is_audited_and_says_drift_was_not_checked(
    known_truth, tmp_path, monkeypatch
):
    monkeypatch.setenv("HAMRISK_HOME", str(tmp_path / "empty-store"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = _write_predictions(known_truth, tmp_path / "predictions.csv")
    result = CliRunner().invoke(
        app,
        ["audit", str(known_truth["folder"]), "--predictions", str(path), "--out", str(tmp_path)],
    )
    # The verdict's own exit code (this small cohort has too few outcomes: 3), not an error.
    assert result.exit_code != 2 and "Traceback" not in result.output, result.output
    assert re.search(r"drift v1\s+not checked: no training reference found", result.output)


def test_an_unreadable_cohort_exits_2(known_truth, tmp_path):
    path = _write_predictions(known_truth, tmp_path / "predictions.parquet")
    result = CliRunner().invoke(
        app,
        ["audit", str(tmp_path / "nowhere"), "--predictions", str(path), "--out", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and "Traceback" not in result.output


def test_predictions_read_the_same_from_csv_and_parquet(known_truth, tmp_path):
    csv = read_predictions([_write_predictions(known_truth, tmp_path / "p.csv")], MODEL)
    parquet = read_predictions([_write_predictions(known_truth, tmp_path / "p.parquet")], MODEL)
    columns = ["injury_id", "athlete_id", "clinic_id", "prediction_time", "model_version"]
    pd.testing.assert_frame_equal(csv[columns], parquet[columns], check_dtype=False)
    np.testing.assert_allclose(csv["risk"], parquet["risk"])


# --- end to end on the registered model: privacy, drift, MLflow ------------------------------


@pytest.fixture(scope="module")
def audited(trained_model, tmp_path_factory) -> dict[str, object]:
    """`hamrisk audit` through the CLI on predictions of the session's registered model."""
    from features import build_feature_frame
    from pipeline import registry

    home, today = trained_model["home"], trained_model["today"]
    out = tmp_path_factory.mktemp("audit")
    # Another cohort (another seed, index injuries from 2023), not the development one: an
    # audit of the model's own episodes would judge nothing (they are shown apart).
    settings = load_config(SimulationConfig, name="simulation")
    settings = SimulationConfig.model_validate(
        {**settings.model_dump(), "cohort_start": dt.date(2023, 1, 1)}
    )
    cohort_dir = out / "later"
    write_simulated(simulate_cohort(settings, 1500, SEED + 100), cohort_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        # Predictions as scoring made them a year and a half earlier: scored as of then.
        scored_on = pd.Timestamp(today) - pd.Timedelta(days=540)
        cohort = validate_cohort(cohort_dir, today=today).cohort
        episodes = index_episodes(cohort, scored_on, FEATURES.outcome)
        episodes = episodes.loc[~episodes["provisional"].to_numpy(dtype=bool)]
        features = build_feature_frame(cohort, episodes, FEATURES)
        model = registry.load_risk_model(trained_model["uri"])
        risk = model.predict(registry.as_model_input(features))["risk"].to_numpy()
        predictions = pd.DataFrame(
            {
                "injury_id": episodes["injury_id"].to_numpy(),
                "athlete_id": episodes["athlete_id"].to_numpy(),
                "clinic_id": episodes["clinic_id"].to_numpy(),
                "prediction_time": episodes["prediction_time"].dt.strftime("%Y-%m-%d"),
                "provisional": False,
                "risk": risk,
                "model_name": MODEL,
                "model_version": trained_model["version"],
                "scored_at": scored_on.isoformat(),
            }
        )
        path = out / "predictions.csv"
        predictions.to_csv(path, index=False)
        result = CliRunner().invoke(
            app,
            [
                "audit",
                str(cohort_dir),
                "--predictions",
                str(path),
                "--out",
                str(out / "report"),
                "--min-cell",
                "10",
                "--today",
                str(today),
                "--log-to-mlflow",
            ],
        )
        with registry.connect() as client:
            runs = client.search_runs(
                [client.get_experiment_by_name(CONFIG.experiment_name).experiment_id]
            )
            version = client.get_model_version(MODEL, str(trained_model["version"]))
    return {
        "result": result,
        "out": out / "report",
        "cohort": cohort,
        "runs": runs,
        "version_tags": version.tags,
        "version": str(trained_model["version"]),
    }


@pytest.mark.slow
def test_the_cli_writes_both_reports_and_exits_with_the_verdict(audited):
    result = audited["result"]
    assert result.exit_code in (0, 1, 3), result.output
    document = json.loads((audited["out"] / "report.json").read_text())
    assert document["verdict"]["exit_code"] == result.exit_code
    assert f"report          {audited['out'] / 'report.html'}" in result.output
    html = (audited["out"] / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    # Self-contained: no external stylesheet, script, image or font.
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert re.findall(r"(?:src|href)=\"(?!#)[^\"]*\"|url\((?!#)", html) == []
    # Only the SVG namespaces themselves name a web address (identifiers, never fetched).
    assert set(re.findall(r"https?://[^\"' )]+", html)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }


@pytest.mark.slow
def test_no_athlete_or_injury_id_appears_in_the_outputs(audited):
    cohort = audited["cohort"]
    ids = set(cohort.athletes["athlete_id"].astype(str)) | set(
        cohort.injuries["injury_id"].astype(str)
    )
    assert len(ids) > 600
    for name in ("report.html", "report.json"):
        text = (audited["out"] / name).read_text()
        leaked = sorted(i for i in ids if i in text)
        assert leaked == [], f"{name} holds {leaked[:5]}"


@pytest.mark.slow
def test_drift_names_the_most_shifted_features(audited):
    document = json.loads((audited["out"] / "report.json").read_text())
    drift = document["drift"][audited["version"]]
    assert drift["available"] is True
    psi = [row["psi"] for row in drift["features"] if row["psi"] is not None]
    assert psi == sorted(psi, reverse=True) and len(psi) > 20
    expected = [r["feature"] for r in drift["features"] if (r["psi"] or 0) > 0.10][:3]
    assert drift["most_shifted"] == expected


@pytest.mark.slow
def test_the_audit_is_logged_to_mlflow_and_linked_to_the_version(audited):
    runs = [r for r in audited["runs"] if r.data.tags.get("hamrisk.stage") == "audit"]
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags[f"hamrisk.model_version.{audited['version']}"] == "audited"
    assert "overall.observed_expected" in run.data.metrics
    assert audited["version_tags"]["last_audit_run"] == run.info.run_id
