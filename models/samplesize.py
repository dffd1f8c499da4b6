"""Minimum sample size for a binary-outcome prediction model (Riley et al. 2020, BMJ 368:m441).

Three criteria, each a number of episodes (Riley et al. 2019, Stat Med 38:1276, eqs 11, 20,
21-23), and the minimum is the largest:

1. expected uniform shrinkage of the coefficients at least ``shrinkage`` (0.9):
   ``n = P / ((S - 1) ln(1 - R2_cs / S))``;
2. optimism in Nagelkerke's R² at most ``r2_optimism`` (0.05): criterion 1 with
   ``S = R2_cs / (R2_cs + 0.05 max R2_cs)``, ``max R2_cs = 1 - exp(2 lnL_null / n)``;
3. the overall risk estimated within ``risk_margin`` (0.05):
   ``n = (1.96 / margin)^2 phi (1 - phi)``.

This is the arithmetic of the ``pmsampsize`` package (R, and Python on PyPI), written out
because its Python release needs Python >= 3.12 and hamrisk supports 3.11;
``tests/models/test_samplesize.py`` checks it against the package's published worked example
(R² 0.288, 24 parameters, prevalence 0.174: 623, 662, 221 -> 662; Riley et al. 2020, BMJ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# Criterion 3 is stated for a 95% interval (Riley et al. 2020); pmsampsize uses 1.96.
_Z_RISK = 1.96


@dataclass(frozen=True)
class SampleSize:
    """The minimum number of episodes for a model, and each criterion's own number.

    Attributes:
        minimum: the largest of the three criteria.
        shrinkage, optimism, overall_risk: criteria 1, 2 and 3 (episodes).
        expected_shrinkage: the shrinkage the minimum achieves (the larger of the target and
            criterion 2's).
        max_r2_cs: the largest Cox-Snell R² the outcome rate allows.
        events: expected recurrences at the minimum; ``events_per_parameter`` likewise.
    """

    parameters: int
    prevalence: float
    r2_cs: float
    minimum: int
    shrinkage: int
    optimism: int
    overall_risk: int
    expected_shrinkage: float
    max_r2_cs: float
    events: float
    events_per_parameter: float


def max_r2_cs(prevalence: float) -> float:
    """The largest Cox-Snell R² an outcome rate allows: ``1 - exp(2 lnL_null / n)``."""
    phi = prevalence
    null = phi * math.log(phi) + (1 - phi) * math.log(1 - phi)
    return 1 - math.exp(2 * null)


def minimum_sample_size(
    parameters: int,
    prevalence: float,
    r2_cs: float,
    shrinkage: float = 0.9,
    r2_optimism: float = 0.05,
    risk_margin: float = 0.05,
) -> SampleSize:
    """Riley et al. 2020's minimum sample size for a logistic model.

    Args:
        parameters: candidate predictor parameters ``P`` (not counting the intercept).
        prevalence: the anticipated outcome rate.
        r2_cs: the anticipated Cox-Snell R² (see :func:`anticipated_r2_cs`).
        shrinkage: the target expected shrinkage (criterion 1).
        r2_optimism: the largest acceptable optimism in Nagelkerke's R² (criterion 2).
        risk_margin: the margin of error of the overall risk (criterion 3).

    Raises:
        ValueError: an argument out of range, or ``r2_cs`` above what the prevalence allows.
    """
    if not (isinstance(parameters, int | np.integer) and parameters >= 1):
        raise ValueError(f"parameters must be a positive integer (got {parameters!r})")
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be in (0, 1) (got {prevalence})")
    if not 0 < shrinkage < 1:
        raise ValueError(f"shrinkage must be in (0, 1) (got {shrinkage})")
    if not 0 < risk_margin < 0.5:
        raise ValueError(f"risk_margin must be in (0, 0.5) (got {risk_margin})")
    if not 0 < r2_optimism < 1:
        raise ValueError(f"r2_optimism must be in (0, 1) (got {r2_optimism})")
    largest = max_r2_cs(prevalence)
    if not 0 < r2_cs < largest:
        raise ValueError(
            f"r2_cs must be in (0, {largest:.4f}), the largest the prevalence {prevalence} "
            f"allows (got {r2_cs})"
        )
    if r2_cs >= shrinkage:
        raise ValueError(f"r2_cs ({r2_cs}) must be below the target shrinkage ({shrinkage})")

    def by_shrinkage(s: float) -> int:
        return math.ceil(parameters / ((s - 1) * math.log(1 - r2_cs / s)))

    n1 = by_shrinkage(shrinkage)
    s2 = r2_cs / (r2_cs + r2_optimism * largest)
    n2 = by_shrinkage(s2)
    n3 = overall_risk_sample_size(prevalence, risk_margin)
    minimum = max(n1, n2, n3)
    events = minimum * prevalence
    return SampleSize(
        parameters=int(parameters),
        prevalence=float(prevalence),
        r2_cs=float(r2_cs),
        minimum=minimum,
        shrinkage=n1,
        optimism=n2,
        overall_risk=n3,
        expected_shrinkage=max(shrinkage, s2),
        max_r2_cs=largest,
        events=events,
        events_per_parameter=events / parameters,
    )


def overall_risk_sample_size(prevalence: float, risk_margin: float = 0.05) -> int:
    """Criterion 3 alone: episodes to estimate the overall risk within ``risk_margin``
    (what an intercept-only update estimates)."""
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be in (0, 1) (got {prevalence})")
    if not 0 < risk_margin < 0.5:
        raise ValueError(f"risk_margin must be in (0, 0.5) (got {risk_margin})")
    return math.ceil((_Z_RISK / risk_margin) ** 2 * prevalence * (1 - prevalence))


def anticipated_r2_cs(risks: ArrayLike) -> float:
    """The Cox-Snell R² a model would achieve if its risks were true.

    ``1 - exp(-2 E[lnL_model - lnL_null] / n)``, the expectation taken over outcomes drawn
    from the risks themselves: the mean Kullback-Leibler divergence of each risk from the
    mean risk. Riley et al. 2020 advise taking R² from an existing model's performance; for
    the literature model, whose performance no clinic has measured yet, its own risks on
    the clinic's episodes are that model.
    """
    p = np.clip(np.asarray(risks, dtype=np.float64), 1e-12, 1 - 1e-12)
    if p.size == 0:
        raise ValueError("anticipated_r2_cs needs at least one risk")
    phi = float(p.mean())
    divergence = p * np.log(p / phi) + (1 - p) * np.log((1 - p) / (1 - phi))
    return float(1 - math.exp(-2 * float(divergence.mean())))
