"""A registered model in a private MLflow store, for the scoring and lookup benchmarks.

The store lives in the bench's scratch folder (``HAMRISK_HOME``), never in the project's
default store.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.configs import Configs
from bench.measure import progress
from simulator.simulate import run_simulation


@dataclass(frozen=True)
class BenchModel:
    home: Path
    uri: str
    risk_model: object
    version: int


@contextmanager
def private_store(home: Path) -> Iterator[None]:
    """Point this process's MLflow edge at ``home`` for the duration of the block."""
    saved = {k: os.environ.get(k) for k in ("HAMRISK_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["HAMRISK_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def child_env(home: Path) -> dict[str, str]:
    """The environment of a child ``hamrisk`` or ``mlflow`` command using the private store."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["HAMRISK_HOME"] = str(home)
    return env


def train_bench_model(work: Path, configs: Configs, athletes: int) -> BenchModel:
    """Simulate a cohort, run ``train_model`` on it and register the result in a private store.

    The candidates alone (``model.ladder: false``): scoring is measured against LightGBM's
    bare predict of the same trees, and a boosted model is the costliest the ladder can
    register (at 2,000 athletes the ladder itself registers a logistic extension, a matrix
    product per episode).
    """
    from pipeline.train import train_model

    home = work / "store"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    cohort = work / "store-cohort"
    if cohort.exists():
        shutil.rmtree(cohort)
    progress(f"store: training the benchmark model on {athletes:,} athletes (private store)")
    run_simulation(configs.simulation, cohort, athletes=athletes, random_state=5, fmt="parquet")
    train = configs.train.model_copy(
        update={"model": configs.train.model.model_copy(update={"ladder": False})}
    )
    with private_store(home):
        result = train_model(cohort, configs.features, train, today=configs.simulation.export_date)
    return BenchModel(
        home=home,
        uri=f"models:/{result.model_name}/{result.version}",
        risk_model=result.development.model,
        version=result.version,
    )


def train_interaction_model(work: Path, configs: Configs, base: BenchModel) -> BenchModel | None:
    """Register, in ``base``'s store and from its cohort, a model whose trees combine
    features: the first configured LightGBM candidate with more than two leaves.

    ``hamrisk train`` picks boosted stumps on the benchmark cohort, which scoring reads
    from exact step tables; this model shows the cost when the trees must be walked.
    ``None`` when no such candidate is configured.
    """
    from pipeline.config import TrainConfig
    from pipeline.train import train_model

    chosen = next(
        (
            c
            for c in configs.train.model.candidates
            if c.kind == "lightgbm" and int(c.params.get("num_leaves", 31)) > 2
        ),
        None,
    )
    if chosen is None:
        return None
    document = configs.train.model_dump()
    document["model"]["candidates"] = [chosen.model_dump()]
    document["model"]["ladder"] = False
    train = TrainConfig.model_validate(document)
    progress("store: training a model with interacting trees (same cohort, private store)")
    with private_store(base.home):
        result = train_model(
            work / "store-cohort", configs.features, train, today=configs.simulation.export_date
        )
    return BenchModel(
        home=base.home,
        uri=f"models:/{result.model_name}/{result.version}",
        risk_model=result.development.model,
        version=result.version,
    )
