"""Pandera models of the data at the pipeline's boundaries, named after the tables.

The five cohort tables carry every single-table rule of the data contract
(``docs/data-contract.md``): column types, required columns, enums, ranges, uniqueness and
the order of dates within a row. Each check is named with a short, stable rule id
(``athlete_id.pattern``, ``left.positive``, ``phase_dates.order``); set-aside reports and
the contract document use the same ids.

Two rules depend on the date of the run (birth year at most ten years before the current
year, no injury in the future). The models do not read the clock: ``table_schema(table,
today)`` binds them to a date chosen once at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.compute as arrow_compute
from pandera.typing import Series

from features.catalog import FEATURES, FEATURES_BY_NAME

# --- vocabularies and bounds of the contract -------------------------------------------------

ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
SEXES = ("F", "M")
DISCIPLINES = (
    "sprint",
    "middle_distance",
    "long_distance",
    "trail_ultra",
    "multisport",
    "team_sport",
    "other",
)
LEVELS = ("recreational", "competitive", "elite")
SIDES = ("L", "R")
MUSCLES = (
    "biceps_femoris_long_head",
    "biceps_femoris_short_head",
    "semitendinosus",
    "semimembranosus",
    "unknown",
)
BAMIC_SITES = ("a", "b", "c")
MECHANISMS = ("high_speed_running", "stretching", "other")
# Force (N) for the Nordic and isometric tests, torque (N·m) for the isokinetic ones.
TEST_UNITS = {
    "nordic_eccentric": "N",
    "isometric_knee_flexion": "N",
    "isokinetic_knee_flexion_concentric": "Nm",
    "isokinetic_knee_flexion_eccentric": "Nm",
    "isokinetic_knee_extension_concentric": "Nm",
}
TESTS = tuple(TEST_UNITS)
UNITS = ("N", "Nm")
MIN_BIRTH_YEAR = 1920
MIN_AGE_YEARS = 10

# --- the five cohort tables --------------------------------------------------------------------


class Athletes(pa.DataFrameModel):
    """athletes: one row per athlete."""

    athlete_id: Series[pd.StringDtype] = pa.Field(unique=True)
    sex: Series[pd.StringDtype] = pa.Field(nullable=True, required=False)
    birth_year: Series[pd.Int64Dtype] = pa.Field(nullable=True, required=False)
    discipline: Series[pd.StringDtype] = pa.Field(nullable=True, required=False)
    level: Series[pd.StringDtype] = pa.Field(nullable=True, required=False)
    body_mass_kg: Series[float] = pa.Field(nullable=True, required=False)

    @pa.check("athlete_id", name="athlete_id.pattern")
    def _athlete_id_pattern(cls, ids: Series[pd.StringDtype]) -> Series[bool]:
        """Pseudonymous ids only: 1–64 letters, digits, ``_`` or ``-`` (never a name)."""
        return ids.str.fullmatch(ID_PATTERN)

    @pa.check("sex", name="sex.enum")
    def _sex_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(SEXES)

    @pa.check("discipline", name="discipline.enum")
    def _discipline_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(DISCIPLINES)

    @pa.check("level", name="level.enum")
    def _level_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(LEVELS)

    @pa.check("body_mass_kg", name="body_mass_kg.range")
    def _body_mass_range(cls, values: Series[float]) -> Series[bool]:
        return values.between(30.0, 200.0)

    class Config:
        strict = False


class Injuries(pa.DataFrameModel):
    """injuries: every hamstring strain on record, earlier ones included."""

    injury_id: Series[pd.StringDtype] = pa.Field(unique=True)
    athlete_id: Series[pd.StringDtype]
    injury_date: Series[pa.DateTime]
    side: Series[pd.StringDtype]
    muscle: Series[pd.StringDtype] = pa.Field(nullable=True, required=False)
    bamic_grade: Series[pd.Int64Dtype] = pa.Field(nullable=True, required=False)
    bamic_site: Series[pd.StringDtype] = pa.Field(nullable=True, required=False)
    mechanism: Series[pd.StringDtype] = pa.Field(nullable=True, required=False)

    @pa.check("side", name="side.enum")
    def _side_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(SIDES)

    @pa.check("muscle", name="muscle.enum")
    def _muscle_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(MUSCLES)

    @pa.check("bamic_grade", name="bamic_grade.range")
    def _bamic_grade_range(cls, values: Series[pd.Int64Dtype]) -> Series[bool]:
        return values.between(0, 4)

    @pa.check("bamic_site", name="bamic_site.enum")
    def _bamic_site_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(BAMIC_SITES)

    @pa.check("mechanism", name="mechanism.enum")
    def _mechanism_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(MECHANISMS)

    @pa.dataframe_check(name="bamic_site.grade")
    def _bamic_site_needs_grade(cls, injuries: pd.DataFrame) -> Series[bool]:
        """BAMIC grade 0 (and no grade) has no site: the classification defines sites for 1–4."""
        graded = injuries["bamic_grade"].isin([1, 2, 3, 4]).fillna(False)
        return injuries["bamic_site"].isna() | graded

    class Config:
        strict = False


class StrengthTests(pa.DataFrameModel):
    """strength_tests: every strength test, before and after return."""

    test_id: Series[pd.StringDtype] = pa.Field(unique=True)
    athlete_id: Series[pd.StringDtype]
    test_date: Series[pa.DateTime]
    test: Series[pd.StringDtype]
    left: Series[float]
    right: Series[float]
    unit: Series[pd.StringDtype]

    @pa.check("test", name="test.enum")
    def _test_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(TESTS)

    @pa.check("left", name="left.positive")
    def _left_positive(cls, values: Series[float]) -> Series[bool]:
        return values > 0

    @pa.check("right", name="right.positive")
    def _right_positive(cls, values: Series[float]) -> Series[bool]:
        return values > 0

    @pa.check("unit", name="unit.enum")
    def _unit_enum(cls, values: Series[pd.StringDtype]) -> Series[bool]:
        return values.isin(UNITS)

    @pa.dataframe_check(name="unit.matches_test")
    def _unit_matches_test(cls, tests: pd.DataFrame) -> Series[bool]:
        """A unit that is a valid enum but wrong for the test (unknown tests fail ``test.enum``)."""
        # Judged once per distinct (test, unit) pair: mapping millions of Arrow text cells
        # one by one would turn them all into Python objects first.
        test_codes, test_names = pd.factorize(tests["test"])
        unit_codes, unit_names = pd.factorize(tests["unit"])
        fine = np.ones((len(test_names) + 1, len(unit_names) + 1), dtype=bool)
        for i, test in enumerate(test_names):
            for j, unit in enumerate(unit_names):
                fine[i, j] = test not in TEST_UNITS or unit not in UNITS or TEST_UNITS[test] == unit
        # Code -1 (missing) indexes the last row or column, where everything is fine.
        return pd.Series(fine[test_codes, unit_codes], index=tests.index)

    class Config:
        strict = False


class ReturnToRun(pa.DataFrameModel):
    """return_to_run: one row per treated (index) episode."""

    injury_id: Series[pd.StringDtype] = pa.Field(unique=True)
    clinic_id: Series[pd.StringDtype]
    phase1_end_date: Series[pa.DateTime] = pa.Field(nullable=True, required=False)
    phase2_end_date: Series[pa.DateTime] = pa.Field(nullable=True, required=False)
    phase3_end_date: Series[pa.DateTime] = pa.Field(nullable=True, required=False)
    return_to_run_date: Series[pa.DateTime] = pa.Field(nullable=True, required=False)
    return_to_sport_date: Series[pa.DateTime] = pa.Field(nullable=True, required=False)
    peak_sprint_pct: Series[float] = pa.Field(nullable=True, required=False)
    pain_at_return: Series[pd.Int64Dtype] = pa.Field(nullable=True, required=False)
    slr_deficit_deg: Series[float] = pa.Field(nullable=True, required=False)
    ake_discomfort: Series[pd.BooleanDtype] = pa.Field(nullable=True, required=False)

    @pa.check("peak_sprint_pct", name="peak_sprint_pct.range")
    def _peak_sprint_range(cls, values: Series[float]) -> Series[bool]:
        # Above 100 % is allowed up to 110 %: rehab sprints are timed with another method
        # than the pre-injury maximum, so small overshoots are measurement, not error.
        return values.between(0.0, 110.0)

    @pa.check("pain_at_return", name="pain_at_return.range")
    def _pain_range(cls, values: Series[pd.Int64Dtype]) -> Series[bool]:
        return values.between(0, 10)

    @pa.check("slr_deficit_deg", name="slr_deficit_deg.range")
    def _slr_range(cls, values: Series[float]) -> Series[bool]:
        return values.between(0.0, 90.0)

    @pa.dataframe_check(name="phase_dates.order")
    def _phase_dates_in_order(cls, episodes: pd.DataFrame) -> Series[bool]:
        """Phase end dates present are in order 1 ≤ 2 ≤ 3 (a missing phase is skipped)."""
        phases = ["phase1_end_date", "phase2_end_date", "phase3_end_date"]
        in_order = pd.Series(True, index=episodes.index)
        for i, earlier in enumerate(phases):
            for later in phases[i + 1 :]:
                in_order &= ~(episodes[earlier] > episodes[later]).fillna(False)
        return in_order

    @pa.dataframe_check(name="return_dates.order")
    def _sport_after_run(cls, episodes: pd.DataFrame) -> Series[bool]:
        """Return to sport on or after return to run, where both are present."""
        early = episodes["return_to_sport_date"] < episodes["return_to_run_date"]
        return ~early.fillna(False)

    class Config:
        strict = False


class FollowUp(pa.DataFrameModel):
    """follow_up: how long each athlete was observed."""

    athlete_id: Series[pd.StringDtype] = pa.Field(unique=True)
    observed_until: Series[pa.DateTime]

    class Config:
        strict = False


COHORT_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "athletes": Athletes,
    "injuries": Injuries,
    "strength_tests": StrengthTests,
    "return_to_run": ReturnToRun,
    "follow_up": FollowUp,
}

PRIMARY_KEYS = {
    "athletes": "athlete_id",
    "injuries": "injury_id",
    "strength_tests": "test_id",
    "return_to_run": "injury_id",
    "follow_up": "athlete_id",
}

# The contract reads a missing muscle as "unknown" (a documented meaning, not a repair).
MISSING_MEANS: dict[str, dict[str, str]] = {"injuries": {"muscle": "unknown"}}

# Rows whose columns a row-level (dataframe) rule reports, so a set-aside line names them.
ROW_RULE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bamic_site.grade": ("bamic_grade", "bamic_site"),
    "unit.matches_test": ("test", "unit"),
    "phase_dates.order": ("phase1_end_date", "phase2_end_date", "phase3_end_date"),
    "return_dates.order": ("return_to_run_date", "return_to_sport_date"),
}


# --- rules bound to the date of the run --------------------------------------------------------


def _dated_checks(today: date) -> dict[str, dict[str, pa.Check]]:
    """The date-relative rules, per table and column, with ``today`` fixed by the caller.

    No ``error=`` text: Pandera reports a check by its error text when it has one, and set-
    aside reports need the rule id.
    """
    latest_birth_year = today.year - MIN_AGE_YEARS
    today_ts = pd.Timestamp(today)
    return {
        "athletes": {
            "birth_year": pa.Check(
                lambda years: years.between(MIN_BIRTH_YEAR, latest_birth_year),
                name="birth_year.range",
            )
        },
        "injuries": {
            "injury_date": pa.Check(
                lambda dates: dates <= today_ts,
                name="injury_date.not_future",
            )
        },
    }


@cache
def table_schema(table: str, today: date) -> pa.DataFrameSchema:
    """The Pandera schema of one cohort table with its date-relative rules bound to ``today``.

    Args:
        table: a contract table name (``athletes`` ... ``follow_up``).
        today: the run's date; birth years and injury dates are judged against it.
    """
    schema = COHORT_MODELS[table].to_schema()
    for column, check in _dated_checks(today).get(table, {}).items():
        schema = schema.update_column(column, checks=[*schema.columns[column].checks, check])
    for name, column in schema.columns.items():
        if column.unique:
            # The same rule, judged without Pandera's own uniqueness check, which turns an
            # Arrow text column into Python objects: seconds and about 0.7 GiB for the 6.6
            # million test ids of a million-episode cohort.
            unique = pa.Check(_not_duplicated, name=f"{name}.unique")
            schema = schema.update_column(name, unique=False, checks=[*column.checks, unique])
    return schema


def _not_duplicated(values: pd.Series) -> pd.Series:
    """False for every copy of a value that occurs more than once; missing values pass
    (they break ``.required`` instead).

    By sorting: equal values end up side by side. A hash table of millions of ids (what
    ``duplicated`` or ``factorize`` build) needs several times the memory.
    """
    keys = arrow.table({"key": values})["key"]
    order = arrow_compute.sort_indices(keys).to_numpy()
    ranked = keys.take(order)
    n = len(values)
    same = arrow_compute.fill_null(
        arrow_compute.equal(ranked.slice(1), ranked.slice(0, max(n - 1, 0))), False
    ).to_numpy(zero_copy_only=False)
    repeated_ranked = np.zeros(n, dtype=bool)
    repeated_ranked[1:] |= same
    repeated_ranked[:-1] |= same
    repeated = np.empty(n, dtype=bool)
    repeated[order] = repeated_ranked
    return pd.Series(~repeated, index=values.index)


# --- what the reader and the contract document need to know about each column -----------------

_KINDS = {
    "string": "text",
    "datetime64[ns]": "date",
    "Int64": "integer",
    "float64": "number",
    "boolean": "boolean",
}
# The rule a cell breaks when it cannot be read as its column's type.
READ_RULES = {"date": "date_format", "integer": "integer", "number": "number", "boolean": "boolean"}


@dataclass(frozen=True)
class ColumnSpec:
    """One contract column: its name, how it is read, and whether the file must have it."""

    name: str
    kind: str
    required: bool
    unique: bool


@cache
def column_specs(table: str) -> tuple[ColumnSpec, ...]:
    """The contract columns of ``table`` in contract order."""
    schema = COHORT_MODELS[table].to_schema()
    return tuple(
        ColumnSpec(
            name=name,
            kind=_KINDS[str(column.dtype).split("[pyarrow]")[0]],
            required=not column.nullable,
            unique=column.unique,
        )
        for name, column in schema.columns.items()
    )


def rule_ids(table: str) -> tuple[str, ...]:
    """Every single-table rule id of ``table``: reading, required, unique, value and row rules."""
    # The date only changes the bounds of the dated rules, not which rules exist.
    schema = table_schema(table, date(2000, 1, 1))
    ids: list[str] = []
    for spec in column_specs(table):
        if spec.kind in READ_RULES:
            ids.append(f"{spec.name}.{READ_RULES[spec.kind]}")
        if spec.required:
            ids.append(f"{spec.name}.required")
        if spec.unique:
            ids.append(f"{spec.name}.unique")
        ids.extend(c.name for c in schema.columns[spec.name].checks if c.name not in ids)
    ids.extend(check.name for check in schema.checks)
    return tuple(ids)


# --- FeatureFrame: the model's input, one row per index episode -------------------------------
# Built from the feature registry so that the schema, the feature builder and the model can
# never disagree on a column: exactly the registry's columns (or a model's, in its order),
# indexed by injury_id. Everything may be missing (the model handles missing values);
# present values respect each feature's floor (counts, days and ratios are never negative).


def feature_frame_schema(columns: Sequence[str] | None = None) -> pa.DataFrameSchema:
    """The schema of a feature frame with ``columns`` (default every registered feature)."""
    specs = FEATURES if columns is None else tuple(FEATURES_BY_NAME[name] for name in columns)
    checked = {
        spec.name: pa.Column(
            spec.dtype,
            nullable=True,
            checks=[]
            if spec.minimum is None
            else [pa.Check.ge(spec.minimum, name=f"{spec.name}.minimum")],
            description=spec.description,
        )
        for spec in specs
    }
    return pa.DataFrameSchema(
        checked,
        index=pa.Index("string", name="injury_id", unique=True),
        strict=True,
        ordered=True,
        name="FeatureFrame",
    )


FeatureFrame: pa.DataFrameSchema = feature_frame_schema()


# The predictions frame's schema lives with its file: ``pipeline.predictions``.
