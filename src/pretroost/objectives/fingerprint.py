"""FL: regress the Magpie fingerprint of the composition (Huang, Magar & Barati Farimani 2024; the
144 closed-form general-purpose attributes of Ward et al., npj Comput. Mater. 2, 16028, 2016, as
matminer computes them). Targets are standardised with corpus statistics; the loss is an MSE over
the finite entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pretroost.configs import FingerprintConfig
from pretroost.data.fingerprint import magpie_fingerprint
from pretroost.objectives.base import RegressionObjective

if TYPE_CHECKING:
    from pretroost.data.corpus import Corpus

__all__ = ["FingerprintConfig", "FingerprintObjective"]


class FingerprintObjective(RegressionObjective):
    """``forward(batch) -> {"loss", "pred"}``; reads ``batch.targets["fingerprint"]`` (B, 144)."""

    name = "fingerprint"
    Config = FingerprintConfig
    target_key = "fingerprint"
    target_keys = ("fingerprint",)

    @classmethod
    def prepare_targets(cls, corpus: Corpus, config: FingerprintConfig) -> dict[str, np.ndarray]:

        return {"fingerprint": magpie_fingerprint(corpus.comps).astype(np.float32)}
