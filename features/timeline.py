"""Point-in-time look-ups of dated records (injuries, strength tests) for many episodes at once.

Records are sorted once by (group, day), where a group is an athlete, an athlete's side
or an athlete's test type. Each episode then asks for the records of its group dated in
a closed day range, answered by binary search on one int64 key per record: no per-episode
loop and no episode × record cross join, so a million episodes take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Days since 1970 are shifted by _OFFSET to be non-negative and packed under the group
# code: key = group * _SPAN + day + _OFFSET. 2**22 days is about 11,000 years either way.
_OFFSET = 1 << 22
_SPAN = 1 << 23
EARLIEST_DAY = -_OFFSET


def day_numbers(dates: pd.Series) -> np.ndarray:
    """Whole days since 1970-01-01 as float64 (NaN for NaT): dates are at midnight."""
    values = dates.to_numpy(dtype="datetime64[ns]")
    days = values.astype("datetime64[D]").astype("int64").astype("float64")
    days[np.isnat(values)] = np.nan
    return days


def shared_codes(*columns: pd.Series) -> list[np.ndarray]:
    """Integer codes such that equal values get equal codes across all ``columns``.

    Codes follow the sorted values, so queries from frames sorted by the same key search
    nearby keys one after another (much faster on large inputs).
    """
    codes, _ = pd.factorize(
        pd.concat([c.astype("string") for c in columns], ignore_index=True), sort=True
    )
    bounds = np.cumsum([0, *(len(c) for c in columns)])
    return [codes[lo:hi].astype("int64") for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass(frozen=True)
class DatedRecords:
    """Records sorted by (group, day), searchable by group and day range.

    Attributes:
        frame: the records' values in sorted order, with a fresh RangeIndex.
        day: each sorted record's day number (int64).
        keys: the packed (group, day) search key, ascending.
    """

    frame: pd.DataFrame
    day: np.ndarray
    keys: np.ndarray

    @classmethod
    def build(
        cls, group: np.ndarray, day: np.ndarray, values: pd.DataFrame | None = None
    ) -> DatedRecords:
        """Sort records by ``group`` code and ``day``; ``values`` (row-aligned) is not modified.

        Records of one group on one day keep their input order: callers that read "the
        last record" make sure there is one per group and day.
        """
        day = np.asarray(day, dtype="int64")
        order = np.lexsort([day, group])
        frame = pd.DataFrame(index=range(len(day))) if values is None else values
        return cls(
            frame=frame.iloc[order].reset_index(drop=True),
            day=day[order],
            keys=group[order] * _SPAN + day[order] + _OFFSET,
        )

    def window(
        self, group: np.ndarray, first_day: np.ndarray, last_day: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``[start, stop)`` of the records of ``group`` dated in [first, last].

        A group code of -1 (no such records) or a NaN bound gives an empty range.
        """
        usable = (group >= 0) & ~np.isnan(first_day) & ~np.isnan(last_day)
        group = np.where(usable, group, 0)
        first = np.where(usable, first_day, 0).astype("int64")
        last = np.where(usable, last_day, -1).astype("int64")
        start = _search_sorted(self.keys, group * _SPAN + first + _OFFSET, side="left")
        stop = _search_sorted(self.keys, group * _SPAN + last + _OFFSET, side="right")
        stop = np.where(usable, np.maximum(stop, start), start)
        return start, stop


def _search_sorted(keys: np.ndarray, queries: np.ndarray, side: str) -> np.ndarray:
    """``np.searchsorted`` with the queries sorted first: neighbouring look-ups stay in cache."""
    order = np.argsort(queries, kind="stable")
    found = np.empty(len(queries), dtype="int64")
    found[order] = np.searchsorted(keys, queries[order], side=side)
    return found


def align(table: pd.DataFrame, key: str, values: pd.Series) -> pd.DataFrame:
    """The rows of ``table`` whose ``key`` equals each of ``values`` (all missing if none).

    Looking each key up once here lets every feature read aligned columns by position.
    ``table[key]`` must be unique, as validation guarantees for the contract's ids.
    """
    position = pd.Index(table[key]).get_indexer(values)
    rows = table.reset_index(drop=True).reindex(position)
    return rows.set_axis(values.index)


def last_position(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Position of the last record in each range, -1 where the range is empty."""
    return np.where(stop > start, stop - 1, -1)


def expand(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (query row, record position) pair inside the ranges, for per-episode sums."""
    counts = stop - start
    row = np.repeat(np.arange(len(start)), counts)
    first_of_row = np.repeat(np.cumsum(counts) - counts, counts)
    position = np.repeat(start, counts) + (np.arange(counts.sum()) - first_of_row)
    return row, position


def take(values: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``values[position]`` as float64, NaN where the position is -1."""
    found = position >= 0
    out = np.full(len(position), np.nan)
    out[found] = np.asarray(values, dtype="float64")[position[found]]
    return out
