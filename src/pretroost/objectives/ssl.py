"""SSL: Barlow Twins between two views of a composition (Huang, Magar & Barati Farimani, J. Chem.
Inf. Model. 64, 627, 2024; loss of Zbontar et al., ICML 2021).

Views mask elements: a masked element's input embedding row is zeroed while its fractional weight is
kept, and every view keeps the full, fully connected graph (each node still messages all others).
By default, as in the authors' code, view 1 is the unmodified composition and view 2 has
``max(1, floor(mask_fraction * n_elements))`` elements masked.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pretroost.configs import SSLConfig
from pretroost.data.batching import CompositionBatch
from pretroost.losses import BarlowTwinsLoss
from pretroost.models.roost import RoostEncoder
from pretroost.objectives.base import EncoderViews, Objective, ProjectionHead

__all__ = ["BarlowTwinsObjective", "SSLConfig", "mask_elements", "perturb_amounts"]


def mask_elements(
    mask: Tensor, fraction: float, generator: torch.Generator | None = None
) -> Tensor:
    """Choose ``max(1, floor(fraction * n))`` of each composition's ``n`` real elements at random.

    Args:
        mask: (B, N) bool, True for real elements.
    Returns:
        (B, N) bool, True for the elements to mask (always a subset of ``mask``).
    """
    n = mask.sum(dim=1, keepdim=True)
    k = torch.clamp((fraction * n).floor(), min=1)
    scores = torch.rand(mask.shape, generator=generator, device=mask.device).masked_fill(~mask, 2.0)
    rank = scores.argsort(dim=1).argsort(dim=1)  # 0 = smallest score among real elements first
    return (rank < k) & mask


def perturb_amounts(batch: CompositionBatch, noise: float) -> CompositionBatch:
    """A copy of ``batch`` with amounts multiplied by exp(noise * N(0, 1)) and renormalised."""
    if noise <= 0:
        return batch
    w = batch.weights * torch.exp(noise * torch.randn_like(batch.weights)) * batch.mask
    w = w / w.sum(dim=1, keepdim=True)
    return CompositionBatch(batch.z, w, batch.mask, batch.index, batch.targets)


class BarlowTwinsObjective(Objective):
    """``forward(batch) -> {"loss", "on_diag", "off_diag"}``; projections are (B, proj_dim)."""

    name = "ssl"
    Config = SSLConfig
    config: SSLConfig

    def __init__(
        self,
        encoder: RoostEncoder | None,
        config: SSLConfig,
        *,
        in_dim: int,
        target_dim: int | None = None,
    ) -> None:
        super().__init__(encoder, config, in_dim=in_dim)
        self.head = ProjectionHead(in_dim, config.proj_dim, config.trunk_hidden, config.trunk_out)
        self.loss_fn = BarlowTwinsLoss(config.lambd)

    def compute(self, batch: CompositionBatch, views: EncoderViews) -> dict[str, Tensor]:
        cfg = self.config
        if cfg.mask_both or cfg.amount_noise > 0:
            b1 = perturb_amounts(batch, cfg.amount_noise)
            m1 = mask_elements(batch.mask, cfg.mask_fraction) if cfg.mask_both else None
            z1 = views.view(b1, m1)
        else:
            z1 = views.plain()
        b2 = perturb_amounts(batch, cfg.amount_noise)
        z2 = views.view(b2, mask_elements(batch.mask, cfg.mask_fraction))
        p1, p2 = self.head(z1), self.head(z2)
        loss = self.loss_fn(p1, p2)
        return {"loss": loss}
