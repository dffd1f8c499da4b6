"""Outcome audits: were the stored predictions right, overall, per clinic, group and version?

``audit_outcomes`` is the stage: the current cohort, the stored predictions and the models'
reference distributions in, one aggregate report out; it reads no file. ``run_audit`` is
its edge: it reads the predictions files and the cohort, loads each audited version's
drift reference from the registry, writes ``report.html`` and ``report.json`` and, when
asked, logs the audit to MLflow.

Each prediction is matched by injury id to the episode's outcome as known on the audit
date (``pipeline.episodes``): recurred, no recurrence over the full window, pending or
censored. A provisional prediction (made before the return to sport) is judged once the
return to sport is on record, on the outcome window that starts there, with its features
rebuilt as the model saw them (as of the prediction, provisional); until then it is
pending. An episode scored both provisionally and at its return to sport is judged on the
latter. Only the first two are evaluable, and they are weighted by the inverse
probability of censoring (IPCW) estimated over every audited episode, pending and censored
ones included, so the metrics speak for all predictions as if each had been followed for
the whole window. Pending and censored episodes are never counted as non-recurrences.
Follow-up, the censoring-weight inputs and the censoring model's settings (the
``censoring`` section of configs/train.yaml) are the training run's own.

Development episodes are not new evidence. A model version records the salted
fingerprints of the episodes whose outcomes its development used; the audit reports those
episodes apart (``sample``: development / new) and bases every verdict on the new ones
only. A version without a recorded fingerprint (trained before it was logged, or from
another store) is judged on all its episodes, and the report says in-sample episodes
could not be told apart.

Verdicts (per model version, quarter, clinic and each ``--by`` group):

* *recalibration recommended* when the observed/expected ratio or the calibration slope
  is shown outside its tolerance: its interval, widened by Bonferroni over the two tests of
  every judged cell of the breakdown, lies wholly outside the tolerance. This is the rule
  the promotion gates use (``models.judgement.judge_interval``, tolerances in
  ``configs/train.yaml``, ``registry.gates``). The interval is the estimate ± z·SE, with
  the SE read off the bootstrap percentile interval (ln O/E for the ratio), because 200
  replicates estimate a standard error well but not the 0.1% quantiles a direct
  Bonferroni percentile interval would need.
* *too few outcomes yet* when no such miscalibration is shown and either the interval is
  too wide to judge (it reaches both the tolerance and beyond the decisive range), or fewer
  outcomes are known than needed for the O/E interval to reach the configured width (Riley
  et al. 2021, Stat Med 40:4230: SE(ln O/E) = sqrt((1 - phi) / (n phi)), phi the expected
  risk), or fewer than ``min_events`` recurrences or non-recurrences are known.
* *calibrated* otherwise.

The exit code speaks for the audited model versions: 1 when any needs recalibration, 0
when all are calibrated, 3 otherwise (too few outcomes).

Privacy: the report holds aggregates only. A cell with fewer than ``min_cell`` episodes is
suppressed: its label is shown, every count and metric of it is not.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import norm

from features import build_feature_frame
from models.drift import PSI_MODERATE, population_stability
from models.evaluation import calibration_curve, evaluate, net_benefit
from models.judgement import FAIL, NOT_ENOUGH, Tolerance, judge_interval
from models.kaplan_meier import horizon_calibration
from models.plots import calibration_figure, decision_curve_figure, incidence_figure
from pipeline.cohort import Cohort
from pipeline.config import AuditConfig, CensoringConfig, FeaturesConfig, GatesConfig
from pipeline.episodes import (
    EPISODE_COLUMNS,
    WeightDiagnostics,
    censoring_inputs,
    censoring_weights,
    in_development,
    index_episodes,
)
from pipeline.errors import HamriskError
from pipeline.io import atomic_file
from pipeline.predictions import AUDITED_COLUMNS, CURVE_HORIZONS, PredictionsFileError
from pipeline.predictions import read_predictions as read_predictions_file

STATUSES: tuple[str, ...] = ("recurred", "no_recurrence", "pending", "censored", "not_in_records")
CALIBRATED = "calibrated"
RECALIBRATE = "recalibration recommended"
TOO_FEW = "too few outcomes yet"
SUPPRESSED = "suppressed"
EXIT_CODES = {CALIBRATED: 0, RECALIBRATE: 1, TOO_FEW: 3}
METRICS: tuple[str, ...] = (
    "observed_expected",
    "calibration_intercept",
    "calibration_slope",
    "auc",
    "brier",
)
DEVELOPMENT = "development"
NEW = "new"
NO_FINGERPRINT = "new (no fingerprint recorded)"
SHOWN_ONLY = "shown, not judged"
_SAMPLE_NOTES = {
    DEVELOPMENT: "the model's development data: apparent performance, not evidence",
    NEW: "the episodes every verdict above is based on",
}
# Attributes of the athlete that a ``--by`` breakdown may name, besides ``clinic_id``.
ATHLETE_GROUPS: tuple[str, ...] = ("discipline", "level", "sex")
NOT_RECORDED = "not recorded"
_PREDICTION_OWN = ("clinic_id", "prediction_time", "provisional")


@dataclass(frozen=True)
class Audit:
    """One audit: the document behind report.json, its figures, and the overall verdict."""

    document: dict[str, Any]
    figures: dict[str, Figure] = field(repr=False)
    verdict: str
    exit_code: int


@dataclass(frozen=True)
class AuditRun:
    """What ``run_audit`` wrote."""

    audit: Audit
    html: Path
    json: Path
    run_id: str | None = None


# --- the predictions file (edge) -------------------------------------------------------------


def read_predictions(paths: Sequence[Path | str], model_name: str) -> pd.DataFrame:
    """Read stored predictions files for an audit of ``model_name``.

    Each file is read by ``pipeline.predictions.read_predictions`` needing only the
    columns an audit judges (``AUDITED_COLUMNS``), so predictions assembled outside
    ``hamrisk score`` can be audited too. A file without ``provisional`` is read as holding
    no provisional prediction (it cannot say otherwise), one without ``scored_at`` as not
    knowing when each row was scored.

    Returns:
        the rows of every file, ``provisional`` and ``scored_at`` always present.

    Raises:
        PredictionsFileError: a file is missing, unreadable, lacks a column, holds a value
            that breaks a rule (file, row, column, rule and value named), holds no rows,
            or holds predictions of another model than ``model_name``.
    """
    if not paths:
        raise PredictionsFileError("--predictions", "no predictions file given")
    frames = []
    for path in paths:
        frame = read_predictions_file(path, require=AUDITED_COLUMNS)
        if frame.empty:
            raise PredictionsFileError(path, "the predictions file holds no rows")
        other = (frame["model_name"] != model_name).to_numpy()
        if other.any():
            row = int(np.flatnonzero(other)[0])
            raise PredictionsFileError(
                path,
                f"row {row + 1}: predictions of model {frame['model_name'].iloc[row]!r}, but "
                f"this audit is of {model_name!r}",
                "audit each registered model separately (set model_name in configs/audit.yaml)",
            )
        if "provisional" not in frame.columns:
            frame["provisional"] = False
        if "scored_at" not in frame.columns:
            frame["scored_at"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
        # Files written before the curve was scored carry no curve: blank, not refused.
        for h in CURVE_HORIZONS:
            if f"risk_{h}d" not in frame.columns:
                frame[f"risk_{h}d"] = np.nan
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def audit_outcomes(
    cohort: Cohort,
    predictions: pd.DataFrame,
    *,
    as_of: dt.date | str | pd.Timestamp,
    config: AuditConfig,
    features_config: FeaturesConfig,
    by: Sequence[str] | None = None,
    min_cell: int | None = None,
    references: Mapping[str, Mapping[str, Any]] | None = None,
    censoring: CensoringConfig | None = None,
    development: Mapping[str, Mapping[str, Any] | None] | None = None,
    gates: GatesConfig | None = None,
) -> Audit:
    """Match stored predictions to the outcomes known on ``as_of`` and judge them.

    Args:
        cohort: the validated current records.
        predictions: rows as ``read_predictions`` returns them.
        as_of: the audit date.
        config: the audit settings; ``by`` and ``min_cell`` override theirs.
        features_config: the outcome window and the feature settings (for drift and the
            censoring covariates, rebuilt at each prediction's stored time).
        by: breakdowns besides overall, version and quarter (``clinic_id`` always).
        min_cell: the suppression threshold.
        references: per model version, the training reference of ``models.drift``.
        censoring: the censoring settings of configs/train.yaml (defaults when ``None``).
        gates: the calibration tolerances of configs/train.yaml, ``registry.gates``, the
            promotion gates' own (defaults when ``None``).
        development: per model version, its development fingerprint set
            (``pipeline.episodes.development_fingerprint``), ``None`` when not recorded.

    Returns:
        the audit; ``document`` holds only aggregates and is JSON-ready.

    Raises:
        HamriskError: ``by`` names an unknown group.
    """
    as_of = pd.Timestamp(as_of).normalize()
    by = tuple(dict.fromkeys(("clinic_id", *(config.by if by is None else by))))
    unknown = [name for name in by if name not in ("clinic_id", *ATHLETE_GROUPS)]
    if unknown:
        raise HamriskError(
            f"--by: unknown group(s) {', '.join(unknown)}; choose from clinic_id, "
            + ", ".join(ATHLETE_GROUPS)
        )
    min_cell = config.min_cell if min_cell is None else min_cell
    window = features_config.outcome.window_days

    censoring = censoring or CensoringConfig()
    rows = _match_outcomes(cohort, predictions, as_of, features_config)
    features = _rebuild_features(cohort, rows, features_config)
    rows["weight"] = _censoring_weights(rows, features, censoring, window)
    rows = rows.assign(**_group_labels(cohort, rows, by))
    rows["sample"] = _sample(rows, development or {})
    # Verdicts speak for new episodes: development ones would judge the model on its own data.
    judged = rows.loc[(rows["sample"] != DEVELOPMENT).to_numpy()].reset_index(drop=True)

    breakdowns = [
        breakdown_verdicts(
            "overall", judged.assign(overall="all"), "overall", config, min_cell, gates
        ),
        breakdown_verdicts("model_version", judged, "model_version", config, min_cell, gates),
        breakdown_verdicts("quarter", judged, "quarter", config, min_cell, gates),
        *(breakdown_verdicts(name, judged, name, config, min_cell, gates) for name in by),
    ]
    # Shown, never judged: apparent performance on development episodes next to new ones.
    samples = breakdown_verdicts("sample", rows, "sample", config, min_cell, gates)
    for cell in samples["cells"]:
        for key in ("verdict_interval", "outcomes_needed", "additional_outcomes_needed"):
            cell.pop(key, None)
        if not cell.get("suppressed"):
            cell["verdict"] = SHOWN_ONLY
            cell["reasons"] = [_SAMPLE_NOTES.get(cell["group"], _SAMPLE_NOTES[NEW])]
    samples["tests"] = 0
    versions = breakdowns[1]["cells"]
    verdict = _overall_verdict(versions)
    curves, figures = _curves(judged, config, min_cell)
    over_time, over_time_figure = time_scale_audit(judged, window, config.level, min_cell)
    if over_time_figure is not None:
        figures["risk_over_time"] = over_time_figure
    drift = _drift(rows, features, references or {}, config, min_cell)
    if drift:
        for version, found in drift.items():
            if found.get("most_shifted"):
                figures.setdefault(f"drift_v{version}", _drift_figure(found, version))
    document = {
        "audit": {
            "as_of": as_of.date().isoformat(),
            "model_name": str(predictions["model_name"].iloc[0]) if len(predictions) else None,
            "model_versions": sorted({str(v) for v in rows["model_version"]}, key=int),
            "window_days": window,
            "min_cell": min_cell,
            "n_boot": config.n_boot,
            "level": config.level,
            "alpha": config.alpha,
            "multiplicity": config.multiplicity,
            "oe_ci_width": config.oe_ci_width,
            "min_events": config.min_events,
            "thresholds": list(config.thresholds),
            "censoring": censoring.model_dump(mode="json"),
            "by": list(by),
        },
        "verdict": {
            "overall": verdict,
            "exit_code": EXIT_CODES[verdict],
            "by_version": {
                c["group"]: {"verdict": c["verdict"], "reasons": c.get("reasons", [])}
                for c in versions
            },
        },
        "outcomes": _suppress_counts(_status_counts(rows), min_cell),
        "in_sample": _in_sample(rows, development or {}, min_cell),
        "censoring_weights": _weight_summary(rows, min_cell),
        "breakdowns": [*breakdowns, samples],
        "calibration_curves": curves["calibration"],
        "decision_curves": curves["decision"],
        "risk_over_time": over_time,
        "drift": drift,
    }
    return Audit(_json_ready(document), figures, verdict, EXIT_CODES[verdict])


def _match_outcomes(
    cohort: Cohort, predictions: pd.DataFrame, as_of: pd.Timestamp, features: FeaturesConfig
) -> pd.DataFrame:
    """One row per (injury, model version) prediction with the outcome known on ``as_of``.

    A version that scored an episode twice (provisionally, then at its return to sport)
    is audited on its prediction at the return to sport, else its latest: one episode,
    one outcome, one vote. The outcome window starts at the return to sport on record, so
    a provisional prediction is judged only once that is known (until then it is pending).
    """
    final = ~predictions["provisional"].to_numpy(dtype=bool)
    latest = predictions.assign(_final=final).sort_values(
        ["_final", "prediction_time", "scored_at"], kind="stable"
    )
    latest = latest.drop_duplicates(["injury_id", "model_version"], keep="last")
    latest = latest.drop(columns="_final")
    episodes = index_episodes(cohort, as_of, features.outcome)
    matched = latest.drop(columns=["athlete_id"]).merge(
        # The stored prediction time, clinic and provisional flag stay the prediction's own.
        episodes[[c for c in EPISODE_COLUMNS if c not in _PREDICTION_OWN]],
        on="injury_id",
        how="left",
        validate="many_to_one",
    )
    in_records = matched["status"].notna().to_numpy()
    matched["athlete_id"] = (
        matched["athlete_id"]
        .astype("string")
        .fillna(latest["athlete_id"].astype("string").reset_index(drop=True))
    )
    matched["status"] = matched["status"].astype("string").fillna("not_in_records")
    matched["in_records"] = in_records
    quarter = matched["prediction_time"].dt.to_period("Q").astype("string")
    matched["quarter"] = quarter
    return matched.reset_index(drop=True)


def _rebuild_features(cohort: Cohort, rows: pd.DataFrame, config: FeaturesConfig) -> pd.DataFrame:
    """Features of the matched rows as the model saw them: as known at each stored
    prediction time, and provisional where the prediction was (no return to sport then,
    so no rehabilitation duration), whatever the records say since."""
    known = rows.loc[rows["in_records"]].reset_index(drop=True)
    episodes = known[
        ["injury_id", "athlete_id", "side", "injury_date", "prediction_time", "provisional"]
    ].astype({"provisional": bool})
    frame = build_feature_frame(cohort, episodes, config)
    return frame.reset_index(drop=True).set_axis(np.flatnonzero(rows["in_records"].to_numpy()))


def _censoring_weights(
    rows: pd.DataFrame, features: pd.DataFrame, censoring: CensoringConfig, window: int
) -> np.ndarray:
    """IPCW weights of the evaluable rows (0 for pending, censored and unmatched ones).

    The inputs come from ``pipeline.episodes.censoring_inputs``, as in training.
    """
    weights = np.zeros(len(rows))
    known = rows["in_records"].to_numpy(dtype=bool)
    if not known.any():
        return weights
    positions = np.flatnonzero(known)
    inputs = censoring_inputs(
        rows.iloc[positions].reset_index(drop=True),
        features.loc[positions].reset_index(drop=True),
        censoring,
    )
    weights[known] = censoring_weights(inputs, window, censoring)
    # Only recurrences and full-window non-recurrences are evaluable (belt and braces:
    # ipcw_weights already gives 0 to every unknown outcome).
    evaluable = rows["status"].isin(["recurred", "no_recurrence"]).to_numpy(dtype=bool)
    return np.where(evaluable, weights, 0.0)


def _sample(rows: pd.DataFrame, development: Mapping[str, Mapping[str, Any] | None]) -> np.ndarray:
    """``development``, ``new``, or new without a fingerprint to tell, per row."""
    sample = np.full(len(rows), NO_FINGERPRINT, dtype=object)
    versions = rows["model_version"].astype(str).to_numpy()
    for version in np.unique(versions):
        fingerprint = development.get(str(version))
        if not fingerprint:
            continue
        mine = np.flatnonzero(versions == version)
        part = rows.iloc[mine]
        seen = in_development(part, fingerprint) & part["in_records"].to_numpy(dtype=bool)
        sample[mine] = np.where(seen, DEVELOPMENT, NEW)
    return sample


def _in_sample(
    rows: pd.DataFrame, development: Mapping[str, Mapping[str, Any] | None], min_cell: int
) -> dict[str, Any]:
    """Per version: whether a fingerprint was recorded, and development / new episode counts."""
    by_version: dict[str, Any] = {}
    for version in sorted({str(v) for v in rows["model_version"]}, key=int):
        part = rows.loc[(rows["model_version"].astype(str) == version).to_numpy()]
        recorded = bool(development.get(version))
        entry: dict[str, Any] = {"fingerprint_recorded": recorded}
        if recorded:
            dev = int((part["sample"] == DEVELOPMENT).sum())
            entry["development_episodes"] = _count_or_suppressed(dev, min_cell)
            entry["new_episodes"] = _count_or_suppressed(len(part) - dev, min_cell)
            entry["note"] = "verdict on new episodes only; development episodes shown apart"
        else:
            entry["note"] = (
                "no development fingerprint recorded with this version: in-sample episodes "
                "cannot be told apart, all are judged as new"
            )
        by_version[version] = entry
    return {"verdict_on": "new episodes only", "by_version": by_version}


def _count_or_suppressed(count: int, min_cell: int) -> int | str:
    return count if count == 0 or count >= min_cell else f"{SUPPRESSED} (< {min_cell})"


def _weight_summary(rows: pd.DataFrame, min_cell: int) -> dict[str, Any]:
    """Largest censoring weight and Kish's effective sample size over the audited rows."""
    diagnostics = WeightDiagnostics.of(rows["weight"].to_numpy())
    if diagnostics.known < min_cell:
        return {"suppressed": f"{SUPPRESSED} (< {min_cell})"}
    return {
        "known_outcomes": diagnostics.known,
        "max_weight": diagnostics.max_weight,
        "effective_sample_size": diagnostics.effective_sample_size,
        "follow_up_from_records": int(
            rows["follow_up_from_records"].astype("boolean").fillna(False).sum()
        ),
    }


def _group_labels(cohort: Cohort, rows: pd.DataFrame, by: Sequence[str]) -> dict[str, Any]:
    athletes = cohort.athletes.drop_duplicates("athlete_id").set_index("athlete_id")
    labels: dict[str, Any] = {
        "clinic_id": rows["clinic_id"].astype("string").fillna(NOT_RECORDED).to_numpy()
    }
    for name in by:
        if name in ATHLETE_GROUPS:
            values = athletes[name].astype("string").reindex(rows["athlete_id"].astype("string"))
            labels[name] = values.fillna(NOT_RECORDED).to_numpy()
    return labels


def _status_counts(rows: pd.DataFrame) -> dict[str, int]:
    counts = rows["status"].value_counts()
    out = {status: int(counts.get(status, 0)) for status in STATUSES}
    out["total"] = len(rows)
    out["evaluable"] = out["recurred"] + out["no_recurrence"]
    return out


def _suppress_counts(counts: dict[str, int], min_cell: int) -> dict[str, Any]:
    if counts["total"] < min_cell:
        return {"suppressed": f"{SUPPRESSED} (< {min_cell})"}
    return counts


def breakdown_verdicts(
    name: str,
    rows: pd.DataFrame,
    column: str,
    config: AuditConfig,
    min_cell: int,
    gates: GatesConfig | None = None,
) -> dict[str, Any]:
    """Counts, metrics with CIs and a verdict for each value of ``column``."""
    cells = []
    keys = rows[column].astype("string")
    ordered = sorted(keys.unique(), key=_sort_key)
    for offset, group in enumerate(ordered):
        part = rows.loc[(keys == group).to_numpy()]
        cell: dict[str, Any] = {"group": str(group)}
        if len(part) < min_cell:
            cell.update(suppressed=True, n=f"{SUPPRESSED} (< {min_cell})", verdict=SUPPRESSED)
            cells.append(cell)
            continue
        y = part["label"].to_numpy(dtype=np.float64)
        w = part["weight"].to_numpy()
        p = part["risk"].to_numpy()
        known = w > 0
        events = int(np.sum(y[known] == 1))
        non_events = int(np.sum(y[known] == 0))
        cell.update(
            suppressed=False,
            n=len(part),
            counts=_status_counts(part),
            expected_risk=float(p.mean()),
            metrics={},
        )
        if events and non_events:
            results = evaluate(
                y,
                p,
                w,
                groups=part["athlete_id"].astype(str).to_numpy(),
                n_boot=config.n_boot,
                random_state=config.random_state + offset,
                level=config.level,
                metrics=list(METRICS),
            )
            cell["metrics"] = {
                m: {"estimate": est, "low": low, "high": high}
                for m, (est, low, high) in results.items()
            }
        cell["_events"] = (events, non_events)
        cells.append(cell)
    judged = [c for c in cells if not c["suppressed"] and min(c["_events"]) >= config.min_events]
    tests = max(2 * len(judged), 1) if config.multiplicity == "bonferroni" else 1
    for cell in cells:
        if not cell["suppressed"]:
            cell.update(_verdict(cell, config, tests, gates or GatesConfig()))
            del cell["_events"]
    return {"by": name, "tests": tests, "cells": cells}


def _sort_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _verdict(
    cell: dict[str, Any], config: AuditConfig, tests: int, gates: GatesConfig
) -> dict[str, Any]:
    """The cell's verdict, its reasons and, when too few, how many outcomes are still needed."""
    events, non_events = cell["_events"]
    known = events + non_events
    phi = min(max(cell["expected_risk"], 1e-3), 1 - 1e-3)
    z_ci = norm.ppf(0.5 + config.level / 2)
    half = config.oe_ci_width / 2
    se_target = (math.log(1 + half) - math.log(max(1 - half, 1e-6))) / (2 * z_ci)
    needed = math.ceil((1 - phi) / (phi * se_target**2))
    needed = max(
        needed, math.ceil(config.min_events / phi), math.ceil(config.min_events / (1 - phi))
    )
    z = norm.ppf(1 - config.alpha / (2 * tests))
    reasons: list[str] = []
    unjudged: list[str] = []
    intervals: dict[str, list[float]] = {}
    if min(events, non_events) >= config.min_events and cell["metrics"]:
        for metric, log_scale in (("observed_expected", True), ("calibration_slope", False)):
            found = cell["metrics"][metric]
            est, low, high = found["estimate"], found["low"], found["high"]
            rule = Tolerance.of(getattr(gates, metric))
            if not all(np.isfinite([est, low, high])) or (log_scale and min(est, low) <= 0):
                unjudged.append(judge_interval(math.nan, math.nan, math.nan, rule, metric).reason)
                continue
            f = np.log if log_scale else (lambda v: v)
            inv = np.exp if log_scale else (lambda v: v)
            se = (f(high) - f(low)) / (2 * z_ci)
            lo, hi = float(inv(f(est) - z * se)), float(inv(f(est) + z * se))
            intervals[metric] = [lo, hi]
            judged = judge_interval(est, lo, hi, rule, metric)
            if judged.verdict == FAIL:
                reasons.append(_reason(metric, est, lo, hi, rule.tolerance))
            elif judged.verdict == NOT_ENOUGH:
                unjudged.append(judged.reason)
    out: dict[str, Any] = {"verdict_interval": intervals, "outcomes_needed": needed}
    if reasons:
        return {**out, "verdict": RECALIBRATE, "reasons": reasons}
    if known < needed or min(events, non_events) < config.min_events or unjudged:
        more = max(needed - known, 0)
        more = max(
            more,
            math.ceil((config.min_events - events) / phi) if events < config.min_events else 0,
            math.ceil((config.min_events - non_events) / (1 - phi))
            if non_events < config.min_events
            else 0,
        )
        text = (
            f"{known} known outcomes; about {more} more (some {math.ceil(more * phi)} "
            f"recurrences) are needed for an O/E interval {config.oe_ci_width:g} wide"
        )
        return {
            **out,
            "verdict": TOO_FEW,
            "additional_outcomes_needed": more,
            "reasons": ([text] if more else []) + unjudged,
        }
    return {**out, "verdict": CALIBRATED, "reasons": []}


def _reason(metric: str, est: float, lo: float, hi: float, tolerance: tuple[float, float]) -> str:
    span = f"outside the tolerance {tolerance[0]:g}-{tolerance[1]:g}"
    if metric == "observed_expected":
        direction = (
            "fewer recurrences than predicted: risks too high"
            if hi < 1
            else "more recurrences than predicted: risks too low"
        )
        return f"O/E {est:.2f} (adjusted interval {lo:.2f}-{hi:.2f}) lies {span}, {direction}"
    direction = "predictions too extreme (overfitted)" if hi < 1 else "predictions too moderate"
    return f"slope {est:.2f} (adjusted interval {lo:.2f}-{hi:.2f}) lies {span}, {direction}"


def _overall_verdict(versions: list[dict[str, Any]]) -> str:
    verdicts = [c["verdict"] for c in versions]
    if RECALIBRATE in verdicts:
        return RECALIBRATE
    if verdicts and all(v == CALIBRATED for v in verdicts):
        return CALIBRATED
    return TOO_FEW


def time_scale_audit(
    rows: pd.DataFrame, window_days: float, level: float, min_cell: int
) -> tuple[dict[str, Any], Figure | None]:
    """Observed cumulative incidence (Kaplan–Meier) against the mean predicted curve.

    Over the judged episodes whose predictions carry a curve (files written before it was
    scored have none) and whose outcome is in the records: at each horizon, overall
    (``calibration``: O/E with the interval of the observed incidence,
    ``models.kaplan_meier.horizon_calibration``) and by the predictions' risk band
    (``by_band``, bands with fewer than ``min_cell`` episodes left out). Censoring: the
    Kaplan–Meier estimate treats losses to follow-up as independent of recurrence, the
    same assumption as the unweighted estimate; the one-year O/E of the metrics table is
    IPCW-weighted.
    """
    horizons = [*CURVE_HORIZONS, int(window_days)]
    # Rows handed over without curve columns (older predictions) have no curve.
    predicted = rows.reindex(columns=[*(f"risk_{h}d" for h in CURVE_HORIZONS), "risk"])
    predicted = predicted.to_numpy(dtype=np.float64, na_value=np.nan)
    usable = (
        np.isfinite(predicted).all(axis=1)
        & rows["in_records"].to_numpy(dtype=bool)
        & rows["followed_days"].notna().to_numpy()
    )
    document: dict[str, Any] = {
        "horizons_days": horizons,
        "episodes": int(usable.sum()),
        "episodes_without_curve": int((~np.isfinite(predicted).all(axis=1)).sum()),
        "calibration": [],
        "by_band": [],
    }
    if usable.sum() < max(min_cell, 1):
        return document, None
    part = rows.loc[usable]
    followed = part["followed_days"].to_numpy(dtype=np.float64)
    event = part["event_days"].to_numpy(dtype=np.float64)
    pred = predicted[usable]
    overall = horizon_calibration(followed, event, pred, horizons, level=level)
    band = part["risk_band"] if "risk_band" in part.columns else pd.Series(pd.NA, index=part.index)
    bands = band.astype("string").fillna("unbanded").to_numpy(dtype=object)
    counts = pd.Series(bands).value_counts()
    kept = np.isin(bands, counts.index[counts >= min_cell].to_numpy())
    figure = None
    if kept.any():
        by_band = horizon_calibration(
            followed[kept], event[kept], pred[kept], horizons, by=bands[kept], level=level
        )
        document["by_band"] = by_band.to_dict(orient="records")
        figure = incidence_figure(by_band, "Risk over time by risk band, new episodes")
    document["calibration"] = overall.drop(columns="group").to_dict(orient="records")
    return document, figure


def _curves(
    rows: pd.DataFrame, config: AuditConfig, min_cell: int
) -> tuple[dict[str, dict[str, Any]], dict[str, Figure]]:
    """Smoothed calibration and decision curves, overall and per version, with figures."""
    thresholds = np.linspace(*config.thresholds, 51)
    curves: dict[str, dict[str, Any]] = {"calibration": {}, "decision": {}}
    figures: dict[str, Figure] = {}
    parts = [("overall", "all model versions", rows)]
    versions = sorted(rows["model_version"].unique(), key=int)
    if len(versions) > 1:
        parts += [
            (f"v{v}", f"model version {v}", rows.loc[(rows["model_version"] == v).to_numpy()])
            for v in versions
        ]
    for key, title, part in parts:
        y = part["label"].to_numpy(dtype=np.float64)
        w = part["weight"].to_numpy()
        known = w > 0
        if len(part) < min_cell or min(np.sum(y[known] == 1), np.sum(y[known] == 0)) < (
            config.min_events
        ):
            continue
        p = part["risk"].to_numpy()
        groups = part["athlete_id"].astype(str).to_numpy()
        calibration = calibration_curve(
            y, p, w, groups=groups, n_boot=config.n_boot, random_state=config.random_state
        )
        decision = net_benefit(y, p, w, thresholds=thresholds)
        curves["calibration"][key] = calibration.to_dict(orient="list")
        curves["decision"][key] = decision.to_dict(orient="list")
        figures[f"calibration_{key}"] = calibration_figure(calibration, f"Calibration, {title}")
        figures[f"decision_{key}"] = decision_curve_figure(decision, f"Decision curve, {title}")
    return curves, figures


def _drift(
    rows: pd.DataFrame,
    features: pd.DataFrame,
    references: Mapping[str, Mapping[str, Any]],
    config: AuditConfig,
    min_cell: int,
) -> dict[str, dict[str, Any]]:
    """PSI per feature of each version's audited episodes against its training reference."""
    drift: dict[str, dict[str, Any]] = {}
    for version in sorted(rows["model_version"].unique(), key=int):
        reference = references.get(str(version))
        positions = np.flatnonzero(
            (rows["model_version"] == version).to_numpy() & rows["in_records"].to_numpy()
        )
        if reference is None:
            drift[str(version)] = {
                "available": False,
                "reason": "no training reference found (the version is not in this store)",
            }
            continue
        if positions.size < min_cell:
            drift[str(version)] = {
                "available": False,
                "reason": f"{SUPPRESSED} (< {min_cell} episodes)",
            }
            continue
        table = population_stability(features.loc[positions], reference)
        shifted = table.loc[table["psi"] > PSI_MODERATE].head(config.drift_top)
        drift[str(version)] = {
            "available": True,
            "episodes": int(positions.size),
            "features": table.to_dict(orient="records"),
            "most_shifted": shifted["feature"].tolist(),
        }
    return drift


def _drift_figure(found: Mapping[str, Any], version: str) -> Figure:
    table = pd.DataFrame(found["features"]).dropna(subset=["psi"]).head(12).iloc[::-1]
    fig = Figure(figsize=(6.0, 0.3 * len(table) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    colours = ["#c0392b" if v > 0.25 else "#e67e22" if v > 0.1 else "#7f8c8d" for v in table["psi"]]
    ax.barh(table["feature"].astype(str), table["psi"], color=colours)
    # The conventional reading of PSI (Siddiqi 2006): 0.10 moderate, 0.25 major shift.
    ax.axvline(0.10, color="#e67e22", linestyle="--", linewidth=1)
    ax.axvline(0.25, color="#c0392b", linestyle="--", linewidth=1)
    ax.set_xlabel("population stability index")
    ax.set_title(f"Feature drift, model version {version}")
    return fig


def _json_ready(value: Any) -> Any:
    """Plain JSON types, NaN and infinities as null."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or value is pd.NA:
        return None
    return str(value)


# --- the edge ------------------------------------------------------------------------------------


def run_audit(
    folder: Path | str,
    prediction_files: Sequence[Path | str],
    out: Path | str,
    config: AuditConfig,
    features_config: FeaturesConfig,
    *,
    by: Sequence[str] | None = None,
    min_cell: int | None = None,
    today: dt.date | None = None,
    log_to_mlflow: bool = False,
    censoring: CensoringConfig | None = None,
    gates: GatesConfig | None = None,
) -> AuditRun:
    """The ``audit`` command: read, audit, write report.html and report.json, maybe log.

    Outcomes and features are rebuilt with the feature settings the audited versions carry
    (``features.definition``); ``features_config`` stands in only for versions this store
    does not hold.

    Raises:
        UnusableInputError: the cohort or a predictions file cannot be used.
        HamriskError: an unknown ``--by`` group; the tracking store is unreachable.
    """
    from pipeline.report import render_html
    from pipeline.validate import validate_cohort

    today = today or dt.date.today()
    predictions = read_predictions(prediction_files, config.model_name)
    cohort = validate_cohort(folder, today=today).cohort
    versions = predictions["model_version"].unique()
    references = _load_references(config.model_name, versions)
    development = _load_development(config.model_name, versions)
    audit = audit_outcomes(
        cohort,
        predictions,
        as_of=today,
        config=config,
        features_config=_feature_settings(config.model_name, versions, features_config),
        by=by,
        min_cell=min_cell,
        references=references,
        censoring=censoring,
        development=development,
        gates=gates,
    )
    audit.document["models"] = _version_kinds(config.model_name, versions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = _write_atomic(out / "report.json", json.dumps(audit.document, indent=2))
    html_path = _write_atomic(out / "report.html", render_html(audit.document, audit.figures))
    run_id = _log_audit(audit, [html_path, json_path], config) if log_to_mlflow else None
    return AuditRun(audit, html_path, json_path, run_id)


def _version_kinds(name: str, versions: Sequence[str]) -> dict[str, dict[str, str]]:
    """Which kind of model each audited version is (``models.served``), ``unknown`` for a
    version this store does not hold."""
    from models.served import model_description
    from pipeline.model_cache import load_model

    kinds: dict[str, dict[str, str]] = {}
    for version in sorted({str(v) for v in versions}, key=int):
        try:
            kind = load_model(f"models:/{name}/{version}").kind
        except HamriskError:
            kinds[version] = {"kind": "unknown", "description": "not in this store"}
            continue
        kinds[version] = {"kind": kind, "description": model_description(kind)}
    return kinds


def _write_atomic(path: Path, text: str) -> Path:
    """Write through a temporary file in the same folder, so readers never see half a report."""
    with atomic_file(path) as stream:
        stream.write(text)
    return path


def _feature_settings(
    name: str, versions: Sequence[str], fallback: FeaturesConfig
) -> FeaturesConfig:
    """The feature settings the audited versions were trained with, from their own feature
    definitions; ``fallback`` only when the store holds none of them.

    Raises:
        HamriskError: two audited versions were trained with different settings, or the
            code builds a version's features differently (``FeatureDefinitionError``).
    """
    from pipeline.model_cache import FeatureDefinitionError, load_model

    found: dict[str, FeaturesConfig] = {}
    for version in versions:
        try:
            found[str(version)] = load_model(f"models:/{name}/{version}").definition.config
        except FeatureDefinitionError:
            raise
        except HamriskError:
            continue  # not in this store: audited on calibration, with the fallback
    # Compared by equality: a FeaturesConfig holds dicts, so it cannot be hashed.
    settings: list[FeaturesConfig] = []
    for config in found.values():
        if config not in settings:
            settings.append(config)
    if len(settings) > 1:
        raise HamriskError(
            f"versions {', '.join(sorted(found, key=int))} of {name} were trained with "
            "different feature settings; audit their predictions separately"
        )
    return settings[0] if settings else fallback


def _load_references(name: str, versions: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """Each version's training reference, skipping versions the registry cannot provide.

    Drift is context, not the verdict: an audit of predictions whose model is no longer
    in this store still reports calibration, and says drift is unavailable.
    """
    from pipeline import registry

    references: dict[str, Mapping[str, Any]] = {}
    for version in versions:
        try:
            model = registry.load_risk_model(f"models:/{name}/{version}")
            risk_model = model.unwrap_python_model().risk_model
        except (HamriskError, OSError, AttributeError, Exception):  # noqa: BLE001
            continue
        reference = getattr(risk_model, "reference_", None)
        if reference:
            references[str(version)] = reference
    return references


def _load_development(name: str, versions: Sequence[str]) -> dict[str, Mapping[str, Any] | None]:
    """Each version's development fingerprint set, ``None`` where none was recorded."""
    from pipeline import registry

    return {str(v): registry.development_episodes(name, v) for v in versions}


def _log_audit(audit: Audit, artifacts: Sequence[Path], config: AuditConfig) -> str:
    """Log the audit as an MLflow evaluation run linked to each audited model version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline import registry

    document = audit.document
    name = document["audit"]["model_name"]
    versions = document["audit"]["model_versions"]
    with registry.connect() as client:
        exp = registry.experiment_id(client, config.experiment_name)
        with mlflow.start_run(
            experiment_id=exp, run_name=f"audit {document['audit']['as_of']}"
        ) as run:
            mlflow.set_tags(
                {
                    "hamrisk.stage": "audit",
                    "hamrisk.model_name": name,
                    "hamrisk.model_versions": ",".join(versions),
                    "hamrisk.verdict": audit.verdict,
                    **{f"hamrisk.model_version.{v}": "audited" for v in versions},
                }
            )
            mlflow.log_params(
                {k: json.dumps(v) for k, v in document["audit"].items() if k != "model_versions"}
            )
            overall = document["breakdowns"][0]["cells"][0]
            mlflow.log_metrics(_cell_metrics(overall, "overall."))
            mlflow.log_metric("exit_code", audit.exit_code)
            for cell in document["breakdowns"][1]["cells"]:
                version = cell["group"]
                try:
                    found = client.get_model_version(name, version)
                except MlflowException:
                    found = None  # a version no longer in this store: the run tag remains
                metrics = _cell_metrics(cell, "audit.")
                if metrics:
                    # Linked to the version's logged model, so its page lists the audit.
                    model_id = getattr(found, "model_id", None)
                    mlflow.log_metrics(metrics, model_id=model_id)
                if found is not None:
                    client.set_model_version_tag(name, version, "last_audit_run", run.info.run_id)
                    client.set_model_version_tag(
                        name, version, "last_audit_verdict", cell["verdict"]
                    )
            for path in artifacts:
                mlflow.log_artifact(str(path), artifact_path="audit")
        return run.info.run_id


def _cell_metrics(cell: Mapping[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric, found in (cell.get("metrics") or {}).items():
        for key, value in found.items():
            if value is not None:
                out[f"{prefix}{metric}" + ("" if key == "estimate" else f"_ci_{key}")] = value
    return out
