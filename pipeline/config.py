"""Typed configuration: YAML files in ``configs/`` validated once into frozen objects.

Every section is a frozen pydantic model that forbids unknown keys, so a typo in a key or a
value out of range is reported with the key's dotted path instead of being ignored.
"""

from __future__ import annotations

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

# Feature settings live beside the feature functions that read them (features/ never
# imports pipeline/); they are re-exported here for the stages that load configs/features.yaml.
from features.config import FeaturesConfig as FeaturesConfig
from features.config import OutcomeConfig as OutcomeConfig
from features.config import TypicalReturnDays as TypicalReturnDays
from pipeline.errors import HamriskError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


class ConfigError(HamriskError, ValueError):
    """A configuration file that cannot be read or breaks its schema."""


class Section(BaseModel):
    """Base for every config section: frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


S = TypeVar("S", bound=BaseModel)


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


# --- Model registry: promotion gates (configs/train.yaml, section `registry:`) ---


class ToleranceConfig(Section):
    """A metric's clinically acceptable range and the wider range a verdict needs."""

    tolerance: tuple[float, float]
    decisive: tuple[float, float]
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _nested(self) -> ToleranceConfig:
        (lo, hi), (wide_lo, wide_hi) = self.tolerance, self.decisive
        if not wide_lo < lo < hi < wide_hi:
            raise ValueError(
                f"needs decisive[0] < tolerance[0] < tolerance[1] < decisive[1], got "
                f"tolerance {self.tolerance}, decisive {self.decisive}"
            )
        return self


class GatesConfig(Section):
    """The one rule for judging calibration (``models/judgement.py``), for promotion gates and
    audit verdicts alike, and the discrimination floor of promotion.

    Each calibration metric is judged from its interval at ``level`` against its tolerance
    and decisive range (``configs/train.yaml``, ``registry.gates``, with their sources).
    """

    level: float = Field(0.95, gt=0.5, lt=1.0)
    calibration_slope: ToleranceConfig = ToleranceConfig(
        tolerance=(0.8, 1.2), decisive=(0.6, 1.4),
        source="Van Calster et al. 2019, BMC Med 17:230: slope 0.8-1.2",
    )  # fmt: skip
    calibration_intercept: ToleranceConfig = ToleranceConfig(
        tolerance=(-0.2, 0.2), decisive=(-0.4, 0.4),
        source="Van Calster et al. 2019: intercept near 0 (width: judgement)",
    )  # fmt: skip
    observed_expected: ToleranceConfig = ToleranceConfig(
        tolerance=(0.8, 1.25), decisive=(0.67, 1.5),
        source="Van Calster et al. 2019: O:E near 1 (width: judgement)",
    )  # fmt: skip
    auc_min: float = Field(0.6, ge=0.0, le=1.0)


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
    """Inverse probability of censoring weights (see docs/model-card.md, "Censoring").

    The ``censoring`` section of configs/train.yaml, read by training and by audits alike
    (``pipeline.episodes.censoring_inputs``).
    """

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
    # How grouped CV chooses among the candidates (models/selection.py): "one_se", the
    # simplest within one standard error of the best; "min", the lowest mean loss.
    selection: Literal["one_se", "min"] = "one_se"
    # The candidates are the ladder's last step (pipeline/train.py): tried only when the
    # cohort meets Riley et al.'s minimum sample size for this many parameters.
    stack_parameters: int = Field(60, ge=1, le=10_000)
    # false: no ladder, the candidates alone compared by grouped CV (a clinic that wants the
    # LightGBM stack whatever its size; the stack's own tests).
    ladder: bool = True


class EvaluationConfig(Section):
    """Bootstrap settings of the held-out metrics and of the optimism correction."""

    n_boot: int = Field(200, ge=0, le=5000)
    optimism_boot: int = Field(30, ge=0, le=1000)
    small_cohort_episodes: int = Field(2000, ge=0)
    # Held out: after measuring, refit the registered model on every episode (the held-out
    # figures then describe the same procedure on fewer athletes, a slightly pessimistic
    # estimate); false registers the model fitted on the training athletes. Off by default:
    # see configs/train.yaml.
    refit_on_all: bool = True


class IncidenceConfig(Section):
    """Cumulative incidence over time (``models/incidence.py``): horizons, time bins, timing.

    ``horizons`` are the days at which a curve is reported; the last is the outcome window,
    where the curve equals the one-year risk. ``bin_edges`` are the right ends (days) of
    the bins the timing of recurrences is modelled on: weekly through 12 weeks, because
    recurrences crowd the first weeks back (over half within 25 days of return to sport,
    Wangensteen et al. 2016, AJSM; risk raised for about 15 weeks, Orchard et al. 2020,
    BJSM 54:1103), then monthly to 180 days and two-monthly to the year, where recurrences
    are sparse. Every horizon is a bin edge. ``linear_features`` get a linear effect on
    every bin's log-odds, its L2 penalty chosen by grouped cross-validation among
    ``linear_penalties`` (kept only if clearly better than none). The boosting settings are
    for each episode's remaining deviation; the number of rounds is chosen by
    grouped cross-validation up to ``max_rounds`` (zero rounds = the cohort's timing), and
    a leaf needs about ``min_leaf_events`` (weighted) recurrences; ``n_bootstrap`` refits
    give the timing's own interval. The settings are a judgement call, checked on
    synthetic worlds by ``bench/incidence.py``.
    """

    horizons: tuple[int, ...] = (28, 90, 180, 365)
    bin_edges: tuple[int, ...] = (
        7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 90, 120, 150, 180, 240, 300, 365
    )  # fmt: skip
    max_rounds: int = Field(400, ge=0, le=10_000)
    learning_rate: float = Field(0.05, gt=0.0, le=1.0)
    num_leaves: int = Field(4, ge=2, le=256)
    min_leaf_events: float = Field(10.0, gt=0.0)
    reg_lambda: float = Field(10.0, ge=0.0)
    # Features with a linear effect on the timing, fitted before the trees (sources in YAML),
    # and the L2 strengths tried for them.
    linear_features: tuple[str, ...] = ()
    linear_penalties: tuple[PositiveFloat, ...] = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
    cv_folds: int = Field(5, ge=2, le=20)
    n_bootstrap: int = Field(20, ge=0, le=500)
    # The published timing, for a model version without a fitted timing (sources in YAML).
    published_weibull_shape: float = Field(0.7, gt=0.0, le=5.0)
    published_median_days: float = Field(24.0, gt=0.0)

    @model_validator(mode="after")
    def _horizons_on_bin_edges(self) -> IncidenceConfig:
        for key in ("horizons", "bin_edges"):
            values = getattr(self, key)
            increasing = all(a < b for a, b in zip(values, values[1:], strict=False))
            if not values or values[0] < 1 or not increasing:
                raise ValueError(f"{key} must be positive days in increasing order, got {values}")
        off_edge = [h for h in self.horizons if h not in self.bin_edges]
        if off_edge:
            raise ValueError(f"every horizon must be a bin edge; {off_edge} is not")
        if self.bin_edges[-1] != self.horizons[-1]:
            raise ValueError(
                f"the last bin edge ({self.bin_edges[-1]}) must be the last horizon "
                f"({self.horizons[-1]})"
            )
        return self

    @field_validator("linear_features")
    @classmethod
    def _numeric_features(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from features.catalog import FEATURES_BY_NAME

        for name in names:
            spec = FEATURES_BY_NAME.get(name)
            if spec is None:
                raise ValueError(f"{name!r} is not a feature (features/catalog.py)")
            if spec.kind == "categorical":
                raise ValueError(f"{name!r} is a category; a linear effect needs a number")
        return names


def check_incidence_window(incidence: IncidenceConfig, outcome_window_days: float) -> None:
    """Raise ConfigError unless the last incidence horizon is the outcome window (where the
    curve is the one-year risk) and the published median lies inside it."""
    if incidence.horizons[-1] != outcome_window_days:
        raise ConfigError(
            f"configs/train.yaml: incidence.horizons ends at {incidence.horizons[-1]} days but "
            f"configs/features.yaml outcome.window_days is {outcome_window_days:g}; the last "
            "horizon must be the outcome window"
        )
    if not incidence.published_median_days < outcome_window_days:
        raise ConfigError(
            f"configs/train.yaml: incidence.published_median_days "
            f"({incidence.published_median_days:g}) must be below the outcome window "
            f"({outcome_window_days:g} days)"
        )


class TrainConfig(Section):
    """``configs/train.yaml``: everything ``hamrisk train`` needs besides the features."""

    random_state: int = 20261126
    split: SplitConfig = SplitConfig()
    censoring: CensoringConfig = CensoringConfig()
    model: ModelConfig
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()
    incidence: IncidenceConfig = IncidenceConfig()


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


# --- The literature model, its updating and the calibration rule (configs/literature.yaml) ---


class PublishedEffectConfig(Section):
    """One published effect mapped onto a feature column (see configs/literature.yaml)."""

    column: str = Field(min_length=1)
    term: Literal["linear", "at_least", "equals"]
    clip: tuple[float, float] | None = None
    threshold: float | None = None
    level: str | bool | None = None
    measure: Literal["OR", "RR"]
    ratio: PositiveFloat
    ci: tuple[PositiveFloat, PositiveFloat]
    unexposed_risk: float | None = Field(None, gt=0.0, lt=1.0)
    per: float
    log_scale_factor: float = Field(1.0, gt=0.0, le=1.0)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PublishedEffectConfig:
        low, high = self.ci
        if not low <= self.ratio <= high or low >= high:
            raise ValueError(f"ci {self.ci} must be ordered and contain ratio {self.ratio}")
        if self.per == 0:
            raise ValueError("per must not be 0")
        if self.measure == "RR":
            if self.unexposed_risk is None:
                raise ValueError("a risk ratio needs unexposed_risk to become an odds ratio")
            if self.ratio * self.unexposed_risk >= 1:
                raise ValueError(
                    f"ratio x unexposed_risk = {self.ratio * self.unexposed_risk:g} must be < 1"
                )
        if self.term == "linear" and self.clip is not None and self.clip[0] >= self.clip[1]:
            raise ValueError(f"clip {self.clip} must be ordered")
        if self.term == "at_least" and self.threshold is None:
            raise ValueError("an at_least term needs a threshold")
        if self.term == "equals" and self.level is None:
            raise ValueError("an equals term needs a level")
        return self


class SampleSizeConfig(Section):
    """Riley et al. 2020 (BMJ 368:m441) criteria for a model's minimum sample size."""

    shrinkage: float = Field(0.9, gt=0.0, lt=1.0)
    r2_optimism: float = Field(0.05, gt=0.0, lt=1.0)
    risk_margin: float = Field(0.05, gt=0.0, lt=0.5)


class UpdatingConfig(Section):
    """Closed testing of the literature model's updates (Vergouwe et al. 2017)."""

    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    penalty_strengths: tuple[PositiveFloat, ...] = Field((0.25, 1, 4, 16, 64), min_length=1)
    extension_prior_sd: tuple[PositiveFloat, ...] = (0.03, 0.1, 0.3, 1.0)
    cv_folds: int = Field(5, ge=2, le=20)
    random_state: int = Field(20261126, ge=0)
    sample_size: SampleSizeConfig = SampleSizeConfig()


class ReferencePopulationConfig(Section):
    """The population the shipped literature model is centred on (``reference:``)."""

    world: str = Field("literature", min_length=1)
    athletes: int = Field(1500, ge=50, le=100_000)
    random_state: int = Field(20261201, ge=0)
    source: str = Field("hamrisk simulator covariate model, literature world", min_length=1)


class LiteratureConfig(Section):
    """``configs/literature.yaml``: the literature model and its updating."""

    baseline_risk: float = Field(gt=0.0, lt=1.0)
    baseline_risk_interval: tuple[float, float]
    effects: dict[str, PublishedEffectConfig] = Field(min_length=1)
    reference: ReferencePopulationConfig = ReferencePopulationConfig()
    updating: UpdatingConfig = UpdatingConfig()

    @model_validator(mode="after")
    def _baseline_inside(self) -> LiteratureConfig:
        low, high = self.baseline_risk_interval
        if not 0 < low < self.baseline_risk < high < 1:
            raise ValueError(
                f"baseline_risk_interval {self.baseline_risk_interval} must lie in (0, 1) "
                f"and contain baseline_risk {self.baseline_risk}"
            )
        return self
