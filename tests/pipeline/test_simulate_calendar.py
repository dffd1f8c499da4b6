"""`hamrisk simulate --start/--export`: a cohort placed elsewhere in calendar time."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app


def test_start_and_export_place_every_index_episode_between_them(tmp_path):
    out = tmp_path / "later"
    result = CliRunner().invoke(
        app,
        ["simulate", str(out), "--athletes", "200", "--seed", "5",
         "--start", "2024-01-01", "--export", "2025-12-31"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    injuries = pd.read_csv(out / "injuries.csv", parse_dates=["injury_date"])
    index = pd.read_csv(out / "return_to_run.csv")["injury_id"]
    dates = injuries.loc[injuries["injury_id"].isin(index), "injury_date"]
    assert dates.min() >= pd.Timestamp("2024-01-01")
    follow_up = pd.read_csv(out / "follow_up.csv", parse_dates=["observed_until"])
    assert follow_up["observed_until"].max() <= pd.Timestamp("2025-12-31")
    assert injuries["injury_date"].max() <= pd.Timestamp("2025-12-31")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["--start", "2027-01-01"], "export_date must be after cohort_start"),
        (["--start", "2024-02-30"], "Invalid value for '--start'"),
    ],
)
def test_a_calendar_that_cannot_be_is_refused(tmp_path, options, match):
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "c"), "--athletes", "5", *options])
    assert result.exit_code == 2
    assert match in result.output
