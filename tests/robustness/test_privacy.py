"""Athlete data stays where it belongs: none in the MLflow store, owner-only output files."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.validate import SET_ASIDE_COLUMNS, write_rejects
from tests.robustness.conftest import simulate

# Id-shaped tokens as bytes in the encodings a store can hold text in: UTF-8 (SQLite,
# JSON, YAML, pickled str), UTF-16-LE and UTF-32-LE (pickled numpy unicode arrays).
_TOKEN = r"[A-Za-z][A-Za-z0-9_-]{2,63}"
PATTERNS = {
    "utf-8": re.compile(_TOKEN.encode()),
    "utf-16-le": re.compile(rb"(?:[A-Za-z]\x00)(?:[A-Za-z0-9_-]\x00){2,63}"),
    "utf-32-le": re.compile(rb"(?:[A-Za-z]\x00\x00\x00)(?:[A-Za-z0-9_-]\x00\x00\x00){2,63}"),
}


def identifiers(cohort: Path) -> set[str]:
    """Every athlete id and injury id of a CSV cohort."""
    ids: set[str] = set()
    for table, column in [("athletes", "athlete_id"), ("injuries", "injury_id")]:
        ids |= set(pd.read_csv(cohort / f"{table}.csv", dtype=str)[column].dropna())
    return ids


def found_identifiers(folder: Path, ids: set[str]) -> dict[str, set[str]]:
    """``{file: ids found}`` for every file below ``folder`` holding any of ``ids``."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        content = path.read_bytes()
        tokens: set[str] = set()
        for encoding, pattern in PATTERNS.items():
            tokens |= {m.decode(encoding) for m in pattern.findall(content)}
        # An id may sit inside a longer token (run_A000001_x): check substrings too.
        hits = {i for i in ids if i in tokens or any(i in t for t in tokens if len(t) > len(i))}
        if hits:
            found[str(path.relative_to(folder))] = hits
    return found


@pytest.fixture(scope="module")
def store(trained_model) -> dict:
    return {"home": trained_model["home"], "ids": identifiers(trained_model["cohort"])}


def test_mlflow_store_holds_no_athlete_or_injury_id(store):
    """The database, and every artifact file including the pickled model, in any encoding."""
    files = [p for p in store["home"].rglob("*") if p.is_file()]
    assert any(p.name == "mlruns.db" for p in files)
    assert any(p.name == "risk_model.pkl" for p in files)
    assert any(p.name == "input_example.json" for p in files)
    assert len(store["ids"]) > 1000
    assert found_identifiers(store["home"], store["ids"]) == {}


def test_the_scan_finds_ids_where_they_are(store, trained_model, tmp_path):
    """Positive controls: the same scan finds ids in the cohort files, in a pickled numpy
    array of ids, and in a copy of the store with one id written into a run's params."""
    some = sorted(store["ids"])[:3]
    cohort_hits = found_identifiers(trained_model["cohort"], store["ids"])
    assert set().union(*cohort_hits.values()) == store["ids"]

    controls = tmp_path / "controls"
    controls.mkdir()
    (controls / "ids.pkl").write_bytes(pickle.dumps(np.array(some)))  # UTF-32 inside
    (controls / "ids16.txt").write_bytes(" ".join(some).encode("utf-16-le"))
    copy = controls / "mlruns.db"
    shutil.copy(store["home"] / "mlruns.db", copy)
    with sqlite3.connect(copy) as db:
        run = db.execute("select run_uuid from runs limit 1").fetchone()[0]
        db.execute("insert into params values ('leak', ?, ?)", (f"group_{some[0]}", run))
    hits = found_identifiers(controls, store["ids"])
    assert hits == {"ids.pkl": set(some), "ids16.txt": set(some), "mlruns.db": {some[0]}}


# --- files that hold athlete ids are readable by their owner only ----------------------------

runner = CliRunner()


@pytest.fixture(scope="module")
def messy_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = simulate(tmp_path_factory.mktemp("privacy") / "cohort", athletes=40, seed=17)
    path = folder / "strength_tests.csv"
    tests = pd.read_csv(path, dtype=str, keep_default_na=False)
    tests.loc[3, "left"] = "-1"
    tests.to_csv(path, index=False)
    return folder


def test_rejects_replace_a_readable_file_as_owner_only_whatever_the_umask(messy_cohort, tmp_path):
    rejects = tmp_path / "rejects.csv"
    rejects.write_text("stale\n")
    rejects.chmod(0o644)
    previous = os.umask(0)
    try:
        result = runner.invoke(
            app, ["validate", str(messy_cohort), "--rejects", str(rejects), "--today", "2026-11-01"]
        )
    finally:
        os.umask(previous)
    assert result.exit_code == 1, result.output
    assert rejects.stat().st_mode & 0o777 == 0o600
    assert list(pd.read_csv(rejects)["rule"]) == ["left.positive"]


def test_write_rejects_is_never_readable_by_others_while_written(tmp_path, monkeypatch):
    """The file is private from its first byte: the temporary file is 0600 too."""
    modes = []
    real_fdopen = os.fdopen

    def spy(handle, *args, **kwargs):
        modes.append(os.fstat(handle).st_mode & 0o777)
        return real_fdopen(handle, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", spy)
    write_rejects(pd.DataFrame(columns=SET_ASIDE_COLUMNS), tmp_path / "r.csv")
    assert modes == [0o600]


@pytest.mark.slow
def test_predictions_and_scoring_rejects_are_owner_only(
    trained_model, messy_cohort, tmp_path, monkeypatch
):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "scores" / "predictions.csv"
    previous = os.umask(0)
    try:
        result = runner.invoke(
            app,
            ["score", str(messy_cohort), "--out", str(out), "--model", trained_model["uri"],
             "--as-of", trained_model["today"].isoformat()],
        )  # fmt: skip
    finally:
        os.umask(previous)
    assert result.exit_code == 1, result.output  # one record set aside
    rejects = out.parent / "predictions.rejects.csv"
    assert list(pd.read_csv(rejects)["rule"]) == ["left.positive"]
    for path in (out, rejects):
        assert path.stat().st_mode & 0o777 == 0o600, path.name
    # Nothing else beside them holds data (the lock file is empty).
    others = [p for p in out.parent.iterdir() if p not in (out, rejects)]
    assert all(p.stat().st_size == 0 for p in others), others
    # The audit of those predictions names no athlete or episode, and is private too.
    report = tmp_path / "audit"
    audited = runner.invoke(
        app,
        ["audit", str(messy_cohort), "--predictions", str(out), "--out", str(report),
         "--today", trained_model["today"].isoformat()],
    )  # fmt: skip
    assert audited.exit_code in (0, 1, 3), audited.output
    assert sorted(p.name for p in report.iterdir()) == ["report.html", "report.json"]
    assert found_identifiers(report, identifiers(messy_cohort)) == {}
    assert found_identifiers(out.parent, identifiers(messy_cohort))  # the control: they are there
    for path in report.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name
