"""Riley et al. 2020 minimum sample size, against pmsampsize's published worked example."""

from __future__ import annotations

import numpy as np
import pytest

from models.samplesize import (
    anticipated_r2_cs,
    max_r2_cs,
    minimum_sample_size,
    overall_risk_sample_size,
)


def test_published_worked_example():
    """Riley et al. 2020 (BMJ 368:m441) and pmsampsize: R² 0.288, 24 parameters, 17.4%."""
    size = minimum_sample_size(24, 0.174, 0.288)
    assert (size.shrinkage, size.optimism, size.overall_risk) == (623, 662, 221)
    assert size.minimum == 662
    assert size.events == pytest.approx(662 * 0.174)
    assert size.events_per_parameter == pytest.approx(662 * 0.174 / 24)
    assert size.expected_shrinkage == pytest.approx(0.905, abs=5e-4)


def test_pmsampsize_package_tests_that_do_not_depend_on_its_old_rounding():
    """pmsampsize's own tests 4.2 and 4.3 (criteria 1 and 3, which never rounded)."""
    assert minimum_sample_size(24, 0.174, 0.55).shrinkage == 255
    assert minimum_sample_size(36, 0.174, 0.288).shrinkage == 934
    assert minimum_sample_size(24, 0.25, 0.288).overall_risk == 289


def test_more_parameters_or_weaker_signal_need_more_episodes():
    sizes = [minimum_sample_size(p, 0.33, 0.05).minimum for p in (1, 2, 5, 10, 20)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    by_r2 = [minimum_sample_size(10, 0.33, r2).minimum for r2 in (0.2, 0.1, 0.05, 0.02)]
    assert by_r2 == sorted(by_r2)


def test_overall_risk_criterion():
    assert overall_risk_sample_size(0.33) == int(np.ceil((1.96 / 0.05) ** 2 * 0.33 * 0.67))
    assert overall_risk_sample_size(0.33, 0.1) < overall_risk_sample_size(0.33, 0.05)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 0.3, 0.05), "parameters"),
        ((5, 1.2, 0.05), "prevalence"),
        ((5, 0.3, 0.9), "largest the prevalence"),
        ((5, 0.3, -0.1), "r2_cs"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        minimum_sample_size(*args)


def test_anticipated_r2_from_risks():
    assert anticipated_r2_cs(np.full(100, 0.3)) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    spread = [anticipated_r2_cs(1 / (1 + np.exp(-rng.normal(-0.7, s, 5000)))) for s in (0.3, 0.8)]
    assert 0 < spread[0] < spread[1] < max_r2_cs(0.33)


def test_anticipated_r2_matches_simulated_likelihood_ratio():
    """Its definition: 1 - exp(-LR/n) for outcomes drawn from the risks themselves."""
    rng = np.random.default_rng(3)
    p = 1 / (1 + np.exp(-rng.normal(-0.7, 0.9, 200_000)))
    y = rng.random(p.size) < p
    phi = y.mean()
    lr = 2 * (
        np.sum(np.where(y, np.log(p), np.log(1 - p)))
        - np.sum(np.where(y, np.log(phi), np.log(1 - phi)))
    )
    # LR/n has sd about sqrt(Var(log-lik ratio per row) / n): well under 0.005 here.
    assert anticipated_r2_cs(p) == pytest.approx(1 - np.exp(-lr / p.size), abs=0.005)
