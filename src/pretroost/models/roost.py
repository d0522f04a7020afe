"""Roost (Goodall & Lee, "Predicting materials properties without crystal structure", Nat. Commun.
11, 6280, 2020), on dense padded batches: the model as the paper writes it.

A composition is a fully connected graph of its distinct elements (self-pairs included), node ``i``
weighted by its fractional amount ``w_i``. Read top to bottom:

1. **Element embedding.** ``h_i^0 = [E f_{z_i} || w_i]``: a fixed element vector (matscholar200 by
   default) through a learned linear map to ``elem_fea_len - 1`` numbers, with the fractional weight
   appended (:class:`RoostEncoder`). Optionally (``RoostConfig.amount_encoding="fourier"``, not
   the paper's) ``h_i^0 = [E f_{z_i} + A phi(w_i) || w_i]``, ``phi`` sines and cosines of the
   amount at several frequencies (:func:`amount_features`): Fourier features let an MLP fit
   sharp functions of a low-dimensional input (Tancik et al., NeurIPS 2020), as CrabNet's
   fractional encoding gives its attention the amounts at high resolution (Wang et al., npj
   Comput. Mater. 7, 77, 2021).
2. **Weighted soft-attention message passing** (Eq. 2-4 of the paper; :class:`MessageLayer`),
   ``n_graph`` times, each with ``elem_heads`` heads ``t`` and a residual update::

       h_i' = h_i + mean_t  sum_j  a_ij^t · f_t(h_i || h_j),
       a_ij^t = w_j^{p_t} exp(g_t(h_i || h_j)) / sum_k w_k^{p_t} exp(g_t(h_i || h_k)),

   ``g_t`` (gate, -> 1) and ``f_t`` (message, -> ``elem_fea_len``) per-head MLPs with LeakyReLU,
   ``p_t`` a learned power.
3. **Weighted attention pooling** (Eq. 5; :class:`WeightedAttentionPooling`): the same attention
   with ``cry_heads`` heads over the nodes ``i`` of a graph gives the material vector
   ``mean_t sum_i a_i^t f_t(h_i)``.
4. **Trunk and heads** (:class:`RoostModel`): residual networks from the material vector to the
   property (a mean and a log standard deviation for the robust loss). Optionally the trunk also
   reads the composition's standardised Magpie descriptors (Ward et al., npj Comput. Mater. 2,
   16028, 2016) beside the material vector (``ModelConfig.descriptors``): a hybrid of the learned
   and the hand-made representation, computed from the batch itself.

Instead of scattering over edge lists, all pairs of a batch are one ``(H, B, N, N, ·)`` problem:
the first layer of ``g_t`` and ``f_t`` on ``h_i || h_j`` is split as ``W_s h_i + W_n h_j``, and the
last, linear layer of ``f_t`` is applied after the attention sum (it commutes with the weighted
sum). This module is the reference implementation: dense torch ops, any device, any MLP depth,
equal to aviary's Roost to 1e-5 (``tests/test_roost_reference.py``). Each layer's ``forward`` can
switch to the fast CPU path of :mod:`pretroost.models.kernels` (fused C++ kernels, no per-pair
tensor materialised, same parameters and results to float rounding); :class:`RoostEncoder`'s
``impl`` decides which runs.

The settings, :class:`RoostConfig` and :class:`ModelConfig`, are defined in
:mod:`pretroost.configs` (torch-free) and re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretroost.configs import (
    AMOUNT_ENCODINGS,
    DESCRIPTORS,
    TASK_TYPES,
    AmountEncoding,
    Descriptors,
    ModelConfig,
    RoostConfig,
    TaskType,
)
from pretroost.data.batching import CompositionBatch
from pretroost.data.composition import CompositionArray
from pretroost.data.descriptors import descriptor_values, n_descriptors
from pretroost.data.elements import element_table
from pretroost.errors import ArtefactError
from pretroost.models import kernels

__all__ = [
    "AMOUNT_ENCODINGS",
    "DESCRIPTORS",
    "IMPLS",
    "TASK_TYPES",
    "AmountEncoding",
    "Descriptors",
    "Impl",
    "MessageLayer",
    "ModelConfig",
    "MultiHeadMLP",
    "ResidualNetwork",
    "RoostConfig",
    "RoostEncoder",
    "RoostModel",
    "TaskType",
    "WeightedAttentionPooling",
    "amount_features",
    "batch_compositions",
    "descriptor_values",
    "n_descriptors",
    "set_impl",
]

EPS = 1e-10  # softmax denominator guard, as in the reference implementation

Impl = Literal["auto", "fast", "reference"]
IMPLS: tuple[str, ...] = ("auto", "fast", "reference")
#: frequencies of :func:`amount_features`: pi * 2^k, k = 0 .. AMOUNT_OCTAVES - 1, on each scale
AMOUNT_OCTAVES = 6
#: the log scale of :func:`amount_features` maps amounts 10^-AMOUNT_DECADES .. 1 onto 0 .. 1
AMOUNT_DECADES = 4.0


def amount_features(weights: Tensor) -> Tensor:
    """(B, N) fractional amounts -> (B, N, 4 * AMOUNT_OCTAVES) Fourier features
    ``[sin(pi 2^k s), cos(pi 2^k s)]`` of ``s = w`` (linear scale) and of
    ``s = clip(1 + log10(w) / AMOUNT_DECADES, 0, 1)`` (log scale, for dopants), k = 0 .. 5.
    Order: linear-scale sines, its cosines, log-scale sines, its cosines (k ascending in each).
    The shortest period, 2^-4 of the scale, resolves differences of a few atomic percent.
    Padding (w = 0) gives finite values (the encoder masks those nodes anyway)."""
    freq = math.pi * 2.0 ** torch.arange(AMOUNT_OCTAVES, dtype=weights.dtype, device=weights.device)
    log_scale = (1 + torch.log10(weights.clamp_min(1e-30)) / AMOUNT_DECADES).clamp(0, 1)
    s = torch.stack([weights, log_scale], dim=-1).unsqueeze(-1) * freq  # (B, N, 2, K)
    return torch.cat([s.sin(), s.cos()], dim=-1).flatten(-2)


# ----------------------------------------------------------------------------------------------
# the weighted soft attention shared by message passing and pooling


class MultiHeadMLP(nn.Module):
    """``n_heads`` independent MLPs ``in_dim -> hidden... -> out_dim`` with LeakyReLU between layers
    (the reference's ``SimpleNetwork``), their parameters stacked per head.

    Parameters: ``weight_k`` (H, d_{k+1}, d_k) and ``bias_k`` (H, d_{k+1}) for layer ``k``.
    """

    def __init__(self, n_heads: int, in_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        super().__init__()
        self.dims = [in_dim, *hidden, out_dim]
        self.n_heads = n_heads
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_heads, d_out, d_in))
            for d_in, d_out in zip(self.dims[:-1], self.dims[1:], strict=True)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(n_heads, d_out)) for d_out in self.dims[1:]
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
        for w, b in zip(self.weights, self.biases, strict=True):
            bound = 1.0 / math.sqrt(w.shape[-1])
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def first_layer(self, x: Tensor, part: slice | None = None, bias: bool = True) -> Tensor:
        """Pre-activation of layer 0 for all heads: x (M, d_in') -> (H, M, d_1).

        ``part`` selects input columns of the first weight (for the split ``W_s h_i + W_n h_j``).
        """
        w = self.weights[0] if part is None else self.weights[0][..., part]
        H, d1, din = w.shape
        out = (x @ w.reshape(H * d1, din).T).view(-1, H, d1).transpose(0, 1)
        return out + self.biases[0].unsqueeze(1) if bias else out

    def rest(self, h: Tensor, upto: int | None = None) -> Tensor:
        """Layers ``1 .. upto-1`` on the activated first hidden layer: (H, M, d_1) -> (H, M, d)."""
        last = len(self.weights) if upto is None else upto
        for k in range(1, last):
            h = torch.baddbmm(self.biases[k].unsqueeze(1), h, self.weights[k].transpose(1, 2))
            if k < len(self.weights) - 1:
                h = F.leaky_relu(h)
        return h


def weights_pow(weights: Tensor, mask: Tensor, power: Tensor) -> Tensor:
    """(B, N) weights, (H,) powers -> (H, B, N) ``w^p``, zero at padding (never 0^p = inf)."""
    w = torch.where(mask, weights, torch.ones_like(weights)).unsqueeze(0) ** power.view(-1, 1, 1)
    return w * mask


def weighted_softmax(gate: Tensor, wp: Tensor, valid: Tensor) -> Tensor:
    """``a = w^p exp(g) / (sum w^p exp(g) + eps)`` over the last dim (Eq. 3), ignoring invalid
    entries. gate: (..., S) logits; wp, valid: broadcastable to it."""
    gate = gate.masked_fill(~valid, float("-inf"))
    gate = gate - gate.amax(dim=-1, keepdim=True)
    num = wp * gate.exp()
    return num / (num.sum(dim=-1, keepdim=True) + EPS)


class WeightedSoftAttention(nn.Module):
    """What message passing and pooling share: per head ``t``, a gate MLP ``g_t`` (``in_len``
    -> 1), a message MLP ``f_t`` (``in_len`` -> ``fea_len``) and a learnable power ``p_t`` of the
    fractional weights."""

    def __init__(
        self, in_len: int, fea_len: int, n_heads: int, gate: Sequence[int], msg: Sequence[int]
    ) -> None:
        super().__init__()
        self.gate = MultiHeadMLP(n_heads, in_len, gate, 1)
        self.msg = MultiHeadMLP(n_heads, in_len, msg, fea_len)
        self.power = nn.Parameter(torch.randn(n_heads))

    @property
    def fast_capable(self) -> bool:
        """The fused kernels cover one hidden layer per MLP (the paper's and the default)."""
        return len(self.gate.weights) == 2 and len(self.msg.weights) == 2

    def attend(self, hg: Tensor, hm: Tensor, wp: Tensor, valid: Tensor) -> Tensor:
        """``sum_s a_s^t f_t(·)_s`` per head over S attended items.

        Args:
            hg, hm: (H, ..., S, d_1) activated first hidden layers of ``g_t`` and ``f_t``.
            wp, valid: ``w^p`` and the valid items, broadcastable to (H, ..., S).

        Returns:
            (H, ..., fea_len). The message MLP's last, linear layer is applied after the sum:
            ``sum_s a_s (W h_s + b) = W (sum_s a_s h_s) + (sum_s a_s) b``.
        """
        lead = hg.shape[:-1]
        gate = self.gate.rest(hg.reshape(lead[0], -1, hg.shape[-1])).view(lead)
        attn = weighted_softmax(gate, wp, valid)  # (H, ..., S)
        m = self.msg.rest(hm.reshape(lead[0], -1, hm.shape[-1]), upto=len(self.msg.weights) - 1)
        m = m.view(*lead, -1)
        pooled = torch.matmul(attn.unsqueeze(-2), m).squeeze(-2)  # (H, ..., d)
        H, d = pooled.shape[0], pooled.shape[-1]
        out = torch.bmm(pooled.reshape(H, -1, d), self.msg.weights[-1].transpose(1, 2))
        out = out.view(*pooled.shape[:-1], -1)
        bias = self.msg.biases[-1].view(H, *([1] * (pooled.dim() - 2)), -1)
        return out + attn.sum(dim=-1, keepdim=True) * bias


class MessageLayer(WeightedSoftAttention):
    """One weighted soft-attention message-passing layer with residual update (Eq. 2-4)."""

    def __init__(self, fea_len: int, n_heads: int, gate: Sequence[int], msg: Sequence[int]) -> None:
        super().__init__(2 * fea_len, fea_len, n_heads, gate, msg)

    def forward(self, x: Tensor, weights: Tensor, mask: Tensor, *, fast: bool = False) -> Tensor:
        """x (B, N, F) node features, weights (B, N), mask (B, N) -> (B, N, F) updated features.

        ``fast``: the fused CPU kernels (one hidden layer per MLP), else dense pair tensors.
        """
        if fast:
            return kernels.message_layer(self, x, weights, mask)
        B, N, Fl = x.shape
        flat = x.reshape(B * N, Fl)
        me, nbr = slice(0, Fl), slice(Fl, 2 * Fl)

        def pairs(mlp: MultiHeadMLP) -> Tensor:  # (H, B, i, j, d_1) = act(W_s h_i + W_n h_j + b)
            s = mlp.first_layer(flat, me, bias=False).view(-1, B, N, 1, mlp.dims[1])
            t = mlp.first_layer(flat, nbr).view(-1, B, 1, N, mlp.dims[1])
            return F.leaky_relu(s + t)

        wp = weights_pow(weights, mask, self.power).unsqueeze(2)  # (H, B, 1, j)
        msg = self.attend(pairs(self.gate), pairs(self.msg), wp, mask[None, :, None, :])
        return x + msg.mean(dim=0)  # mean over heads, residual


class WeightedAttentionPooling(WeightedSoftAttention):
    """``cry_heads`` weighted attention pooling heads over the nodes of each graph (Eq. 5)."""

    def __init__(self, fea_len: int, n_heads: int, gate: Sequence[int], msg: Sequence[int]) -> None:
        super().__init__(fea_len, fea_len, n_heads, gate, msg)

    def forward(self, x: Tensor, weights: Tensor, mask: Tensor, *, fast: bool = False) -> Tensor:
        """x (B, N, F) node features, weights (B, N), mask (B, N) -> (B, F) material vectors.

        ``fast``: a node-major layout with all heads in one matmul, else per-head batched ops.
        """
        if fast:
            return kernels.attention_pooling(self, x, weights, mask)
        B, N, Fl = x.shape
        flat = x.reshape(B * N, Fl)
        hg = F.leaky_relu(self.gate.first_layer(flat)).view(-1, B, N, self.gate.dims[1])
        hm = F.leaky_relu(self.msg.first_layer(flat)).view(-1, B, N, self.msg.dims[1])
        wp = weights_pow(weights, mask, self.power)  # (H, B, N)
        return self.attend(hg, hm, wp, mask[None]).mean(dim=0)


# ----------------------------------------------------------------------------------------------
# the encoder: embedding -> message passing -> pooling


class RoostEncoder(nn.Module):
    """Composition -> material vector of length ``elem_fea_len``.

    The element table (e.g. matscholar200) is a fixed buffer saved with the weights, so an artefact
    does not depend on the installed package's copy of it.

    ``impl`` picks the implementation (same parameters, same results to float rounding):
    ``"fast"`` fused CPU kernels (one hidden layer per attention MLP), ``"reference"`` dense torch
    ops (any device, any depth), ``"auto"`` (default) the fast one where it applies.
    """

    element_table: Tensor  # buffer registered in __init__

    def __init__(self, config: RoostConfig | None = None, *, impl: Impl = "auto") -> None:
        super().__init__()
        self.config = config = config or RoostConfig()
        table, _ = element_table(config.elem_embedding)
        self.register_buffer("element_table", torch.tensor(table), persistent=True)
        self.embedding = nn.Linear(table.shape[1], config.elem_fea_len - 1)
        #: A of ``h^0 = [E f + A phi(w) || w]``; None without an amount encoding
        self.amount_embedding: nn.Linear | None = None
        if config.amount_encoding == "fourier":
            self.amount_embedding = nn.Linear(
                4 * AMOUNT_OCTAVES, config.elem_fea_len - 1, bias=False
            )
        self.graphs = nn.ModuleList(
            MessageLayer(config.elem_fea_len, config.elem_heads, config.elem_gate, config.elem_msg)
            for _ in range(config.n_graph)
        )
        self.pool = WeightedAttentionPooling(
            config.elem_fea_len, config.cry_heads, config.cry_gate, config.cry_msg
        )
        self.impl = impl

    @property
    def impl(self) -> Impl:
        return self._impl

    @impl.setter
    def impl(self, value: Impl) -> None:
        if value not in IMPLS:
            raise ValueError(f"unknown impl {value!r}; valid: {', '.join(IMPLS)}")
        self._impl = value

    @property
    def out_dim(self) -> int:
        return self.config.elem_fea_len

    def uses_fast_path(self, device: torch.device | str = "cpu") -> bool:
        """Whether a forward on ``device`` runs the fused kernels (builds them if needed)."""
        if self._impl == "reference":
            return False
        ok = (
            torch.device(device).type == "cpu"
            and self.pool.fast_capable
            and all(layer.fast_capable for layer in self.graphs)
        )
        ok = ok and kernels.roost_kernels() is not None
        if self._impl == "fast" and not ok:
            why = kernels.kernels_unavailable_reason()
            raise RuntimeError(
                f"impl='fast' is unavailable: {why or 'needs CPU tensors and one hidden layer per MLP'}"
            )
        return ok

    def node_features(
        self, batch: CompositionBatch, input_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Node features after message passing: (B, N, F), plus weights and mask (B, N).

        ``input_mask`` (B, N) bool zeroes the input element vector of the marked nodes (their
        fractional weights, and amount features, are kept) — the masking augmentation of the SSL
        objective.
        """
        if self.uses_fast_path(batch.z.device):
            return kernels.node_features(self, batch, input_mask), batch.weights, batch.mask
        fea = self.element_table[batch.z]  # (B, N, D)
        if input_mask is not None:
            fea = fea.masked_fill(input_mask.unsqueeze(-1), 0.0)
        emb = self.embedding(fea)  # (B, N, F-1)
        amount = self.amount_term(batch.weights)
        if amount is not None:
            emb = emb + amount.to(emb.dtype)
        x = torch.cat([emb, batch.weights.unsqueeze(-1)], dim=-1)  # h^0 (B, N, F)
        for layer in self.graphs:
            x = layer(x, batch.weights, batch.mask)
        return x, batch.weights, batch.mask

    def amount_term(self, weights: Tensor) -> Tensor | None:
        """``A phi(w)`` (B, N, elem_fea_len - 1) added to the element embeddings, from the
        (B, N) fractional weights; None without an amount encoding."""
        if self.amount_embedding is None:
            return None
        return self.amount_embedding(amount_features(weights))

    def forward(self, batch: CompositionBatch, input_mask: Tensor | None = None) -> Tensor:
        """(B, N) batch -> (B, elem_fea_len) material vectors."""
        x, weights, mask = self.node_features(batch, input_mask)
        return self.pool(x, weights, mask, fast=self.uses_fast_path(x.device))


def set_impl(module: nn.Module, impl: Impl) -> nn.Module:
    """Set ``impl`` on every :class:`RoostEncoder` inside ``module``; returns ``module``."""
    for m in module.modules():
        if isinstance(m, RoostEncoder):
            m.impl = impl
    return module


# ----------------------------------------------------------------------------------------------
# the property model: encoder -> trunk -> heads


class ResidualNetwork(nn.Module):
    """``x <- act(fc(x)) + res(x)`` per hidden layer (``res`` a bias-free projection where widths
    differ, else identity), then a linear output layer — Roost's output network."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.res_fcs = nn.ModuleList(
            nn.Linear(a, b, bias=False) if a != b else nn.Identity()
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.fc_out = nn.Linear(dims[-1], out_dim)

    def forward(self, x: Tensor) -> Tensor:
        for fc, res in zip(self.fcs, self.res_fcs, strict=True):
            x = F.relu(fc(x)) + res(x)
        return self.fc_out(x)


def batch_compositions(batch: CompositionBatch) -> CompositionArray:
    """The batch's compositions in CSR layout (fractions from the batch's float32 weights)."""
    mask = batch.mask.cpu().numpy()
    offsets = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=offsets[1:])
    z = batch.z.cpu().numpy()[mask].astype(np.int64)
    frac = batch.weights.cpu().numpy()[mask].astype(np.float64)
    return CompositionArray(z, frac, offsets)


class RoostModel(nn.Module):
    """Roost encoder -> ReLU(residual trunk) -> residual output network.

    ``forward`` returns (B, n_out): ``n_targets`` values, followed by ``n_targets`` log-stds when
    ``robust``; logits for classification. ``impl``: see :class:`RoostEncoder`.

    With ``config.descriptors``, the trunk's input is ``[material vector || (d' - mean) / std]``
    (B, elem_fea_len + n_descriptors), ``d`` the composition's descriptors computed from the batch
    and ``d'`` each clipped to the range it spans in the training rows: a composition unlike any
    training row (a descriptor constant in training, say) cannot push the trunk's input beyond
    what training showed it. ``lo``, ``hi``, ``mean`` and ``std`` are buffers (saved with the
    weights) that :meth:`fit_descriptor_scaler` sets from the training rows.
    """

    descriptor_lo: Tensor  # (n_descriptors,) buffers, present with descriptors only
    descriptor_hi: Tensor
    descriptor_mean: Tensor
    descriptor_std: Tensor

    def __init__(self, config: ModelConfig | None = None, *, impl: Impl = "auto") -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.encoder = RoostEncoder(config.encoder, impl=impl)
        n_desc = n_descriptors(config.descriptors)
        if n_desc:
            self.register_buffer("descriptor_lo", torch.full((n_desc,), -torch.inf))
            self.register_buffer("descriptor_hi", torch.full((n_desc,), torch.inf))
            self.register_buffer("descriptor_mean", torch.zeros(n_desc))
            self.register_buffer("descriptor_std", torch.ones(n_desc))
        self.trunk = ResidualNetwork(
            self.encoder.out_dim + n_desc, config.out_hidden[0], config.trunk_hidden
        )
        n_out = config.n_targets * (2 if config.robust else 1)
        self.head = ResidualNetwork(config.out_hidden[0], n_out, config.out_hidden[1:])

    def forward(self, batch: CompositionBatch) -> Tensor:
        x = self.encoder(batch)
        if self.config.descriptors != "none":
            x = torch.cat([x, self.descriptors(batch).to(x.dtype)], dim=1)
        return self.head(F.relu(self.trunk(x)))

    def descriptors(self, batch: CompositionBatch) -> Tensor:
        """(B, n_descriptors) clipped, standardised descriptors of the batch's compositions."""
        d = descriptor_values(self.config.descriptors, batch_compositions(batch))
        d_t = torch.as_tensor(d, dtype=torch.float32, device=self.descriptor_mean.device)
        d_t = torch.minimum(torch.maximum(d_t, self.descriptor_lo), self.descriptor_hi)
        return (d_t - self.descriptor_mean) / self.descriptor_std

    @torch.no_grad()
    def fit_descriptor_scaler(self, comps: CompositionArray) -> None:
        """Set the descriptors' range, mean and std from ``comps`` (the training rows); a constant
        descriptor keeps std 1. No-op without descriptors."""
        if self.config.descriptors == "none":
            return
        d = descriptor_values(self.config.descriptors, comps)
        std = d.std(axis=0)
        self.descriptor_lo.copy_(torch.as_tensor(d.min(axis=0)))
        self.descriptor_hi.copy_(torch.as_tensor(d.max(axis=0)))
        self.descriptor_mean.copy_(torch.as_tensor(d.mean(axis=0)))
        self.descriptor_std.copy_(torch.as_tensor(np.where(std > 1e-8, std, 1.0)))

    def embed(self, batch: CompositionBatch) -> Tensor:
        """(B, elem_fea_len) material vectors."""
        return self.encoder(batch)


def encoder_from_artefact(art: Any) -> RoostEncoder:
    """The Roost encoder of a loaded artefact (:func:`pretroost.artefacts.load_artefact`; any model folder whose
    ``config.json`` has an ``"encoder"`` config and whose weights hold ``encoder.*`` tensors), in
    eval mode. Raises ``ArtefactError`` if either is missing or they do not fit."""
    enc_cfg = art.config.get("encoder")
    if not isinstance(enc_cfg, dict):
        raise ArtefactError(f"{art.path}: config.json has no 'encoder' config")
    encoder = RoostEncoder(RoostConfig.from_dict(enc_cfg))
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in art.state_dict.items() if k.startswith(prefix)}
    if not state:
        raise ArtefactError(f"{art.path}: no tensors under {prefix!r}")
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtefactError(f"{art.path}: encoder weights do not fit its config ({exc})") from None
    return encoder.eval()
