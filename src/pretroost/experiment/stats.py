"""Statistics of comparisons on the official test folds: pure functions, no file access.

- :func:`corrected_paired_t`: the paired t-test over cross-validation folds with the variance
  correction of Nadeau & Bengio (*Machine Learning* 52, 239, 2003). The folds of k-fold
  cross-validation share most of their training rows, so their differences are not independent;
  the plain paired t treats them as if they were and gives too small p-values. The corrected
  statistic divides the mean difference by ``sqrt((1/k + n_test/n_train) * s²)`` instead of
  ``sqrt(s²/k)``; with 5-fold CV ``n_test/n_train = 1/4``.
- :func:`min_p_wilcoxon`, :func:`sign_test_p`: what n folds allow at best (with 5 folds an exact
  two-sided Wilcoxon or sign test cannot go below 2/2⁵ = 0.0625).
- :func:`bootstrap_difference`: the noise of the difference between two models scored on the
  same test rows, by resampling the rows of each fold with replacement.
- :func:`expected_max_normal`: the expected maximum of N independent standard normals, so that
  ``sd * expected_max_normal(N)`` is the gain that picking the best of N equally good strategies
  on the same test folds shows by chance (independent comparisons; correlated ones gain less).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import integrate, stats

__all__ = [
    "CV_TEST_TRAIN_RATIO",
    "balanced_accuracy_rows",
    "bootstrap_difference",
    "corrected_paired_t",
    "expected_max_normal",
    "mae_rows",
    "min_p_wilcoxon",
    "sign_test_p",
]

#: n_test / n_train of 5-fold cross-validation (each fold tests on 1/5, trains on 4/5)
CV_TEST_TRAIN_RATIO = 1 / 4


def corrected_paired_t(
    differences: Sequence[float] | np.ndarray, test_train_ratio: float = CV_TEST_TRAIN_RATIO
) -> dict[str, float]:
    """Paired t-test of per-fold ``differences`` (a − b), plain and Nadeau–Bengio corrected.

    Returns ``t`` and ``p_t`` (the plain paired t, k − 1 degrees of freedom, two-sided) and
    ``t_corrected`` and ``p_corrected`` (the variance scaled by ``1/k + test_train_ratio``
    instead of ``1/k``). ``p_corrected >= p_t`` always. A zero variance gives p = 1 for a zero
    mean difference and p = 0 otherwise. Raises ValueError with fewer than 2 differences or a
    negative ratio.
    """
    d = np.asarray(differences, dtype=float)
    k = len(d)
    if k < 2:
        raise ValueError(f"need at least 2 differences, got {k}")
    if test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be >= 0, got {test_train_ratio}")
    mean, var = float(d.mean()), float(d.var(ddof=1))
    out: dict[str, float] = {}
    for name, factor in (("", 1 / k), ("_corrected", 1 / k + test_train_ratio)):
        if var == 0.0:
            t = 0.0 if mean == 0.0 else float(np.copysign(np.inf, mean))
        else:
            t = mean / float(np.sqrt(factor * var))
        p = float(2 * stats.t.sf(abs(t), k - 1))
        out["t" + name] = t
        out["p_t" if name == "" else "p" + name] = p
    return out


def min_p_wilcoxon(n: int) -> float:
    """The smallest two-sided p an exact Wilcoxon signed-rank test (or sign test) of ``n`` paired
    differences can give: all n of one sign, 2 / 2**n (0.0625 for n = 5)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return min(1.0, 2.0 / 2**n)


def sign_test_p(wins: int, n: int) -> float:
    """Two-sided exact sign test: p of ``wins`` or a more extreme count of ``n`` folds under a
    fair coin (ties are to be left out of ``n`` beforehand)."""
    if not 0 <= wins <= n or n < 1:
        raise ValueError(f"need 0 <= wins <= n and n >= 1, got wins={wins}, n={n}")
    return float(stats.binomtest(wins, n, 0.5).pvalue)


def expected_max_normal(n: int) -> float:
    """E[max of ``n`` independent standard normals] (0 for n = 1, 1/sqrt(pi) for n = 2), by
    numerical integration of ``n x phi(x) Phi(x)^(n-1)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n == 1:
        return 0.0
    value, _ = integrate.quad(
        lambda x: n * x * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -12.0, 12.0
    )
    return float(value)


def mae_rows(truth: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """MAE of each resample: ``idx`` is (resamples, rows) of row indices."""
    return np.abs(pred[idx] - truth[idx]).mean(axis=1)


def balanced_accuracy_rows(truth: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Balanced accuracy of each resample (Matbench's "rocauc" of labels is this number)."""
    t, p = truth[idx].astype(bool), labels[idx].astype(bool)
    pos, neg = t.sum(axis=1), (~t).sum(axis=1)
    tpr = (t & p).sum(axis=1) / np.maximum(pos, 1)
    tnr = (~t & ~p).sum(axis=1) / np.maximum(neg, 1)
    return (tpr + tnr) / 2


def _seed_mean(
    metric: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    truth: np.ndarray,
    pred: np.ndarray,
    idx: np.ndarray,
) -> np.ndarray:
    """``metric`` of each resample, averaged over the seeds (rows of ``pred``)."""
    return np.mean([metric(truth, p, idx) for p in pred], axis=0)


def bootstrap_difference(
    folds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    metric: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Bootstrap of the mean over folds of metric(a) − metric(b), two models on the same rows.

    ``folds``: per fold (truth, predictions of a, predictions of b), aligned on the rows; a model
    with several seeds gives a (seeds, rows) array and is scored as the mean of its seeds'
    scores, as the headline table averages seeds. Each resample draws each fold's rows with
    replacement (the same rows for a and b), scores both, and averages the per-fold differences
    over the folds, as a task's headline mean is averaged.
    ``metric(truth, pred, idx)`` scores every resample at once (:func:`mae_rows`,
    :func:`balanced_accuracy_rows`). Returns ``observed`` (the difference on the rows as they
    are), ``sd`` (of the resampled differences) and ``ci95`` (percentile interval).
    """
    if not folds:
        raise ValueError("need at least one fold")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    rng = np.random.default_rng(seed)
    total = np.zeros(n_boot)
    observed = 0.0
    for truth, a, b in folds:
        truth = np.asarray(truth)
        a, b = np.atleast_2d(np.asarray(a)), np.atleast_2d(np.asarray(b))
        if not len(truth) == a.shape[1] == b.shape[1] > 0:
            raise ValueError("truth and both predictions need the same, non-zero length")
        idx = rng.integers(0, len(truth), size=(n_boot, len(truth)))
        whole = np.arange(len(truth))[None, :]

        total += _seed_mean(metric, truth, a, idx) - _seed_mean(metric, truth, b, idx)
        observed += float(
            (_seed_mean(metric, truth, a, whole) - _seed_mean(metric, truth, b, whole))[0]
        )
    total /= len(folds)
    lo, hi = np.percentile(total, [2.5, 97.5])
    return {
        "observed": observed / len(folds),
        "sd": float(total.std(ddof=1)),
        "ci95": [float(lo), float(hi)],
        "n_boot": n_boot,
    }
