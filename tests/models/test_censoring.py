"""IPCW weights: hand-computed Kaplan–Meier case, and recovery of a known event rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from models.censoring import ipcw_weights, outcome_known

WINDOW = 365.0


def test_hand_computed_kaplan_meier_with_tie():
    # A censored day 10; B recurs day 15; C censored day 20; D recurs day 20 (tie: the
    # recurrence comes first, so D is not in the censoring risk set at day 20); E, F full.
    followed = np.array([10, 400, 20, 400, 380, 365], dtype=float)
    event = np.array([np.nan, 15, np.nan, 20, np.nan, np.nan])
    w = ipcw_weights(followed, event, WINDOW)
    # G(10) = 5/6; G(20) = 5/6 * (1 - 1/3) = 5/9.
    np.testing.assert_allclose(w, [0, 6 / 5, 0, 6 / 5, 9 / 5, 9 / 5])


def test_no_censoring_gives_unit_weights():
    followed = np.full(5, 400.0)
    event = np.array([np.nan, 3, np.nan, 364, np.nan])
    np.testing.assert_array_equal(ipcw_weights(followed, event, WINDOW), np.ones(5))


def test_recurrence_after_window_is_a_non_recurrence():
    followed = np.array([500.0, 500.0])
    event = np.array([400.0, np.nan])
    assert outcome_known(followed, event, WINDOW).all()
    np.testing.assert_array_equal(ipcw_weights(followed, event, WINDOW), [1.0, 1.0])


def test_cap_is_respected():
    # Ninety-five of a hundred censored early: G(window-) = 0.05, weight capped.
    followed = np.r_[np.full(95, 30.0), np.full(5, 400.0)]
    event = np.full(100, np.nan)
    w = ipcw_weights(followed, event, WINDOW, max_weight=10.0)
    assert w[:95].max() == 0 and np.all(w[95:] == 10.0)


@pytest.mark.parametrize(
    ("followed", "event", "kwargs", "match"),
    [
        ([10.0, -1.0], [np.nan, np.nan], {}, "row 1"),
        ([10.0, 20.0], [np.nan, 30.0], {}, "event_days must lie"),
        ([10.0], [np.nan, 1.0], {}, "equal length"),
        ([10.0], [np.nan], {"method": "cox"}, "method must be"),
        ([10.0], [np.nan], {"method": "covariate"}, "needs covariates"),
        ([10.0], [np.nan], {"max_weight": 0.5}, "max_weight"),
    ],
)
def test_bad_input_is_a_clear_error(followed, event, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ipcw_weights(np.array(followed), np.array(event), WINDOW, **kwargs)


def _cohort(n: int, censoring_dependence: float, seed: int):
    """Episodes with logistic risk in x, uniform recurrence times, exponential censoring."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    recurs = rng.random(n) < expit(-0.9 + x)
    event_time = np.where(recurs, rng.uniform(0, WINDOW, n), np.nan)
    censor_time = rng.exponential(2 * WINDOW / np.exp(censoring_dependence * x))
    followed = np.minimum(censor_time, 400.0)
    event = np.where(event_time <= followed, event_time, np.nan)
    y = (~np.isnan(event)).astype(float)
    return x, followed, event, y, recurs.mean()


def _weighted_rate(y, w):
    # Kish effective sample size gives the binomial SE of a weighted proportion.
    rate = np.sum(w * y) / np.sum(w)
    n_eff = np.sum(w) ** 2 / np.sum(w**2)
    return rate, np.sqrt(rate * (1 - rate) / n_eff)


def test_ipcw_recovers_true_rate_where_dropping_is_biased():
    # 20,000 episodes: SE about 0.004, so 4 SE (0.016) separates recovery from the bias of
    # dropping censored episodes (recurrences surface before follow-up is lost).
    x, followed, event, y, truth = _cohort(20_000, censoring_dependence=0.0, seed=1)
    known = outcome_known(followed, event, WINDOW)
    naive, naive_se = _weighted_rate(y[known], np.ones(known.sum()))
    assert abs(naive - truth) > 4 * naive_se
    for method in ("km", "covariate"):
        w = ipcw_weights(followed, event, WINDOW, covariates=x[:, None], method=method)
        rate, se = _weighted_rate(y, w)
        assert abs(rate - truth) < 4 * se, method


def test_covariate_censoring_model_fixes_risk_dependent_loss():
    # High-risk episodes are lost to follow-up faster: Kaplan–Meier weights, blind to x,
    # under-represent them; the Cox censoring model on x restores them.
    x, followed, event, y, truth = _cohort(20_000, censoring_dependence=0.7, seed=2)
    w_km = ipcw_weights(followed, event, WINDOW, method="km")
    rate, se = _weighted_rate(y, w_km)
    assert truth - rate > 4 * se
    w_cov = ipcw_weights(followed, event, WINDOW, covariates=x[:, None], method="covariate")
    rate, se = _weighted_rate(y, w_cov)
    assert abs(rate - truth) < 4 * se


def test_covariate_method_accepts_mixed_frames_with_missing_values():
    import pandas as pd

    x, followed, event, _, _ = _cohort(500, censoring_dependence=0.5, seed=3)
    covariates = pd.DataFrame(
        {
            "x": np.where(np.arange(500) % 7 == 0, np.nan, x),
            "flag": pd.array(x > 0, dtype="boolean"),
            "group": pd.array(np.where(x > 1, "a", "b"), dtype="string"),
        }
    )
    w = ipcw_weights(followed, event, WINDOW, covariates=covariates, method="covariate")
    known = outcome_known(followed, event, WINDOW)
    assert np.all(w[~known] == 0) and np.all((w[known] >= 1) & (w[known] <= 10))


def test_hand_computed_administrative_end_is_not_a_loss():
    # A reaches the export on day 100 (no loss, window open there); B is lost on day 50;
    # C recurs on day 30 but its window would close after the export; D and E full.
    followed = np.array([100.0, 50.0, 100.0, 400.0, 400.0])
    event = np.array([np.nan, np.nan, 30.0, np.nan, np.nan])
    administrative = np.array([100.0, 1000.0, 100.0, 1000.0, 1000.0])
    w = ipcw_weights(followed, event, WINDOW, administrative_days=administrative)
    # Only B is a loss: at day 50 A, B, D, E are at risk (C left at 30), so G = 3/4. A and
    # C cannot have a known non-recurrence, so C's recurrence alone would bias: both weigh 0.
    np.testing.assert_allclose(w, [0, 0, 0, 4 / 3, 4 / 3])
    # Read as a loss, the export would halve G (A lost at 100 of A, D, E) and keep C.
    np.testing.assert_allclose(ipcw_weights(followed, event, WINDOW), [0, 0, 1, 2, 2])


def test_administrative_days_shorter_than_follow_up_is_an_error():
    with pytest.raises(ValueError, match="administrative_days must be a number at least"):
        ipcw_weights(np.array([100.0]), np.array([np.nan]), WINDOW, administrative_days=[50.0])


def _exported_cohort(n: int, seed: int):
    """Episodes entering uniformly over three years before an export, risk and loss in x.

    Follow-up ends at the first of loss (faster for high x) and the export; a recurrence
    on record proves contact, so follow-up reaches it, as in ``pipeline.episodes``.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    recurs = rng.random(n) < expit(-0.9 + x)
    # Recurrences surface early (Wangensteen et al. 2016: half within 25 days).
    event_time = np.where(recurs, WINDOW * rng.beta(0.6, 2.0, n), np.nan)
    administrative = rng.uniform(0, 3 * WINDOW, n)
    loss = rng.exponential(2 * WINDOW / np.exp(0.7 * x))
    followed = np.minimum(loss, administrative)
    event = np.where(event_time <= followed, event_time, np.nan)
    followed = np.fmax(followed, np.nan_to_num(event))
    return x, followed, event, administrative, recurs.mean()


def test_administrative_censoring_is_not_learned_as_dropout():
    # 30,000 episodes, a third exported before their window closed. With the export as a
    # known end, the weighted rate recovers the truth within 4 Kish standard errors (about
    # 0.004 each). Calendar time as a linear dropout covariate (the export read as a hazard
    # of recent episodes) pushes the latest closed windows' weights to the cap and
    # overstates the risk by more than that.
    x, followed, event, administrative, truth = _exported_cohort(30_000, seed=4)
    y = (~np.isnan(event)).astype(float)
    w = ipcw_weights(
        followed,
        event,
        WINDOW,
        covariates=x[:, None],
        method="covariate",
        max_weight=20.0,
        administrative_days=administrative,
    )
    assert np.all(w[administrative < WINDOW] == 0)
    rate, se = _weighted_rate(y, w)
    assert abs(rate - truth) < 4 * se
    calendar_years = (3 * WINDOW - administrative) / 365.25
    calendar = ipcw_weights(
        followed,
        event,
        WINDOW,
        covariates=np.c_[x, calendar_years],
        method="covariate",
        max_weight=20.0,
    )
    rate, se = _weighted_rate(y, calendar)
    assert rate - truth > 4 * se
