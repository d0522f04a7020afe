"""Losses: small pure modules, each citing its source equation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretroost.distributed import gather_for_loss

__all__ = [
    "BarlowTwinsLoss",
    "MaskedMSELoss",
    "MaskedSmoothL1Loss",
    "RobustL1Loss",
    "cross_correlation",
]


class RobustL1Loss(nn.Module):
    """Heteroscedastic L1 loss of Roost (Goodall & Lee 2020, after Kendall & Gal, NeurIPS 2017):
    the negative log-likelihood of a Laplace distribution up to a constant,

        L = mean( sqrt(2) |y - mu| exp(-s) + s ),   s = log sigma (predicted aleatoric log-std).

    ``forward(mu, log_std, target)``, all (B, T) -> scalar. Minimal (for fixed |y - mu| = r) at
    ``s = log(sqrt(2) r)``.
    """

    def forward(self, mu: Tensor, log_std: Tensor, target: Tensor) -> Tensor:
        mu, log_std = mu.float(), log_std.float()
        return (math.sqrt(2.0) * (mu - target).abs() * torch.exp(-log_std) + log_std).mean()


class MaskedMSELoss(nn.Module):
    """Mean squared error over the finite entries of ``target`` only (NaN targets are ignored), and
    optionally only over rows where ``row_mask`` is True. (B, D) -> scalar; 0 if nothing is valid."""

    def forward(self, pred: Tensor, target: Tensor, row_mask: Tensor | None = None) -> Tensor:
        pred = pred.float()
        valid = torch.isfinite(target)
        if row_mask is not None:
            valid = valid & row_mask.view(-1, *([1] * (target.dim() - 1)))
        diff = torch.where(valid, pred - torch.nan_to_num(target), torch.zeros_like(pred))
        n = valid.sum()
        return (diff**2).sum() / n.clamp_min(1)


class MaskedSmoothL1Loss(nn.Module):
    """Smooth L1 (Huber) loss over the finite entries of ``target`` only, optionally only over
    rows where ``row_mask`` is True: per entry, with ``r = pred - target``,

        l(r) = 0.5 r^2 / beta   if |r| < beta,   |r| - 0.5 beta   otherwise

    (Huber, Ann. Math. Statist. 35, 73, 1964; in this parametrisation Girshick, Fast R-CNN, ICCV
    2015, as ``torch.nn.functional.smooth_l1_loss``), averaged over the valid entries: a missing
    (NaN or masked) label contributes nothing, neither to the sum nor to the count. ``beta = 0`` is
    the plain L1. (B, D) -> scalar; 0 if nothing is valid.
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def forward(self, pred: Tensor, target: Tensor, row_mask: Tensor | None = None) -> Tensor:
        pred = pred.float()
        valid = torch.isfinite(target)
        if row_mask is not None:
            valid = valid & row_mask.view(-1, *([1] * (target.dim() - 1)))
        # masked entries are compared with themselves (zero residual, zero gradient)
        safe_target = torch.where(valid, torch.nan_to_num(target), pred.detach())
        per_entry = F.smooth_l1_loss(pred, safe_target, reduction="none", beta=self.beta)
        per_entry = torch.where(valid, per_entry, torch.zeros_like(per_entry))
        return per_entry.sum() / valid.sum().clamp_min(1)


def cross_correlation(z1: Tensor, z2: Tensor, eps: float = 1e-5) -> Tensor:
    """Cross-correlation matrix of two batches of embeddings (Zbontar et al. 2021, Eq. 2).

    Each embedding dimension is standardised over the batch (batch normalisation without affine
    parameters, biased variance), then ``C = z1n.T @ z2n / B``. z1, z2: (B, D) -> C: (D, D).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"need two (B, D) tensors of equal shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    with torch.autocast(device_type=z1.device.type, enabled=False):  # fp32 even under bf16 autocast
        z1n = F.batch_norm(z1.float(), None, None, training=True, eps=eps)
        z2n = F.batch_norm(z2.float(), None, None, training=True, eps=eps)
        return z1n.T @ z2n / z1.shape[0]


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins redundancy-reduction loss (Zbontar et al., ICML 2021, Eq. 1):

        L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2,

    with ``C`` the cross-correlation of the batch-normalised embeddings of two views. Invariant to an
    affine rescaling of either embedding (per dimension, positive scale); zero for identical views
    with perfectly decorrelated dimensions. ``lambda = 0.0051`` as in the paper and Huang et al. 2024.

    ``forward(z1, z2)``: (B, D) each -> scalar. Under data parallelism (inside
    :func:`pretroost.distributed.sharded_step`) each rank passes its shard's rows and the loss
    gathers the rows of all ranks, with gradient, so the correlation is over the global batch: the
    value and gradients equal those of one process holding the whole batch. A batch of one row
    (e.g. the last of an epoch) has no batch statistics: its loss is 0 (no gradient signal).
    """

    def __init__(self, lambd: float = 0.0051) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        z1, z2 = gather_for_loss(z1, z2)
        if z1.shape[0] < 2:  # one row has no batch statistics: no signal (and no crash)
            return (z1.sum() + z2.sum()) * 0.0
        c = cross_correlation(z1, z2)
        on_diag = (1.0 - torch.diagonal(c)).pow(2).sum()
        off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        return on_diag + self.lambd * off_diag
