"""The literature model on first use, `hamrisk update`, and every output naming its model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import registry
from pipeline.cli import app
from pipeline.config import FeaturesConfig, LiteratureConfig, TrainConfig, load_config
from pipeline.update import UpdateError, ensure_champion, update_model

MODEL = "hamstring-reinjury"
CHAMPION_URI = f"models:/{MODEL}@champion"
FAST = Path(__file__).parent.parent / "data" / "train-fast.yaml"
TODAY = "2026-11-01"
# A smaller reference population than the shipped one: the tests check registration, not
# how precisely the reference means are estimated.
SMALL_REFERENCE = 200


def _literature(athletes: int = SMALL_REFERENCE) -> LiteratureConfig:
    settings = load_config(LiteratureConfig, name="literature")
    reference = settings.reference.model_copy(update={"athletes": athletes})
    return settings.model_copy(update={"reference": reference})


def _ensure() -> int | None:
    return ensure_champion(
        CHAMPION_URI,
        _literature(),
        load_config(FeaturesConfig, name="features"),
        "hamstring-reinjury-test",
    )


def _version_tags(version: int) -> dict[str, str]:
    with registry.connect() as client:
        return dict(client.get_model_version(MODEL, str(version)).tags)


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(tmp_path / "store"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "store"


@pytest.fixture(scope="module")
def literature_store(tmp_path_factory):
    """A store whose only version is the literature model, registered by a first lookup."""
    home = tmp_path_factory.mktemp("literature") / "store"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        done = CliRunner().invoke(
            app,
            ["lookup", "--prior-injuries", "1", "--lsi", "0.8", "--as-of", TODAY, "--json"],
        )
    return {"home": home, "result": done}


def test_first_lookup_on_a_fresh_store_registers_the_literature_model(literature_store):
    done = literature_store["result"]
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout.strip().splitlines()[-1])
    assert document["model_kind"] == "literature"
    assert document["checked_against_outcomes"] is False
    assert document["model_version"] == "1"
    assert 0 < document["risk_ci_low"] < document["risk"] < document["risk_ci_high"] < 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(literature_store["home"]))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert registry.champion_version(MODEL) == 1
        tags = _version_tags(1)
        assert tags["hamrisk.kind"] == "literature"
        assert len(tags["hamrisk.config_digest"]) == 64
        assert registry.list_versions(MODEL)["kind"].tolist() == ["literature"]
        # A second use finds the version: nothing new is registered.
        again = CliRunner().invoke(app, ["lookup", "--prior-injuries", "3", "--as-of", TODAY])
        assert again.exit_code == 0, again.output
        assert "version 1, the literature model" in again.stdout
        assert "not yet checked against this clinic's outcomes" in again.stdout
        assert registry.list_versions(MODEL)["version"].tolist() == [1]


def test_literature_lookup_is_monotone_in_prior_injuries(literature_store):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(literature_store["home"]))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        risks = []
        for prior in (0, 1, 3):
            done = CliRunner().invoke(
                app, ["lookup", "--prior-injuries", str(prior), "--as-of", TODAY, "--json"]
            )
            assert done.exit_code == 0, done.output
            risks.append(json.loads(done.stdout.strip().splitlines()[-1])["risk"])
    assert risks[0] < risks[1] < risks[2]


def test_a_second_first_use_registers_nothing(fresh_store):
    assert _ensure() == 1
    assert _ensure() is None
    assert registry.list_versions(MODEL)["version"].tolist() == [1]


def test_two_processes_at_once_give_one_version(fresh_store):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.pipeline.test_update import _ensure; print(_ensure())"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "HAMRISK_HOME": str(fresh_store)}
    env.pop("MLFLOW_TRACKING_URI", None)
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, root], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    printed = sorted(run.communicate(timeout=600)[0].strip().splitlines()[-1] for run in runs)
    assert all(run.returncode == 0 for run in runs)
    assert printed == ["1", "None"]
    assert registry.list_versions(MODEL)["version"].tolist() == [1]
    assert registry.champion_version(MODEL) == 1


@pytest.fixture(scope="module")
def clinic_cohort(tmp_path_factory):
    from simulator.config import SimulationConfig
    from simulator.simulate import run_simulation

    folder = tmp_path_factory.mktemp("clinic") / "cohort"
    run_simulation(
        load_config(SimulationConfig, name="simulation").in_world("unlike_papers"),
        folder,
        athletes=500,
        random_state=23,
        fmt="csv",
    )
    return folder


def test_update_records_its_parent_and_step(fresh_store, clinic_cohort):
    """Offered up to the revision (an extension cannot be updated again: its new terms have
    no published SEs, tests/models/test_updating.py), the update records its parent and
    step, and updating the update starts from it."""
    import datetime as dt

    assert _ensure() == 1
    literature = _literature()
    literature = literature.model_copy(
        update={"updating": literature.updating.model_copy(update={"extension_prior_sd": ()})}
    )
    run = update_model(
        clinic_cohort,
        literature,
        load_config(TrainConfig, FAST),
        parent_uri=CHAMPION_URI,
        today=dt.date(2026, 11, 1),
    )
    assert run.version == 2 and run.parent_version == "1" and run.parent_kind == "literature"
    tags = _version_tags(2)
    assert tags["hamrisk.kind"] == "updated"
    assert tags["hamrisk.parent"] == f"{MODEL}/1"
    assert tags["hamrisk.update_step"] == run.result.step
    assert tags["hamrisk.decision"] == run.decision.alias
    expected = 2 if run.decision.alias == "champion" else 1
    assert registry.champion_version(MODEL) == expected
    with registry.connect() as client:
        logged = client.get_run(client.get_model_version(MODEL, "2").run_id).data
    assert logged.params["update_step"] == run.result.step
    for test in run.result.tests:
        key = f"lr_{test.extensive}_vs_{test.simpler}_p"
        assert logged.metrics[key] == pytest.approx(test.p_value)
    # The registered version is the chosen update itself.
    from pipeline.model_cache import load_model

    loaded = load_model(f"models:/{MODEL}/2")
    assert loaded.kind == "updated"
    assert loaded.risk_model.model.intercept_ == pytest.approx(run.result.model.intercept_)
    np.testing.assert_allclose(loaded.risk_model.model.coef_, run.result.model.coef_)
    # Updating the update starts from it, and records it as the parent.
    again = update_model(
        clinic_cohort,
        literature,
        load_config(TrainConfig, FAST),
        parent_uri=f"models:/{MODEL}/2",
        today=dt.date(2026, 11, 1),
    )
    assert _version_tags(again.version)["hamrisk.parent"] == f"{MODEL}/2"


def test_a_trained_parent_is_refused(trained_model, monkeypatch, clinic_cohort):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(UpdateError, match="trained model .* has no published effects"):
        update_model(
            clinic_cohort,
            _literature(),
            load_config(TrainConfig, FAST),
            parent_uri=trained_model["uri"],
            today=trained_model["today"],
        )


def test_a_trained_version_takes_champion_from_the_literature_model_only_through_the_gates(
    fresh_store, clinic_cohort
):
    import datetime as dt

    from pipeline.train import train_model

    assert _ensure() == 1
    result = train_model(
        clinic_cohort,
        load_config(FeaturesConfig, name="features"),
        load_config(TrainConfig, FAST),
        today=dt.date(2026, 11, 1),
    )
    gates = {gate.name: gate for gate in result.decision.gates}
    # The literature champion is compared on the same held-out athletes.
    assert "log_loss vs champion version 1" in gates
    # A failed gate keeps the literature champion; otherwise the decision's alias stands.
    if any(gate.verdict == "fail" for gate in result.decision.gates):
        assert result.decision.alias == "challenger"
    promoted = result.decision.alias == "champion"
    assert registry.champion_version(MODEL) == (2 if promoted else 1)


def test_score_and_audit_name_the_literature_model(literature_store, clinic_cohort, tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(literature_store["home"]))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        out = tmp_path / "predictions.csv"
        scored = CliRunner().invoke(
            app, ["score", str(clinic_cohort), "--out", str(out), "--as-of", "2025-06-30"]
        )
        assert scored.exit_code in (0, 1), scored.output
        assert "version 1, the literature model" in scored.stdout
        assert "not yet checked" in scored.stdout
        audited = CliRunner().invoke(
            app,
            [
                "audit", str(clinic_cohort), "--predictions", str(out), "--out",
                str(tmp_path / "audit"), "--today", TODAY,
            ],
        )  # fmt: skip
        assert audited.exit_code in (0, 1, 3), audited.output
        assert "model: the literature model" in audited.stdout
        document = json.loads((tmp_path / "audit" / "report.json").read_text())
        assert document["models"]["1"]["kind"] == "literature"
        assert "not yet checked" in (tmp_path / "audit" / "report.html").read_text()


def test_trained_lookup_says_trained(trained_model, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(trained_model["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    done = CliRunner().invoke(app, ["lookup", "--prior-injuries", "1", "--json"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout.strip().splitlines()[-1])
    assert document["model_kind"] == "trained" and document["checked_against_outcomes"]
    assert np.isfinite(document["risk"])
