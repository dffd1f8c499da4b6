"""The configuration every benchmark reads: the project's own, or a fast one for ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import FeaturesConfig, TrainConfig, load_config
from simulator.config import SimulationConfig


@dataclass(frozen=True)
class Configs:
    simulation: SimulationConfig
    features: FeaturesConfig
    train: TrainConfig


def quick_train(config: TrainConfig) -> TrainConfig:
    """One small LightGBM, fewer folds and bootstrap draws: for developing the bench only."""
    return TrainConfig.model_validate(
        {
            **config.model_dump(),
            "model": {
                **config.model.model_dump(),
                "candidates": [
                    {
                        "kind": "lightgbm",
                        "params": {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 4},
                    }
                ],
                "calibration": "sigmoid",
                "cv_folds": 3,
                "n_bootstrap": 2,
            },
            "evaluation": {"n_boot": 20, "optimism_boot": 0, "small_cohort_episodes": 0},
        }
    )


def load_configs(quick: bool) -> Configs:
    """The project's configs from ``configs/``; with ``quick`` the fast training config."""
    train = load_config(TrainConfig, name="train")
    return Configs(
        simulation=load_config(SimulationConfig, name="simulation"),
        features=load_config(FeaturesConfig, name="features"),
        train=quick_train(train) if quick else train,
    )
