"""The risk over time wherever the risk appears: pyfunc, score, lookup and audit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.censoring import ipcw_weights
from models.curve import FixedTiming
from pipeline import registry
from pipeline.audit import read_predictions as read_audited_predictions
from pipeline.audit import time_scale_audit
from pipeline.config import FeaturesConfig, ScoreConfig, TrainConfig, load_config
from pipeline.lookup import format_lookup, lookup_risk
from pipeline.model_cache import load_model
from pipeline.predictions import CURVE_COLUMNS
from pipeline.score import read_predictions, run_scoring, score_episodes
from pipeline.train import TrainingData, fit_timing
from pipeline.validate import validate_cohort
from tests.models.km_example import EVENT as KM_EVENT
from tests.models.km_example import FOLLOWED as KM_FOLLOWED
from tests.models.km_example import INCIDENCE as KM_INCIDENCE

FEATURES = load_config(FeaturesConfig, name="features")
SETTINGS = load_config(ScoreConfig, name="score")
CURVE = ["risk_28d", "risk_90d", "risk_180d", "risk"]


@pytest.fixture(scope="module")
def loaded(trained_model):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMRISK_HOME", str(trained_model["home"]))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        model = load_model(trained_model["uri"])
        pyfunc = registry.load_risk_model(trained_model["uri"])
    today = trained_model["today"]
    cohort = validate_cohort(trained_model["cohort"], today=today).cohort
    predictions = score_episodes(
        cohort, model, as_of=today, bands=SETTINGS.bands,
        scored_at=pd.Timestamp("2026-11-01T03:00:00Z"),
    )  # fmt: skip
    return {"model": model, "pyfunc": pyfunc, "cohort": cohort, "predictions": predictions}


def _assert_curves(frame: pd.DataFrame) -> None:
    values = frame[CURVE].to_numpy(dtype=np.float64)
    assert np.isfinite(values).all()
    assert np.all(np.diff(values, axis=1) >= 0), "a curve falls with the horizon"
    for h in (28, 90, 180):
        assert np.all(frame[f"risk_{h}d_ci_low"] <= frame[f"risk_{h}d"])
        assert np.all(frame[f"risk_{h}d"] <= frame[f"risk_{h}d_ci_high"])
        # Never above the one-year upper bound.
        assert np.all(frame[f"risk_{h}d_ci_high"] <= frame["risk_ci_high"] + 1e-12)


def test_the_registered_model_carries_its_timing(loaded):
    timing = loaded["pyfunc"].unwrap_python_model().risk_model.timing_
    assert list(timing.horizons) == [28, 90, 180, 365]
    # The cached form (compact or fitted) carries it too, as a fixed shape or the model.
    assert getattr(loaded["model"].risk_model, "timing_", None) is not None


def test_scores_carry_monotone_curves_ending_at_the_risk(loaded):
    predictions = loaded["predictions"]
    _assert_curves(predictions)
    assert set(predictions["curve_shape"]) == {"fitted"}
    assert (
        list(predictions.columns).index("risk_28d")
        == list(predictions.columns).index("risk_ci_high") + 1
    )


def test_the_pyfunc_gives_the_same_curve_as_scoring(loaded):
    model = loaded["model"]
    cohort = loaded["cohort"]
    predictions = loaded["predictions"]
    from pipeline.episodes import index_episodes

    episodes = index_episodes(cohort, pd.Timestamp("2026-11-01").date(), FEATURES.outcome)
    features = model.feature_frame(cohort, episodes)
    out = loaded["pyfunc"].predict(registry.as_model_input(features).reset_index(drop=True))
    assert [c for c in out.columns] == ["risk", "risk_ci_low", "risk_ci_high", *CURVE_COLUMNS]
    _assert_curves(out)
    np.testing.assert_allclose(
        out["risk_28d"].to_numpy(), predictions["risk_28d"].to_numpy(), rtol=1e-9
    )


def test_a_model_without_timing_uses_the_published_shape(loaded):
    class OneYear:
        def __init__(self, inner):
            self._inner = inner

        def predict_risk(self, X):
            return self._inner.predict_risk(X)

        def predict_interval(self, X):
            return self._inner.predict_interval(X)

    inner = loaded["pyfunc"].unwrap_python_model().risk_model
    features = loaded["model"].feature_frame(
        loaded["cohort"],
        __import__("pipeline.episodes", fromlist=["x"]).index_episodes(
            loaded["cohort"], pd.Timestamp("2026-11-01").date(), FEATURES.outcome
        ),
    )
    out = registry.RiskPyfunc(OneYear(inner)).predict(None, features)
    assert set(out["curve_shape"]) == {"published"}
    _assert_curves(out)
    incidence = load_config(TrainConfig, name="train").incidence
    share = out["risk_28d"] / out["risk"]
    assert share.min() == pytest.approx(share.max())  # one shape for all
    from models.curve import weibull_shape_curve

    expected = weibull_shape_curve(
        incidence.horizons, incidence.published_weibull_shape, incidence.published_median_days
    )
    assert share.iloc[0] == pytest.approx(expected[0])


def _older(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(CURVE_COLUMNS))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_older_predictions_files_are_read_and_kept_by_only_new(loaded, trained_model, tmp_path,
                                                               suffix):  # fmt: skip
    out = tmp_path / f"p{suffix}"
    run_scoring(trained_model["cohort"], out, model=loaded["model"], config=SETTINGS,
                as_of=trained_model["today"], today=trained_model["today"])  # fmt: skip
    written = read_predictions(out)
    _assert_curves(written)
    # The same file as a version without the curve wrote it, the last rows not yet scored.
    older = _older(written).iloc[:-5]
    if suffix == ".csv":
        older.assign(
            prediction_time=older["prediction_time"].dt.strftime("%Y-%m-%d"),
            scored_at=older["scored_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ).to_csv(out, index=False)
    else:
        older.to_parquet(out, index=False)
    back = read_predictions(out)
    assert back[list(CURVE_COLUMNS)].isna().all().all()
    pd.testing.assert_series_equal(back["risk"], older["risk"].reset_index(drop=True),
                                   check_names=False, check_index=False)  # fmt: skip
    audited = read_audited_predictions([out], written["model_name"].iloc[0])
    assert audited["risk_28d"].isna().all() and len(audited) == len(older)
    run_scoring(trained_model["cohort"], out, model=loaded["model"], config=SETTINGS,
                as_of=trained_model["today"], today=trained_model["today"],
                only_new=True)  # fmt: skip
    appended = read_predictions(out)
    assert len(appended) == len(written)
    kept, new = appended.iloc[: len(older)], appended.iloc[len(older) :]
    assert kept["risk_28d"].isna().all()
    _assert_curves(new)


def test_lookup_prints_the_curve_in_words_and_json(loaded):
    result = lookup_risk(loaded["model"], {"prior_injuries": 2}, config=SETTINGS.lookup,
                         bands=SETTINGS.bands)  # fmt: skip
    points = result.as_dict()["risk_over_time"]
    assert [p["days"] for p in points] == [28, 90, 180, 365]
    assert points[-1]["risk"] == result.risk
    risks = [p["risk"] for p in points]
    assert risks == sorted(risks)
    assert all(p["risk_ci_low"] <= p["risk"] <= p["risk_ci_high"] for p in points)
    text = format_lookup(result)
    assert f"{risks[0]:.0%} within 4 weeks" in text
    assert f"{result.risk:.0%} within the year" in text


def _no_linear(incidence):
    """The configured timing without trees, bootstrap or linear effects (the frames here
    have no clinical columns)."""
    return incidence.model_copy(update={"max_rounds": 0, "n_bootstrap": 0, "linear_features": ()})


def test_timing_is_fitted_on_the_training_inputs_with_a_loss_on_day_40():
    # Five athletes followed the year, recurrences on days 3, 38 and 200, and one lost on
    # day 40 (worked in tests/models/test_incidence.py): the day-40 loss makes the
    # recurrences after it stand for 4/3 each, so 0.3 of the year's recurrences by day 28.
    followed = np.array([400, 400, 400, 400, 400, 40.0])
    event = np.array([3.0, 38.0, 200.0, np.nan, np.nan, np.nan])
    weights = ipcw_weights(followed, event, 365.0, max_weight=np.inf)
    assert weights[-1] == 0.0  # the lost athlete's outcome is unknown
    data = TrainingData(
        episodes=pd.DataFrame({"followed_days": followed, "event_days": event}),
        features=pd.DataFrame({"x": np.zeros(6)}),
        labels=np.array([1, 1, 1, 0, 0, np.nan]),
        weights=weights,
        groups=np.array([f"a{k}" for k in range(6)]),
    )
    config = load_config(TrainConfig, name="train")
    config = config.model_copy(update={"incidence": _no_linear(config.incidence)})
    timing = fit_timing(data, config)
    assert timing.cohort_shape_[0] == pytest.approx(0.3)
    assert isinstance(timing.fixed(), FixedTiming)


def test_timing_counts_a_recurrence_whose_year_is_still_open():
    # The five followed athletes and the one lost on day 40 above, and a seventh whose
    # export date came 100 days after return, with a recurrence on day 10: the one-year
    # model cannot use it (weight 0, its year is open) but its day is known. Kaplan–Meier
    # over all seven: S = 6/7 after day 3, 5/7 after day 10, 4/7 after day 38 and 8/21
    # after day 200 (three at risk), so 2/7 of 13/21, 6/13 of the year's recurrences by day
    # 28 (0.3 without the seventh).
    followed = np.array([400, 400, 400, 400, 400, 40.0, 100.0])
    event = np.array([3.0, 38.0, 200.0, np.nan, np.nan, np.nan, 10.0])
    weights = np.r_[ipcw_weights(followed[:6], event[:6], 365.0, max_weight=np.inf), 0.0]
    data = TrainingData(
        episodes=pd.DataFrame({"followed_days": followed, "event_days": event}),
        features=pd.DataFrame({"x": np.zeros(7)}),
        labels=np.array([1, 1, 1, 0, 0, np.nan, np.nan]),
        weights=weights,
        groups=np.array([f"a{k}" for k in range(7)]),
    )
    config = load_config(TrainConfig, name="train")
    config = config.model_copy(update={"incidence": _no_linear(config.incidence)})
    assert fit_timing(data, config).cohort_shape_[0] == pytest.approx(6 / 13)


def test_the_audit_compares_kaplan_meier_with_the_mean_predicted_curve():
    # The dozen hand-worked episodes, every one predicted the same curve.
    n = len(KM_FOLLOWED)
    predicted = np.array([0.2, 0.3, 0.35, 0.5])
    rows = pd.DataFrame(
        {
            "followed_days": KM_FOLLOWED,
            "event_days": KM_EVENT,
            "in_records": True,
            "risk_28d": predicted[0],
            "risk_90d": predicted[1],
            "risk_180d": predicted[2],
            "risk": predicted[3],
            "risk_band": pd.array(["high"] * n, dtype="string"),
        }
    )
    found, figure = time_scale_audit(rows, 365, 0.95, min_cell=5)
    table = pd.DataFrame(found["calibration"])
    np.testing.assert_allclose(table["incidence"], KM_INCIDENCE, rtol=1e-12)
    np.testing.assert_allclose(table["expected"], predicted)
    np.testing.assert_allclose(table["oe_ratio"], KM_INCIDENCE / predicted, rtol=1e-12)
    assert figure is not None and found["by_band"][0]["group"] == "high"
    # Too few episodes: nothing compared, no figure.
    found, figure = time_scale_audit(rows, 365, 0.95, min_cell=n + 1)
    assert found["calibration"] == [] and figure is None
