"""Simulate a cohort and validate it: seconds, and rows per second per table and in total."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Spread, progress, repeat, timed
from pipeline.cohort import TABLES
from pipeline.config import load_config
from pipeline.validate import validate_cohort
from simulator.config import SimulationConfig, Timing
from simulator.simulate import SimulatedCohort, simulate_cohort, write_simulated

# Aims from the cohort-contract specification, on the 2-core reference machine.
SIMULATE_AIM_SECONDS = 30.0
VALIDATE_AIM_ROWS_PER_SECOND = 200_000.0


@dataclass(frozen=True)
class DataBench:
    athletes: int
    fmt: str
    world: str
    timing: str
    simulate: Spread
    write: Spread
    validate: Spread
    rows: dict[str, int]
    table_seconds: dict[str, Spread]
    set_aside: int


def _table_seconds(folder: Path, today) -> dict[str, float]:
    """Per table: reading it and checking its single-table rules (cross-table rules apart)."""
    from pipeline import validate as stage
    from pipeline.io import find_table_file, read_table

    seconds = {}
    for table in TABLES:
        elapsed, _ = timed(
            lambda t=table: stage._single_table_failures(
                read_table(find_table_file(folder, t), t), today
            )
        )
        seconds[table] = elapsed
    return seconds


def make_cohort(
    config: SimulationConfig,
    athletes: int,
    random_state: int,
    *,
    world: str | None = None,
    timing: Timing | None = None,
) -> SimulatedCohort:
    """A bench cohort drawn in ``world`` (default: the config's) with ``timing`` (default: its).

    The worlds that disagree with the papers (``unlike_papers``) or say little (``weak``) are
    the ones a model built from the published effects cannot simply agree with.
    """
    return simulate_cohort(config.in_world(world, timing=timing), athletes, random_state)


def run_data(
    work: Path,
    athletes: int,
    repeats: int,
    fmt: str = "csv",
    *,
    world: str | None = None,
    timing: Timing | None = None,
) -> DataBench:
    """Simulate ``athletes`` athletes ``repeats`` times, write once per run, validate the result."""
    config = load_config(SimulationConfig, name="simulation").in_world(world, timing=timing)
    folder = work / "data" / "cohort"
    sim_times, write_times = [], []
    for run in range(repeats):
        progress(f"data: simulate {athletes:,} athletes, run {run + 1}/{repeats}")
        elapsed, sim = timed(lambda: make_cohort(config, athletes, config.random_state))
        sim_times.append(elapsed)
        if folder.exists():
            shutil.rmtree(folder)
        elapsed, _ = timed(lambda s=sim: write_simulated(s, folder, fmt))
        write_times.append(elapsed)
        del sim
    today = config.export_date
    progress(f"data: validate {athletes:,} athletes x{repeats}")
    validate_spread, result = repeat(lambda: validate_cohort(folder, today=today), repeats)
    per_table: dict[str, list[float]] = {t: [] for t in TABLES}
    for _ in range(repeats):
        for table, seconds in _table_seconds(folder, today).items():
            per_table[table].append(seconds)
    return DataBench(
        athletes=athletes,
        fmt=fmt,
        world=config.world,
        timing=config.recurrence.timing,
        simulate=Spread(tuple(sim_times)),
        write=Spread(tuple(write_times)),
        validate=validate_spread,
        rows={t: result.counts[t].rows for t in TABLES},
        table_seconds={t: Spread(tuple(v)) for t, v in per_table.items()},
        set_aside=sum(c.set_aside for c in result.counts.values()),
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render_data(b: DataBench) -> str:
    total_rows = sum(b.rows.values())
    rate = b.validate.map(lambda s: total_rows / s)
    lines = [
        "## Data: simulate and validate",
        "",
        f"`simulate_cohort` for {b.athletes:,} athletes (seed from `configs/simulation.yaml`;"
        f" world {b.world}, recurrence timing {b.timing}),",
        f"written as {b.fmt.upper()} with `write_simulated`, then `validate_cohort` on the folder"
        " (reading, every single-table rule, the cross-table cascade).",
        "",
        "| step | seconds | aim |",
        "|---|---|---|",
        f"| simulate (in memory) | {b.simulate.format()} | < {SIMULATE_AIM_SECONDS:.0f} s:"
        f" {_verdict(b.simulate.median < SIMULATE_AIM_SECONDS)} |",
        f"| write tables and truth ({b.fmt}) | {b.write.format()} | |",
        f"| validate (whole cohort) | {b.validate.format()} | |",
        "",
        "| table | rows | read + single-table rules, s | rows/s |",
        "|---|---:|---|---|",
    ]
    for table, rows in b.rows.items():
        seconds = b.table_seconds[table]
        lines.append(
            f"| {table} | {rows:,} | {seconds.format()} |"
            f" {seconds.map(lambda s, r=rows: r / s).format(0)} |"
        )
    lines += [
        f"| **total, `validate_cohort`** (with cross-table rules) | {total_rows:,} |"
        f" {b.validate.format()} | {rate.format(0)} |",
        "",
        f"Validation throughput aim > {VALIDATE_AIM_ROWS_PER_SECOND:,.0f} rows/s:"
        f" {_verdict(rate.median > VALIDATE_AIM_ROWS_PER_SECOND)}"
        f" (median {rate.median:,.0f} rows/s). Records set aside: {b.set_aside:,}"
        " (a simulated cohort breaks no rule).",
    ]
    return "\n".join(lines)
