"""Named finetuning recipes: the one place where the default way to train a property model is
written.

``converged`` is the default of :class:`~pretroost.configs.FinetuneConfig` (so of the Python API,
``pretroost finetune``, ``ensemble``, :class:`~pretroost.sklearn.RoostRegressor` and
:class:`~pretroost.sklearn.RoostClassifier`) and the finetuning recipe of the ``converged`` bench
preset: 300 epochs of AdamW at a constant learning rate of 3e-4 (weight decay 1e-6), batches of 128
(32 for training sets under :data:`SMALL_ROWS` rows, :func:`batch_size_for`), the best validation
epoch kept. ``pretroost convergence`` showed a cosine schedule of 100 epochs plateauing far above it
on expt_gap (docs/findings.md); every published number of this project uses it. ``quick`` (30
epochs, cosine) is for trying things: ``--recipe quick``.

Light on purpose (no torch): the command line reads it to build ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_RECIPE",
    "RECIPES",
    "SMALL_BATCH_SIZE",
    "SMALL_ROWS",
    "Recipe",
    "batch_size_for",
    "get_recipe",
]

#: training sets with fewer rows than this train with a recipe's ``small_batch_size``
SMALL_ROWS = 1000
#: the batch size of those small training sets
SMALL_BATCH_SIZE = 32


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """A finetuning recipe: the :class:`~pretroost.configs.TrainConfig` fields it sets and its
    batch-size rule.

    Attributes:
        name: its key in :data:`RECIPES`.
        summary: one line for ``--help``.
        epochs, lr, weight_decay, schedule, batch_size: the TrainConfig fields.
        small_batch_size: the batch size for training sets under :data:`SMALL_ROWS` rows (None:
            ``batch_size`` whatever the size).
    """

    name: str
    summary: str
    epochs: int
    lr: float = 3e-4
    weight_decay: float = 1e-6
    schedule: str = "constant"
    batch_size: int = 128
    small_batch_size: int | None = SMALL_BATCH_SIZE

    #: the TrainConfig fields a recipe sets (the command line's ``--recipe`` defaults these)
    TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "schedule")

    def train_fields(self) -> dict[str, Any]:
        """``{field: value}`` for ``TrainConfig(**recipe.train_fields())``."""
        return {f: getattr(self, f) for f in self.TRAIN_FIELDS}


def batch_size_for(
    n_train: int, batch_size: int, small_batch_size: int | None, small_rows: int = SMALL_ROWS
) -> int:
    """The batch size for ``n_train`` training rows: ``small_batch_size`` under ``small_rows``
    rows (so that a small set still gets enough optimiser steps), else ``batch_size``."""
    if small_batch_size is not None and n_train < small_rows:
        return small_batch_size
    return batch_size


RECIPES: dict[str, Recipe] = {
    "converged": Recipe(
        name="converged",
        summary="300 epochs, constant lr 3e-4 (AdamW), batch 128 (32 under 1,000 training rows), "
        "best validation epoch: the recipe of every published number",
        epochs=300,
    ),
    "quick": Recipe(
        name="quick",
        summary="30 epochs, cosine schedule: a quick trial, not converged",
        epochs=30,
        schedule="cosine",
    ),
}
DEFAULT_RECIPE = "converged"


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ValueError listing the valid ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]
