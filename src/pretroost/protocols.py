"""What every loaded model offers (:func:`pretroost.hub.load`'s return type): one protocol for the
Roost :class:`~pretroost.predict.Predictor`, :class:`~pretroost.trees.TreesPredictor` and
:class:`~pretroost.hurdle.HurdlePredictor`, so that callers (the CLI, the hurdle) need not know
which one they hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["ModelPredictor"]


@runtime_checkable
class ModelPredictor(Protocol):
    """A model ready for new formulas: ``predict`` keeps one row per input, in input order (bad
    formulas as NaN rows with an ``error``); ``embed`` / ``embed_frame`` give material vectors
    (``member``: which member of an ensemble) where the model has an encoder (else a
    ValueError)."""

    kind: str
    path: Path | None

    @property
    def task_type(self) -> Any: ...

    @property
    def columns(self) -> list[str]: ...

    def predict(
        self,
        formulas: object,
        *,
        errors: Literal["coerce", "raise"] = "coerce",
        member: int = 0,
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame: ...

    def embed(
        self,
        formulas: object,
        *,
        errors: Literal["coerce", "raise"] = "coerce",
        member: int = 0,
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> np.ndarray: ...

    def embed_frame(
        self,
        formulas: object,
        *,
        errors: Literal["coerce", "raise"] = "coerce",
        member: int = 0,
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame: ...
