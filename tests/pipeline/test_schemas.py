"""The Pandera models: rule ids, the run date, and the contract document kept in step."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest

from pipeline.cohort import TABLES, Cohort
from pipeline.schemas import COHORT_MODELS, PRIMARY_KEYS, column_specs, rule_ids, table_schema
from pipeline.validate import CROSS_TABLE_RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def doc_tables() -> dict[str, dict[str, set[str]]]:
    """Per ``## table`` section of the contract page: the columns and the rule ids it lists."""
    found: dict[str, dict[str, set[str]]] = {}
    section, header = None, None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            found.setdefault(section, {"column": set(), "rule id": set()})
            header = None
        elif line.startswith("|") and section is not None:
            first = line.strip("|").split("|")[0].strip()
            if first in ("column", "rule id"):
                header = first
            elif header and not set(first) <= {"-"}:
                found[section][header].add(re.fullmatch(r"`([^`]+)`", first).group(1))
        else:
            header = None
    return {name: cells for name, cells in found.items() if name in TABLES}


def test_models_are_the_cohort_tables():
    assert tuple(COHORT_MODELS) == TABLES == tuple(f for f in Cohort.__dataclass_fields__)
    for table in TABLES:
        assert PRIMARY_KEYS[table] == column_specs(table)[0].name


@pytest.mark.parametrize("table", TABLES)
def test_rule_ids_are_unique_short_and_stable(table):
    ids = rule_ids(table)
    assert len(ids) == len(set(ids))
    for rule in ids:
        assert re.fullmatch(r"[a-z0-9_]+\.[a-z_]+", rule), rule


@pytest.mark.parametrize("table", TABLES)
def test_doc_lists_every_column_of_the_model_and_no_other(table):
    documented = doc_tables()[table]["column"]
    assert documented == {spec.name for spec in column_specs(table)}


@pytest.mark.parametrize("table", TABLES)
def test_doc_lists_every_rule_id_and_no_other(table):
    documented = doc_tables()[table]["rule id"]
    assert documented == set(rule_ids(table)) | set(CROSS_TABLE_RULES.get(table, ()))


def test_doc_says_which_columns_are_required():
    text = DOC.read_text(encoding="utf-8")
    # Column rows repeat names across tables, so check the required flag per section.
    for table in TABLES:
        section = text.split(f"## {table}\n", 1)[1].split("\n## ", 1)[0]
        for spec in column_specs(table):
            flag = re.search(rf"^\| `{spec.name}` \|[^|]*\| (yes|no) \|", section, flags=re.M)
            assert flag.group(1) == ("yes" if spec.required else "no"), (table, spec.name)


def test_date_rules_are_bound_to_the_given_day_not_the_clock():
    early, late = (
        table_schema("injuries", date(2020, 1, 1)),
        table_schema("injuries", date(2030, 1, 1)),
    )
    check_early = early.columns["injury_date"].checks[-1]
    check_late = late.columns["injury_date"].checks[-1]
    day = pd.Series(pd.to_datetime(["2025-06-01"]))
    assert not bool(check_early(day).check_passed) and bool(check_late(day).check_passed)


def test_lazy_validation_names_each_failing_rule():
    frame = pd.DataFrame(
        {
            "test_id": pd.array(["T1", "T2"], dtype="string"),
            "athlete_id": pd.array(["A1", "A1"], dtype="string"),
            "test_date": pd.to_datetime(["2022-01-01", "2022-01-02"]).astype("datetime64[ns]"),
            "test": pd.array(["nordic_eccentric", "nordic"], dtype="string"),
            "left": [0.0, 100.0],
            "right": [100.0, 100.0],
            "unit": pd.array(["Nm", "N"], dtype="string"),
        }
    )
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        table_schema("strength_tests", date(2024, 1, 1)).validate(frame, lazy=True)
    cases = caught.value.failure_cases
    failed = set(zip(cases["check"], cases["index"], strict=True))
    assert failed >= {("left.positive", 0), ("unit.matches_test", 0), ("test.enum", 1)}


@pytest.mark.parametrize("seed", range(5))
def test_uniqueness_flags_every_copy_and_never_a_missing_id(seed):
    import numpy as np

    from pipeline.schemas import _not_duplicated

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    ids = rng.integers(0, max(n, 1), n).astype(str).astype(object)
    ids[rng.random(n) < 0.1] = None
    values = pd.Series(ids, dtype="string", index=pd.RangeIndex(n) + 7)
    expected = ~(values.duplicated(keep=False) & values.notna())
    pd.testing.assert_series_equal(_not_duplicated(values), expected, check_names=False)
