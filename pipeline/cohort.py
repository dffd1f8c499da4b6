"""The validated cohort: the five contract tables as typed pandas frames.

This is what validation hands to every later stage (episodes, features, training, scoring,
audit). Its column types are fixed here so that feature code can rely on them:

- ids (``athlete_id``, ``injury_id``, ``test_id``, ``clinic_id``): pandas ``string`` dtype;
- dates: ``datetime64[ns]`` at midnight, ``NaT`` when missing;
- enums (``sex``, ``discipline``, ``level``, ``side``, ``muscle``, ``bamic_site``,
  ``mechanism``, ``test``, ``unit``): pandas ``string`` dtype, ``<NA>`` when missing
  (``muscle`` missing is already read as ``"unknown"`` by validation);
- integers that may be missing (``birth_year``, ``bamic_grade``, ``pain_at_return``):
  ``Int64``;
- floats (``body_mass_kg``, ``left``, ``right``, ``peak_sprint_pct``, ``slr_deficit_deg``):
  ``float64``, ``NaN`` when missing;
- ``ake_discomfort``: pandas ``boolean``.

Every optional column of the contract is present (all missing when the file lacked it);
extra columns a clinic exported are kept unless a later stage ignores them. Only accepted
records are here: set-aside records never reach a ``Cohort``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

TABLES: tuple[str, ...] = ("athletes", "injuries", "strength_tests", "return_to_run", "follow_up")


@dataclass(frozen=True)
class Cohort:
    """The five accepted tables of one cohort folder."""

    athletes: pd.DataFrame
    injuries: pd.DataFrame
    strength_tests: pd.DataFrame
    return_to_run: pd.DataFrame
    follow_up: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by contract name, in contract order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
