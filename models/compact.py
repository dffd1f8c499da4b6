"""A fitted additive risk model as a few numpy arrays, for lookups that start in a fresh process.

A :class:`models.estimators.RiskModel` whose trees each split on one feature (boosted
stumps) predicts from its step tables (:mod:`models.additive`) and never needs LightGBM
after fitting, yet unpickling it imports LightGBM, scikit-learn and SciPy: about a second,
most of a one-athlete lookup. :class:`CompactRiskModel` keeps only what prediction reads:
the feature prep, the step tables of the model and its bootstrap members (the members'
already on their calibrated log-odds scale), the calibrator
as its numbers, the base rate and the training reference. It imports numpy and pandas
only, and gives the full model's risks, intervals and contributions to the bit (the same
tables summed in the same order, the same calibration arithmetic);
``tests/models/test_compact.py`` checks it. ``RiskModel.compact()`` makes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.additive import AdditiveTables
from models.calibration import clip_probability
from models.prep import FeaturePrep

# math.exp is the C library's exp, which scipy.special.expit calls; numpy's vectorised exp
# differs from it in the last bit for about one value in fifty. A lookup maps a few
# thousand scores, so the Python-level loop costs a few milliseconds.
_LIBM_EXP = np.frompyfunc(math.exp, 1, 1)
# Beyond this the exp overflows; the probabilities there are clipped anyway.
_MAX_EXP_ARGUMENT = 700.0


def _expit(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` as ``scipy.special.expit`` computes it, for |x| <= 700."""
    x = np.clip(np.asarray(x, dtype=np.float64), -_MAX_EXP_ARGUMENT, _MAX_EXP_ARGUMENT)
    return 1.0 / (1.0 + np.asarray(_LIBM_EXP(-x), dtype=np.float64))


def bootstrap_interval(
    risk: np.ndarray, member_logits: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normal bootstrap interval around ``risk`` on the log-odds scale.

    ``member_logits`` is ``(members, rows)``: each bootstrap member's calibrated log-odds.
    The bounds are ``expit(logit(risk) -/+ z * sd)``, ``sd`` the members' standard
    deviation per row and ``z`` the normal quantile of ``(1 + level) / 2``; they always
    contain ``risk``. The full and the compact model both call this, so their intervals
    agree to the bit.
    """
    z = NormalDist().inv_cdf((1 + level) / 2)
    sd = np.std(member_logits, axis=0, ddof=1)
    centre = np.log(risk) - np.log1p(-risk)
    low = clip_probability(1.0 / (1.0 + np.exp(-(centre - z * sd))))
    high = clip_probability(1.0 / (1.0 + np.exp(-(centre + z * sd))))
    return np.minimum(low, risk), np.maximum(high, risk)


@dataclass(frozen=True)
class Assessment:
    """What the model says of each row: risk, its interval, and what drives it.

    ``contributions`` (log-odds, before calibration, one column per feature) is ``None``
    when not asked for.
    """

    risk: np.ndarray
    risk_ci_low: np.ndarray
    risk_ci_high: np.ndarray
    contributions: pd.DataFrame | None


@dataclass(frozen=True)
class CompactCalibrator:
    """A fitted calibrator (:mod:`models.calibration`) as the numbers its map needs.

    ``sigmoid``: ``expit(slope * score + intercept)``; ``none``: the same with slope 1 and
    intercept 0; ``isotonic``: linear interpolation through ``(x, y)``, flat beyond the
    ends (scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``). Every risk is
    clipped as the calibrators clip it.
    """

    method: Literal["sigmoid", "isotonic", "none"]
    slope: float = 1.0
    intercept: float = 0.0
    x: np.ndarray | None = None
    y: np.ndarray | None = None

    @classmethod
    def of(cls, calibrator: Any) -> CompactCalibrator:
        """The numbers of a fitted ``SigmoidCalibrator``, ``IsotonicCalibrator`` or
        ``IdentityCalibrator``.

        Raises:
            ValueError: a calibrator of another method.
        """
        if calibrator.method == "sigmoid":
            return cls("sigmoid", float(calibrator.slope_), float(calibrator.intercept_))
        if calibrator.method == "isotonic":
            return cls("isotonic", x=calibrator.x_.copy(), y=calibrator.y_.copy())
        if calibrator.method == "none":
            return cls("none")
        raise ValueError(f"no compact form for a calibrator of method {calibrator.method!r}")

    def predict(self, score: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return clip_probability(np.interp(score, self.x, self.y))
        if self.method == "none":
            return clip_probability(_expit(score))
        return clip_probability(_expit(self.slope * score + self.intercept))


class CompactRiskModel:
    """An additive :class:`models.estimators.RiskModel` as lookups read it.

    Offers ``predict_risk``, ``predict_interval``, ``contributions`` and ``assess`` with
    the full model's arguments and results, and its attributes ``feature_names_in_``,
    ``n_features_in_``, ``prep_``, ``calibrator_``, ``base_rate_``, ``reference_`` and
    ``additive_`` (column 0 the model, the others its bootstrap members).
    """

    def __init__(
        self,
        prep: FeaturePrep,
        tables: AdditiveTables,
        calibrator: CompactCalibrator,
        base_rate: float,
        reference: dict[str, dict[str, Any]],
    ) -> None:
        self.prep_ = prep
        self.feature_names_in_ = prep.feature_names_
        self.n_features_in_ = len(prep.feature_names_)
        self.additive_ = tables
        self.calibrator_ = calibrator
        self.base_rate_ = float(base_rate)
        self.reference_ = reference

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated risk of a recurrence within the window, one per row."""
        tables = self.additive_
        main = tables.raw_scores(tables.bins(self.prep_.transform(X)), ensembles=[0])[:, 0]
        return self.calibrator_.predict(main)

    def predict_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap interval for each row's risk (``RiskModel.predict_interval``)."""
        assessed = self.assess(X, level, contributions=False)
        return assessed.risk_ci_low, assessed.risk_ci_high

    def contributions(
        self, X: pd.DataFrame, method: Literal["shap", "path"] = "shap"
    ) -> pd.DataFrame:
        """Exact SHAP values of the model's log-odds; for an additive ensemble the path
        attribution is the same (``RiskModel.contributions``)."""
        if method not in ("shap", "path"):
            raise ValueError(f'method must be "shap" or "path" (got {method!r})')
        tables = self.additive_
        values = tables.contributions(tables.bins(self.prep_.transform(X)))
        return pd.DataFrame(values, columns=list(self.feature_names_in_), index=X.index)

    def assess(
        self, X: pd.DataFrame, level: float = 0.95, contributions: bool = True
    ) -> Assessment:
        """Risk, interval and, if asked, contributions from one pass (``RiskModel.assess``).

        Raises:
            ValueError: ``level`` outside (0, 1), or fewer than two bootstrap members.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1) (got {level})")
        tables = self.additive_
        if tables.n_ensembles - 1 < 2:
            raise ValueError("no bootstrap ensemble: fit with n_bootstrap >= 2 for intervals")
        bins = tables.bins(self.prep_.transform(X))
        raw = tables.raw_scores(bins)
        risk = self.calibrator_.predict(raw[:, 0])
        lo, hi = bootstrap_interval(risk, raw[:, 1:].T, level)
        frame = None
        if contributions:
            frame = pd.DataFrame(
                tables.contributions(bins), columns=list(self.feature_names_in_), index=X.index
            )
        return Assessment(risk, lo, hi, frame)
