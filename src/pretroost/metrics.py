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
    "REGRESSION_METRICS",
    "masked_mape",
    "score",
    "to_labels",
]

TaskType = Literal["regression", "classification"]

REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "mape", "max_error")
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1", "rocauc")
METRICS: dict[str, tuple[str, ...]] = {
    "regression": REGRESSION_METRICS,
    "classification": CLASSIFICATION_METRICS,
}
HEADLINE: dict[str, str] = {"regression": "mae", "classification": "rocauc"}
"""The metric Matbench ranks by: lower MAE, higher ROC AUC."""

CLF_THRESHOLD = 0.5
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
    """Binary labels (bool array) from bools, integer 0/1 labels or probabilities (``p > 0.5``)."""
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
