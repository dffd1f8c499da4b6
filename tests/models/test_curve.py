"""The risk over time of a fitted model: published and fixed timings, and the curve columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.curve import (
    SHAPE_FITTED,
    SHAPE_PUBLISHED,
    FixedTiming,
    PublishedTiming,
    risk_curve,
    weibull_shape_curve,
)
from models.incidence import TimingModel
from tests.models.km_example import EVENT as KM_EVENT
from tests.models.km_example import FOLLOWED as KM_FOLLOWED
from tests.models.km_example import INCIDENCE as KM_INCIDENCE

HORIZONS = (28, 90, 180, 365)
EDGES = (7, 14, 28, 60, 90, 180, 365)


class _Published:
    horizons = HORIZONS
    published_weibull_shape = 0.7
    published_median_days = 24.0


def test_published_shape_has_its_median_where_configured_and_ends_at_one():
    # Half the recurrences within the window fall by the median, by construction.
    at_median = weibull_shape_curve((24, 365), 0.7, 24.0)
    assert at_median[0] == pytest.approx(0.5, abs=1e-9)
    assert at_median[-1] == 1.0
    shape = weibull_shape_curve(HORIZONS, 0.7, 24.0)
    assert np.all(np.diff(shape) > 0) and shape[-1] == 1.0
    with pytest.raises(ValueError, match="median_days"):
        weibull_shape_curve(HORIZONS, 0.7, 400.0)


class _OneYear:
    """A stand-in risk model without a timing."""


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.zeros(n)}, index=pd.Index([f"i{k}" for k in range(n)]))


def test_a_model_without_timing_gets_the_published_shape_and_says_so():
    published = PublishedTiming.from_config(_Published)
    risk = np.array([0.1, 0.3, 0.6])
    low, high = risk * 0.8, np.minimum(risk * 1.2, 1.0)
    frame, source = risk_curve(_OneYear(), _frame(3), risk, low, high, published)
    assert source == SHAPE_PUBLISHED
    assert list(frame.columns[:3]) == ["risk_28d", "risk_28d_ci_low", "risk_28d_ci_high"]
    assert "risk_365d" not in frame.columns
    curve = frame[["risk_28d", "risk_90d", "risk_180d"]].to_numpy()
    np.testing.assert_allclose(curve, risk[:, None] * np.asarray(published.shape[:-1]))
    # Monotone in the horizon, below the one-year risk, and inside its own interval.
    assert np.all(np.diff(np.c_[curve, risk], axis=1) >= 0)
    for h in (28, 90, 180):
        assert np.all(frame[f"risk_{h}d_ci_low"] <= frame[f"risk_{h}d"])
        assert np.all(frame[f"risk_{h}d"] <= frame[f"risk_{h}d_ci_high"])


def test_a_fitted_timing_gives_the_kaplan_meier_shape_and_its_fixed_form_the_same_numbers():
    X = pd.DataFrame({"x": np.zeros(len(KM_FOLLOWED))})
    timing = TimingModel(EDGES, HORIZONS, max_rounds=0, n_bootstrap=5, random_state=0).fit(
        X, KM_FOLLOWED, KM_EVENT
    )
    model = _OneYear()
    model.timing_ = timing
    risk = np.full(len(X), 0.4)
    published = PublishedTiming.from_config(_Published)
    frame, source = risk_curve(model, X, risk, risk * 0.5, risk * 1.5, published)
    assert source == SHAPE_FITTED
    np.testing.assert_allclose(
        frame[["risk_28d", "risk_90d", "risk_180d"]].to_numpy()[0],
        0.4 * KM_INCIDENCE[:-1] / KM_INCIDENCE[-1],
    )
    fixed = timing.fixed()
    assert isinstance(fixed, FixedTiming) and fixed.interval_available
    compact = _OneYear()
    compact.timing_ = fixed
    again, source = risk_curve(compact, X, risk, risk * 0.5, risk * 1.5, published)
    assert source == SHAPE_FITTED
    pd.testing.assert_frame_equal(again, frame)
