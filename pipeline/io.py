"""Reading and writing cohort tables: the file edge of the pipeline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMATS = ("csv", "parquet")


def write_tables(tables: dict[str, pd.DataFrame], folder: Path | str, fmt: str = "csv") -> None:
    """Write each table to ``folder/NAME.{csv,parquet}`` in the contract's file format.

    CSV dates are written as ISO ``YYYY-MM-DD`` and missing values as empty cells.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False, date_format="%Y-%m-%d", lineterminator="\n")
        else:
            frame.to_parquet(path, index=False)
