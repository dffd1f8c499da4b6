"""`hamrisk score` through the real CLI, as a scheduler runs it: reruns, appends, kills, locks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.predictions import read_predictions

HAMRISK = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hamrisk"
# `hamrisk` with a pause patched in where a test kills it (tests/pause_at.py).
PAUSE_AT = Path(__file__).resolve().parents[1] / "pause_at.py"
pytestmark = pytest.mark.slow


def _env(trained_model, **extra):
    env = {**os.environ, "HAMRISK_HOME": str(trained_model["home"]), **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _score(trained_model, out, *args, cohort=None, env=None, background=False, pause=None):
    """Run `hamrisk score`; ``pause``: seconds to wait before renaming ``out`` into place."""
    prefix = [str(HAMRISK)]
    if pause is not None:
        prefix = [sys.executable, str(PAUSE_AT), f"rename={out.name}", str(pause)]
    command = [
        *prefix, "score", str(cohort or trained_model["cohort"]), "--out", str(out),
        "--as-of", trained_model["today"].isoformat(), *args,
    ]  # fmt: skip
    if background:
        return subprocess.Popen(
            command, env=env or _env(trained_model), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    return subprocess.run(
        command, env=env or _env(trained_model), capture_output=True, text=True, timeout=300
    )


def _without_run_time(frame):
    return frame.drop(columns=["scored_at"])


def test_score_then_rerun_is_identical_apart_from_the_run_time(trained_model, tmp_path):
    out = tmp_path / "predictions.csv"
    first = _score(trained_model, out)
    assert first.returncode == 0, first.stderr
    assert "episodes scored" in first.stdout and "provisional" in first.stdout
    # Not a terminal: plain log lines on stderr, no progress bar.
    assert "scored " in first.stderr and "\r" not in first.stderr
    frame = read_predictions(out)
    assert frame["provisional"].any() and frame["injury_id"].is_unique
    assert (out.stat().st_mode & 0o777) == 0o600
    rejects = tmp_path / "predictions.rejects.csv"
    assert rejects.exists() and (rejects.stat().st_mode & 0o777) == 0o600
    second = _score(trained_model, out)
    assert second.returncode == 0, second.stderr
    pd.testing.assert_frame_equal(
        _without_run_time(read_predictions(out)), _without_run_time(frame)
    )


def test_only_new_appends_only_episodes_not_yet_scored(trained_model, tmp_path):
    out = tmp_path / "predictions.parquet"
    earlier = _score(trained_model, out, "--as-of", "2025-06-30")
    assert earlier.returncode == 0, earlier.stderr
    before = read_predictions(out)
    later = _score(trained_model, out, "--only-new")
    assert later.returncode == 0, later.stderr
    after = read_predictions(out)
    # Rows already there are kept as they were, first and unchanged.
    pd.testing.assert_frame_equal(after.head(len(before)), before)
    added = after.iloc[len(before) :]
    assert len(added) > 0
    assert not added["injury_id"].isin(before["injury_id"]).any()
    assert after["injury_id"].is_unique
    full = tmp_path / "full.parquet"
    assert _score(trained_model, full).returncode == 0
    assert set(after["injury_id"]) == set(read_predictions(full)["injury_id"])
    again = _score(trained_model, out, "--only-new")
    assert again.returncode == 0 and len(read_predictions(out)) == len(after)


def _wait_for_temporary(out, process, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if list(out.parent.glob(f".{out.name}.*.partial")) and process.poll() is None:
            return
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.communicate()}")
        time.sleep(0.1)
    raise AssertionError("the run never started writing")


def test_a_killed_run_leaves_no_partial_output_and_the_next_run_completes(trained_model, tmp_path):
    out = tmp_path / "predictions.csv"
    process = _score(trained_model, out, background=True, pause=60)
    _wait_for_temporary(out, process)
    # The temporary file is complete and only the rename is left: kill now.
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not out.exists()
    resumed = _score(trained_model, out)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(tmp_path.glob(".predictions.csv.*"))
    assert len(read_predictions(out)) > 0


def test_two_concurrent_runs_neither_corrupt_nor_duplicate(trained_model, tmp_path):
    out = tmp_path / "predictions.csv"
    slow = _score(trained_model, out, background=True, pause=20)
    _wait_for_temporary(out, slow)
    refused = _score(trained_model, out, "--lock-timeout", "0")
    assert refused.returncode == 3
    assert "another hamrisk score run" in refused.stderr
    waiting = _score(trained_model, out, "--only-new", background=True)
    assert slow.wait(timeout=300) == 0
    assert waiting.wait(timeout=300) == 0, waiting.communicate()
    frame = read_predictions(out)
    assert frame["injury_id"].is_unique and len(frame) > 0


def test_set_aside_records_are_counted_and_written(trained_model, tmp_path):
    cohort = shutil.copytree(trained_model["cohort"], tmp_path / "cohort")
    athletes = pd.read_csv(cohort / "athletes.csv", dtype=str, keep_default_na=False)
    athletes.loc[0, "sex"] = "X"
    athletes.to_csv(cohort / "athletes.csv", index=False)
    out, rejects = tmp_path / "p.csv", tmp_path / "set-aside.csv"
    done = _score(trained_model, out, "--rejects", str(rejects), cohort=cohort)
    assert done.returncode == 1, done.stderr
    lines = pd.read_csv(rejects, dtype=str)
    # The athlete's own row, and the records that depend on it (cascade), are set aside.
    counted = int(done.stdout.split("set aside")[1].split("record")[0].replace(",", ""))
    assert counted == len(lines[["table", "row"]].drop_duplicates()) >= 1
    own = lines[lines["table"] == "athletes"]
    assert own[["key", "column"]].values.tolist() == [[athletes.loc[0, "athlete_id"], "sex"]]
    assert not read_predictions(out)["athlete_id"].eq(athletes.loc[0, "athlete_id"]).any()


def test_an_unknown_model_version_exits_2_listing_the_versions(trained_model, tmp_path):
    done = _score(trained_model, tmp_path / "p.csv", "--model", "models:/hamstring-reinjury/42")
    assert done.returncode == 2
    assert "no such model version" in done.stderr and "1 (champion)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "p.csv").exists()
