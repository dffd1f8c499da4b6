"""Typed configuration: YAML files in ``configs/`` validated once into frozen objects.

Every section is a frozen pydantic model that forbids unknown keys, so a typo in a key or a
value out of range is reported with the key's dotted path instead of being ignored.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import numpy as np
import yaml
from numpy.typing import ArrayLike
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import HamriskError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(HamriskError, ValueError):
    """A configuration file that cannot be read or breaks its schema."""


class Section(BaseModel):
    """Base for every config section: frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class OutcomeConfig(Section):
    """What counts as a recurrence (data contract, "Prediction time, outcome and censoring")."""

    window_days: int = Field(365, ge=1, le=3650)
    same_side_only: bool = True


class TypicalReturnDays(Section):
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


class FeaturesConfig(Section):
    """Point-in-time feature settings shared by training, scoring and lookup."""

    outcome: OutcomeConfig = OutcomeConfig()
    prior_injury_window_days: int = Field(365, ge=1, le=3650)
    strength_trend_min_tests: int = Field(2, ge=2, le=20)
    typical_return_days: TypicalReturnDays = TypicalReturnDays()


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
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
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
        # A misspelt key also makes the key it was meant to be "required"; name it first.
        problems.sort(key=lambda problem: "unknown key" not in problem)
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None


# --- Simulation (configs/simulation.yaml): the synthetic cohort behind the demo and tests ---

Level = Literal["recreational", "competitive", "elite"]
Discipline = Literal[
    "sprint", "middle_distance", "long_distance", "trail_ultra", "multisport", "team_sport", "other"
]
StrengthTest = Literal[
    "nordic_eccentric",
    "isometric_knee_flexion",
    "isokinetic_knee_flexion_concentric",
    "isokinetic_knee_flexion_eccentric",
    "isokinetic_knee_extension_concentric",
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


def _check_shares(shares: dict[str, float], what: str) -> dict[str, float]:
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{what} must sum to 1, got {total:g}")
    return shares


class MeanSd(Section):
    """A normal (or, for durations, log-normal) distribution by its mean and spread."""

    mean: float
    sd: float = Field(ge=0.0)


class ByLevel(Section):
    """One number per athlete level."""

    recreational: float
    competitive: float
    elite: float


class AthletesSimConfig(Section):
    """Who the athletes are."""

    male_share: Probability
    disciplines: dict[Discipline, Probability]
    levels: dict[Level, Probability]
    age_years: dict[Level, MeanSd]
    age_range: tuple[int, int]
    body_mass_kg: dict[Literal["F", "M"], MeanSd]
    body_mass_by_discipline_kg: dict[Discipline, float]

    @field_validator("disciplines", "levels")
    @classmethod
    def _sum_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_shares(v, "shares")


class ClinicSimConfig(Section):
    """One clinic: its case mix, its rehab pace and its testing equipment."""

    clinic_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    level_share: ByLevel
    layoff_factor: PositiveFloat
    tests: dict[StrengthTest, Probability]


class HistorySimConfig(Section):
    """Hamstring injuries before the first index episode (untreated here: history only)."""

    mean_count: ByLevel
    count_per_year_of_age: float
    max_years_back: PositiveFloat
    min_age_years: PositiveFloat
    same_side_share: Probability


class IndexSimConfig(Section):
    """The injury that brings an athlete into the cohort, and every treated recurrence."""

    grade_shares: dict[int, Probability]
    site_shares: dict[Literal["a", "b", "c"], Probability]
    muscle_shares: dict[
        Literal[
            "biceps_femoris_long_head",
            "biceps_femoris_short_head",
            "semitendinosus",
            "semimembranosus",
        ],
        Probability,
    ]
    stretching_semimembranosus_share: Probability
    high_speed_running_share: dict[Discipline, Probability]
    stretching_share_of_rest: Probability

    @field_validator("grade_shares", "site_shares", "muscle_shares")
    @classmethod
    def _sum_to_one(cls, v: dict) -> dict:
        return _check_shares(v, "shares")

    @field_validator("grade_shares")
    @classmethod
    def _grades(cls, v: dict[int, float]) -> dict[int, float]:
        if set(v) != {0, 1, 2, 3, 4}:
            raise ValueError("grade_shares needs BAMIC grades 0, 1, 2, 3 and 4")
        return v


class RehabSimConfig(Section):
    """Lay-off, the three rehab phases and the measurements at return to sport."""

    layoff_days_by_grade: dict[int, MeanSd]
    layoff_days_site_c: dict[int, MeanSd]
    stretching_layoff_factor: PositiveFloat
    rush_layoff_effect: float
    rush_shift: ByLevel
    min_layoff_days: int = Field(ge=2)
    phase_fractions: dict[
        Literal["phase1", "phase2", "return_to_run", "phase3"], tuple[float, float]
    ]
    phase3_skipped: ByLevel
    phase3_skipped_rush_log_odds: float
    peak_sprint_pct_done: MeanSd
    peak_sprint_pct_skipped: MeanSd
    peak_sprint_rush_pct: float
    pain_log_mean: float
    pain_rush_log: float
    slr_deficit_deg: MeanSd
    slr_deficit_per_grade: float
    slr_deficit_rush: float
    ake_log_odds: float
    ake_rush_log_odds: float
    ake_per_grade_log_odds: float


class StrengthSimConfig(Section):
    """Strength tests: values, schedule and the limb symmetry trajectory."""

    uninvolved_mean: dict[StrengthTest, dict[Literal["F", "M"], PositiveFloat]]
    athlete_strength_sd: float = Field(ge=0.0)
    elite_strength_factor: PositiveFloat
    session_noise_sd: float = Field(ge=0.0)
    healthy_lsi_sd: float = Field(ge=0.0)
    lsi_at_injury: MeanSd
    lsi_at_return: MeanSd
    lsi_rush_effect: float
    lsi_range: tuple[float, float]
    lsi_test_noise_sd: float = Field(ge=0.0)
    extension_deficit_share: float = Field(ge=0.0, le=1.0)
    recovery_days: PositiveFloat
    screening_share: ByLevel
    screening_days_before: tuple[int, int]
    rehab_sessions: dict[Literal["early", "mid", "return"], Probability]
    follow_up_sessions: dict[Literal["one_month", "three_months", "six_months"], Probability]


class RecurrenceSimConfig(Section):
    """When a recurrence happens after return to sport."""

    window_days: int = Field(365, ge=30, le=3650)
    median_days: PositiveFloat
    weibull_shape: PositiveFloat
    max_treated_recurrences: int = Field(ge=0, le=5)


class FollowUpSimConfig(Section):
    """Loss to follow-up after the first return to sport, and the export date."""

    annual_loss: Probability
    level_factor: ByLevel
    age_log_factor_per_year: float
    phase3_skipped_factor: PositiveFloat


class DistractorsSimConfig(Section):
    """Injuries that are not recurrences: the other side, or the same side after the window."""

    other_side_share: Probability
    other_side_max_days: int = Field(ge=1)
    late_same_side_share: Probability
    late_same_side_max_days: int = Field(ge=1)


class Effect(Section):
    """One additive term of the true log-odds: ``coefficient * (value - reference)``.

    A missing recorded value is read as ``reference`` (contributes nothing).
    """

    coefficient: float
    reference: float = 0.0
    source: str = Field(min_length=1)


class NonNegativeEffect(Effect):
    """An effect whose direction is fixed: risk never falls as the value rises."""

    coefficient: float = Field(ge=0.0)


class RiskEffects(Section):
    """The log-odds terms of the true first-year recurrence risk, one per recorded factor."""

    prior_injuries: NonNegativeEffect
    any_prior_injury: NonNegativeEffect
    recent_prior_injury: NonNegativeEffect
    prior_same_side: NonNegativeEffect
    age_years: Effect
    male: Effect
    bamic_grade: Effect
    site_b: Effect
    site_c: Effect
    ake_discomfort: Effect
    slr_deficit_deg: Effect
    days_vs_expected: Effect
    lsi_deficit: NonNegativeEffect
    nordic_below_threshold: NonNegativeEffect
    peak_sprint_pct: Effect
    phase3_not_done: Effect
    pain_at_return: Effect


class RiskSimConfig(Section):
    """The true risk: logistic-additive in recorded factors, intercept solved for base_rate."""

    base_rate: float = Field(gt=0.0, lt=1.0)
    recent_days: int = Field(ge=1)
    days_vs_expected_range: tuple[float, float]
    nordic_threshold_n: PositiveFloat
    peak_sprint_cap_pct: PositiveFloat
    effects: RiskEffects


class SimulationConfig(Section):
    """Everything ``hamrisk simulate`` draws from; see configs/simulation.yaml for sources."""

    athletes: int = Field(2000, ge=1)
    random_state: int = Field(20261126, ge=0)
    format: Literal["csv", "parquet"] = "csv"
    cohort_start: date
    export_date: date
    last_index_days_before_export: int = Field(ge=0)
    athlete: AthletesSimConfig
    clinics: tuple[ClinicSimConfig, ...] = Field(min_length=1)
    history: HistorySimConfig
    index: IndexSimConfig
    rehab: RehabSimConfig
    strength: StrengthSimConfig
    recurrence: RecurrenceSimConfig
    follow_up: FollowUpSimConfig
    distractors: DistractorsSimConfig
    missing: dict[str, Probability]
    risk: RiskSimConfig

    @model_validator(mode="after")
    def _consistent(self) -> SimulationConfig:
        if self.export_date <= self.cohort_start:
            raise ValueError("export_date must be after cohort_start")
        ids = [c.clinic_id for c in self.clinics]
        if len(set(ids)) != len(ids):
            raise ValueError("clinic ids must be unique")
        for level in ("recreational", "competitive", "elite"):
            total = sum(getattr(c.level_share, level) for c in self.clinics)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"clinics' level_share.{level} must sum to 1, got {total:g}")
        unknown = set(self.missing) - set(MISSING_FIELDS)
        if unknown:
            raise ValueError(f"missing: unknown fields {sorted(unknown)}; known: {MISSING_FIELDS}")
        return self


# Optional contract fields the simulator can leave blank, as real exports do.
MISSING_FIELDS: tuple[str, ...] = (
    "sex",
    "birth_year",
    "discipline",
    "level",
    "body_mass_kg",
    "muscle",
    "bamic_grade",
    "bamic_site",
    "mechanism",
    "history_muscle",
    "history_bamic_grade",
    "history_mechanism",
    "phase1_end_date",
    "phase2_end_date",
    "return_to_run_date",
    "peak_sprint_pct",
    "pain_at_return",
    "slr_deficit_deg",
    "ake_discomfort",
)


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


# --- Training (configs/train.yaml): split, censoring, candidates, evaluation, registry ---


class SplitConfig(Section):
    """How held-out data is set aside: by athlete, and by time for the temporal check."""

    test_fraction: float = Field(0.25, gt=0.0, lt=0.9)
    temporal_test_fraction: float = Field(0.25, gt=0.0, lt=0.9)


class CensoringConfig(Section):
    """Inverse probability of censoring weights (see docs/model-card.md)."""

    method: Literal["km", "covariate"] = "covariate"
    covariates: tuple[str, ...] = ()
    max_weight: float = Field(20.0, ge=1.0)


class CandidateConfig(Section):
    """One model family with fixed hyperparameters, compared by grouped cross-validation."""

    kind: Literal["lightgbm", "logistic"]
    params: dict[str, float | int | str | bool] = {}


class ModelConfig(Section):
    """The candidates, the baseline it must beat, calibration and the interval ensemble."""

    candidates: tuple[CandidateConfig, ...] = Field(min_length=1)
    baseline: CandidateConfig
    calibration: Literal["sigmoid", "isotonic", "auto"] = "auto"
    cv_folds: int = Field(5, ge=2, le=20)
    n_bootstrap: int = Field(8, ge=0, le=200)
    # LightGBM rounds are a ceiling: the number used is chosen by grouped CV, stopping
    # after this many rounds without improvement (0: the configured rounds, fixed).
    early_stopping_rounds: int = Field(100, ge=0, le=10_000)


class EvaluationConfig(Section):
    """Bootstrap settings of the held-out metrics and of the optimism correction."""

    n_boot: int = Field(200, ge=0, le=5000)
    optimism_boot: int = Field(30, ge=0, le=1000)
    small_cohort_episodes: int = Field(2000, ge=0)


class TrainConfig(Section):
    """``configs/train.yaml``: everything ``hamrisk train`` needs besides the features."""

    random_state: int = 20261126
    split: SplitConfig = SplitConfig()
    censoring: CensoringConfig = CensoringConfig()
    model: ModelConfig
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()


# --- Outcome audits (configs/audit.yaml): were earlier predictions right? ---


class AuditConfig(Section):
    """``configs/audit.yaml``: how ``hamrisk audit`` judges stored predictions against outcomes."""

    random_state: int = 20261126
    model_name: str = Field("hamstring-reinjury", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
    by: tuple[str, ...] = ("clinic_id", "discipline", "level", "sex")
    min_cell: int = Field(10, ge=1)
    n_boot: int = Field(200, ge=20, le=5000)
    level: float = Field(0.95, gt=0.5, lt=1.0)
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    multiplicity: Literal["bonferroni", "none"] = "bonferroni"
    oe_ci_width: float = Field(0.4, gt=0.0, lt=2.0)
    min_events: int = Field(10, ge=1)
    censoring: CensoringConfig = CensoringConfig()
    thresholds: tuple[float, float] = (0.1, 0.6)
    drift_top: int = Field(3, ge=1, le=20)
    experiment_name: str = Field("hamstring-reinjury-audits", min_length=1, max_length=200)

    @field_validator("thresholds")
    @classmethod
    def _ordered_thresholds(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < value[0] < value[1] < 1.0:
            raise ValueError(f"needs 0 < low < high < 1, got {value}")
        return value


# --- Scoring and lookups (configs/score.yaml): bands, chunking, lock, lookup marginalisation ---


class RiskBandsConfig(Section):
    """Risk bands as multiples of the model's training base rate (``RiskModel.base_rate_``)."""

    low_below: float = Field(0.5, gt=0.0)
    high_from: float = Field(1.5, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> RiskBandsConfig:
        if self.low_below >= self.high_from:
            raise ValueError(
                f"low_below ({self.low_below}) must be below high_from ({self.high_from})"
            )
        return self

    def band(self, risk: ArrayLike, base_rate: float) -> np.ndarray:
        """``low``, ``moderate`` or ``high`` for each risk, relative to ``base_rate``."""
        risk = np.asarray(risk, dtype=np.float64)
        return np.where(
            risk < self.low_below * base_rate,
            "low",
            np.where(risk >= self.high_from * base_rate, "high", "moderate"),
        ).astype(object)


class LowerRiskTargets(Section):
    """Values a modifiable factor is moved to when a lookup shows what would lower the risk."""

    lsi: float = Field(0.9, gt=0.0, le=1.5)
    peak_sprint_pct: float = Field(95.0, gt=0.0, le=150.0)
    return_to_sport_time_vs_grade: float = Field(1.0, gt=0.0, le=5.0)


class LookupConfig(Section):
    """How a lookup treats what is not known, and what it suggests."""

    samples: int = Field(2000, ge=50, le=100_000)
    random_state: int = Field(20261126, ge=0)
    targets: LowerRiskTargets = LowerRiskTargets()


class ScoreConfig(Section):
    """``configs/score.yaml``: what ``hamrisk score`` and ``hamrisk lookup`` need."""

    model_uri: str = Field("models:/hamstring-reinjury@champion", min_length=1)
    chunk_episodes: int = Field(50_000, ge=1, le=2_000_000)
    lock_timeout_seconds: float = Field(600.0, ge=0.0)
    top_factors: int = Field(3, ge=1, le=10)
    bands: RiskBandsConfig = RiskBandsConfig()
    lookup: LookupConfig = LookupConfig()
