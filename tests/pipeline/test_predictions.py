"""The predictions file: one contract, one writer, one reader, for CSV and Parquet."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import io, predictions
from pipeline.io import atomic_file, remove_stale_temporaries
from pipeline.predictions import (
    AUDITED_COLUMNS,
    TEMP_SUFFIX,
    PredictionColumn,
    PredictionsFileError,
    as_csv_text,
    empty_predictions,
    predictions_schema,
    read_predictions,
    write_predictions,
)


def sample(n: int = 6, seed: int = 0) -> pd.DataFrame:
    """A valid predictions frame with awkward floats, a provisional row and a missing clinic."""
    rng = np.random.default_rng(seed)
    risk = rng.uniform(0.05, 0.9, n)
    frame = pd.DataFrame(
        {
            "injury_id": [f"I{i:03d}" for i in range(n)],
            "athlete_id": [f"A{i // 2:03d}" for i in range(n)],
            "clinic_id": pd.Series(["north", None] * (n // 2), dtype="str"),
            "prediction_time": pd.date_range("2024-01-01", periods=n, freq="17D").astype(
                "datetime64[ns]"
            ),
            "provisional": np.arange(n) % 3 == 0,
            "risk": risk,
            "risk_ci_low": risk * rng.uniform(0.5, 1.0, n),
            "risk_ci_high": np.minimum(risk * rng.uniform(1.0, 1.5, n), 1.0),
            "risk_band": ["low", "moderate", "high"] * (n // 3),
            "top_factors": ["strength 82% of the other side (raises risk); age 31 (lowers risk)"]
            * n,
            "model_name": "hamstring-reinjury",
            "model_version": "2",
            "scored_at": pd.Series(pd.Timestamp("2026-11-01T03:04:05Z"), index=range(n)).astype(
                "datetime64[ns, UTC]"
            ),
        }
    )
    return predictions_schema().validate(frame)


@pytest.mark.parametrize("name", ["p.csv", "p.parquet"])
def test_a_written_file_reads_back_identical_to_the_bit(tmp_path, name):
    frame = sample()
    path = tmp_path / name
    with write_predictions(path) as writer:
        writer.write(frame.iloc[:2])
        writer.write(empty_predictions())  # an empty chunk between two adds nothing
        writer.write(frame.iloc[2:])
    read = read_predictions(path)
    # Written without the curve columns, as files before the curve was scored: read blank.
    pd.testing.assert_frame_equal(read[list(frame.columns)], frame, check_exact=True)
    assert read[list(predictions.CURVE_RISK_COLUMNS)].isna().all().all()
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("name", ["p.csv", "p.parquet"])
def test_a_file_with_the_former_interval_names_reads_under_the_new_ones(tmp_path, name):
    """Files written when the interval was called ``risk_low``/``risk_high`` (and
    ``risk_28d_low``...) are read with ``risk_ci_low``/``risk_ci_high``, values unchanged."""
    frame = sample()
    curve = {f"risk_{h}d{end}": frame["risk"] * 0.5 for h in predictions.CURVE_HORIZONS
             for end in ("", "_low", "_high")}  # fmt: skip
    old = frame.rename(columns={"risk_ci_low": "risk_low", "risk_ci_high": "risk_high"}).assign(
        **curve
    )
    path = tmp_path / name
    if name.endswith(".csv"):
        old.to_csv(path, index=False)
    else:
        old.to_parquet(path, index=False)
    read = read_predictions(path)
    np.testing.assert_allclose(read["risk_ci_low"], frame["risk_ci_low"], rtol=1e-12)
    np.testing.assert_allclose(read["risk_ci_high"], frame["risk_ci_high"], rtol=1e-12)
    np.testing.assert_allclose(read["risk_28d_ci_high"], frame["risk"] * 0.5, rtol=1e-12)
    assert "risk_low" not in read.columns


@pytest.mark.parametrize("name", ["p.csv", "p.parquet"])
def test_a_file_without_rows_has_the_header_and_dtypes(tmp_path, name):
    path = tmp_path / name
    with write_predictions(path):
        pass
    read = read_predictions(path)
    assert read.empty
    assert read.dtypes.to_dict() == empty_predictions().dtypes.to_dict()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "p.csv"
    with write_predictions(path) as writer:
        writer.write(sample())
    before = path.read_bytes()
    with pytest.raises(RuntimeError), write_predictions(path) as writer:
        writer.write(sample(seed=1))
        raise RuntimeError("killed half-way")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def test_the_file_is_on_disk_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(io.os, "fsync", lambda fd: calls.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(
        io.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))
    )
    with atomic_file(tmp_path / "report.json") as out:
        out.write("{}")
    # The data, then the rename, then the folder entry that holds the rename.
    assert calls == ["fsync", "replace", "fsync"]


def test_what_a_killed_writer_left_is_removed_by_the_next_lock_holder(tmp_path):
    out = tmp_path / "p.csv"
    left = tmp_path / f".p.csv.abc123{TEMP_SUFFIX}"
    left.write_text("half a file")
    other = tmp_path / ".q.csv.abc123.partial"
    other.write_text("another output's")
    remove_stale_temporaries(out, TEMP_SUFFIX)
    assert not left.exists() and other.exists()


def test_csv_cells_read_as_a_person_wrote_them(tmp_path):
    text = as_csv_text(sample(3))
    assert text["provisional"].tolist() == ["True", "False", "False"]
    assert text["scored_at"].iloc[0] == "2026-11-01T03:04:05Z"
    assert text["prediction_time"].iloc[1] == "2024-01-18"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("risk", "1.5", r"row 2, column risk: must be a number in \[0, 1\], got '1.5'"),
        ("risk", "", r"row 2, column risk: must be a number in \[0, 1\], got ''"),
        ("prediction_time", "soon", r"row 2, column prediction_time: must be a date"),
        ("provisional", "maybe", r"row 2, column provisional: must be True or False"),
        ("model_version", "latest", r"row 2, column model_version: must be a positive whole"),
        ("injury_id", "", r"row 2, column injury_id: required, got ''"),
        ("injury_id", "I 1", r"row 2, column injury_id: must be an id"),
        ("risk_band", "extreme", r"row 2, column risk_band: must be one of low, moderate, high"),
        ("scored_at", "yesterday", r"row 2, column scored_at: must be an ISO 8601 time"),
        ("risk_ci_low", "0.99", r"row 2, breaks the predictions contract: risk_ci_low <= risk"),
        ("injury_id", "I000", r"one row per injury_id and model_version"),
    ],
)
def test_a_bad_value_names_file_row_column_rule_and_value(tmp_path, column, value, message):
    text = as_csv_text(sample(3)).astype({column: object})
    text.loc[1, column] = value
    path = tmp_path / "p.csv"
    text.to_csv(path, index=False)
    with pytest.raises(PredictionsFileError, match=message) as caught:
        read_predictions(path)
    assert str(caught.value).startswith(f"{path}:")


def test_a_version_written_as_a_float_is_the_same_version(tmp_path):
    text = as_csv_text(sample(3)).assign(model_version="2.0")
    text.to_csv(tmp_path / "p.csv", index=False)
    assert read_predictions(tmp_path / "p.csv")["model_version"].eq("2").all()


def test_a_reader_needing_fewer_columns_reads_a_file_that_has_only_those(tmp_path):
    path = tmp_path / "p.csv"
    as_csv_text(sample())[list(AUDITED_COLUMNS)].assign(extra="ignored").to_csv(path, index=False)
    with pytest.raises(PredictionsFileError, match=r"missing column\(s\) provisional"):
        read_predictions(path)
    read = read_predictions(path, require=AUDITED_COLUMNS)
    assert list(read.columns) == list(AUDITED_COLUMNS)
    np.testing.assert_array_equal(read["risk"].to_numpy(), sample()["risk"].to_numpy())


@pytest.mark.parametrize("name", ["p.csv", "p.parquet"])
def test_a_declared_optional_column_is_written_and_read_when_present(tmp_path, monkeypatch, name):
    # What adding a column to the contract takes: one declaration.
    declared = (*predictions.COLUMNS, PredictionColumn("risk_14d", "probability", required=False))
    monkeypatch.setattr(predictions, "COLUMNS", declared)
    monkeypatch.setattr(predictions, "COLUMNS_BY_NAME", {c.name: c for c in declared})
    frame = sample().assign(risk_14d=lambda f: f["risk"] / 3)
    frame.loc[0, "risk_14d"] = np.nan
    path = tmp_path / name
    with write_predictions(path) as writer:
        writer.write(frame)
    pd.testing.assert_frame_equal(
        read_predictions(path)[list(frame.columns)], frame, check_exact=True
    )
    # Files without it still read, and a bad value in it is named like any other.
    with write_predictions(path) as writer:
        writer.write(sample())
    assert "risk_14d" not in read_predictions(path).columns
    if name.endswith(".csv"):
        as_csv_text(frame.assign(risk_14d=2.0)).to_csv(path, index=False)
        with pytest.raises(PredictionsFileError, match="row 1, column risk_14d: must be"):
            read_predictions(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [("p.txt", "must be a .csv or .parquet file"), ("absent.csv", "predictions file not found")],
)
def test_unreadable_files_are_clear_errors(tmp_path, name, message):
    with pytest.raises(PredictionsFileError, match=message):
        read_predictions(Path(tmp_path / name))


def test_a_semicolon_separated_export_says_so(tmp_path):
    path = tmp_path / "p.csv"
    as_csv_text(sample()).to_csv(path, index=False, sep=";")
    with pytest.raises(PredictionsFileError, match="separated by ';', not by commas"):
        read_predictions(path)
