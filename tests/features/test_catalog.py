"""The feature catalog: names, kinds, directions, wording, and the FeatureFrame schema."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from features.catalog import FEATURE_NAMES, FEATURES, FEATURES_BY_NAME
from pipeline.schemas import FeatureFrame

EXAMPLE = {"numeric": 2.0, "boolean": True, "categorical": "sprint"}


def test_names_are_unique_and_kinds_known():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert {spec.kind for spec in FEATURES} == {"numeric", "boolean", "categorical"}
    assert all(spec.description for spec in FEATURES)


def test_directions_only_where_clinically_known():
    constrained = {spec.name: spec.direction for spec in FEATURES if spec.direction}
    assert constrained == {
        "prior_injuries": 1,
        "prior_injuries_same_side": 1,
        "prior_injuries_recent": 1,
        "ake_discomfort": 1,
        "lsi_nordic": -1,
        "lsi_isometric_flexion": -1,
        "lsi_isokinetic_flexion_concentric": -1,
        "lsi_isokinetic_flexion_eccentric": -1,
        "lsi_knee_flexors_last_session": -1,
        # Timmins et al. 2016: a weaker eccentric knee flexor is the risk, never a stronger one.
        "nordic_involved_force_n": -1,
    }
    # A category has no order, so it can carry no direction.
    assert all(spec.direction == 0 for spec in FEATURES if spec.kind == "categorical")


@pytest.mark.parametrize(
    ("name", "value", "row", "expected"),
    [
        ("lsi_nordic", 0.82, None, "involved side 82% of uninvolved at last Nordic test"),
        ("prior_injuries", 2.0, None, "2 previous hamstring injuries"),
        ("prior_injuries", 1.0, None, "1 previous hamstring injury"),
        ("prior_injuries", 0.0, None, "no previous hamstring injury"),
        (
            "days_injury_to_return_to_sport",
            21.0,
            {"bamic_grade": 2.0, "return_to_sport_time_vs_grade": 21 / 22},
            "returned to sport 21 days after injury (grade 2 usually needs ~22)",
        ),
        ("days_injury_to_return_to_sport", 21.0, None, "returned to sport 21 days after injury"),
        ("ake_discomfort", True, None, "discomfort on the active knee extension test"),
        ("hamstring_quadriceps_ratio", 0.55, None, "involved hamstring:quadriceps ratio 0.55"),
        ("lsi_nordic", float("nan"), None, "no Nordic test in rehab"),
        ("ake_discomfort", pd.NA, None, "active knee extension test not recorded"),
    ],
)
def test_phrases_read_like_a_clinician(name, value, row, expected):
    assert FEATURES_BY_NAME[name].phrase(value, row) == expected


@pytest.mark.parametrize("spec", FEATURES, ids=FEATURE_NAMES)
def test_every_feature_has_words_for_a_value_and_for_missing(spec):
    said, missing = spec.phrase(EXAMPLE[spec.kind]), spec.phrase(None)
    assert said and missing and said != missing


class _OnlyContext(dict):
    """A feature row that fails on any column the phrase did not declare it reads."""

    def __getitem__(self, key):
        if key not in self:
            raise AssertionError(f"phrase read {key!r}, which is not in its context")
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else self.__getitem__(key)


CONTEXT_VALUES = {"bamic_grade": 2, "return_to_sport_time_vs_grade": 0.8}


@pytest.mark.parametrize("spec", FEATURES, ids=FEATURE_NAMES)
def test_a_phrase_reads_only_its_declared_context(spec):
    # Batch scoring says each distinct (value, context) once; an undeclared read would
    # give one row's words to another.
    row = _OnlyContext({name: CONTEXT_VALUES[name] for name in spec.context})
    assert spec.phrase(EXAMPLE[spec.kind], row)
    if spec.context:  # the context does change the words
        assert spec.phrase(EXAMPLE[spec.kind], row) != spec.phrase(EXAMPLE[spec.kind], {})


def test_feature_frame_schema_accepts_the_built_frame(scenario):
    assert FeatureFrame.validate(scenario) is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(lsi_nordic=-0.5), "lsi_nordic.*greater_than_or_equal_to"),
        (lambda f: f[list(reversed(f.columns))], "out-of-order"),
        (lambda f: f.drop(columns="sex"), "sex"),
        (lambda f: f.assign(extra=1.0), "extra"),
        (lambda f: f.astype({"ake_discomfort": "float64"}), "ake_discomfort"),
    ],
    ids=["below floor", "column order", "missing column", "extra column", "wrong dtype"],
)
def test_feature_frame_schema_rejects(scenario, change, message):
    with pytest.raises((pa.errors.SchemaError, pa.errors.SchemaErrors), match=message):
        FeatureFrame.validate(change(scenario))
