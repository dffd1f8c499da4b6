"""Cumulative incidence at 28/90/180/365 days: the timing model against the cohort-shape peer.

``python -m bench.incidence [--sizes 500 2000 10000] [--seeds 3] [--test 5000]``

Not part of ``make bench``. The world is drawn here, with assumptions the timing model does
not start from: continuous Weibull recurrence times (shape 0.6, a falling hazard), their
scale shortened smoothly by two features (one of which also raises the one-year risk), and
loss to follow-up uniform over the year for 30% of episodes. Without covariate timing
every episode shares one Weibull scale. Both curves spread the *true* one-year risk over
time, so the error measured is the timing's alone: the model's per-episode shape
(:class:`~models.incidence.TimingModel`) against the cohort's Kaplan–Meier shape
(:func:`~models.kaplan_meier.spread_by_cohort_shape`). Mean squared error against the true
cumulative incidence at each horizon, on an independent test cohort, averaged over seeds.
The configured timing's ``linear_features`` name clinical columns this world lacks; here
they are all its numeric features, ``x1`` to ``x5`` (:data:`LINEAR_FEATURES`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.special import expit

from models.incidence import TimingModel
from models.kaplan_meier import spread_by_cohort_shape
from pipeline.config import IncidenceConfig, TrainConfig, load_config

WEIBULL_SHAPE = 0.6
BASE_SCALE_DAYS = 120.0
LOST_SHARE = 0.3
# The features given a linear timing effect before the trees: every numeric one.
LINEAR_FEATURES = tuple(f"x{j}" for j in range(1, 6))


def _weibull_cdf(days: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return -np.expm1(-((days / scale) ** WEIBULL_SHAPE))


def simulate_world(
    n: int, random_state: int, covariate_timing: bool, horizons: tuple[int, ...]
) -> dict:
    """Episodes with features, follow-up, recurrences and the true cumulative incidence."""
    rng = np.random.default_rng(random_state)
    x = rng.normal(size=(n, 5))
    X = pd.DataFrame(x, columns=[f"x{j}" for j in range(1, 6)]).assign(
        site=pd.array(rng.choice(["a", "b", "c"], size=n), dtype="string")
    )
    risk = expit(-0.8 + 0.5 * x[:, 0] + 0.4 * x[:, 1] - 0.3 * x[:, 2])
    scale = np.full(n, BASE_SCALE_DAYS)
    if covariate_timing:
        scale = BASE_SCALE_DAYS * np.exp(-0.8 * x[:, 3] - 0.5 * (x[:, 0] > 0))
    days_at = np.asarray(horizons, dtype=np.float64)
    year = _weibull_cdf(np.full(n, days_at[-1]), scale)
    truth = risk[:, None] * _weibull_cdf(days_at[None, :], scale[:, None]) / year[:, None]
    # A recurrence within the year with probability `risk`, at a Weibull time truncated to
    # the year (inverse CDF of the truncated distribution).
    recurs = rng.random(n) < risk
    days = scale * (-np.log1p(-rng.random(n) * year)) ** (1 / WEIBULL_SHAPE)
    followed = np.where(rng.random(n) < LOST_SHARE, rng.uniform(1, 365, size=n), 400.0)
    event = np.where(recurs & (days <= followed), days, np.nan)
    groups = rng.integers(0, max(1, int(n / 1.5)), size=n)
    return {"X": X, "followed": followed, "event": event, "groups": groups, "risk": risk,
            "truth": truth}  # fmt: skip


def run(sizes: list[int], seeds: int, test_size: int, config: IncidenceConfig) -> pd.DataFrame:
    """MSE at each horizon of the model and the peer, one row per world, size, seed, method."""
    horizons = config.horizons
    config = config.model_copy(update={"linear_features": LINEAR_FEATURES})
    rows = []
    for covariate_timing in (False, True):
        for n in sizes:
            for seed in range(seeds):
                train = simulate_world(n, 1000 * seed + n, covariate_timing, horizons)
                test = simulate_world(test_size, 10_000_019 + seed, covariate_timing, horizons)
                start = time.perf_counter()
                model = TimingModel.from_config(config, random_state=seed).fit(
                    train["X"], train["followed"], train["event"], train["groups"]
                )
                seconds = time.perf_counter() - start
                curve = test["risk"][:, None] * model.predict_shape(test["X"])
                peer = spread_by_cohort_shape(
                    test["risk"], train["followed"], train["event"], horizons
                )
                for name, predicted in (("timing model", curve), ("cohort KM shape", peer)):
                    mse = ((predicted - test["truth"]) ** 2).mean(axis=0)
                    rows.append(
                        {
                            "timing": "covariate" if covariate_timing else "shared",
                            "episodes": n,
                            "seed": seed,
                            "method": name,
                            **{f"mse_{h}d": m for h, m in zip(horizons, mse, strict=True)},
                            "rounds": model.n_rounds_ if name == "timing model" else np.nan,
                            "linear": (
                                model.linear_ is not None if name == "timing model" else np.nan
                            ),
                            "fit_s": seconds if name == "timing model" else np.nan,
                        }
                    )
                print(f"timing={covariate_timing} n={n} seed={seed} rounds={model.n_rounds_} "
                      f"fit {seconds:.1f}s", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10_000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test", type=int, default=5000)
    args = parser.parse_args()
    config = load_config(TrainConfig, name="train").incidence
    results = run(args.sizes, args.seeds, args.test, config)
    mse = [c for c in results.columns if c.startswith("mse_")]
    summary = results.groupby(["timing", "episodes", "method"], sort=False)[
        [*mse, "rounds", "linear", "fit_s"]
    ].mean()
    with pd.option_context("display.width", 160, "display.float_format", "{:.2e}".format):
        print(summary.to_string())


if __name__ == "__main__":
    main()
