"""The served wrapper of a literature or updated model: predictions pass through unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from features.catalog import FEATURES
from models.literature import LiteratureModel
from models.served import ServedLinearModel, model_description, model_kind
from tests.models.literature_frames import LITERATURE, catalog_frame

CATEGORICAL = tuple(s.name for s in FEATURES if s.kind == "categorical")


@pytest.fixture(scope="module")
def served():
    reference = catalog_frame(400, random_state=3)
    model = LiteratureModel.from_config(LITERATURE).fit(reference)
    return ServedLinearModel(model, "literature").fit(reference, categorical=CATEGORICAL), model


def test_predictions_pass_through_unchanged(served):
    wrapper, model = served
    X = catalog_frame(50, random_state=4)
    np.testing.assert_array_equal(wrapper.predict_risk(X), model.predict_risk(X))
    low, high = wrapper.predict_interval(X)
    np.testing.assert_array_equal(low, model.predict_interval(X)[0])
    assert np.all(low < wrapper.predict_risk(X)) and np.all(wrapper.predict_risk(X) < high)
    assessed = wrapper.assess(X)
    np.testing.assert_allclose(assessed.contributions.to_numpy(), model.contributions(X).to_numpy())


def test_it_describes_its_population_and_kind(served):
    wrapper, model = served
    assert list(wrapper.feature_names_in_) == list(model.feature_names_in_)
    assert set(wrapper.reference_) == set(model.feature_names_in_)
    assert wrapper.prep_.kinds_["sex"] == "categorical"
    assert wrapper.base_rate_ == pytest.approx(LITERATURE.baseline_risk)
    assert model_kind(wrapper) == "literature"
    assert model_kind(object()) == "trained"
    assert "not yet checked" in model_description("literature")
    assert "not yet checked" not in model_description("updated")


def test_an_unknown_kind_is_refused():
    reference = catalog_frame(50, random_state=5)
    model = LiteratureModel.from_config(LITERATURE).fit(reference)
    with pytest.raises(ValueError, match="kind must be literature or updated"):
        ServedLinearModel(model, "guessed").fit(reference)
