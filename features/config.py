"""Feature settings: the part of ``configs/features.yaml`` a model is built with.

These travel inside every registered model (``features.definition``), so they live with
the feature functions that read them; ``pipeline.config`` loads the YAML into them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Settings(BaseModel):
    """Base for feature settings: frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class OutcomeConfig(Settings):
    """What counts as a recurrence (data contract, "Prediction time, outcome and censoring")."""

    window_days: int = Field(365, ge=1, le=3650)
    same_side_only: bool = True


class TypicalReturnDays(Settings):
    """Usual days from injury to return to sport per BAMIC grade (sources in features.yaml).

    ``intratendinous`` overrides ``by_grade`` for a grade when the site is ``c``.
    """

    by_grade: dict[int, Annotated[float, Field(gt=0)]] = {0: 8, 1: 17, 2: 22, 3: 33, 4: 73}
    intratendinous: dict[int, Annotated[float, Field(gt=0)]] = {2: 34, 3: 48}

    @field_validator("by_grade")
    @classmethod
    def _every_grade(cls, value: dict[int, float]) -> dict[int, float]:
        if sorted(value) != [0, 1, 2, 3, 4]:
            raise ValueError(f"needs exactly the BAMIC grades 0-4, got {sorted(value)}")
        return value

    @field_validator("intratendinous")
    @classmethod
    def _intratendinous_grades(cls, value: dict[int, float]) -> dict[int, float]:
        if not set(value) <= {1, 2, 3, 4}:
            raise ValueError(f"site c exists only for BAMIC grades 1-4, got {sorted(value)}")
        return value


class FeaturesConfig(Settings):
    """Point-in-time feature settings and the outcome a model is trained to predict."""

    outcome: OutcomeConfig = OutcomeConfig()
    prior_injury_window_days: int = Field(365, ge=1, le=3650)
    strength_trend_min_tests: int = Field(2, ge=2, le=20)
    typical_return_days: TypicalReturnDays = TypicalReturnDays()
