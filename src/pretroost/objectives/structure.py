"""MML: regress the embedding that a pretrained structure encoder (the teacher: CGCNN from Crystal
Twins, Magar et al. 2022, or CHGNet, Deng et al. 2023) gives the material's crystal structure
(Huang, Magar & Barati Farimani 2024). Polymorphs of one composition are averaged; rows without a
structure are masked out of the loss (``structure_mask``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pretroost.configs import StructureConfig
from pretroost.objectives.base import RegressionObjective

if TYPE_CHECKING:
    from pretroost.data.corpus import Corpus

__all__ = ["StructureConfig", "StructureObjective"]


class StructureObjective(RegressionObjective):
    """``forward(batch) -> {"loss", "pred"}``; reads ``structure`` (B, d) and ``structure_mask`` (B,)."""

    name = "structure"
    Config = StructureConfig
    target_key = "structure"
    target_keys = ("structure", "structure_mask")

    @classmethod
    def prepare_targets(cls, corpus: Corpus, config: StructureConfig) -> dict[str, np.ndarray]:
        emb = corpus.teacher_embeddings(config.teacher)
        return {"structure": emb, "structure_mask": np.isfinite(emb).all(axis=1)}
