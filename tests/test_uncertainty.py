"""pretroost.uncertainty: coverage, recalibration, hurdle mixtures and classification calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from pretroost.uncertainty import (
    NOMINAL_1SIGMA,
    NOMINAL_2SIGMA,
    brier_score,
    calibration_report,
    coverage,
    expected_calibration_error,
    fit_scale,
    mean_squared_z,
    miscalibration_area,
    mixture_interval,
    mixture_mean,
    mixture_median,
    mixture_quantile,
    mixture_std,
    spearman_abs_error_std,
)

N = 20_000


def gaussian_rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``N`` rows whose errors are Gaussian with the stated (varied) stds."""
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=N)
    std = rng.lognormal(sigma=0.5, size=N)
    return pred + std * rng.normal(size=N), pred, std


def se(p: float, n: int = N) -> float:
    """Binomial standard error of a fraction ``p`` on ``n`` rows."""
    return math.sqrt(p * (1 - p) / n)


def test_nominal_values() -> None:
    assert abs(NOMINAL_1SIGMA - 0.682689) < 1e-6
    assert abs(NOMINAL_2SIGMA - 0.954500) < 1e-6


def test_calibrated_gaussian_errors_cover_the_nominal_shares() -> None:
    y, pred, std = gaussian_rows()
    assert coverage(y, pred, std, 1.0) == pytest.approx(NOMINAL_1SIGMA, abs=4 * se(NOMINAL_1SIGMA))
    assert coverage(y, pred, std, 2.0) == pytest.approx(NOMINAL_2SIGMA, abs=4 * se(NOMINAL_2SIGMA))
    # the quantile's standard error: se(p) / (density of |Z| at 1, 2 phi(1))
    assert fit_scale(y, pred, std) == pytest.approx(1.0, abs=4 * se(NOMINAL_1SIGMA) / 0.48)
    assert mean_squared_z(y, pred, std) == pytest.approx(1.0, abs=4 * math.sqrt(2 / N))
    assert miscalibration_area(y, pred, std) < 0.01
    assert spearman_abs_error_std(y, pred, std) > 0.2  # larger stds, larger errors


def test_stds_twice_too_large_give_a_scale_of_one_half() -> None:
    y, pred, std = gaussian_rows(1)
    s = fit_scale(y, pred, 2 * std)
    assert s == pytest.approx(0.5, abs=2 * se(NOMINAL_1SIGMA) / 0.48)
    assert s == pytest.approx(fit_scale(y, pred, std) / 2, rel=1e-12)
    assert coverage(y, pred, 2 * std) > 0.9


def test_overconfident_stds_are_badly_calibrated() -> None:
    y, pred, std = gaussian_rows(2)
    assert miscalibration_area(y, pred, std * 1e-6) == pytest.approx(0.25, abs=0.01)
    assert mean_squared_z(y, pred, std / 2) == pytest.approx(4.0, rel=0.05)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(30, 400), st.floats(0.05, 0.95))
def test_a_fitted_scale_makes_coverage_nominal_on_any_errors(
    seed: int, n: int, level: float
) -> None:
    rng = np.random.default_rng(seed)
    err = rng.standard_t(2, size=n)  # heavy tails, nothing Gaussian about them
    std = rng.uniform(0.1, 3.0, size=n)
    s = fit_scale(err, np.zeros(n), std, level)
    assert abs(coverage(err, np.zeros(n), std * s) - level) <= 1.0 / n + 1e-12
    c = rng.uniform(0.1, 10)
    assert fit_scale(err, np.zeros(n), c * std, level) == pytest.approx(s / c, rel=1e-9)


def test_non_finite_rows_are_left_out_and_bad_stds_raise() -> None:
    y = np.array([0.0, 1.0, np.nan, 3.0])
    pred = np.array([0.5, 1.0, 2.0, np.nan])
    std = np.array([1.0, 1.0, 1.0, 1.0])
    assert coverage(y, pred, std) == 1.0
    assert calibration_report(y, pred=pred, std=std)["n"] == 2
    with pytest.raises(ValueError, match="positive"):
        coverage(y, pred, std * 0)
    with pytest.raises(ValueError, match="shapes"):
        coverage(y, pred[:2], std)
    with pytest.raises(ValueError, match="no rows"):
        fit_scale([np.nan], [0.0], [1.0])


# ------------------------------------------------------------------------------------ mixtures


def test_a_mixture_without_zeros_is_the_gaussian() -> None:
    mu, sigma = np.array([-1.0, 0.3, 2.5]), np.array([0.5, 1.0, 0.2])
    np.testing.assert_allclose(mixture_mean(0.0, mu, sigma), mu)
    np.testing.assert_allclose(mixture_std(0.0, mu, sigma), sigma)
    np.testing.assert_allclose(mixture_median(0.0, mu, sigma), mu, atol=1e-12)
    for q in (0.02, 0.3, 0.9):
        np.testing.assert_allclose(mixture_quantile(q, 0.0, mu, sigma), norm.ppf(q, mu, sigma))
    lo, hi = mixture_interval(0.0, mu, sigma)
    np.testing.assert_allclose(lo, mu - sigma, rtol=1e-9)
    np.testing.assert_allclose(hi, mu + sigma, rtol=1e-9)


def test_a_mixture_of_only_zeros_is_zero() -> None:
    mu, sigma = np.array([-1.0, 0.3, 2.5]), np.array([0.5, 1.0, 0.2])
    for f in (mixture_mean, mixture_std, mixture_median):
        np.testing.assert_array_equal(f(1.0, mu, sigma), 0.0)
    lo, hi = mixture_interval(1.0, mu, sigma, 0.95)
    np.testing.assert_array_equal(lo, 0.0)
    np.testing.assert_array_equal(hi, 0.0)


def test_mixture_moments_and_quantiles_match_samples() -> None:
    rng = np.random.default_rng(3)
    p, mu, sigma, n = 0.3, 1.2, 0.8, 400_000
    x = np.where(rng.uniform(size=n) < p, 0.0, rng.normal(mu, sigma, size=n))
    assert float(mixture_mean(p, mu, sigma)) == pytest.approx(x.mean(), abs=0.01)
    assert float(mixture_std(p, mu, sigma)) == pytest.approx(x.std(), abs=0.01)
    for q in (0.1, 0.25, 0.5, 0.9):
        assert float(mixture_quantile(q, p, mu, sigma)) == pytest.approx(
            np.quantile(x, q), abs=0.02
        )
    # where the point mass straddles the level, the quantile is exactly 0
    a = (1 - p) * norm.cdf(-mu / sigma)
    assert float(mixture_quantile(a + p / 2, p, mu, sigma)) == 0.0


def test_the_median_is_zero_where_a_zero_is_more_likely_than_not() -> None:
    mu = np.array([3.0, 3.0, 0.1])
    p = np.array([0.51, 0.49, 0.3])
    med = mixture_median(p, mu, 0.5)
    assert med[0] == 0.0
    # just below: the median is the Gaussian part's (0.01 / 0.51) quantile, far above 0
    assert med[1] == pytest.approx(3.0 + 0.5 * norm.ppf(0.01 / 0.51))
    assert med[2] == 0.0  # p < 0.5 but the Gaussian sits around 0


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.0, 1.0),
    st.floats(-5.0, 5.0),
    st.floats(0.01, 5.0),
    st.lists(st.floats(0.001, 0.999), min_size=2, max_size=6),
)
def test_mixture_quantiles_are_monotone_and_invert_the_cdf(
    p: float, mu: float, sigma: float, qs: list[float]
) -> None:
    q = np.sort(np.array(qs))
    x = mixture_quantile(q, p, mu, sigma)
    assert (np.diff(x) >= -1e-9).all()
    cdf = p * (x >= 0) + (1 - p) * norm.cdf((x - mu) / sigma)
    assert (cdf >= q - 1e-9).all()


def test_bad_mixture_parameters_raise() -> None:
    with pytest.raises(ValueError, match="p must lie"):
        mixture_mean(1.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        mixture_std(0.5, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"q must lie in \(0, 1\)"):
        mixture_quantile(1.0, 0.5, 0.0, 1.0)


# ------------------------------------------------------------------------------ classification


def test_brier_and_ece_known_values() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    assert brier_score(y, y.astype(float)) == 0.0
    assert brier_score(y, np.full(10, 0.5)) == 0.25
    assert expected_calibration_error(y, np.full(10, 0.3)) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.ones(10), np.full(10, 0.9)) == pytest.approx(0.1)
    # two bins: 0.2 predicted where 0 of 5 are positive, 0.8 where 5 of 5 are: |0 - .2| = |1 - .8|
    prob = np.array([0.2] * 5 + [0.8] * 5)
    y2 = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(y2, prob) == pytest.approx(0.2)
    assert expected_calibration_error(y2, prob, n_bins=1) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error([1.0], [1.0]) == 0.0  # 1.0 falls in the last bin
    with pytest.raises(ValueError, match="labels"):
        brier_score([2.0], [0.5])
    with pytest.raises(ValueError, match="probabilities"):
        brier_score([1.0], [1.5])


def test_calibrated_probabilities_have_a_small_ece() -> None:
    rng = np.random.default_rng(4)
    prob = rng.uniform(size=N)
    y = rng.uniform(size=N) < prob
    assert expected_calibration_error(y, prob) < 0.02
    assert brier_score(y, prob) == pytest.approx(1 / 6, abs=0.01)  # E[p(1-p)] for uniform p


# ------------------------------------------------------------------------------------- report


def test_the_report_has_the_regression_or_the_classification_keys() -> None:
    y, pred, std = gaussian_rows(5)
    rep = calibration_report(y, pred=pred, std=std, scale=2.0)
    assert rep["n"] == N and rep["coverage_1sigma"] == coverage(y, pred, std)
    assert rep["coverage_se_1sigma"] == pytest.approx(se(NOMINAL_1SIGMA))
    assert rep["coverage_1sigma_scaled"] == coverage(y, pred, 2 * std)
    assert rep["scale_to_nominal"] == fit_scale(y, pred, std)
    assert set(rep) >= {"spearman_abs_error_std", "mean_squared_z", "miscalibration_area"}
    cls = calibration_report([0, 1, 1], prob=[0.2, 0.7, 0.9])
    assert cls["n"] == 3 and cls["ece_bins"] == 10
    assert cls["brier"] == pytest.approx((0.04 + 0.09 + 0.01) / 3)
    with pytest.raises(ValueError, match="either prob"):
        calibration_report(y, pred=pred)
    with pytest.raises(ValueError, match="either prob"):
        calibration_report(y, pred=pred, std=std, prob=pred)
