"""The cumulative-incidence bench: its world's truth is a curve, and a small run completes."""

from __future__ import annotations

import numpy as np

from bench.incidence import run, simulate_world
from pipeline.config import TrainConfig, load_config


def test_true_curves_rise_to_the_one_year_risk():
    horizons = (28, 90, 180, 365)
    for covariate_timing in (False, True):
        world = simulate_world(
            2000, random_state=1, covariate_timing=covariate_timing, horizons=horizons
        )
        truth = world["truth"]
        assert (np.diff(truth, axis=1) >= 0).all()
        np.testing.assert_allclose(truth[:, -1], world["risk"], rtol=1e-12)
        recurred = ~np.isnan(world["event"])
        assert (world["event"][recurred] <= np.minimum(world["followed"][recurred], 365)).all()
    # Shared timing: every episode has the same shape; covariate timing: they differ.
    shared = simulate_world(200, 2, False, horizons)
    shape = shared["truth"] / shared["risk"][:, None]
    np.testing.assert_allclose(shape, np.tile(shape[0], (200, 1)))


def test_a_small_run_reports_both_methods_at_every_horizon():
    config = load_config(TrainConfig, name="train").incidence
    results = run([400], seeds=1, test_size=300, config=config)
    assert set(results["method"]) == {"timing model", "cohort KM shape"}
    assert len(results) == 4  # two worlds x two methods
    mse = results[[f"mse_{h}d" for h in config.horizons]].to_numpy()
    assert np.isfinite(mse).all() and (mse[:, -1] < 1e-20).all()
