"""Statistics of comparisons on the test folds (pretroost.experiment.stats): properties and
known values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pretroost.experiment.scores import paired_test
from pretroost.experiment.stats import (
    balanced_accuracy_rows,
    bootstrap_difference,
    corrected_paired_t,
    expected_max_normal,
    mae_rows,
    min_p_wilcoxon,
    sign_test_p,
)


def test_uncorrected_t_is_scipys_paired_t() -> None:
    a = np.array([0.38, 0.40, 0.36, 0.41, 0.39])
    b = np.array([0.35, 0.37, 0.36, 0.38, 0.35])
    ref = stats.ttest_rel(a, b)
    out = corrected_paired_t(a - b)
    assert out["t"] == pytest.approx(ref.statistic)
    assert out["p_t"] == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("seed", range(20))
def test_corrected_p_is_never_below_the_plain_p(seed: int) -> None:
    d = np.random.default_rng(seed).normal(0.01 * seed, 1.0, size=5)
    out = corrected_paired_t(d)
    assert out["p_corrected"] >= out["p_t"]
    assert abs(out["t_corrected"]) <= abs(out["t"])


def test_corrected_t_scales_by_the_nadeau_bengio_factor() -> None:
    d = np.array([1.0, 2.0, 3.0, 2.5, 1.5])
    out = corrected_paired_t(d, test_train_ratio=0.25)
    # t_c / t = sqrt((1/k) / (1/k + 1/4)) with k = 5
    assert out["t_corrected"] / out["t"] == pytest.approx(np.sqrt(0.2 / 0.45))
    assert corrected_paired_t(d, test_train_ratio=0.0)["p_corrected"] == pytest.approx(out["p_t"])


def test_corrected_t_edge_cases() -> None:
    assert corrected_paired_t([0.0, 0.0, 0.0])["p_corrected"] == 1.0
    assert corrected_paired_t([1.0, 1.0, 1.0])["p_corrected"] == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        corrected_paired_t([1.0])
    with pytest.raises(ValueError, match="test_train_ratio"):
        corrected_paired_t([1.0, 2.0], test_train_ratio=-1)


def test_paired_test_carries_the_corrected_p() -> None:
    a = {k: 0.3 + 0.01 * k for k in range(5)}
    b = {0: 0.32, 1: 0.33, 2: 0.31, 3: 0.35, 4: 0.36}
    test = paired_test(a, b)
    assert test is not None and test["p_corrected"] >= test["p_t"]


def test_what_five_folds_allow() -> None:
    assert min_p_wilcoxon(5) == 0.0625
    assert sign_test_p(5, 5) == pytest.approx(0.0625)
    assert sign_test_p(4, 5) == pytest.approx(0.375)
    d = [0.1, 0.2, 0.3, 0.4, 0.5]  # all of one sign: Wilcoxon's smallest p
    assert stats.wilcoxon(d).pvalue == pytest.approx(min_p_wilcoxon(5))
    with pytest.raises(ValueError):
        sign_test_p(6, 5)


def test_expected_max_normal_known_values() -> None:
    assert expected_max_normal(1) == 0.0
    assert expected_max_normal(2) == pytest.approx(1 / np.sqrt(np.pi))
    assert expected_max_normal(3) == pytest.approx(1.5 / np.sqrt(np.pi))
    draws = np.random.default_rng(0).standard_normal((20000, 20)).max(axis=1).mean()
    assert expected_max_normal(20) == pytest.approx(draws, abs=0.02)
    assert expected_max_normal(10) < expected_max_normal(20)
    with pytest.raises(ValueError):
        expected_max_normal(0)


def test_bootstrap_of_identical_models_is_zero_and_observed_is_the_metric_difference() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    a, b = y + rng.normal(0, 0.5, 200), y + rng.normal(0, 0.3, 200)
    same = bootstrap_difference([(y, a, a)], mae_rows, n_boot=200)
    assert same["sd"] == 0.0 and same["observed"] == 0.0
    out = bootstrap_difference([(y, a, b), (y, a, b)], mae_rows, n_boot=500)
    diff = np.abs(a - y).mean() - np.abs(b - y).mean()
    assert out["observed"] == pytest.approx(diff)
    assert out["ci95"][0] < diff < out["ci95"][1]
    assert out["sd"] > 0


def test_bootstrap_averages_seeds_like_the_headline_table() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=50)
    seeds = np.stack([y + rng.normal(0, s, 50) for s in (0.2, 0.4)])
    out = bootstrap_difference([(y, seeds, y)], mae_rows, n_boot=50)
    assert out["observed"] == pytest.approx(np.mean([np.abs(p - y).mean() for p in seeds]))


def test_balanced_accuracy_rows_is_sklearns() -> None:
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    idx = rng.integers(0, 100, size=(4, 100))
    got = balanced_accuracy_rows(y, p, idx)
    for i in range(4):
        assert got[i] == pytest.approx(balanced_accuracy_score(y[idx[i]], p[idx[i]]))


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        bootstrap_difference([], mae_rows)
    with pytest.raises(ValueError):
        bootstrap_difference([(np.zeros(3), np.zeros(2), np.zeros(3))], mae_rows)
