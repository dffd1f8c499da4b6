"""Model quality against the limit (the true probabilities) and the peers, and learning curves.

For each seed an independent test cohort is simulated (another seed, never trained on);
training cohorts of each size are simulated with the seed itself. Every model is fitted on
the training cohort's episodes and scored on the test cohort's:

- against the truth (the simulator's ``true_risk`` of every test episode, censored or
  not): mean squared error and mean predicted minus mean true risk;
- against the realized outcomes, weighted by IPCW exactly as ``hamrisk train`` weights its
  held-out set: AUC, Brier, log loss, calibration slope and intercept.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.measure import progress
from models.evaluation import (
    brier_score,
    calibration_intercept,
    calibration_slope,
    log_loss,
    weighted_auc,
)
from pipeline.config import CandidateConfig, FeaturesConfig, TrainConfig
from pipeline.train import (
    TrainingData,
    candidate_model,
    choose_candidate,
    fit_candidate,
    prepare_training_data,
)
from pipeline.validate import validate_cohort
from simulator.config import SimulationConfig
from simulator.simulate import simulate_cohort, write_simulated

MODELS = ("truth", "constant", "logistic_complete_case", "lightgbm_drop_censored", "hamrisk")
LABELS = {
    "truth": "truth (the limit)",
    "constant": "constant at the base rate",
    "logistic_complete_case": "logistic regression, complete cases",
    "lightgbm_drop_censored": "LightGBM dropping censored episodes",
    "hamrisk": "hamrisk",
}
SHORT = {
    "truth": "truth",
    "constant": "constant",
    "logistic_complete_case": "logistic CC",
    "lightgbm_drop_censored": "LightGBM no IPCW",
    "hamrisk": "hamrisk",
}
METRICS = ("auc", "brier", "log_loss", "slope", "intercept", "mse", "bias")
# What a clinical prediction paper would collect and fit (Ruddy et al. 2018 used age,
# previous injury and eccentric strength): the patient, the injury, the time to return
# and one isometric strength symmetry. Male is coded from `sex`.
CLINICAL_PREDICTORS = (
    "age_years",
    "male",
    "prior_injuries",
    "bamic_grade",
    "days_injury_to_return_to_sport",
    "lsi_isometric_flexion",
)
# Seeds of the test cohorts are offset so they never coincide with a training seed.
TEST_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class QualitySettings:
    seeds: tuple[int, ...]
    sizes: tuple[int, ...]
    main_size: int
    test_athletes: int


@dataclass(frozen=True)
class QualityBench:
    settings: QualitySettings
    # One row per (seed, size, model): the metrics plus episode counts.
    results: pd.DataFrame
    # Per seed: the candidate hamrisk's grouped cross-validation chose.
    candidates: dict[int, str]
    complete_case_share: float


def _cohort(config: SimulationConfig, athletes: int, seed: int, folder: Path):
    """Simulate, write as Parquet, validate: the cohort exactly as training would read it."""
    sim = simulate_cohort(config, athletes, seed)
    if folder.exists():
        shutil.rmtree(folder)
    write_simulated(sim, folder, "parquet")
    cohort = validate_cohort(folder, today=config.export_date).cohort
    shutil.rmtree(folder)
    return cohort, sim.truth


def _prepared(
    sim_config: SimulationConfig,
    features_config: FeaturesConfig,
    train_config: TrainConfig,
    athletes: int,
    seed: int,
    folder: Path,
) -> tuple[TrainingData, np.ndarray]:
    cohort, truth = _cohort(sim_config, athletes, seed, folder)
    data = prepare_training_data(cohort, features_config, train_config, sim_config.export_date)
    true_risk = (
        data.episodes[["injury_id"]]
        .merge(truth[["injury_id", "true_risk"]], on="injury_id", how="left", validate="1:1")[
            "true_risk"
        ]
        .to_numpy(dtype=np.float64)
    )
    if np.isnan(true_risk).any():
        raise RuntimeError("an episode has no true risk in the simulator's truth")
    return data, true_risk


def _clinical_matrix(features: pd.DataFrame) -> pd.DataFrame:
    frame = features[[c for c in CLINICAL_PREDICTORS if c != "male"]].astype("float64")
    male = features["sex"].astype("object")
    frame["male"] = np.where(male.isna(), np.nan, (male == "M").astype(float))
    return frame[list(CLINICAL_PREDICTORS)]


class CompleteCaseLogistic:
    """Logistic regression on complete cases, as a clinical paper fits one.

    Training drops episodes whose outcome is unknown (censored or pending) and episodes
    missing any predictor, and weighs the rest equally. A paper's model cannot score a row
    with a blank, so at prediction time a blank takes the training mean (the most common
    way such a model is applied).
    """

    def fit(self, data: TrainingData) -> CompleteCaseLogistic:
        x = _clinical_matrix(data.features)
        keep = ~np.isnan(data.labels) & x.notna().all(axis=1).to_numpy()
        self.used_share_ = float(keep.mean())
        self.means_ = x[keep].mean()
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=1e6, max_iter=1000))
        self.model_.fit(x[keep].to_numpy(), data.labels[keep].astype(int))
        return self

    def predict_risk(self, features: pd.DataFrame) -> np.ndarray:
        x = _clinical_matrix(features).fillna(self.means_)
        return self.model_.predict_proba(x.to_numpy())[:, 1]


def lightgbm_candidate(chosen: CandidateConfig, config: TrainConfig) -> CandidateConfig:
    """The chosen candidate when it is a LightGBM, else the first configured LightGBM."""
    if chosen.kind == "lightgbm":
        return chosen
    for candidate in config.model.candidates:
        if candidate.kind == "lightgbm":
            return candidate
    return CandidateConfig(kind="lightgbm")


def _naive_lightgbm(candidate: CandidateConfig, data: TrainingData, config: TrainConfig):
    """A LightGBM with hamrisk's calibration and constraints, fitted without IPCW.

    ``sample_weight=None`` makes :class:`RiskModel` drop every episode whose outcome is
    unknown and weigh the rest equally: a generic ML pipeline's handling of censoring.
    """
    return candidate_model(candidate, config, n_bootstrap=0).fit(
        data.features, data.labels, None, data.groups
    )


def _scores(test: TrainingData, true_risk: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    y, w = test.labels, test.weights
    return {
        "auc": weighted_auc(y, risk, w),
        "brier": brier_score(y, risk, w),
        "log_loss": log_loss(y, risk, w),
        "slope": calibration_slope(y, risk, w),
        "intercept": calibration_intercept(y, risk, w),
        "mse": float(np.mean((risk - true_risk) ** 2)),
        "bias": float(np.mean(risk) - np.mean(true_risk)),
    }


def _choose_candidate(data: TrainingData, config: TrainConfig) -> CandidateConfig:
    """``develop_model``'s choice: grouped cross-validation over the configured candidates."""
    if len(config.model.candidates) == 1:
        return config.model.candidates[0]
    return choose_candidate(data, config)[0]


def _describe(candidate: CandidateConfig) -> str:
    params = ", ".join(f"{k}={v}" for k, v in candidate.params.items())
    return f"{candidate.kind}({params})"


def run_quality(
    work: Path,
    settings: QualitySettings,
    sim_config: SimulationConfig,
    features_config: FeaturesConfig,
    train_config: TrainConfig,
) -> QualityBench:
    """Fit every model on every (seed, size) training cohort and score it on the seed's test."""
    folder = work / "quality" / "cohort"
    rows, candidates, used = [], {}, []
    sizes = sorted(set(settings.sizes) | {settings.main_size})
    # The main size first: its grouped cross-validation picks hamrisk's candidate.
    sizes = [settings.main_size] + [s for s in sizes if s != settings.main_size]
    for seed in settings.seeds:
        progress(f"quality: seed {seed}: test cohort of {settings.test_athletes:,} athletes")
        test, test_truth = _prepared(
            sim_config,
            features_config,
            train_config,
            settings.test_athletes,
            seed + TEST_SEED_OFFSET,
            folder,
        )
        candidate = None
        for size in sizes:
            progress(f"quality: seed {seed}: training cohort of {size:,} athletes")
            train, _ = _prepared(sim_config, features_config, train_config, size, seed, folder)
            if candidate is None:
                progress("quality: choosing hamrisk's candidate by grouped cross-validation")
                candidate = _choose_candidate(train, train_config)
                candidates[seed] = _describe(candidate)
            known = train.weights > 0
            base_rate = float(
                np.sum(train.weights[known] * train.labels[known]) / np.sum(train.weights[known])
            )
            logistic = CompleteCaseLogistic().fit(train)
            used.append(logistic.used_share_)
            risks = {
                "truth": test_truth,
                "constant": np.full(len(test.labels), base_rate),
                "logistic_complete_case": logistic.predict_risk(test.features),
                "lightgbm_drop_censored": _naive_lightgbm(
                    lightgbm_candidate(candidate, train_config), train, train_config
                ).predict_risk(test.features),
                "hamrisk": fit_candidate(
                    candidate, train, train_config, n_bootstrap=0
                ).predict_risk(test.features),
            }
            for model, risk in risks.items():
                rows.append(
                    {
                        "seed": seed,
                        "size": size,
                        "model": model,
                        "train_episodes": len(train.labels),
                        "train_known": int(known.sum()),
                        "test_episodes": len(test.labels),
                        **_scores(test, test_truth, np.asarray(risk, dtype=np.float64)),
                    }
                )
    return QualityBench(
        settings=settings,
        results=pd.DataFrame(rows),
        candidates=candidates,
        complete_case_share=float(np.median(used)),
    )


# --- rendering -------------------------------------------------------------------------------


def _cell(values: pd.Series, digits: int = 3) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    med = float(values.median())
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({values.min():.{digits}f} to {values.max():.{digits}f})"


def summary(b: QualityBench, size: int | None = None) -> pd.DataFrame:
    """Median over seeds of every metric, one row per model, at ``size`` (default main)."""
    size = b.settings.main_size if size is None else size
    frame = b.results[b.results["size"] == size]
    return frame.groupby("model")[list(METRICS)].median().reindex(list(MODELS))


def render_quality(b: QualityBench) -> str:
    s = b.settings
    main = b.results[b.results["size"] == s.main_size]
    episodes = main.groupby("seed")[["train_episodes", "train_known", "test_episodes"]].first()
    lines = [
        "## Model quality against the limit and the peers",
        "",
        f"Training cohorts of {s.main_size:,} athletes (seeds {', '.join(map(str, s.seeds))});"
        f" each seed's test cohort is an independent simulation of {s.test_athletes:,} athletes"
        f" (seed + {TEST_SEED_OFFSET:,}). Training cohorts held"
        f" {_range(episodes['train_episodes'])} episodes with a prediction time, of which"
        f" {_range(episodes['train_known'])} with a known outcome; test cohorts"
        f" {_range(episodes['test_episodes'])} episodes.",
        "",
        "Each cell: median over seeds (min to max). MSE and bias are against the simulator's"
        " true probability of every test episode; AUC, Brier, log loss and calibration are"
        " against the realized outcomes, IPCW-weighted as `hamrisk train` weighs its held-out"
        " set (censored and pending episodes weigh 0).",
        "",
        "| model | AUC | Brier | log loss | calibration slope | calibration intercept |"
        " MSE to truth | mean predicted − mean true |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        part = main[main["model"] == model]
        cells = [_cell(part[m], 4 if m in ("mse", "bias") else 3) for m in METRICS]
        lines.append(f"| {LABELS[model]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The models:",
        "",
        "- **truth**: the simulator's `true_risk`, the best any model can do with these"
        " records (no hidden frailty: every term of the true risk is recorded in the tables).",
        "- **constant**: the IPCW-weighted event rate of the training cohort, for everyone.",
        "- **logistic regression, complete cases**: unpenalised logistic regression on "
        + ", ".join(f"`{c}`" for c in CLINICAL_PREDICTORS)
        + "; training keeps only episodes with a known outcome and every predictor recorded"
        f" (median {b.complete_case_share:.0%} of the training episodes); blanks in the test"
        " cohort take the training means.",
        "- **LightGBM dropping censored episodes**: hamrisk's chosen candidate when it is a"
        " LightGBM, else the first LightGBM of `configs/train.yaml`, with the same monotone"
        " constraints and calibration, fitted with `sample_weight=None`, which drops every"
        " episode whose outcome is unknown and weighs the rest equally (no IPCW).",
        "- **hamrisk**: `pipeline.train.fit_candidate` with the candidate that the configured"
        " grouped cross-validation (`models.selection.select_model`, as in `develop_model`)"
        f" chose on each seed's {s.main_size:,}-athlete training cohort: "
        + "; ".join(f"seed {seed}: `{c}`" for seed, c in sorted(b.candidates.items()))
        + ". The same candidate is refitted at every learning-curve size. Bootstrap members"
        " (`n_bootstrap`) only widen the interval and are left out; the point risk is the same.",
    ]
    return "\n".join(lines)


def _range(values: pd.Series) -> str:
    lo, hi = int(values.min()), int(values.max())
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def render_curves(b: QualityBench) -> str:
    frame = b.results.groupby(["size", "model"])[["mse", "auc"]].median().reset_index()
    episodes = b.results.groupby("size")["train_episodes"].median()
    shown = [m for m in MODELS if m != "truth"]
    header = (
        "| athletes | episodes | "
        + " | ".join(f"MSE {SHORT[m]}" for m in shown)
        + " | "
        + " | ".join(f"AUC {SHORT[m]}" for m in MODELS)
        + " |"
    )
    lines = [
        "## Learning curves over training-cohort size",
        "",
        "Clinics are small. The same test cohorts as above; each training size is its own"
        " simulated cohort. Medians over seeds of the MSE to the true probability (lower is"
        " better) and the IPCW-weighted AUC (the truth's AUC is the ceiling).",
        "",
        header,
        "|" + "---|" * (2 + len(shown) + len(MODELS)),
    ]
    for size in sorted(frame["size"].unique()):
        part = frame[frame["size"] == size].set_index("model")
        cells = [f"{part.loc[m, 'mse']:.4f}" for m in shown]
        cells += [f"{part.loc[m, 'auc']:.3f}" for m in MODELS]
        lines.append(f"| {size:,} | {int(episodes[size]):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_for(quick: bool) -> QualitySettings:
    if quick:
        return QualitySettings(seeds=(1,), sizes=(250, 1000), main_size=1000, test_athletes=1500)
    return QualitySettings(
        seeds=(1, 2, 3),
        sizes=(250, 500, 1000, 2000, 5000, 20000),
        main_size=5000,
        test_athletes=10000,
    )
