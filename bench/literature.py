"""The literature model alone and after closed-testing updates, by clinic size.

For each seed, training cohorts of each size are simulated (seed itself) and one independent
test cohort (another seed, never seen). The literature model is centred on the training
cohort's feature frame (its reference population), then updated by closed testing on the
training cohort's outcomes with IPCW weights; both are scored on the test cohort:

- MSE to the simulator's true risk of every test episode;
- AUC against the realised outcomes, IPCW-weighted as ``hamrisk train`` weights its held-out
  set (``bench.quality``);
- the step the closed testing procedure chose, and the revision's penalty strength.

Not part of ``make bench``'s report. Run: ``python -m bench.literature [--sizes 50 100 ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.quality import _prepared
from models.evaluation import calibration_slope, weighted_auc
from models.literature import LiteratureModel
from models.updating import update_from_config
from pipeline.config import (
    FeaturesConfig,
    LiteratureConfig,
    SimulationConfig,
    TrainConfig,
    load_config,
)

TEST_SEED_OFFSET = 1_000_003


def run(sizes: list[int], seeds: list[int], test_athletes: int) -> pd.DataFrame:
    sim = load_config(SimulationConfig, name="simulation")
    features = load_config(FeaturesConfig, name="features")
    train = load_config(TrainConfig, name="train")
    literature = load_config(LiteratureConfig, name="literature")
    updating = literature.updating
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cohort"
        for seed in seeds:
            test, test_truth = _prepared(
                sim, features, train, test_athletes, seed + TEST_SEED_OFFSET, folder
            )
            for size in sizes:
                data, _ = _prepared(sim, features, train, size, seed, folder)
                base = LiteratureModel.from_config(literature).fit(data.features)
                result = update_from_config(
                    base, data.features, data.labels, data.weights, data.groups, updating
                )
                for name, model in (("literature", base), ("updated", result.model)):
                    risk = model.predict_risk(test.features)
                    rows.append(
                        {
                            "seed": seed,
                            "athletes": size,
                            "episodes": len(data.labels),
                            "known": int(np.sum(data.weights > 0)),
                            "model": name,
                            "step": result.step if name == "updated" else "-",
                            "penalty": result.penalty_strength if name == "updated" else None,
                            "mse": float(np.mean((risk - test_truth) ** 2)),
                            "auc": weighted_auc(test.labels, risk, test.weights),
                            "slope": calibration_slope(test.labels, risk, test.weights),
                            "mean_risk": float(risk.mean()),
                            "mean_true": float(test_truth.mean()),
                            # MSE of the best constant: the variance of the true risk.
                            "mse_constant": float(np.var(test_truth)),
                        }
                    )
                print(pd.DataFrame(rows[-2:]).to_string(index=False, header=False), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 250, 500, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[20261126])
    parser.add_argument("--test-athletes", type=int, default=10_000)
    args = parser.parse_args()
    table = run(args.sizes, args.seeds, args.test_athletes)
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
