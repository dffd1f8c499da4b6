"""top_factors against a brute-force ordering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models.explain import top_factors


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 8)), elements=st.floats(-5, 5)),
    st.integers(1, 10),
)
def test_matches_brute_force(values, k):
    frame = pd.DataFrame(values, columns=[f"f{j}" for j in range(values.shape[1])])
    result = top_factors(frame, k)
    k_eff = min(k, values.shape[1])
    assert result.names.shape == result.values.shape == (len(values), k_eff)
    for i, row in enumerate(values):
        expected = np.sort(np.abs(row))[::-1][:k_eff]
        np.testing.assert_array_equal(np.abs(result.values[i]), expected)
        # Names and signed values belong together.
        for name, value in zip(result.names[i], result.values[i], strict=True):
            assert frame.loc[i, name] == value


def test_sign_is_kept_and_missing_counts_as_zero():
    frame = pd.DataFrame({"lsi": [-0.8, np.nan], "prior": [0.3, 0.2], "age": [0.1, -0.05]})
    result = top_factors(frame, k=2)
    assert result.names.tolist() == [["lsi", "prior"], ["prior", "age"]]
    np.testing.assert_array_equal(result.values, [[-0.8, 0.3], [0.2, -0.05]])


def test_ties_among_the_chosen_follow_column_order():
    frame = pd.DataFrame({"a": [0.5], "b": [-0.5], "c": [0.1]})
    assert top_factors(frame, k=2).names.tolist() == [["a", "b"]]


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be"):
        top_factors(pd.DataFrame({"a": [1.0]}), k=0)
