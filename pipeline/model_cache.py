"""Registered models as scoring and lookups load them: through MLflow once, then from a cache.

Loading a version through MLflow costs seconds of imports and store queries before any
work. After the first load, this module resolves a ``models:/NAME@ALIAS`` or
``models:/NAME/N`` URI with one read-only query of the SQLite store and reads the fitted
model from a cache in the store folder (``.cache/models/NAME/vVERSION-CREATED/``), keyed by
name, version and the version's creation time, so a version deleted and registered again
is never served from an old entry. Anything else (an HTTP store, another kind of URI, a
version not cached yet) loads through MLflow, which also explains a URI that names no
version.

An additive model (boosted stumps) is cached in its compact form (:mod:`models.compact`):
the same risks, intervals and contributions to the bit, loaded without LightGBM,
scikit-learn or SciPy. Other models are cached whole. Either way the cache entry carries
the version's feature definition (:mod:`features.definition`), as the registered model
does: a model is always fed the features it was trained on, whatever
``configs/features.yaml`` says today, and is refused when the code's feature registry no
longer computes them the same way.
"""

from __future__ import annotations

import os
import pickle
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd

from features import CohortTables, build_feature_frame
from features.definition import FeatureDefinition
from pipeline.errors import HamriskError

PROJECT_DIR = Path(__file__).resolve().parent.parent
CACHE_FOLDER = Path(".cache") / "models"
# Named for what it holds (the compact model where there is one, and the feature
# definition); a file of another format is never read.
CACHE_FILE = "model.3.pkl"


class FeatureDefinitionError(HamriskError):
    """A model whose features the code or the cohort cannot build as it was trained on."""


@dataclass(frozen=True)
class RegisteredModel:
    """A fitted model (``RiskModel`` or its ``CompactRiskModel``), the version it is, and
    the feature definition it was trained on."""

    risk_model: Any
    name: str
    version: str
    definition: FeatureDefinition

    @property
    def kind(self) -> str:
        """``literature`` (published effects only), ``updated`` or ``trained``."""
        from models.served import model_kind

        return model_kind(self.risk_model)

    @property
    def checked_against_outcomes(self) -> bool:
        """Whether any clinic's outcomes have shaped or checked this model (not so for the
        literature model)."""
        return self.kind != "literature"

    def check_features(self) -> None:
        """Raise unless the code's feature registry builds this model's columns as at training.

        Raises:
            FeatureDefinitionError: names the model version and each column that differs.
        """
        differences = self.definition.differences()
        if differences:
            raise FeatureDefinitionError(
                f"model {self.name} version {self.version} was trained on features this code "
                f"(hamrisk, trained with {self.definition.package_version}) builds differently: "
                + "; ".join(differences)
                + "; retrain it, or score with the code it was trained with"
            )

    def feature_frame(self, cohort: CohortTables, episodes: pd.DataFrame) -> pd.DataFrame:
        """The episodes' features as this model was trained on them: its columns, its order,
        its feature settings.

        Raises:
            FeatureDefinitionError: the code builds a column differently (see
                ``check_features``), or the cohort lacks a column a feature reads.
        """
        self.check_features()
        try:
            return build_feature_frame(
                cohort, episodes, self.definition.config, columns=self.definition.names
            )
        except KeyError as exc:
            raise FeatureDefinitionError(
                f"model {self.name} version {self.version}: the cohort cannot supply its "
                f"features (no column {exc.args[0]!r})"
            ) from None


def store_database() -> Path | None:
    """The SQLite file of the tracking store, as ``pipeline.registry.tracking_uri`` picks it.

    ``None`` when the store is not a SQLite file (an MLflow server, say).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        home = Path(os.environ.get("HAMRISK_HOME") or PROJECT_DIR).resolve()
        return home / "mlruns.db"
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///") :]).split("?", 1)[0]).resolve()


def registered_version(db: Path, uri: str) -> tuple[str, str, int] | None:
    """``(name, version, creation time)`` for ``models:/NAME@ALIAS`` or ``models:/NAME/N``.

    ``None`` whenever the answer is not certain (no such file, another schema): the caller
    then asks MLflow, which also explains a version that does not exist.
    """
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if match is None or not db.is_file():
        return None
    name, alias, version = match.groups()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2) as connection:
            if alias is not None:
                found = connection.execute(
                    "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                    (name, alias),
                ).fetchall()
                if len(found) != 1:
                    return None
                version = str(found[0][0])
            rows = connection.execute(
                "SELECT creation_time FROM model_versions WHERE name = ? AND version = ?",
                (name, int(version)),
            ).fetchall()
    except sqlite3.Error:
        return None
    if len(rows) != 1 or rows[0][0] is None:
        return None
    return name, str(int(version)), int(rows[0][0])


def resolve(uri: str) -> str:
    """The URI of the one version ``uri`` names now (``models:/NAME/N``), without loading
    it; a URI outside the registry (``runs:/...``, a folder) is returned as it is.

    Raises:
        HamriskError: the URI names no existing version (the message lists those that do),
            or the store cannot be reached.
    """
    found = _local_version(uri)[1]
    if found is not None:
        return f"models:/{found[0]}/{found[1]}"
    from pipeline import registry  # MLflow is imported on use

    return _pinned(uri, *registry.resolve_model_version(uri))


def resolve_local(uri: str) -> str | None:
    """``models:/NAME/N`` for ``uri`` when a SQLite store answers for certain, else ``None``
    (no such version, or a store this module cannot read without MLflow)."""
    found = _local_version(uri)[1]
    return None if found is None else f"models:/{found[0]}/{found[1]}"


def _local_version(uri: str) -> tuple[Path | None, tuple[str, str, int] | None]:
    """The SQLite store (if the store is one) and what it says ``uri`` names, if certain."""
    db = store_database()
    return db, registered_version(db, uri) if db is not None else None


def _pinned(uri: str, name: str, version: str) -> str:
    return f"models:/{name}/{version}" if name != uri else uri


def load_model(uri: str) -> RegisteredModel:
    """The fitted model ``uri`` names, from the cache when it holds that version.

    The model is the registered ``RiskModel``, or its ``CompactRiskModel`` when it has
    one, the same on the first load as on every later one. An alias is resolved once and
    the version it names is loaded, so an alias moved in between cannot give predictions of
    one version labelled with another.

    Raises:
        HamriskError: the URI names no existing version (the message lists those that do),
            or the store cannot be reached.
        FeatureDefinitionError: the version carries no feature definition, or the code's
            feature registry no longer builds its columns as at training.
    """
    db, found = _local_version(uri)
    if db is not None and found is not None:
        cached = _cache_path(db, *found)
        if cached.is_file():
            with cached.open("rb") as handle:
                # Written by cloudpickle, whose output plain pickle reads.
                entry = pickle.load(handle)
            model = RegisteredModel(
                entry["risk_model"],
                found[0],
                found[1],
                FeatureDefinition.from_dict(entry["feature_definition"]),
            )
            model.check_features()
            return model
    from pipeline import registry  # MLflow is imported on use

    name, version = registry.resolve_model_version(uri)
    pinned = _pinned(uri, name, version)
    pyfunc = registry.load_risk_model(pinned).unwrap_python_model()
    if pyfunc.feature_definition is None:
        raise FeatureDefinitionError(
            f"model {name} version {version} carries no feature definition (registered by an "
            "older hamrisk); retrain it"
        )
    full = pyfunc.risk_model
    compact = full.compact() if hasattr(full, "compact") else None
    fitted = full if compact is None else compact
    model = RegisteredModel(fitted, name, version, pyfunc.feature_definition)
    model.check_features()
    found = registered_version(db, pinned) if db is not None else None
    if found is not None:
        _write_cache(_cache_path(db, *found), model)
    return model


def _cache_path(db: Path, name: str, version: str, created: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return db.parent / CACHE_FOLDER / safe / f"v{version}-{created}" / CACHE_FILE


def _write_cache(path: Path, model: RegisteredModel) -> None:
    """Write atomically; a cache that cannot be written only costs the next load time."""
    import cloudpickle

    from pipeline.io import atomic_file

    entry = {
        "risk_model": model.risk_model,
        "feature_definition": model.definition.as_dict(),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "wb") as out:
            cloudpickle.dump(entry, out)
    except OSError:
        return
