"""Follow-up rows behind the clinic's own records: validation warns, training and audit run.

Real exports hold athletes whose follow-up survey's last contact predates the clinic's own
later records (a later episode's return to sport, a recurrence). Validation accepts them;
every later stage must too, taking follow-up to the athlete's latest record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import registry
from pipeline.cli import app
from pipeline.config import load_config
from simulator.config import SimulationConfig
from simulator.simulate import run_simulation

FAST = Path(__file__).resolve().parent.parent / "data" / "train-fast.yaml"
TODAY = "2026-11-01"


def _cohort_behind_records(folder: Path) -> dict[str, int]:
    """A simulated cohort whose follow-up rows stop before some athletes' later records.

    Returns how many athletes of each kind were made: ``later_return`` (observed_until two
    days before a later episode's return to sport), ``recurrence`` (ten days before a
    same-side injury after a return to sport) and ``no_row`` (follow-up row removed).
    """
    run_simulation(
        load_config(SimulationConfig, name="simulation"),
        folder,
        athletes=800,
        random_state=23,
        fmt="csv",
    )
    read = {"parse_dates": True, "dtype": {"athlete_id": str, "injury_id": str}}
    injuries = pd.read_csv(folder / "injuries.csv", **read)
    injuries["injury_date"] = pd.to_datetime(injuries["injury_date"])
    rtr = pd.read_csv(folder / "return_to_run.csv", **read)
    rtr["return_to_sport_date"] = pd.to_datetime(rtr["return_to_sport_date"])
    follow_up = pd.read_csv(folder / "follow_up.csv", dtype=str)
    episodes = rtr.merge(injuries, on="injury_id").sort_values(["athlete_id", "injury_date"])
    returned = episodes.dropna(subset=["return_to_sport_date"])

    second = returned.groupby("athlete_id")["return_to_sport_date"].nth(1)
    second = returned.loc[second.index].set_index("athlete_id")["return_to_sport_date"]
    later_return = second.index[:20]
    first_return = returned.groupby("athlete_id")["return_to_sport_date"].min()
    after = injuries.assign(first_return=injuries["athlete_id"].map(first_return)).loc[
        lambda f: f["injury_date"] > f["first_return"]
    ]
    recurrence_date = after.groupby("athlete_id")["injury_date"].min()
    recurrence = recurrence_date.index.difference(later_return)[:20]
    no_row = first_return.index.difference(later_return).difference(recurrence)[:10]

    observed = follow_up.set_index("athlete_id")["observed_until"]
    for athlete in later_return:
        observed[athlete] = (second[athlete] - pd.Timedelta(days=2)).strftime("%Y-%m-%d")
    for athlete in recurrence:
        day = recurrence_date[athlete] - pd.Timedelta(days=10)
        observed[athlete] = day.strftime("%Y-%m-%d")
    observed = observed.drop(index=no_row)
    observed.rename("observed_until").reset_index().to_csv(folder / "follow_up.csv", index=False)
    return {"later_return": len(later_return), "recurrence": len(recurrence), "no_row": len(no_row)}


@pytest.mark.slow
def test_validate_warns_and_train_score_audit_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMRISK_HOME", str(tmp_path / "store"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "store").mkdir()
    cohort = tmp_path / "cohort"
    made = _cohort_behind_records(cohort)
    assert made["later_return"] >= 10 and made["recurrence"] >= 10 and made["no_row"] == 10
    runner = CliRunner()

    checked = runner.invoke(app, ["validate", str(cohort), "--json", "--today", TODAY])
    assert checked.exit_code == 0, checked.output  # accepted, not set aside
    warning = json.loads(checked.stdout)["warnings"]["follow_up_behind_records"]
    assert warning["records_without_follow_up_row"] == made["no_row"]
    # Every athlete made to lag is counted (the simulation may hold a few more already).
    assert warning["records_after_observed_until"] >= made["later_return"] + made["recurrence"]
    summary = runner.invoke(app, ["validate", str(cohort), "--today", TODAY])
    assert f"warning: follow-up behind the records for {warning['athletes']:,} athlete" in (
        summary.output
    )

    trained = runner.invoke(app, ["train", str(cohort), "--config", str(FAST), "--today", TODAY])
    assert trained.exit_code == 0, trained.output
    assert "follow-up lengthened by the athlete's own records:" in trained.output
    assert "effective sample size" in trained.output
    logged = registry.version_metrics("hamstring-reinjury", 1)
    # Every episode of an athlete made to lag has its follow-up lengthened by the records.
    assert logged["n_follow_up_from_records"] >= made["later_return"] + made["recurrence"]
    assert logged["ipcw_max_weight"] >= 1
    assert 0 < logged["ipcw_effective_sample_size"] <= logged["ipcw_known"]
    development = registry.development_episodes("hamstring-reinjury", 1)
    assert development is not None and len(development["fingerprints"]) == logged["ipcw_known"]

    predictions = tmp_path / "predictions.csv"
    scored = runner.invoke(
        app,
        ["score", str(cohort), "--out", str(predictions), "--as-of", TODAY,
         "--model", "models:/hamstring-reinjury/1"],
    )  # fmt: skip
    assert scored.exit_code in (0, 1), scored.output
    audited = runner.invoke(
        app,
        [
            "audit", str(cohort), "--predictions", str(predictions),
            "--out", str(tmp_path / "audit"), "--today", TODAY,
        ],
    )  # fmt: skip
    assert audited.exit_code in (0, 1, 3), audited.output
    document = json.loads((tmp_path / "audit" / "report.json").read_text())
    # The model's own cohort: every evaluable episode is development data, none is judged.
    found = next(iter(document["in_sample"]["by_version"].values()))
    assert found["fingerprint_recorded"] is True
    assert isinstance(found["development_episodes"], int) and found["development_episodes"] > 0
    weights = document["censoring_weights"]
    assert weights["follow_up_from_records"] >= made["later_return"] + made["recurrence"]
    assert weights["max_weight"] >= 1 and weights["effective_sample_size"] > 0
