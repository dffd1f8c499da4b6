"""Evaluation figures, returned as matplotlib ``Figure`` objects (never saved here).

Figures are built with ``matplotlib.figure.Figure`` directly rather than ``pyplot``, so no
global figure registry or interactive backend is involved (Agg renders them when the
caller saves). Saving and logging belong to the pipeline's edge modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from models.evaluation import known_outcomes, weighted_auc

_SIZE = (5.0, 4.0)


def calibration_figure(curve: pd.DataFrame, title: str = "Calibration") -> Figure:
    """Smoothed calibration curve with its band (see ``evaluation.calibration_curve``)."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    lim = float(max(curve["predicted"].max(), np.nanmax(curve[["observed", "high"]].to_numpy())))
    lim = min(1.0, lim * 1.05 + 0.02)
    ax.plot([0, lim], [0, lim], linestyle="--", color="grey", linewidth=1, label="ideal")
    if curve["low"].notna().any():
        ax.fill_between(
            curve["predicted"], curve["low"], curve["high"], alpha=0.25, label="95% band"
        )
    ax.plot(curve["predicted"], curve["observed"], linewidth=2, label="observed (smoothed)")
    ax.set(xlim=(0, lim), ylim=(0, lim), xlabel="predicted risk", ylabel="observed risk")
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False)
    return fig


def roc_figure(y: Any, p: Any, w: Any | None = None, title: str = "ROC") -> Figure:
    """Weighted ROC curve with its AUC in the legend."""
    y, p, w = known_outcomes(y, p, w)
    fpr, tpr, _ = roc_curve(y.astype(int), p, sample_weight=w)
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.plot(fpr, tpr, linewidth=2, label=f"AUC {weighted_auc(y, p, w):.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", frameon=False)
    return fig


def importance_figure(
    contributions: pd.DataFrame, top: int = 20, title: str = "Feature importance"
) -> Figure:
    """Mean |contribution| per feature (mean |SHAP| for LightGBM), largest on top."""
    importance = contributions.abs().mean(axis=0).sort_values(ascending=False).head(top)
    importance = importance.iloc[::-1]
    fig = Figure(figsize=(6.0, 0.3 * len(importance) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(importance.index.astype(str), importance.to_numpy())
    ax.set_xlabel("mean |contribution| (log-odds)")
    ax.set_title(title)
    return fig


def decision_curve_figure(benefit: pd.DataFrame, title: str = "Decision curve") -> Figure:
    """Net benefit against treat-all and treat-none, from :func:`models.evaluation.net_benefit`."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(benefit["threshold"], benefit["model"], linewidth=2, label="model")
    ax.plot(benefit["threshold"], benefit["treat_all"], linestyle="--", label="treat all")
    ax.plot(
        benefit["threshold"], benefit["treat_none"], color="black", linewidth=1, label="treat none"
    )
    top = float(max(benefit["model"].max(), benefit["treat_all"].max(), 0.0))
    ax.set_ylim(-0.05, top * 1.1 + 0.02)
    ax.set(xlabel="threshold risk", ylabel="net benefit")
    ax.set_title(title)
    ax.legend(loc="upper right", frameon=False)
    return fig


def incidence_figure(table: pd.DataFrame, title: str = "Risk over time") -> Figure:
    """Observed (Kaplan–Meier, with its interval) against mean predicted cumulative
    incidence by day, one colour per group (``models.kaplan_meier.horizon_calibration``'s
    columns: ``group``, ``horizon_days``, ``incidence``, ``incidence_low``,
    ``incidence_high``, ``expected``)."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    for k, (group, part) in enumerate(table.groupby("group", sort=True)):
        colour = f"C{k}"
        days = np.r_[0, part["horizon_days"].to_numpy(dtype=float)]
        ax.step(
            days, np.r_[0, part["incidence"].to_numpy()], where="post", color=colour,
            label=f"{group}: observed",
        )  # fmt: skip
        ax.vlines(
            part["horizon_days"], part["incidence_low"], part["incidence_high"], color=colour,
            alpha=0.5,
        )  # fmt: skip
        ax.plot(
            days, np.r_[0, part["expected"].to_numpy()], linestyle="--", marker="o",
            color=colour, label=f"{group}: predicted",
        )  # fmt: skip
    ax.set(xlabel="days after return to sport", ylabel="cumulative incidence", ylim=(0, None))
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    return fig
