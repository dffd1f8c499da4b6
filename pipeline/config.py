"""Typed configuration: YAML files in ``configs/`` validated once into frozen objects.

Every section is a frozen pydantic model that forbids unknown keys, so a typo in a key or a
value out of range is reported with the key's dotted path instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A configuration file that cannot be read or breaks its schema."""


class Section(BaseModel):
    """Base for every config section: frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class OutcomeConfig(Section):
    """What counts as a recurrence (data contract, "Prediction time, outcome and censoring")."""

    window_days: int = Field(365, ge=1, le=3650)
    same_side_only: bool = True


class FeaturesConfig(Section):
    """Point-in-time feature settings shared by training, scoring and lookup."""

    outcome: OutcomeConfig = OutcomeConfig()
    prior_injury_window_days: int = Field(365, ge=1, le=3650)
    strength_trend_min_tests: int = Field(2, ge=2, le=20)


S = TypeVar("S", bound=Section)


def load_config(model: type[S], path: Path | str | None = None, *, name: str | None = None) -> S:
    """Read a YAML file into the typed section ``model``.

    Args:
        model: the section class to validate into.
        path: the YAML file; ``None`` reads ``configs/{name}.yaml``.
        name: the default file's stem, used when ``path`` is ``None``.

    Raises:
        ConfigError: the file is missing, is not YAML, or breaks the schema (the message
            names the file and each offending key).
    """
    if path is None:
        if name is None:
            raise ConfigError("load_config needs a path or a default config name")
        path = CONFIG_DIR / f"{name}.yaml"
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                problems.append(f"{key}: unknown key (check its spelling)")
            else:
                problems.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None


# --- Model registry: promotion gates (configs/train.yaml, section `registry:`) ---


class GatesConfig(Section):
    """Held-out thresholds a model version must pass before it becomes ``champion``."""

    calibration_slope_min: float = Field(0.8, gt=0.0)
    calibration_slope_max: float = Field(1.2, gt=0.0)
    calibration_intercept_max_abs: float = Field(0.1, ge=0.0)
    auc_min: float = Field(0.6, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _slope_range_is_ordered(self) -> GatesConfig:
        if self.calibration_slope_min >= self.calibration_slope_max:
            raise ValueError(
                f"calibration_slope_min ({self.calibration_slope_min}) must be below "
                f"calibration_slope_max ({self.calibration_slope_max})"
            )
        return self


class RegistryConfig(Section):
    """Where training runs are tracked and models registered, and the promotion gates."""

    experiment_name: str = Field("hamstring-reinjury", min_length=1, max_length=200)
    model_name: str = Field("hamstring-reinjury", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
    gates: GatesConfig = GatesConfig()


class RegistryFileConfig(Section):
    """``configs/train.yaml`` read for its ``registry:`` section alone (``hamrisk models``).

    The training sections of the same file are validated by the training config; here they
    are ignored, while the ``registry:`` section itself stays strict about unknown keys.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    registry: RegistryConfig = RegistryConfig()
