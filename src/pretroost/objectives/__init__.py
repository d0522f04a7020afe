"""Pretraining objectives behind one registry.

Every objective maps a batch to ``{"loss": ...}`` (see :class:`~pretroost.objectives.base.Objective`).
Adding a strategy = one new module with an ``Objective`` subclass, one line in :data:`OBJECTIVES`
and its name and ``Config`` in :mod:`pretroost.configs` (:data:`~pretroost.configs.OBJECTIVE_NAMES`).
Several objectives combine as ``"ssl+fingerprint+structure"``: one shared encoder, a weighted sum
of losses (:class:`CombinedObjective`). The objectives' settings (``SSLConfig``, ...) and
:func:`parse_objective` live in :mod:`pretroost.configs` (torch-free) and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from torch import Tensor, nn

from pretroost.configs import (
    OBJECTIVE_NAMES,
    DFTConfig,
    FingerprintConfig,
    SSLConfig,
    StructureConfig,
    parse_objective,
)
from pretroost.data.batching import CompositionBatch
from pretroost.models.roost import RoostEncoder
from pretroost.objectives.base import EncoderViews, Objective
from pretroost.objectives.dft import DFTObjective
from pretroost.objectives.fingerprint import FingerprintObjective
from pretroost.objectives.ssl import BarlowTwinsObjective
from pretroost.objectives.structure import StructureObjective

__all__ = [
    "OBJECTIVES",
    "OBJECTIVE_NAMES",
    "CombinedObjective",
    "DFTConfig",
    "FingerprintConfig",
    "Objective",
    "SSLConfig",
    "StructureConfig",
    "parse_objective",
]

#: objective name (:data:`pretroost.configs.OBJECTIVE_NAMES`, in that order) -> its class
OBJECTIVES: dict[str, type[Objective]] = {
    "ssl": BarlowTwinsObjective,
    "fingerprint": FingerprintObjective,
    "structure": StructureObjective,
    "dft": DFTObjective,
}


class CombinedObjective(nn.Module):
    """One encoder trained by one or more objectives: ``loss = sum_k weight_k * loss_k``, with
    ``weight_k`` from ``weights`` or else the objective's ``default_weight`` (1; 2 for ``dft``,
    whose smooth L1 is half the squared error near the target).

    ``forward(batch) -> {"loss", "loss_<name>" per part}``. The plain encoder pass is shared by
    all parts. Used for every pretraining run (a single strategy is a combination of one), so
    artefacts always hold ``encoder.*`` and ``parts.<name>.*`` tensors.
    """

    def __init__(
        self,
        encoder: RoostEncoder,
        names: list[str],
        *,
        configs: Mapping[str, Any] | None = None,
        weights: Mapping[str, float] | None = None,
        target_dims: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        configs, weights, target_dims = (
            dict(configs or {}),
            dict(weights or {}),
            dict(target_dims or {}),
        )
        self.encoder = encoder
        self.names = list(names)
        self.weights = {n: float(weights.get(n, OBJECTIVES[n].default_weight)) for n in self.names}
        self.parts = nn.ModuleDict(
            {
                n: OBJECTIVES[n](
                    None,
                    configs.get(n) or OBJECTIVES[n].Config(),
                    in_dim=encoder.out_dim,
                    target_dim=target_dims.get(n),
                )
                for n in self.names
            }
        )

    @property
    def spec(self) -> str:
        return "+".join(self.names)

    def forward(self, batch: CompositionBatch) -> dict[str, Tensor]:
        views = EncoderViews(self.encoder, batch)
        out: dict[str, Tensor] = {}
        total = None
        for name, part in self.parts.items():
            loss = cast(Objective, part).compute(batch, views)["loss"]
            out[f"loss_{name}"] = loss.detach()
            term = self.weights[name] * loss
            total = term if total is None else total + term
        assert total is not None
        out["loss"] = total
        return out
