"""Typed settings of the simulator: ``configs/simulation.yaml`` validated into frozen objects.

Loaded with ``pipeline.config.load_config(SimulationConfig, name="simulation")``, like every
other section: unknown keys and values out of range are reported with their dotted path.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.config import ConfigError, PositiveFloat, Probability, Section

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
Timing = Literal["episode", "fixed"]


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


class TimingEffects(Section):
    """Terms of the log time scale of a recurrence: ``coefficient * (value - reference)``.

    Read from the same recorded values as the risk terms of the same name; a positive
    coefficient brings recurrences later as the value rises, a negative one earlier.
    """

    days_vs_expected: Effect
    peak_sprint_pct: Effect
    lsi_deficit: Effect


class RecurrenceSimConfig(Section):
    """When a recurrence happens after return to sport, given that it happens in the window.

    Time from return is a Weibull truncated to the window; each episode's scale is the common
    scale times ``exp`` of its timing terms (``timing: episode``: an accelerated time scale) or
    the common scale alone (``timing: fixed``). The common scale is solved so that the median
    among first-year recurrences is ``median_days``. Whether an episode recurs within the
    window is the true risk alone: timing only moves a recurrence within the window.
    """

    window_days: int = Field(365, ge=30, le=3650)
    horizons_days: tuple[int, ...] = (28, 90, 180, 365)
    median_days: PositiveFloat
    weibull_shape: PositiveFloat
    timing: Timing = "episode"
    time_effects: TimingEffects
    max_treated_recurrences: int = Field(ge=0, le=5)

    @model_validator(mode="after")
    def _horizons_end_at_the_window(self) -> RecurrenceSimConfig:
        h = self.horizons_days
        if list(h) != sorted(set(h)) or h[0] < 1:
            raise ValueError(f"horizons_days must be increasing whole days from 1, got {list(h)}")
        if h[-1] != self.window_days:
            raise ValueError(
                f"horizons_days must end at window_days ({self.window_days}), so the last "
                f"cumulative incidence is the first-year risk; got {list(h)}"
            )
        if self.median_days >= self.window_days:
            raise ValueError("median_days must be inside the window")
        return self


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
    body_mass_kg: Effect


class RiskSimConfig(Section):
    """The true risk: logistic-additive in recorded factors, intercept solved for base_rate."""

    base_rate: float = Field(gt=0.0, lt=1.0)
    recent_days: int = Field(ge=1)
    days_vs_expected_range: tuple[float, float]
    nordic_threshold_n: PositiveFloat
    peak_sprint_cap_pct: PositiveFloat
    # Every coefficient times this: below 1 a world whose recorded factors say less.
    effect_scale: float = Field(1.0, ge=0.0)
    effects: RiskEffects


class WorldConfig(Section):
    """A simulated clinic: an overlay of settings on the base config, and why it is there."""

    description: str = Field(min_length=1)
    overlay: dict[str, Any] = {}


class SimulationConfig(Section):
    """Everything ``hamrisk simulate`` draws from; see configs/simulation.yaml for sources.

    The file holds the base settings and ``worlds``, overlays on them. ``world`` names the
    world the settings are drawn in; ``in_world`` gives that world's own settings (with the
    overlay applied and no ``worlds`` left), and ``simulate_cohort`` draws in them.
    """

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
    world: str = Field("literature", min_length=1)
    worlds: dict[str, WorldConfig] = {}

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

    def in_world(
        self, name: str | None = None, *, timing: Timing | None = None
    ) -> SimulationConfig:
        """The settings of world ``name`` (default: ``world``), recurrence timing optionally set.

        An overlay is checked here, where the message can name the world and the key alone
        (a model-level check at load would print the whole file as the offending input).

        Raises:
            ConfigError: no such world, or the overlay or ``timing`` breaks the schema.
        """
        name = self.world if name is None else name
        if not self.worlds:
            if name != self.world:
                raise ConfigError(f"these are the {self.world!r} world's settings, not {name!r}'s")
            settings = self
        elif name not in self.worlds:
            raise ConfigError(f"unknown world {name!r}; known worlds: {', '.join(self.worlds)}")
        else:
            overlay = self.worlds[name].overlay
            if {"world", "worlds"} & set(overlay):
                raise ConfigError(f"worlds.{name}.overlay: a world cannot choose worlds")
            settings = self._overlaid(overlay, f"worlds.{name}.overlay", world=name)
        if timing is not None and timing != settings.recurrence.timing:
            settings = settings._overlaid({"recurrence": {"timing": timing}}, "timing")
        return settings

    def _overlaid(self, overlay: dict[str, Any], what: str, **top: Any) -> SimulationConfig:
        """These settings with ``overlay`` merged in (mappings key by key), without worlds."""
        merged = _merge(self.model_dump(exclude={"worlds"}), overlay) | top
        try:
            return SimulationConfig.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                # The input of a model-level error is the whole file: not worth printing.
                + (
                    ""
                    if err["type"] == "extra_forbidden" or not err["loc"]
                    else f" (got {err['input']!r})"
                )
                for err in exc.errors()
            )
            raise ConfigError(f"{what}: {problems}") from None


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` merged in: mappings key by key, anything else replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# Optional contract fields the simulator can leave blank, as real exports do, by the record
# they sit on (the simulator draws them in this order).
ATHLETE_MISSING: tuple[str, ...] = ("sex", "birth_year", "discipline", "level", "body_mass_kg")
INJURY_MISSING: tuple[str, ...] = ("muscle", "bamic_grade", "bamic_site", "mechanism")
HISTORY_MISSING: tuple[str, ...] = ("history_muscle", "history_bamic_grade", "history_mechanism")
REHAB_MISSING: tuple[str, ...] = (
    "phase1_end_date",
    "phase2_end_date",
    "return_to_run_date",
    "peak_sprint_pct",
    "pain_at_return",
    "slr_deficit_deg",
    "ake_discomfort",
)
MISSING_FIELDS: tuple[str, ...] = (
    *ATHLETE_MISSING,
    *INJURY_MISSING,
    *HISTORY_MISSING,
    *REHAB_MISSING,
)
