"""Which alias a new model version gets: one rule with the audit, sampling error respected.

A few dozen held-out recurrences give calibration intervals far wider than any tolerance, so
a gate on point estimates is close to a coin toss. Every calibration gate here is
:func:`models.judgement.judge_interval` on the metric's interval, the rule the audit's
verdicts use:

- a gate ``fail`` s only when the interval lies wholly outside the tolerance; the AUC fails
  only when its interval lies wholly below ``auc_min``;
- the new version is compared with a *reference* on the same episodes: the current champion
  or, when there is none, the literature model. The comparison is the difference in the
  proper score (IPCW log loss, new minus reference) with its interval.

The decision (alias):

1. any gate fails -> ``challenger``;
2. the log loss is shown worse than the reference's (the interval of the difference lies
   wholly above 0) -> ``challenger``;
3. every calibration gate passes -> ``champion``;
4. some gate cannot be judged (not enough outcomes): a version that cannot be judged does
   not displace a champion that was judged -> ``challenger``; it replaces an unjudged
   champion, the literature model or nothing when its log loss estimate is at least as good
   as the reference's (rule 2 already excludes one shown worse) -> ``champion``.

A champion is compared on the episodes outside its own development only (``pipeline.train
.compare_with_champion``); when none is left the comparison is missing (NaN) and the gates
alone decide: ``champion`` when every calibration gate passes, else ``challenger``.

``Promotion.judged`` records whether every calibration gate passed, so the next training run
knows whether the champion it faces was judged (``hamrisk.judged`` version tag).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from models.judgement import FAIL, NOT_ENOUGH, PASS, Tolerance, judge_interval

CHAMPION = "champion"
CHALLENGER = "challenger"
CALIBRATION_GATES = ("calibration_slope", "calibration_intercept")


@dataclass(frozen=True)
class GateResult:
    """One promotion check: the value, its interval, the rule and the verdict."""

    name: str
    value: float | None
    threshold: str
    verdict: str
    low: float | None = None
    high: float | None = None
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == PASS


@dataclass(frozen=True)
class Comparison:
    """The new version's log loss minus a reference's on the same episodes, with interval.

    Attributes:
        reference: what it is compared with ("champion version 3", "the literature model").
        judged: whether the reference was itself judged calibrated (a literature model or an
            unjudged champion was not).
        difference, low, high: new minus reference IPCW log loss and its interval.
    """

    reference: str
    judged: bool
    difference: float
    low: float
    high: float


@dataclass(frozen=True)
class PromotionDecision:
    """Which alias a version gets, why, and every check behind it."""

    alias: Literal["champion", "challenger"]
    reasons: list[str]
    gates: list[GateResult]
    judged: bool = False


def _value(metrics: Mapping[str, float], key: str) -> float:
    value = metrics.get(key)
    return math.nan if value is None else float(value)


def calibration_gates(metrics: Mapping[str, float], gates: Any) -> list[GateResult]:
    """The calibration gates judged from ``metrics`` (``name``, ``name_ci_low``,
    ``name_ci_high``; missing values make a gate "not enough outcomes to judge")."""
    results = []
    for name in CALIBRATION_GATES:
        rule = Tolerance.of(getattr(gates, name))
        estimate = _value(metrics, name)
        low, high = _value(metrics, f"{name}_ci_low"), _value(metrics, f"{name}_ci_high")
        if low > high:
            low, high = high, low
        judged = judge_interval(estimate, low, high, rule, name)
        results.append(
            GateResult(
                name,
                None if math.isnan(estimate) else estimate,
                f"interval reaching {rule.tolerance[0]:g} to {rule.tolerance[1]:g}",
                judged.verdict,
                None if math.isnan(low) else low,
                None if math.isnan(high) else high,
                judged.reason,
            )
        )
    return results


def auc_gate(metrics: Mapping[str, float], auc_min: float) -> GateResult:
    """Fails only when the AUC interval lies wholly below ``auc_min``."""
    estimate = _value(metrics, "auc")
    high = _value(metrics, "auc_ci_high")
    high = estimate if math.isnan(high) else high
    low = _value(metrics, "auc_ci_low")
    threshold = f"interval reaching >= {auc_min:g}"
    if math.isnan(estimate):
        return GateResult("auc", None, threshold, NOT_ENOUGH, reason="auc was not computed")
    if high < auc_min:
        return GateResult(
            "auc", estimate, threshold, FAIL, low, high,
            f"auc {estimate:.3f} (up to {high:.3f}) lies wholly below {auc_min:g}",
        )  # fmt: skip
    return GateResult("auc", estimate, threshold, PASS, low, high, "")


def decide(
    metrics: Mapping[str, float], gates: Any, comparison: Comparison | None
) -> PromotionDecision:
    """The alias of a new version (module docstring).

    Args:
        metrics: the new version's metrics with their intervals (``calibration_slope``,
            ``calibration_slope_ci_low``, ``calibration_slope_ci_high``, the same for
            ``calibration_intercept`` and ``auc``).
        gates: ``pipeline.config.GatesConfig`` (read by attribute): tolerances, ``auc_min``.
        comparison: the log loss against the reference, or ``None`` when there is none.
    """
    results = [*calibration_gates(metrics, gates), auc_gate(metrics, gates.auc_min)]
    judged = all(g.verdict == PASS for g in results if g.name in CALIBRATION_GATES)
    failed = [g for g in results if g.verdict == FAIL]
    if failed:
        return PromotionDecision(CHALLENGER, [g.reason for g in failed], results, judged)
    if comparison is not None and not math.isfinite(comparison.difference):
        # Nothing to compare on (every episode was in the champion's development): the
        # gates alone speak, and a version they cannot judge does not take over.
        text = f"no episode to compare with {comparison.reference} on"
        if judged:
            return PromotionDecision(
                CHAMPION, [f"every calibration gate passes on its interval; {text}"], results,
                True,
            )  # fmt: skip
        unjudged = [g.reason for g in results if g.verdict == NOT_ENOUGH]
        return PromotionDecision(
            CHALLENGER, [f"cannot be judged yet and {text}", *unjudged], results, False
        )
    if comparison is not None:
        c = comparison
        text = f"log loss minus {c.reference}'s {c.difference:+.4f} ({c.low:+.4f} to {c.high:+.4f})"
        results.append(
            GateResult(
                f"log_loss vs {c.reference}",
                c.difference,
                "interval reaching <= 0",
                FAIL if c.low > 0 else PASS,
                c.low,
                c.high,
                text,
            )  # fmt: skip
        )
        if c.low > 0:
            return PromotionDecision(CHALLENGER, [f"shown worse: {text}"], results, judged)
    if judged:
        reason = "every calibration gate passes on its interval" + (
            f"; {text}" if comparison is not None else ""
        )
        return PromotionDecision(CHAMPION, [reason], results, True)
    unjudged = [g.reason for g in results if g.verdict == NOT_ENOUGH]
    if comparison is None:
        return PromotionDecision(
            CHAMPION, ["no version to compare with", *unjudged], results, False
        )
    if comparison.judged:
        return PromotionDecision(
            CHALLENGER,
            [f"cannot be judged yet and {comparison.reference} was judged", *unjudged],
            results,
            False,
        )
    if comparison.difference <= 0:
        return PromotionDecision(
            CHAMPION,
            [f"cannot be judged yet but at least as good as {comparison.reference}: {text}",
             *unjudged],
            results,
            False,
        )  # fmt: skip
    return PromotionDecision(
        CHALLENGER,
        [f"cannot be judged yet and not as good as {comparison.reference}: {text}", *unjudged],
        results,
        False,
    )
