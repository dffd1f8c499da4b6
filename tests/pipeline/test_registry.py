"""The MLflow edge on a throw-away SQLite store: logging, registry, promotion gates, faults."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from features.definition import FeatureDefinition
from pipeline import registry
from pipeline.cli import app
from pipeline.config import CONFIG_DIR, FeaturesConfig, GatesConfig
from pipeline.errors import HamriskError
from pipeline.predictions import CURVE_COLUMNS

MODEL = "hamstring-reinjury"
EXPERIMENT = "hamstring-reinjury-test"
# Identifiers of the kind clinic data carries; none may reach the tracking store.
SECRET_IDS = ["INJ-7Q3X-0001", "INJ-7Q3X-0002", "INJ-7Q3X-0003", "INJ-7Q3X-0004"]
GOOD = {
    "auc": 0.71,
    "brier": 0.120,
    "log_loss": 0.390,
    "calibration_slope": 0.97,
    "calibration_intercept": 0.02,
    "ece": 0.015,
    "oe_ratio": 1.01,
    "auc_ci_low": 0.66,
    "auc_ci_high": 0.76,
    "calibration_slope_ci_low": 0.87,
    "calibration_slope_ci_high": 1.07,
    "calibration_intercept_ci_low": -0.08,
    "calibration_intercept_ci_high": 0.12,
}
# Version 2 misses the slope gate (overfitted: its slope's interval 0.62-0.78 lies below 0.8).
OVERFITTED = {
    **GOOD, "auc": 0.74, "brier": 0.118, "calibration_slope": 0.70,
    "calibration_slope_ci_low": 0.62, "calibration_slope_ci_high": 0.78,
}  # fmt: skip


class StandInRiskModel:
    """A fitted risk model's interface: logistic in two features, a fixed-width interval."""

    def __init__(self, weights: tuple[float, float], intercept: float) -> None:
        self.weights = np.asarray(weights, dtype=float)
        self.intercept = intercept

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        z = self.intercept + X[["prior_injuries", "strength_lsi"]].to_numpy(float) @ self.weights
        # A missing strength test counts as symmetric (LSI 1.0) in this stand-in.
        z = np.where(np.isnan(z), self.intercept + self.weights[0], z)
        return 1.0 / (1.0 + np.exp(-z))

    def predict_interval(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        risk = self.predict_risk(X)
        return np.clip(risk - 0.05, 0, 1), np.clip(risk + 0.05, 0, 1)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[["prior_injuries", "strength_lsi"]] * self.weights


# What registration carries of how the features were built (the stand-ins read their own).
DEFINITION = FeatureDefinition.of(FeaturesConfig(), ["prior_injuries"], "0.0.0")


def feature_frame(n: int, seed: int) -> pd.DataFrame:
    """A synthetic feature frame indexed by injury id, with missing values and a text column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "prior_injuries": rng.integers(0, 4, n).astype(float),
            "strength_lsi": rng.uniform(0.6, 1.1, n),
            "grade": rng.choice(["1", "2", "3"], n),
        },
        index=pd.Index([f"INJ-{i:05d}" for i in range(n)], name="injury_id"),
    )
    frame.loc[frame.index[::5], "strength_lsi"] = np.nan
    return frame


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store in a temporary HAMRISK_HOME, for this module only."""
    folder = tmp_path_factory.mktemp("hamrisk-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(folder))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield folder


@pytest.fixture(scope="module")
def cohort_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    pd.DataFrame({"injury_id": SECRET_IDS, "athlete_id": ["A1", "A1", "A2", "A3"]}).to_csv(
        folder / "injuries.csv", index=False
    )
    pd.DataFrame({"athlete_id": ["A1", "A2", "A3"], "note": ["a\nb", "c", "d"]}).to_parquet(
        folder / "athletes.parquet", index=False
    )
    (folder / "README.txt").write_text("not a table")
    return folder


@pytest.fixture(scope="module")
def logged(home: Path, cohort_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two training runs registered as versions 1 and 2; logged from an unrelated CWD."""
    cwd = tmp_path_factory.mktemp("cwd")
    figure = Figure()
    figure.add_subplot().plot([0, 1], [0, 1])
    models = [StandInRiskModel((0.4, -2.0), 0.5), StandInRiskModel((0.5, -2.5), 0.8)]
    # The example's index holds identifiers; the logged example must not.
    example = feature_frame(4, seed=1).set_axis(pd.Index(SECRET_IDS, name="injury_id"))
    run_ids, versions = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        for risk_model, metrics in zip(models, (GOOD, OVERFITTED), strict=True):
            run_id = registry.log_training_run(
                experiment=EXPERIMENT,
                params={"model": {"kind": "stand-in", "learning_rate": 0.05}, "random_state": 7},
                metrics=metrics,
                config_files=[CONFIG_DIR / "train.yaml"],
                fingerprint=registry.data_fingerprint(cohort_folder),
                feature_names=list(example.columns),
                figures={"calibration": figure},
                risk_model=risk_model,
                feature_definition=DEFINITION,
                input_example=example,
                tags={"data_source": "synthetic"},
            )
            run_ids.append(run_id)
            versions.append(registry.register(run_id, MODEL))
    return {"run_ids": run_ids, "versions": versions, "models": models, "cwd": cwd}


@pytest.fixture
def client(home: Path) -> MlflowClient:
    uri = registry.tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# --- store ---------------------------------------------------------------------------------


def test_tracking_uri_is_sqlite_in_home_unless_overridden(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HAMRISK_HOME", raising=False)
    assert registry.tracking_uri() == f"sqlite:///{registry.PROJECT_DIR.as_posix()}/mlruns.db"
    monkeypatch.setenv("HAMRISK_HOME", str(tmp_path))
    assert registry.tracking_uri() == f"sqlite:///{tmp_path.resolve().as_posix()}/mlruns.db"
    assert registry.artifact_root(registry.tracking_uri()) == tmp_path.resolve() / "mlartifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert registry.tracking_uri() == "http://127.0.0.1:5000"
    assert registry.artifact_root("http://127.0.0.1:5000") is None


def test_connect_leaves_environment_as_it_found_it(home):
    before = dict(os.environ)
    with registry.connect() as connected:
        assert connected.tracking_uri == registry.tracking_uri()
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert dict(os.environ) == before


# --- a logged run --------------------------------------------------------------------------


def test_run_logs_params_metrics_configs_fingerprint_features_and_figures(logged, client):
    run = client.get_run(logged["run_ids"][0])
    assert run.data.params["model.learning_rate"] == "0.05"
    assert run.data.params["random_state"] == "7"
    assert run.data.metrics == pytest.approx(GOOD)
    assert run.data.tags["data_source"] == "synthetic"
    root = Path(client.download_artifacts(run.info.run_id, ""))
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {
        "config/train.yaml",
        "data/fingerprint.json",
        "features/feature_names.json",
        "figures/calibration.png",
    } <= files
    features = json.loads((root / "features/feature_names.json").read_text())
    assert features == {"features": ["prior_injuries", "strength_lsi", "grade"]}
    assert (root / "figures/calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_artifacts_go_beside_the_database_not_into_the_working_directory(logged, home, client):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.artifact_location.startswith((home.resolve() / "mlartifacts").as_uri())
    assert list(logged["cwd"].iterdir()) == []


def test_model_carries_signature_code_and_an_id_free_input_example(logged, home):
    info = registry.load_risk_model(f"models:/{MODEL}/1").metadata
    assert info.signature.inputs.input_names() == ["prior_injuries", "strength_lsi", "grade"]
    assert not any(spec.required for spec in info.signature.inputs.inputs)
    # The one-year risk with its interval, then the curve over the configured horizons.
    assert info.signature.outputs.input_names() == [
        "risk",
        "risk_ci_low",
        "risk_ci_high",
        *CURVE_COLUMNS,
    ]
    model_dirs = list((home / "mlartifacts").rglob("MLmodel"))
    assert len(model_dirs) == 2
    for packaged in model_dirs:
        assert (packaged.parent / "code" / "pipeline" / "registry.py").exists()
        example = json.loads((packaged.parent / "input_example.json").read_text())
        assert example["columns"] == ["prior_injuries", "strength_lsi", "grade"]
        assert example.get("index", [0, 1, 2, 3]) == [0, 1, 2, 3]


def test_no_identifier_from_the_data_reaches_the_store(logged, home):
    """Scan the database and every artifact for the cohort's injury ids."""
    needles = [ident.encode() for ident in SECRET_IDS]
    # Positive control: a param value the runs did log is found by the same scan, so an
    # identifier logged as a param or tag would be found too.
    control = b"stand-in"
    control_seen = False
    for path in home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            control_seen = control_seen or control in content
            assert not [n for n in needles if n in content], path
    assert control_seen


# --- data fingerprint ----------------------------------------------------------------------


def test_fingerprint_counts_rows_and_hashes_each_table_file(cohort_folder):
    fingerprint = registry.data_fingerprint(cohort_folder)
    assert set(fingerprint) == {"injuries.csv", "athletes.parquet"}
    assert fingerprint["injuries.csv"]["rows"] == 4
    assert fingerprint["athletes.parquet"]["rows"] == 3
    digest = hashlib.sha256((cohort_folder / "injuries.csv").read_bytes()).hexdigest()
    assert fingerprint["injuries.csv"]["sha256"] == digest
    assert not any(ident in json.dumps(fingerprint) for ident in SECRET_IDS)


def test_fingerprint_counts_quoted_line_breaks_once_and_sees_one_changed_byte(tmp_path):
    table = tmp_path / "athletes.csv"
    table.write_text('athlete_id,note\nA1,"two\nlines"\nA2,x\n', encoding="utf-8")
    first = registry.data_fingerprint(tmp_path)["athletes.csv"]
    assert first["rows"] == 2
    table.write_text('athlete_id,note\nA1,"two\nlines"\nA2,y\n', encoding="utf-8")
    second = registry.data_fingerprint(tmp_path)["athletes.csv"]
    assert second["rows"] == 2
    assert second["sha256"] != first["sha256"]


# --- promotion logic -----------------------------------------------------------------------


# The decision table is models/promotion.py's (tests/models/test_promotion.py); the
# registry's decide_promotion is a thin call to it.


@pytest.mark.parametrize(
    ("new", "comparison", "alias", "reason"),
    [
        pytest.param(GOOD, None, "champion", "every calibration gate passes", id="first"),
        pytest.param(OVERFITTED, None, "challenger", "calibration_slope", id="slope-fails"),
        pytest.param(
            GOOD,
            registry.Comparison("champion version 1", True, 0.02, 0.01, 0.03),
            "challenger",
            "shown worse",
            id="worse-than-champion",
        ),  # fmt: skip
        pytest.param(
            GOOD,
            registry.Comparison("champion version 1", True, 0.0, -0.01, 0.01),
            "champion",
            "every calibration gate passes",
            id="tie-is-not-worse",
        ),  # fmt: skip
    ],
)
def test_decide_promotion(new, comparison, alias, reason):
    decision = registry.decide_promotion(new, comparison, GatesConfig())
    assert decision.alias == alias
    assert any(re.search(reason, text) for text in decision.reasons)
    assert len(decision.gates) == 3 + (comparison is not None)


def test_gates_come_from_config_not_code():
    strict = GatesConfig(auc_min=0.8)
    assert registry.decide_promotion(GOOD, None, GatesConfig()).alias == "champion"
    assert registry.decide_promotion(GOOD, None, strict).alias == "challenger"


# --- registry ------------------------------------------------------------------------------


def test_each_registration_is_a_new_version(logged):
    assert logged["versions"] == [1, 2]


def test_automatic_promotion_moves_champion_only_for_a_better_passing_model(logged, client):
    registry.set_alias(MODEL, 1, "champion")
    assert registry.champion_version(MODEL) == 1
    # Version 2 scores better but fails the slope gate: it becomes challenger.
    better = registry.Comparison("champion version 1", True, -0.01, -0.02, -0.001)
    decision = registry.decide_promotion(OVERFITTED, better, GatesConfig())
    assert decision.alias == "challenger"
    registry.set_alias(MODEL, 2, decision.alias)
    assert registry.champion_version(MODEL) == 1
    listed = registry.list_versions(MODEL).set_index("version")
    assert listed.loc[1, "aliases"] == "champion"
    assert listed.loc[2, "aliases"] == "challenger"
    # Had it passed, it would take over and lose the challenger alias.
    fixed = {**GOOD, "auc": 0.74, "brier": 0.118}
    decision = registry.decide_promotion(fixed, better, GatesConfig())
    assert decision.alias == "champion"
    registry.set_alias(MODEL, 2, decision.alias)
    assert registry.champion_version(MODEL) == 2
    listed = registry.list_versions(MODEL).set_index("version")
    assert listed.loc[2, "aliases"] == "champion"
    assert listed.loc[1, "aliases"] == ""


def test_list_versions_shows_key_metrics_newest_first(logged):
    registry.set_alias(MODEL, 1, "champion")
    listed = registry.list_versions(MODEL)
    assert list(listed.columns) == [
        "version",
        "kind",
        "aliases",
        "created",
        "run_id",
        "auc",
        "brier",
        "calibration_slope",
        "calibration_intercept",
    ]
    assert listed["version"].tolist() == [2, 1]
    assert listed["kind"].tolist() == ["trained", "trained"]
    assert listed["run_id"].tolist() == logged["run_ids"][::-1]
    assert listed.loc[1, "auc"] == pytest.approx(GOOD["auc"])
    assert listed.loc[0, "calibration_slope"] == pytest.approx(OVERFITTED["calibration_slope"])
    assert registry.list_versions("no-such-model").empty


def test_champion_loads_and_predicts_exactly_like_the_fitted_model(logged):
    registry.set_alias(MODEL, 2, "champion")
    loaded = registry.load_risk_model(f"models:/{MODEL}@champion")
    frame = feature_frame(50, seed=3)
    predicted = loaded.predict(frame)
    expected = logged["models"][1]
    assert list(predicted.columns) == ["risk", "risk_ci_low", "risk_ci_high", *CURVE_COLUMNS]
    assert predicted.drop(columns="curve_shape").dtypes.eq("float64").all()
    np.testing.assert_array_equal(predicted["risk"].to_numpy(), expected.predict_risk(frame))
    assert ((predicted["risk_ci_low"] <= predicted["risk"]) & (predicted["risk"] <= 1)).all()
    assert predicted.index.equals(frame.index)
    # The wrapped object is reachable for contributions.
    unwrapped = loaded.unwrap_python_model().risk_model
    assert unwrapped.contributions(frame).shape == (50, 2)
    # The feature definition travels with the model.
    assert loaded.unwrap_python_model().feature_definition == DEFINITION


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"models:/{MODEL}/9", r"no such model version; versions of 'hamstring-reinjury': 2.*1"),
        (f"models:/{MODEL}@gold", r"versions of 'hamstring-reinjury': 2.*, 1"),
        ("models:/hamstring-reinjury-typo@champion", "registered models: hamstring-reinjury"),
    ],
)
def test_missing_model_uri_lists_what_exists(logged, uri, message):
    with pytest.raises(HamriskError, match=message):
        registry.load_risk_model(uri)


def test_promote_by_hand_moves_champion_and_shows_failed_gates(logged):
    registry.set_alias(MODEL, 1, "champion")
    registry.set_alias(MODEL, 2, "challenger")
    decision = registry.promote(MODEL, 2, GatesConfig())
    assert decision.alias == "champion"
    assert registry.champion_version(MODEL) == 2
    slope = next(g for g in decision.gates if g.name == "calibration_slope")
    assert slope.value == pytest.approx(0.70)
    assert not slope.passed
    assert any("although calibration_slope" in reason for reason in decision.reasons)
    assert slope.verdict == "fail"
    with pytest.raises(HamriskError, match=r"models:/hamstring-reinjury/5: no such model"):
        registry.promote(MODEL, 5, GatesConfig())


def test_champion_version_of_unknown_model_is_none(home):
    assert registry.champion_version("never-registered") is None


def test_cli_models_list_and_promote(logged):
    runner = CliRunner()
    registry.set_alias(MODEL, 2, "champion")
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "champion" in listed.output
    assert "0.710" in listed.output  # version 1's held-out AUC
    promoted = runner.invoke(app, ["models", "promote", "1", "--name", MODEL])
    assert promoted.exit_code == 0, promoted.output
    assert "calibration_slope" in promoted.output
    assert "pass" in promoted.output
    assert "version 1 is now champion" in promoted.output
    assert registry.champion_version(MODEL) == 1
    missing = runner.invoke(app, ["models", "promote", "9"])
    assert missing.exit_code == 2
    assert "versions of 'hamstring-reinjury'" in missing.output
    assert "Traceback" not in missing.output


def test_cli_reports_a_typo_in_the_registry_config(tmp_path, home):
    config = tmp_path / "train.yaml"
    config.write_text("registry:\n  gates:\n    auc_minimum: 0.6\n")
    result = CliRunner().invoke(app, ["models", "list", "--config", str(config)])
    assert result.exit_code == 2
    assert "registry.gates.auc_minimum: unknown key" in result.output


# --- faults --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_tracking_server_fails_within_seconds(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    before = dict(os.environ)
    started = time.monotonic()
    with pytest.raises(HamriskError, match="unreachable"):
        registry.list_versions(MODEL)
    assert time.monotonic() - started < 10
    assert dict(os.environ) == before
