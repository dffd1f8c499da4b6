"""Figures are returned (not saved), carry their data, and render with Agg."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.special import expit

from models.evaluation import calibration_curve, net_benefit
from models.plots import calibration_figure, decision_curve_figure, importance_figure, roc_figure


def _sample(n: int = 500):
    rng = np.random.default_rng(0)
    p = expit(rng.normal(-0.7, 1, n))
    return (rng.random(n) < p).astype(float), p


def _renders(fig: Figure) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_figure_has_curve_and_band():
    y, p = _sample()
    fig = calibration_figure(calibration_curve(y, p, n_boot=20, random_state=0))
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 1  # diagonal, curve; band
    _renders(fig)


def test_roc_figure_reports_auc():
    y, p = _sample()
    fig = roc_figure(y, p)
    assert "AUC" in fig.axes[0].get_legend().get_texts()[0].get_text()
    _renders(fig)


def test_importance_figure_orders_features():
    contributions = pd.DataFrame({"a": [0.1, -0.1], "b": [1.0, -2.0], "c": [0.0, 0.5]})
    fig = importance_figure(contributions)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["a", "c", "b"]  # largest on top
    _renders(fig)


def test_decision_curve_figure_has_three_lines():
    y, p = _sample()
    fig = decision_curve_figure(net_benefit(y, p))
    assert len(fig.axes[0].lines) == 3
    _renders(fig)
