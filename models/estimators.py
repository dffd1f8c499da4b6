"""The risk model: fitted feature prep, a classifier, a calibrator and a bootstrap ensemble.

One :class:`RiskModel` carries the whole transform from a feature frame to a calibrated
risk, so scoring cannot drift from training (one artifact, one code path). It follows
scikit-learn's estimator contract: ``__init__`` stores its arguments, ``fit`` validates and
returns ``self``, learned attributes end in ``_``.

Two classifiers:

* ``"lightgbm"``: gradient-boosted trees with the clinically known directions as monotone
  constraints (more prior injuries never lowers risk; a more symmetric limb never raises
  it) and LightGBM's native handling of missing values and categories.
* ``"logistic"``: the baseline it must beat, an L2-penalised logistic regression after
  median imputation with missing-value indicators, standardisation and one-hot coding of
  categories, as one scikit-learn Pipeline.

The fitting procedure, for LightGBM:

1. **Rounds by grouped cross-validation.** The configured number of rounds is a ceiling.
   The episodes are split into ``cv`` folds by athlete; every fold's booster grows with
   its held-out athletes as the validation set, and the number of rounds that minimises
   the held-out IPCW-weighted log loss, averaged over folds, is kept (``lightgbm.cv``
   with early stopping). A fixed count fits a 300-episode clinic and a 20,000-episode
   registry alike badly: too few rounds at a low learning rate leave the risks too
   moderate (calibration slope above 1 against the truth), too many overfit.
2. **Size-aware leaves.** ``min_child_samples`` is capped at a twentieth of the rows a
   tree sees (after bagging), so a few hundred episodes can still be split; a model that
   cannot split is a constant, which training must never return.
3. **Calibration of what is deployed.** Platt or isotonic maps (or the choice between
   them by grouped cross-validation) are fitted on the cross-fitted scores of step 1:
   each episode's score comes from a booster of the same procedure (same rounds, same
   parameters) that never saw that athlete. The booster that is deployed is refitted on
   all episodes with those rounds, so the calibrator is learned on scores of the very
   predictor it is applied to, up to the fold's smaller sample (the "cross-fitted, single
   final model" variant of scikit-learn's ``CalibratedClassifierCV(ensemble=False)``).
   The earlier design fitted Platt on out-of-fold scores of a fixed-round booster that
   was far from log-loss optimal, and the map learned there over-shrank the final model
   (held-out slope 1.19). When the cross-fitted scores run against the outcome (a
   negative Platt slope, possible by chance on a small cohort), the map keeps the
   booster's own slope and corrects only the intercept instead of flattening the model.

Per-athlete intervals come from a bootstrap of this whole procedure; see
:meth:`RiskModel.predict_interval`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from models.additive import AdditiveTables, tabulate
from models.calibration import CALIBRATORS, SigmoidCalibrator, choose_calibration
from models.compact import Assessment, CompactCalibrator, CompactRiskModel, bootstrap_interval
from models.drift import build_reference
from models.prep import FeaturePrep, check_targets

Kind = Literal["lightgbm", "logistic"]

# Defaults sized for cohorts of a few thousand episodes with a ~1 in 3 event rate: shallow
# trees and a modest learning rate, L2 on leaf values; the grid in configs/ overrides them.
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "reg_lambda": 1.0,
}
LOGISTIC_DEFAULTS: dict[str, Any] = {"C": 1.0, "max_iter": 2000}
# Aliases LightGBM accepts for the number of boosting rounds.
_ROUND_ALIASES = (
    "n_estimators",
    "num_iterations",
    "num_iteration",
    "n_iter",
    "num_tree",
    "num_trees",
    "num_round",
    "num_rounds",
    "num_boost_round",
)
# A leaf must hold at least this share of the rows a tree sees (after bagging): with the
# configured min_child_samples (tuned at thousands of episodes) a stump cannot split at a
# few hundred, and a model that never splits is a constant.
_MIN_LEAF_SHARE = 1 / 20


def _lightgbm_rounds(params: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Split the number of boosting rounds out of LightGBM params."""
    params = dict(params)
    rounds = LIGHTGBM_DEFAULTS["n_estimators"]
    for alias in _ROUND_ALIASES:
        if alias in params:
            rounds = int(params.pop(alias))
    return params, rounds


class RiskModel(ClassifierMixin, BaseEstimator):
    """Calibrated probability of a recurrence within the window, from a feature frame.

    Args:
        kind: ``"lightgbm"`` or ``"logistic"``.
        params: hyperparameters of the classifier (LightGBM's names or aliases; for the
            logistic baseline ``C`` and ``max_iter``). Unset ones take the module defaults.
        monotone: feature -> +1 (risk never falls as it grows), -1 (never rises), 0.
            Honoured by LightGBM; the logistic baseline ignores it.
        categorical: features to treat as categories (text columns always are).
        calibration: ``"sigmoid"``, ``"isotonic"``, ``"auto"`` (lower grouped-CV
            weighted log loss of the two) or ``"none"``.
        cv: folds for the cross-fitted calibration scores (grouped by athlete).
        n_bootstrap: bootstrap ensemble size for :meth:`predict_interval` (0: none).
        early_stopping: LightGBM only: the configured rounds are a ceiling, and the number
            used is chosen by grouped cross-validation, stopping after this many rounds
            without improvement of the held-out weighted log loss (0: fixed rounds).
        random_state: seed for folds, bootstrap draws and LightGBM.

    Fitted attributes: ``feature_names_in_``, ``n_features_in_``, ``classes_``,
    ``prep_``, ``params_`` (the classifier's effective parameters, LightGBM's chosen
    ``n_estimators`` and capped ``min_child_samples`` included), ``classifier_``,
    ``calibrator_``, ``calibration_``, ``calibration_losses_``, ``members_`` and
    ``member_calibration_`` (each member's Platt slope and intercept), ``cv_scores_``
    (per fold, ``log_loss`` and ``brier`` of the cross-fitted scores, when computed),
    ``base_rate_`` (weighted event rate of the training episodes),
    ``reference_`` (binned training distributions, see :mod:`models.drift`),
    ``additive_`` (step tables of the classifier and members when every tree splits on one
    feature, as boosted stumps do; ``None`` otherwise; see :mod:`models.additive`).
    """

    def __init__(
        self,
        kind: Kind = "lightgbm",
        params: Mapping[str, Any] | None = None,
        monotone: Mapping[str, int] | None = None,
        categorical: Sequence[str] | None = None,
        calibration: Literal["sigmoid", "isotonic", "auto", "none"] = "auto",
        cv: int = 5,
        n_bootstrap: int = 8,
        early_stopping: int = 100,
        random_state: int | None = None,
    ) -> None:
        self.kind = kind
        self.params = params
        self.monotone = monotone
        self.categorical = categorical
        self.calibration = calibration
        self.cv = cv
        self.n_bootstrap = n_bootstrap
        self.early_stopping = early_stopping
        self.random_state = random_state

    # ---- fitting -------------------------------------------------------------------

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        sample_weight: np.ndarray | pd.Series | None = None,
        groups: np.ndarray | pd.Series | None = None,
    ) -> RiskModel:
        """Fit prep, classifier, calibrator and bootstrap ensemble.

        Args:
            X: features, one row per episode.
            y: 1.0 recurred, 0.0 no recurrence, NaN outcome unknown.
            sample_weight: IPCW weights (0 for unknown outcomes). When ``None``, known
                outcomes weigh 1 and unknown ones are left out (naive dropping).
            groups: athlete ids; folds and bootstrap draws keep an athlete's episodes
                together. ``None`` treats every episode as its own athlete.

        Raises:
            ValueError: invalid arguments or inputs, with the offending name and row.
        """
        self._check_params()
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of features, got {type(X).__name__}")
        y_arr, w_arr, g_arr = check_targets(X, y, sample_weight, groups)
        categorical = list(self.categorical or ())
        unknown = [c for c in categorical if c not in X.columns]
        if unknown:
            raise ValueError(f"categorical names column(s) not in the feature frame: {unknown}")

        self.prep_ = FeaturePrep().fit(X, categorical)
        self.feature_names_in_ = self.prep_.feature_names_
        self.n_features_in_ = len(self.feature_names_in_)
        self.classes_ = np.array([0, 1])
        self.reference_ = build_reference(X, categorical=categorical)
        self.monotone_constraints_ = self._monotone_constraints()

        matrix = self.prep_.transform(X)
        used = w_arr > 0
        if not used.any():
            raise ValueError("no episode has a known outcome with positive weight")
        m, yk, wk, gk = matrix[used], y_arr[used], w_arr[used], g_arr[used]
        if len(np.unique(yk)) < 2:
            raise ValueError("training needs both recurrences and non-recurrences")
        self.base_rate_ = float(np.sum(wk * yk) / np.sum(wk))

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        fold_seed = int(rng.randint(np.iinfo(np.int32).max))
        self.params_ = self._effective_params(m, yk)
        method = self.calibration
        self.calibration_losses_: dict[str, float] = {}
        oof = None
        if self.kind == "lightgbm" and self.early_stopping:
            folds = self._folds(m, yk, gk, fold_seed)
            oof = self._cv_rounds(m, yk, wk, folds, seed)
        elif method != "none":
            folds = self._folds(m, yk, gk, fold_seed)
            oof = self._cross_fitted_scores(m, yk, wk, folds, seed)
        self.cv_scores_ = None if oof is None else _fold_scores(oof, yk, wk, folds)
        if method == "auto":
            method, self.calibration_losses_ = choose_calibration(oof, yk, wk, gk, self.cv)
        self.classifier_ = self._fit_classifier(m, yk, wk, seed)
        if method == "none":
            self.calibrator_ = CALIBRATORS["none"]()
        else:
            self.calibrator_ = CALIBRATORS[method]().fit(oof, yk, wk)
            if np.ptp(self.calibrator_.predict(oof)) == 0:
                # The cross-fitted scores ran against the outcome (by chance, on a small
                # cohort): keep the booster's own spread, correct calibration-in-the-large.
                method = "sigmoid"
                self.calibrator_ = SigmoidCalibrator().fit(oof, yk, wk, slope=1.0)
        self.calibration_ = method
        self.members_, self.member_calibration_ = self._fit_members(m, yk, wk, gk, rng)
        self.additive_ = self._tabulate()
        if self.kind == "lightgbm":
            self.path_table_ = _path_table(self.classifier_, self.n_features_in_)
        if self.kind == "logistic":
            prep = self.classifier_[:-1]
            self.design_mean_ = prep.transform(m).mean(axis=0)
            self.design_map_ = _logistic_feature_map(prep, self.n_features_in_)
        return self

    def _check_params(self) -> None:
        if self.kind not in ("lightgbm", "logistic"):
            raise ValueError(f'kind must be "lightgbm" or "logistic" (got {self.kind!r})')
        if self.calibration not in ("sigmoid", "isotonic", "auto", "none"):
            raise ValueError(
                'calibration must be "sigmoid", "isotonic", "auto" or "none" '
                f"(got {self.calibration!r})"
            )
        if not (isinstance(self.cv, int) and self.cv >= 2):
            raise ValueError(f"cv must be an integer >= 2 (got {self.cv!r})")
        if not (isinstance(self.early_stopping, int) and self.early_stopping >= 0):
            raise ValueError(
                f"early_stopping must be a non-negative integer (got {self.early_stopping!r})"
            )
        if not (isinstance(self.n_bootstrap, int) and self.n_bootstrap >= 0):
            raise ValueError(
                f"n_bootstrap must be a non-negative integer (got {self.n_bootstrap!r})"
            )

    def _monotone_constraints(self) -> list[int]:
        monotone = dict(self.monotone or {})
        names = list(self.feature_names_in_)
        unknown = [k for k in monotone if k not in names]
        if unknown:
            raise ValueError(f"monotone names column(s) not in the feature frame: {unknown}")
        bad = {k: v for k, v in monotone.items() if v not in (-1, 0, 1)}
        if bad:
            raise ValueError(f"monotone directions must be -1, 0 or +1 (got {bad})")
        on_categories = [
            k for k, v in monotone.items() if v and self.prep_.kinds_[k] == "categorical"
        ]
        if on_categories:
            raise ValueError(f"a categorical feature has no direction: {on_categories}")
        return [int(monotone.get(n, 0)) for n in names]

    def _folds(
        self, m: np.ndarray, y: np.ndarray, g: np.ndarray, fold_seed: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        n_groups = len(np.unique(g))
        if n_groups < self.cv:
            raise ValueError(f"cv={self.cv} folds need at least {self.cv} athletes, got {n_groups}")
        # GroupKFold rather than StratifiedGroupKFold: the latter's greedy assignment is a
        # Python loop over athletes, slow at tens of thousands, and with hundreds of
        # athletes per fold the event share differs little between folds anyway.
        folds = GroupKFold(n_splits=self.cv, shuffle=True, random_state=fold_seed)
        return list(folds.split(m, y, g))

    def _cross_fitted_scores(
        self,
        m: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        folds: list[tuple[np.ndarray, np.ndarray]],
        seed: int,
    ) -> np.ndarray:
        oof = np.empty(len(y))
        for train, test in folds:
            clf = self._fit_classifier(m[train], y[train], w[train], seed)
            oof[test] = self._raw_score(clf, m[test])
        return oof

    def _cv_rounds(
        self,
        m: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        folds: list[tuple[np.ndarray, np.ndarray]],
        seed: int,
    ) -> np.ndarray:
        """Choose the rounds by grouped CV (sets ``params_["n_estimators"]``); return the
        cross-fitted raw scores of the fold boosters at that many rounds.

        ``lightgbm.cv`` grows the folds' boosters in step and stops when the mean over
        folds of the held-out weighted log loss (LightGBM's ``binary_logloss`` weighs by
        the validation rows' weights: the IPCW weights) has not improved for
        ``early_stopping`` rounds. The bin boundaries are found once on all rows, as
        LightGBM's own cross-validation does; they carry no outcome information.
        """
        params, ceiling = _lightgbm_rounds(self.params_)
        params = self._booster_params(params, seed)
        result = lgb.cv(
            {**params, "metric": "binary_logloss"},
            self._dataset(m, y, w),
            num_boost_round=ceiling,
            folds=folds,
            callbacks=[lgb.early_stopping(self.early_stopping, verbose=False)],
            return_cvbooster=True,
        )
        booster: lgb.CVBooster = result["cvbooster"]
        curve = np.asarray(result["valid binary_logloss-mean"])
        rounds = int(np.argmin(curve)) + 1
        self.params_ = {**self.params_, "n_estimators": rounds}
        oof = np.empty(len(y))
        for (_, test), fold_booster in zip(folds, booster.boosters, strict=True):
            oof[test] = fold_booster.predict(m[test], raw_score=True, num_iteration=rounds)
        return oof

    def _effective_params(self, m: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """The classifier's parameters with defaults filled in and, for LightGBM, the
        rounds under one name and ``min_child_samples`` capped for the sample size."""
        if self.kind == "logistic":
            return {**LOGISTIC_DEFAULTS, **(self.params or {})}
        params, rounds = _lightgbm_rounds({**LIGHTGBM_DEFAULTS, **(self.params or {})})
        bagged = float(params.get("bagging_fraction", 1.0)) if params.get("bagging_freq") else 1.0
        # The smaller fit of the procedure is a cross-validation fold.
        rows = len(y) * (1 - 1 / self.cv) * bagged
        cap = max(2, int(rows * _MIN_LEAF_SHARE))
        params["min_child_samples"] = min(int(params.get("min_child_samples", 20)), cap)
        return {**params, "n_estimators": rounds}

    def _booster_params(self, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
        params = dict(params)
        params.update(
            objective="binary",
            seed=seed,
            deterministic=True,
            force_row_wise=True,
            verbosity=-1,
            monotone_constraints=self.monotone_constraints_,
            # The "advanced" method keeps constraints exact while splitting less
            # conservatively than "basic" (LightGBM docs, monotone_constraints_method).
            monotone_constraints_method="advanced",
        )
        params.setdefault("num_threads", 1)
        return params

    def _dataset(
        self, m: np.ndarray, y: np.ndarray, w: np.ndarray, reference: lgb.Dataset | None = None
    ) -> lgb.Dataset:
        return lgb.Dataset(
            m,
            label=y,
            weight=w,
            feature_name=[f"f{j}" for j in range(m.shape[1])],
            categorical_feature=self.prep_.categorical_index_,
            reference=reference,
            free_raw_data=True,
            params={"verbosity": -1},
        )

    def _fit_classifier(
        self,
        m: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        seed: int,
        stop_on: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> Any:
        """The classifier fitted with ``params_``; with ``stop_on`` (rows, outcomes,
        weights) LightGBM stops early on their weighted log loss and keeps the best
        rounds."""
        if self.kind == "logistic":
            return self._fit_logistic(m, y, w)
        params, rounds = _lightgbm_rounds(self.params_)
        params = self._booster_params(params, seed)
        data = self._dataset(m, y, w)
        if stop_on is None:
            return lgb.train(params, data, num_boost_round=rounds)
        valid = self._dataset(*stop_on, reference=data)
        ceiling = _lightgbm_rounds({**LIGHTGBM_DEFAULTS, **(self.params or {})})[1]
        booster = lgb.train(
            {**params, "metric": "binary_logloss"},
            data,
            num_boost_round=ceiling,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.early_stopping, verbose=False)],
        )
        best = int(booster.best_iteration) or booster.current_iteration()
        # A booster of exactly the chosen rounds: its dump, step tables and predictions
        # then need no num_iteration.
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))

    def _fit_logistic(self, m: np.ndarray, y: np.ndarray, w: np.ndarray) -> Pipeline:
        params = dict(self.params_)
        cat = self.prep_.categorical_index_
        num = [j for j in range(m.shape[1]) if j not in cat]
        transformers = [
            (
                "numeric",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                strategy="median", add_indicator=True, keep_empty_features=True
                            ),
                        ),
                        ("scale", StandardScaler()),
                    ]
                ),
                num,
            )
        ]
        if cat:
            transformers.append(
                (
                    "categorical",
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                    cat,
                )
            )
        model = Pipeline(
            [
                ("prep", ColumnTransformer(transformers, sparse_threshold=0.0)),
                ("logistic", LogisticRegression(**params)),
            ]
        )
        return model.fit(m, y.astype(int), logistic__sample_weight=w)

    def _fit_members(
        self,
        m: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        g: np.ndarray,
        rng: np.random.RandomState,
    ) -> tuple[list[Any], np.ndarray]:
        """Bootstrap replicates of the fitting procedure, and each one's Platt map.

        Each member resamples athletes with replacement and repeats what the main fit does
        with what that draw leaves out: LightGBM's rounds are chosen by early stopping on
        the out-of-bag athletes' weighted log loss (the draw's own held-out set, one fit
        instead of ``cv``), and a Platt map is fitted on their scores. The candidate, its
        other parameters and the censoring weights are held at the main fit's.
        """
        labels, index = np.unique(g, return_inverse=True)

        def fit_member(draw: np.ndarray, seed: int) -> tuple[Any, tuple[float, float]] | None:
            # Resampling athletes with replacement = weighting each episode by how many
            # times its athlete was drawn.
            times = np.bincount(draw, minlength=len(labels))[index].astype(np.float64)
            inbag, oob = times > 0, times == 0
            if len(np.unique(y[inbag])) < 2 or len(np.unique(y[oob])) < 2:
                return None
            held_out = (m[oob], y[oob], w[oob])
            stop_on = held_out if self.kind == "lightgbm" and self.early_stopping else None
            member = self._fit_classifier(
                m[inbag], y[inbag], w[inbag] * times[inbag], seed, stop_on=stop_on
            )
            score = self._raw_score(member, held_out[0])
            platt = SigmoidCalibrator().fit(score, held_out[1], held_out[2])
            if platt.slope_ <= 0:
                platt = SigmoidCalibrator().fit(score, held_out[1], held_out[2], slope=1.0)
            return member, (platt.slope_, platt.intercept_)

        # One after another: LightGBM 4.7 fitting boosters from several Python threads at
        # once crashed (a general protection fault in lib_lightgbm.so) on the reference
        # machine, so members are not fitted in threads.
        fitted = []
        for _ in range(self.n_bootstrap):
            draw = rng.randint(len(labels), size=len(labels))
            member = fit_member(draw, int(rng.randint(np.iinfo(np.int32).max)))
            if member is not None:
                fitted.append(member)
        members = [member for member, _ in fitted]
        calibration = np.array([c for _, c in fitted], dtype=np.float64).reshape(-1, 2)
        return members, calibration

    # ---- prediction ----------------------------------------------------------------

    def _raw_score(self, clf: Any, m: np.ndarray) -> np.ndarray:
        if isinstance(clf, lgb.Booster):
            return clf.predict(m, raw_score=True)
        return clf.decision_function(m)

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "classifier_")
        return self.prep_.transform(X)

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated risk of a recurrence within the window, one per row."""
        m = self._matrix(X)
        tables = self._additive()
        if tables is not None:
            main = tables.raw_scores(tables.bins(m), ensembles=[0])[:, 0]
        else:
            main = self._raw_score(self.classifier_, m)
        return self.calibrator_.predict(main)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, 2)``: probability of no recurrence, of a recurrence."""
        p = self.predict_risk(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the risk is at least the training base rate (a screening cut, not a label)."""
        return (self.predict_risk(X) >= self.base_rate_).astype(int)

    def predict_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap interval for each row's risk.

        Method: each member repeats the fitting procedure on athletes resampled with
        replacement, its own rounds and Platt map included (:meth:`_fit_members`). For a
        row, the standard deviation of the members' calibrated log-odds estimates how the
        procedure's answer would vary over cohorts of the same size; the interval is the
        main risk's log-odds plus and minus that many normal quantiles, mapped back to a
        probability (the normal bootstrap interval, Efron & Tibshirani 1993, ch. 13.2).
        The normal form is used rather than the members' percentiles because a 2.5%
        percentile needs hundreds of members to be stable, a standard deviation a few
        dozen; on the log-odds scale the members' spread is close to symmetric. It is an
        interval for the risk this procedure estimates (sampling variability), not for
        the outcome, and it cannot see bias the whole procedure shares, such as the
        smoothing of a rare combination of features; ``docs/model-card.md`` reports its
        coverage of the simulator's true risks. Bounds always contain the point risk.

        Raises:
            ValueError: the model was fitted with ``n_bootstrap=0`` (or too few athletes),
                or ``level`` is outside (0, 1).
        """
        assessed = self.assess(X, level, contributions=False)
        return assessed.risk_ci_low, assessed.risk_ci_high

    def assess(
        self, X: pd.DataFrame, level: float = 0.95, contributions: bool = True
    ) -> Assessment:
        """Risk, its interval (:meth:`predict_interval`) and, if asked, the contributions
        (:meth:`contributions`, SHAP), from one pass over ``X``.

        Equal to calling the three methods, at the cost of about one: the features are
        prepared once, and the trees are walked once for the model and its members (for an
        additive ensemble, one table look-up per feature serves them all).

        Raises:
            ValueError: as :meth:`predict_interval`.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1) (got {level})")
        if len(self.members_) < 2:
            raise ValueError("no bootstrap ensemble: fit with n_bootstrap >= 2 for intervals")
        m = self._matrix(X)
        tables = self._additive()
        values = None
        if tables is not None:
            bins = tables.bins(m)
            # Columns after the first hold the members' calibrated log-odds (_tabulate).
            raw = tables.raw_scores(bins)
            main, spread = raw[:, 0], raw[:, 1:].T
            if contributions:
                values = tables.contributions(bins)
        else:
            if contributions and isinstance(self.classifier_, lgb.Booster):
                # SHAP values sum, with the bias column, to the raw score: no second walk.
                shap = self.classifier_.predict(m, pred_contrib=True)
                values, main = shap[:, :-1], shap.sum(axis=1)
            else:
                main = self._raw_score(self.classifier_, m)
                if contributions:
                    values = self._logistic_contributions(m)
            spread = np.empty((len(self.members_), len(m)))
            for k, (member, (slope, intercept)) in enumerate(
                zip(self.members_, self._member_calibration(), strict=True)
            ):
                spread[k] = slope * self._raw_score(member, m) + intercept
        risk = self.calibrator_.predict(main)
        lo, hi = bootstrap_interval(risk, spread, level)
        frame = (
            None
            if values is None
            else pd.DataFrame(values, columns=list(self.feature_names_in_), index=X.index)
        )
        return Assessment(risk, lo, hi, frame)

    def _member_calibration(self) -> np.ndarray:
        # Models fitted before members carried their own Platt map used raw log-odds.
        calibration = getattr(self, "member_calibration_", None)
        if calibration is None:
            calibration = np.tile([1.0, 0.0], (len(self.members_), 1))
        return calibration

    def _tabulate(self) -> AdditiveTables | None:
        """Step tables of the classifier (column 0, raw log-odds) and of the members, each
        member's column mapped through its Platt map (calibrated log-odds: a linear map of
        an additive model is additive)."""
        if self.kind != "lightgbm":
            return None
        categories = {
            j: len(self.prep_.categories_[self.feature_names_in_[j]])
            for j in self.prep_.categorical_index_
        }
        tables = tabulate([self.classifier_, *self.members_], self.n_features_in_, categories)
        if tables is None:
            return None
        calibration = self._member_calibration()
        return tables.mapped(
            np.concatenate([[1.0], calibration[:, 0]]), np.concatenate([[0.0], calibration[:, 1]])
        )

    def _additive(self) -> AdditiveTables | None:
        # Models fitted before the tables existed get them on first use.
        if not hasattr(self, "additive_"):
            self.additive_ = self._tabulate()
        return self.additive_

    def compact(self) -> CompactRiskModel | None:
        """The same model as numpy arrays and floats, which unpickle without LightGBM,
        scikit-learn or SciPy (:mod:`models.compact`); ``None`` when the classifier is not
        an additive ensemble (trees with interactions, the logistic baseline)."""
        check_is_fitted(self, "classifier_")
        tables = self._additive()
        if tables is None:
            return None
        compact = CompactRiskModel(
            prep=self.prep_,
            tables=tables,
            calibrator=CompactCalibrator.of(self.calibrator_),
            base_rate=self.base_rate_,
            reference=self.reference_,
        )
        # The timing of recurrences (models.curve.risk_curve reads it): as numpy arrays when
        # it is the cohort's shape for all or that shape shifted by linear effects, else the
        # fitted model (loading LightGBM).
        timing = getattr(self, "timing_", None)
        if timing is not None:
            compact.timing_ = timing.compact()
        return compact

    def contributions(
        self, X: pd.DataFrame, method: Literal["shap", "path"] = "shap"
    ) -> pd.DataFrame:
        """Per-feature contributions to the classifier's log-odds (before calibration).

        LightGBM, ``method="shap"``: exact tree SHAP values (``pred_contrib=True``;
        Lundberg et al. 2020, Nat Mach Intell 2:56). Its cost grows with trees x leaves x
        depth², about a hundred times a prediction, so for bulk scoring ``method="path"``
        gives the path attribution of Saabas (each split's change in node value credited
        to the split's feature), at about the cost of one prediction: it is exact in sum
        but less consistent than SHAP (Lundberg et al. 2018, arXiv:1802.03888), which is
        acceptable for naming the few largest factors. Both sum, with a constant, to the
        raw score. Logistic (either method): coefficient times the transformed value minus
        its training mean, summed over a feature's columns (its missing-value indicator,
        its one-hot columns).
        """
        if method not in ("shap", "path"):
            raise ValueError(f'method must be "shap" or "path" (got {method!r})')
        m = self._matrix(X)
        tables = self._additive()
        if tables is not None:
            # Additive ensemble: SHAP and path attributions coincide (every change along a
            # path is credited to the tree's one feature), and the tables hold both.
            values = tables.contributions(tables.bins(m))
        elif isinstance(self.classifier_, lgb.Booster) and method == "shap":
            values = self.classifier_.predict(m, pred_contrib=True)[:, :-1]
        elif isinstance(self.classifier_, lgb.Booster):
            values = _path_contributions(self.classifier_, self.path_table_, m)
        else:
            values = self._logistic_contributions(m)
        return pd.DataFrame(values, columns=list(self.feature_names_in_), index=X.index)

    def _logistic_contributions(self, m: np.ndarray) -> np.ndarray:
        z = self.classifier_[:-1].transform(m)
        coef = self.classifier_[-1].coef_[0]
        return ((z - self.design_mean_) * coef) @ self.design_map_


def _fold_scores(
    oof: np.ndarray, y: np.ndarray, w: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, list[float]]:
    """Per fold, the weighted log loss and Brier score of the cross-fitted raw scores read
    as probabilities (the classifier's own, before calibration)."""
    from scipy.special import expit

    from models.calibration import weighted_log_loss

    scores: dict[str, list[float]] = {"log_loss": [], "brier": []}
    for _, test in folds:
        p, yt, wt = expit(oof[test]), y[test], w[test]
        scores["log_loss"].append(weighted_log_loss(yt, p, wt))
        scores["brier"].append(float(np.sum(wt * (p - yt) ** 2) / np.sum(wt)))
    return scores


def _path_table(booster: lgb.Booster, n_features: int) -> np.ndarray:
    """(all leaves x features): each leaf's path attribution, leaves of tree t after t-1's.

    Walks every tree once: moving from a node to a child adds the change in node value
    (LightGBM's ``internal_value``, already shrunk) to the node's split feature.
    """
    tables = []
    for info in booster.dump_model()["tree_info"]:
        root = info["tree_structure"]
        table = np.zeros((info["num_leaves"], n_features))
        stack = [(root, np.zeros(n_features))] if "split_feature" in root else []
        while stack:
            node, path = stack.pop()
            for child in (node["left_child"], node["right_child"]):
                value = child["internal_value"] if "split_feature" in child else child["leaf_value"]
                step = path.copy()
                step[node["split_feature"]] += value - node["internal_value"]
                if "split_feature" in child:
                    stack.append((child, step))
                else:
                    table[child["leaf_index"]] = step
        tables.append(table)
    return np.vstack(tables)


def _path_contributions(booster: lgb.Booster, table: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Sum over trees of each row's leaf attribution, as a sparse product, in row chunks."""
    n_leaves = np.array([t["num_leaves"] for t in booster.dump_model()["tree_info"]])
    offsets = np.concatenate([[0], np.cumsum(n_leaves)[:-1]])
    out = np.empty((len(m), table.shape[1]))
    chunk = 50_000  # bounds the (rows x trees) leaf-index matrix to a few tens of MB
    for start in range(0, len(m), chunk):
        leaves = booster.predict(m[start : start + chunk], pred_leaf=True).astype(np.int64)
        leaves = leaves.reshape(len(leaves), -1) + offsets
        rows, trees = leaves.shape
        onehot = sparse.csr_matrix(
            (np.ones(rows * trees), leaves.ravel(), np.arange(0, rows * trees + 1, trees)),
            shape=(rows, len(table)),
        )
        out[start : start + rows] = onehot @ table
    return out


def _logistic_feature_map(prep: Pipeline, n_features: int) -> np.ndarray:
    """(design columns x features) 0/1 matrix: which input feature each column came from."""
    columns: list[int] = []
    ct: ColumnTransformer = prep[-1] if isinstance(prep, Pipeline) else prep
    for name, transformer, index in ct.transformers_:
        if name == "numeric":
            columns.extend(index)
            indicator = transformer.named_steps["impute"].indicator_
            if indicator is not None:
                columns.extend(index[j] for j in indicator.features_)
        elif name == "categorical":
            for j, cats in zip(index, transformer.categories_, strict=True):
                columns.extend([j] * len(cats))
    mapping = np.zeros((len(columns), n_features))
    mapping[np.arange(len(columns)), columns] = 1.0
    return mapping


def make_risk_model(
    kind: Kind,
    params: Mapping[str, Any] | None = None,
    random_state: int | None = None,
    **options: Any,
) -> RiskModel:
    """A :class:`RiskModel` of ``kind``; ``options`` are its other constructor arguments."""
    return RiskModel(kind=kind, params=params, random_state=random_state, **options)
