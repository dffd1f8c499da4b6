"""Risk over time against the simulator's true curves: hamrisk's timing against the peer.

For each timing of the simulated world (``--timing episode``: a rushed return brings the
recurrence earlier; ``fixed``: one timing curve for everyone) a cohort of ``athletes`` is
simulated and the configured procedure is trained on it as ``hamrisk train`` does (the
candidate chosen by grouped cross-validation, its fit with the bootstrap members, and the
timing model on the same episodes, censoring weights and athletes). An independent cohort
(another seed) is scored, and each episode's curve is compared with the simulator's
``true_risk_{h}d``:

- **hamrisk**: the one-year risk times the episode's fitted timing shape
  (``models.curve.risk_curve``, as the pyfunc and ``hamrisk score`` give it);
- **peer**: the same one-year risk times the training cohort's Kaplan–Meier shape
  (``models.kaplan_meier.spread_by_cohort_shape``), one timing for all.

Both share the one-year risk, so their difference is the timing's. At each horizon:
mean squared error against the true cumulative incidence, the ratio of mean predicted to
mean true incidence (calibration against the truth), and observed/expected against the
test cohort's outcomes (Kaplan–Meier, ``horizon_calibration``).

``python -m bench.curves [--athletes 2000] [--test 3000] [--seed 23]`` runs this section
alone.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.configs import Configs, load_configs
from bench.measure import PROJECT_DIR, progress
from bench.quality import TEST_SEED_OFFSET, _cohort
from models.curve import PublishedTiming, risk_curve
from models.kaplan_meier import horizon_calibration, spread_by_cohort_shape
from pipeline.train import choose_candidate, fit_candidate, fit_timing, prepare_training_data

TIMINGS = ("episode", "fixed")


@dataclass(frozen=True)
class CurvesSettings:
    athletes: int = 2000
    test_athletes: int = 3000
    seed: int = 23


@dataclass(frozen=True)
class CurvesBench:
    settings: CurvesSettings
    # One row per (timing, method, horizon).
    results: pd.DataFrame
    rounds: dict[str, int]
    # The linear timing effects' penalty kept per timing (None: none kept).
    penalties: dict[str, float | None]
    # Per timing: the share of the training cohort's recurrences within the window that
    # fell by the first horizon, as drawn (uncensored) and as the simulator's truth expects.
    train_early_share: dict[str, tuple[float, float]]


def _truth_at(data, truth: pd.DataFrame, horizons: list[int]) -> np.ndarray:
    columns = [f"true_risk_{h}d" for h in horizons]
    merged = data.episodes[["injury_id"]].merge(
        truth[["injury_id", *columns]], on="injury_id", how="left", validate="1:1"
    )
    values = merged[columns].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise RuntimeError("an episode has no true curve in the simulator's truth")
    return values


def _prepared(configs: Configs, timing: str, athletes: int, seed: int, folder: Path):
    sim = configs.simulation.in_world(None, timing=timing)
    cohort, truth = _cohort(sim, athletes, seed, folder)
    data = prepare_training_data(cohort, configs.features, configs.train, sim.export_date)
    return data, truth


def run_curves(work: Path, configs: Configs, settings: CurvesSettings) -> CurvesBench:
    incidence = configs.train.incidence
    horizons = [int(h) for h in incidence.horizons]
    folder = work / "curves" / "cohort"
    rows, rounds, penalties, early = [], {}, {}, {}
    for timing in TIMINGS:
        progress(f"curves: timing {timing}, training cohort of {settings.athletes:,} athletes")
        train, train_truth = _prepared(configs, timing, settings.athletes, settings.seed, folder)
        test, test_truth = _prepared(
            configs, timing, settings.test_athletes, settings.seed + TEST_SEED_OFFSET, folder
        )
        truth = _truth_at(test, test_truth, horizons)
        start = time.perf_counter()
        candidate, _ = choose_candidate(train, configs.train)
        model = fit_candidate(candidate, train, configs.train)
        model.timing_ = fit_timing(train, configs.train)
        seconds = time.perf_counter() - start
        rounds[timing] = int(model.timing_.n_rounds_)
        penalties[timing] = model.timing_.linear_penalty_
        early[timing] = _early_share(train, train_truth, horizons[0])
        assessed = model.assess(test.features, contributions=False)
        curve, _ = risk_curve(
            model, test.features, assessed.risk, assessed.risk_ci_low, assessed.risk_ci_high,
            PublishedTiming.from_config(incidence),
        )  # fmt: skip
        ours = np.column_stack(
            [*(curve[f"risk_{h}d"].to_numpy() for h in horizons[:-1]), assessed.risk]
        )
        peer = spread_by_cohort_shape(
            assessed.risk,
            train.episodes["followed_days"].to_numpy(dtype=np.float64),
            train.episodes["event_days"].to_numpy(dtype=np.float64),
            horizons,
        )
        followed = test.episodes["followed_days"].to_numpy(dtype=np.float64)
        event = test.episodes["event_days"].to_numpy(dtype=np.float64)
        for method, predicted in (("hamrisk", ours), ("peer (cohort KM shape)", peer)):
            oe = horizon_calibration(followed, event, predicted, horizons)
            mse = ((predicted - truth) ** 2).mean(axis=0)
            for k, h in enumerate(horizons):
                rows.append(
                    {
                        "timing": timing,
                        "method": method,
                        "horizon_days": h,
                        "mse": float(mse[k]),
                        "mean_predicted": float(predicted[:, k].mean()),
                        "mean_true": float(truth[:, k].mean()),
                        "predicted_over_true": float(predicted[:, k].mean() / truth[:, k].mean()),
                        "oe_ratio": float(oe["oe_ratio"].iloc[k]),
                        "oe_low": float(oe["oe_low"].iloc[k]),
                        "oe_high": float(oe["oe_high"].iloc[k]),
                        "episodes": len(train.labels),
                        "fit_seconds": seconds,
                    }
                )
    return CurvesBench(settings, pd.DataFrame(rows), rounds, penalties, early)


def _early_share(data, truth: pd.DataFrame, horizon: int) -> tuple[float, float]:
    """Among the training episodes' recurrences within the window (the latent, uncensored
    ones of the truth file), the share by ``horizon``: drawn, and expected
    (``sum true_risk_{horizon}d / sum true_risk``)."""
    t = data.episodes[["injury_id"]].merge(truth, on="injury_id", how="left", validate="1:1")
    recurred = t["recurred"].to_numpy(dtype=bool)
    drawn = float(np.mean(t["days_to_recurrence"].to_numpy(dtype=np.float64)[recurred] <= horizon))
    expected = float(t[f"true_risk_{horizon}d"].sum() / t["true_risk"].sum())
    return drawn, expected


def render_curves_bench(bench: CurvesBench) -> str:
    s = bench.settings
    lines = [
        "## Risk over time against the true curves",
        "",
        f"Trained on {s.athletes:,} simulated athletes, scored on an independent cohort of "
        f"{s.test_athletes:,} (seed {s.seed}); hamrisk's fitted timing against the peer, the "
        "same one-year risk spread by the training cohort's Kaplan–Meier shape. MSE against "
        "the simulator's true cumulative incidence; predicted/true is the mean prediction "
        "over the mean true incidence; O/E is the test cohort's Kaplan–Meier incidence over "
        "the mean prediction (95% interval). Timing boosting rounds kept: "
        + ", ".join(f"{k} {v}" for k, v in bench.rounds.items())
        + "; linear timing effects' penalty kept: "
        + ", ".join(f"{k} {'none' if v is None else f'{v:g}'}" for k, v in bench.penalties.items())
        + ". Share of the training cohort's recurrences by the first horizon, drawn vs "
        "expected by the truth (a gap is the training sample's own timing, which both "
        "methods learn): "
        + ", ".join(f"{k} {a:.3f} vs {b:.3f}" for k, (a, b) in bench.train_early_share.items())
        + ".",
        "",
        "| timing | horizon | hamrisk MSE | peer MSE | hamrisk/peer | hamrisk pred/true | "
        "peer pred/true | hamrisk O/E (95% CI) | peer O/E (95% CI) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    r = bench.results.set_index(["timing", "method", "horizon_days"])
    for timing in TIMINGS:
        for h in sorted(bench.results["horizon_days"].unique()):
            ours = r.loc[(timing, "hamrisk", h)]
            peer = r.loc[(timing, "peer (cohort KM shape)", h)]
            lines.append(
                f"| {timing} | {h} d | {ours['mse']:.2e} | {peer['mse']:.2e} | "
                f"{ours['mse'] / peer['mse']:.2f} | {ours['predicted_over_true']:.2f} | "
                f"{peer['predicted_over_true']:.2f} | {ours['oe_ratio']:.2f} "
                f"({ours['oe_low']:.2f}–{ours['oe_high']:.2f}) | {peer['oe_ratio']:.2f} "
                f"({peer['oe_low']:.2f}–{peer['oe_high']:.2f}) |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=CurvesSettings.athletes)
    parser.add_argument("--test", type=int, default=CurvesSettings.test_athletes)
    parser.add_argument("--seed", type=int, default=CurvesSettings.seed)
    parser.add_argument("--quick", action="store_true", help="the quick training settings")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    settings = CurvesSettings(args.athletes, args.test, args.seed)
    bench = run_curves(PROJECT_DIR / ".bench" / "work-curves", load_configs(args.quick), settings)
    print(render_curves_bench(bench))
    print(bench.results.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
