"""Model choice and hyperparameters by grouped cross-validation on a censoring-aware loss.

Folds keep each athlete's episodes together (an athlete never straddles training and
validation); all candidates see the same folds (:class:`~models.estimators.RiskModel`
draws them from ``random_state``). Each candidate is scored on the IPCW-weighted log loss
of its held-out predictions (a proper scoring rule that rewards calibration and
discrimination together); the weighted Brier score is reported beside it. Candidates are
compared on the classifier's own probabilities: recalibration is fitted afterwards for
the chosen one.

The held-out predictions are the ones ``RiskModel.fit`` computes anyway (its
``cv_scores_``): for LightGBM, the folds' boosters at the number of rounds that early
stopping chose on the same folds' mean loss (what ``lightgbm.cv`` reports). Choosing one
number on a smooth curve flatters the loss a little, for every LightGBM candidate alike;
nesting the round choice inside each fold would cost four times as many fits for a change
in the ranking well inside the folds' spread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.estimators import RiskModel


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and the cross-validation table behind the choice."""

    best: dict[str, Any]
    table: pd.DataFrame


def select_model(
    X: pd.DataFrame,
    y: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray,
    candidates: Sequence[Mapping[str, Any]],
    cv: int = 5,
    random_state: int | None = None,
    monotone: Mapping[str, int] | None = None,
    categorical: Sequence[str] | None = None,
    early_stopping: int = 100,
) -> Selection:
    """The candidate with the lowest mean grouped-CV weighted log loss.

    Args:
        X, y, w, groups: features, outcomes (NaN unknown), IPCW weights, athlete ids.
        candidates: dicts with ``kind`` and optional ``params``.
        cv: number of folds.
        random_state: seed of the folds and of every fit.
        monotone, categorical: passed to every :class:`RiskModel`.
        early_stopping: LightGBM's patience when choosing rounds (0: fixed rounds).

    Returns:
        :class:`Selection` with ``best`` (the winning candidate dict) and ``table``: one
        row per candidate with ``kind``, ``params`` (JSON), ``log_loss``, ``log_loss_sd``,
        ``brier``, ``brier_sd`` (means and SDs over folds), ``rounds`` (LightGBM: the
        rounds chosen; else missing) and ``rank``; ties go to the
        earlier candidate.

    Raises:
        ValueError: no candidates, a candidate without a valid ``kind``, or fewer
            athletes than folds.
    """
    if not candidates:
        raise ValueError("select_model needs at least one candidate")
    for i, cand in enumerate(candidates):
        if cand.get("kind") not in ("lightgbm", "logistic"):
            raise ValueError(
                f'candidate {i} needs kind "lightgbm" or "logistic" (got {cand.get("kind")!r})'
            )
        extra = set(cand) - {"kind", "params"}
        if extra:
            raise ValueError(f"candidate {i} has unknown key(s) {sorted(extra)}")
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < cv:
        raise ValueError(f"cv={cv} folds need at least {cv} athletes, got {n_groups}")
    rows = []
    for cand in candidates:
        # A fixed calibration makes every kind compute its cross-fitted scores (cv_scores_).
        model = RiskModel(
            kind=cand["kind"],
            params=dict(cand.get("params") or {}),
            monotone=monotone,
            categorical=categorical,
            calibration="sigmoid",
            cv=cv,
            n_bootstrap=0,
            early_stopping=early_stopping,
            random_state=random_state,
        ).fit(X, y, w, groups)
        losses, briers = model.cv_scores_["log_loss"], model.cv_scores_["brier"]
        rows.append(
            {
                "kind": cand["kind"],
                "params": json.dumps(dict(cand.get("params") or {}), sort_keys=True),
                "log_loss": float(np.mean(losses)),
                "log_loss_sd": float(np.std(losses, ddof=1)) if len(losses) > 1 else np.nan,
                "brier": float(np.mean(briers)),
                "brier_sd": float(np.std(briers, ddof=1)) if len(briers) > 1 else np.nan,
                "rounds": float(model.params_.get("n_estimators", np.nan)),
            }
        )
    table = pd.DataFrame(rows)
    table["rank"] = table["log_loss"].rank(method="first").astype(int)
    best_index = int(table["rank"].to_numpy().argmin())
    best = {
        "kind": candidates[best_index]["kind"],
        "params": dict(candidates[best_index].get("params") or {}),
    }
    return Selection(best=best, table=table)
