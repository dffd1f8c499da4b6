"""The literature model: published effects to coefficients, centring, intervals, contributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from literature_frames import LITERATURE, catalog_frame, literature_model
from scipy.special import expit, logit

from features.catalog import FEATURE_NAMES, FEATURES_BY_NAME
from models.literature import (
    LiteratureModel,
    PublishedEffect,
    log_odds_effect,
    odds_ratio_from_risk_ratio,
)
from pipeline.config import ConfigError, LiteratureConfig, load_config

Z95 = 1.959963984540054


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return catalog_frame(3000, random_state=1)


@pytest.fixture(scope="module")
def model(reference: pd.DataFrame) -> LiteratureModel:
    return literature_model(reference)


def effect(**fields) -> PublishedEffect:
    base = dict(
        name="e", column="x", term="linear", measure="OR", ratio=2.0, ci=(1.0, 4.0), per=1.0,
        source="test",
    )  # fmt: skip
    return PublishedEffect(**{**base, **fields})


# ---- configuration --------------------------------------------------------------------


def test_every_effect_reads_a_catalog_column_with_a_source():
    for name, spec in LITERATURE.effects.items():
        assert spec.column in FEATURE_NAMES, name
        assert spec.source.strip(), name
        kind = FEATURES_BY_NAME[spec.column].kind
        if spec.term in ("linear", "at_least"):
            assert kind == "numeric", name
        if spec.term == "equals" and isinstance(spec.level, bool):
            assert kind == "boolean", name


def test_directions_agree_with_the_catalog(model):
    """Where the catalog fixes a direction, the published coefficient has that sign."""
    for column, coef in zip(model.term_columns_, model.coef_, strict=True):
        direction = FEATURES_BY_NAME[column].direction
        if direction:
            assert np.sign(coef) == direction, column


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"ratio": 5.0}, "must be ordered and contain ratio"),
        ({"measure": "RR", "unexposed_risk": None}, "needs unexposed_risk"),
        ({"measure": "RR", "unexposed_risk": 0.5, "ratio": 2.5, "ci": [1, 3]}, "must be < 1"),
        ({"per": 0}, "per must not be 0"),
        ({"spelling": 1}, "unknown key"),
    ],
)
def test_bad_effect_config_names_the_problem(tmp_path, patch, match):
    raw = LITERATURE.model_dump(mode="json")
    raw["effects"]["prior_injuries"].update(patch)
    import yaml

    path = tmp_path / "literature.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=match):
        load_config(LiteratureConfig, path)


# ---- published figures to coefficients -------------------------------------------------


def test_zhang_yu_conversion():
    assert odds_ratio_from_risk_ratio(2.0, 0.2) == pytest.approx(2.0 * 0.8 / 0.6)
    assert odds_ratio_from_risk_ratio(1.0, 0.3) == pytest.approx(1.0)
    # Rare outcome: the odds ratio approaches the risk ratio.
    assert odds_ratio_from_risk_ratio(3.0, 1e-6) == pytest.approx(3.0, rel=1e-5)
    with pytest.raises(ValueError, match="no odds ratio exists"):
        odds_ratio_from_risk_ratio(4.0, 0.25)


def test_log_odds_effect_odds_ratio_scaling_and_se():
    coef, se = log_odds_effect(effect(ratio=1.33, ci=(1.11, 1.61), per=1.0))
    assert coef == pytest.approx(math.log(1.33))
    assert se == pytest.approx((math.log(1.61) - math.log(1.11)) / (2 * Z95))
    coef10, se10 = log_odds_effect(effect(ratio=1.33, ci=(1.11, 1.61), per=-10.0))
    assert coef10 == pytest.approx(-coef / 10)
    assert se10 == pytest.approx(se / 10)
    half, half_se = log_odds_effect(effect(ratio=1.33, ci=(1.11, 1.61), log_scale_factor=0.5))
    assert (half, half_se) == pytest.approx((coef / 2, se / 2))


def test_risk_ratio_converted_point_keeps_published_log_width():
    coef, se = log_odds_effect(
        effect(measure="RR", ratio=2.52, ci=(1.1, 5.78), unexposed_risk=0.14)
    )
    assert coef == pytest.approx(math.log(2.52 * 0.86 / (1 - 2.52 * 0.14)))
    assert coef > math.log(2.52)  # a common outcome: OR further from 1 than RR
    assert se == pytest.approx((math.log(5.78) - math.log(1.1)) / (2 * Z95))


# ---- fitting: centring and the intercept ------------------------------------------------


def test_mean_risk_of_reference_equals_baseline(model, reference):
    assert model.predict_risk(reference).mean() == pytest.approx(LITERATURE.baseline_risk, abs=1e-9)


@pytest.mark.parametrize("baseline", [0.17, 0.5])
def test_baseline_is_configurable(reference, baseline):
    fitted = LiteratureModel(
        LiteratureModel.from_config(LITERATURE).effects, baseline, (0.1, 0.6)
    ).fit(reference)
    assert fitted.predict_risk(reference).mean() == pytest.approx(baseline, abs=1e-9)


def test_nothing_recorded_gives_the_typical_risk_and_no_contribution(model, reference):
    blank = reference.iloc[:3].copy()
    for column in blank.columns:
        blank[column] = pd.Series([None] * 3, dtype=blank[column].dtype, index=blank.index)
    assessed = model.assess(blank)
    assert np.allclose(assessed.risk, expit(model.intercept_))
    assert np.allclose(assessed.contributions.to_numpy(), 0.0)


def test_contributions_add_up_to_the_log_odds(model, reference):
    assessed = model.assess(reference)
    total = model.intercept_ + assessed.contributions.sum(axis=1).to_numpy()
    assert np.allclose(total, logit(assessed.risk))
    assert list(assessed.contributions.columns) == list(reference.columns)
    unread = [c for c in reference.columns if c not in model.term_columns_]
    assert np.allclose(assessed.contributions[unread].to_numpy(), 0.0)


def test_row_order_does_not_matter(model, reference):
    shuffled = reference.sample(frac=1.0, random_state=3)
    assert np.allclose(
        model.predict_risk(shuffled),
        pd.Series(model.predict_risk(reference), reference.index)[shuffled.index],
    )


@pytest.mark.parametrize(
    ("column", "low", "high", "direction"),
    [
        ("prior_injuries", 0.0, 3.0, 1),
        ("ake_discomfort", False, True, 1),
        ("lsi_knee_flexors_last_session", 0.75, 0.98, -1),
        ("nordic_involved_force_n", 200.0, 400.0, -1),
        ("days_injury_to_return_to_sport", 14.0, 60.0, -1),
    ],
)
def test_behaviour_follows_the_literature(model, reference, column, low, high, direction):
    rows = reference.iloc[:50]
    lower, higher = rows.copy(), rows.copy()
    lower[column] = pd.Series([low] * 50, index=rows.index).astype(rows[column].dtype)
    higher[column] = pd.Series([high] * 50, index=rows.index).astype(rows[column].dtype)
    change = model.predict_risk(higher) - model.predict_risk(lower)
    assert np.all(direction * change > 0)


def test_more_prior_injuries_never_lowers_risk(model, reference):
    rows = reference.iloc[:20]
    risks = []
    for count in range(8):
        frame = rows.copy()
        frame["prior_injuries"] = pd.Series([float(count)] * 20, index=rows.index)
        risks.append(model.predict_risk(frame))
    assert np.all(np.diff(np.array(risks), axis=0) >= 0)


# ---- intervals -------------------------------------------------------------------------


def test_interval_contains_risk_and_widens_with_level(model, reference):
    narrow = model.assess(reference, level=0.8, contributions=False)
    wide = model.assess(reference, level=0.95, contributions=False)
    assert np.all(wide.risk_ci_low < wide.risk) and np.all(wide.risk < wide.risk_ci_high)
    assert np.all(wide.risk_ci_low <= narrow.risk_ci_low) and np.all(
        narrow.risk_ci_high <= wide.risk_ci_high
    )
    assert model.assess(reference, contributions=False).contributions is None


def test_interval_matches_monte_carlo_over_published_uncertainty(model, reference):
    """Drawing the log effects and the baseline from their normals reproduces the interval."""
    rows = reference.iloc[:5]
    z = model.term_matrix(rows)
    rng = np.random.default_rng(7)
    draws = 40_000
    coefs = model.coef_ + rng.standard_normal((draws, len(model.coef_))) * model.coef_se_
    intercepts = model.intercept_ + rng.standard_normal(draws) * model.intercept_se_
    risk = expit(intercepts[:, None] + coefs @ z.T)
    low, high = np.quantile(risk, [0.025, 0.975], axis=0)
    assessed = model.assess(rows, contributions=False)
    # Quantiles of 40,000 draws: a few thousandths on the risk scale.
    assert np.allclose(assessed.risk_ci_low, low, atol=0.01)
    assert np.allclose(assessed.risk_ci_high, high, atol=0.01)


def test_typical_episode_carries_only_the_baseline_uncertainty(model, reference):
    typical = reference.iloc[:1].copy()
    for k, column in enumerate(model.term_columns_):
        if model.effects[k].term == "linear" and column in typical:
            typical[column] = pd.Series([model.reference_means_[k]], index=typical.index)
    assessed = model.assess(typical, contributions=False)
    z = model.term_matrix(typical)
    se = math.sqrt(model.intercept_se_**2 + float(((z**2) @ model.coef_se_**2)[0]))
    eta = logit(assessed.risk[0])
    assert logit(assessed.risk_ci_high[0]) - eta == pytest.approx(Z95 * se, rel=1e-6)


# ---- errors ------------------------------------------------------------------------------


def test_missing_column_is_named(model, reference):
    with pytest.raises(ValueError, match="ake_discomfort"):
        model.predict_risk(reference.drop(columns=["ake_discomfort"]))


def test_unfitted_model_says_so():
    with pytest.raises(ValueError, match="not fitted"):
        LiteratureModel.from_config(LITERATURE).predict_risk(catalog_frame(3, 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baseline_risk": 0.9}, "must lie inside"),
        ({"effects": ()}, "at least one published effect"),
    ],
)
def test_bad_model_arguments(reference, kwargs, match):
    base = dict(
        effects=LiteratureModel.from_config(LITERATURE).effects,
        baseline_risk=0.33,
        baseline_risk_interval=(0.17, 0.45),
    )
    with pytest.raises(ValueError, match=match):
        LiteratureModel(**{**base, **kwargs}).fit(reference)


def test_text_in_a_numeric_column_is_named(reference):
    bad = reference.iloc[:3].copy()
    bad["prior_injuries"] = pd.Series(["1", "two", "3"], index=bad.index, dtype=object)
    with pytest.raises(ValueError, match="prior_injuries"):
        literature_model(reference).predict_risk(bad)


def test_coefficient_table_recovers_the_published_odds_ratios(model):
    table = model.coefficients().set_index("term")
    row = table.loc["prior_injuries"]
    assert row["odds_ratio_per"] == pytest.approx(1.33)
    assert (row["low"], row["high"]) == pytest.approx(
        (1.33 / np.sqrt(1.61 / 1.11), 1.33 * np.sqrt(1.61 / 1.11))
    )
    assert (table["low"] < table["odds_ratio_per"]).all()
    assert (table["odds_ratio_per"] < table["high"]).all()
    assert table["source"].str.len().gt(0).all()
