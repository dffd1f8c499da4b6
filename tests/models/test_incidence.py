"""Cumulative incidence over time: person-periods, the timing model and curves anchored to risk."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from models.censoring import ipcw_weights
from models.curve import FixedTiming, LinearShapeTiming, cumulative_incidence, shape_from_timing
from models.incidence import TimingModel, _rounds_if_clear_of_noise, recurrence_periods
from models.kaplan_meier import cohort_shape
from pipeline.config import ConfigError, TrainConfig, load_config
from tests.models.km_example import EVENT as KM_EVENT
from tests.models.km_example import FOLLOWED as KM_FOLLOWED
from tests.models.km_example import INCIDENCE as KM_INCIDENCE

CONFIG = load_config(TrainConfig, name="train").incidence
HORIZONS = CONFIG.horizons
EDGES = np.asarray(CONFIG.bin_edges, dtype=float)


def timing_model(**options) -> TimingModel:
    """The configured timing model with ``options`` overriding its settings; the synthetic
    frames here lack the clinical columns of ``linear_features``, so none unless given."""
    return TimingModel.from_config(CONFIG).set_params(**{"linear_features": (), **options})


# Timing of recurrences for the recovery tests: a share SUSCEPTIBLE of episodes will recur
# some day, after a Weibull time with shape WEIBULL_SHAPE < 1 (a falling hazard: early-heavy,
# as after return to sport); the covariate `fast` shortens the Weibull scale from SLOW to
# FAST days (accelerated failure time), so fast episodes recur earlier.
SUSCEPTIBLE = 0.45
WEIBULL_SHAPE = 0.6
SLOW, FAST = 250.0, 40.0


def weibull_cdf(days: np.ndarray | float, scale: float) -> np.ndarray:
    return -np.expm1(-((np.asarray(days, dtype=float) / scale) ** WEIBULL_SHAPE))


def true_shape(scale: float) -> np.ndarray:
    """P(T <= h | T <= 365) at the horizons."""
    return weibull_cdf(np.array(HORIZONS), scale) / weibull_cdf(365.0, scale)


def simulate(n: int, random_state: int, accelerate: bool = True, lost_share: float = 0.3):
    rng = np.random.default_rng(random_state)
    fast = rng.random(n) < 0.5
    X = pd.DataFrame(
        {
            "fast": fast.astype(float),
            "noise": rng.normal(size=n),
            "site": pd.array(rng.choice(["a", "b", "c"], size=n), dtype="string"),
        }
    )
    scale = np.where(fast & accelerate, FAST, SLOW)
    time = scale * (-np.log(rng.random(n))) ** (1 / WEIBULL_SHAPE)
    susceptible = rng.random(n) < SUSCEPTIBLE
    # Loss to follow-up independent of everything, uniform over the year.
    followed = np.where(rng.random(n) < lost_share, rng.uniform(1, 365, size=n), 400.0)
    recurred = susceptible & (time <= np.minimum(followed, 365.0))
    event = np.where(recurred, time, np.nan)
    groups = rng.integers(0, int(n / 1.5), size=n)
    return X, followed, event, groups, fast


def shape_tolerance(
    n_group: float, risk: float, shape: np.ndarray, lost_share: float
) -> np.ndarray:
    """Four binomial standard errors of a share of the group's recurrences, counting only
    those not lost to follow-up (a conservative effective number of events)."""
    events = n_group * risk * (1 - lost_share)
    return 4 * np.sqrt(shape * (1 - shape) / events) + 1e-9


# ---- recurrences by bin, and censoring -------------------------------------------------------


def test_recurrence_rows_reach_the_recurrence_bin():
    # Day 28 is the right edge of the fourth bin; day 301 lies in the last, (300, 365], whose
    # share is 1 by definition and gets no row; a non-recurrence gets none.
    periods = recurrence_periods(np.array([28.0, 301.0, np.nan]), np.ones(3), EDGES)
    first = periods.episode == 0
    np.testing.assert_array_equal(periods.bin[first], [0, 1, 2, 3])
    np.testing.assert_array_equal(periods.event[first], [0, 0, 0, 1])
    second = periods.episode == 1
    assert periods.bin[second].max() == len(EDGES) - 2 and periods.event[second].sum() == 0
    assert not (periods.episode == 2).any()


def test_pooled_timing_is_the_kaplan_meier_shape():
    # The dozen hand-worked episodes of km_example.py: inverse-probability-of-
    # censoring weighted recurrences reproduce Kaplan–Meier exactly (Satten & Datta 2001).
    X = pd.DataFrame({"x": np.zeros(len(KM_FOLLOWED))})
    model = timing_model(max_rounds=0).fit(X, KM_FOLLOWED, KM_EVENT)
    np.testing.assert_allclose(model.cohort_shape_, KM_INCIDENCE / KM_INCIDENCE[-1], rtol=1e-12)
    np.testing.assert_array_equal(model.predict_shape(X[:2]), np.tile(model.cohort_shape_, (2, 1)))


def test_athlete_lost_on_day_40_counts_for_40_days():
    # Five athletes followed the year, recurrences on days 3, 38 and 200: a third of the
    # recurrences by day 28. Add one lost on day 40. On day 40 four are still followed and
    # one is lost, so recurrences seen after day 40 stand for 4/3 each: by day 28,
    # 1 / (1 + 1 + 4/3) = 0.3. Kaplan–Meier agrees: S = 5/6 after day 3, 4/6 after day 38,
    # 4/9 after day 200, so F(28) / F(365) = (1/6) / (5/9) = 0.3.
    followed = np.full(5, 400.0)
    event = np.array([3.0, 38.0, 200.0, np.nan, np.nan])
    X = pd.DataFrame({"x": np.zeros(6)})
    alone = timing_model(max_rounds=0).fit(X[:5], followed, event)
    assert alone.cohort_shape_[0] == pytest.approx(1 / 3)
    lost = timing_model(max_rounds=0).fit(X, np.r_[followed, 40.0], np.r_[event, np.nan])
    assert lost.cohort_shape_[0] == pytest.approx(0.3)
    # Counting the lost athlete as followed all year would leave the share at 1/3; the
    # day-40 loss changes nothing about the recurrences before it.
    full = timing_model(max_rounds=0).fit(X, np.r_[followed, 400.0], np.r_[event, np.nan])
    assert full.cohort_shape_[0] == pytest.approx(1 / 3)


def test_given_weights_replace_the_kaplan_meier_ones():
    X, followed, event, groups, _ = simulate(600, random_state=4)
    default = timing_model(max_rounds=0).fit(X, followed, event)
    weights = ipcw_weights(followed, event, 365.0, max_weight=np.inf)
    given = timing_model(max_rounds=0).fit(X, followed, event, sample_weight=weights)
    np.testing.assert_allclose(given.cohort_shape_, default.cohort_shape_)
    with pytest.raises(ValueError, match="no recurrence"):
        timing_model(max_rounds=0).fit(X, followed, event, sample_weight=np.zeros(len(X)))


def test_censoring_at_day_40_does_not_bias_the_curve():
    # Half the cohort lost on day 40 exactly (independently of its risk). Dropping them
    # would keep only the early recurrences among them and bend the curve toward day 0;
    # counting their 40 days recovers the truth. No covariate: the cohort's timing alone.
    n = 3000
    rng = np.random.default_rng(40)
    time = SLOW * (-np.log(rng.random(n))) ** (1 / WEIBULL_SHAPE)
    susceptible = rng.random(n) < SUSCEPTIBLE
    followed = np.where(rng.random(n) < 0.5, 40.0, 400.0)
    event = np.where(susceptible & (time <= np.minimum(followed, 365)), time, np.nan)
    X = pd.DataFrame({"noise": rng.normal(size=n)})
    model = timing_model(max_rounds=0).fit(X, followed, event)
    truth = true_shape(SLOW)
    risk = SUSCEPTIBLE * weibull_cdf(365.0, SLOW)
    tol = shape_tolerance(n, risk, truth, lost_share=0.5)
    np.testing.assert_array_less(np.abs(model.cohort_shape_ - truth), tol)


# ---- shapes and curves: monotone, anchored at the one-year risk -----------------------------


def test_shape_from_timing_is_a_conditional_cdf():
    # The same share 0.1 of the remaining recurrences in every bin: by the end of bin k,
    # 1 - 0.9 ** (k + 1); the last bin takes what is left.
    shape = shape_from_timing(np.full(len(EDGES) - 1, 0.1), EDGES, HORIZONS)
    at = [list(EDGES).index(h) for h in HORIZONS[:-1]]
    np.testing.assert_allclose(shape[:-1], 1 - 0.9 ** (np.array(at) + 1), rtol=1e-12)
    assert shape[-1] == 1.0


@pytest.mark.slow
def test_curves_are_monotone_and_equal_the_risk_at_a_year():
    X, followed, event, groups, _ = simulate(1500, random_state=3)
    model = timing_model(random_state=7).fit(X, followed, event, groups)
    shape = model.predict_shape(X)
    assert np.isfinite(shape).all() and (shape >= 0).all()
    assert (np.diff(shape, axis=1) >= 0).all()
    np.testing.assert_array_equal(shape[:, -1], 1.0)
    risk = np.random.default_rng(0).uniform(0, 1, size=len(X))
    curves = cumulative_incidence(risk, shape, HORIZONS, risk * 0.8, np.minimum(risk * 1.2, 1))
    np.testing.assert_array_equal(curves.risk[:, -1], risk)  # equal, not close
    assert (np.diff(curves.risk, axis=1) >= 0).all()
    assert (curves.low <= curves.risk).all() and (curves.risk <= curves.high).all()
    frame = curves.frame(X.index)
    assert list(frame.columns[:3]) == ["risk_28d", "risk_28d_ci_low", "risk_28d_ci_high"]
    np.testing.assert_array_equal(frame["risk_365d"], risk)


def test_row_order_does_not_change_a_prediction():
    X, followed, event, groups, _ = simulate(800, random_state=5)
    model = timing_model(max_rounds=40, random_state=1).fit(X, followed, event, groups)
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(
        model.predict_shape(X.iloc[order]), model.predict_shape(X)[order], rtol=1e-12
    )


@pytest.mark.slow
def test_shape_interval_contains_the_shape_and_narrows_with_more_episodes():
    widths = []
    for n in (800, 3200):
        X, followed, event, groups, _ = simulate(n, random_state=n, accelerate=False)
        model = timing_model(random_state=5, n_bootstrap=30).fit(X, followed, event, groups)
        shape, low, high = model.predict_shape_interval(X)
        np.testing.assert_allclose(shape, model.predict_shape(X))
        assert (low <= shape).all() and (shape <= high).all()
        assert (np.diff(low, axis=1) >= 0).all() and (np.diff(high, axis=1) >= 0).all()
        assert (low[:, -1] == 1).all() and (high[:, -1] == 1).all()
        widths.append((high - low)[:, 0].mean())
        # Scale check at 28 days against a binomial share of the recurrences seen:
        # 95% width ~ 2 * 1.96 * sqrt(s (1 - s) / d); within a factor of two either way.
        truth = true_shape(SLOW)[0]
        seen = n * SUSCEPTIBLE * weibull_cdf(365.0, SLOW) * (1 - 0.3 / 2)
        binomial = 2 * 1.96 * np.sqrt(truth * (1 - truth) / seen)
        assert binomial / 2 < widths[-1] < 2 * binomial
    # Four times the episodes: about half the width (allowing for bootstrap noise).
    assert widths[1] < 0.7 * widths[0]


def test_interval_combines_level_and_timing():
    rng = np.random.default_rng(8)
    n = 50
    shape = np.sort(rng.uniform(0.05, 1, size=(n, 4)), axis=1)
    shape[:, -1] = 1.0
    shape_low, shape_high = np.maximum(shape - 0.1, 0.0), np.minimum(shape + 0.1, 1.0)
    shape_low[:, -1] = shape_high[:, -1] = 1.0
    risk = rng.uniform(0, 0.6, size=n)
    risk[0] = 0.0
    risk_ci_low, risk_ci_high = risk * 0.7, np.minimum(risk * 1.4, 1.0)
    level_only = cumulative_incidence(risk, shape, HORIZONS, risk_ci_low, risk_ci_high)
    both = cumulative_incidence(
        risk, shape, HORIZONS, risk_ci_low, risk_ci_high, shape_low, shape_high
    )
    np.testing.assert_array_equal(both.risk, level_only.risk)
    assert (both.low <= level_only.low + 1e-15).all()
    assert (both.high >= level_only.high - 1e-15).all()
    assert (both.low <= both.risk).all() and (both.risk <= both.high).all()
    assert (np.diff(both.low, axis=1) >= 0).all() and (np.diff(both.high, axis=1) >= 0).all()
    np.testing.assert_array_equal(both.low[:, -1], risk_ci_low)
    np.testing.assert_array_equal(both.high[:, -1], risk_ci_high)
    assert (both.high <= risk_ci_high[:, None]).all()
    assert both.low[0].max() == 0 and np.isfinite(both.high).all()


# ---- recovery of a known, covariate-dependent timing ----------------------------------------


@pytest.mark.slow
def test_early_heavy_timing_is_recovered_by_covariate():
    n, lost_share = 6000, 0.3
    X, followed, event, groups, fast = simulate(n, random_state=2026, lost_share=lost_share)
    model = timing_model(random_state=11).fit(X, followed, event, groups)
    assert model.n_rounds_ > 0  # the data show timing depends on `fast`
    shape = model.predict_shape(X)
    for is_fast, scale in ((True, FAST), (False, SLOW)):
        truth = true_shape(scale)
        risk = SUSCEPTIBLE * weibull_cdf(365.0, scale)
        tol = shape_tolerance(n / 2, risk, truth, lost_share)
        got = shape[fast == is_fast].mean(axis=0)
        np.testing.assert_array_less(np.abs(got - truth), tol)
    # The direction: fast episodes recur earlier, at every horizon before the year, and at
    # least half of the true gap between the groups is recovered.
    gap = shape[fast].mean(axis=0) - shape[~fast].mean(axis=0)
    true_gap = true_shape(FAST) - true_shape(SLOW)
    assert (gap[:-1] > 0.5 * true_gap[:-1]).all()
    # The cohort's single shape cannot tell the groups apart: the model is closer to truth.
    peer = cohort_shape(followed, event, HORIZONS)
    model_error = sum(
        np.mean((shape[fast == f] - true_shape(s)) ** 2) for f, s in ((True, FAST), (False, SLOW))
    )
    peer_error = sum(np.mean((peer - true_shape(s)) ** 2) for s in (FAST, SLOW))
    assert model_error < peer_error / 4


@pytest.mark.slow
def test_small_cohort_falls_back_to_the_cohort_shape():
    # Three hundred episodes, timing independent of everything: the model must stay at the
    # cohort's shape (within the sampling error of ~90 recurrences) and stay a curve.
    n, lost_share = 300, 0.3
    X, followed, event, groups, _ = simulate(n, random_state=9, accelerate=False)
    model = timing_model(random_state=2).fit(X, followed, event, groups)
    shape = model.predict_shape(X)
    assert np.isfinite(shape).all() and (np.diff(shape, axis=1) >= 0).all()
    truth = true_shape(SLOW)
    tol = shape_tolerance(n, SUSCEPTIBLE * weibull_cdf(365.0, SLOW), truth, lost_share)
    np.testing.assert_array_less(np.abs(shape - model.cohort_shape_).max(axis=0), tol / 2)
    np.testing.assert_array_less(np.abs(shape.mean(axis=0) - truth), tol)


@pytest.mark.parametrize(
    ("gains", "rounds"),
    [
        # Every fold gains about 10 by round 2: clear of the fold-to-fold spread.
        ([[0, -6, -10, -9], [0, -5, -11, -10], [0, -6, -9, -8]], 2),
        # The sum gains 3 by round 1 but folds disagree (sd ~ 9): stay at the cohort shape.
        ([[0, -10, -8, -7], [0, 8, 9, 9], [0, -1, 0, 1]], 0),
        # No round beats zero.
        ([[0, 1, 2, 3], [0, 2, 3, 4], [0, 1, 1, 2]], 0),
    ],
)
def test_rounds_are_kept_only_when_their_gain_is_clear_of_noise(gains, rounds):
    # A level per fold (their sizes differ) does not matter: gains are paired by fold.
    losses = np.array(gains, dtype=float) + np.array([[500.0], [900.0], [300.0]])
    assert _rounds_if_clear_of_noise(losses) == rounds


@pytest.mark.parametrize(
    "case",
    ["tiny", "all_in_week_one", "everyone_lost_by_day_100"],
)
def test_awkward_cohorts_still_give_finite_monotone_curves(case):
    rng = np.random.default_rng(17)
    n = 60
    X = pd.DataFrame({"x": rng.normal(size=n)})
    followed = np.full(n, 400.0)
    event = np.full(n, np.nan)
    if case == "tiny":
        event[:6] = [3, 9, 30, 31, 150, 300]
    elif case == "all_in_week_one":
        event[:20] = rng.integers(1, 8, size=20)
    else:
        followed = rng.uniform(1, 100, size=n)
        event[:10] = np.minimum(rng.uniform(1, 50, size=10), followed[:10])
    model = timing_model(random_state=0).fit(X, followed, event)
    shape = model.predict_shape(X)
    assert np.isfinite(shape).all() and (shape >= 0).all()
    assert (np.diff(shape, axis=1) >= 0).all() and (shape[:, -1] == 1).all()


# ---- clear errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("followed", "event", "kwargs", "match"),
    [
        ([10.0, -1.0], [np.nan, 5.0], {}, "row 1"),
        ([10.0, 20.0], [np.nan, 30.0], {}, "event_days must lie"),
        ([10.0, 20.0], [0.0, 5.0], {}, "row 0 has event_days=0.0"),
        ([10.0, 20.0], [np.nan, np.nan], {}, "no recurrence"),
        ([10.0, 20.0], [np.nan, 5.0], {"horizons": (28, 90)}, "last bin edge"),
        ([10.0, 20.0], [np.nan, 5.0], {"horizons": (30, 365)}, "every horizon must be a bin edge"),
        ([10.0, 20.0], [np.nan, 5.0], {"cv": 1}, "cv must be"),
    ],
)
def test_bad_input_is_a_clear_error(followed, event, kwargs, match):
    X = pd.DataFrame({"x": [0.0, 1.0]})
    with pytest.raises(ValueError, match=match):
        timing_model(max_rounds=0, **kwargs).fit(X, np.array(followed), np.array(event))


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ([[0.5, 0.4, 0.9, 1.0]], "row 0"),
        ([[0.2, 0.4, 0.9, 0.99]], "exactly 1"),
        ([[np.nan, 0.4, 0.9, 1.0]], "row 0"),
        ([[0.2, 0.4, 1.0]], "expected"),
    ],
)
def test_cumulative_incidence_rejects_a_broken_shape(shape, match):
    with pytest.raises(ValueError, match=match):
        cumulative_incidence(np.array([0.3]), np.array(shape), HORIZONS)


# ---- configuration ---------------------------------------------------------------------------


def test_configured_horizons_and_bins():
    assert CONFIG.horizons == (28, 90, 180, 365)
    # Weekly bins through 12 weeks, where recurrences crowd.
    assert CONFIG.bin_edges[:12] == tuple(range(7, 85, 7))
    model = TimingModel.from_config(CONFIG, categorical=["site"], random_state=3)
    assert model.bin_edges == CONFIG.bin_edges and model.cv == CONFIG.cv_folds


@pytest.mark.parametrize(
    ("incidence", "match"),
    [
        ({"horizons": [90, 28, 365]}, "increasing order"),
        ({"horizons": [30, 365]}, "30"),
        ({"horizons": [28, 180]}, "last bin edge"),
        ({"bin_edges": [0, 28, 90, 180, 365]}, "positive days"),
        ({"horizon": [28]}, "incidence.horizon: unknown key"),
        ({"linear_features": ["peak_sprint"]}, "'peak_sprint' is not a feature"),
        ({"linear_features": ["bamic_site"]}, "'bamic_site' is a category"),
    ],
)
def test_bad_incidence_config_names_the_key(tmp_path, incidence, match):
    path = tmp_path / "train.yaml"
    base = {"model": {"candidates": [{"kind": "logistic"}], "baseline": {"kind": "logistic"}}}
    path.write_text(yaml.safe_dump({**base, "incidence": incidence}))
    with pytest.raises(ConfigError, match=match):
        load_config(TrainConfig, path)


# ---- linear timing effects ---------------------------------------------------------------


def simulate_speed(n: int, random_state: int, effect: float):
    """Timing that depends on one numeric feature: a Weibull (shape WEIBULL_SHAPE) whose log
    scale is ``log(80) - effect * speed``, ``speed`` standard normal and blank in 10% of
    episodes, where the timing is that of speed 0 (the median a blank is read as), beside
    a pure-noise feature; SUSCEPTIBLE of episodes recur some day, 30% are lost uniformly
    over the year. Returns the true shape too."""
    rng = np.random.default_rng(random_state)
    speed = np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))
    scale = 80.0 * np.exp(-effect * np.nan_to_num(speed))
    time = scale * (-np.log(rng.random(n))) ** (1 / WEIBULL_SHAPE)
    followed = np.where(rng.random(n) < 0.3, rng.uniform(1, 365, size=n), 400.0)
    recurred = (rng.random(n) < SUSCEPTIBLE) & (time <= np.minimum(followed, 365.0))
    X = pd.DataFrame({"speed": speed, "noise": rng.normal(size=n)})
    truth = np.column_stack([weibull_cdf(h, scale) / weibull_cdf(365.0, scale) for h in HORIZONS])
    return X, followed, np.where(recurred, time, np.nan), rng.integers(0, n, size=n), truth


def linear_model(**options) -> TimingModel:
    return timing_model(linear_features=("speed", "noise"), max_rounds=0, random_state=3, **options)


@pytest.mark.slow
def test_linear_timing_orders_episodes_and_beats_the_cohort_shape():
    # About 0.45 * 0.85 * 3000 ~ 1,100 recurrences, the timing's log scale moving by a factor
    # e^1.2 = 3.3 per two standard deviations of speed.
    n = 3000
    X, followed, event, groups, _ = simulate_speed(n, random_state=5, effect=0.6)
    model = linear_model().fit(X, followed, event, groups)
    assert model.linear_ is not None and model.fixed() is None
    # Held out: a fresh cohort from the same world.
    Xt, _, _, _, truth = simulate_speed(4000, random_state=6, effect=0.6)
    shape = model.predict_shape(Xt)
    assert np.isfinite(shape).all() and (np.diff(shape, axis=1) >= 0).all()
    assert (shape[:, -1] == 1.0).all()
    # Faster episodes recur earlier: the 28-day shape follows the true one's order (only
    # `noise`, with a coefficient near 0, can break ties between equal truths).
    rank = pd.Series(shape[:, 0]).corr(pd.Series(truth[:, 0]), method="spearman")
    assert rank > 0.95
    # The single cohort shape is off by the spread of the true shapes; the model's error
    # is the sampling error of a few coefficients, well under a quarter of it.
    peer = np.tile(model.cohort_shape_, (len(Xt), 1))
    model_error = ((shape - truth) ** 2).mean(axis=0)[:-1]
    peer_error = ((peer - truth) ** 2).mean(axis=0)[:-1]
    np.testing.assert_array_less(model_error, peer_error / 4)


@pytest.mark.slow
def test_no_linear_effect_is_kept_when_timing_ignores_the_features():
    # Same cohort size, timing independent of speed: cross-validation keeps the cohort's
    # shape, to the bit, and the compact fixed timing.
    X, followed, event, groups, _ = simulate_speed(3000, random_state=5, effect=0.0)
    model = linear_model(n_bootstrap=4).fit(X, followed, event, groups)
    assert model.linear_ is None and model.linear_penalty_ is None
    assert model.linear_cv_loss_.argmin() == 0
    np.testing.assert_array_equal(model.predict_shape(X[:3]), np.tile(model.cohort_shape_, (3, 1)))
    assert model.fixed() is not None


def test_linear_members_give_an_interval_around_the_shape():
    X, followed, event, groups, _ = simulate_speed(1500, random_state=8, effect=0.8)
    model = linear_model(n_bootstrap=6).fit(X, followed, event, groups)
    assert model.linear_ is not None
    shape, low, high = model.predict_shape_interval(X[:50])
    np.testing.assert_array_equal(shape, model.predict_shape(X[:50]))
    assert (low <= shape).all() and (shape <= high).all()
    assert (high[:, :-1] - low[:, :-1] > 0).all()  # members differ in their coefficients
    np.testing.assert_array_equal(high[:, -1], 1.0)


def test_a_linear_fit_has_a_numpy_compact_form_with_the_same_numbers():
    X, followed, event, groups, _ = simulate_speed(1500, random_state=8, effect=0.8)
    model = linear_model(n_bootstrap=6).fit(X, followed, event, groups)
    compact = pickle.loads(pickle.dumps(model.compact()))
    assert isinstance(compact, LinearShapeTiming) and compact.interval_available
    rows = X.iloc[::7]
    np.testing.assert_array_equal(compact.predict_shape(rows), model.predict_shape(rows))
    for ours, theirs in zip(
        compact.predict_shape_interval(rows, 0.9),
        model.predict_shape_interval(rows, 0.9),
        strict=True,
    ):
        np.testing.assert_array_equal(ours, theirs)
    # Without bootstrap members still the linear form; with no deviation at all, the fixed
    # shape.
    assert isinstance(linear_model(n_bootstrap=0).fit(X, followed, event, groups).compact(),
                      LinearShapeTiming)  # fmt: skip
    flat = timing_model(max_rounds=0, n_bootstrap=0).fit(X, followed, event, groups)
    assert isinstance(flat.compact(), FixedTiming)


def test_the_linear_compact_form_needs_no_lightgbm_sklearn_or_scipy(tmp_path):
    X, followed, event, groups, _ = simulate_speed(1500, random_state=8, effect=0.8)
    model = linear_model(n_bootstrap=4).fit(X, followed, event, groups)
    path = tmp_path / "timing.pkl"
    path.write_bytes(pickle.dumps((model.compact(), X.iloc[:20])))
    code = (
        "import pickle, sys; "
        f"timing, rows = pickle.loads(open({str(path)!r}, 'rb').read()); "
        "timing.predict_shape(rows); timing.predict_shape_interval(rows); "
        "print(type(timing).__name__, "
        "sorted(m for m in ('lightgbm', 'sklearn', 'scipy', 'glum') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [LinearShapeTiming.__name__, "[]"]


@pytest.mark.parametrize(
    ("features", "match"),
    [(("pace",), r"linear_features \['pace'\] are not columns"), (("site",), "categories")],
)
def test_bad_linear_features_are_a_clear_error(features, match):
    X, followed, event, groups, _ = simulate(200, random_state=1)
    with pytest.raises(ValueError, match=match):
        timing_model(linear_features=features, max_rounds=0).fit(X, followed, event, groups)
