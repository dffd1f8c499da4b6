"""Scoring stage: validated cohort -> index episodes -> features -> risk, band and top factors.

``score_episodes`` is the statistics on one cohort (or one chunk of athletes): pure apart
from the model it is handed. ``run_scoring`` is the edge a scheduler calls: it validates
the cohort, takes a lock on the output, scores athletes chunk by chunk, writes the
predictions file through ``pipeline.predictions`` (atomically: complete or not at all) and
writes the set-aside records.

Exit codes (``ScoringSummary.exit_code`` and the errors below): 0 every record scored,
1 scored with some records set aside, 2 unusable input, model URI or output,
3 the output is locked by another run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute

from features.catalog import FEATURES_BY_NAME, FeatureSpec
from models.explain import top_factors
from models.served import model_description
from pipeline.cohort import Cohort
from pipeline.config import RiskBandsConfig, ScoreConfig
from pipeline.curve import curve_columns
from pipeline.episodes import index_episodes
from pipeline.errors import HamriskError
from pipeline.io import remove_stale_temporaries
from pipeline.model_cache import RegisteredModel, load_model, resolve
from pipeline.predictions import (
    CURVE_COLUMNS,
    CURVE_HORIZONS,
    SCORED_COLUMNS,
    TEMP_SUFFIX,
    empty_predictions,
    predictions_columns,
    predictions_schema,
    read_predictions,
    write_predictions,
)
from pipeline.predictions import output_format as _file_format
from pipeline.validate import ValidationResult, validate_cohort, write_rejects


class OutputError(HamriskError):
    """The predictions file cannot be written, or an existing one cannot be appended to."""

    exit_code = 2


class LockedError(HamriskError):
    """Another run holds the lock on the output for longer than we are willing to wait."""

    exit_code = 3


# --- the stage ------------------------------------------------------------------------------


class _Columns(dict[str, np.ndarray]):
    """A feature frame's columns as object arrays, converted on first use."""

    def __init__(self, features: pd.DataFrame) -> None:
        super().__init__()
        self._features = features

    def __missing__(self, name: str) -> np.ndarray:
        self[name] = self._features[name].to_numpy(dtype=object)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._features.columns)

    def __len__(self) -> int:
        return len(self._features.columns)


def factors_text(features: pd.DataFrame, contributions: pd.DataFrame, k: int = 3) -> np.ndarray:
    """Per row, the ``k`` largest contributions in words, largest first:
    ``"knee flexors 82% of the other side at the last strength session (raises risk); ..."``.

    Features that do not move the risk at all (contribution 0) are left out. A feature's
    phrase is fixed by its value and its declared context columns, so each distinct one is
    said once per batch: ages, counts, grades and categories repeat a lot.
    """
    chosen = top_factors(contributions, k)
    n, k = chosen.names.shape
    columns = _Columns(features)
    words = np.empty((n, k), dtype=object)
    for rank in range(k):
        names = chosen.names[:, rank]
        for name in pd.unique(names):
            rows = np.flatnonzero(names == name)
            spec = FEATURES_BY_NAME[name]
            context = {c: columns[c][rows] for c in spec.context}
            words[rows, rank] = _say(spec, columns[name][rows], context)
    # The contribution is on the log-odds scale: its sign is the direction. Joined column
    # by column, as whole arrays: a Python join per row costs more than the phrases.
    text = np.full(n, "", dtype=object)
    for rank in range(k):
        value = chosen.values[:, rank]
        direction = np.where(value > 0, " (raises risk)", " (lowers risk)").astype(object)
        joined = text + np.where(text == "", "", "; ").astype(object) + words[:, rank] + direction
        text = np.where(value != 0, joined, text)
    return text


def _say(spec: FeatureSpec, values: np.ndarray, context: dict[str, np.ndarray]) -> np.ndarray:
    """``spec``'s phrase for each value (an object array), each distinct one said once.

    A signed zero is said as zero: 0.0 and -0.0 are one value here.
    """
    said = np.full(len(values), spec.missing, dtype=object)
    present = np.flatnonzero(~pd.isna(values))
    if not context:
        codes, distinct = pd.factorize(values[present])
        phrases = [spec.phrase(v + 0.0 if isinstance(v, float) else v) for v in distinct]
        said[present] = np.asarray(phrases, dtype=object)[codes]
        return said
    # Keys hold None for a missing context value: pd.NA refuses comparison.
    keys = [np.where(pd.isna(column), None, column) for column in context.values()]
    memo: dict[tuple[Any, ...], str] = {}
    for i in present:
        row = {c: column[i] for c, column in context.items()}
        value = values[i] + 0.0 if isinstance(values[i], float) else values[i]
        key = (value, *(k[i] for k in keys))
        phrase = memo.get(key)
        if phrase is None:
            phrase = memo[key] = spec.phrase(value, row)
        said[i] = phrase
    return said


def score_episodes(
    cohort: Cohort,
    model: RegisteredModel,
    *,
    as_of: dt.date,
    bands: RiskBandsConfig,
    scored_at: pd.Timestamp,
    n_factors: int = 3,
) -> pd.DataFrame:
    """Score every index episode of ``cohort`` as known on ``as_of``.

    An episode without a return to sport by ``as_of`` is scored as of ``as_of`` and marked
    ``provisional``. Episodes and features are built as the model's feature definition
    says (its outcome window, settings and columns, not today's ``configs/features.yaml``)
    by the same functions training used, and risk and interval come from the registered
    model's own ``RiskModel`` (what its pyfunc serves) or its compact form, which gives the
    same numbers to the bit, so scoring cannot drift from training or serving.

    Args:
        cohort: the validated cohort, or the records of some of its athletes.
        model: the loaded model with its registered name and version.
        as_of: the date the predictions speak for.
        bands: risk band thresholds as multiples of the model's base rate.
        scored_at: the run's timestamp (UTC), the same on every row of a run.
        n_factors: how many top factors to put into words.

    Returns:
        A frame valid under ``pipeline.predictions.predictions_schema()``, one row per
        episode, in the order of ``index_episodes`` (athlete, injury date, injury id).

    Raises:
        FeatureDefinitionError: the code no longer builds the model's features as it was
            trained on them.
    """
    model.check_features()
    episodes = index_episodes(cohort, as_of, model.definition.config.outcome)
    if episodes.empty:
        return empty_predictions()
    # Only the columns the model was fitted on, with its settings: a registry that has
    # grown since is not an input of this version.
    features = model.feature_frame(cohort, episodes)
    risk_model = model.risk_model
    # The method the pyfunc's predict calls for risk and interval, with the contributions
    # from the same pass.
    assessed = risk_model.assess(features)
    risk = assessed.risk
    curve = curve_frame(
        risk_model, features, assessed.risk, assessed.risk_ci_low, assessed.risk_ci_high
    )
    frame = pd.DataFrame(
        {
            "injury_id": episodes["injury_id"].astype(str).to_numpy(),
            "athlete_id": episodes["athlete_id"].astype(str).to_numpy(),
            "clinic_id": episodes["clinic_id"].astype(str).to_numpy(),
            "prediction_time": episodes["prediction_time"].astype("datetime64[ns]").to_numpy(),
            "provisional": episodes["provisional"].to_numpy(dtype=bool),
            "risk": risk,
            "risk_ci_low": assessed.risk_ci_low,
            "risk_ci_high": assessed.risk_ci_high,
            **{c: curve[c].to_numpy() for c in CURVE_COLUMNS},
            "risk_band": bands.band(risk, risk_model.base_rate_),
            "top_factors": factors_text(features, assessed.contributions, n_factors),
            "model_name": model.name,
            "model_version": model.version,
            "scored_at": pd.Series(scored_at, index=range(len(episodes))).astype(
                "datetime64[ns, UTC]"
            ),
        },
        columns=list(SCORED_COLUMNS),
    )
    for column in ("injury_id", "athlete_id", "clinic_id", "risk_band", "model_name"):
        frame[column] = frame[column].astype(str)
    frame["model_version"] = frame["model_version"].astype(str)
    return predictions_schema(predictions_columns(frame)).validate(frame)


def curve_frame(
    risk_model: Any, features: pd.DataFrame, risk: Any, low: Any, high: Any
) -> pd.DataFrame:
    """The predictions file's curve columns (``pipeline.schemas.CURVE_COLUMNS``), as the
    pyfunc gives them (:func:`pipeline.curve.curve_columns`).

    Raises:
        OutputError: the model's horizons are not the ones a predictions file carries.
    """
    # The timing's own bootstrap interval would predict the timing once per member: on
    # 100,000 episodes that took longer than the whole risk and interval (measured), so
    # scored files carry each horizon's interval from the one-year interval alone.
    curve = curve_columns(risk_model, features, risk, low, high, timing_interval=False)
    missing = [c for c in CURVE_COLUMNS if c not in curve.columns]
    if missing:
        horizons = [c.removeprefix("risk_").removesuffix("d") for c in curve.columns[::3]][:-1]
        raise OutputError(
            f"the model reports its curve at {', '.join(horizons)} days, but a predictions "
            f"file carries {', '.join(map(str, CURVE_HORIZONS))} days (column {missing[0]})"
        )
    return curve


# --- chunks of athletes ---------------------------------------------------------------------


def athlete_chunks(cohort: Cohort, chunk_episodes: int) -> list[np.ndarray]:
    """Athletes with an index episode, in id order, grouped so a chunk holds about
    ``chunk_episodes`` episodes; an athlete is never split (features need the whole history).
    """
    treated = _treated(cohort)
    counts = cohort.injuries.loc[treated.to_numpy(dtype=bool), "athlete_id"].astype(str)
    per_athlete = counts.value_counts().sort_index()
    if per_athlete.empty:
        return []
    # A chunk closes once it reaches the size, so no chunk exceeds it by more than one
    # athlete's episodes.
    before = np.cumsum(per_athlete.to_numpy()) - per_athlete.to_numpy()
    chunk = before // max(chunk_episodes, 1)
    ids = per_athlete.index.to_numpy(dtype=object)
    return [ids[chunk == k] for k in np.unique(chunk)]


def _split_cohort(cohort: Cohort, chunks: list[np.ndarray]) -> Iterator[Cohort]:
    """Each chunk's records, table by table.

    A table whose rows already come athlete by athlete in chunk order (an export sorted by
    athlete id) is cut into slices without copying; any other is put in chunk order once,
    by one stable sort. Rows of athletes without an index episode belong to no chunk; in
    a sorted table they may ride along in a slice, where nothing reads them (episodes and
    features are built per athlete).
    """
    ids = pa.array(np.concatenate(chunks) if chunks else [], type=pa.large_string())
    chunk_of = np.repeat(np.arange(len(chunks)), [len(c) for c in chunks])

    def codes(keys: pd.Series, value_set: pa.Array, code_of: np.ndarray) -> np.ndarray:
        found = pa_compute.index_in(_as_arrow(keys), value_set=value_set)
        position = found.fill_null(-1).to_numpy(zero_copy_only=False)
        return np.where(position >= 0, code_of[position], -1)

    injury_codes = codes(cohort.injuries["athlete_id"], ids, chunk_of)
    owner_codes = {
        "athletes": codes(cohort.athletes["athlete_id"], ids, chunk_of),
        "injuries": injury_codes,
        "strength_tests": codes(cohort.strength_tests["athlete_id"], ids, chunk_of),
        # Validation leaves injury ids unique, so an episode's injury names one athlete.
        "return_to_run": codes(
            cohort.return_to_run["injury_id"],
            _as_arrow(cohort.injuries["injury_id"]),
            injury_codes,
        ),
        "follow_up": codes(cohort.follow_up["athlete_id"], ids, chunk_of),
    }
    cuts: dict[str, tuple[np.ndarray | None, np.ndarray]] = {}
    for table, code in owner_codes.items():
        owned = code[code >= 0]
        if np.all(owned[1:] >= owned[:-1]):
            # Chunk k starts at its first row, and runs up to where chunk k+1 starts.
            starts = np.searchsorted(np.maximum.accumulate(code), np.arange(len(chunks) + 1))
            cuts[table] = (None, starts)
        else:
            key = np.where(code >= 0, code, len(chunks))
            order = np.argsort(key, kind="stable")  # keeps the file's order within a chunk
            cuts[table] = (order, np.searchsorted(key[order], np.arange(len(chunks) + 1)))
    for k in range(len(chunks)):
        parts = {}
        for table, (order, bounds) in cuts.items():
            frame = getattr(cohort, table)
            if order is None:
                part = frame.iloc[bounds[k] : bounds[k + 1]]
            else:
                part = frame.iloc[order[bounds[k] : bounds[k + 1]]]
            parts[table] = part.reset_index(drop=True)
        yield Cohort(**parts)


def _as_arrow(keys: pd.Series) -> pa.Array:
    return pa.array(keys.astype("string"), type=pa.large_string())


# --- the edge -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringSummary:
    """What ``hamrisk score`` reports."""

    out: Path
    rejects: Path
    model_name: str
    model_version: str
    as_of: dt.date
    scored: int
    provisional: int
    written: int
    kept: int
    validation: ValidationResult
    # literature (published effects only), updated or trained: see models.served.
    model_kind: str = "trained"

    @property
    def set_aside(self) -> int:
        """Records set aside by validation, over all tables."""
        return sum(c.set_aside for c in self.validation.counts.values())

    @property
    def exit_code(self) -> int:
        """0 when every record was usable, 1 when some were set aside."""
        return self.validation.exit_code


def default_rejects_path(out: Path) -> Path:
    """``predictions.csv`` -> ``predictions.rejects.csv`` beside it."""
    return out.with_name(f"{out.stem}.rejects.csv")


def output_format(out: Path) -> str:
    """``.csv`` or ``.parquet`` from the file name.

    Raises:
        OutputError: any other extension.
    """
    suffix = _file_format(out)
    if not suffix:
        raise OutputError(
            f"{out}: the predictions file must end in .csv or .parquet "
            f"(got {out.suffix.lower() or 'none'})"
        )
    return suffix


def run_scoring(
    folder: Path | str,
    out: Path | str,
    *,
    model: RegisteredModel | str,
    config: ScoreConfig,
    as_of: dt.date | None = None,
    today: dt.date | None = None,
    rejects: Path | str | None = None,
    only_new: bool = False,
    lock_timeout: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScoringSummary:
    """Validate ``folder``, score every index episode and write ``out`` atomically.

    Args:
        folder: the cohort folder.
        out: the predictions file, ``.csv`` or ``.parquet``.
        model: a loaded model, or a model URI to load.
        config: ``configs/score.yaml``.
        as_of: the date predictions speak for (default: ``today``).
        today: the run's date for validation (default: the clock's date).
        rejects: where set-aside records go (default: ``OUT.rejects.csv`` beside ``out``).
        only_new: keep ``out`` and add only episodes it lacks for this model version.
        lock_timeout: seconds to wait for another run's lock (default: from config).
        progress: called with (episodes done, episodes in total) after each chunk.

    Raises:
        UnusableInputError: the cohort cannot be read.
        HamriskError: the model URI names no version (exit code 2), or the code no longer
            builds the model's features as it was trained on them.
        OutputError: the output cannot be written or appended to.
        PredictionsFileError: with ``only_new``, the existing file breaks the contract.
        LockedError: another run held the lock for longer than ``lock_timeout``.
    """
    from filelock import FileLock, Timeout

    out, folder = Path(out), Path(folder)
    output_format(out)  # a wrong extension fails before any work
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(out)
    today = today or dt.date.today()
    as_of = as_of or today
    # A model URI is resolved now, so a wrong one fails before any reading, and loaded
    # after validation, whose text has gone back to the system by then: the model's
    # libraries do not add to the peak of reading a large cohort.
    pinned = resolve(model) if isinstance(model, str) else None
    timeout = config.lock_timeout_seconds if lock_timeout is None else lock_timeout
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{out}.lock", timeout=timeout)
        lock.acquire()
    except Timeout:
        raise LockedError(
            f"{out} is being written by another hamrisk score run (lock {out}.lock held for "
            f"more than {timeout:g} s); try again later or raise --lock-timeout"
        ) from None
    except OSError as exc:
        raise OutputError(f"{out}: cannot write here ({exc.strerror or exc})") from None
    try:
        remove_stale_temporaries(out, TEMP_SUFFIX)
        validation = validate_cohort(folder, today=today)
        if pinned is not None:
            model = load_model(pinned)
        existing = read_predictions(out) if only_new and out.exists() else None
        if existing is not None:
            _check_same_model(out, existing, model)
        summary = _score_and_write(validation, out, model, config, as_of, existing, progress)
        try:
            write_rejects(validation.set_aside, rejects_path)
        except OSError as exc:
            raise OutputError(
                f"{rejects_path}: cannot write rejects ({exc.strerror or exc})"
            ) from None
    finally:
        lock.release()
    return ScoringSummary(
        out=out,
        rejects=rejects_path,
        model_name=model.name,
        model_version=model.version,
        as_of=as_of,
        validation=validation,
        model_kind=model.kind,
        **summary,
    )


def _score_and_write(
    validation: ValidationResult,
    out: Path,
    model: RegisteredModel,
    config: ScoreConfig,
    as_of: dt.date,
    existing: pd.DataFrame | None,
    progress: Callable[[int, int], None] | None,
) -> dict[str, int]:
    cohort = validation.cohort
    chunks = athlete_chunks(cohort, config.chunk_episodes)
    total = _episodes_in(cohort)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    already = (
        set(existing.loc[existing["model_version"] == model.version, "injury_id"])
        if existing is not None
        else set()
    )
    counts = {"scored": 0, "provisional": 0, "written": 0, "kept": 0}
    try:
        with write_predictions(out) as writer:
            if existing is not None:
                writer.write(existing)
                counts["kept"] = len(existing)
            done = 0
            for part in _split_cohort(cohort, chunks):
                predictions = score_episodes(
                    part,
                    model,
                    as_of=as_of,
                    bands=config.bands,
                    scored_at=scored_at,
                    n_factors=config.top_factors,
                )
                counts["scored"] += len(predictions)
                counts["provisional"] += int(predictions["provisional"].sum())
                if already:
                    predictions = predictions[~predictions["injury_id"].isin(already)]
                writer.write(predictions)
                counts["written"] += len(predictions)
                done += _episodes_in(part)
                if progress is not None:
                    progress(done, total)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write predictions ({exc.strerror or exc})") from None
    return counts


def _treated(cohort: Cohort) -> pd.Series:
    """Injuries with a return-to-run row, i.e. index episodes."""
    # A hash look-up through an Index: Series.isin on Arrow-backed strings falls back to a
    # Python loop over the values, seconds per million rows.
    known = pd.Index(cohort.return_to_run["injury_id"].astype(str)).unique()
    found = known.get_indexer(cohort.injuries["injury_id"].astype(str)) >= 0
    return pd.Series(found, index=cohort.injuries.index)


def _episodes_in(cohort: Cohort) -> int:
    return int(_treated(cohort).sum())


def _check_same_model(out: Path, existing: pd.DataFrame, model: RegisteredModel) -> None:
    names = sorted(set(existing["model_name"]) - {model.name})
    if names:
        raise OutputError(
            f"{out}: holds predictions of another model ({', '.join(names)}), not "
            f"{model.name}; --only-new appends to a file of the same model (hint: write to "
            "a new file)"
        )


def format_scoring(summary: ScoringSummary) -> str:
    """The summary a person or a log reads after a run."""
    lines = [
        f"model           {summary.model_name} version {summary.model_version}, "
        + model_description(summary.model_kind),
        f"as of           {summary.as_of.isoformat()}",
        f"episodes scored {summary.scored:>9,} ({summary.provisional:,} provisional: no return "
        "to sport yet)",
        f"rows written    {summary.written:>9,} new"
        + (f", {summary.kept:,} kept from the existing file" if summary.kept else ""),
        f"set aside       {summary.set_aside:>9,} record(s), listed in {summary.rejects}",
        f"predictions     {summary.out}",
    ]
    return "\n".join(lines)
