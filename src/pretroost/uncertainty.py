"""How well predicted uncertainties describe the errors: calibration checks and recalibration.

Regression, with a predicted mean ``pred`` and std ``std`` per row (a Gaussian predictive
distribution ``N(pred, std^2)`` is assumed wherever a nominal value is quoted):

- :func:`coverage`: the fraction of rows with ``|y - pred| <= k std``; nominal ``erf(k / sqrt 2)``,
  0.6827 for k = 1 and 0.9545 for k = 2 (:func:`nominal_coverage`);
- :func:`spearman_abs_error_std`: Spearman's rank correlation of ``|y - pred|`` with ``std``
  (> 0: larger stds go with larger errors);
- :func:`mean_squared_z`: the mean of ``((y - pred) / std)^2``; 1 when calibrated, > 1 when the
  stds are too small;
- :func:`miscalibration_area`: the area between the calibration curve of Kuleshov, Fenner & Ermon
  (ICML 2018) and the diagonal;
- :func:`fit_scale`: the factor ``s`` that makes ``pred ± s std`` cover the nominal 68.27 % of the
  rows (the 68.27th percentile of ``|y - pred| / std``). Fit it on *out-of-fold predictions of
  the training rows only* (never on test rows) and multiply the stds of new predictions by it.

A hurdle model (:mod:`pretroost.hurdle`) predicts a mixture: with probability ``p`` the value is
exactly 0, else ``N(mu, sigma^2)``. :func:`mixture_mean`, :func:`mixture_median` (the point
prediction that minimises the expected absolute error), :func:`mixture_std`,
:func:`mixture_quantile` and :func:`mixture_interval` describe it.

Classification, with a predicted probability of the positive class: :func:`brier_score` (Brier,
*Mon. Weather Rev.* 78, 1, 1950) and :func:`expected_calibration_error` (Naeini, Cooper &
Hauskrecht, AAAI 2015; equal-width bins).

:func:`calibration_report` collects them into one dict for model cards.

Rows where ``y``, ``pred`` or ``std`` (or ``prob``) is not finite are left out of every score
(bad formulas give NaN predictions); the reports say how many rows were scored (``n``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, spearmanr

__all__ = [
    "NOMINAL_1SIGMA",
    "NOMINAL_2SIGMA",
    "brier_score",
    "calibration_report",
    "coverage",
    "expected_calibration_error",
    "fit_scale",
    "mean_squared_z",
    "miscalibration_area",
    "mixture_interval",
    "mixture_mean",
    "mixture_median",
    "mixture_quantile",
    "mixture_std",
    "nominal_coverage",
    "spearman_abs_error_std",
]


def nominal_coverage(k: float) -> float:
    """The probability that a Gaussian lies within ``k`` of its std of its mean, ``erf(k/√2)``."""
    return math.erf(k / math.sqrt(2.0))


NOMINAL_1SIGMA = nominal_coverage(1.0)  # 0.6827
NOMINAL_2SIGMA = nominal_coverage(2.0)  # 0.9545
ECE_BINS = 10
CALIBRATION_LEVELS = 100


def _regression(y: ArrayLike, pred: ArrayLike, std: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(errors, stds) of the rows where all three are finite; stds must be positive."""
    y, pred, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y, pred, std))
    if not (y.shape == pred.shape == std.shape):
        raise ValueError(f"shapes differ: y {y.shape}, pred {pred.shape}, std {std.shape}")
    ok = np.isfinite(y) & np.isfinite(pred) & np.isfinite(std)
    if (std[ok] <= 0).any():
        raise ValueError(f"stds must be positive; {int((std[ok] <= 0).sum())} are not")
    return y[ok] - pred[ok], std[ok]


def coverage(y: ArrayLike, pred: ArrayLike, std: ArrayLike, k: float = 1.0) -> float:
    """The fraction of rows with ``|y - pred| <= k std`` (NaN without rows)."""
    err, s = _regression(y, pred, std)
    return float(np.mean(np.abs(err) <= k * s)) if len(err) else math.nan


def spearman_abs_error_std(y: ArrayLike, pred: ArrayLike, std: ArrayLike) -> float:
    """Spearman's rank correlation of ``|y - pred|`` with ``std`` (NaN when either is constant
    or there are fewer than 3 rows)."""
    err, s = _regression(y, pred, std)
    if len(err) < 3 or np.ptp(np.abs(err)) == 0 or np.ptp(s) == 0:
        return math.nan
    return float(spearmanr(np.abs(err), s).statistic)


def mean_squared_z(y: ArrayLike, pred: ArrayLike, std: ArrayLike) -> float:
    """The mean of ``((y - pred) / std)^2``: 1 for Gaussian errors with these stds."""
    err, s = _regression(y, pred, std)
    return float(np.mean((err / s) ** 2)) if len(err) else math.nan


def miscalibration_area(
    y: ArrayLike, pred: ArrayLike, std: ArrayLike, levels: int = CALIBRATION_LEVELS
) -> float:
    """Area between the calibration curve and the diagonal, in [0, 0.5].

    The curve (Kuleshov, Fenner & Ermon, "Accurate uncertainties for deep learning using
    calibrated regression", ICML 2018): for each level ``q`` in ``0, 1/levels, ..., 1``, the
    fraction of rows whose ``y`` lies at or below the ``q`` quantile of ``N(pred, std^2)``,
    i.e. ``mean(Phi((y - pred) / std) <= q)``. The area ``∫ |fraction(q) - q| dq`` is taken with
    the trapezoidal rule: 0 when calibrated, 0.25 when the stds are ~0 and the errors symmetric.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1; got {levels}")
    err, s = _regression(y, pred, std)
    if not len(err):
        return math.nan
    pit = np.sort(norm.cdf(err / s))
    q = np.linspace(0.0, 1.0, levels + 1)
    observed = np.searchsorted(pit, q, side="right") / len(pit)
    gap = np.abs(observed - q)
    return float(np.sum((gap[1:] + gap[:-1]) / 2.0 * np.diff(q)))


def fit_scale(
    y: ArrayLike, pred: ArrayLike, std: ArrayLike, level: float = NOMINAL_1SIGMA
) -> float:
    """The factor ``s`` for which ``|y - pred| <= s std`` holds on the fraction ``level`` of rows.

    ``s`` is the ``level`` quantile (NumPy's linear interpolation) of ``|y - pred| / std``;
    with the default level ``pred ± s std`` then covers the Gaussian ±1σ share, 68.27 %. Fit it
    on out-of-fold predictions of the training rows only, never on the rows it will be judged
    on, and multiply the stds of new predictions by it. Stds twice too large give ``s ≈ 0.5``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    err, s = _regression(y, pred, std)
    if not len(err):
        raise ValueError("no rows with finite y, prediction and std to fit a scale on")
    return float(np.quantile(np.abs(err) / s, level))


# ----------------------------------------------------------------------------- hurdle mixtures


def _mixture(
    p: ArrayLike, mu: ArrayLike, sigma: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, mu, sigma = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (p, mu, sigma)))
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities p must lie in [0, 1]")
    if (sigma <= 0).any():
        raise ValueError("stds sigma must be positive")
    return p, mu, sigma


def mixture_mean(p: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> np.ndarray:
    """Mean of the mixture "0 with probability ``p``, else ``N(mu, sigma^2)``": ``(1 - p) mu``."""
    p, mu, _ = _mixture(p, mu, sigma)
    return (1.0 - p) * mu


def mixture_std(p: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> np.ndarray:
    """Std of the mixture: ``sqrt((1 - p) sigma^2 + p (1 - p) mu^2)`` (law of total variance)."""
    p, mu, sigma = _mixture(p, mu, sigma)
    return np.sqrt((1.0 - p) * sigma**2 + p * (1.0 - p) * mu**2)


def mixture_quantile(q: ArrayLike, p: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> np.ndarray:
    """The ``q`` quantile (``q`` in (0, 1)), ``inf {x : F(x) >= q}``, of the mixture.

    With ``F(x) = p [x >= 0] + (1 - p) Phi((x - mu) / sigma)`` and ``a = F(0-) = (1 - p)
    Phi(-mu / sigma)``: ``mu + sigma Phi^-1(q / (1 - p))`` for ``q <= a``, 0 for
    ``a < q <= a + p``, ``mu + sigma Phi^-1((q - p) / (1 - p))`` above.
    """
    q = np.asarray(q, dtype=np.float64)
    if ((q <= 0) | (q >= 1)).any():
        raise ValueError("quantile levels q must lie in (0, 1)")
    p, mu, sigma = _mixture(p, mu, sigma)
    q, p, mu, sigma = np.broadcast_arrays(q, p, mu, sigma)
    a = (1.0 - p) * norm.cdf(-mu / sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = mu + sigma * norm.ppf(np.clip(q / (1.0 - p), 0.0, 1.0))
        above = mu + sigma * norm.ppf(np.clip((q - p) / (1.0 - p), 0.0, 1.0))
    return np.where(q <= a, below, np.where(q <= a + p, 0.0, above))


def mixture_median(p: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> np.ndarray:
    """The mixture's median, the point prediction with the least expected absolute error. It is
    0 wherever ``p > 0.5`` (the rule of :func:`pretroost.hurdle.apply_hurdle`), and also where
    ``p <= 0.5`` but the Gaussian part puts enough of its mass on both sides of 0."""
    return mixture_quantile(0.5, p, mu, sigma)


def mixture_interval(
    p: ArrayLike, mu: ArrayLike, sigma: ArrayLike, level: float = NOMINAL_1SIGMA
) -> tuple[np.ndarray, np.ndarray]:
    """The central interval holding ``level`` of the mixture: its ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles (``(0, 0)`` where ``p = 1``)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    lo = mixture_quantile((1.0 - level) / 2.0, p, mu, sigma)
    hi = mixture_quantile((1.0 + level) / 2.0, p, mu, sigma)
    return lo, hi


# ----------------------------------------------------------------------------- classification


def _binary(y: ArrayLike, prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(labels 0/1, probabilities) of the rows where both are finite."""
    y, prob = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y, prob))
    if y.shape != prob.shape:
        raise ValueError(f"shapes differ: y {y.shape}, prob {prob.shape}")
    ok = np.isfinite(y) & np.isfinite(prob)
    y, prob = y[ok], prob[ok]
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 or False/True")
    if ((prob < 0) | (prob > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    return y, prob


def brier_score(y: ArrayLike, prob: ArrayLike) -> float:
    """The mean of ``(prob - y)^2`` over rows (``y`` 0/1; Brier 1950): 0 is perfect, 0.25 is
    what a constant 0.5 scores."""
    y, prob = _binary(y, prob)
    return float(np.mean((prob - y) ** 2)) if len(y) else math.nan


def expected_calibration_error(y: ArrayLike, prob: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the positive-class probability (Naeini, Cooper & Hauskrecht,
    "Obtaining well calibrated probabilities using Bayesian binning", AAAI 2015).

    The probabilities fall into ``n_bins`` equal-width bins ``[0, 1/n), ..., [(n-1)/n, 1]``;
    ECE = ``sum_b (n_b / n) |mean(y in b) - mean(prob in b)|`` over the non-empty bins.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    y, prob = _binary(y, prob)
    if not len(y):
        return math.nan
    bins = np.minimum((prob * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(
        bins, weights=prob, minlength=n_bins
    )
    return float(np.abs(gap).sum() / len(y))  # sum_b n_b |mean gap| / n with n_b * mean = sum


# ------------------------------------------------------------------------------------- report


def calibration_report(
    y: ArrayLike,
    *,
    pred: ArrayLike | None = None,
    std: ArrayLike | None = None,
    prob: ArrayLike | None = None,
    scale: float | None = None,
    n_bins: int = ECE_BINS,
) -> dict[str, float | int]:
    """The calibration scores of one set of predictions, for a model card.

    Regression (``pred`` and ``std``): ``n``, ``coverage_1sigma`` and ``coverage_2sigma`` with
    ``nominal_1sigma``/``nominal_2sigma`` and ``coverage_se_1sigma``/``coverage_se_2sigma`` (the
    binomial standard error a calibrated model's coverage would have on ``n`` rows),
    ``spearman_abs_error_std``, ``mean_squared_z``, ``miscalibration_area``, ``mean_std`` and
    ``scale_to_nominal`` (:func:`fit_scale` on these rows: a diagnostic, not a scale to apply
    to them). With ``scale`` (fitted elsewhere, on training rows), also ``scale`` and
    ``coverage_1sigma_scaled``/``coverage_2sigma_scaled`` with the stds multiplied by it.

    Classification (``prob``, the positive-class probability): ``n``, ``brier``, ``ece`` (with
    ``ece_bins``), ``mean_prob`` and ``positive_rate``.
    """
    if prob is not None:
        if pred is not None or std is not None or scale is not None:
            raise ValueError("give either prob (classification) or pred and std (regression)")
        labels, p = _binary(y, prob)
        return {
            "n": len(labels),
            "brier": brier_score(labels, p),
            "ece": expected_calibration_error(labels, p, n_bins),
            "ece_bins": n_bins,
            "mean_prob": float(np.mean(p)) if len(p) else math.nan,
            "positive_rate": float(np.mean(labels)) if len(labels) else math.nan,
        }
    if pred is None or std is None:
        raise ValueError("give either prob (classification) or pred and std (regression)")
    err, s = _regression(y, pred, std)
    zero = np.zeros_like(err)
    n = len(err)
    out: dict[str, float | int] = {
        "n": n,
        "nominal_1sigma": NOMINAL_1SIGMA,
        "coverage_1sigma": coverage(err, zero, s, 1.0),
        "coverage_se_1sigma": math.sqrt(NOMINAL_1SIGMA * (1 - NOMINAL_1SIGMA) / n)
        if n
        else math.nan,
        "nominal_2sigma": NOMINAL_2SIGMA,
        "coverage_2sigma": coverage(err, zero, s, 2.0),
        "coverage_se_2sigma": math.sqrt(NOMINAL_2SIGMA * (1 - NOMINAL_2SIGMA) / n)
        if n
        else math.nan,
        "spearman_abs_error_std": spearman_abs_error_std(err, zero, s),
        "mean_squared_z": mean_squared_z(err, zero, s),
        "miscalibration_area": miscalibration_area(err, zero, s),
        "mean_std": float(np.mean(s)) if n else math.nan,
        "scale_to_nominal": fit_scale(err, zero, s) if n else math.nan,
    }
    if scale is not None:
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive and finite; got {scale}")
        out["scale"] = float(scale)
        out["coverage_1sigma_scaled"] = coverage(err, zero, s * scale, 1.0)
        out["coverage_2sigma_scaled"] = coverage(err, zero, s * scale, 2.0)
    return out
