"""The audit report in a real headless browser: it renders its plots and tables, no errors.

Set ``HAMRISK_SCREENSHOT=docs/audit-report.png`` to keep the screenshot (how the one in
``docs/`` was made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from pipeline.audit import run_audit
from pipeline.config import AuditConfig, FeaturesConfig, load_config
from pipeline.episodes import index_episodes
from pipeline.validate import validate_cohort
from simulator.config import SimulationConfig
from simulator.simulate import simulate_cohort, write_simulated

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_ENV = "HAMRISK_SCREENSHOT"


def _browser() -> str:
    found = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is missing in CI: `make browser` installs it")
    pytest.skip("chromium not found (run `make browser` to install Debian's chromium)")


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audit report of true-risk predictions on a simulated cohort (no registry needed)."""
    root = tmp_path_factory.mktemp("browser")
    settings = load_config(SimulationConfig, name="simulation")
    features = load_config(FeaturesConfig, name="features")
    sim = simulate_cohort(settings, 1500, 3)
    folder = root / "cohort"
    write_simulated(sim, folder)
    cohort = validate_cohort(folder, today=settings.export_date).cohort
    episodes = index_episodes(cohort, settings.export_date, features.outcome).merge(
        sim.truth[["injury_id", "true_risk"]].astype({"injury_id": "string"}), on="injury_id"
    )
    predictions = root / "predictions.csv"
    pd.DataFrame(
        {
            "injury_id": episodes["injury_id"],
            "athlete_id": episodes["athlete_id"],
            "clinic_id": episodes["clinic_id"],
            "prediction_time": episodes["prediction_time"].dt.strftime("%Y-%m-%d"),
            "risk": episodes["true_risk"],
            "model_name": "hamstring-reinjury",
            "model_version": "1",
        }
    ).to_csv(predictions, index=False)
    config = load_config(AuditConfig, name="audit").model_copy(update={"n_boot": 50})
    run = run_audit(
        folder, [predictions], root / "report", config, features, today=settings.export_date
    )
    return run.html


def test_the_report_renders_its_plots_and_tables_in_chromium(report, tmp_path):
    browser = _browser()
    dom = _run(browser, tmp_path / "profile", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # The parsed DOM holds the figures and the tables.
    assert len(re.findall(r"<svg\b", html)) >= 2
    assert len(re.findall(r"<table\b", html)) >= 5
    assert 'id="verdict"' in html and "Verdict:" in html
    for error in ("Traceback", "NaN", "undefined", "This page isn't working"):
        assert error not in html

    shot = tmp_path / "audit-report.png"
    taken = _run(
        browser,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1200,2400",
        "--hide-scrollbars",
        report.as_uri(),
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a blank 1200x2400 page compresses to a few kB
    if target := os.environ.get(SCREENSHOT_ENV):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
