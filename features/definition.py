"""A model's feature definition: the settings and columns its training frame was built with.

A registered model carries one (``pipeline.registry`` stores it beside the fitted model,
``pipeline.model_cache`` in its cache entry), and scoring, lookups and audits build
features from it rather than from today's ``configs/features.yaml``: a model is fed the
features it was trained on, or refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from features.catalog import FEATURES_BY_NAME, registry_digest
from features.config import FeaturesConfig


@dataclass(frozen=True)
class FeatureDefinition:
    """How a model's feature frame is built.

    Attributes:
        config: the feature settings of the training frame.
        columns: per model column, in the model's order, what the registry said of it at
            training (``FeatureSpec.signature`` plus ``dtype``).
        package_version: the hamrisk version that built the training frame (a record).
        registry_digest: ``features.catalog.registry_digest`` of the model's columns.
    """

    config: FeaturesConfig
    columns: tuple[Mapping[str, Any], ...]
    package_version: str
    registry_digest: str

    @classmethod
    def of(
        cls, config: FeaturesConfig, names: Sequence[str], package_version: str
    ) -> FeatureDefinition:
        """The definition of a frame with columns ``names`` built now, with ``config``.

        Raises:
            KeyError: a name is not a registered feature.
        """
        columns = tuple(
            {**FEATURES_BY_NAME[name].signature(), "dtype": FEATURES_BY_NAME[name].dtype}
            for name in names
        )
        return cls(config, columns, package_version, registry_digest(list(names)))

    @property
    def names(self) -> list[str]:
        """The model's columns, in its order."""
        return [column["name"] for column in self.columns]

    def differences(self) -> list[str]:
        """How the code's feature registry differs from this definition; empty if it does not.

        Each entry names the column and what the model recorded against what the code has.
        """
        found = []
        for column in self.columns:
            spec = FEATURES_BY_NAME.get(column["name"])
            if spec is None:
                found.append(f"{column['name']}: the code has no such feature")
                continue
            now = {**spec.signature(), "dtype": spec.dtype}
            changed = [key for key in now if column.get(key) != now[key]]
            found.extend(
                f"{column['name']}: {key} {column.get(key)!r} in the model, {now[key]!r} in "
                "the code"
                for key in changed
            )
        if not found and registry_digest(self.names) != self.registry_digest:
            found.append(
                f"registry digest {self.registry_digest[:12]} in the model, "
                f"{registry_digest(self.names)[:12]} in the code"
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready document (``from_dict`` reads it back)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "columns": [dict(column) for column in self.columns],
            "package_version": self.package_version,
            "registry_digest": self.registry_digest,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> FeatureDefinition:
        """The definition ``as_dict`` wrote.

        Raises:
            ValueError: the document is not one (pydantic's error for the settings).
            KeyError: a field is missing.
        """
        return cls(
            config=FeaturesConfig.model_validate(document["config"]),
            columns=tuple(dict(column) for column in document["columns"]),
            package_version=str(document["package_version"]),
            registry_digest=str(document["registry_digest"]),
        )
