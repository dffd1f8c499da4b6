"""The demo cohort's feature frame and predictions, for checking that a refactor moves nothing.

Simulates the demo cohort (2,000 athletes, the demo seed), trains with the fast test config
into a fresh store, scores every episode through the CLI's stage functions and writes
``features.parquet`` and ``predictions.parquet`` to OUT. Run it on two commits and compare
the files with ``--compare OTHER``: the feature frame and the risk columns must be equal
to the bit.

Usage: python scripts/demo_predictions.py OUT [--compare OTHER]
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

TODAY = dt.date(2026, 11, 26)
ATHLETES = 2000
SEED = 20261126
COMPARED = ["injury_id", "model_version", "risk", "risk_ci_low", "risk_ci_high", "risk_band",
            "top_factors"]  # fmt: skip


def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="hamrisk-demo-"))
    os.environ["HAMRISK_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from features import build_feature_frame
    from pipeline.config import FeaturesConfig, ScoreConfig, TrainConfig, load_config
    from pipeline.episodes import index_episodes
    from pipeline.score import run_scoring
    from pipeline.train import train_model
    from pipeline.validate import validate_cohort
    from simulator.config import SimulationConfig
    from simulator.simulate import run_simulation

    project = Path(__file__).resolve().parent.parent
    cohort_dir = home / "cohort"
    run_simulation(
        load_config(SimulationConfig, name="simulation").in_world(), cohort_dir, athletes=ATHLETES,
        random_state=SEED, fmt="csv",
    )  # fmt: skip
    features_config = load_config(FeaturesConfig, name="features")
    cohort = validate_cohort(cohort_dir, today=TODAY).cohort
    episodes = index_episodes(cohort, TODAY, features_config.outcome)
    build_feature_frame(cohort, episodes, features_config).to_parquet(out / "features.parquet")
    train_config = load_config(TrainConfig, project / "tests" / "data" / "train-fast.yaml")
    train_model(cohort_dir, features_config, train_config, today=TODAY)
    settings = load_config(ScoreConfig, name="score")
    kwargs = {}
    if "features_config" in run_scoring.__code__.co_varnames:
        kwargs["features_config"] = features_config
    run_scoring(
        cohort_dir, out / "predictions.parquet", model=settings.model_uri, config=settings,
        as_of=TODAY, **kwargs,
    )  # fmt: skip


def compare(out: Path, other: Path) -> int:
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "features.parquet"), pd.read_parquet(other / "features.parquet")
    )
    mine = pd.read_parquet(out / "predictions.parquet")[COMPARED]
    theirs = pd.read_parquet(other / "predictions.parquet")[COMPARED]
    pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    print(f"identical: {len(mine):,} predictions and the feature frame")
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1])
    if len(sys.argv) == 4 and sys.argv[2] == "--compare":
        sys.exit(compare(target, Path(sys.argv[3])))
    write(target)
