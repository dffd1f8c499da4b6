"""The feature registry: every column of the feature frame, how it is computed and said.

``FEATURES`` is the one list training, scoring, lookups and explanations share. Each entry
holds the function that computes its column, its kind, its monotone direction, its
description and the words a clinician would use for a value; ``features.build_feature_frame``
computes exactly these columns in this order, and nothing else lists them. ``direction`` is
the monotone constraint the model may impose, set only where the clinical evidence is clear:

- +1, more never lowers risk: previous hamstring injuries (Green et al. 2020; de Vos et al.
  2014, aOR 1.33 per injury) and discomfort on the active knee extension test (Zein et al.
  2024, aRR 2.52);
- -1, more never raises risk: hamstring strength symmetry (Bourne et al. 2015, eccentric
  imbalance >= 15% RR 2.4; Croisier et al. 2008);
- 0 everywhere else, including where an effect is reported but its shape is not settled.

``version`` is part of what a registered model records of each column
(``features.definition``): bump it when the way a column is computed changes, and a model
trained on the old computation is refused rather than fed the new one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from features import athlete, history, rehab, strength
from features.config import FeaturesConfig
from features.rehab import PHASES
from features.strength import TESTS, UNITS

Kind = Literal["numeric", "boolean", "categorical"]
DTYPES: dict[Kind, str] = {"numeric": "float64", "boolean": "boolean", "categorical": "string"}

TEST_WORDS: dict[str, str] = {
    "nordic_eccentric": "Nordic",
    "isometric_knee_flexion": "isometric knee flexion",
    "isokinetic_knee_flexion_concentric": "concentric isokinetic knee flexion",
    "isokinetic_knee_flexion_eccentric": "eccentric isokinetic knee flexion",
    "isokinetic_knee_extension_concentric": "concentric isokinetic knee extension",
}
SITE_WORDS = {"a": "myofascial", "b": "musculotendinous", "c": "intratendinous"}


@dataclass(frozen=True)
class Inputs:
    """What a feature function reads, every table aligned to the episodes (row i is episode i).

    Attributes:
        episodes: the episodes (``features.EPISODE_INPUTS``), with a fresh RangeIndex.
        athletes: the athletes table aligned to the episodes (``features.timeline.align``).
        injuries: the injuries table aligned to the episodes' index injuries.
        rehab: the return_to_run table aligned to the episodes' index injuries.
        history: every injury on record, for history look-ups.
        strength: every strength test on record, for rehab look-ups.
        config: the feature settings.
    """

    episodes: pd.DataFrame
    athletes: pd.DataFrame
    injuries: pd.DataFrame
    rehab: pd.DataFrame
    history: history.InjuryTimeline
    strength: strength.StrengthTimeline
    config: FeaturesConfig


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column.

    Attributes:
        name: the column, and the name of the function that computes it.
        kind: numeric (float64), boolean (pandas ``boolean``) or categorical (``string``).
        direction: +1 more never lowers risk, -1 more never raises it, 0 unconstrained.
        description: what it is, with unit and time window.
        says: words for a present value; gets the value and the episode's feature row.
        missing: words for a missing value.
        minimum: the smallest value the column can take, when there is one.
        context: the other columns of the row ``says`` reads (most read none): a phrase
            is fixed by the value and these, so a batch can say each distinct one once.
        compute: the column from the aligned inputs (a function of ``features.athlete``,
            ``history``, ``rehab`` or ``strength``).
        version: the computation's version, recorded by every model trained on it.
    """

    name: str
    kind: Kind
    direction: Literal[-1, 0, 1]
    description: str
    says: Callable[[Any, Mapping[str, Any]], str] = field(repr=False)
    missing: str
    minimum: float | None = None
    context: tuple[str, ...] = ()
    compute: Callable[[Inputs], pd.Series] = field(kw_only=True, repr=False)
    version: int = field(default=1, kw_only=True)

    @property
    def dtype(self) -> str:
        """The column's dtype in the feature frame."""
        return DTYPES[self.kind]

    def signature(self) -> dict[str, Any]:
        """What a model records of this column: its name, kind, direction and version."""
        return {
            "name": self.name,
            "kind": self.kind,
            "direction": self.direction,
            "version": self.version,
        }

    def phrase(self, value: Any, row: Mapping[str, Any] | None = None) -> str:
        """The value in a clinician's words; ``row`` (the episode's features) adds context."""
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return self.missing
        return self.says(value, row if row is not None else {})


def _count(n: float, one: str, many: str) -> str:
    n = int(n)
    return f"no {one}" if n == 0 else f"{n} {one if n == 1 else many}"


def _days(n: float) -> str:
    return f"{n:.0f} day" if round(n) == 1 else f"{n:.0f} days"


def _words(value: str) -> str:
    return str(value).replace("_", " ")


def _grade_usually(took: float, row: Mapping[str, Any]) -> str:
    """The aside "(grade 2 usually needs ~22)", from the row's grade and time-vs-grade ratio."""
    grade, ratio = row.get("bamic_grade"), row.get("return_to_sport_time_vs_grade")
    if grade is None or ratio is None or pd.isna(grade) or pd.isna(ratio) or ratio == 0:
        return ""
    return f" (grade {int(grade)} usually needs ~{took / ratio:.0f})"


def _athlete_features() -> list[FeatureSpec]:
    return [
        FeatureSpec(
            "age_years", "numeric", 0,
            "age at prediction time, years (prediction year minus birth year)",
            lambda v, r: f"aged {v:.0f}", "age not recorded", 0,
            compute=lambda x: athlete.age_years(x.athletes, x.episodes),
        ),
        FeatureSpec(
            "sex", "categorical", 0, "sex as recorded (F/M)",
            lambda v, r: {"F": "female", "M": "male"}.get(v, str(v)), "sex not recorded",
            compute=lambda x: athlete.sex(x.athletes, x.episodes),
        ),
        FeatureSpec(
            "discipline", "categorical", 0, "main discipline as recorded",
            lambda v, r: f"{_words(v)} athlete", "discipline not recorded",
            compute=lambda x: athlete.discipline(x.athletes, x.episodes),
        ),
        FeatureSpec(
            "level", "categorical", 0, "competitive level as recorded",
            lambda v, r: f"{_words(v)} level", "level not recorded",
            compute=lambda x: athlete.level(x.athletes, x.episodes),
        ),
        FeatureSpec(
            "body_mass_kg", "numeric", 0, "body mass, kg (undated)",
            lambda v, r: f"body mass {v:.0f} kg", "body mass not recorded", 0,
            compute=lambda x: athlete.body_mass_kg(x.athletes, x.episodes),
        ),
    ]  # fmt: skip


def _history_features() -> list[FeatureSpec]:
    return [
        FeatureSpec(
            "prior_injuries", "numeric", 1,
            "earlier hamstring injuries, either side, before the index injury (count, all "
            "history)",
            lambda v, r: _count(v, "previous hamstring injury", "previous hamstring injuries"),
            "previous injuries not known", 0,
            compute=lambda x: history.prior_injuries(x.history, x.episodes),
        ),
        FeatureSpec(
            "prior_injuries_same_side", "numeric", 1,
            "earlier hamstring injuries on the index side before the index injury (count, all "
            "history)",
            lambda v, r: _count(
                v, "previous hamstring injury on this side",
                "previous hamstring injuries on this side",
            ),
            "previous same-side injuries not known", 0,
            compute=lambda x: history.prior_injuries_same_side(x.history, x.episodes),
        ),
        FeatureSpec(
            "prior_injuries_recent", "numeric", 1,
            "hamstring injuries, either side, within prior_injury_window_days (365 by "
            "default) before the index injury (count)",
            lambda v, r: _count(
                v, "hamstring injury in the year before", "hamstring injuries in the year before"
            ),
            "recent injuries not known", 0,
            compute=lambda x: history.prior_injuries_recent(
                x.history, x.episodes, x.config.prior_injury_window_days
            ),
        ),
        FeatureSpec(
            "days_since_last_prior_injury", "numeric", 0,
            "days from the last earlier hamstring injury, either side, to the index injury",
            lambda v, r: f"previous hamstring injury {_days(v)} before this one",
            "no previous hamstring injury on record", 1,
            compute=lambda x: history.days_since_last_prior_injury(x.history, x.episodes),
        ),
        FeatureSpec(
            "bamic_grade", "numeric", 0, "BAMIC grade 0-4 of the index injury (ordinal)",
            lambda v, r: f"BAMIC grade {int(v)} injury", "grade not recorded", 0,
            compute=lambda x: history.bamic_grade(x.injuries, x.episodes),
        ),
        FeatureSpec(
            "bamic_site", "categorical", 0,
            "BAMIC site of the index injury: a myofascial, b musculotendinous, c intratendinous",
            lambda v, r: f"{SITE_WORDS.get(v, v)} injury (BAMIC site {v})", "site not recorded",
            compute=lambda x: history.bamic_site(x.injuries, x.episodes),
        ),
        FeatureSpec(
            "intratendinous", "boolean", 0,
            "index injury is intratendinous (BAMIC site c); false for grade 0",
            lambda v, r: "intratendinous injury" if v else "not intratendinous",
            "tendon involvement not recorded",
            compute=lambda x: history.intratendinous(x.injuries, x.episodes),
        ),
        FeatureSpec(
            "muscle", "categorical", 0, "injured muscle of the index injury",
            lambda v, r: "muscle not identified" if v == "unknown" else f"{_words(v)} injury",
            "muscle not recorded",
            compute=lambda x: history.muscle(x.injuries, x.episodes),
        ),
        FeatureSpec(
            "mechanism", "categorical", 0, "how the index injury happened",
            lambda v, r: f"injured {_words(v)}" if v == "stretching"
            else f"injured in {_words(v)}" if v == "high_speed_running"
            else "injured another way",
            "mechanism not recorded",
            compute=lambda x: history.mechanism(x.injuries, x.episodes),
        ),
    ]  # fmt: skip


def _rehab_features() -> list[FeatureSpec]:
    specs = [
        FeatureSpec(
            "days_injury_to_return_to_run", "numeric", 0,
            "days from injury to first run, if on or before prediction time",
            lambda v, r: f"first run {_days(v)} after injury", "first run not recorded", 0,
            compute=lambda x: rehab.days_injury_to_return_to_run(x.rehab, x.episodes),
        ),
        FeatureSpec(
            "days_return_to_run_to_return_to_sport", "numeric", 0,
            "days from first run to return to sport",
            lambda v, r: f"returned to sport {_days(v)} after first run",
            "first run to return not known", 0,
            compute=lambda x: rehab.days_return_to_run_to_return_to_sport(x.rehab, x.episodes),
        ),
        FeatureSpec(
            "days_injury_to_return_to_sport", "numeric", 0,
            "days from injury to return to sport",
            lambda v, r: f"returned to sport {_days(v)} after injury{_grade_usually(v, r)}",
            "not yet returned to sport", 0,
            context=("bamic_grade", "return_to_sport_time_vs_grade"),
            compute=lambda x: rehab.days_injury_to_return_to_sport(x.episodes),
        ),
        FeatureSpec(
            "return_to_sport_time_vs_grade", "numeric", 0,
            "days injury to return to sport ÷ usual days for the BAMIC grade (ratio; "
            "Ekstrand 2012, Pollock 2022)",
            lambda v, r: f"returned in {v:.0%} of the time"
            + (
                f" grade {int(r['bamic_grade'])} usually needs"
                if not pd.isna(r.get("bamic_grade", float("nan")))
                else " the grade usually needs"
            ),
            "time to return against grade not known", 0, context=("bamic_grade",),
            compute=lambda x: rehab.return_to_sport_time_vs_grade(
                x.injuries, x.episodes, x.config.typical_return_days
            ),
        ),
    ]  # fmt: skip
    for phase, what in PHASES.items():
        specs.append(
            FeatureSpec(
                f"phase{phase}_done", "boolean", 0,
                f"rehab phase {phase} ({what}) recorded as completed on or before prediction "
                "time",
                lambda v, r, phase=phase: f"phase {phase} of rehab completed"
                if v else f"phase {phase} of rehab not recorded as completed",
                f"phase {phase} completion not known",
                compute=lambda x, phase=phase: rehab.phase_done(x.rehab, x.episodes, phase),
            )
        )  # fmt: skip
    for phase, what in PHASES.items():
        specs.append(
            FeatureSpec(
                f"days_injury_to_phase{phase}_end", "numeric", 0,
                f"days from injury to the end of rehab phase {phase} ({what}), if on or "
                "before prediction time",
                lambda v, r, phase=phase: f"phase {phase} of rehab done {_days(v)} after injury",
                f"phase {phase} end not recorded", 0,
                compute=lambda x, phase=phase: rehab.days_injury_to_phase_end(
                    x.rehab, x.episodes, phase
                ),
            )
        )  # fmt: skip
    specs += [
        FeatureSpec(
            "peak_sprint_pct", "numeric", 0,
            "fastest rehab sprint before return, % of pre-injury maximum speed",
            lambda v, r: f"peak rehab sprint {v:.0f}% of pre-injury maximum",
            "peak sprint not recorded", 0,
            compute=lambda x: rehab.peak_sprint_pct(x.rehab, x.episodes),
        ),
        FeatureSpec(
            "pain_at_return", "numeric", 0, "pain 0-10 numeric rating at return to sport",
            lambda v, r: f"pain {v:.0f}/10 at return", "pain at return not recorded", 0,
            compute=lambda x: rehab.pain_at_return(x.rehab, x.episodes),
        ),
        FeatureSpec(
            "slr_deficit_deg", "numeric", 0,
            "passive straight-leg-raise deficit, involved vs uninvolved, degrees at return",
            lambda v, r: f"straight-leg-raise deficit of {v:.0f}°",
            "straight-leg raise not recorded", 0,
            compute=lambda x: rehab.slr_deficit_deg(x.rehab, x.episodes),
        ),
        FeatureSpec(
            "ake_discomfort", "boolean", 1,
            "discomfort on the active knee extension test at return to sport",
            lambda v, r: "discomfort on the active knee extension test" if v
            else "no discomfort on the active knee extension test",
            "active knee extension test not recorded",
            compute=lambda x: rehab.ake_discomfort(x.rehab, x.episodes),
        ),
    ]  # fmt: skip
    return specs


def _strength_features() -> list[FeatureSpec]:
    lsi, trend, per_kg = [], [], []
    for test, stem in TESTS.items():
        words = TEST_WORDS[test]
        hamstring = test != "isokinetic_knee_extension_concentric"
        lsi.append(
            FeatureSpec(
                f"lsi_{stem}", "numeric", -1 if hamstring else 0,
                f"involved ÷ uninvolved at the last {words} test from injury to prediction "
                "time (ratio)",
                lambda v, r, words=words: f"involved side {v:.0%} of uninvolved at last "
                f"{words} test",
                f"no {words} test in rehab", 0,
                compute=lambda x, test=test: strength.lsi_at_last_test(
                    x.strength, x.episodes, test
                ),
            )
        )  # fmt: skip
        trend.append(
            FeatureSpec(
                f"lsi_change_per_week_{stem}", "numeric", 0,
                f"least-squares slope of the {words} LSI from injury to prediction time "
                "(ratio per week; needs strength_trend_min_tests tests)",
                lambda v, r, words=words: f"{words} symmetry "
                f"{'rising' if v >= 0 else 'falling'} {abs(v) * 100:.1f} points a week in rehab",
                f"too few {words} tests in rehab for a trend",
                compute=lambda x, test=test: strength.lsi_change_per_week(
                    x.strength, x.episodes, test, x.config.strength_trend_min_tests
                ),
            )
        )  # fmt: skip
        unit = UNITS[test]
        per_kg.append(
            FeatureSpec(
                f"involved_per_kg_{stem}", "numeric", 0,
                f"involved side at the last {words} test in rehab ÷ body mass ({unit}/kg)",
                lambda v, r, words=words, unit=unit: f"involved side {v:.2f} {unit}/kg at last "
                f"{words} test",
                f"no {words} test in rehab or body mass not recorded", 0,
                compute=lambda x, test=test: strength.involved_per_kg(
                    x.strength, x.athletes, x.episodes, test
                ),
            )
        )  # fmt: skip
    return [
        *lsi,
        FeatureSpec(
            "lsi_knee_flexors_last_session", "numeric", -1,
            "mean involved ÷ uninvolved over the knee-flexor tests of the last test day "
            "from injury to prediction time (ratio)",
            lambda v, r: f"knee flexors {v:.0%} of the other side at the last strength session",
            "no knee-flexor test in rehab", 0,
            compute=lambda x: strength.lsi_knee_flexors_last_session(x.strength, x.episodes),
        ),
        FeatureSpec(
            "nordic_involved_force_n", "numeric", -1,
            "involved-side force at the last Nordic test from injury to prediction time (N)",
            lambda v, r: f"involved-side Nordic force {v:.0f} N (under 337 N is a risk "
            "factor)" if v < 337 else f"involved-side Nordic force {v:.0f} N",
            "no Nordic test in rehab", 0,
            compute=lambda x: strength.nordic_involved_force_n(x.strength, x.episodes),
        ),
        *trend,
        *per_kg,
        FeatureSpec(
            "hamstring_quadriceps_ratio", "numeric", 0,
            "involved concentric isokinetic knee flexion ÷ extension torque in rehab, same "
            "session where possible, else the last of each (ratio)",
            lambda v, r: f"involved hamstring:quadriceps ratio {v:.2f}",
            "hamstring:quadriceps ratio not tested in rehab", 0,
            compute=lambda x: strength.hamstring_quadriceps_ratio(x.strength, x.episodes),
        ),
        FeatureSpec(
            "strength_tested_in_rehab", "boolean", 0,
            "any strength test from injury to prediction time",
            lambda v, r: "strength tested in rehab" if v else "no strength test in rehab",
            "strength testing not known",
            compute=lambda x: strength.strength_tested_in_rehab(x.strength, x.episodes),
        ),
    ]  # fmt: skip


FEATURES: tuple[FeatureSpec, ...] = (
    *_athlete_features(),
    *_history_features(),
    *_rehab_features(),
    *_strength_features(),
)
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
FEATURES_BY_NAME: dict[str, FeatureSpec] = {spec.name: spec for spec in FEATURES}
# The directions models may impose (LightGBM's monotone constraints, the signs of the
# ladder's extension terms) and the columns read as categories.
MONOTONE: dict[str, int] = {spec.name: spec.direction for spec in FEATURES if spec.direction}
CATEGORICAL: list[str] = [spec.name for spec in FEATURES if spec.kind == "categorical"]


def registry_digest(names: tuple[str, ...] | list[str] | None = None) -> str:
    """SHA-256 of the signatures of ``names`` (default every column), in registry order.

    Two codes whose digests agree compute those columns the same way, as far as the
    registry says (name, kind, direction and version of each).
    """
    wanted = FEATURE_NAMES if names is None else tuple(names)
    signatures = [FEATURES_BY_NAME[name].signature() for name in wanted]
    text = json.dumps(signatures, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
