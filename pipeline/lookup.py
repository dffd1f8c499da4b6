"""One athlete's risk: from a cohort's latest episode, or from answers to a few questions.

What is not known is not guessed. A feature left out is averaged over: the lookup draws
values from the training distributions the model keeps (``RiskModel.reference_``: binned
marginals, missing share included, no rows) and reports the mean risk over the draws. With
nothing known that mean is the risk of a typical training episode, the baseline. The draws
treat unknown features as independent of each other and of the known ones, which the
cohort is not (age and previous injuries go together, say): the answer is an average over
a simplified population, and says so.

Answers are not turned into feature values here: they are written as one athlete's
records, validated against the data contract and passed through the model's own feature
functions and settings, exactly as a cohort's athlete is (``known_features``).

The model comes from :mod:`pipeline.model_cache`: after the first use of a version, a
lookup reads it without MLflow, and an additive model without LightGBM either.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import FEATURES_BY_NAME, TEST_WORDS
from features.strength import TESTS, UNITS
from models.served import model_description
from pipeline.cohort import Cohort
from pipeline.config import FeaturesConfig, LookupConfig, RiskBandsConfig
from pipeline.curve import curve_columns
from pipeline.errors import HamriskError
from pipeline.model_cache import RegisteredModel

HAMSTRING_LSI = tuple(
    f"lsi_{stem}" for test, stem in TESTS.items() if "flexion" in test or test == "nordic_eccentric"
)


class LookupInputError(HamriskError):
    """An answer that is not a value the feature can take, or an athlete not in the cohort."""

    exit_code = 2


# --- answers to feature values ----------------------------------------------------------------

YES = ("yes", "y", "true", "1")
NO = ("no", "n", "false", "0")
# Contract columns the answers fill, by the flag that gives them: a record the data contract
# sets aside is reported against these flags.
FLAG_OF_COLUMN: dict[tuple[str, str], str] = {
    ("athletes", "birth_year"): "age",
    ("athletes", "sex"): "sex",
    ("athletes", "level"): "level",
    ("athletes", "discipline"): "discipline",
    ("injuries", "bamic_grade"): "grade",
    ("injuries", "bamic_site"): "site",
    ("return_to_run", "return_to_sport_date"): "days-to-return",
    ("return_to_run", "phase3_end_date"): "phase3-done",
    ("return_to_run", "peak_sprint_pct"): "peak-sprint",
    ("return_to_run", "pain_at_return"): "pain",
    ("return_to_run", "slr_deficit_deg"): "slr",
    ("return_to_run", "ake_discomfort"): "ake",
    ("strength_tests", "left"): "lsi",
    ("strength_tests", "right"): "lsi",
}
# The ids of the one athlete an answered lookup describes.
_ATHLETE, _INDEX_INJURY, _CLINIC = "lookup", "lookup-index", "lookup"


def _yes_no(flag: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in YES:
        return True
    if lowered in NO:
        return False
    raise LookupInputError(f"--{flag}: expected yes or no, got {value!r}")


def _in_range(flag: str, value: float, low: float, high: float) -> float:
    if not (math.isfinite(value) and low <= value <= high):
        raise LookupInputError(
            f"--{flag}: expected a value from {low:g} to {high:g}, got {value!r}"
        )
    return float(value)


def _whole(flag: str, value: Any) -> int:
    number = float(value)
    if not (math.isfinite(number) and number == round(number)):
        raise LookupInputError(f"--{flag}: expected a whole number, got {value!r}")
    return int(number)


def answers_cohort(answers: Mapping[str, Any], as_of: dt.date) -> dict[str, pd.DataFrame]:
    """The five contract tables of one athlete described by ``answers``, as a clinic would
    export them, with the lookup's prediction time on ``as_of``.

    The index injury is ``days_to_return`` days before ``as_of`` and the athlete returned to
    sport on ``as_of`` (or, without that answer, was injured on ``as_of`` and has not
    returned yet); a rehab phase 3 completed and the strength test behind ``lsi`` are dated
    ``as_of``; earlier injuries fall on the days just before the index one, on its side.
    Records nothing was answered about are left out or missing.

    Raises:
        LookupInputError: an answer that cannot be written as a record (names the flag).
    """
    a = {key: value for key, value in answers.items() if value is not None}
    today = pd.Timestamp(as_of)
    returned = "days_to_return" in a
    days = _in_range("days-to-return", float(a["days_to_return"]), 0, 3650) if returned else 0
    if days != round(days):
        raise LookupInputError(
            f"--days-to-return: expected whole days, got {a['days_to_return']!r}"
        )
    injured = today - pd.Timedelta(days=int(days))
    athletes = {
        "athlete_id": _ATHLETE,
        "sex": str(a["sex"]).upper() if "sex" in a else None,
        "birth_year": today.year - _whole("age", a["age"]) if "age" in a else None,
        "discipline": str(a["discipline"]) if "discipline" in a else None,
        "level": str(a["level"]) if "level" in a else None,
        "body_mass_kg": None,
    }
    prior = _whole("prior-injuries", a["prior_injuries"]) if "prior_injuries" in a else 0
    _in_range("prior-injuries", prior, 0, 50)
    injuries = [
        {"injury_id": f"lookup-prior-{k}", "athlete_id": _ATHLETE,
         "injury_date": injured - pd.Timedelta(days=k), "side": "L", "muscle": None,
         "bamic_grade": None, "bamic_site": None, "mechanism": None}
        for k in range(prior, 0, -1)
    ]  # fmt: skip
    injuries.append(
        {"injury_id": _INDEX_INJURY, "athlete_id": _ATHLETE, "injury_date": injured,
         "side": "L", "muscle": None,
         "bamic_grade": _whole("grade", a["grade"]) if "grade" in a else None,
         "bamic_site": str(a["site"]).lower() if "site" in a else None, "mechanism": None}
    )  # fmt: skip
    phase3 = _yes_no("phase3-done", str(a["phase3_done"])) if "phase3_done" in a else False
    ake = _yes_no("ake", str(a["ake"])) if "ake" in a else None
    rehab = {
        "injury_id": _INDEX_INJURY, "clinic_id": _CLINIC,
        "phase1_end_date": None, "phase2_end_date": None,
        "phase3_end_date": today if phase3 else None,
        "return_to_run_date": None,
        "return_to_sport_date": today if returned else None,
        "peak_sprint_pct": a.get("peak_sprint"), "pain_at_return": a.get("pain"),
        "slr_deficit_deg": a.get("slr"),
        "ake_discomfort": None if ake is None else str(ake).lower(),
    }  # fmt: skip
    tests = []
    if "lsi" in a:
        test = str(a.get("lsi_test") or "nordic_eccentric")
        if test not in TESTS:
            raise LookupInputError(f"--lsi-test: expected one of {', '.join(TESTS)}, got {test!r}")
        lsi = _in_range("lsi", float(a["lsi"]), 0.05, 2.0)
        # Involved (left) ÷ uninvolved (right) is the answer itself, to the bit.
        tests.append(
            {"test_id": "lookup-test", "athlete_id": _ATHLETE, "test_date": today,
             "test": test, "left": lsi, "right": 1.0, "unit": UNITS[test]}
        )  # fmt: skip
    columns = {
        "strength_tests": ["test_id", "athlete_id", "test_date", "test", "left", "right", "unit"]
    }
    return {
        "athletes": pd.DataFrame([athletes]),
        "injuries": pd.DataFrame(injuries),
        "strength_tests": pd.DataFrame(tests, columns=columns["strength_tests"]),
        "return_to_run": pd.DataFrame([rehab]),
        "follow_up": pd.DataFrame([{"athlete_id": _ATHLETE, "observed_until": today}]),
    }


# Answer -> the feature it is, when it is one on its own.
ANSWER_FEATURES: tuple[tuple[str, str], ...] = (
    ("age", "age_years"),
    ("sex", "sex"),
    ("discipline", "discipline"),
    ("level", "level"),
    ("prior_injuries", "prior_injuries"),
    ("grade", "bamic_grade"),
    ("site", "bamic_site"),
    ("days_to_return", "days_injury_to_return_to_sport"),
    ("phase3_done", "phase3_done"),
    ("peak_sprint", "peak_sprint_pct"),
    ("pain", "pain_at_return"),
    ("slr", "slr_deficit_deg"),
    ("ake", "ake_discomfort"),
)


def answered_features(answers: Mapping[str, Any], config: FeaturesConfig) -> list[str]:
    """The features the answers determine: the others stay unknown and are averaged over.

    A feature counts only when the answers fix it whatever the records left out would say:
    ``prior_injuries`` alone fixes the same-side and last-year counts only when it is 0; a
    grade 0 has no site (data contract), so it fixes the site as missing; the time against
    the usual for the grade needs the site too where ``config`` has an intratendinous usual.
    """
    a = {key: value for key, value in answers.items() if value is not None}
    names = [name for flag, name in ANSWER_FEATURES if flag in a]
    if "prior_injuries" in a and float(a["prior_injuries"]) == 0:
        names += ["prior_injuries_same_side", "prior_injuries_recent",
                  "days_since_last_prior_injury"]  # fmt: skip
    grade = float(a["grade"]) if "grade" in a else None
    if "site" in a:
        names.append("intratendinous")
    elif grade == 0:
        names += ["bamic_site", "intratendinous"]
    usual_needs_site = grade in config.typical_return_days.intratendinous
    if "days_to_return" in a and grade is not None and ("site" in a or not usual_needs_site):
        names.append("return_to_sport_time_vs_grade")
    if "lsi" in a:
        test = str(a.get("lsi_test") or "nordic_eccentric")
        names += [f"lsi_{TESTS[test]}", "strength_tested_in_rehab"]
    return names


def known_features(
    answers: Mapping[str, Any], model: RegisteredModel, *, as_of: dt.date
) -> dict[str, Any]:
    """Feature values the answers determine, built as for a cohort's athlete.

    Answers (all optional): ``prior_injuries``, ``lsi`` with ``lsi_test`` (default the Nordic
    test), ``grade``, ``site``, ``days_to_return``, ``phase3_done``, ``ake``,
    ``peak_sprint``, ``age``, ``sex``, ``level``, ``discipline``, ``pain``, ``slr``. They
    become one athlete's records (``answers_cohort``), which go through the data contract's
    validation and the model's own feature functions and settings, like any cohort's; of
    the features built, those the answers determine (``answered_features``) are known.

    Raises:
        LookupInputError: an answer the contract (or the flag) does not allow: names the
            flag and the contract's rule id.
    """
    from pipeline.io import write_tables
    from pipeline.validate import validate_cohort

    if not any(value is not None for value in answers.values()):
        return {}
    tables = answers_cohort(answers, as_of)
    with tempfile.TemporaryDirectory(prefix="hamrisk-lookup-") as folder:
        write_tables(tables, folder)
        validation = validate_cohort(folder, today=as_of)
    _refuse_set_aside(validation.set_aside, answers)
    row = _latest_features(validation.cohort, model, as_of, _ATHLETE)[0]
    named = answered_features(answers, model.definition.config)
    return {name: row[name] for name in named if name in row}


def _refuse_set_aside(set_aside: pd.DataFrame, answers: Mapping[str, Any]) -> None:
    """Raise for the first rule an answer breaks, naming the flags behind it and the rule."""
    for line in set_aside.itertuples(index=False):
        if str(line.rule).endswith((".parent_set_aside", ".exists")):
            continue  # follows from another failure, reported itself
        flags = [
            FLAG_OF_COLUMN[(line.table, column)]
            for column in str(line.column).split(",")
            if (line.table, column) in FLAG_OF_COLUMN
        ]
        given = " ".join(
            f"--{flag} {answers.get(flag.replace('-', '_'))}" for flag in dict.fromkeys(flags)
        )
        raise LookupInputError(
            f"{given or 'the answers'}: the data contract does not allow this "
            f"(rule {line.table}.{line.rule}, value {line.value})"
        )


# --- the risk, averaged over what is not known -------------------------------------------------


def reference_draws(
    reference: Mapping[str, Mapping[str, Any]],
    names: list[str],
    n: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """``n`` rows drawn independently per feature from the model's binned training marginals.

    A draw is missing with the feature's missing share; otherwise a bin is drawn by its
    share and a value uniformly inside it (whole numbers for count-like features, whose
    edges are whole). The open outer bins are given the width of their neighbour (zero
    when there is none), so values beyond the training quantiles are not invented.
    """
    columns: dict[str, Any] = {}
    for name in names:
        ref = reference[name]
        share = np.asarray([*ref["proportions"], ref["missing"]], dtype=np.float64)
        share = share / share.sum() if share.sum() > 0 else np.r_[np.zeros(len(share) - 1), 1.0]
        pick = rng.choice(len(share), size=n, p=share)
        missing = pick == len(share) - 1
        if ref["kind"] == "categorical":
            categories = np.asarray([*ref["categories"], None], dtype=object)
            values = pd.array(categories[pick], dtype="string")
            values[missing] = pd.NA
            columns[name] = values
            continue
        edges = np.asarray(ref["edges"], dtype=np.float64)
        spec = FEATURES_BY_NAME.get(name)
        if spec is not None and spec.kind == "boolean":
            values = np.where(pick == 0, 0.0, 1.0)
        elif len(edges) == 0:
            values = np.full(n, np.nan)
        else:
            lower, upper = _bin_bounds(edges)
            whole = bool(np.all(edges == np.round(edges)))
            u = rng.random(n)
            lo, hi = (
                lower[np.minimum(pick, len(lower) - 1)],
                upper[np.minimum(pick, len(upper) - 1)],
            )
            values = np.floor(lo + u * (hi - lo)) if whole else lo + u * (hi - lo)
            values = np.where(whole & (hi <= lo), lo, values)
            if spec is not None and spec.minimum is not None:
                values = np.maximum(values, spec.minimum)
        values = np.where(missing, np.nan, values)
        columns[name] = values
    return pd.DataFrame(columns, columns=names)


def _bin_bounds(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of each bin ``(-inf, e0), [e0, e1), ..., [ek, inf)``."""
    widths = np.diff(edges)
    first = widths[0] if len(widths) else 0.0
    last = widths[-1] if len(widths) else 0.0
    lower = np.r_[edges[0] - first, edges]
    upper = np.r_[edges, edges[-1] + (last if len(widths) else 1.0)]
    return lower, upper


@dataclass(frozen=True)
class Factor:
    """One known feature behind the risk, in words, and its mean log-odds contribution."""

    feature: str
    words: str
    contribution: float

    @property
    def direction(self) -> str:
        return "raises risk" if self.contribution > 0 else "lowers risk"


@dataclass(frozen=True)
class Suggestion:
    """A modifiable factor moved to its target, and the risk that would give."""

    feature: str
    change: str
    risk: float


@dataclass(frozen=True)
class LookupResult:
    """What ``hamrisk lookup`` prints."""

    risk: float
    risk_ci_low: float
    risk_ci_high: float
    band: str
    base_rate: float
    factors: list[Factor]
    lower_risk: list[Suggestion]
    model_name: str
    model_version: str
    known: int
    unknown: int
    about: str = ""
    # literature (published effects only), updated or trained: see models.served.
    model_kind: str = "trained"
    known_values: dict[str, Any] = field(default_factory=dict, repr=False)
    # Cumulative incidence by each horizon before the window, days -> (risk, low, high),
    # and whether its timing is the model's own (``fitted``) or the published one.
    curve: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    curve_shape: str = ""
    window_days: int = 365

    def risk_over_time(self) -> list[dict[str, Any]]:
        """Each horizon's risk and interval, the window's being ``risk`` itself."""
        points = [
            {"days": days, "risk": r, "risk_ci_low": lo, "risk_ci_high": hi}
            for days, (r, lo, hi) in sorted(self.curve.items())
        ]
        return points + [
            {"days": self.window_days, "risk": self.risk, "risk_ci_low": self.risk_ci_low,
             "risk_ci_high": self.risk_ci_high}
        ]  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "about": self.about,
            "risk": self.risk,
            "risk_ci_low": self.risk_ci_low,
            "risk_ci_high": self.risk_ci_high,
            "risk_band": self.band,
            "risk_over_time": self.risk_over_time(),
            "curve_shape": self.curve_shape,
            "baseline": self.base_rate,
            "top_factors": [
                {"feature": f.feature, "words": f.words, "direction": f.direction,
                 "log_odds": f.contribution}
                for f in self.factors
            ],
            "would_lower_risk": [
                {"feature": s.feature, "change": s.change, "risk": s.risk} for s in self.lower_risk
            ],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_kind": self.model_kind,
            "checked_against_outcomes": self.model_kind != "literature",
            "features_known": self.known,
            "features_averaged_over": self.unknown,
        }  # fmt: skip


def _frame(risk_model: Any, known: Mapping[str, Any], config: LookupConfig) -> pd.DataFrame:
    names = list(risk_model.feature_names_in_)
    unknown = [name for name in names if name not in known]
    n = config.samples if unknown else 1
    rng = np.random.default_rng(config.random_state)
    draws = reference_draws(risk_model.reference_, unknown, n, rng)
    columns: dict[str, Any] = {}
    for name in names:
        if name in known:
            value = known[name]
            kind = risk_model.prep_.kinds_[name]
            if kind == "categorical":
                columns[name] = pd.array([value] * n, dtype="string")
            else:
                columns[name] = np.full(n, np.nan if _missing(value) else float(value))
        else:
            columns[name] = draws[name]
    return pd.DataFrame(columns, columns=names)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def lookup_risk(
    model: RegisteredModel,
    known: Mapping[str, Any],
    *,
    config: LookupConfig,
    bands: RiskBandsConfig,
    n_factors: int = 3,
    about: str = "",
) -> LookupResult:
    """The risk given ``known`` feature values, averaged over every feature not in it.

    Args:
        model: the fitted model and its version.
        known: feature -> value; a missing value (NaN) means "known to be not recorded",
            which the model reads as missing, unlike a feature left out.
        config: draws and targets (``configs/score.yaml``, ``lookup:``).
        bands: risk bands as multiples of the base rate.
        n_factors: how many known factors to show.
        about: what the lookup describes, for the printout.

    Returns:
        Mean risk and mean interval bounds over the draws (the mean of the bounds is at
        least as wide as the interval of the mean, so it errs wide), the band, the known
        factors with the largest mean contributions, and what moving each modifiable factor
        that raises the risk to its target would give.
    """
    rm = model.risk_model
    unknown_names = [name for name in rm.feature_names_in_ if name not in known]
    frame = _frame(rm, known, config)
    risk = float(np.mean(rm.predict_risk(frame)))
    low, high = rm.predict_interval(frame)
    curve = curve_columns(rm, frame, rm.predict_risk(frame), low, high)
    horizons = [int(c.removeprefix("risk_").removesuffix("d")) for c in curve.columns[:-1:3]]
    points = {
        h: tuple(float(curve[f"risk_{h}d{end}"].mean()) for end in ("", "_ci_low", "_ci_high"))
        for h in horizons
    }
    contributions = rm.contributions(frame).mean(axis=0)
    shown = [name for name in rm.feature_names_in_ if name in known]
    ranked = sorted(
        (name for name in shown if contributions[name] != 0),
        key=lambda name: -abs(contributions[name]),
    )[:n_factors]
    row = {name: known[name] for name in shown}
    factors = [
        Factor(name, FEATURES_BY_NAME[name].phrase(row[name], row), float(contributions[name]))
        for name in ranked
    ]
    return LookupResult(
        risk=risk,
        risk_ci_low=float(np.mean(low)),
        risk_ci_high=float(np.mean(high)),
        band=str(bands.band([risk], rm.base_rate_)[0]),
        base_rate=float(rm.base_rate_),
        factors=factors,
        lower_risk=_suggestions(model, known, contributions, risk, config),
        model_name=model.name,
        model_version=model.version,
        model_kind=model.kind,
        known=len(shown),
        unknown=len(unknown_names),
        about=about,
        known_values=dict(row),
        curve=points,
        curve_shape=str(curve["curve_shape"].iloc[0]),
        window_days=int(model.definition.config.outcome.window_days),
    )


def _suggestions(
    model: RegisteredModel,
    known: Mapping[str, Any],
    contributions: pd.Series,
    risk: float,
    config: LookupConfig,
) -> list[Suggestion]:
    """Modifiable factors that raise the risk, each moved to its target, lower risks only."""
    rm, targets = model.risk_model, config.targets
    changes: list[tuple[str, dict[str, Any], str]] = []
    for name in HAMSTRING_LSI:
        value = known.get(name)
        if name in rm.feature_names_in_ and not _missing(value) and value < targets.lsi:
            test = next(t for t, stem in TESTS.items() if f"lsi_{stem}" == name)
            changes.append(
                (
                    name,
                    {name: targets.lsi},
                    f"{TEST_WORDS[test]} strength symmetry from {value:.0%} to "
                    f"{targets.lsi:.0%} of the uninvolved side",
                )
            )
    session = known.get("lsi_knee_flexors_last_session")
    if (
        "lsi_knee_flexors_last_session" in rm.feature_names_in_
        and not _missing(session)
        and session < targets.lsi
    ):
        changes.append(
            (
                "lsi_knee_flexors_last_session",
                {"lsi_knee_flexors_last_session": targets.lsi},
                f"knee-flexor strength symmetry from {session:.0%} to {targets.lsi:.0%} of "
                "the other side",
            )
        )
    sprint = known.get("peak_sprint_pct")
    if not _missing(sprint) and sprint < targets.peak_sprint_pct:
        changes.append(
            (
                "peak_sprint_pct",
                {"peak_sprint_pct": targets.peak_sprint_pct},
                f"rehab sprint exposure up to {targets.peak_sprint_pct:.0f}% of top speed "
                f"(was {sprint:.0f}%)",
            )
        )
    ratio = known.get("return_to_sport_time_vs_grade")
    days = known.get("days_injury_to_return_to_sport")
    if not _missing(ratio) and ratio < targets.return_to_sport_time_vs_grade and ratio > 0:
        update = {"return_to_sport_time_vs_grade": targets.return_to_sport_time_vs_grade}
        if not _missing(days):
            update["days_injury_to_return_to_sport"] = (
                days * targets.return_to_sport_time_vs_grade / ratio
            )
        changes.append(
            (
                "return_to_sport_time_vs_grade",
                update,
                f"rehab time up to the usual for the grade ({ratio:.0%} of it so far)",
            )
        )
    if known.get("phase3_done") is False:
        changes.append(("phase3_done", {"phase3_done": True}, "complete phase 3 of rehab"))
    suggestions = []
    for name, update, words in changes:
        if name in contributions and contributions[name] <= 0:
            continue
        moved = {**known, **update}
        new_risk = float(np.mean(rm.predict_risk(_frame(rm, moved, config))))
        # Below half a percentage point the printed risk would not change.
        if new_risk < risk - 0.005:
            suggestions.append(Suggestion(name, words, new_risk))
    return sorted(suggestions, key=lambda s: s.risk)


# --- an athlete from a cohort ---------------------------------------------------------------------


def athlete_known_features(
    folder: Path | str,
    athlete_id: str,
    model: RegisteredModel,
    *,
    as_of: dt.date,
) -> tuple[dict[str, Any], str]:
    """The features of the athlete's latest index episode as known on ``as_of``, and what it is.

    Every feature is known here: one not recorded is known to be missing. Episodes and
    features are built as ``model``'s feature definition says.

    Raises:
        UnusableInputError: the cohort cannot be read.
        LookupInputError: the athlete has no index episode in the cohort.
    """
    from pipeline.validate import validate_cohort

    cohort = validate_cohort(folder, today=as_of).cohort
    known, episode = _latest_features(cohort, model, as_of, athlete_id, folder=folder)
    about = (
        f"athlete {athlete_id}, injury {episode['injury_id']} of "
        f"{episode['injury_date']:%Y-%m-%d}, "
        + (
            f"provisional as of {as_of.isoformat()} (no return to sport yet)"
            if bool(episode["provisional"])
            else f"returned to sport {episode['prediction_time']:%Y-%m-%d}"
        )
    )
    return known, about


def _latest_features(
    cohort: Cohort,
    model: RegisteredModel,
    as_of: dt.date,
    athlete_id: str,
    folder: Path | str = "answers",
) -> tuple[dict[str, Any], pd.Series]:
    """The model's features of the athlete's latest index episode, and that episode."""
    from pipeline.episodes import index_episodes

    episodes = index_episodes(cohort, as_of, model.definition.config.outcome)
    mine = episodes[(episodes["athlete_id"].astype(str) == athlete_id).to_numpy(dtype=bool)]
    if mine.empty:
        raise LookupInputError(
            f"{folder}: athlete {athlete_id!r} has no treated injury (index episode) on or "
            f"before {as_of.isoformat()}"
        )
    latest = mine.tail(1).reset_index(drop=True)
    row = model.feature_frame(cohort, latest).iloc[0]
    known = {name: _plain(value) for name, value in row.items()}
    return known, latest.iloc[0]


def _plain(value: Any) -> Any:
    """A feature value as Python: NaN when missing, else a float, bool or str."""
    if _missing(value):
        return np.nan
    return value.item() if isinstance(value, np.generic) else value


def _horizon_words(days: int, window_days: int) -> str:
    if days == window_days:
        return "the year" if days == 365 else f"{days} days"
    if days % 7 == 0 and days <= 84:
        return f"{days // 7} weeks"
    if days in (90, 180, 270):
        return f"{days // 30} months"
    return f"{days} days"


def curve_words(result: LookupResult) -> str:
    """ "about 18% within 4 weeks, 26% within 3 months, ... and 31% within the year", with
    a note when the timing is the published one rather than the model's own."""
    parts = [
        f"{p['risk']:.0%} within {_horizon_words(p['days'], result.window_days)}"
        for p in result.risk_over_time()
    ]
    text = "about " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    if result.curve_shape == "published":
        text += " (timing over the year: the published one, not learned by this model)"
    return text


def format_lookup(result: LookupResult) -> str:
    """The lookup as a clinician reads it."""
    lines = []
    if result.about:
        lines.append(result.about)
    lines.append(
        f"risk          {result.risk:.0%} of a recurrence within a year "
        f"(95% confidence interval of the estimate {result.risk_ci_low:.0%}-"
        f"{result.risk_ci_high:.0%})"
    )
    lines.append(f"band          {result.band} (baseline {result.base_rate:.0%})")
    lines.append(f"over time     {curve_words(result)}")
    if result.factors:
        lines.append("top factors")
        for factor in result.factors:
            sign = "+" if factor.contribution > 0 else "-"
            lines.append(f"  {sign} {factor.words} ({factor.direction})")
    else:
        lines.append("top factors   none known: the risk is the baseline")
    if result.lower_risk:
        lines.append("would lower the risk")
        for suggestion in result.lower_risk:
            # One decimal: a change of under a point would otherwise print as "36% -> 36%".
            lines.append(f"  {suggestion.change}: {result.risk:.1%} -> {suggestion.risk:.1%}")
    if result.unknown:
        lines.append(
            f"not known     {result.unknown} of {result.known + result.unknown} features, "
            + (
                "averaged over the literature model's reference population"
                if result.model_kind == "literature"
                else "averaged over the training cohort"
            )
        )
    lines.append(
        f"model         {result.model_name} version {result.model_version}, "
        + model_description(result.model_kind)
    )
    return "\n".join(lines)
