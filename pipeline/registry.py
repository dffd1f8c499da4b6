"""The MLflow edge: tracking store, training runs, the model registry and its promotion gates.

Every talk with MLflow starts here: training's runs, registration and aliases go through
this module, and the one other MLflow caller, the audit logging its evaluation run
(``pipeline.audit``), connects through ``connect``. Every public function opens its own
connection, so nothing is set up at import time and a caller never sees a
half-configured global tracking URI.

Stores:
- default: an embedded SQLite store inside the project folder, ``<home>/mlruns.db`` with
  artifacts in ``<home>/mlartifacts`` (``home`` is the repository root, or ``HAMRISK_HOME``);
- ``MLFLOW_TRACKING_URI`` overrides it: another SQLite file, or an ``mlflow server`` over HTTP.

Nothing athlete-level goes to MLflow: the data fingerprint holds row counts and hashes, the
input example is synthetic, and the risk model is a fitted object without training rows.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sqlite3
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import cloudpickle
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema
from sqlalchemy.exc import SQLAlchemyError

from features.definition import FeatureDefinition
from models import promotion
from pipeline.config import GatesConfig
from pipeline.curve import curve_columns
from pipeline.errors import HamriskError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PROJECT_DIR = Path(__file__).resolve().parent.parent
HOME_ENV = "HAMRISK_HOME"
# Packages copied into every logged model, so `mlflow models serve` runs from any folder.
MODEL_PACKAGES = ("pipeline", "features", "models")
MODEL_ARTIFACT = "model"
# The pyfunc artifact holding the model's feature definition (features.definition), as JSON.
FEATURE_DEFINITION_ARTIFACT = "feature_definition"
# Held-out metrics logged by training, in the order `models list` shows the key ones.
METRIC_NAMES = (
    "auc",
    "brier",
    "log_loss",
    "calibration_slope",
    "calibration_intercept",
    "ece",
    "oe_ratio",
)
KEY_METRICS = ("auc", "brier", "calibration_slope", "calibration_intercept")
CHAMPION = "champion"
CHALLENGER = "challenger"
JUDGED_TAG = "hamrisk.judged"

# A tracking server that does not answer within this many seconds is reported as
# unreachable, instead of MLflow's default of 7 retries with backoff (about 4 minutes).
PROBE_TIMEOUT_SECONDS = 3.0
# MLflow's HTTP settings while one of our calls runs, unless the user set their own.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_TABLE_SUFFIXES = (".csv", ".parquet")


class TrackingError(HamriskError):
    """The tracking store or model registry cannot be reached or refused a request."""


# --- store and connection -----------------------------------------------------------------


def project_home() -> Path:
    """The folder holding the embedded store: ``HAMRISK_HOME`` or the repository root."""
    return Path(os.environ.get(HOME_ENV) or PROJECT_DIR).resolve()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store in ``project_home()``."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    return "sqlite:///" + (project_home() / "mlruns.db").as_posix()


def shown_uri(uri: str) -> str:
    """``uri`` as printed in messages and logs: a password in it is replaced by ``***``."""
    parts = urlparse(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


def _is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, ``None`` for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///") :]).split("?", 1)[0]).resolve()


def artifact_root(uri: str) -> Path | None:
    """Where experiments we create keep their artifacts; ``None`` lets a server decide.

    MLflow's own default for a database store is ``./mlruns`` relative to the working
    directory, which scatters artifacts wherever a command happens to run; a SQLite store
    gets ``mlartifacts`` beside its database file instead.
    """
    if _is_http(uri) or urlparse(uri).scheme in ("databricks", "file", ""):
        return None
    db = _sqlite_path(uri)
    return (db.parent if db is not None else project_home()) / "mlartifacts"


@contextmanager
def _http_settings() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in HTTP_SETTINGS}
    for key, value in HTTP_SETTINGS.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_reachable(uri: str) -> None:
    """Raise ``TrackingError`` unless an HTTP tracking server answers within seconds.

    Any HTTP answer counts as reachable (an authenticating proxy may answer 401); only a
    refused connection, a DNS failure or silence is reported.
    """
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError:
        return
    except OSError as exc:  # URLError, refused connections and timeouts
        reason = getattr(exc, "reason", exc)
        shown = shown_uri(uri)
        raise TrackingError(
            f"MLflow tracking server {shown} is unreachable ({reason}); start it, or unset "
            "MLFLOW_TRACKING_URI to use the embedded store in the project folder"
        ) from None


def _check_sqlite(uri: str, db: Path) -> None:
    """Raise ``TrackingError`` now unless ``db`` can be opened as a SQLite database.

    MLflow retries a database it cannot open for minutes, and reports a file that is not a
    database with a raw SQLAlchemy traceback; both are a wrong path a user can fix.
    """
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        # Creates an empty database when there is none, as MLflow itself would.
        with closing(sqlite3.connect(db, timeout=PROBE_TIMEOUT_SECONDS)) as connection:
            connection.execute("PRAGMA schema_version")
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        shown = shown_uri(uri)
        raise TrackingError(
            f"MLflow store {shown}: cannot open {db} as a SQLite database ({reason}); check "
            "MLFLOW_TRACKING_URI or HAMRISK_HOME"
        ) from None


_active_uris: list[str] = []


@contextmanager
def connect(uri: str | None = None) -> Iterator[MlflowClient]:
    """Point MLflow at ``uri`` (default ``tracking_uri()``) for the duration of a block.

    Fails within seconds with ``TrackingError`` when an HTTP server is unreachable, and
    turns any MLflow failure inside the block into a ``TrackingError`` naming the store.
    Nested blocks on the same store share the outer connection.
    """
    uri = uri or tracking_uri()
    if _active_uris and _active_uris[-1] == uri:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
        return
    with _http_settings():
        if _is_http(uri):
            _check_reachable(uri)
        db = _sqlite_path(uri)
        if db is not None:
            _check_sqlite(uri, db)
        saved_env = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri)
        _active_uris.append(uri)
        try:
            yield MlflowClient(tracking_uri=uri, registry_uri=uri)
        except MlflowException as exc:
            raise TrackingError(f"MLflow store {shown_uri(uri)}: {exc.message}") from None
        except (SQLAlchemyError, ImportError) as exc:
            # A database MLflow cannot use, or a database URI whose driver is not installed
            # (postgresql:// without psycopg): the store is unusable, not the code broken.
            reason = str(exc).splitlines()[0]
            shown = shown_uri(uri)
            raise TrackingError(f"MLflow store {shown}: cannot be used ({reason})") from None
        finally:
            _active_uris.pop()
            # set_tracking_uri also writes MLFLOW_TRACKING_URI; put the user's value back.
            mlflow.set_tracking_uri(None)
            if saved_env is not None:
                os.environ["MLFLOW_TRACKING_URI"] = saved_env


def check_store() -> None:
    """Raise ``TrackingError`` now if the tracking store cannot be reached or read.

    For commands that do minutes of work before their first MLflow call.
    """
    with connect() as client:
        client.search_experiments(max_results=1)


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created with an absolute artifact location if new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = artifact_root(client.tracking_uri)
    location = None
    if root is not None:
        folder = root / re.sub(r"[^A-Za-z0-9._-]", "_", name)
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another run created it between our lookup and our create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


# --- the model as MLflow serves it --------------------------------------------------------


class RiskPyfunc(mlflow.pyfunc.PythonModel):
    """The fitted risk model as an MLflow pyfunc: feature frame in, risk with interval out.

    The wrapped object needs ``predict_risk(X)``, ``predict_interval(X) -> (low, high)``
    and ``contributions(X)``; it travels as a pickled artifact, not inside this wrapper.
    Beside ``risk``, ``risk_ci_low`` and ``risk_ci_high`` the output has the cumulative incidence
    by each earlier horizon with its interval (``risk_28d``, ``risk_28d_ci_low``, ...) and
    ``curve_shape``: the wrapped object's ``timing_`` when it has one, else the published
    timing (:func:`pipeline.curve.curve_columns`).
    The feature definition it was trained on (``features.definition``) travels beside it
    as JSON: the settings and columns scoring must build its input with.
    """

    def __init__(
        self, risk_model: Any = None, feature_definition: FeatureDefinition | None = None
    ) -> None:
        self._risk_model = risk_model
        self._feature_definition = feature_definition

    @property
    def risk_model(self) -> Any:
        """The wrapped fitted model (for contributions, which the pyfunc output omits)."""
        return self._risk_model

    @property
    def feature_definition(self) -> FeatureDefinition | None:
        """How the model's input is built; ``None`` for a model logged without one."""
        return self._feature_definition

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        with open(context.artifacts["risk_model"], "rb") as handle:
            self._risk_model = cloudpickle.load(handle)
        path = context.artifacts.get(FEATURE_DEFINITION_ARTIFACT)
        if path is not None:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
            self._feature_definition = FeatureDefinition.from_dict(document)

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        risk = np.asarray(self._risk_model.predict_risk(model_input), dtype=float)
        low, high = self._risk_model.predict_interval(model_input)
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        out = pd.DataFrame(
            {"risk": risk, "risk_ci_low": low, "risk_ci_high": high}, index=model_input.index
        )
        # The cumulative incidence by each earlier horizon; the window's is ``risk``.
        curve = curve_columns(self._risk_model, model_input, risk, low, high)
        return pd.concat([out, curve], axis=1)


def _signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """The example's columns and dtypes, each column optional.

    MLflow refuses to cast at scoring time (not even int64 to float64), so the example
    must carry the feature frame's own dtypes; every column is optional because missing
    values stay missing (the model handles them) and a feature absent from a clinic's
    export must reach the model as missing, not as a refusal.
    """
    inferred = infer_signature(example, output)
    columns = [ColSpec(spec.type, spec.name, required=False) for spec in inferred.inputs.inputs]
    return ModelSignature(inputs=Schema(columns), outputs=inferred.outputs)


def _pip_requirements() -> list[str]:
    """The project's runtime dependencies pinned to the installed versions."""
    pins = []
    for requirement in importlib.metadata.requires("hamrisk") or []:
        if "extra ==" in requirement:
            continue
        dist = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        pins.append(f"{dist}=={importlib.metadata.version(dist)}")
    pins.append(f"cloudpickle=={importlib.metadata.version('cloudpickle')}")
    return sorted(set(pins))


def _stage_code(target: Path) -> list[str]:
    """Copy the project packages (without caches) to ``target`` for ``code_paths``."""
    staged = []
    for package in MODEL_PACKAGES:
        source = PROJECT_DIR / package
        if (source / "__init__.py").exists():
            dest = target / package
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            staged.append(str(dest))
    return staged


def as_model_input(features: pd.DataFrame) -> pd.DataFrame:
    """The feature frame as the MLflow model takes it: booleans as 1.0/0.0/NaN floats.

    MLflow's schema enforcement cannot carry a missing value in a boolean column, and a
    missing answer (say, AKE discomfort not recorded) must stay missing, so booleans travel
    as floats; the model's own prep reads either form the same way.
    """
    booleans = [c for c in features.columns if isinstance(features[c].dtype, pd.BooleanDtype)]
    if not booleans:
        return features
    return features.astype(dict.fromkeys(booleans, "Float64")).astype(
        dict.fromkeys(booleans, "float64")
    )


def _log_risk_model(
    risk_model: Any, feature_definition: FeatureDefinition, input_example: pd.DataFrame
) -> None:
    # The index of a feature frame is the injury id: drop it so no id reaches MLflow.
    example = input_example.reset_index(drop=True)
    output = RiskPyfunc(risk_model).predict(None, example)
    with tempfile.TemporaryDirectory(prefix="hamrisk-model-") as tmp:
        pickled = Path(tmp) / "risk_model.pkl"
        with pickled.open("wb") as handle:
            cloudpickle.dump(risk_model, handle)
        definition = Path(tmp) / "feature_definition.json"
        definition.write_text(json.dumps(feature_definition.as_dict(), indent=2), "utf-8")
        mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=RiskPyfunc(),
            artifacts={
                "risk_model": str(pickled),
                FEATURE_DEFINITION_ARTIFACT: str(definition),
            },
            code_paths=_stage_code(Path(tmp) / "code"),
            signature=_signature(example, output),
            input_example=example,
            pip_requirements=_pip_requirements(),
        )


# --- training runs ------------------------------------------------------------------------


def data_fingerprint(folder: Path | str) -> dict[str, dict[str, Any]]:
    """Row count and SHA-256 per table file in ``folder``; never any content.

    Returns:
        ``{file name: {"rows": int, "sha256": hex digest}}`` for each CSV or Parquet file.
    """
    fingerprint: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.suffix.lower() not in _TABLE_SUFFIXES:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        fingerprint[path.name] = {"rows": _count_rows(path), "sha256": digest.hexdigest()}
    return fingerprint


def _count_rows(path: Path) -> int:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    # The csv module, not a line count: quoted cells may hold line breaks.
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = sum(1 for row in csv.reader(handle) if row)
    return max(rows - 1, 0)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def log_training_run(
    *,
    experiment: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    config_files: list[Path],
    fingerprint: Mapping[str, Any],
    feature_names: list[str],
    figures: Mapping[str, Figure],
    risk_model: Any,
    feature_definition: FeatureDefinition,
    input_example: pd.DataFrame,
    tags: Mapping[str, str],
    development_episodes: Mapping[str, Any] | None = None,
) -> str:
    """Log one training run and its pyfunc model; return the run id.

    Args:
        experiment: experiment name (created with an absolute artifact location if new).
        params: hyperparameters and settings; nested mappings become dotted keys.
        metrics: held-out metrics (``METRIC_NAMES`` and any others), finite or NaN.
        config_files: YAML files logged under ``config/``.
        fingerprint: ``data_fingerprint`` of the training folder, logged as JSON.
        feature_names: the model's input columns, logged as JSON.
        figures: matplotlib figures logged as ``figures/<key>.png``.
        risk_model: fitted object with ``predict_risk``, ``predict_interval``,
            ``contributions``.
        feature_definition: how the training frame was built; travels with the model.
        input_example: a few synthetic rows of the feature frame (never real athletes).
        tags: run tags (data source, git commit...), no athlete identifiers.
        development_episodes: the salted fingerprint set of the episodes the model was
            developed on (``pipeline.episodes.development_fingerprint``), logged as
            ``DEVELOPMENT_EPISODES_ARTIFACT``; no ids.
    """
    with connect() as client:
        exp_id = experiment_id(client, experiment)
        with mlflow.start_run(experiment_id=exp_id) as run:
            mlflow.set_tags(dict(tags))
            mlflow.log_params(_flatten(params))
            mlflow.log_metrics({name: float(value) for name, value in metrics.items()})
            for path in config_files:
                mlflow.log_artifact(str(path), artifact_path="config")
            mlflow.log_dict(dict(fingerprint), "data/fingerprint.json")
            mlflow.log_dict({"features": list(feature_names)}, "features/feature_names.json")
            if development_episodes is not None:
                mlflow.log_dict(dict(development_episodes), DEVELOPMENT_EPISODES_ARTIFACT)
            for key, figure in figures.items():
                mlflow.log_figure(figure, f"figures/{key}.png")
            _log_risk_model(risk_model, feature_definition, input_example)
        return run.info.run_id


DEVELOPMENT_EPISODES_ARTIFACT = "data/development_episodes.json"


def development_episodes(name: str, version: int | str) -> dict[str, Any] | None:
    """The development fingerprint set logged with a version's training run, if any.

    ``None`` when the version, its run or the artifact cannot be found (versions trained
    before the fingerprint was logged, or from another store).
    """
    try:
        with connect() as client:
            run_id = client.get_model_version(name, str(version)).run_id
            if not run_id:
                return None
            found = mlflow.artifacts.load_dict(f"runs:/{run_id}/{DEVELOPMENT_EPISODES_ARTIFACT}")
    except (HamriskError, MlflowException, OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


# --- registry -----------------------------------------------------------------------------


# The promotion rule is models/promotion.py (pure); these names stay here for the callers.
GateResult = promotion.GateResult
PromotionDecision = promotion.PromotionDecision
Comparison = promotion.Comparison


def register(run_id: str, name: str, tags: Mapping[str, str] | None = None) -> int:
    """Register the model logged by ``run_id`` as a new version of ``name``; return it.

    ``tags`` are set on the version as it is created, not in a second call that a killed
    run could miss.
    """
    with connect():
        version = mlflow.register_model(
            f"runs:/{run_id}/{MODEL_ARTIFACT}", name, tags=dict(tags) if tags else None
        )
        return int(version.version)


def decision_tags(decision: PromotionDecision) -> dict[str, str]:
    """Version tags recording the alias a new version is meant to get, why, and whether its
    calibration was judged (a later version that cannot be judged does not displace it)."""
    return {
        "hamrisk.decision": decision.alias,
        "hamrisk.reasons": "; ".join(decision.reasons),
        JUDGED_TAG: "true" if decision.judged else "false",
    }


def decide_promotion(
    new_metrics: Mapping[str, float],
    comparison: Comparison | None,
    gates: GatesConfig,
) -> PromotionDecision:
    """:func:`models.promotion.decide`: gates judged on intervals, the log loss compared with
    the champion's (or the literature model's) on the same episodes."""
    return promotion.decide(new_metrics, gates, comparison)


def champion_judged(name: str) -> bool:
    """Whether the current champion's calibration was judged when it was registered."""
    with connect() as client:
        try:
            version = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return False
        return str((version.tags or {}).get(JUDGED_TAG, "false")) == "true"


# Version tags saying which kind of model a version is: ``literature`` (published effects,
# no clinic's outcomes), ``updated`` (``hamrisk update``) or ``trained`` (``hamrisk train``;
# a version without the tag is one).
KIND_TAG = "hamrisk.kind"


def _version_numbers(client: MlflowClient, name: str) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))


@contextmanager
def _first_version_lock(uri: str) -> Iterator[None]:
    """One process at a time registers a first version: a lock file beside a SQLite store.

    Another store (an ``mlflow server``) has no file both processes see; there
    ``register_first_version`` re-checks after registering and keeps the lowest version.
    """
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.first-version.lock"):
        yield


def register_first_version(name: str, experiment: str, build: Any) -> int | None:
    """Register the model ``build()`` gives as version 1 of ``name`` with ``champion``, unless
    the store already holds a version of ``name``; return the version registered, else ``None``.

    Args:
        name: the registered model.
        experiment: where its run is logged.
        build: called only when a version is needed; returns an object with ``risk_model``,
            ``definition``, ``input_example``, ``params`` and ``tags`` (tags go on the run and
            the version).

    Two processes doing this at once give one version: on a SQLite store the second waits
    for the first's lock and then finds its version; over HTTP each re-checks after
    registering, and a process whose version is not the lowest deletes its own.
    """
    uri = tracking_uri()
    # The lock comes before the first connection: MLflow creates and migrates a new SQLite
    # store on connecting, and two processes migrating one file at once break it.
    with _first_version_lock(uri), connect(uri) as client:
        try:
            if _version_numbers(client, name):
                return None
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        built = build()
        run_id = log_training_run(
            experiment=experiment,
            params=built.params,
            metrics={},
            config_files=[],
            fingerprint={},
            feature_names=list(built.risk_model.feature_names_in_),
            figures={},
            risk_model=built.risk_model,
            feature_definition=built.definition,
            input_example=built.input_example,
            tags=built.tags,
        )
        reason = "first version: no model was registered"
        version = register(
            run_id,
            name,
            tags={**built.tags, "hamrisk.decision": CHAMPION, "hamrisk.reasons": reason},
        )
        lowest = _version_numbers(client, name)[0]
        if lowest != version:
            client.delete_model_version(name, str(version))
            return None
        set_alias(name, version, CHAMPION)
        return version


def version_kind(name: str, version: int | str) -> str:
    """``literature``, ``updated`` or ``trained`` (a version without the tag)."""
    with connect() as client:
        tags = client.get_model_version(name, str(version)).tags or {}
    return tags.get(KIND_TAG, "trained")


def set_alias(name: str, version: int, alias: str) -> None:
    """Point ``alias`` of model ``name`` at ``version``.

    A version made champion loses its ``challenger`` alias, so one version never shows both.
    """
    with connect() as client:
        client.set_registered_model_alias(name, alias, str(version))
        if alias == CHAMPION:
            aliases = client.get_registered_model(name).aliases
            if str(aliases.get(CHALLENGER)) == str(version):
                client.delete_registered_model_alias(name, CHALLENGER)


def champion_version(name: str) -> int | None:
    """The version holding ``champion``, or ``None`` (no champion, or no such model)."""
    with connect() as client:
        try:
            aliases = client.get_registered_model(name).aliases
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        version = aliases.get(CHAMPION)
        return int(version) if version is not None else None


def _versions_text(client: MlflowClient, name: str) -> str:
    """``1 (champion), 2`` for an error message, or the registered model names."""
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        names = sorted(model.name for model in client.search_registered_models())
        known = ", ".join(names) if names else "none yet (run `hamrisk train`)"
        return f"there is no registered model {name!r}; registered models: {known}"
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    versions = sorted(
        (int(v.version) for v in client.search_model_versions(f"name='{name}'")), reverse=True
    )
    if not versions:
        return f"model {name!r} has no versions yet"
    listed = [
        f"{v} ({', '.join(sorted(by_version[str(v)]))})" if str(v) in by_version else str(v)
        for v in versions
    ]
    return f"versions of {name!r}: " + ", ".join(listed)


def _missing_version(client: MlflowClient, uri: str) -> HamriskError | None:
    """An error listing the versions that exist when ``uri`` names none, else ``None``."""
    if not uri.startswith("models:/"):
        return None
    ref = uri[len("models:/") :].strip("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        lookup = lambda: client.get_model_version_by_alias(name, alias)  # noqa: E731
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
        if version == "latest":
            lookup = lambda: client.get_latest_versions(name)[0]  # noqa: E731
        else:
            lookup = lambda: client.get_model_version(name, version)  # noqa: E731
    else:
        return None  # a logged model id (models:/m-...): MLflow reports it itself
    try:
        lookup()
    except (MlflowException, IndexError) as exc:
        if isinstance(exc, MlflowException) and exc.error_code not in (
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
        ):
            raise
        return HamriskError(f"{uri}: no such model version; {_versions_text(client, name)}")
    return None


def load_risk_model(uri: str) -> mlflow.pyfunc.PyFuncModel:
    """Load a registered or logged model, e.g. ``models:/hamstring-reinjury@champion``.

    Raises:
        HamriskError: the URI names no existing version (the message lists those that do),
            or the store cannot be reached.
    """
    with connect() as client:
        missing = _missing_version(client, uri)
        if missing is not None:
            raise missing
        return mlflow.pyfunc.load_model(uri)


def list_versions(name: str) -> pd.DataFrame:
    """Every version of ``name``: aliases, creation time, run and key held-out metrics.

    Returns:
        Columns ``version, aliases, created, run_id`` and ``KEY_METRICS``, newest first;
        empty when the model has no versions.
    """
    columns = ["version", "kind", "aliases", "created", "run_id", *KEY_METRICS]
    with connect() as client:
        try:
            aliases = client.get_registered_model(name).aliases
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return pd.DataFrame(columns=columns)
            raise
        rows = []
        for found in client.search_model_versions(f"name='{name}'"):
            run_metrics = client.get_run(found.run_id).data.metrics if found.run_id else {}
            rows.append(
                {
                    "version": int(found.version),
                    "kind": (found.tags or {}).get(KIND_TAG, "trained"),
                    "aliases": ", ".join(
                        sorted(a for a, v in aliases.items() if str(v) == str(found.version))
                    ),
                    "created": pd.Timestamp(found.creation_timestamp, unit="ms", tz="UTC"),
                    "run_id": found.run_id,
                    **{key: run_metrics.get(key, np.nan) for key in KEY_METRICS},
                }
            )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("version", ascending=False, ignore_index=True)


def version_metrics(name: str, version: int) -> dict[str, float]:
    """The held-out metrics logged by the run behind ``version`` of ``name``."""
    with connect() as client:
        missing = _missing_version(client, f"models:/{name}/{version}")
        if missing is not None:
            raise missing
        run_id = client.get_model_version(name, str(version)).run_id
        return dict(client.get_run(run_id).data.metrics) if run_id else {}


def promote(name: str, version: int, gates: GatesConfig) -> PromotionDecision:
    """Move ``champion`` to ``version`` by hand; the gates are checked and reported, not enforced.

    Raises:
        HamriskError: the version does not exist (the message lists those that do).
    """
    with connect():
        checked = decide_promotion(version_metrics(name, version), None, gates)
        set_alias(name, version, CHAMPION)
    if checked.alias == CHAMPION:
        reasons = [f"moved by hand; version {version} {checked.reasons[0]}"]
    else:
        reasons = [f"moved by hand although {reason}" for reason in checked.reasons]
    return PromotionDecision(CHAMPION, reasons, checked.gates)


# --- which registered version a URI names (scoring records it on every prediction) ----------


def resolve_model_version(uri: str) -> tuple[str, str]:
    """``(model name, version)`` that ``uri`` points at now.

    ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` (or ``/latest``) resolve through the
    registry; any other URI (``runs:/...``, a folder) has no registered name, so the URI
    itself is the name and the logging run id, when MLflow knows it, the version.

    Raises:
        HamriskError: the URI names no existing version (the message lists those that do).
    """
    with connect() as client:
        missing = _missing_version(client, uri)
        if missing is not None:
            raise missing
        ref = uri[len("models:/") :].strip("/") if uri.startswith("models:/") else ""
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        if "/" in ref:
            name, version = ref.rsplit("/", 1)
            if version == "latest":
                version = str(max(int(v.version) for v in client.get_latest_versions(name)))
            return name, str(int(version))
        info = mlflow.models.get_model_info(uri)
        return uri, info.run_id or ""
