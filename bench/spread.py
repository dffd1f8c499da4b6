"""Risk spread and intervals against the truth, by training-cohort size, and training time.

For each training size a cohort is simulated (the seed itself) and the configured
procedure is run on all its episodes: the candidate chosen by grouped cross-validation
(``choose_candidate``), then ``fit_candidate`` with its bootstrap ensemble. The model
scores an independent test cohort (another seed, never trained on), and every test
episode's prediction is compared with the simulator's ``true_risk``:

- **slope against the truth**: the true log-odds regressed on the predicted log-odds (1
  when the predicted spread matches the true one; above 1 the risks are too moderate,
  below 1 too extreme); and the usual calibration slope against the realized outcomes,
  IPCW-weighted as ``hamrisk train`` weighs its held-out set;
- **coverage**: the share of true risks inside ``[risk_ci_low, risk_ci_high]`` (nominal 95%),
  overall and in the lowest and highest fifth of predicted risk, with the median width;
- **training time**: seconds for the selection and for the fit with its members.

``python -m bench.spread [--quick]`` runs this section alone and prints it.
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
from bench.quality import TEST_SEED_OFFSET, _prepared
from models.evaluation import calibration_slope, weighted_auc
from pipeline.train import choose_candidate, fit_candidate

LEVEL = 0.95


@dataclass(frozen=True)
class SpreadSettings:
    sizes: tuple[int, ...]
    test_athletes: int
    seed: int = 11


@dataclass(frozen=True)
class SpreadBench:
    settings: SpreadSettings
    # One row per training size.
    results: pd.DataFrame


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def slope_against_truth(true_risk: np.ndarray, risk: np.ndarray) -> float:
    """Least-squares slope of the true log-odds on the predicted log-odds."""
    x, y = _logit(risk), _logit(true_risk)
    x = x - x.mean()
    return float(np.dot(x, y - y.mean()) / np.dot(x, x))


def coverage_row(true_risk: np.ndarray, risk: np.ndarray, low: np.ndarray, high: np.ndarray):
    inside = (low <= true_risk) & (true_risk <= high)
    lowest, highest = np.quantile(risk, [0.2, 0.8])
    return {
        "coverage": float(inside.mean()),
        "coverage_low_fifth": float(inside[risk <= lowest].mean()),
        "coverage_high_fifth": float(inside[risk >= highest].mean()),
        "width": float(np.median(high - low)),
        "zero_width": float(np.mean(high - low <= 0)),
    }


def run_spread(work: Path, configs: Configs, settings: SpreadSettings) -> SpreadBench:
    folder = work / "spread" / "cohort"
    progress(f"spread: test cohort of {settings.test_athletes:,} athletes")
    test, test_truth = _prepared(
        configs.simulation,
        configs.features,
        configs.train,
        settings.test_athletes,
        settings.seed + TEST_SEED_OFFSET,
        folder,
    )
    rows = []
    for size in settings.sizes:
        progress(f"spread: training cohort of {size:,} athletes")
        train, _ = _prepared(
            configs.simulation, configs.features, configs.train, size, settings.seed, folder
        )
        start = time.perf_counter()
        candidate, _ = choose_candidate(train, configs.train)
        chosen = time.perf_counter()
        model = fit_candidate(candidate, train, configs.train)
        fitted = time.perf_counter()
        assessed = model.assess(test.features, LEVEL, contributions=False)
        risk = assessed.risk
        rows.append(
            {
                "athletes": size,
                "episodes": len(train.labels),
                "candidate": candidate.kind
                + (
                    "" if candidate.kind != "lightgbm" else f" {candidate.params.get('num_leaves')}"
                ),
                "rounds": model.params_.get("n_estimators", np.nan),
                "calibration": model.calibration_,
                "members": len(model.members_),
                "slope_truth": slope_against_truth(test_truth, risk),
                "slope_outcomes": calibration_slope(test.labels, risk, test.weights),
                "auc": weighted_auc(test.labels, risk, test.weights),
                "sd_risk": float(np.std(risk)),
                "sd_true_risk": float(np.std(test_truth)),
                **coverage_row(test_truth, risk, assessed.risk_ci_low, assessed.risk_ci_high),
                "select_seconds": chosen - start,
                "fit_seconds": fitted - chosen,
            }
        )
        progress(f"spread: {rows[-1]}")
    return SpreadBench(settings=settings, results=pd.DataFrame(rows))


def render_spread(b: SpreadBench, configs: Configs) -> str:
    m = configs.train.model
    s = b.settings
    lines = [
        "## Risk spread and interval coverage against the truth",
        "",
        f"Each training cohort is simulated with seed {s.seed} and the configured procedure"
        " runs on all its episodes: grouped cross-validation over the candidates"
        f" (`choose_candidate`, {m.cv_folds} folds, LightGBM rounds chosen in every fold by"
        f" early stopping after {m.early_stopping_rounds} rounds without improvement), then"
        f" `fit_candidate` with {m.n_bootstrap} bootstrap members of the whole fit. Scored on"
        f" an independent cohort of {s.test_athletes:,} athletes (seed {s.seed} +"
        f" {TEST_SEED_OFFSET:,}). Slope against the truth: the simulator's true log-odds"
        " regressed on the predicted log-odds (aim 0.9–1.1). Coverage: share of true risks"
        f" inside `[risk_ci_low, risk_ci_high]`, nominal {LEVEL:.0%} (aim 90–98%), overall and in"
        " the lowest and highest fifth of predicted risk. One cohort per size: a single"
        " draw, not a median.",
        "",
        "| athletes | episodes | chosen | rounds | calibration | slope vs truth |"
        " slope vs outcomes | AUC | SD risk (true) | coverage | lowest fifth | highest fifth |"
        " median width | selection, s | fit + members, s |",
        "|---:|---:|---|---:|---|---|---|---|---|---|---|---|---|---:|---:|",
    ]
    for r in b.results.itertuples():
        lines.append(
            f"| {r.athletes:,} | {r.episodes:,} | {r.candidate} | {r.rounds:,.0f} |"
            f" {r.calibration} | {r.slope_truth:.2f} | {r.slope_outcomes:.2f} | {r.auc:.3f} |"
            f" {r.sd_risk:.3f} ({r.sd_true_risk:.3f}) | {r.coverage:.1%} |"
            f" {r.coverage_low_fifth:.1%} | {r.coverage_high_fifth:.1%} | {r.width:.3f} |"
            f" {r.select_seconds:,.0f} | {r.fit_seconds:,.0f} |"
        )
    return "\n".join(lines)


def settings_for(quick: bool) -> SpreadSettings:
    if quick:
        return SpreadSettings(sizes=(500, 1000), test_athletes=2000)
    return SpreadSettings(sizes=(500, 1000, 2000, 5000, 10000, 20000), test_athletes=10000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spread", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="development sizes")
    parser.add_argument("--sizes", type=int, nargs="*", help="training sizes (athletes)")
    parser.add_argument("--test-athletes", type=int, default=None)
    parser.add_argument(
        "--work", type=Path, default=PROJECT_DIR / ".bench" / "work-spread", help="scratch folder"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    settings = settings_for(args.quick)
    settings = SpreadSettings(
        sizes=tuple(args.sizes or settings.sizes),
        test_athletes=args.test_athletes or settings.test_athletes,
    )
    # The project's training config even with --quick: the section measures its procedure.
    configs = load_configs(quick=False)
    bench = run_spread(args.work, configs, settings)
    print(render_spread(bench, configs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
