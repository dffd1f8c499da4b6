"""Faults: a training run killed mid-way, an unreachable tracking server, unwritable outputs."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import FIXTURE_TODAY, valid_cohort_tables, write_cohort
from tests.robustness.conftest import HAMRISK, TRAIN_FAST, hamrisk_env, run_hamrisk, simulate

# `hamrisk` with a pause patched in where a test kills it (tests/pause_at.py).
PAUSE_AT = Path(__file__).resolve().parents[1] / "pause_at.py"

MODEL = "hamstring-reinjury"
TODAY = "2026-11-01"


def lenient_config(folder: Path) -> Path:
    """The fast test config with gates every model passes, so each finished run is champion.

    A retrained model on the same data ties the champion, and a tie is not shown worse, so the
    champion alias moves with every completed run and a run that did not move it shows.
    """
    document = yaml.safe_load(TRAIN_FAST.read_text())
    lenient = {"tolerance": [-100.0, 100.0], "decisive": [-1000.0, 1000.0], "source": "tests"}
    document["registry"]["gates"] = {
        "calibration_slope": lenient,
        "calibration_intercept": lenient,
        "auc_min": 0.0,
    }
    path = folder / "train-lenient.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def train_until(stage: str, cohort: Path, config: Path, home: Path) -> str:
    """Start ``hamrisk train``, wait until it pauses at ``stage``, SIGKILL it; return stderr."""
    proc = subprocess.Popen(
        [sys.executable, str(PAUSE_AT), stage, "3600", "train", str(cohort), "--config",
         str(config), "--today", TODAY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=hamrisk_env(home),
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    seen = []
    try:
        deadline = time.monotonic() + 180
        while not seen or seen[-1].strip() != f"paused at {stage}":
            seen.append(lines.get(timeout=max(deadline - time.monotonic(), 0.1)))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return "".join(seen)


def store_state(home: Path) -> dict:
    uri = "sqlite:///" + (home / "mlruns.db").as_posix()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = sorted(client.search_model_versions(f"name='{MODEL}'"), key=lambda v: int(v.version))
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=100
    )
    return {
        "client": client,
        "versions": versions,
        "champion": str(client.get_registered_model(MODEL).aliases.get("champion")),
        "runs": {run.info.run_id: run for run in runs},
    }


def assert_every_version_is_complete(state: dict, home: Path) -> None:
    """Each registered version points at a finished run whose model files are all there."""
    for version in state["versions"]:
        run = state["runs"][version.run_id]
        assert run.info.status == "FINISHED", version.version
        logged = state["client"].get_logged_model(version.source.removeprefix("models:/"))
        assert logged.source_run_id == run.info.run_id
        uri = state["client"].get_model_version_download_uri(MODEL, version.version)
        folder = Path(uri.removeprefix("file://"))
        assert folder.is_relative_to(home / "mlartifacts")
        assert (folder / "MLmodel").is_file(), version.version
        assert (folder / "artifacts" / "risk_model.pkl").stat().st_size > 0
        assert version.tags.get("hamrisk.decision") in ("champion", "challenger")


@pytest.mark.slow
def test_training_killed_at_any_stage_leaves_no_half_registered_model(tmp_path):
    cohort = simulate(tmp_path / "cohort", athletes=200, seed=8)
    config = lenient_config(tmp_path)
    home = tmp_path / "store"
    first = run_hamrisk("train", str(cohort), "--config", str(config), "--today", TODAY, home=home)
    assert first.returncode == 0, first.stderr
    state = store_state(home)
    assert [str(v.version) for v in state["versions"]] == ["1"] and state["champion"] == "1"

    # Killed after its run was logged and before registration: no new version at all.
    train_until("logged", cohort, config, home)
    state = store_state(home)
    assert [str(v.version) for v in state["versions"]] == ["1"]
    assert state["champion"] == "1"
    assert len(state["runs"]) == 2

    # Killed between registration and the alias: the version is whole and says what it was
    # meant to become, and the champion has not moved.
    train_until("registered", cohort, config, home)
    state = store_state(home)
    assert [str(v.version) for v in state["versions"]] == ["1", "2"]
    assert state["champion"] == "1"
    assert state["versions"][1].tags["hamrisk.decision"] == "champion"
    assert "version 2" not in str(state["client"].get_registered_model(MODEL).aliases)
    assert_every_version_is_complete(state, home)

    # The next run completes, and the champion it sets is a whole version.
    last = run_hamrisk("train", str(cohort), "--config", str(config), "--today", TODAY, home=home)
    assert last.returncode == 0, last.stderr
    assert "registered hamstring-reinjury version 3 as champion" in last.stdout
    state = store_state(home)
    assert state["champion"] == "3"
    assert_every_version_is_complete(state, home)
    listed = run_hamrisk("models", "list", home=home)
    assert listed.returncode == 0 and "champion" in listed.stdout


# --- an unreachable tracking server --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_unreachable_tracking_server_fails_train_before_fitting(tmp_path):
    """A config whose fitting takes minutes, so a late failure would show as a timeout."""
    cohort = simulate(tmp_path / "cohort", athletes=300, seed=3)
    document = yaml.safe_load(TRAIN_FAST.read_text())
    # About 100 s of fitting on this cohort: an error raised only after the fit times out.
    document["model"].update(n_bootstrap=200, cv_folds=10)
    document["model"]["candidates"][0]["params"].update(
        n_estimators=3000, num_leaves=31, min_child_samples=5
    )
    config = tmp_path / "train-slow.yaml"
    config.write_text(yaml.safe_dump(document))
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    trained = run_hamrisk(
        "train", str(cohort), "--config", str(config), "--today", TODAY,
        home=tmp_path, timeout=60, MLFLOW_TRACKING_URI=uri,
    )  # fmt: skip
    assert time.monotonic() - started < 30
    listed = run_hamrisk("models", "list", home=tmp_path, timeout=30, MLFLOW_TRACKING_URI=uri)
    for proc in (trained, listed):
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"error: MLflow tracking server {uri} is unreachable")
        assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "mlruns.db").exists()


def _not_a_database(tmp_path: Path) -> str:
    (tmp_path / "notes.db").write_text("not a database\n")
    return f"sqlite:///{tmp_path}/notes.db"


def _postgres_without_driver(tmp_path: Path) -> str:
    if importlib.util.find_spec("psycopg") or importlib.util.find_spec("psycopg2"):
        pytest.skip("a PostgreSQL driver is installed")
    return "postgresql://clinician:s3cret@127.0.0.1:1/mlflow"


STORES = {
    # case: (MLFLOW_TRACKING_URI for a tmp_path, what the one error line must say)
    "unopenable_sqlite": (
        lambda tmp_path: "sqlite:////proc/hamrisk/mlruns.db",
        r"cannot open /proc/hamrisk/mlruns\.db as a SQLite database",
    ),
    "not_a_database": (
        _not_a_database,
        r"notes\.db as a SQLite database \(file is not a database\)",
    ),
    "driver_missing": (
        _postgres_without_driver,
        r"postgresql://clinician:\*\*\*@127\.0\.0\.1:1/mlflow: cannot be used \(No module named",
    ),
    "server_with_password": (
        lambda tmp_path: f"http://clinician:s3cret@127.0.0.1:{free_port()}",
        r"MLflow tracking server http://clinician:\*\*\*@127\.0\.0\.1:\d+ is unreachable",
    ),
}


@pytest.mark.parametrize(("make_uri", "message"), STORES.values(), ids=STORES.keys())
def test_unusable_tracking_store_is_one_clear_line_without_the_password(
    tmp_path, monkeypatch, make_uri, message
):
    """MLflow would retry a database it cannot open for minutes, or print SQLAlchemy's
    traceback; a password in the URI must not reach the terminal or a log."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", make_uri(tmp_path))
    started = time.monotonic()
    result = runner.invoke(app, ["models", "list"])
    assert time.monotonic() - started < 10
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.count("\n") == 1 and re.search(message, result.stderr), result.stderr
    assert "s3cret" not in result.output


# --- outputs that cannot be written --------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def bad_cohort(tmp_path: Path) -> Path:
    tables = valid_cohort_tables()
    tables["injuries"].loc[0, "side"] = "left"
    return write_cohort(tables, tmp_path / "cohort")


def test_file_where_an_output_folder_belongs_is_a_clear_error(tmp_path, bad_cohort):
    """Root ignores file modes, but not a regular file standing where a folder must be."""
    blocker = tmp_path / "exports"
    blocker.write_text("not a folder")
    today = FIXTURE_TODAY.isoformat()
    rejects = runner.invoke(
        app, ["validate", str(bad_cohort), "--rejects", f"{blocker}/rejects.csv", "--today", today]
    )
    nested = runner.invoke(
        app, ["validate", str(bad_cohort), "--rejects", f"{blocker}/a/b.csv", "--today", today]
    )
    into_file = runner.invoke(app, ["simulate", str(blocker), "--athletes", "5"])
    below_file = runner.invoke(app, ["simulate", str(blocker / "cohort"), "--athletes", "5"])
    expected = [
        (rejects, f"error: {blocker}/rejects.csv: cannot write rejects (Not a directory)"),
        (nested, f"error: {blocker}/a/b.csv: cannot write rejects (Not a directory)"),
        (into_file, f"error: {blocker}: is a file, not a folder for the cohort"),
        (below_file, f"error: {blocker}/cohort: cannot write the cohort (Not a directory)"),
    ]
    for result, message in expected:
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.stderr.strip() == message
    assert blocker.read_text() == "not a folder"


def in_mount_namespace(
    mount: list[str], target: Path, *command: str
) -> subprocess.CompletedProcess:
    """Run ``command`` in a private mount namespace where ``mount`` is applied to ``target``."""
    script = f'mount {" ".join(mount)} "$0" && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, str(target), *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=hamrisk_env(target.parent),
    )


def can_mount(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None:
        return False
    return in_mount_namespace(["-t", "tmpfs", "tmpfs"], probe, "true").returncode == 0


@pytest.mark.slow
def test_read_only_and_full_output_folders_are_clear_errors(tmp_path, bad_cohort):
    if not can_mount(tmp_path):
        pytest.skip("needs unshare and mount (a private mount namespace)")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    bind_ro = ["--bind", "-o", "ro", str(read_only)]
    rejects = in_mount_namespace(
        bind_ro, read_only, HAMRISK, "validate", str(bad_cohort),
        "--rejects", str(read_only / "rejects.csv"), "--today", FIXTURE_TODAY.isoformat(),
    )  # fmt: skip
    simulated = in_mount_namespace(
        bind_ro, read_only, HAMRISK, "simulate", str(read_only / "cohort"), "--athletes", "5"
    )
    full = tmp_path / "full"
    full.mkdir()
    tiny = ["-t", "tmpfs", "-o", "size=64k", "tmpfs"]
    filled = in_mount_namespace(
        tiny, full, HAMRISK, "simulate", str(full / "cohort"), "--athletes", "400"
    )
    expected = [
        (rejects, f"{read_only}/rejects.csv: cannot write rejects (Read-only file system)"),
        (simulated, f"{read_only}/cohort: cannot write the cohort (Read-only file system)"),
        (filled, f"{full}/cohort: cannot write the cohort (No space left on device)"),
    ]
    for proc, message in expected:
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == f"error: {message}"
        assert "Traceback" not in proc.stdout + proc.stderr
    assert list(read_only.iterdir()) == []
