"""CompactRiskModel: the full additive model's numbers, without LightGBM, sklearn or SciPy."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from models.calibration import CALIBRATORS
from models.compact import CompactCalibrator, CompactRiskModel
from models.estimators import RiskModel
from tests.models.conftest import make_episodes
from tests.models.test_estimators import _model

STUMPS = {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 2, "min_child_samples": 10}
# The compact form sums the same tables in the same order and calibrates with the same
# arithmetic; the calibrator test below holds the one place it could differ to the bit.
CLOSE = {"rtol": 0, "atol": 1e-12}


def _stumps(**kwargs) -> RiskModel:
    kwargs = {"kind": "lightgbm", "params": STUMPS, **kwargs}
    return _model(kwargs.pop("kind"), **kwargs)


@pytest.fixture(scope="module")
def training():
    return make_episodes(400, random_state=21)


@pytest.fixture(scope="module", params=["sigmoid", "isotonic", "none"])
def fitted(request, training) -> RiskModel:
    model = _stumps(calibration=request.param)
    return model.fit(training.X, training.y, training.w, training.groups)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Rows as scored: some with missing values in every column, some with a category
    never seen at fit or none at all."""
    X = make_episodes(300, random_state=22).X.copy()
    X.loc[X.index[:20], "discipline"] = "hurdles"
    X.loc[X.index[20:40], "discipline"] = pd.NA
    for j, name in enumerate(X.columns):
        X.loc[X.index[40 + 10 * j : 50 + 10 * j], name] = pd.NA
    return X


def test_the_fitted_stumps_are_additive(fitted):
    assert fitted.compact() is not None
    assert fitted.calibrator_.method == fitted.calibration


def test_compact_gives_the_full_models_risk_interval_and_contributions(fitted, rows):
    compact = fitted.compact()
    assert_allclose(compact.predict_risk(rows), fitted.predict_risk(rows), **CLOSE)
    for got, expected in zip(
        compact.predict_interval(rows, level=0.8), fitted.predict_interval(rows, level=0.8),
        strict=True,
    ):  # fmt: skip
        assert_allclose(got, expected, **CLOSE)
    got, expected = compact.contributions(rows), fitted.contributions(rows)
    assert list(got.columns) == list(expected.columns) and got.index.equals(expected.index)
    assert_allclose(got.to_numpy(), expected.to_numpy(), **CLOSE)


def test_compact_assess_equals_the_full_assess(fitted, rows):
    got, expected = fitted.compact().assess(rows), fitted.assess(rows)
    for name in ("risk", "risk_ci_low", "risk_ci_high"):
        assert_allclose(getattr(got, name), getattr(expected, name), **CLOSE)
    assert_allclose(got.contributions.to_numpy(), expected.contributions.to_numpy(), **CLOSE)
    assert fitted.compact().assess(rows, contributions=False).contributions is None


def test_compact_keeps_what_a_lookup_reads(fitted):
    compact = fitted.compact()
    assert list(compact.feature_names_in_) == list(fitted.feature_names_in_)
    assert compact.n_features_in_ == fitted.n_features_in_
    assert compact.base_rate_ == fitted.base_rate_
    assert compact.reference_ == fitted.reference_
    assert compact.prep_.kinds_ == fitted.prep_.kinds_


def test_compact_survives_pickling(fitted, rows):
    compact = fitted.compact()
    again = pickle.loads(pickle.dumps(compact))
    assert_array_equal(again.predict_risk(rows), compact.predict_risk(rows))
    assert_array_equal(again.contributions(rows), compact.contributions(rows))


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "none"])
def test_compact_calibrators_map_scores_as_the_fitted_ones(method):
    rng = np.random.default_rng(3)
    score = rng.normal(-0.5, 1.5, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-score))).astype(float)
    calibrator = CALIBRATORS[method]().fit(score, y, np.ones(2000))
    # Beyond the fitted range, and far enough out that exp overflows.
    probe = np.concatenate([rng.normal(0, 4, 5000), [-1e6, -800.0, -0.0, 0.0, 800.0, 1e6]])
    # Equal to the bit: with numpy's own exp about one risk in fifty moves by one unit in
    # the last place, which can change the last digit of a lookup's JSON.
    assert_array_equal(CompactCalibrator.of(calibrator).predict(probe), calibrator.predict(probe))


def test_a_calibrator_of_another_method_has_no_compact_form():
    class Beta:
        method = "beta"

    with pytest.raises(ValueError, match="no compact form for a calibrator of method 'beta'"):
        CompactCalibrator.of(Beta())


@pytest.mark.parametrize(
    "options",
    [
        {"kind": "logistic", "params": None},
        {"params": {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 8}},
    ],
    ids=["logistic", "trees-with-interactions"],
)
def test_models_that_are_not_additive_have_no_compact_form(training, options):
    model = _stumps(**options).fit(training.X, training.y, training.w, training.groups)
    assert model.compact() is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, X: m.assess(X, level=1.0), r"level must be in \(0, 1\)"),
        (lambda m, X: m.predict_interval(X, level=0.0), r"level must be in \(0, 1\)"),
        (lambda m, X: m.contributions(X, method="gain"), 'method must be "shap" or "path"'),
        (lambda m, X: m.predict_risk(X.drop(columns="lsi")), r"lacks column\(s\).*lsi"),
        (lambda m, X: m.predict_risk(X.to_numpy()), "expected a pandas DataFrame"),
    ],
)
def test_compact_refuses_what_the_full_model_refuses(fitted, rows, call, match):
    for model in (fitted, fitted.compact()):
        with pytest.raises((ValueError, TypeError), match=match):
            call(model, rows)


def test_without_a_bootstrap_ensemble_there_is_no_interval(training, rows):
    model = _stumps(n_bootstrap=0).fit(training.X, training.y, training.w, training.groups)
    compact = model.compact()
    assert_allclose(compact.predict_risk(rows), model.predict_risk(rows), **CLOSE)
    with pytest.raises(ValueError, match="no bootstrap ensemble"):
        compact.predict_interval(rows)


def test_loading_and_using_it_imports_no_lightgbm_sklearn_or_scipy(fitted, rows, tmp_path):
    path = tmp_path / "compact.pkl"
    path.write_bytes(pickle.dumps((fitted.compact(), rows)))
    code = (
        "import pickle, sys; "
        f"compact, rows = pickle.loads(open({str(path)!r}, 'rb').read()); "
        "compact.assess(rows); compact.predict_risk(rows); "
        "print(type(compact).__name__, "
        "sorted(m for m in ('lightgbm', 'sklearn', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [CompactRiskModel.__name__, "[]"]
