"""The largest contributions behind each risk, for the words a clinician reads.

Phrasing belongs to the feature catalog; this module only picks, per row, which features
moved the risk most and in which direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TopFactors:
    """Per row, the ``k`` features with the largest |contribution|, largest first."""

    names: np.ndarray  # (n, k) feature names (object)
    values: np.ndarray  # (n, k) signed contributions on the log-odds scale


def top_factors(contributions: pd.DataFrame, k: int = 3) -> TopFactors:
    """The ``k`` largest contributions by absolute value, with their sign.

    Vectorised with ``argpartition`` (linear in the number of features per row), then only
    the ``k`` chosen are sorted. Missing contributions count as 0. Among the chosen, ties
    in |value| are ordered by column; which of several features tied exactly at the cut is
    kept is deterministic but unspecified. ``k`` larger than the number of features
    returns them all.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    values = contributions.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.nan_to_num(values, nan=0.0)
    n, p = values.shape
    k = min(k, p)
    names = np.asarray(contributions.columns, dtype=object)
    if n == 0 or k == 0:
        return TopFactors(np.empty((n, k), dtype=object), np.empty((n, k)))
    magnitude = np.abs(values)
    if k < p:
        chosen = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
    else:
        chosen = np.broadcast_to(np.arange(p), (n, p)).copy()
    chosen_mag = np.take_along_axis(magnitude, chosen, axis=1)
    rank = np.lexsort((chosen, -chosen_mag), axis=1)
    chosen = np.take_along_axis(chosen, rank, axis=1)
    return TopFactors(names=names[chosen], values=np.take_along_axis(values, chosen, axis=1))
