"""A real ``mlflow server`` on loopback: log, register and load a model over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from features.definition import FeatureDefinition
from pipeline import registry
from pipeline.config import FeaturesConfig, GatesConfig
from pipeline.errors import HamriskError

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.xdist_group("mlflow-server")]

MODEL = "hamstring-reinjury"
STARTUP_SECONDS = 60


class ConstantRiskModel:
    """Stand-in fitted model: risk rises with prior injuries, a fixed-width interval."""

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        # A missing count reads as one prior injury: a fitted model never returns NaN.
        return 0.1 + 0.05 * np.nan_to_num(X["prior_injuries"].to_numpy(float), nan=1.0)

    def predict_interval(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        risk = self.predict_risk(X)
        return risk - 0.02, risk + 0.02

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[["prior_injuries"]] * 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend and served artifacts in a temporary folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (folder / "server.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{(folder / 'mlflow.db').as_posix()}",
        # Artifacts are proxied by the server (mlflow-artifacts:/), stored under this folder.
        "--serve-artifacts",
        "--artifacts-destination",
        (folder / "artifacts").as_uri(),
    ]
    # The background job runner (prompt optimisation, trace archival) is not needed here
    # and would compete for the machine's cores.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # A session of its own, so the finalizer stops the server and its uvicorn worker together.
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(uri, process, folder / "server.log")
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()


def _wait_for_health(uri: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited early:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    pytest.fail(f"mlflow server not healthy after {STARTUP_SECONDS}s:\n{log.read_text()}")


def test_log_register_promote_and_load_over_http(server, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    # The embedded store must stay untouched: point it somewhere we can check.
    monkeypatch.setenv("HAMRISK_HOME", str(tmp_path / "home"))
    example = pd.DataFrame({"prior_injuries": [0.0, 1.0, 3.0]})
    run_id = registry.log_training_run(
        experiment="hamstring-reinjury-http",
        params={"random_state": 1},
        metrics={"auc": 0.7, "brier": 0.12, "calibration_slope": 1.0, "calibration_intercept": 0},
        config_files=[],
        fingerprint={"injuries.csv": {"rows": 3, "sha256": "0" * 64}},
        feature_names=["prior_injuries"],
        figures={},
        risk_model=ConstantRiskModel(),
        feature_definition=FeatureDefinition.of(FeaturesConfig(), ["prior_injuries"], "0.0.0"),
        input_example=example,
        tags={"data_source": "synthetic"},
    )
    version = registry.register(run_id, MODEL)
    decision = registry.decide_promotion(
        {"auc": 0.7, "brier": 0.12, "calibration_slope": 1.0, "calibration_intercept": 0},
        None,
        GatesConfig(),
    )
    registry.set_alias(MODEL, version, decision.alias)
    assert registry.champion_version(MODEL) == version
    assert registry.list_versions(MODEL)["aliases"].tolist() == ["champion"]

    loaded = registry.load_risk_model(f"models:/{MODEL}@champion")
    frame = pd.DataFrame({"prior_injuries": [2.0, 0.0, np.nan]})
    np.testing.assert_array_equal(
        loaded.predict(frame)["risk"].to_numpy(), ConstantRiskModel().predict_risk(frame)
    )
    # Artifacts went through the server, not to a local folder of this process.
    experiment = MlflowClient(server).get_experiment_by_name("hamstring-reinjury-http")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert not (tmp_path / "home").exists()

    with pytest.raises(HamriskError, match=r"versions of 'hamstring-reinjury': 1"):
        registry.load_risk_model(f"models:/{MODEL}/2")


class _FirstVersion:
    """What ``registry.register_first_version`` logs, built from the stand-in model."""

    def __init__(self) -> None:
        model = ConstantRiskModel()
        model.feature_names_in_ = ["prior_injuries"]
        self.risk_model = model
        self.definition = FeatureDefinition.of(FeaturesConfig(), ["prior_injuries"], "0.0.0")
        self.input_example = pd.DataFrame({"prior_injuries": [0.0, 1.0]})
        self.params = {"baseline_risk": 0.33}
        self.tags = {"hamrisk.kind": "literature"}


def test_first_version_over_http_keeps_the_lowest_when_another_process_won(
    server, monkeypatch, tmp_path
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("HAMRISK_HOME", str(tmp_path / "home"))
    name = "first-version-race"

    def build_while_another_registers() -> _FirstVersion:
        # Another process registers its first version while this one builds: no lock over
        # HTTP, so this process must find that out after registering and step back.
        built = _FirstVersion()
        run_id = registry.log_training_run(
            experiment="first-version-http", params={}, metrics={}, config_files=[],
            fingerprint={}, feature_names=["prior_injuries"], figures={},
            risk_model=built.risk_model, feature_definition=built.definition,
            input_example=built.input_example, tags=built.tags,
        )  # fmt: skip
        registry.register(run_id, name, tags=built.tags)
        return built

    raced = registry.register_first_version(
        name, "first-version-http", build_while_another_registers
    )
    assert raced is None
    assert registry.list_versions(name)["version"].tolist() == [1]
    assert registry.register_first_version(name, "first-version-http", _FirstVersion) is None

    fresh = "first-version-alone"
    assert registry.register_first_version(fresh, "first-version-http", _FirstVersion) == 1
    assert registry.champion_version(fresh) == 1
    assert registry.version_kind(fresh, 1) == "literature"
