"""Typed configuration: YAML files in ``configs/`` validated once into frozen objects.

Every section is a frozen pydantic model that forbids unknown keys, so a typo in a key or a
value out of range is reported with the key's dotted path instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
