"""The risk over time beside the one-year risk, as every output carries it.

``curve_columns`` is what the pyfunc, ``hamrisk score`` and ``hamrisk lookup`` add to
``risk``: the cumulative incidence of a recurrence by each horizon before the outcome window
(``configs/train.yaml`` ``incidence.horizons``), with its interval, and where the curve's
timing came from (``models.curve.risk_curve``).
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from models.curve import PublishedTiming, risk_curve
from pipeline.config import CONFIG_DIR, IncidenceConfig, TrainConfig, load_config


@functools.cache
def published_timing() -> PublishedTiming:
    """The published timing of recurrences (``configs/train.yaml``, ``incidence``), for a
    model version that carries no timing of its own; its defaults where the project's
    configs are not beside the code (a model served from its own copy of the packages)."""
    path = CONFIG_DIR / "train.yaml"
    incidence = load_config(TrainConfig, path).incidence if path.exists() else IncidenceConfig()
    return PublishedTiming.from_config(incidence)


def curve_columns(
    risk_model: Any,
    X: pd.DataFrame,
    risk: Any,
    low: Any,
    high: Any,
    timing_interval: bool = True,
) -> pd.DataFrame:
    """``risk_{h}d``, ``risk_{h}d_ci_low``, ``risk_{h}d_ci_high`` for each horizon before the
    window, then ``curve_shape``: ``fitted`` (the model's own timing) or ``published``
    (:func:`published_timing`). Index that of ``X``. ``timing_interval=False``: intervals
    from the one-year interval alone (``models.curve.risk_curve``)."""
    frame, source = risk_curve(
        risk_model, X, risk, low, high, published_timing(), timing_interval=timing_interval
    )
    frame["curve_shape"] = source
    return frame
