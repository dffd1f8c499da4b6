"""Kaplan–Meier incidence, its interval, the cohort shape and calibration at each horizon."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.kaplan_meier import (
    cohort_shape,
    horizon_calibration,
    km_incidence,
    observed_incidence,
    spread_by_cohort_shape,
)
from tests.models.km_example import EVENT, FOLLOWED, INCIDENCE

HORIZONS = (28, 90, 180, 365)


def test_hand_computed_incidence_counts_and_ties():
    table = km_incidence(FOLLOWED, EVENT, HORIZONS)
    assert list(table.index) == list(HORIZONS)
    np.testing.assert_allclose(table["incidence"], INCIDENCE, rtol=1e-12)
    assert list(table["at_risk"]) == [6, 4, 3, 2]
    assert list(table["events"]) == [4, 5, 5, 6]
    assert (table["episodes"] == 12).all()


def test_hand_computed_exponential_greenwood_interval_at_28_days():
    # Greenwood sum to day 28: 1/(12*11) + 2/(10*8) + 1/(8*7). On the log(-log S) scale the
    # standard error is sqrt(sum) / |log S|, so S's bounds are S ** exp(+-z * se) and the
    # incidence's are one minus them, swapped.
    s = 77 / 120
    greenwood = 1 / (12 * 11) + 2 / (10 * 8) + 1 / (8 * 7)
    se = math.sqrt(greenwood) / abs(math.log(s))
    z = 1.959963984540054
    low, high = 1 - s ** math.exp(-z * se), 1 - s ** math.exp(z * se)
    table = km_incidence(FOLLOWED, EVENT, HORIZONS)
    assert table.loc[28, "incidence_low"] == pytest.approx(low, rel=1e-9)
    assert table.loc[28, "incidence_high"] == pytest.approx(high, rel=1e-9)
    assert (table["incidence_low"] <= table["incidence"]).all()
    assert (table["incidence"] <= table["incidence_high"]).all()


def test_interval_narrows_with_more_episodes():
    one = km_incidence(FOLLOWED, EVENT, HORIZONS)
    four = km_incidence(np.tile(FOLLOWED, 4), np.tile(EVENT, 4), HORIZONS)
    np.testing.assert_allclose(four["incidence"], one["incidence"])
    assert (
        (four["incidence_high"] - four["incidence_low"])
        < (one["incidence_high"] - one["incidence_low"])
    ).all()


def test_no_recurrence_yet_gives_an_exact_binomial_upper_bound():
    # Nobody recurs by day 28 among 10 followed past it: 0/10, upper bound 1 - 0.025^(1/10).
    followed = np.full(10, 400.0)
    event = np.r_[np.full(5, np.nan), np.full(5, 100.0)]
    table = km_incidence(followed, event, HORIZONS)
    assert table.loc[28, "incidence"] == 0 and table.loc[28, "incidence_low"] == 0
    assert table.loc[28, "incidence_high"] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert table.loc[180, "incidence"] == pytest.approx(0.5)


def test_cohort_shape_and_the_peer_curve():
    shape = cohort_shape(FOLLOWED, EVENT, HORIZONS)
    np.testing.assert_allclose(shape, INCIDENCE / INCIDENCE[-1])
    assert shape[-1] == 1.0
    risk = np.array([0.1, 0.3, 0.0])
    peer = spread_by_cohort_shape(risk, FOLLOWED, EVENT, HORIZONS)
    np.testing.assert_array_equal(peer[:, -1], risk)
    assert (np.diff(peer, axis=1) >= 0).all()


def test_groups_are_estimated_separately():
    by = np.where(np.arange(12) % 2 == 0, "high", "low")
    frame = observed_incidence(FOLLOWED, EVENT, HORIZONS, by=by)
    assert list(frame["group"].unique()) == ["high", "low"]
    for group in ("high", "low"):
        rows = by == group
        alone = km_incidence(FOLLOWED[rows], EVENT[rows], HORIZONS)
        got = frame[frame["group"] == group].set_index("horizon_days")
        np.testing.assert_allclose(got["incidence"], alone["incidence"])


def test_calibration_is_observed_over_expected():
    exact = np.tile(INCIDENCE, (12, 1))
    frame = horizon_calibration(FOLLOWED, EVENT, exact, HORIZONS)
    np.testing.assert_allclose(frame["oe_ratio"], 1.0)
    assert (frame["oe_low"] < 1).all() and (frame["oe_high"] > 1).all()
    over = horizon_calibration(FOLLOWED, EVENT, 1.5 * exact, HORIZONS)
    np.testing.assert_allclose(over["oe_ratio"], 2 / 3)
    np.testing.assert_allclose(over["oe_low"], frame["oe_low"] / 1.5)


def test_calibration_by_band_uses_each_bands_mean_prediction():
    by = pd.Series(np.where(np.arange(12) < 6, "high", "low"))
    predicted = np.tile([0.1, 0.2, 0.3, 0.4], (12, 1))
    predicted[:6] *= 2
    frame = horizon_calibration(FOLLOWED, EVENT, predicted, HORIZONS, by=by)
    high = frame[frame["group"] == "high"]
    np.testing.assert_allclose(high["expected"], [0.2, 0.4, 0.6, 0.8])


@pytest.mark.parametrize(
    ("followed", "event", "horizons", "kwargs", "match"),
    [
        ([10.0, -1.0], [np.nan, np.nan], HORIZONS, {}, "row 1"),
        ([10.0, 20.0], [np.nan, 30.0], HORIZONS, {}, "event_days must lie"),
        ([10.0, 20.0], [np.nan, 0.0], HORIZONS, {}, "after the prediction time"),
        ([10.0], [np.nan, 1.0], HORIZONS, {}, "equal length"),
        ([10.0], [np.nan], (90, 28), {}, "increasing"),
        ([10.0], [np.nan], HORIZONS, {"level": 1.5}, "level"),
    ],
)
def test_bad_input_is_a_clear_error(followed, event, horizons, kwargs, match):
    with pytest.raises(ValueError, match=match):
        km_incidence(np.array(followed), np.array(event), horizons, **kwargs)


def test_everyone_recurring_gives_incidence_one_and_an_exact_binomial_lower_bound():
    # Four episodes recurring on day 20: 4 of 4 at risk, lower bound 0.025^(1/4).
    table = km_incidence(np.full(4, 400.0), np.full(4, 20.0), HORIZONS)
    np.testing.assert_array_equal(table["incidence"], 1.0)
    assert table.loc[28, "incidence_low"] == pytest.approx(0.025 ** (1 / 4))
    assert (table["incidence_high"] == 1).all()


def test_no_recurrence_has_no_shape():
    with pytest.raises(ValueError, match="no recurrence"):
        cohort_shape(np.full(5, 400.0), np.full(5, np.nan), HORIZONS)


def test_calibration_rejects_predictions_outside_unit_interval():
    bad = np.tile(INCIDENCE, (12, 1))
    bad[3, 2] = 1.2
    with pytest.raises(ValueError, match="row 3, horizon 180"):
        horizon_calibration(FOLLOWED, EVENT, bad, HORIZONS)
