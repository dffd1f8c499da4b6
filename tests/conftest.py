"""Shared fixtures: small valid cohorts in the contract's file format, written to tmp_path."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

# The run date the fixtures are valid for: every record is dated before it.
FIXTURE_TODAY = date(2024, 12, 31)


def valid_cohort_tables() -> dict[str, pd.DataFrame]:
    """A small cohort that breaks no contract rule, as text cells exactly as a CSV holds them.

    Three athletes; four injuries (two index episodes with a return-to-run row, one earlier
    injury of the same athlete, one with no optional fields); every test type and unit.
    """
    athletes = pd.DataFrame(
        {
            "athlete_id": ["A001", "A002", "A003"],
            "sex": ["F", "M", ""],
            "birth_year": ["1995", "1988", ""],
            "discipline": ["sprint", "team_sport", ""],
            "level": ["elite", "competitive", ""],
            "body_mass_kg": ["62.5", "80", ""],
        }
    )
    injuries = pd.DataFrame(
        {
            "injury_id": ["I001", "I002", "I003", "I004"],
            "athlete_id": ["A001", "A001", "A002", "A003"],
            "injury_date": ["2022-03-01", "2021-05-10", "2022-09-15", "2021-01-10"],
            "side": ["L", "L", "R", "L"],
            "muscle": ["biceps_femoris_long_head", "semimembranosus", "semitendinosus", ""],
            "bamic_grade": ["2", "1", "3", "0"],
            "bamic_site": ["b", "a", "c", ""],
            "mechanism": ["high_speed_running", "stretching", "other", ""],
        }
    )
    strength_tests = pd.DataFrame(
        {
            "test_id": ["T001", "T002", "T003", "T004", "T005"],
            "athlete_id": ["A001", "A001", "A002", "A002", "A002"],
            "test_date": ["2022-04-01", "2022-04-01", "2022-10-20", "2022-10-20", "2022-10-21"],
            "test": [
                "nordic_eccentric",
                "isokinetic_knee_flexion_concentric",
                "isometric_knee_flexion",
                "isokinetic_knee_extension_concentric",
                "isokinetic_knee_flexion_eccentric",
            ],
            "left": ["300", "120.5", "250", "200", "150"],
            "right": ["340", "135", "260", "210.25", "149"],
            "unit": ["N", "Nm", "N", "Nm", "Nm"],
        }
    )
    return_to_run = pd.DataFrame(
        {
            "injury_id": ["I001", "I003"],
            "clinic_id": ["C01", "C02"],
            "phase1_end_date": ["2022-03-10", "2022-09-20"],
            "phase2_end_date": ["2022-03-24", "2022-10-01"],
            "phase3_end_date": ["2022-04-05", ""],
            "return_to_run_date": ["2022-03-20", "2022-09-28"],
            "return_to_sport_date": ["2022-04-10", "2022-10-18"],
            "peak_sprint_pct": ["95", "101.5"],
            "pain_at_return": ["1", ""],
            "slr_deficit_deg": ["5", "0"],
            "ake_discomfort": ["false", "TRUE"],
        }
    )
    follow_up = pd.DataFrame(
        {
            "athlete_id": ["A001", "A002", "A003"],
            "observed_until": ["2024-06-01", "2023-12-31", "2022-06-30"],
        }
    )
    return {
        "athletes": athletes,
        "injuries": injuries,
        "strength_tests": strength_tests,
        "return_to_run": return_to_run,
        "follow_up": follow_up,
    }


def write_cohort(tables: dict[str, pd.DataFrame], folder: Path, fmt: str = "csv") -> Path:
    """Write text tables as contract files (CSV: UTF-8, LF, blank = missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        else:
            frame.replace("", None).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture
def cohort_tables() -> dict[str, pd.DataFrame]:
    """A fresh copy of the valid text tables, free to edit."""
    return valid_cohort_tables()


@pytest.fixture
def cohort_dir(tmp_path: Path) -> Path:
    """A valid cohort folder in CSV."""
    return write_cohort(valid_cohort_tables(), tmp_path / "cohort")


# --- a registered model, trained once per test session on a small simulated cohort ---

TRAINED_ATHLETES = 600
TRAINED_SEED = 11
TRAINED_TODAY = date(2026, 11, 1)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Simulate a cohort, train and register one model in a private SQLite MLflow store.

    Returns a dict with ``home`` (the store folder: set ``HAMRISK_HOME`` to it), ``cohort``
    (the folder), ``truth`` (its truth CSV), ``uri`` (``models:/hamstring-reinjury@champion``),
    ``version`` and ``today`` (the run date used). Tests that register more versions must use
    their own store, not this one.
    """
    from pipeline.config import FeaturesConfig, TrainConfig, load_config
    from pipeline.train import train_model
    from simulator.config import SimulationConfig
    from simulator.simulate import run_simulation

    root = tmp_path_factory.mktemp("trained")
    home = root / "store"
    home.mkdir()
    cohort = root / "cohort"
    run_simulation(
        load_config(SimulationConfig, name="simulation"),
        cohort,
        athletes=TRAINED_ATHLETES,
        random_state=TRAINED_SEED,
        fmt="csv",
    )
    settings = load_config(TrainConfig, Path(__file__).parent / "data" / "train-fast.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = train_model(
            cohort, load_config(FeaturesConfig, name="features"), settings, today=TRAINED_TODAY
        )
    return {
        "home": home,
        "cohort": cohort,
        "truth": Path(f"{cohort}.truth.csv"),
        "uri": f"models:/{result.model_name}@champion",
        "version": result.version,
        "today": TRAINED_TODAY,
    }
