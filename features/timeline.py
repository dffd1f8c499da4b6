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
    """Integer codes such that equal values get equal codes across all ``columns``."""
    codes, _ = pd.factorize(pd.concat([c.astype("string") for c in columns], ignore_index=True))
    bounds = np.cumsum([0, *(len(c) for c in columns)])
    return [codes[lo:hi].astype("int64") for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass(frozen=True)
class DatedRecords:
    """Records sorted by (group, day, tiebreak), searchable by group and day range.

    Attributes:
        frame: the records in sorted order, with a fresh RangeIndex.
        day: each sorted record's day number (int64).
        keys: the packed (group, day) search key, ascending.
    """

    frame: pd.DataFrame
    day: np.ndarray
    keys: np.ndarray

    @classmethod
    def build(
        cls, frame: pd.DataFrame, group: np.ndarray, date_column: str, tiebreak: str | None = None
    ) -> DatedRecords:
        """Sort ``frame`` (not modified) by ``group`` codes, date and an optional tiebreak.

        The tiebreak makes "the last record of a day" independent of input row order.
        """
        day = day_numbers(frame[date_column]).astype("int64")
        sort_keys = [day, group]
        if tiebreak is not None:
            sort_keys.insert(0, pd.factorize(frame[tiebreak], sort=True)[0])
        order = np.lexsort(sort_keys)
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
        start = np.searchsorted(self.keys, group * _SPAN + first + _OFFSET, side="left")
        stop = np.searchsorted(self.keys, group * _SPAN + last + _OFFSET, side="right")
        stop = np.where(usable, np.maximum(stop, start), start)
        return start, stop


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
