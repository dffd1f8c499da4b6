"""Follow-up and censoring weights on simulated cohorts: what the follow-up rule changes and
how uneven the IPCW weights are.

For each cohort size, a cohort as simulated and the same cohort with its follow-up survey
lagging the clinic's records (a share of athletes' ``observed_until`` moved earlier, as
real exports do). On each: how many training episodes the follow-up rule lengthened
(``pipeline.episodes``), the largest censoring weight, Kish's effective sample size, and the
weighted recurrence rate against the simulator's mean true risk over the episodes whose
window closed before the export (the set the weights speak for). The simulator's dropout
depends on level, age and phase 3, which the censoring model is given: that check shows
the weights work when the model of dropout is right, not that it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.configs import Configs
from bench.measure import progress
from pipeline.train import prepare_training_data
from pipeline.validate import validate_cohort
from simulator.simulate import simulate_cohort, write_simulated

# A third of athletes' follow-up rows stop 1-120 days before their true last contact
# (judgement: a survey sent a few times a year).
LAG_SHARE = 1 / 3
LAG_MAX_DAYS = 120


@dataclass(frozen=True)
class CensoringRow:
    athletes: int
    variant: str
    episodes: int
    athletes_behind: int
    follow_up_from_records: int
    known: int
    max_weight: float
    effective_sample_size: float
    weighted_rate: float
    true_rate: float


def _lag_follow_up(folder: Path, random_state: int) -> None:
    """Move a share of athletes' ``observed_until`` earlier, in place."""
    path = folder / "follow_up.csv"
    follow_up = pd.read_csv(path, dtype=str)
    rng = np.random.default_rng(random_state)
    lagged = rng.random(len(follow_up)) < LAG_SHARE
    days = pd.to_timedelta(rng.integers(1, LAG_MAX_DAYS + 1, len(follow_up)), unit="D")
    dates = pd.to_datetime(follow_up["observed_until"])
    follow_up["observed_until"] = dates.where(~lagged, dates - days).dt.strftime("%Y-%m-%d")
    follow_up.to_csv(path, index=False)


def run_censoring(work: Path, configs: Configs, sizes: tuple[int, ...]) -> list[CensoringRow]:
    """Both variants of one simulated cohort per size."""
    rows = []
    today = configs.simulation.export_date
    window = configs.features.outcome.window_days
    for athletes in sizes:
        sim = simulate_cohort(configs.simulation, athletes, configs.simulation.random_state)
        truth = sim.truth[["injury_id", "true_risk"]].astype({"injury_id": "string"})
        for variant in ("as simulated", "survey lagging"):
            progress(f"censoring: {athletes:,} athletes, {variant}")
            folder = work / "censoring" / f"{athletes}-{variant.split()[0]}"
            write_simulated(sim, folder, "csv")
            if variant == "survey lagging":
                _lag_follow_up(folder, configs.simulation.random_state)
            validation = validate_cohort(folder, today=today)
            data = prepare_training_data(validation.cohort, configs.features, configs.train, today)
            diagnostics = data.weight_diagnostics
            known = data.weights > 0
            rate = float(np.sum(data.weights * np.nan_to_num(data.labels)) / data.weights.sum())
            closed = data.episodes["administrative_days"].to_numpy() >= window
            risk = (
                data.episodes.loc[closed, ["injury_id"]]
                .merge(truth, on="injury_id", how="left")["true_risk"]
                .to_numpy(dtype=np.float64)
            )
            rows.append(
                CensoringRow(
                    athletes=athletes,
                    variant=variant,
                    episodes=len(data.episodes),
                    athletes_behind=validation.follow_up.athletes,
                    follow_up_from_records=data.follow_up_from_records,
                    known=int(known.sum()),
                    max_weight=diagnostics.max_weight,
                    effective_sample_size=diagnostics.effective_sample_size,
                    weighted_rate=rate,
                    true_rate=float(np.nanmean(risk)),
                )
            )
    return rows


def render_censoring(rows: list[CensoringRow], configs: Configs) -> str:
    censoring = configs.train.censoring
    if not rows:
        return "## Follow-up and censoring weights\n\nNot measured: no sizes requested."
    lines = [
        "## Follow-up and censoring weights",
        "",
        "Training data (`prepare_training_data`) of simulated cohorts, as simulated and with a"
        f" third of the follow-up rows stopping up to {LAG_MAX_DAYS} days before the athlete's"
        " true last contact. *Lengthened*: training episodes whose follow-up the athlete's own"
        " later records extended (`pipeline/episodes.py`). Weights: IPCW,"
        f" `{censoring.method}` on {', '.join(censoring.covariates) or 'nothing'}, truncated at"
        f" {censoring.max_weight:g}; the export date is administrative censoring. *Weighted"
        " rate*: the IPCW recurrence rate; *true*: the simulator's mean true risk of the"
        " episodes whose window closed before the export.",
        "",
        "| athletes | follow-up | episodes | athletes behind | lengthened | known outcomes |"
        " largest weight | effective n (Kish) | weighted rate | true |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.athletes:,} | {r.variant} | {r.episodes:,} | {r.athletes_behind:,} |"
            f" {r.follow_up_from_records:,} | {r.known:,} | {r.max_weight:.2f} |"
            f" {r.effective_sample_size:,.0f} | {r.weighted_rate:.3f} | {r.true_rate:.3f} |"
        )
    return "\n".join(lines)
