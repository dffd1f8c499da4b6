"""The ladder against its rungs and a weighted logistic regression, by clinic size and world.

For each world (``literature``: the published effects hold; ``unlike_papers``: they do not;
``weak``: little signal), seed and clinic size, a training cohort is simulated and one
independent test cohort (another seed, never seen) of ``test_athletes``. Four models are
fitted on the training cohort and scored on the test cohort:

- ``literature``: the literature model as is, centred on the training cohort's features;
- ``hamrisk``: what ``hamrisk train`` registers (``pipeline.train.develop_model``: the
  ladder, fitted on all episodes below ``small_cohort_episodes``);
- ``updated``: the literature model updated by closed testing (``update_from_config``);
- ``logistic_ipcw``: the configured penalised logistic regression with IPCW weights.

Scores: MSE to the simulator's true risk of every test episode, IPCW-weighted AUC,
calibration slope, mean bias (mean predicted minus mean true risk). For ``hamrisk`` also the
slope of the true log-odds on its own, the share of true risks inside its 95% interval
(``risk_ci_low``-``risk_ci_high``), the
alias the first version would get (``models.promotion`` with the literature model as the
reference, as when no champion exists) and whether it *should* be champion: its calibration
on the test cohort against the truth (slope and intercept of the true risk's logit on the
model's) lies within the gates' tolerances, or, judged the other way, whether it is closer
to the true risks than the literature model it would replace.

``python -m bench.literature [--sizes 50 100 ...] [--worlds ...] [--seeds ...]``; the
``Ladder`` section of ``make bench`` runs it with the sizes of ``bench/__main__.py``.

``--registered-only`` measures only the model ``hamrisk train`` registers at held-out sizes
(the ladder fitted on every episode, ``evaluation.refit_on_all``), without the held-out
measurement, the temporal check or the peers: a third of the cost, for the spread and
coverage of large clinics (20,000 athletes).

``--extension-sweep 0.05 0.1 0.3 ...`` fits the extension at each prior SD given (the
revision's penalty as the ladder chose it, no closed test, no sample-size limit) and prints
its MSE and slope against the truth: the price in MSE of a spread that matches the truth.

``--extension-lasso 0.5 1 2 ...`` sets the extension as the ladder fits it (a normal prior
on each of its terms, the prior SD cross-validation chose) beside the same terms under a
Laplace prior (an L1 penalty, Tibshirani 1996), whose strength, ``c`` times
``sqrt(sum w p(1 - p))`` at the sample's rate (``c`` about the |z|-score a term needs to
enter), is chosen from the values given by the same grouped cross-validation; both at the
revision's penalty as the ladder chose it, no closed test. It prints each one's MSE and
slope against the truth and how many terms the Laplace prior kept: what a sparse prior would
buy where a clinic's risk depends on a few of the 32 extra records.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logit

from bench.data import make_cohort
from bench.measure import progress
from models.evaluation import calibration_intercept, calibration_slope, weighted_auc
from models.literature import LiteratureModel
from models.promotion import CHAMPION, Comparison, decide
from models.updating import update_from_config
from pipeline.config import FeaturesConfig, LiteratureConfig, TrainConfig, load_config
from pipeline.train import (
    TrainingData,
    _metric_dict,
    develop_model,
    fit_candidate,
    fit_ladder,
    log_loss_difference,
    prepare_training_data,
)
from pipeline.validate import validate_cohort
from simulator.config import SimulationConfig
from simulator.simulate import write_simulated

TEST_SEED_OFFSET = 1_000_003
WORLDS = ("literature", "unlike_papers", "weak")
MODELS = ("hamrisk", "literature", "updated", "logistic_ipcw")


@dataclass(frozen=True)
class ClinicTable:
    """One row per simulated clinic (and model), each scored on its seed's test cohort of
    ``test_athletes``; ``seeds`` the training seeds drawn."""

    table: pd.DataFrame
    test_athletes: int
    seeds: tuple[int, ...]


def _prepared(
    sim: SimulationConfig,
    features: FeaturesConfig,
    train: TrainConfig,
    athletes: int,
    seed: int,
    world: str,
    folder: Path,
) -> tuple[TrainingData, np.ndarray]:
    cohort_sim = make_cohort(sim, athletes, seed, world=world)
    if folder.exists():
        shutil.rmtree(folder)
    write_simulated(cohort_sim, folder, "parquet")
    cohort = validate_cohort(folder, today=sim.export_date).cohort
    shutil.rmtree(folder)
    data = prepare_training_data(cohort, features, train, sim.export_date)
    truth = cohort_sim.truth[["injury_id", "true_risk"]]
    true_risk = data.episodes[["injury_id"]].merge(truth, on="injury_id", how="left")
    return data, true_risk["true_risk"].to_numpy(dtype=np.float64)


def _cells(
    train: TrainConfig,
    worlds: list[str],
    seeds: list[int],
    test_athletes: int,
    sizes_at: Callable[[int], list[int]],
) -> Iterator[tuple[str, int, int, TrainingData, np.ndarray, Callable[[], TrainingData]]]:
    """Every (world, seed, size): the seed's test cohort and its true risks, and a function
    that simulates, validates and prepares the training cohort (it may raise when too few
    outcomes come out). ``sizes_at(seed)``: the sizes drawn at that seed."""
    sim = load_config(SimulationConfig, name="simulation")
    features = load_config(FeaturesConfig, name="features")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cohort"
        for world in worlds:
            for seed in seeds:
                sizes = sizes_at(seed)
                if not sizes:
                    continue
                test, truth = _prepared(
                    sim, features, train, test_athletes, seed + TEST_SEED_OFFSET, world, folder
                )
                for size in sizes:

                    def training(
                        size: int = size, seed: int = seed, world: str = world
                    ) -> TrainingData:
                        return _prepared(sim, features, train, size, seed, world, folder)[0]

                    yield world, seed, size, test, truth, training


def _true_calibration(true_risk: np.ndarray, risk: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the true log-odds on the model's (least squares): the model's
    calibration with infinitely many outcomes."""
    x = logit(np.clip(risk, 1e-6, 1 - 1e-6))
    y = logit(np.clip(true_risk, 1e-6, 1 - 1e-6))
    slope = float(np.polyfit(x, y, 1)[0])
    return slope, float(np.mean(y - x))


def run_ladder(
    sizes: list[int],
    worlds: list[str],
    seeds: list[int],
    test_athletes: int,
    n_boot: int = 100,
    extra_seeds: tuple[int, ...] = (),
    extra_up_to: int = 0,
) -> ClinicTable:
    """Every size at ``seeds``; sizes up to ``extra_up_to`` also at ``extra_seeds`` (small
    clinics are cheap to train and their one-seed figures are mostly noise)."""
    train = load_config(TrainConfig, name="train")
    train = train.model_copy(
        update={"evaluation": train.evaluation.model_copy(update={"n_boot": n_boot})}
    )
    literature = load_config(LiteratureConfig, name="literature")
    gates = train.registry.gates
    rows = []
    cells = _cells(
        train, worlds, [*seeds, *extra_seeds], test_athletes,
        lambda seed: sizes if seed in seeds else [s for s in sizes if s <= extra_up_to],
    )  # fmt: skip
    for world, seed, size, test, truth, training in cells:
        progress(f"ladder: {world}, {size:,} athletes, seed {seed}")
        try:
            data = training()
        except Exception as exc:  # noqa: BLE001 - too few outcomes at 50 athletes
            rows.append({"world": world, "seed": seed, "athletes": size,
                         "model": "hamrisk", "note": str(exc)[:80]})  # fmt: skip
            continue
        development = develop_model(data, train, literature)
        base = LiteratureModel.from_config(literature).fit(data.features)
        updated = update_from_config(
            base, data.features, data.labels, data.weights, data.groups,
            literature.updating,
        ).model  # fmt: skip
        logistic = fit_candidate(train.model.baseline, data, train, n_bootstrap=0)
        difference = log_loss_difference(
            development.test, development.test_risk, development.literature_risk,
            n_boot, train.random_state, development.shift_against(literature=True),
            gates.level,
        )  # fmt: skip
        decision = decide(
            _metric_dict("", development.metrics),
            gates,
            Comparison("the literature model", False, *difference),
        )
        models = {
            "hamrisk": development.model,
            "literature": base,
            "updated": updated,
            "logistic_ipcw": logistic,
        }
        literature_mse = float(np.mean((base.predict_risk(test.features) - truth) ** 2))
        for name, model in models.items():
            risk = np.asarray(model.predict_risk(test.features), dtype=np.float64)
            row = {
                "world": world,
                "seed": seed,
                "athletes": size,
                "episodes": len(data.labels),
                "model": name,
                "mse": float(np.mean((risk - truth) ** 2)),
                "auc": weighted_auc(test.labels, risk, test.weights),
                "slope": calibration_slope(test.labels, risk, test.weights),
                "intercept": calibration_intercept(test.labels, risk, test.weights),
                "bias": float(risk.mean() - truth.mean()),
                "mse_constant": float(np.var(truth)),
            }
            if name == "hamrisk":
                slope, intercept = _true_calibration(truth, risk)
                lo, hi = gates.calibration_slope.tolerance
                ilo, ihi = gates.calibration_intercept.tolerance
                low, high = model.predict_interval(test.features)
                inside = (np.asarray(low) <= truth) & (truth <= np.asarray(high))
                row.update(
                    step=development.step,
                    alias=decision.alias,
                    should=bool(lo <= slope <= hi and ilo <= intercept <= ihi),
                    better=row["mse"] < literature_mse,
                    true_slope=slope,
                    true_intercept=intercept,
                    coverage=float(inside.mean()),
                )
            rows.append(row)
        print(pd.DataFrame(rows[-4:]).to_string(index=False), flush=True)
    return ClinicTable(pd.DataFrame(rows), test_athletes, (*seeds, *extra_seeds))


def run_registered(
    sizes: list[int],
    worlds: list[str],
    seeds: list[int],
    test_athletes: int,
    seeds_per_size: dict[int, int] | None = None,
) -> pd.DataFrame:
    """The registered model's MSE, slope against the truth and interval coverage alone.

    ``seeds_per_size``: how many of ``seeds`` (the first ones) each size is drawn at;
    ``None``: every size at every seed."""
    train = load_config(TrainConfig, name="train")
    literature = load_config(LiteratureConfig, name="literature")
    counts = seeds_per_size or dict.fromkeys(sizes, len(seeds))
    rows = []
    for world, seed, size, test, truth, training in _cells(
        train, worlds, seeds, test_athletes,
        lambda seed: [s for s in sizes if seeds.index(seed) < counts.get(s, 0)],
    ):  # fmt: skip
        progress(f"registered: {world}, {size:,} athletes, seed {seed}")
        data = training()
        ladder = fit_ladder(
            data.features, data.labels, data.weights, data.groups, train, literature
        )
        risk = np.asarray(ladder.model.predict_risk(test.features), dtype=np.float64)
        low, high = ladder.model.predict_interval(test.features)
        slope, intercept = _true_calibration(truth, risk)
        rows.append({
            "world": world, "seed": seed, "athletes": size,
            "episodes": len(data.labels), "step": ladder.step,
            "mse": float(np.mean((risk - truth) ** 2)),
            "true_slope": slope, "true_intercept": intercept,
            "coverage": float(np.mean((low <= truth) & (truth <= high))),
        })  # fmt: skip
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def run_extension_sweep(
    sizes: list[int],
    worlds: list[str],
    seeds: list[int],
    test_athletes: int,
    prior_sds: list[float],
) -> pd.DataFrame:
    """The extension at each prior SD in ``prior_sds``: MSE and slope against the truth."""
    from models.updating import Extension, UpdatedModel, _fit_penalised

    train = load_config(TrainConfig, name="train")
    literature = load_config(LiteratureConfig, name="literature")
    rows = []
    for world, seed, size, test, truth, training in _cells(
        train, worlds, seeds, test_athletes, lambda _: sizes
    ):
        data = training()
        X = data.features
        base = LiteratureModel.from_config(literature).fit(X)
        chosen = update_from_config(
            base, X, data.labels, data.weights, data.groups, literature.updating
        )
        if chosen.penalty_strength is None:
            continue
        known = data.weights > 0
        w = data.weights[known]
        w = w * (w.sum() / np.sum(w**2))
        z = base.term_matrix(X)[known]
        o = base.intercept_ + z @ base.coef_
        extension = Extension.of(base, X)
        terms = np.column_stack([z, extension.matrix(X)[known]])
        published = chosen.penalty_strength / base.coef_se_**2
        for sd in prior_sds:
            penalties = extension.penalties(published, sd)
            fit = _fit_penalised(terms, data.labels[known], w, o, penalties)
            model = UpdatedModel(base, "extension", *fit[:2], 0.0, extension)
            risk = model.predict_risk(test.features)
            rows.append({
                "world": world, "seed": seed, "athletes": size, "prior_sd": sd,
                "chosen": chosen.extension_prior_sd, "step": chosen.step,
                "effective_parameters": fit[3],
                "mse": float(np.mean((risk - truth) ** 2)),
                "true_slope": _true_calibration(truth, risk)[0],
            })  # fmt: skip
    return pd.DataFrame(rows)


def run_spread_by_size(
    seeds_per_size: dict[int, int], worlds: list[str], first_seed: int, test_athletes: int
) -> ClinicTable:
    """The registered model at each size over ``seeds_per_size[size]`` seeds from
    ``first_seed`` on: the distribution of its slope against the truth between draws."""
    seeds = [first_seed + k for k in range(max(seeds_per_size.values()))]
    table = run_registered(sorted(seeds_per_size), worlds, seeds, test_athletes, seeds_per_size)
    return ClinicTable(table, test_athletes, tuple(seeds))


def render_spread_by_size(b: ClinicTable, aim: tuple[float, float] = (0.9, 1.1)) -> str:
    """The section on the registered model's spread against the truth, draw by draw."""
    lo, hi = aim
    lines = [
        "## Spread of the registered model against the truth, draw by draw",
        "",
        "What `hamrisk train` registers (the ladder fitted on every episode), trained on many"
        " independently simulated clinics of each size and world (seeds from"
        f" {b.seeds[0]} on; the `draws` column says how many) and scored on an independent"
        f" cohort of {b.test_athletes:,} athletes per seed. Slope vs truth: the simulator's"
        " true log-odds regressed on the predicted log-odds (1: the predicted spread matches"
        f" the true one; aim {lo}–{hi}). One clinic's slope is one draw of a ratio whose"
        " denominator (the predicted spread) is itself estimated, so single draws scatter"
        " around the expected value: the mean and the median of the draws are shown, with"
        " their 10th–90th percentile and the share of draws inside the aim. Coverage: share"
        " of true risks inside `[risk_ci_low, risk_ci_high]` (nominal 95%, a confidence"
        " interval of the estimate: see the model card).",
        "",
        "| world | athletes | draws | steps chosen | slope vs truth: mean | median |"
        " 10th–90th percentile | draws inside the aim | MSE to truth | coverage |",
        "|---|---:|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    t = b.table
    for (world, size), cell in t.groupby(["world", "athletes"], sort=False):
        slopes = cell["true_slope"].to_numpy(dtype=np.float64)
        steps = cell["step"].value_counts()
        chosen = ", ".join(f"{step} {n}" for step, n in steps.items())
        p10, p90 = np.percentile(slopes, [10, 90]) if len(slopes) > 1 else (slopes[0],) * 2
        inside = int(np.sum((slopes >= lo) & (slopes <= hi)))
        lines.append(
            f"| {world} | {size:,} | {len(cell)} | {chosen} | {slopes.mean():.3f}"
            f" | {np.median(slopes):.3f} | {p10:.2f}–{p90:.2f} | {inside} of {len(cell)}"
            f" | {cell['mse'].mean():.4f} | {cell['coverage'].mean():.0%} |"
        )
    means = t.groupby(["world", "athletes"])["true_slope"].mean()
    met = means[(means >= lo) & (means <= hi)]
    lines += [
        "",
        f"Mean slope against the truth inside {lo}–{hi} in {len(met)} of {len(means)} cells"
        + (
            "."
            if len(met) == len(means)
            else "; outside: "
            + ", ".join(f"{w} at {s:,} ({v:.3f})" for (w, s), v in means.drop(met.index).items())
            + "."
        ),
    ]
    return "\n".join(lines)


def run_extension_lasso(
    sizes: list[int],
    worlds: list[str],
    seeds: list[int],
    test_athletes: int,
    strengths: list[float],
) -> pd.DataFrame:
    """The extension under its normal prior (as registered) and under a Laplace prior."""
    from glum import GeneralizedLinearRegressor
    from scipy.special import expit

    from models.updating import (
        Extension,
        UpdatedModel,
        _fit_penalised,
        _group_folds,
        _log_likelihood,
        _one_thread,
    )

    train = load_config(TrainConfig, name="train")
    literature = load_config(LiteratureConfig, name="literature")
    config = literature.updating

    def lasso(columns: np.ndarray, y: np.ndarray, w: np.ndarray, l2: np.ndarray,
              l1: np.ndarray) -> object:  # fmt: skip
        # glum: deviance / (2 sum w) + alpha (r P1|b| + (1 - r) / 2 b'P2 b); at alpha =
        # 2 / sum w and r = 1/2 that is (-loglik + P1|b| + 1/2 b'P2 b) / sum w.
        return GeneralizedLinearRegressor(
            family="binomial", alpha=2.0 / w.sum(), l1_ratio=0.5,
            P1=np.concatenate([[0.0], l1]), P2=np.concatenate([[0.0], l2]),
            fit_intercept=True, gradient_tol=1e-8, max_iter=500,
        ).fit(columns, y, sample_weight=w)  # fmt: skip

    rows = []
    for world, seed, size, test, truth, training in _cells(
        train, worlds, seeds, test_athletes, lambda _: sizes
    ):
        progress(f"extension lasso: {world}, {size:,} athletes, seed {seed}")
        data = training()
        X = data.features
        base = LiteratureModel.from_config(literature).fit(X)
        chosen = update_from_config(base, X, data.labels, data.weights, data.groups, config)
        if chosen.penalty_strength is None or chosen.extension_prior_sd is None:
            continue
        known = data.weights > 0
        y, w, g = data.labels[known], data.weights[known], data.groups[known]
        w = w * (w.sum() / np.sum(w**2))
        z = base.term_matrix(X)[known]
        o = base.intercept_ + z @ base.coef_
        extension = Extension.of(base, X)
        columns = np.column_stack([o, z, extension.matrix(X)[known]])
        published = chosen.penalty_strength / base.coef_se_**2
        k, m = len(published), len(extension.columns)
        l2 = np.concatenate([published, np.zeros(m)])
        rate = float(np.sum(w * y) / w.sum())

        def l1(weight: float, c: float, k: int = k, m: int = m, rate: float = rate) -> np.ndarray:
            return np.concatenate(
                [np.zeros(k), np.full(m, c * np.sqrt(weight * rate * (1 - rate)))]
            )

        losses = np.zeros(len(strengths))
        folds = _group_folds(
            n_splits=config.cv_folds, shuffle=True, random_state=config.random_state
        )
        with _one_thread():
            for tr, te in folds.split(columns, y, g):
                for i, c in enumerate(strengths):
                    fit = lasso(columns[tr], y[tr], w[tr], l2, l1(w[tr].sum(), c))
                    eta = fit.intercept_ + columns[te] @ fit.coef_
                    losses[i] -= _log_likelihood(y[te], expit(eta), w[te])
            c = strengths[int(np.argmin(losses))]
            fit = lasso(columns, y, w, l2, l1(w.sum(), c))
        zt = base.term_matrix(test.features)
        test_columns = np.column_stack(
            [base.intercept_ + zt @ base.coef_, zt, extension.matrix(test.features)]
        )
        sparse = expit(fit.intercept_ + test_columns @ fit.coef_)
        tau = chosen.extension_prior_sd
        ridge = _fit_penalised(columns[:, 1:], y, w, o, extension.penalties(published, tau))
        normal = UpdatedModel(base, "extension", *ridge[:2], 0.0, extension).predict_risk(
            test.features
        )
        for prior, risk, kept in (
            ("normal", normal, m),
            ("laplace", sparse, int(np.sum(np.abs(fit.coef_[1 + k :]) > 1e-8))),
        ):
            rows.append({
                "world": world, "seed": seed, "athletes": size, "step": chosen.step,
                "prior": prior, "setting": chosen.extension_prior_sd if prior == "normal" else c,
                "terms_kept": kept, "mse": float(np.mean((risk - truth) ** 2)),
                "true_slope": _true_calibration(truth, np.asarray(risk))[0],
            })  # fmt: skip
        print(pd.DataFrame(rows[-2:]).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def _mean_table(table: pd.DataFrame) -> pd.DataFrame:
    scored = table.dropna(subset=["mse"])
    return scored.groupby(["world", "athletes", "model"])[
        ["mse", "auc", "slope", "bias"]
    ].mean().unstack("model")  # fmt: skip


def render_ladder(b: ClinicTable) -> str:
    """The Ladder section of the benchmark document."""
    t = b.table.dropna(subset=["mse"])
    lines = [
        "## Ladder: training that respects the sample",
        "",
        f"Simulated clinics in three worlds, each model scored on an independent cohort of"
        f" {b.test_athletes:,} athletes per seed (seeds {', '.join(map(str, b.seeds))}; means"
        " over the `seeds` column's cohorts, each with its own test cohort). MSE to the true"
        " risk (lower is better), IPCW-weighted AUC, calibration"
        " slope, mean predicted minus mean true risk. `hamrisk` is what `hamrisk train`"
        " registers; `step` the ladder's choice.",
        "",
        "| world | athletes | seeds | step | MSE hamrisk | literature | updated | logistic IPCW"
        " | AUC hamrisk | slope hamrisk | bias hamrisk | slope vs truth | 95% interval covers |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (world, size), cell in t.groupby(["world", "athletes"], sort=False):
        by = cell.groupby("model")[["mse", "auc", "slope", "bias"]].mean()
        hamrisk = cell[cell["model"] == "hamrisk"]
        steps = ", ".join(hamrisk["step"].astype(str))
        h = by.loc["hamrisk"]
        lines.append(
            f"| {world} | {size:,} | {len(hamrisk)} | {steps} | {h['mse']:.4f}"
            f" | {by.loc['literature', 'mse']:.4f}"
            f" | {by.loc['updated', 'mse']:.4f} | {by.loc['logistic_ipcw', 'mse']:.4f}"
            f" | {h['auc']:.3f} | {h['slope']:.2f} | {h['bias']:+.3f}"
            f" | {hamrisk['true_slope'].mean():.2f} | {hamrisk['coverage'].mean():.0%} |"
        )
    lines += [
        "",
        "The same cohorts, each model's discrimination and calibration on the test cohort's"
        " outcomes (hamrisk / literature / updated / logistic IPCW):",
        "",
        "| world | athletes | AUC | calibration slope | mean bias |",
        "|---|---:|---|---|---|",
    ]
    for (world, size), cell in t.groupby(["world", "athletes"], sort=False):
        by = cell.groupby("model")[["auc", "slope", "bias"]].mean().reindex(list(MODELS))
        lines.append(
            f"| {world} | {size:,} | {' / '.join(f'{v:.3f}' for v in by['auc'])}"
            f" | {' / '.join(f'{v:.2f}' for v in by['slope'])}"
            f" | {' / '.join(f'{v:+.3f}' for v in by['bias'])} |"
        )
    h = t[t["model"] == "hamrisk"]
    should = h[h["should"].astype(bool)]
    should_not = h[~h["should"].astype(bool)]
    lines += [
        "",
        "First version's alias (no champion yet: compared with the literature model):"
        f" champion in {int((should['alias'] == CHAMPION).sum())} of {len(should)} cohorts"
        " where it should be (its calibration against the truth within the gates'"
        f" tolerances), in {int((should_not['alias'] == CHAMPION).sum())} of {len(should_not)}"
        " where it should not. Judged instead by whether it is closer to the truth than the"
        " literature model it would replace (MSE on the test cohort): champion in"
        f" {int((h['better'].astype(bool) & (h['alias'] == CHAMPION)).sum())} of"
        f" {int(h['better'].astype(bool).sum())} cohorts where it is, in"
        f" {int((~h['better'].astype(bool) & (h['alias'] == CHAMPION)).sum())} of"
        f" {int((~h['better'].astype(bool)).sum())} where it is not.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 250, 500, 1000])
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[20261126])
    parser.add_argument("--test-athletes", type=int, default=10_000)
    parser.add_argument("--registered-only", action="store_true")
    parser.add_argument("--extension-sweep", type=float, nargs="+", metavar="PRIOR_SD")
    parser.add_argument("--extension-lasso", type=float, nargs="+", metavar="C")
    args = parser.parse_args()
    if args.extension_lasso:
        table = run_extension_lasso(
            args.sizes, args.worlds, args.seeds, args.test_athletes, args.extension_lasso
        )
        print(table.to_string(index=False))
        summary = table.groupby(["world", "athletes", "prior"])[["mse", "true_slope"]]
        print(summary.agg(["mean", "median"]).to_string())
        return
    if args.extension_sweep:
        table = run_extension_sweep(
            args.sizes, args.worlds, args.seeds, args.test_athletes, args.extension_sweep
        )
        print(table.to_string(index=False))
        return
    if args.registered_only:
        table = run_registered(args.sizes, args.worlds, args.seeds, args.test_athletes)
        print(table.to_string(index=False))
        return
    bench = run_ladder(args.sizes, args.worlds, args.seeds, args.test_athletes)
    print(render_ladder(bench))


if __name__ == "__main__":
    main()
