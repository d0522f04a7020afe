"""pretroost: pretrain structure-agnostic Roost models and benchmark them on Matbench.

``import pretroost`` stays light (no torch); the public helpers below load on first use:

- ``pretroost.load(DIR)`` / ``pretroost.from_pretrained(DIR)``: a predictor
  for any model folder or shipped encoder name (:mod:`pretroost.hub`);
- ``pretroost.fit(data, target_col=..., out=DIR)``: choose a model for your rows by k-fold
  cross-validation and save it (:func:`pretroost.select_model.fit`, ``pretroost fit``);
- ``pretroost.RoostRegressor`` / ``pretroost.RoostClassifier``: scikit-learn estimators on formulas.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": ("pretroost.hub", "load"),
    "from_pretrained": ("pretroost.hub", "from_pretrained"),
    "fit": ("pretroost.select_model", "fit"),
    "RoostRegressor": ("pretroost.sklearn", "RoostRegressor"),
    "RoostClassifier": ("pretroost.sklearn", "RoostClassifier"),
}

__all__ = ["RoostClassifier", "RoostRegressor", "__version__", "fit", "from_pretrained", "load"]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pretroost' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
