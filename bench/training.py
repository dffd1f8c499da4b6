"""Training time against the number of episodes.

Times ``prepare_training_data`` (episodes, point-in-time features, IPCW weights) and
``develop_model`` (grouped cross-validation over the configured candidates, calibrated fit
with its bootstrap ensemble, logistic baseline, held-out and temporal evaluation with
bootstrap CIs, and the optimism correction below ``small_cohort_episodes``): what
``hamrisk train`` does apart from validating files and writing to MLflow.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.configs import Configs
from bench.measure import Spread, progress, timed
from pipeline.train import develop_model, prepare_training_data
from pipeline.validate import validate_cohort
from simulator.simulate import simulate_cohort, write_simulated

# Index episodes with a prediction time per simulated athlete (measured on the default
# simulation config: about 1.32); only used to size the cohorts, the table reports counts.
EPISODES_PER_ATHLETE = 1.32
TRAIN_AIM_EPISODES = 5_000
TRAIN_AIM_SECONDS = 60.0


@dataclass(frozen=True)
class TrainingPoint:
    target: int
    episodes: int
    athletes: int
    prepare: Spread
    develop: Spread
    chosen: str


@dataclass(frozen=True)
class TrainingBench:
    points: tuple[TrainingPoint, ...]


def run_training(
    work: Path, configs: Configs, targets: dict[int, int], seed: int = 7
) -> TrainingBench:
    """For each target episode count (-> repeats), simulate a cohort and time training on it."""
    folder = work / "training" / "cohort"
    points = []
    for target, repeats in targets.items():
        athletes = max(50, round(target / EPISODES_PER_ATHLETE))
        sim = simulate_cohort(configs.simulation, athletes, seed)
        if folder.exists():
            shutil.rmtree(folder)
        write_simulated(sim, folder, "parquet")
        cohort = validate_cohort(folder, today=configs.simulation.export_date).cohort
        prepare, develop, data, dev = [], [], None, None
        for run in range(repeats):
            progress(f"training: ~{target:,} episodes, run {run + 1}/{repeats}")
            elapsed, data = timed(
                lambda c=cohort: prepare_training_data(
                    c, configs.features, configs.train, configs.simulation.export_date
                )
            )
            prepare.append(elapsed)
            elapsed, dev = timed(lambda d=data: develop_model(d, configs.train))
            develop.append(elapsed)
        points.append(
            TrainingPoint(
                target=target,
                episodes=len(data.labels),
                athletes=athletes,
                prepare=Spread(tuple(prepare)),
                develop=Spread(tuple(develop)),
                chosen=dev.step,
            )
        )
    shutil.rmtree(folder, ignore_errors=True)
    return TrainingBench(points=tuple(points))


def aim_point(b: TrainingBench) -> TrainingPoint | None:
    """The measured point closest to the aim's 5,000 episodes."""
    if not b.points:
        return None
    return min(b.points, key=lambda p: abs(p.episodes - TRAIN_AIM_EPISODES))


def render_training(b: TrainingBench, configs: Configs) -> str:
    m = configs.train.model
    lines = [
        "## Training time against episodes",
        "",
        "Each cohort is simulated to about the target number of episodes (seed 7) and"
        " validated once; then `prepare_training_data` (episodes, features, IPCW weights) and"
        " `develop_model` (everything `hamrisk train` does besides reading files and writing"
        f" to MLflow: grouped {m.cv_folds}-fold cross-validation over {len(m.candidates)}"
        f" candidates, {m.calibration} calibration, {m.n_bootstrap} bootstrap members,"
        f" the logistic baseline, held-out and temporal evaluation with"
        f" {configs.train.evaluation.n_boot} bootstrap replicates, and Harrell's optimism"
        f" correction below {configs.train.evaluation.small_cohort_episodes:,} episodes).",
        "",
        "| episodes | athletes | prepare, s | develop_model, s | episodes/s (total) | chosen |",
        "|---:|---:|---|---|---|---|",
    ]
    for p in b.points:
        pairs = zip(p.prepare.values, p.develop.values, strict=True)
        total = Spread(tuple(a + c for a, c in pairs))
        lines.append(
            f"| {p.episodes:,} | {p.athletes:,} | {p.prepare.format()} | {p.develop.format(1)} |"
            f" {total.map(lambda s, n=p.episodes: n / s).format(0)} | {p.chosen} |"
        )
    point = aim_point(b)
    if point is not None:
        total = point.prepare.median + point.develop.median
        verdict = "met" if total < TRAIN_AIM_SECONDS else "**missed**"
        lines += [
            "",
            f"Aim: {TRAIN_AIM_EPISODES:,} episodes in under {TRAIN_AIM_SECONDS:.0f} s. Nearest"
            f" point, {point.episodes:,} episodes: {total:.1f} s (median) — {verdict}.",
        ]
    return "\n".join(lines)
