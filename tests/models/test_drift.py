"""Reference distributions and the population stability index."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.drift import PSI_MODERATE, build_reference, population_stability


def _frame(n: int, seed: int, shift: float = 0.0, missing: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lsi = rng.normal(0.88 + shift, 0.09, n)
    lsi[rng.random(n) < missing] = np.nan
    return pd.DataFrame(
        {
            "lsi": lsi,
            "age": rng.normal(25, 4, n),
            "male": pd.array(rng.random(n) < 0.7, dtype="boolean"),
            "discipline": pd.array(rng.choice(["sprint", "football"], n), dtype="string"),
        }
    )


def test_same_population_is_stable_and_shifted_feature_is_named_first():
    reference = build_reference(_frame(5000, 1), categorical=["discipline"])
    # Expected PSI between two samples of the same population is about (bins - 1) * (1/n1 +
    # 1/n2), well under 0.01 here; 0.1 is the conventional "stable" limit.
    same = population_stability(_frame(5000, 2), reference)
    assert (same["psi"] < PSI_MODERATE).all()
    # A shift of one SD in limb symmetry is a major shift.
    shifted = population_stability(_frame(5000, 3, shift=0.09), reference)
    assert shifted.iloc[0]["feature"] == "lsi" and shifted.iloc[0]["shift"] == "major"
    assert (shifted.iloc[1:]["psi"] < PSI_MODERATE).all()


def test_missing_values_arriving_is_drift():
    reference = build_reference(_frame(5000, 1, missing=0.1))
    table = population_stability(_frame(5000, 2, missing=0.6), reference).set_index("feature")
    assert table.loc["lsi", "psi"] > PSI_MODERATE


def test_unseen_category_and_absent_feature():
    reference = build_reference(_frame(2000, 1))
    new = _frame(2000, 2).drop(columns="age")
    new["discipline"] = pd.array(["rowing"] * 2000, dtype="string")
    table = population_stability(new, reference).set_index("feature")
    assert table.loc["discipline", "shift"] == "major"
    assert table.loc["age", "shift"] == "absent" and np.isnan(table.loc["age", "psi"])


def test_reference_is_small_and_serialisable():
    import json

    frame = _frame(3000, 1)
    reference = build_reference(frame)
    text = json.dumps(reference)
    assert len(text) < 5000
    assert reference["discipline"]["kind"] == "categorical"
    assert reference["male"]["kind"] == "numeric" and reference["male"]["edges"] == [0.5]
