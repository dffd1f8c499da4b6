"""The registered model served by `mlflow models serve` answers as it does in process."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]
MLFLOW = Path(sys.executable).parent / "mlflow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(base: str, process: subprocess.Popen, log: Path, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"server not ready in {seconds} s: {log.read_text()[-2000:]}")


def test_served_model_scores_a_record_like_the_in_process_model(
    trained_model, tmp_path, request, monkeypatch
):
    from features import build_feature_frame
    from pipeline import registry
    from pipeline.config import FeaturesConfig, load_config
    from pipeline.episodes import index_episodes
    from pipeline.validate import validate_cohort

    home = trained_model["home"]
    monkeypatch.setenv("HAMRISK_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    features_config = load_config(FeaturesConfig, name="features")
    cohort = validate_cohort(trained_model["cohort"], today=trained_model["today"]).cohort
    episodes = index_episodes(cohort, trained_model["today"], features_config.outcome).head(1)
    pyfunc = registry.load_risk_model(trained_model["uri"])
    columns = list(pyfunc.unwrap_python_model().risk_model.feature_names_in_)
    record = registry.as_model_input(
        build_feature_frame(cohort, episodes, features_config)[columns]
    ).reset_index(drop=True)
    expected = float(pyfunc.predict(record)["risk"].iloc[0])

    port = _free_port()
    log = tmp_path / "serve.log"
    # The server runs `uvicorn` by name: the venv's scripts must be on PATH.
    path = f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri(), "PATH": path}
    with log.open("w") as handle:
        process = subprocess.Popen(
            [str(MLFLOW), "models", "serve", "-m", trained_model["uri"], "--env-manager",
             "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def stop() -> None:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait(timeout=30)

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"
    _wait_until_ready(base, process, log)
    row = [None if isinstance(v, float) and math.isnan(v) else v for v in record.iloc[0].tolist()]
    body = json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()
    post = urllib.request.Request(
        f"{base}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(post, timeout=60) as answer:
        served = json.loads(answer.read())
    risk = served["predictions"][0]["risk"]
    assert risk == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert (
        0
        <= served["predictions"][0]["risk_ci_low"]
        <= risk
        <= served["predictions"][0]["risk_ci_high"]
    )
    # The risk over time travels with it: monotone, ending at the one-year risk.
    row = served["predictions"][0]
    assert 0 <= row["risk_28d"] <= row["risk_90d"] <= row["risk_180d"] <= risk
    assert row["curve_shape"] == "fitted"
