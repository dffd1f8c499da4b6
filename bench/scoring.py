"""End-to-end ``hamrisk score`` against LightGBM's bare ``Booster.predict``.

Each size is a simulated cohort (CSV, as clinics export it) scored by the real command in a
child process: start-up, reading, validation, episodes, features, risk with interval and
top factors, writing the predictions. Its wall time and peak resident memory (``wait4``)
are measured from outside. In the same run the bench builds the same feature matrix
in-process and times only the model's LightGBM ``Booster.predict`` on it; the ratio of the
two is the overhead of everything around the trees.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.configs import Configs
from bench.measure import Spread, progress, repeat, run_child
from bench.store import BenchModel, child_env

SCORE_AIM_RATIO = 3.0
SCORE_AIM_PEAK_BYTES = 2 * 1024**3
# Index episodes per simulated athlete, provisional ones included (default simulation).
EPISODES_PER_ATHLETE = 1.34


@dataclass(frozen=True)
class ScorePoint:
    target: int
    episodes: int
    athletes: int
    score: Spread
    peak_bytes: tuple[int, ...]
    predict: Spread


@dataclass(frozen=True)
class ScoringBench:
    points: tuple[ScorePoint, ...]
    command: str
    not_measured: str | None = None
    # How the benchmark model's trees are scored, and the same cohort scored by a model
    # whose trees combine features (walked by LightGBM), when one was trained.
    model_form: str = ""
    interactions: ScorePoint | None = None
    interactions_form: str = ""


def model_form(risk_model) -> str:
    """The model in a few words: its trees and how scoring evaluates them."""
    booster = risk_model.classifier_
    trees = booster.num_trees()
    leaves = max(t["num_leaves"] for t in booster.dump_model()["tree_info"])
    if getattr(risk_model, "additive_", None) is not None:
        return (
            f"{trees:,} trees of at most {leaves} leaves, each on one feature: an additive model,"
            " scored from its exact step tables"
        )
    return f"{trees:,} trees of up to {leaves} leaves that combine features, walked by LightGBM"


def hamrisk_command() -> Path:
    return Path(sys.executable).with_name("hamrisk")


def command_missing(command: str, env: dict[str, str]) -> str | None:
    """Why ``hamrisk COMMAND`` cannot be benchmarked, or ``None`` when it exists."""
    run = run_child([str(hamrisk_command()), command, "--help"], env=env)
    if run.returncode != 0:
        return (
            f"`hamrisk {command}` is not available in this build (`--help` exit {run.returncode})"
        )
    return None


def _bare_predict(folder: Path, configs: Configs, model: BenchModel, repeats: int):
    """Same cohort, same features, same matrix: only the trees' predict is timed."""
    from features import build_feature_frame
    from pipeline.episodes import index_episodes
    from pipeline.validate import validate_cohort

    today = configs.simulation.export_date
    cohort = validate_cohort(folder, today=today).cohort
    episodes = index_episodes(cohort, today, configs.features.outcome)
    features = build_feature_frame(cohort, episodes, configs.features)
    matrix = model.risk_model.prep_.transform(features)
    booster = model.risk_model.classifier_
    del cohort, episodes, features
    spread, _ = repeat(lambda: booster.predict(matrix), repeats)
    return spread, len(matrix)


def _count_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        return sum(1 for _ in handle) - 1


def run_scoring(
    work: Path,
    configs: Configs,
    model: BenchModel,
    targets: dict[int, int],
    interactions: BenchModel | None = None,
    interactions_at: int | None = None,
) -> ScoringBench:
    """For each target episode count (-> repeats): simulate, score end to end, bare predict.

    With ``interactions``, the cohort of size ``interactions_at`` is scored by that model
    too, measured the same way.
    """
    env = child_env(model.home)
    hamrisk = str(hamrisk_command())
    template = f"hamrisk score COHORT --out predictions.csv --model {model.uri}"
    missing = command_missing("score", env)
    if missing:
        return ScoringBench(points=(), command=template, not_measured=missing)
    today = configs.simulation.export_date.isoformat()
    help_text = run_child([hamrisk, "score", "--help"], env=env).stdout
    extra = ["--today", today] if "--today" in help_text else []
    template = " ".join([template, *extra])
    points = []
    interaction_point = None
    for target, repeats in targets.items():
        athletes = max(50, round(target / EPISODES_PER_ATHLETE))
        folder = work / "scoring" / f"cohort-{target}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        progress(f"scoring: simulating {athletes:,} athletes for ~{target:,} episodes")
        sim = run_child(
            [hamrisk, "simulate", str(folder), "--athletes", str(athletes), "--seed", "9"],
            env=env,
        )
        if sim.returncode != 0:
            raise RuntimeError(f"hamrisk simulate failed: {sim.stderr[-2000:]}")
        out = work / "scoring" / f"predictions-{target}.csv"
        point, failure = _measure(
            folder, out, configs, model, target, athletes, repeats, env, extra, hamrisk
        )
        if failure:
            return ScoringBench(points=tuple(points), command=template, not_measured=failure)
        points.append(point)
        if interactions is not None and target == interactions_at:
            found, failure = _measure(
                folder, out, configs, interactions, target, athletes, repeats, env, extra, hamrisk
            )
            interaction_point = None if failure else found
        shutil.rmtree(folder, ignore_errors=True)
        folder.with_name(folder.name + ".truth.csv").unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    return ScoringBench(
        points=tuple(points),
        command=template,
        model_form=model_form(model.risk_model),
        interactions=interaction_point,
        interactions_form=model_form(interactions.risk_model) if interactions else "",
    )


def _measure(
    folder: Path,
    out: Path,
    configs: Configs,
    model: BenchModel,
    target: int,
    athletes: int,
    repeats: int,
    env: dict[str, str],
    extra: list[str],
    hamrisk: str,
) -> tuple[ScorePoint | None, str | None]:
    """``hamrisk score`` on ``folder`` with ``model`` (repeats), then its bare predict."""
    seconds, peaks, episodes = [], [], 0
    for run in range(repeats):
        progress(f"scoring: hamrisk score ~{target:,} episodes, {model.uri}, run {run + 1}")
        out.unlink(missing_ok=True)
        child = run_child(
            [hamrisk, "score", str(folder), "--out", str(out), "--model", model.uri, *extra],
            env=env,
        )
        if child.returncode not in (0, 1):
            return None, f"`hamrisk score` exited {child.returncode}: " + (
                child.stderr.strip().splitlines() or ["no message"]
            )[-1]
        seconds.append(child.seconds)
        peaks.append(child.max_rss_bytes)
        episodes = _count_rows(out)
    progress(f"scoring: bare Booster.predict on ~{target:,} episodes, {model.uri}")
    predict, matrix_rows = _bare_predict(folder, configs, model, max(3, repeats))
    point = ScorePoint(
        target=target,
        episodes=episodes or matrix_rows,
        athletes=athletes,
        score=Spread(tuple(seconds)),
        peak_bytes=tuple(peaks),
        predict=predict,
    )
    return point, None


def render_scoring(b: ScoringBench) -> str:
    lines = [
        "## Scoring: end to end against bare `Booster.predict`",
        "",
        f"Command, per size: `{b.command}` on a simulated CSV cohort, in a child process;"
        " wall time from start to exit and peak resident memory of the child (`wait4`). Beside"
        " it, in the same run, the benchmark builds the same cohort's feature matrix and times"
        " only the model's LightGBM `Booster.predict` on it (no interval, no factors, no I/O):"
        " the same trees walked by LightGBM's C++ predictor, the reference the overhead is"
        " measured against. The first run of a model version loads it through MLflow and"
        " caches it (the slow maximum of the smallest size); later runs read the cache.",
        "",
    ]
    if not b.points:
        lines.append(f"Not measured: {b.not_measured}.")
        return "\n".join(lines)
    if b.model_form:
        lines += [
            f"The model (what `hamrisk train` picked on the benchmark cohort): {b.model_form}.",
            "",
        ]
    lines += _table(b.points)
    largest = max(b.points, key=lambda p: p.episodes)
    peak = max(largest.peak_bytes)
    ratio = largest.score.median / largest.predict.median
    lines += [
        "",
        f"Aims: end to end within {SCORE_AIM_RATIO:.0f}× of the bare predict —"
        f" {'met' if ratio <= SCORE_AIM_RATIO else '**missed**'} at {largest.episodes:,}"
        f" episodes ({ratio:,.1f}×); {largest.episodes:,} episodes under 2 GiB peak —"
        f" {'met' if peak < SCORE_AIM_PEAK_BYTES else '**missed**'}"
        f" ({peak / 1024**3:.2f} GiB, the largest of the runs).",
    ]
    if b.interactions is not None:
        p = b.interactions
        lines += [
            "",
            f"The same {p.episodes:,}-episode cohort scored by a model whose trees combine"
            f" features ({b.interactions_form}; the first such candidate of `configs/train.yaml`,"
            " trained on the same cohort), beside its own bare predict:",
            "",
            *_table([p]),
        ]
    if b.not_measured:
        lines += ["", f"Stopped early: {b.not_measured}."]
    return "\n".join(lines)


def _table(points: list[ScorePoint] | tuple[ScorePoint, ...]) -> list[str]:
    lines = [
        "| episodes | athletes | `hamrisk score`, s | episodes/s | peak memory, MiB |"
        " bare predict, s | predict episodes/s | ratio score ÷ predict |",
        "|---:|---:|---|---|---|---|---|---|",
    ]
    for p in points:
        ratio = p.score.median / p.predict.median
        peak = max(p.peak_bytes) / 1024**2
        lines.append(
            f"| {p.episodes:,} | {p.athletes:,} | {p.score.format()} |"
            f" {p.score.map(lambda s, n=p.episodes: n / s).format(0)} | {peak:,.0f} |"
            f" {p.predict.format(3)} | {p.predict.map(lambda s, n=p.episodes: n / s).format(0)} |"
            f" {ratio:,.1f}× |"
        )
    return lines
