"""Shared pieces for the robustness suite: the real command, a private store, simulated cohorts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HAMRISK = str(Path(sys.executable).parent / "hamrisk")
TRAIN_FAST = Path(__file__).resolve().parent.parent / "data" / "train-fast.yaml"


def hamrisk_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a real ``hamrisk`` process with its own embedded MLflow store."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(HAMRISK_HOME=str(home), **extra)
    return env


def run_hamrisk(
    *args: str, home: Path, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``hamrisk`` command and capture its output."""
    return subprocess.run(
        [HAMRISK, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=hamrisk_env(home, **extra),
    )


def simulate(folder: Path, athletes: int, seed: int) -> Path:
    """A simulated cohort in CSV at ``folder`` (the contract format, every record valid)."""
    from pipeline.config import load_config
    from simulator.config import SimulationConfig
    from simulator.simulate import run_simulation

    run_simulation(
        load_config(SimulationConfig, name="simulation"),
        folder,
        athletes=athletes,
        random_state=seed,
        fmt="csv",
    )
    return folder


@pytest.fixture
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded MLflow store for this test, also for in-process CLI calls."""
    home = tmp_path / "store"
    home.mkdir()
    monkeypatch.setenv("HAMRISK_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home
