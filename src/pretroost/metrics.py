"""Per-fold scores exactly as Matbench v0.1 computes them (``matbench.data_ops.score_array``, 0.6).

Regression (``mae``, ``rmse``, ``mape``, ``max_error``):

- ``mae`` = scikit-learn ``mean_absolute_error``; ``rmse`` = ``sqrt(mean_squared_error)``;
  ``max_error`` = scikit-learn ``max_error``;
- ``mape`` is *masked*: rows whose true value has ``|y_true| <= 1e-5`` are dropped, then
  ``mean(|(y_true - y_pred) / y_true|)`` (a fraction, not a percentage; NaN if every row is dropped).

Classification (``accuracy``, ``balanced_accuracy``, ``f1``, ``rocauc``):

- predictions may be labels (bool, or integer 0/1) or probabilities of the positive class (float);
- float predictions are turned into labels with ``p > 0.5`` (strictly greater);
- matbench converts the predictions to labels for ``accuracy`` (its first metric) and keeps using
  the converted labels for the later metrics, so ``rocauc`` is computed from the thresholded
  labels too, never from the probabilities. For binary labels ROC AUC then equals balanced
  accuracy. We reproduce this;
- ``f1`` is scikit-learn's binary F1 of the positive class (True / 1).

Beyond Matbench: ``rocauc_prob`` (:func:`probability_rocauc`) is the ROC AUC of the
probabilities themselves, the usual meaning of ROC AUC. Because Matbench's ``rocauc`` is a
balanced accuracy, the decision threshold matters: :func:`balanced_accuracy_threshold` picks the one
that maximises balanced accuracy on a validation split, and the benchmark turns probabilities into
labels with it (:func:`to_labels`) before Matbench scoring.

Your own data (``finetune --data``, ``ensemble``): :func:`user_scores` names each score for what
it is. Classification reports ``balanced_accuracy`` (of the labels) and ``rocauc_prob`` (ROC AUC of
the probabilities), never Matbench's ``rocauc``; regression reports ``mape`` only when no target is
(near) zero, where a relative error is undefined (:data:`MAPE_THRESHOLD`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    max_error,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "CLF_THRESHOLD",
    "HEADLINE",
    "MAPE_THRESHOLD",
    "METRICS",
    "PROB_ROCAUC",
    "REGRESSION_METRICS",
    "USER_HEADLINE",
    "balanced_accuracy_threshold",
    "masked_mape",
    "probability_rocauc",
    "score",
    "to_labels",
    "user_scores",
]

TaskType = Literal["regression", "classification"]

REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "mape", "max_error")
# "rocauc" is Matbench's name for what is, on its thresholded labels, a balanced accuracy (module
# docstring): kept under that name only in Matbench-format results (benchmark rows, submissions)
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1", "rocauc")
METRICS: dict[str, tuple[str, ...]] = {
    "regression": REGRESSION_METRICS,
    "classification": CLASSIFICATION_METRICS,
}
HEADLINE: dict[str, str] = {"regression": "mae", "classification": "rocauc"}
"""The metric Matbench ranks by: lower MAE, higher ROC AUC."""
USER_HEADLINE: dict[str, str] = {"regression": "mae", "classification": "rocauc_prob"}
"""The headline of :func:`user_scores`: MAE, or the ROC AUC of the probabilities."""

CLF_THRESHOLD = 0.5
PROB_ROCAUC = "rocauc_prob"
"""Name of the probability ROC AUC in benchmark rows (not a Matbench metric)."""
MAPE_THRESHOLD = 1e-5


def masked_mape(y_true: Any, y_pred: Any, threshold: float = MAPE_THRESHOLD) -> float:
    """Matbench's MAPE: mean ``|(t - p) / t|`` over rows with ``|t| > threshold`` (a fraction)."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    mask = np.abs(t) > threshold
    if not mask.any():
        return math.nan
    return float(np.mean(np.fabs((t[mask] - p[mask]) / t[mask])))


def to_labels(values: Any, threshold: float = CLF_THRESHOLD) -> np.ndarray:
    """Binary labels (bool array) from bools, integer 0/1 labels or probabilities
    (``p > threshold``, strictly, as Matbench does with 0.5)."""
    arr = np.asarray(values)
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        if not np.isin(arr, (0, 1)).all():
            raise ValueError("integer classification values must be 0 or 1")
        return arr.astype(bool)
    if np.issubdtype(arr.dtype, np.floating):
        return arr > threshold
    raise ValueError(f"cannot read classification values of dtype {arr.dtype}")


def _truth_labels(y_true: Any) -> np.ndarray:
    arr = np.asarray(y_true)
    if arr.dtype == np.bool_:
        return arr
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("classification targets must be bool or 0/1")
    return arr.astype(bool)


def score(
    task_type: TaskType | str, y_true: Sequence[Any] | Any, y_pred: Sequence[Any] | Any
) -> dict[str, float]:
    """All Matbench v0.1 metrics of one fold (see the module docstring for the exact semantics).

    Args:
        task_type: ``"regression"`` or ``"classification"``.
        y_true: true values (classification: bool or 0/1).
        y_pred: predictions, aligned with ``y_true`` (classification: labels or probabilities).

    Returns:
        metric name -> value (Python floats), in Matbench's metric order.
    """
    if task_type not in METRICS:
        raise ValueError(f"unknown task_type {task_type!r}; valid: {sorted(METRICS)}")
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length; got {t.shape}, {p.shape}")
    if len(t) == 0:
        raise ValueError("cannot score an empty fold")
    if task_type == "regression":
        t = t.astype(np.float64)
        p = p.astype(np.float64)
        return {
            "mae": float(mean_absolute_error(t, p)),
            "rmse": float(math.sqrt(mean_squared_error(t, p))),
            "mape": masked_mape(t, p),
            "max_error": float(max_error(t, p)),
        }
    truth = _truth_labels(t)
    labels = to_labels(p)
    return {
        "accuracy": float(accuracy_score(truth, labels)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, labels)),
        "f1": float(f1_score(truth, labels)),
        "rocauc": float(roc_auc_score(truth, labels)),
    }


def probability_rocauc(y_true: Any, prob: Any) -> float:
    """ROC AUC of probabilities (scikit-learn ``roc_auc_score``); NaN if only one class is present."""
    truth = _truth_labels(np.asarray(y_true))
    if truth.all() or not truth.any():
        return math.nan
    return float(roc_auc_score(truth, np.asarray(prob, dtype=np.float64)))


def user_scores(
    task_type: TaskType | str,
    y_true: Any,
    y_pred: Any,
    *,
    threshold: float = CLF_THRESHOLD,
) -> tuple[dict[str, float], list[str]]:
    """Test scores of a model on your own data, each named for what it is, and notes on what
    was left out.

    Regression: ``mae``, ``rmse``, ``max_error``, and ``mape`` (mean ``|(t - p) / t|``, a
    fraction) only if every ``|t| > MAPE_THRESHOLD`` (else left out, with a note). Classification
    (``y_pred``: probabilities of class 1): ``accuracy``, ``balanced_accuracy`` and ``f1`` of the
    labels ``p > threshold``, and ``rocauc_prob``, the ROC AUC of the probabilities (NaN, with a
    note, when the test rows hold one class only).
    """
    notes: list[str] = []
    if task_type == "regression":
        full = score("regression", y_true, y_pred)
        scores = {k: full[k] for k in ("mae", "rmse", "max_error")}
        t = np.asarray(y_true, dtype=np.float64)
        if np.all(np.abs(t) > MAPE_THRESHOLD):
            scores["mape"] = full["mape"]
        else:
            n_zero = int(np.sum(np.abs(t) <= MAPE_THRESHOLD))
            notes.append(
                f"mape left out: {n_zero} of {len(t)} test targets are 0 (|t| <= "
                f"{MAPE_THRESHOLD:g}), where a relative error is undefined"
            )
        return scores, notes
    if task_type != "classification":
        raise ValueError(f"unknown task_type {task_type!r}; valid: {sorted(METRICS)}")
    prob = np.asarray(y_pred, dtype=np.float64)
    truth, labels = _truth_labels(np.asarray(y_true)), to_labels(prob, threshold)
    scores = {
        "accuracy": float(accuracy_score(truth, labels)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, labels)),
        "f1": float(f1_score(truth, labels)),
    }
    scores[PROB_ROCAUC] = probability_rocauc(y_true, prob)
    if math.isnan(scores[PROB_ROCAUC]):
        notes.append("rocauc_prob is NaN: the test rows hold one class only")
    return scores, notes


def balanced_accuracy_threshold(y_true: Any, prob: Any) -> float:
    """The decision threshold ``t`` (labels ``p > t``) that maximises balanced accuracy on
    ``(y_true, prob)``, e.g. a validation split.

    Candidates are 0.5 and the midpoints between consecutive distinct probabilities (every
    distinct labelling that a threshold inside (min p, max p) can make, each at the middle of its
    interval); ties go to the candidate nearest 0.5, so the result is never worse than 0.5 on this
    data, and is 0.5 when nothing is better. Balanced accuracy is ``(TPR + TNR) / 2``
    (scikit-learn's ``balanced_accuracy_score`` for binary labels).

    Raises:
        ValueError: if ``y_true`` holds only one class (balanced accuracy needs both).
    """
    truth = _truth_labels(np.asarray(y_true)).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    if truth.shape != p.shape:
        raise ValueError(f"y_true and prob differ in length: {truth.shape} vs {p.shape}")
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("choosing a threshold needs both classes in the validation split")
    u = np.unique(p)
    candidates = np.concatenate([[CLF_THRESHOLD], (u[:-1] + u[1:]) / 2])
    pos, neg = np.sort(p[truth]), np.sort(p[~truth])
    tpr = (n_pos - np.searchsorted(pos, candidates, side="right")) / n_pos  # p > t among positives
    tnr = np.searchsorted(neg, candidates, side="right") / n_neg  # p <= t among negatives
    ba = (tpr + tnr) / 2
    best = np.flatnonzero(ba == ba.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - CLF_THRESHOLD))]])
