"""Reference distributions of the training features, and drift against them (PSI).

The reference travels inside the fitted model: for each feature the binned proportions
of the training rows, never the rows themselves. Numeric bins use interior quantiles only
(no minimum or maximum, which would be one athlete's value); categorical bins are the
categories seen at fit. Missing values get a bin of their own, because a feature that
starts arriving empty is drift too.

Population stability index (PSI), per feature: ``sum((a - e) * ln(a / e))`` over bins,
``e`` the reference proportion and ``a`` the new one. Conventional reading (Siddiqi 2006,
*Credit Risk Scorecards*, ch. 8; Yurdakul 2018, WMU dissertation): below 0.10 stable,
0.10–0.25 a moderate shift, above 0.25 a major shift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

PSI_MODERATE = 0.10
PSI_MAJOR = 0.25
# Empty bins would make PSI infinite; a floor of 1e-4 is the usual convention and bounds a
# single empty bin's contribution to about (p)·ln(p/1e-4).
_FLOOR = 1e-4


def _numeric_values(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, pd.BooleanDtype) or column.dtype == bool:
        return column.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _string_values(column: pd.Series) -> pd.Series:
    return column.astype("string")


def build_reference(
    X: pd.DataFrame,
    categorical: Sequence[str] = (),
    n_bins: int = 10,
    sample_weight: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Binned reference distribution of every column of ``X``.

    Args:
        X: the training features.
        categorical: columns binned by category; string-typed columns are always categorical.
        n_bins: quantile bins for numeric columns (fewer when values repeat).
        sample_weight: unused by default (the reference describes the rows as scored,
            not as weighted for training); accepted for symmetry with ``fit``.

    Returns:
        ``{feature: {"kind", "edges" | "categories", "proportions", "missing"}}``, plain
        lists and floats only, so it serialises to JSON.
    """
    del sample_weight
    categorical = set(categorical)
    reference: dict[str, dict[str, Any]] = {}
    n = len(X)
    for name in X.columns:
        column = X[name]
        is_text = pd.api.types.is_string_dtype(column) or isinstance(
            column.dtype, pd.CategoricalDtype
        )
        missing = column.isna().to_numpy()
        n_present = int((~missing).sum())
        missing_share = float(missing.mean()) if n else 0.0
        if name in categorical or is_text:
            values = _string_values(column)[~missing]
            counts = values.value_counts(sort=False)
            categories = sorted(str(c) for c in counts.index)
            props = [float(counts[c]) / n if n else 0.0 for c in categories]
            reference[name] = {
                "kind": "categorical",
                "categories": categories,
                "proportions": props,
                "missing": missing_share,
            }
            continue
        values = _numeric_values(column)
        present = values[~np.isnan(values)]
        if isinstance(column.dtype, pd.BooleanDtype) or column.dtype == bool:
            edges = np.array([0.5])  # two bins: False, True
        elif n_present:
            qs = np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])
            edges = np.unique(qs)
        else:
            edges = np.array([])
        counts = np.bincount(
            np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1
        )
        reference[name] = {
            "kind": "numeric",
            "edges": [float(e) for e in edges],
            "proportions": [float(c) / n if n else 0.0 for c in counts],
            "missing": missing_share,
        }
    return reference


def _proportions(column: pd.Series, spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(reference, new) proportions over the same bins, the missing bin last."""
    n = len(column)
    missing = column.isna().to_numpy()
    if spec["kind"] == "categorical":
        categories = list(spec["categories"])
        known = pd.Index(categories, dtype="string")
        codes = known.get_indexer(_string_values(column)[~missing])
        # Categories never seen at fit share one "other" bin, whose reference share is 0.
        counts = np.bincount(
            np.where(codes < 0, len(categories), codes), minlength=len(categories) + 1
        )
        expected = np.append(spec["proportions"], 0.0)
    else:
        values = _numeric_values(column)
        present = values[~np.isnan(values)]
        edges = np.asarray(spec["edges"], dtype=np.float64)
        counts = np.bincount(
            np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1
        )
        expected = np.asarray(spec["proportions"], dtype=np.float64)
    actual = np.append(counts / n, missing.mean()) if n else np.zeros(len(counts) + 1)
    expected = np.append(expected, spec["missing"])
    return expected, actual


def population_stability(
    X: pd.DataFrame, reference: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """PSI of each reference feature in ``X`` against the training reference.

    Returns:
        one row per feature, most shifted first: ``feature``, ``psi``, ``shift``
        (``stable`` / ``moderate`` / ``major``). A feature absent from ``X`` gets NaN PSI
        and shift ``absent``.
    """
    rows = []
    for name, spec in reference.items():
        if name not in X.columns:
            rows.append((name, np.nan, "absent"))
            continue
        expected, actual = _proportions(X[name], spec)
        e = np.maximum(expected, _FLOOR)
        a = np.maximum(actual, _FLOOR)
        psi = float(np.sum((a - e) * np.log(a / e)))
        shift = "major" if psi > PSI_MAJOR else "moderate" if psi > PSI_MODERATE else "stable"
        rows.append((name, psi, shift))
    table = pd.DataFrame(rows, columns=["feature", "psi", "shift"])
    return table.sort_values("psi", ascending=False, na_position="last", kind="stable").reset_index(
        drop=True
    )
