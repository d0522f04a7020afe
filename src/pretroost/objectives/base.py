"""The one interface every pretraining objective implements.

An objective owns (a reference to) the Roost encoder plus its own head, and maps a batch to a dict
holding ``"loss"``. To share one encoder pass between several objectives (their combination), each
objective computes its loss from an :class:`EncoderViews` object, which caches the plain embedding.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from pretroost.data.batching import CompositionBatch
from pretroost.losses import MaskedMSELoss
from pretroost.models.roost import ResidualNetwork, RoostEncoder

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from pretroost.data.corpus import Corpus

__all__ = ["HUANG_2024", "EncoderViews", "Objective", "ProjectionHead"]

#: the paper of the SSL, FL and MML strategies
HUANG_2024 = "Huang, Magar & Barati Farimani, J. Chem. Inf. Model. 64, 627 (2024)"


class EncoderViews:
    """Lazily computed encoder outputs for one batch: the plain view is computed once and shared."""

    def __init__(self, encoder: RoostEncoder, batch: CompositionBatch) -> None:
        self.encoder, self.batch = encoder, batch
        self._plain: Tensor | None = None

    def plain(self) -> Tensor:
        """(B, F) material vectors of the unmodified batch."""
        if self._plain is None:
            self._plain = self.encoder(self.batch)
        return self._plain

    def view(self, batch: CompositionBatch, input_mask: Tensor | None = None) -> Tensor:
        """(B, F) material vectors of an augmented batch (never cached)."""
        return self.encoder(batch, input_mask)


class ProjectionHead(nn.Module):
    """Material vector -> ReLU(residual trunk) -> linear projection. The trunk has the shape of the
    property model's trunk, so finetuning can reuse it (``--init-trunk``)."""

    def __init__(
        self, in_dim: int, out_dim: int, trunk_hidden: Sequence[int], trunk_out: int
    ) -> None:
        super().__init__()
        self.trunk = ResidualNetwork(in_dim, trunk_out, tuple(trunk_hidden))
        self.proj = nn.Linear(trunk_out, out_dim)

    def forward(self, z: Tensor) -> Tensor:
        """(B, in_dim) -> (B, out_dim)."""
        return self.proj(torch.relu(self.trunk(z)))


class Objective(nn.Module):
    """Base class of pretraining objectives.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass), implement :meth:`compute`, and, if
    they regress per-composition targets, :meth:`prepare_targets`.

    Args:
        encoder: the Roost encoder to train; ``None`` when the objective is one part of a
            combination (which then owns the encoder and passes :class:`EncoderViews`).
        config: an instance of ``Config``.
        in_dim: width of the encoder's material vector.
        target_dim: width of the regression target, if any.
    """

    name: ClassVar[str]
    #: the paper the objective comes from (the model card cites it)
    reference: ClassVar[str] = HUANG_2024
    Config: ClassVar[type[DataclassInstance]]
    #: an instance of ``Config`` (subclasses re-declare it with their own ``Config`` type)
    config: DataclassInstance
    #: keys of :attr:`CompositionBatch.targets` this objective reads
    target_keys: ClassVar[tuple[str, ...]] = ()
    #: its loss weight in a combination unless one is given (losses on comparable scales get 1)
    default_weight: ClassVar[float] = 1.0

    def __init__(
        self,
        encoder: RoostEncoder | None,
        config: Any,
        *,
        in_dim: int,
        target_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(
                f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.encoder = encoder
        self.config = config
        self.in_dim = in_dim
        self.target_dim = target_dim

    def forward(self, batch: CompositionBatch) -> dict[str, Tensor]:
        if self.encoder is None:
            raise RuntimeError(
                f"{self.name}: part of a combination; call compute() with shared views"
            )
        return self.compute(batch, EncoderViews(self.encoder, batch))

    @abstractmethod
    def compute(self, batch: CompositionBatch, views: EncoderViews) -> dict[str, Tensor]:
        """Return ``{"loss": scalar, ...}`` for one batch."""

    @classmethod
    def prepare_targets(cls, corpus: Corpus, config: Any) -> dict[str, np.ndarray]:
        """Per-composition targets over the whole corpus (name -> (n, ...) array); none by default."""
        return {}

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)


class RegressionObjective(Objective):
    """Regress a per-composition target vector (standardised with corpus statistics kept as
    buffers, so they travel with the weights) with an MSE that ignores NaN entries and rows whose
    ``<key>_mask`` is False.

    Subclasses set ``target_key`` and a ``Config`` with ``trunk_hidden`` and ``trunk_out``.
    """

    target_key: ClassVar[str]
    target_mean: Tensor  # buffers registered in __init__
    target_std: Tensor
    loss_fn: nn.Module  # (pred, target, row_mask) -> scalar

    def __init__(
        self,
        encoder: RoostEncoder | None,
        config: Any,
        *,
        in_dim: int,
        target_dim: int | None = None,
    ) -> None:
        if target_dim is None:
            raise ValueError(f"{self.name}: target_dim is required")
        super().__init__(encoder, config, in_dim=in_dim, target_dim=target_dim)
        self.head = ProjectionHead(in_dim, target_dim, config.trunk_hidden, config.trunk_out)
        self.register_buffer("target_mean", torch.zeros(target_dim))
        self.register_buffer("target_std", torch.ones(target_dim))
        self.loss_fn = MaskedMSELoss()

    def set_scaler(self, targets: np.ndarray) -> None:
        """Fit the standardisation on (n, D) corpus targets (NaN-aware; constant columns keep std 1)."""
        with np.errstate(all="ignore"):
            mean = np.nanmean(targets, axis=0)
            std = np.nanstd(targets, axis=0)
        mean = np.nan_to_num(mean, nan=0.0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        self.target_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.target_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def compute(self, batch: CompositionBatch, views: EncoderViews) -> dict[str, Tensor]:
        target = (batch.targets[self.target_key] - self.target_mean) / self.target_std
        row_mask = batch.targets.get(f"{self.target_key}_mask")
        pred = self.head(views.plain())
        return {"loss": self.loss_fn(pred, target, row_mask), "pred": pred}
