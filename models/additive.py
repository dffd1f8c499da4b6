"""Tree ensembles in which every tree splits on one feature, as exact step-function tables.

Such an ensemble (boosted stumps are the common case) is an additive model on the raw
score: ``f(x) = b + sum_j g_j(x_j)``, each ``g_j`` a step function whose steps sit at the
ensemble's split points on feature ``j``. Tabulating every ``g_j`` once gives:

* the raw score of any row from one binary search per feature, instead of a walk through
  every tree (thousands of stumps become a few dozen table look-ups);
* exact tree SHAP values for free: for an additive model the SHAP value of feature ``j``
  is ``g_j(x_j) - E[g_j]`` (Lundberg et al. 2020, Nat Mach Intell 2:56), which is what
  the table holds;
* one search serving several ensembles at once (a model and its bootstrap members),
  because the tables share their steps.

The tables are filled by the booster itself: LightGBM's own ``pred_contrib`` evaluated at
one point inside every step (and at a missing value). Nothing of LightGBM's split
semantics (missing-value directions, the zero band of ``missing_type=Zero``, categorical
bitsets) is re-implemented here, so the tables agree with ``Booster.predict`` to rounding;
``tests/models/test_additive.py`` checks it at and between every split point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# LightGBM's predictor reads any |x| <= 1e-35f (kZeroThreshold in meta.h, a float) as 0:
# it leaves such cells out of the sparse row it builds from a dense one. Steps just below,
# at and above the band's edges give the band bins of its own, so its probes are never
# taken for the values beside it.
_ZERO = float(np.float32(1e-35))
_ZERO_BAND = (float(np.nextafter(-_ZERO, -np.inf)), -_ZERO, _ZERO)


@dataclass(frozen=True)
class AdditiveTables:
    """Step tables of one or more additive ensembles over the same features.

    Attributes:
        steps: per feature, the sorted split points (numeric), or ``None`` (categorical).
        n_categories: per feature, the number of category codes (categorical), else 0.
        values: per feature, a ``(bins, ensembles)`` table of ``g_j - E[g_j]``. Numeric
            bins are ``x <= steps[0]``, ..., ``x > steps[-1]``, then missing; categorical
            bins are codes ``0 .. n-1``, any other code, then missing.
        bias: per ensemble, the raw score when every ``g_j`` sits at its mean.
    """

    steps: tuple[np.ndarray | None, ...]
    n_categories: tuple[int, ...]
    values: tuple[np.ndarray, ...]
    bias: np.ndarray

    @property
    def n_ensembles(self) -> int:
        return len(self.bias)

    def bins(self, m: np.ndarray) -> list[np.ndarray]:
        """Each feature's bin for every row of ``m`` (the booster's input matrix)."""
        out = []
        for j, steps in enumerate(self.steps):
            x = m[:, j]
            missing = np.isnan(x)
            if steps is not None:
                found = np.searchsorted(steps, x, side="left")
                found[missing] = len(steps) + 1
            else:
                n = self.n_categories[j]
                # As LightGBM reads a category: truncated to an integer; negative or unseen
                # codes all take the "other" bin.
                with np.errstate(invalid="ignore"):
                    code = np.trunc(np.where(missing, -1.0, x))
                known = (code >= 0) & (code < n)
                found = np.where(known, code, n).astype(np.intp)
                found[missing] = n + 1
            out.append(found)
        return out

    def raw_scores(
        self, bins: Sequence[np.ndarray], ensembles: Sequence[int] | None = None
    ) -> np.ndarray:
        """``(rows, ensembles)`` raw scores (log-odds for a binary objective), of every
        ensemble or of those listed."""
        chosen = np.arange(self.n_ensembles) if ensembles is None else np.asarray(ensembles)
        rows = len(bins[0]) if bins else 0
        total = np.broadcast_to(self.bias[chosen], (rows, len(chosen))).copy()
        for found, table in zip(bins, self.values, strict=True):
            total += table[:, chosen][found]
        return total

    def mapped(self, scale: np.ndarray, shift: np.ndarray) -> AdditiveTables:
        """The tables of ``scale[e] * f_e(x) + shift[e]`` for every ensemble ``e``."""
        scale = np.asarray(scale, dtype=np.float64)
        return AdditiveTables(
            steps=self.steps,
            n_categories=self.n_categories,
            values=tuple(table * scale for table in self.values),
            bias=self.bias * scale + np.asarray(shift, dtype=np.float64),
        )

    def contributions(self, bins: Sequence[np.ndarray], ensemble: int = 0) -> np.ndarray:
        """``(rows, features)`` exact SHAP values of one ensemble."""
        rows = len(bins[0]) if bins else 0
        out = np.empty((rows, len(bins)))
        for j, (found, table) in enumerate(zip(bins, self.values, strict=True)):
            out[:, j] = table[found, ensemble]
        return out


def univariate_trees(dump: Mapping[str, Any]) -> bool:
    """Whether every tree of a ``Booster.dump_model()`` splits on at most one feature."""
    for info in dump["tree_info"]:
        if len({feature for feature, _ in _splits(info["tree_structure"])}) > 1:
            return False
    return True


def tabulate(
    boosters: Sequence[Any], n_features: int, categories: Mapping[int, int]
) -> AdditiveTables | None:
    """Step tables of ``boosters`` (LightGBM ``Booster``), or ``None`` when one of them has
    a tree that splits on more than one feature (the ensemble is not additive).

    Args:
        boosters: ensembles over the same input columns; the first is usually the model,
            the rest its bootstrap members.
        n_features: columns of the input matrix.
        categories: categorical column -> number of category codes (``0 .. n-1``).
    """
    dumps = [booster.dump_model() for booster in boosters]
    if not all(univariate_trees(dump) for dump in dumps):
        return None
    points: list[set[float]] = [set(_ZERO_BAND) for _ in range(n_features)]
    for dump in dumps:
        for info in dump["tree_info"]:
            for feature, threshold in _splits(info["tree_structure"]):
                if feature not in categories:
                    points[feature].add(float(threshold))
    steps: list[np.ndarray | None] = []
    probes: list[np.ndarray] = []
    for j in range(n_features):
        if j in categories:
            steps.append(None)
            n = categories[j]
            probes.append(np.array([*range(n), n, np.nan], dtype=np.float64))
            continue
        cut = np.array(sorted(points[j]), dtype=np.float64)
        steps.append(cut)
        # Bin i holds (cut[i-1], cut[i]]: cut[i] itself is inside it. The last bin is
        # above every cut; the one after it is "missing".
        above = np.nextafter(cut[-1], np.inf)
        probes.append(np.concatenate([cut, [above, np.nan]]))
    n_bins = max(len(p) for p in probes)
    grid = np.empty((n_bins, n_features))
    for j, probe in enumerate(probes):
        grid[:, j] = probe[np.minimum(np.arange(n_bins), len(probe) - 1)]
    shap = [np.asarray(b.predict(grid, pred_contrib=True)) for b in boosters]
    values = tuple(
        np.column_stack([s[: len(probes[j]), j] for s in shap]) for j in range(n_features)
    )
    bias = np.array([s[0, -1] for s in shap])
    return AdditiveTables(
        steps=tuple(steps),
        n_categories=tuple(categories.get(j, 0) for j in range(n_features)),
        values=values,
        bias=bias,
    )


def _splits(node: Mapping[str, Any]) -> list[tuple[int, Any]]:
    """(feature, threshold) of every split node under ``node``."""
    found, stack = [], [node]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            found.append((node["split_feature"], node["threshold"]))
            stack += [node["left_child"], node["right_child"]]
    return found
