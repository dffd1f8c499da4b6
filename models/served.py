"""A literature or updated model as scoring and lookups serve it.

``LiteratureModel`` and ``UpdatedModel`` (:mod:`models.literature`, :mod:`models.updating`)
are the statistics. Serving also needs what a trained ``RiskModel`` carries: the column
kinds (``prep_``), the binned distributions of the population it describes (``reference_``,
which lookups average unknown answers over and audits measure drift against) and which
kind of model it is. This wrapper adds them and passes every prediction through.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from models.compact import Assessment
from models.drift import build_reference
from models.prep import FeaturePrep

Kind = Literal["literature", "updated"]


class ServedLinearModel:
    """A fitted literature or updated model with its reference population's description.

    Args:
        model: a fitted ``LiteratureModel`` or ``UpdatedModel``.
        kind: ``literature`` (no outcomes of any clinic) or ``updated`` (to a clinic's).

    Fitted attributes (``fit``): ``feature_names_in_``, ``prep_``, ``reference_``,
    ``base_rate_`` (the model's own) and ``kind_``.
    """

    def __init__(self, model: Any, kind: Kind) -> None:
        self.model = model
        self.kind = kind

    def fit(self, population: pd.DataFrame, categorical: tuple[str, ...] = ()) -> ServedLinearModel:
        """Describe ``population`` (the features the model's terms were centred on or updated
        with); nothing about the model's coefficients changes."""
        if self.kind not in ("literature", "updated"):
            raise ValueError(f"kind must be literature or updated, got {self.kind!r}")
        names = [str(c) for c in self.model.feature_names_in_]
        missing = [c for c in names if c not in population.columns]
        if missing:
            raise ValueError(f"the population lacks the model's columns {missing}")
        frame = population[names]
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.prep_ = FeaturePrep().fit(frame, categorical=categorical)
        self.reference_ = build_reference(frame, categorical=categorical)
        self.base_rate_ = float(self.model.base_rate_)
        self.kind_ = self.kind
        return self

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_risk(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X)

    def predict_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict_interval(X, level)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.model.contributions(X)

    def assess(
        self, X: pd.DataFrame, level: float = 0.95, contributions: bool = True
    ) -> Assessment:
        return self.model.assess(X, level, contributions)

    def linear_predictor(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.linear_predictor(X)


def model_kind(risk_model: Any) -> str:
    """``literature``, ``updated`` or ``trained`` (any other fitted model)."""
    return str(getattr(risk_model, "kind_", "trained"))


def model_description(kind: str) -> str:
    """How every output names a kind of model (``literature``, ``updated``, ``trained``)."""
    if kind == "literature":
        return (
            "the literature model (published effects only: not yet checked against this "
            "clinic's outcomes)"
        )
    if kind == "updated":
        return "the literature model updated to this clinic's outcomes (`hamrisk update`)"
    return "trained on this clinic's outcomes (`hamrisk train`)"
