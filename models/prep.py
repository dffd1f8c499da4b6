"""Feature prep learned at fit: the columns a model reads and how each becomes a number.

Only numpy and pandas: the compact model a lookup loads (:mod:`models.compact`) carries a
fitted :class:`FeaturePrep` and must unpickle without LightGBM or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class FeaturePrep:
    """Column prep learned at fit: order, kinds and categories.

    ``transform`` returns a float64 matrix in the fitted column order: numbers as they
    are, booleans as 0/1, categories as their index among the categories seen at fit.
    Missing values, and categories never seen at fit, become NaN (never an error).
    """

    def fit(self, X: pd.DataFrame, categorical: Sequence[str] = ()) -> FeaturePrep:
        self.feature_names_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.kinds_: dict[str, str] = {}
        self.categories_: dict[str, list[str]] = {}
        for name in X.columns:
            col = X[name]
            if name in categorical or _is_text(col):
                self.kinds_[name] = "categorical"
                seen = col.dropna().astype("string").unique()
                self.categories_[name] = sorted(str(v) for v in seen)
            elif _is_boolean(col):
                self.kinds_[name] = "boolean"
            else:
                self.kinds_[name] = "numeric"
                _as_float(col, name)  # fails early, naming the column, if not numeric
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of features, got {type(X).__name__}")
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature frame lacks column(s) the model was fitted on: {missing}")
        out = np.empty((len(X), len(self.feature_names_)), dtype=np.float64)
        for j, name in enumerate(self.feature_names_):
            col = X[name]
            if self.kinds_[name] == "categorical":
                known = pd.Index(self.categories_[name], dtype="string")
                codes = known.get_indexer(col.astype("string")).astype(np.float64)
                codes[codes < 0] = np.nan  # missing, or a category never seen at fit
                out[:, j] = codes
            else:
                out[:, j] = _as_float(col, name)
        return out

    @property
    def categorical_index_(self) -> list[int]:
        return [j for j, n in enumerate(self.feature_names_) if self.kinds_[n] == "categorical"]


def _is_text(col: pd.Series) -> bool:
    # Passing the Series (not its dtype) makes pandas look inside object columns: an object
    # column of numbers with one stray string is a bad numeric column, not a category.
    return pd.api.types.is_string_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype)


def _is_boolean(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.BooleanDtype) or col.dtype == bool


def _as_float(col: pd.Series, name: str) -> np.ndarray:
    if _is_boolean(col):
        return col.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError):
        bad = pd.to_numeric(col, errors="coerce").isna() & col.notna()
        row = col.index[bad.to_numpy()][0] if bad.any() else "?"
        value = col[row] if bad.any() else "?"
        raise ValueError(f"column {name!r}: expected numbers, row {row!r} has {value!r}") from None


def check_targets(
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    sample_weight: np.ndarray | pd.Series | None,
    groups: np.ndarray | pd.Series | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y``, ``sample_weight`` and ``groups`` as a fit expects them, checked against ``X``.

    Returns ``y`` with unknown outcomes set to 0 (they weigh 0), the weights (unknown
    outcomes 0 when none are given) and the groups (one per row when none are given).

    Raises:
        ValueError: a shape, an outcome, a weight or a group id that a fit cannot use.
    """
    n = len(X)
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.shape != (n,):
        raise ValueError(f"y has shape {y_arr.shape}, expected ({n},)")
    bad = np.flatnonzero(~np.isnan(y_arr) & (y_arr != 0) & (y_arr != 1))
    if bad.size:
        raise ValueError(f"y must be 1.0, 0.0 or NaN; row {bad[0]} has {y_arr[bad[0]]}")
    if sample_weight is None:
        w_arr = np.where(np.isnan(y_arr), 0.0, 1.0)
    else:
        w_arr = check_weights(sample_weight, n)
        bad = np.flatnonzero(np.isnan(y_arr) & (w_arr > 0))
        if bad.size:
            raise ValueError(
                f"row {bad[0]} has an unknown outcome (y NaN) but weight {w_arr[bad[0]]}; "
                "unknown outcomes must weigh 0"
            )
    if groups is None:
        g_arr = np.arange(n)
    else:
        g_arr = np.asarray(groups)
        if g_arr.shape != (n,):
            raise ValueError(f"groups has shape {g_arr.shape}, expected ({n},)")
        if pd.isna(g_arr).any():
            raise ValueError(
                f"groups has a missing id at row {int(np.flatnonzero(pd.isna(g_arr))[0])}"
            )
    y_arr = np.where(w_arr > 0, y_arr, 0.0)
    return y_arr, w_arr, g_arr


def check_weights(sample_weight: np.ndarray | pd.Series, n: int) -> np.ndarray:
    """``sample_weight`` as ``n`` finite, non-negative floats.

    Raises:
        ValueError: the wrong shape, or a weight that is negative, infinite or NaN.
    """
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(f"sample_weight has shape {weights.shape}, expected ({n},)")
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if bad.size:
        raise ValueError(
            f"sample_weight must be finite and >= 0; row {bad[0]} has {weights[bad[0]]}"
        )
    return weights
