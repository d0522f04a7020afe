"""Roost (Goodall & Lee, "Predicting materials properties without crystal structure", Nat. Commun.
11, 6280, 2020), on dense padded batches.

A composition is a fully connected graph of its distinct elements (self-pairs included), node ``i``
weighted by its fractional amount ``w_i``. Each message-passing layer updates node features with
``elem_heads`` weighted soft-attention heads over all pairs (Eq. 2-4 of the paper)::

    h_i' = h_i + mean_heads  sum_j  a_ij^t · f_t(h_i || h_j),
    a_ij^t = w_j^{p_t} exp(g_t(h_i || h_j)) / sum_k w_k^{p_t} exp(g_t(h_i || h_k)),

and ``cry_heads`` weighted attention pooling heads over nodes give the material vector (Eq. 5).
``g_t`` (gate) and ``f_t`` (message) are per-head MLPs with LeakyReLU; ``p_t`` a learned power.

Instead of scattering over edge lists, all pairs of a batch are one ``(B, N, N, ·)`` problem. The
first layer of ``g_t`` and ``f_t`` acting on ``h_i || h_j`` is split as ``W_s h_i + W_n h_j``
(node-sized matmuls), and the last linear layer of ``f_t`` is applied *after* the attention sum (it
commutes with the weighted sum). Two implementations, equal to float rounding (tested, and equal to
aviary's reference Roost to 1e-5):

* ``"fast"`` (CPU, default where it applies): fused C++ kernels, compiled on first use, do the
  per-pair work (add, LeakyReLU, gate output layer, weighted softmax, weighted sum of message hidden
  layers, and the backward of all of it) one composition at a time in cache, so no per-pair tensor
  is ever materialised; the first layer of the first message layer is computed on the batch's
  distinct elements only. Works under ``torch.autocast("cpu", dtype=torch.bfloat16)`` too.
* ``"reference"``: dense torch ops on ``(H, B, N, N, d)`` pair tensors: any device, any MLP depth.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from pretroost.data.batching import CompositionBatch
from pretroost.data.elements import ELEMENT_FEATURES, ElementFeatureName, element_table

__all__ = [
    "IMPLS",
    "Impl",
    "ModelConfig",
    "ResidualNetwork",
    "RoostConfig",
    "RoostEncoder",
    "RoostModel",
    "roost_kernels",
    "set_impl",
]

log = logging.getLogger(__name__)

_EPS = 1e-10  # as in the reference implementation's softmax denominators


@dataclass(frozen=True, kw_only=True)
class RoostConfig:
    """Hyperparameters of the Roost encoder; defaults are the paper's."""

    elem_embedding: ElementFeatureName = "matscholar200"
    elem_fea_len: int = 64
    n_graph: int = 3
    elem_heads: int = 3
    elem_gate: tuple[int, ...] = (256,)
    elem_msg: tuple[int, ...] = (256,)
    cry_heads: int = 3
    cry_gate: tuple[int, ...] = (256,)
    cry_msg: tuple[int, ...] = (256,)

    def __post_init__(self) -> None:
        if self.elem_embedding not in ELEMENT_FEATURES:
            raise ValueError(
                f"unknown elem_embedding {self.elem_embedding!r}; valid: {', '.join(ELEMENT_FEATURES)}"
            )
        for name in ("elem_gate", "elem_msg", "cry_gate", "cry_msg"):
            hidden = tuple(getattr(self, name))
            object.__setattr__(self, name, hidden)
            if not hidden:
                raise ValueError(f"{name} needs at least one hidden layer")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> RoostConfig:
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)


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


def _weighted_softmax(gate: Tensor, weights_pow: Tensor, valid: Tensor) -> Tensor:
    """``w^p exp(g) / (sum w^p exp(g) + eps)`` over the last dim, ignoring invalid entries."""
    gate = gate.masked_fill(~valid, float("-inf"))
    gate = gate - gate.amax(dim=-1, keepdim=True)
    num = weights_pow * gate.exp()
    return num / (num.sum(dim=-1, keepdim=True) + _EPS)


def _weights_pow(weights: Tensor, mask: Tensor, power: Tensor) -> Tensor:
    """(B, N) weights, (H,) powers -> (H, B, N) ``w^p``, zero at padding (never 0^p = inf)."""
    w = torch.where(mask, weights, torch.ones_like(weights)).unsqueeze(0) ** power.view(-1, 1, 1)
    return w * mask


def _attend(
    mlp_gate: MultiHeadMLP, mlp_msg: MultiHeadMLP, hg: Tensor, hm: Tensor, wp: Tensor, valid: Tensor
) -> Tensor:
    """Shared tail of both attention blocks. hg, hm: (H, ..., S, d_1) activated first layers over the
    S attended items; wp, valid: broadcastable to (H, ..., S). Returns (H, ..., F): the weighted sum
    of messages (the message net's last, linear layer applied after the sum)."""
    lead = hg.shape[:-1]
    gate = mlp_gate.rest(hg.reshape(lead[0], -1, hg.shape[-1])).view(lead)
    attn = _weighted_softmax(gate, wp, valid)  # (H, ..., S)
    m = mlp_msg.rest(hm.reshape(lead[0], -1, hm.shape[-1]), upto=len(mlp_msg.weights) - 1)
    m = m.view(*lead, -1)
    pooled = torch.matmul(attn.unsqueeze(-2), m).squeeze(-2)  # (H, ..., d)
    H, d = pooled.shape[0], pooled.shape[-1]
    out = torch.bmm(pooled.reshape(H, -1, d), mlp_msg.weights[-1].transpose(1, 2))
    out = out.view(*pooled.shape[:-1], -1)
    bias = mlp_msg.biases[-1].view(H, *([1] * (pooled.dim() - 2)), -1)
    return out + attn.sum(dim=-1, keepdim=True) * bias


# ----------------------------------------------------------------------------------------------
# Fused CPU kernels for the pair attention of a message layer
# ----------------------------------------------------------------------------------------------

# One composition at a time (parallel over the batch), all heads: gate MLP on every pair, weighted
# softmax over neighbours, attention-weighted sum of message hidden layers, and the backward of all
# of it. Each composition's first-layer rows are first gathered into a small float buffer (from the
# (B·N, 2HD) first layers, or for layer 0 from the rows of the distinct elements plus the rank-1
# fractional-weight term), so pair values are recomputed from cache-resident node data and never
# stored: memory traffic is O(B·N·H·D) instead of O(B·N²·H·D). The backward accumulates each
# composition's gradient in cache and writes it once. Node tensors may be fp32 or bf16 (autocast);
# arithmetic is fp32; inner loops over the hidden units are vectorised by the compiler (omp simd).
_KERNEL_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

constexpr float kSlope = 0.01f;  // LeakyReLU negative slope (torch's default)
constexpr float kEps = 1e-10f;   // softmax denominator guard, as in the reference Roost

// Node tensors (first layers, P, their gradients) are float or bfloat16 bits (uint16_t);
// arithmetic is float. bf16 stores round to nearest even.
inline float ld(const float* p, int64_t k) { return p[k]; }
inline float ld(const uint16_t* p, int64_t k) {
  const uint32_t u = static_cast<uint32_t>(p[k]) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline void st(float* p, int64_t k, float v) { p[k] = v; }
inline void st(uint16_t* p, int64_t k, float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  const uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  p[k] = static_cast<uint16_t>(v != v ? 0x7FC0u : r);
}

// The first layer of one attention MLP on [h_i || h_j], for all heads, as stored by
// MultiHeadMLP: weight (H, D, 2F), so x @ weight.view(2HD, F).T gives per node the interleaved
// row [h][d][self, neighbour] of length 2HD. Rows are given directly, (B*N, 2HD), or factored
// (layer 0): row(node) = U[inv[node]] + w[node] * wcol, U (n_unique, 2HD).
template <typename T>
struct Half {
  const T* rows;
  const float* wcol;  // factored only, else nullptr
  const float* bias;  // (H*D), added to the neighbour half
  int64_t D;
};

struct Dims {
  int64_t B, N, H, Dg, Dm;
  // local (per composition, float) layout per node: [gate self | gate nbr | msg self | msg nbr]
  int64_t R() const { return 2 * H * (Dg + Dm); }
  int64_t gn() const { return H * Dg; }
  int64_t ms() const { return 2 * H * Dg; }
  int64_t mn() const { return 2 * H * Dg + H * Dm; }
};

inline int64_t valid_slots(const bool* m, int64_t N, int64_t* out) {
  int64_t n = 0;
  for (int64_t j = 0; j < N; ++j) {
    if (m[j]) out[n++] = j;
  }
  return n;
}

// de-interleave one node's row of one MLP into self (HD) and neighbour (HD) parts, + bias
template <typename T>
inline void gather_row(const Half<T>& hf, int64_t H, int64_t node, int64_t row_id, float wv,
                       float* __restrict__ self, float* __restrict__ nbr) {
  const int64_t HD = H * hf.D;
  const T* __restrict__ r = hf.rows + row_id * 2 * HD;
  const float* __restrict__ b = hf.bias;
  if (hf.wcol == nullptr) {
#pragma omp simd
    for (int64_t q = 0; q < HD; ++q) {
      self[q] = ld(r, 2 * q);
      nbr[q] = ld(r, 2 * q + 1) + b[q];
    }
  } else {
    const float* __restrict__ c = hf.wcol;
#pragma omp simd
    for (int64_t q = 0; q < HD; ++q) {
      self[q] = ld(r, 2 * q) + wv * c[2 * q];
      nbr[q] = (ld(r, 2 * q + 1) + wv * c[2 * q + 1]) + b[q];
    }
  }
  (void)node;
}

template <typename T>
void load_composition(const Dims& d, const Half<T>& g, const Half<T>& m, const int64_t* inv,
                      const float* w, int64_t b, const int64_t* idx, int64_t n, float* L) {
  const int64_t R = d.R();
  for (int64_t ii = 0; ii < n; ++ii) {
    const int64_t i = idx[ii], node = b * d.N + i;
    const int64_t row = inv != nullptr ? inv[node] : node;
    const float wv = w != nullptr ? w[node] : 0.f;
    gather_row(g, d.H, node, row, wv, L + i * R, L + i * R + d.gn());
    gather_row(m, d.H, node, row, wv, L + i * R + d.ms(), L + i * R + d.mn());
  }
}

// scatter one node's local gradient (self | neighbour of one MLP) back to the interleaved layout
inline void scatter_row(const float* __restrict__ self, const float* __restrict__ nbr, int64_t HD,
                        float* __restrict__ dst, float* __restrict__ dwcol, float wv,
                        float* __restrict__ dbias) {
#pragma omp simd
  for (int64_t q = 0; q < HD; ++q) {
    dst[2 * q] += self[q];
    dst[2 * q + 1] += nbr[q];
    dbias[q] += nbr[q];
  }
  if (dwcol != nullptr) {
#pragma omp simd
    for (int64_t q = 0; q < HD; ++q) {
      dwcol[2 * q] += wv * self[q];
      dwcol[2 * q + 1] += wv * nbr[q];
    }
  }
}

template <typename T>
inline void store_row(const float* __restrict__ self, const float* __restrict__ nbr, int64_t HD,
                      T* __restrict__ dst, float* __restrict__ dbias) {
#pragma omp simd
  for (int64_t q = 0; q < HD; ++q) {
    st(dst, 2 * q, self[q]);
    st(dst, 2 * q + 1, nbr[q]);
    dbias[q] += nbr[q];
  }
}

template <typename T>
void forward_impl(const Dims& d, const Half<T>& g, const Half<T>& m, const int64_t* inv,
                  const float* w, const float* w2p, const float* b2p, const float* wpp,
                  const bool* mp, T* Pp, float* asp, float* Ap, float* Qp) {
  const int64_t N = d.N, H = d.H, Dg = d.Dg, Dm = d.Dm, R = d.R();
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> idx(N);
    std::vector<float> e(N), u(N), acc_p(Dm), loc(N * R);
    float* __restrict__ p = acc_p.data();
    const float* L = loc.data();
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = valid_slots(mp + b * N, N, idx.data());
      load_composition(d, g, m, inv, w, b, idx.data(), n, loc.data());
      for (int64_t k = 0; k < N * H * Dm; ++k) st(Pp + b * N * H * Dm, k, 0.f);
      std::memset(asp + b * N * H, 0, sizeof(float) * N * H);
      if (Ap != nullptr) {
        std::memset(Ap + b * N * N * H, 0, sizeof(float) * N * N * H);
        std::memset(Qp + b * N * N * H, 0, sizeof(float) * N * N * H);
      }
      for (int64_t ii = 0; ii < n; ++ii) {
        const int64_t i = idx[ii];
        for (int64_t h = 0; h < H; ++h) {
          const float* __restrict__ sg = L + i * R + h * Dg;
          const float* __restrict__ wh = w2p + h * Dg;
          float gmax = -std::numeric_limits<float>::infinity();
          for (int64_t jj = 0; jj < n; ++jj) {
            const float* __restrict__ tg = L + idx[jj] * R + d.gn() + h * Dg;
            float acc = 0.f;
#pragma omp simd reduction(+ : acc)
            for (int64_t k = 0; k < Dg; ++k) {
              const float v = sg[k] + tg[k];
              acc += wh[k] * (v > 0.f ? v : kSlope * v);
            }
            e[jj] = acc + b2p[h];
            gmax = std::max(gmax, e[jj]);
          }
          float Z = 0.f;
          for (int64_t jj = 0; jj < n; ++jj) {
            e[jj] = std::exp(e[jj] - gmax);
            u[jj] = wpp[(b * N + idx[jj]) * H + h] * e[jj];
            Z += u[jj];
          }
          Z += kEps;
          const float* __restrict__ sm = L + i * R + d.ms() + h * Dm;
          std::fill(acc_p.begin(), acc_p.end(), 0.f);
          float as = 0.f;
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t j = idx[jj];
            const float a = u[jj] / Z;
            as += a;
            if (Ap != nullptr) {
              Ap[((b * N + i) * N + j) * H + h] = a;
              Qp[((b * N + i) * N + j) * H + h] = e[jj] / Z;
            }
            const float* __restrict__ tm = L + j * R + d.mn() + h * Dm;
#pragma omp simd
            for (int64_t k = 0; k < Dm; ++k) {
              const float v = sm[k] + tm[k];
              p[k] += a * (v > 0.f ? v : kSlope * v);
            }
          }
          T* __restrict__ out = Pp + ((b * N + i) * H + h) * Dm;
#pragma omp simd
          for (int64_t k = 0; k < Dm; ++k) st(out, k, p[k]);
          asp[(b * N + i) * H + h] = as;
        }
      }
    }
  });
}

// Gradients: dG, dM (rows of the direct layout, or the per-unique rows when factored), per-thread
// accumulators acc = [dw2 (H*Dg) | dbg (H*Dg) | dbm (H*Dm) | dwcol_g (2H*Dg) | dwcol_m (2H*Dm) |
// dU_g (n_unique*2H*Dg) | dU_m (n_unique*2H*Dm)] (the last three only when factored).
template <typename T>
void backward_impl(const Dims& d, const Half<T>& g, const Half<T>& m, const int64_t* inv,
                   const float* w, int64_t n_unique, const float* w2p, const bool* mp,
                   const float* Ap, const float* Qp, const T* dPp, const float* dap, T* dG, T* dM,
                   float* dwpp, float* accp, int64_t acc_len, int64_t nt) {
  const int64_t N = d.N, H = d.H, Dg = d.Dg, Dm = d.Dm, R = d.R();
  const bool factored = inv != nullptr;
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    const int64_t tid = std::min<int64_t>(at::get_thread_num(), nt - 1);
    float* acc = accp + tid * acc_len;
    float* __restrict__ dw2 = acc;
    float* dbg = dw2 + H * Dg;
    float* dbm = dbg + H * Dg;
    float* dcg = dbm + H * Dm;
    float* dcm = dcg + 2 * H * Dg;
    float* dUg = dcm + 2 * H * Dm;
    float* dUm = dUg + n_unique * 2 * H * Dg;
    std::vector<int64_t> idx(N);
    std::vector<float> da(N), dpf(Dm), loc(N * R), dloc(N * R);
    const float* L = loc.data();
    float* DL = dloc.data();
    float* __restrict__ dp = dpf.data();
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = valid_slots(mp + b * N, N, idx.data());
      load_composition(d, g, m, inv, w, b, idx.data(), n, loc.data());
      std::fill(dloc.begin(), dloc.end(), 0.f);
      for (int64_t ii = 0; ii < n; ++ii) {
        const int64_t i = idx[ii];
        for (int64_t h = 0; h < H; ++h) {
          const int64_t ih = (b * N + i) * H + h;
          const T* __restrict__ dPi = dPp + ih * Dm;
#pragma omp simd
          for (int64_t k = 0; k < Dm; ++k) dp[k] = ld(dPi, k);
          const float* __restrict__ sm = L + i * R + d.ms() + h * Dm;
          float* __restrict__ dsm = DL + i * R + d.ms() + h * Dm;
          float c = 0.f;
          // message half: d attention, d pre-activations (recomputed)
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t j = idx[jj];
            const float a = Ap[((b * N + i) * N + j) * H + h];
            const float* __restrict__ tm = L + j * R + d.mn() + h * Dm;
            float* __restrict__ dtm = DL + j * R + d.mn() + h * Dm;
            float s_acc = 0.f;
#pragma omp simd reduction(+ : s_acc)
            for (int64_t k = 0; k < Dm; ++k) {
              const float pre = sm[k] + tm[k];
              const bool pos = pre > 0.f;
              s_acc += dp[k] * (pos ? pre : kSlope * pre);
              const float gr = a * dp[k] * (pos ? 1.f : kSlope);
              dsm[k] += gr;
              dtm[k] += gr;
            }
            da[jj] = s_acc + dap[ih];
            c += a * da[jj];
          }
          // weighted softmax -> d gate logits, d w^p; then the gate half
          const float* __restrict__ sg = L + i * R + h * Dg;
          float* __restrict__ dsg = DL + i * R + h * Dg;
          const float* __restrict__ wh = w2p + h * Dg;
          float* __restrict__ dwh = dw2 + h * Dg;
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t j = idx[jj];
            const int64_t ijh = ((b * N + i) * N + j) * H + h;
            const float diff = da[jj] - c;
            const float dg = Ap[ijh] * diff;
            dwpp[(b * N + j) * H + h] += Qp[ijh] * diff;
            if (dg == 0.f) continue;
            const float* __restrict__ tg = L + j * R + d.gn() + h * Dg;
            float* __restrict__ dtg = DL + j * R + d.gn() + h * Dg;
#pragma omp simd
            for (int64_t k = 0; k < Dg; ++k) {
              const float pre = sg[k] + tg[k];
              const bool pos = pre > 0.f;
              dwh[k] += dg * (pos ? pre : kSlope * pre);
              const float gr = dg * wh[k] * (pos ? 1.f : kSlope);
              dsg[k] += gr;
              dtg[k] += gr;
            }
          }
        }
      }
      if (factored) {
        for (int64_t ii = 0; ii < n; ++ii) {
          const int64_t i = idx[ii], node = b * N + i, u = inv[node];
          const float wv = w[node];
          scatter_row(DL + i * R, DL + i * R + d.gn(), H * Dg, dUg + u * 2 * H * Dg, dcg, wv, dbg);
          scatter_row(DL + i * R + d.ms(), DL + i * R + d.mn(), H * Dm, dUm + u * 2 * H * Dm, dcm,
                      wv, dbm);
        }
      } else {
        // every slot of this composition's rows is written (zeros at padding)
        for (int64_t i = 0; i < N; ++i) {
          store_row(DL + i * R, DL + i * R + d.gn(), H * Dg, dG + (b * N + i) * 2 * H * Dg, dbg);
          store_row(DL + i * R + d.ms(), DL + i * R + d.mn(), H * Dm, dM + (b * N + i) * 2 * H * Dm,
                    dbm);
        }
      }
    }
  });
}

struct Args {
  Dims d;
  int64_t n_unique;
  bool bf16;
};

Args check(const at::Tensor& Sg, const at::Tensor& Sm, const c10::optional<at::Tensor>& wcol_g,
           const c10::optional<at::Tensor>& wcol_m, const c10::optional<at::Tensor>& inv,
           const c10::optional<at::Tensor>& w, const at::Tensor& bg, const at::Tensor& bm,
           const at::Tensor& w2, const at::Tensor& wp, const at::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 2 && mask.scalar_type() == at::kBool && mask.is_contiguous(),
              "mask: contiguous bool (B, N)");
  TORCH_CHECK(w2.dim() == 2 && w2.scalar_type() == at::kFloat && w2.is_contiguous(),
              "w2: contiguous float32 (H, Dg)");
  const int64_t B = mask.size(0), N = mask.size(1), H = w2.size(0), Dg = w2.size(1);
  TORCH_CHECK(Sg.dim() == 2 && Sg.is_contiguous() && Sm.dim() == 2 && Sm.is_contiguous(),
              "first layers: contiguous 2-d");
  TORCH_CHECK(Sg.scalar_type() == Sm.scalar_type() &&
                  (Sg.scalar_type() == at::kFloat || Sg.scalar_type() == at::kBFloat16),
              "first layers: both float32 or both bfloat16");
  TORCH_CHECK(Sg.size(1) == 2 * H * Dg && Sm.size(1) % (2 * H) == 0, "first-layer widths");
  const int64_t Dm = Sm.size(1) / (2 * H);
  const bool factored = inv.has_value();
  const int64_t rows = factored ? Sg.size(0) : B * N;
  TORCH_CHECK(Sg.size(0) == rows && Sm.size(0) == rows, "first layers: expected ", rows, " rows");
  auto f32 = [](const at::Tensor& t, int64_t numel, const char* what) {
    TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == numel, what,
                ": expected a contiguous float32 tensor of ", numel, " elements");
  };
  f32(bg, H * Dg, "gate bias");
  f32(bm, H * Dm, "message bias");
  f32(wp, B * N * H, "w^p");
  if (factored) {
    TORCH_CHECK(wcol_g.has_value() && wcol_m.has_value() && w.has_value(), "factored: all parts");
    f32(*wcol_g, 2 * H * Dg, "gate weight column");
    f32(*wcol_m, 2 * H * Dm, "message weight column");
    f32(*w, B * N, "weights");
    TORCH_CHECK(inv->scalar_type() == at::kLong && inv->is_contiguous() && inv->numel() == B * N,
                "inv: contiguous int64 (B, N)");
    const auto mx = inv->numel() ? inv->max().item<int64_t>() : 0;
    const auto mn = inv->numel() ? inv->min().item<int64_t>() : 0;
    TORCH_CHECK(mn >= 0 && mx < rows, "inv out of range");
  }
  return {{B, N, H, Dg, Dm}, factored ? rows : 0, Sg.scalar_type() == at::kBFloat16};
}

template <typename T>
Half<T> half_of(const at::Tensor& S, const c10::optional<at::Tensor>& wcol, const at::Tensor& bias,
                int64_t D) {
  return {reinterpret_cast<const T*>(S.data_ptr()),
          wcol.has_value() ? wcol->data_ptr<float>() : nullptr, bias.data_ptr<float>(), D};
}

}  // namespace

// -> P (B, N, H, Dm) in the first layers' dtype, sum_j a (B, N, H), and if save the attention
// a and q = a / w^p (B, N, N, H)
std::vector<at::Tensor> pair_attention_forward(
    const at::Tensor& Sg, const at::Tensor& Sm, const c10::optional<at::Tensor>& wcol_g,
    const c10::optional<at::Tensor>& wcol_m, const c10::optional<at::Tensor>& inv,
    const c10::optional<at::Tensor>& w, const at::Tensor& bg, const at::Tensor& bm,
    const at::Tensor& w2, const at::Tensor& b2, const at::Tensor& wp, const at::Tensor& mask,
    bool save) {
  const Args a = check(Sg, Sm, wcol_g, wcol_m, inv, w, bg, bm, w2, wp, mask);
  const Dims& d = a.d;
  const auto f32 = Sg.options().dtype(at::kFloat);
  at::Tensor P = at::empty({d.B, d.N, d.H, d.Dm}, Sg.options());
  at::Tensor asum = at::empty({d.B, d.N, d.H}, f32);
  at::Tensor A = at::empty({save ? d.B : 0, d.N, d.N, d.H}, f32);
  at::Tensor Q = at::empty({save ? d.B : 0, d.N, d.N, d.H}, f32);
  at::Tensor b2c = b2.to(at::kFloat).contiguous();
  const int64_t* invp = inv.has_value() ? inv->data_ptr<int64_t>() : nullptr;
  const float* wv = w.has_value() ? w->data_ptr<float>() : nullptr;
  float* Ap = save ? A.data_ptr<float>() : nullptr;
  float* Qp = save ? Q.data_ptr<float>() : nullptr;
  if (!a.bf16) {
    forward_impl<float>(d, half_of<float>(Sg, wcol_g, bg, d.Dg), half_of<float>(Sm, wcol_m, bm, d.Dm),
                        invp, wv, w2.data_ptr<float>(), b2c.data_ptr<float>(), wp.data_ptr<float>(),
                        mask.data_ptr<bool>(), reinterpret_cast<float*>(P.data_ptr()),
                        asum.data_ptr<float>(), Ap, Qp);
  } else {
    forward_impl<uint16_t>(d, half_of<uint16_t>(Sg, wcol_g, bg, d.Dg),
                           half_of<uint16_t>(Sm, wcol_m, bm, d.Dm), invp, wv, w2.data_ptr<float>(),
                           b2c.data_ptr<float>(), wp.data_ptr<float>(), mask.data_ptr<bool>(),
                           reinterpret_cast<uint16_t*>(P.data_ptr()), asum.data_ptr<float>(), Ap, Qp);
  }
  return {P, asum, A, Q};
}

// -> d Sg, d Sm (in their dtype and shape), d wcol_g, d wcol_m (factored, else empty), d bg, d bm,
// d w2, d b2 (exactly zero: a shift of all logits of a softmax), d w^p
std::vector<at::Tensor> pair_attention_backward(
    const at::Tensor& Sg, const at::Tensor& Sm, const c10::optional<at::Tensor>& wcol_g,
    const c10::optional<at::Tensor>& wcol_m, const c10::optional<at::Tensor>& inv,
    const c10::optional<at::Tensor>& w, const at::Tensor& bg, const at::Tensor& bm,
    const at::Tensor& w2, const at::Tensor& wp, const at::Tensor& mask, const at::Tensor& A,
    const at::Tensor& Q, const at::Tensor& dP, const at::Tensor& dasum) {
  const Args a = check(Sg, Sm, wcol_g, wcol_m, inv, w, bg, bm, w2, wp, mask);
  const Dims& d = a.d;
  const int64_t H = d.H, Dg = d.Dg, Dm = d.Dm;
  TORCH_CHECK(A.scalar_type() == at::kFloat && A.is_contiguous() && A.numel() == d.B * d.N * d.N * H &&
                  Q.scalar_type() == at::kFloat && Q.is_contiguous() && Q.numel() == A.numel(),
              "saved attention");
  TORCH_CHECK(dasum.scalar_type() == at::kFloat && dasum.is_contiguous() &&
                  dasum.numel() == d.B * d.N * H, "d sum a: contiguous float32 (B, N, H)");
  TORCH_CHECK(dP.scalar_type() == Sg.scalar_type() && dP.is_contiguous() &&
                  dP.numel() == d.B * d.N * H * Dm, "dP: contiguous (B, N, H, Dm), first layers' dtype");
  const bool factored = inv.has_value();
  const auto f32 = Sg.options().dtype(at::kFloat);
  const int64_t nt = at::get_num_threads();
  const int64_t nu = a.n_unique;
  const int64_t acc_len = 2 * H * Dg + H * Dm + (factored ? 2 * H * (Dg + Dm) * (1 + nu) : 0);
  at::Tensor acc = at::zeros({nt, acc_len}, f32);
  at::Tensor dG = factored ? at::empty({0}, Sg.options()) : at::empty(Sg.sizes(), Sg.options());
  at::Tensor dM = factored ? at::empty({0}, Sm.options()) : at::empty(Sm.sizes(), Sm.options());
  at::Tensor dwp = at::zeros({d.B, d.N, H}, f32);
  const int64_t* invp = factored ? inv->data_ptr<int64_t>() : nullptr;
  const float* wv = factored ? w->data_ptr<float>() : nullptr;
  if (!a.bf16) {
    backward_impl<float>(d, half_of<float>(Sg, wcol_g, bg, Dg), half_of<float>(Sm, wcol_m, bm, Dm),
                         invp, wv, nu, w2.data_ptr<float>(), mask.data_ptr<bool>(),
                         A.data_ptr<float>(), Q.data_ptr<float>(),
                         reinterpret_cast<const float*>(dP.data_ptr()), dasum.data_ptr<float>(),
                         reinterpret_cast<float*>(dG.data_ptr()), reinterpret_cast<float*>(dM.data_ptr()),
                         dwp.data_ptr<float>(), acc.data_ptr<float>(), acc_len, nt);
  } else {
    backward_impl<uint16_t>(d, half_of<uint16_t>(Sg, wcol_g, bg, Dg),
                            half_of<uint16_t>(Sm, wcol_m, bm, Dm), invp, wv, nu,
                            w2.data_ptr<float>(), mask.data_ptr<bool>(), A.data_ptr<float>(),
                            Q.data_ptr<float>(), reinterpret_cast<const uint16_t*>(dP.data_ptr()),
                            dasum.data_ptr<float>(), reinterpret_cast<uint16_t*>(dG.data_ptr()),
                            reinterpret_cast<uint16_t*>(dM.data_ptr()), dwp.data_ptr<float>(),
                            acc.data_ptr<float>(), acc_len, nt);
  }
  at::Tensor tot = acc.sum(0);
  int64_t o = 0;
  auto take = [&](int64_t len) {
    at::Tensor t = tot.narrow(0, o, len);
    o += len;
    return t;
  };
  at::Tensor dw2 = take(H * Dg).view({H, Dg});
  at::Tensor dbg = take(H * Dg);
  at::Tensor dbm = take(H * Dm);
  at::Tensor dcg, dcm;
  if (factored) {
    dcg = take(2 * H * Dg);
    dcm = take(2 * H * Dm);
    dG = take(nu * 2 * H * Dg).view({nu, 2 * H * Dg}).to(Sg.scalar_type());
    dM = take(nu * 2 * H * Dm).view({nu, 2 * H * Dm}).to(Sm.scalar_type());
  } else {
    dcg = at::empty({0}, f32);
    dcm = at::empty({0}, f32);
  }
  return {dG, dM, dcg, dcm, dbg, dbm, dw2, at::zeros({H}, f32), dwp};
}
"""

_KERNEL_FLAGS = ["-O3", "-march=native", "-fopenmp"]
_kernel_lock = threading.Lock()
_kernel_state: dict[str, object] = {}


def _cpu_signature() -> str:
    """Model and ISA flags of this CPU: ``-march=native`` builds are cached per machine type."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(keep)


def _kernels_built(name: str) -> bool:
    try:  # a private torch helper: only used to decide whether to announce a compilation
        from torch.utils.cpp_extension import _get_build_directory

        return Path(_get_build_directory(name, verbose=False), f"{name}.so").is_file()
    except Exception:
        return True


def roost_kernels():
    """The compiled pair-attention kernels, built on first use (about a minute, once per machine
    and source version; cached by torch in ``$TORCH_EXTENSIONS_DIR``); ``None`` where they cannot be
    built (no C++ compiler) or are disabled with ``PRETROOST_ROOST_KERNELS=0``."""
    if "module" in _kernel_state:
        return _kernel_state["module"]
    with _kernel_lock:
        if "module" in _kernel_state:
            return _kernel_state["module"]
        module = None
        if os.environ.get("PRETROOST_ROOST_KERNELS", "1").strip().lower() in {"0", "false", "no"}:
            _kernel_state["error"] = "disabled by PRETROOST_ROOST_KERNELS"
        else:
            key = "\n".join([_KERNEL_SOURCE, *_KERNEL_FLAGS, torch.__version__, _cpu_signature()])
            name = "pretroost_roost_" + hashlib.sha1(key.encode()).hexdigest()[:12]
            t0 = time.perf_counter()
            if not _kernels_built(name):
                log.info("compiling the Roost CPU kernels (once per machine, about a minute)")
            try:
                from torch.utils.cpp_extension import load_inline

                module = load_inline(
                    name,
                    cpp_sources=_KERNEL_SOURCE,
                    functions=["pair_attention_forward", "pair_attention_backward"],
                    extra_cflags=_KERNEL_FLAGS,
                    extra_ldflags=["-fopenmp"],
                    verbose=False,
                )
                log.debug("Roost CPU kernels ready in %.1f s", time.perf_counter() - t0)
            except Exception as exc:  # no compiler, no headers, build error: use the reference path
                _kernel_state["error"] = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "Roost CPU kernels unavailable (%s); using the slower reference path",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
        _kernel_state["module"] = module
        return module


class _PairAttention(torch.autograd.Function):
    """First layers (direct or factored) and attention parameters -> (P, sum_j a_ij); see
    ``_pair_attention`` and ``_KERNEL_SOURCE``."""

    @staticmethod
    def forward(ctx, Sg, Sm, cg, cm, inv, w, bg, bm, w2, b2, wp, mask):
        args = (Sg, Sm, cg, cm, inv, w, bg, bm, w2, b2, wp, mask)
        P, asum, A, Q = roost_kernels().pair_attention_forward(*args, True)
        ctx.save_for_backward(Sg, Sm, cg, cm, inv, w, bg, bm, w2, wp, mask, A, Q)
        return P, asum

    @staticmethod
    @once_differentiable
    def backward(ctx, dP, dasum):
        Sg, Sm, cg, cm, inv, w, bg, bm, w2, wp, mask, A, Q = ctx.saved_tensors
        B, N, _, H = A.shape
        dP = Sg.new_zeros((B, N, H, bm.numel() // H)) if dP is None else dP.to(Sg.dtype)
        dasum = wp.new_zeros(wp.shape) if dasum is None else dasum.float()
        dG, dM, dcg, dcm, dbg, dbm, dw2, db2, dwp = roost_kernels().pair_attention_backward(
            Sg, Sm, cg, cm, inv, w, bg, bm, w2, wp, mask, A, Q, dP.contiguous(), dasum.contiguous()
        )
        factored = inv is not None
        return (
            dG,
            dM,
            dcg if factored else None,
            dcm if factored else None,
            None,
            None,
            dbg,
            dbm,
            dw2,
            db2,
            dwp,
            None,
        )


def _f32(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.float().contiguous()


def _pair_attention(
    Sg: Tensor,
    Sm: Tensor,
    bg: Tensor,
    bm: Tensor,
    w2: Tensor,
    b2: Tensor,
    wp: Tensor,
    mask: Tensor,
    factored: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Pair attention of one message layer on the fused kernels.

    Args:
        Sg, Sm: first layers of the gate and message MLPs without bias, ``x @ W.view(2HD, F).T``:
            per node the interleaved row [head][unit][self, neighbour] (B·N, 2HD); or, with
            ``factored``, the same for the U distinct rows (U, 2HD). fp32 or bf16.
        bg (H·Dg,), bm (H·Dm,): the first layers' biases. w2 (H, Dg), b2 (H,): the gates' output
            layers. wp (B, N, H): w^p, zero at padding. mask (B, N).
        factored: ``(cg, cm, inv, w)``: node rows are ``S[inv] + w * c`` (c the first layer's
            weight column acting on the fractional weight, (2HD,)), never materialised.

    Returns:
        P (B, N, H, Dm) attention-weighted sums of message hidden layers (in Sg's dtype), and
        (B, N, H) sum_j a_ij (fp32).
    """
    if Sg.dtype not in (torch.float32, torch.bfloat16) or Sm.dtype != Sg.dtype:
        Sg, Sm = Sg.float(), Sm.float()
    cg, cm, inv, w = factored if factored is not None else (None, None, None, None)
    args = (
        Sg.contiguous(),
        Sm.contiguous(),
        _f32(cg),
        _f32(cm),
        None if inv is None else inv.contiguous(),
        _f32(w),
        _f32(bg),
        _f32(bm),
        _f32(w2),
        b2,
        _f32(wp),
        mask.contiguous(),
    )
    grads = (args[0], args[1], args[2], args[3], args[6], args[7], args[8], b2, args[10])
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in grads):
        return _PairAttention.apply(*args)
    P, asum, _, _ = roost_kernels().pair_attention_forward(*args, False)
    return P, asum


def _weights_pow_bnh(weights: Tensor, mask: Tensor, power: Tensor) -> Tensor:
    """(B, N) weights, (H,) powers -> (B, N, H) ``w^p``, zero at padding."""
    w = torch.where(mask, weights, torch.ones_like(weights)).unsqueeze(-1) ** power
    return w * mask.unsqueeze(-1)


def _autocast_on(x: Tensor) -> bool:
    return torch.is_autocast_enabled(x.device.type)


Impl = Literal["auto", "fast", "reference"]
IMPLS: tuple[str, ...] = ("auto", "fast", "reference")


class _WeightedSoftAttention(nn.Module):
    """What the message and pooling layers share: per head, a gate MLP (``in_len`` -> 1), a
    message MLP (``in_len`` -> ``fea_len``) and a learnable power of the fractional weights;
    ``forward`` runs the fused-kernel path (``fast``) or the reference path."""

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

    def forward(self, x: Tensor, weights: Tensor, mask: Tensor, *, fast: bool = False) -> Tensor:
        """x (B, N, F), weights (B, N), mask (B, N) -> the subclass's output."""
        if fast:
            return self.forward_fast(x, weights, mask)
        return self.forward_reference(x, weights, mask)

    def forward_fast(self, x: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_reference(self, x: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError


class MessageLayer(_WeightedSoftAttention):
    """One weighted soft-attention message-passing layer with residual update (Eq. 2-4):
    x (B, N, F), weights (B, N), mask (B, N) -> (B, N, F)."""

    def __init__(self, fea_len: int, n_heads: int, gate: Sequence[int], msg: Sequence[int]) -> None:
        super().__init__(2 * fea_len, fea_len, n_heads, gate, msg)

    def forward_reference(self, x: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
        """Dense torch ops on (H, B, N, N, d) pair tensors: any MLP depth, any device."""
        B, N, Fl = x.shape
        flat = x.reshape(B * N, Fl)
        me, nbr = slice(0, Fl), slice(Fl, 2 * Fl)

        def pairs(mlp: MultiHeadMLP) -> Tensor:  # (H, B, i, j, d_1) = act(W_s x_i + W_n x_j + b)
            s = mlp.first_layer(flat, me, bias=False).view(-1, B, N, 1, mlp.dims[1])
            t = mlp.first_layer(flat, nbr).view(-1, B, 1, N, mlp.dims[1])
            return F.leaky_relu(s + t)

        wp = _weights_pow(weights, mask, self.power).unsqueeze(2)  # (H, B, 1, j)
        out = _attend(
            self.gate, self.msg, pairs(self.gate), pairs(self.msg), wp, mask[None, :, None, :]
        )
        return x + out.mean(dim=0)

    def forward_fast(
        self,
        x: Tensor,
        weights: Tensor,
        mask: Tensor,
        first: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Fused-kernel path (CPU, one hidden layer per MLP). ``first = (emb, inv)``: the input is
        ``x = [emb[inv] || w]`` (the first layer), so its first-layer rows are computed on the
        distinct rows of ``emb`` and never materialised per node."""
        B, N, Fl = x.shape
        H, Dg, Dm = self.power.shape[0], self.gate.dims[1], self.msg.dims[1]
        flat = x.reshape(B * N, Fl)
        # (H, D, 2F) -> (2HD, F): rows interleave [self, neighbour] halves, no copy
        wg = self.gate.weights[0].view(-1, Fl)
        wm = self.msg.weights[0].view(-1, Fl)
        factored = None
        if first is None:
            Sg, Sm = flat @ wg.t(), flat @ wm.t()
        else:
            emb, inv = first
            Fe = emb.shape[1]
            Sg, Sm = emb @ wg[:, :Fe].t(), emb @ wm[:, :Fe].t()
            factored = (wg[:, Fe], wm[:, Fe], inv.reshape(B, N), weights)
        P, asum = _pair_attention(
            Sg,
            Sm,
            self.gate.biases[0].reshape(-1),
            self.msg.biases[0].reshape(-1),
            self.gate.weights[1].reshape(H, Dg),
            self.gate.biases[1].reshape(H),
            _weights_pow_bnh(weights, mask, self.power),
            mask,
            factored,
        )
        # mean over heads of W3_h P_h + (sum_j a_ij) b3_h: one matmul over the concatenated heads
        w3 = self.msg.weights[1].permute(1, 0, 2).reshape(Fl, H * Dm)
        P, asum = P.view(B * N, H * Dm), asum.view(B * N, H)
        if _autocast_on(x):  # keep the residual stream in fp32
            out = flat + (P @ w3.t() + asum @ self.msg.biases[1]) / H
        else:
            out = torch.addmm(flat, P, w3.t(), alpha=1.0 / H)
            out = torch.addmm(out, asum, self.msg.biases[1], alpha=1.0 / H)
        return out.view(B, N, Fl)


class WeightedAttentionPooling(_WeightedSoftAttention):
    """``cry_heads`` weighted attention pooling heads over the nodes of each graph (Eq. 5):
    x (B, N, F), weights (B, N), mask (B, N) -> (B, F)."""

    def __init__(self, fea_len: int, n_heads: int, gate: Sequence[int], msg: Sequence[int]) -> None:
        super().__init__(fea_len, fea_len, n_heads, gate, msg)

    def forward_reference(self, x: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
        B, N, Fl = x.shape
        flat = x.reshape(B * N, Fl)
        hg = F.leaky_relu(self.gate.first_layer(flat)).view(-1, B, N, self.gate.dims[1])
        hm = F.leaky_relu(self.msg.first_layer(flat)).view(-1, B, N, self.msg.dims[1])
        wp = _weights_pow(weights, mask, self.power)  # (H, B, N)
        return _attend(self.gate, self.msg, hg, hm, wp, mask[None]).mean(dim=0)

    def forward_fast(self, x: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
        """Node-major layout, all heads of each MLP in one matmul, the per-head 256 -> 1 gate layer
        as one block-diagonal matmul (no batched matrix-vector products)."""
        B, N, Fl = x.shape
        H, Dg, Dm = self.power.shape[0], self.gate.dims[1], self.msg.dims[1]
        flat = x.reshape(B * N, Fl)
        hg = F.leaky_relu(
            torch.addmm(
                self.gate.biases[0].reshape(-1), flat, self.gate.weights[0].view(-1, Fl).t()
            )
        )
        hm = F.leaky_relu(
            torch.addmm(self.msg.biases[0].reshape(-1), flat, self.msg.weights[0].view(-1, Fl).t())
        )
        w2 = torch.block_diag(*self.gate.weights[1].reshape(H, Dg, 1).unbind(0))  # (H·Dg, H)
        gate = torch.addmm(self.gate.biases[1].reshape(H), hg, w2).view(B, N, H)
        wp = _weights_pow_bnh(weights, mask, self.power)
        gate = gate.float().masked_fill(~mask.unsqueeze(-1), float("-inf"))
        num = wp * (gate - gate.amax(dim=1, keepdim=True)).exp()
        attn = num / (num.sum(dim=1, keepdim=True) + _EPS)  # (B, N, H)
        pooled = (attn.unsqueeze(-1) * hm.view(B, N, H, Dm)).sum(dim=1)  # (B, H, Dm)
        w3 = self.msg.weights[1].permute(1, 0, 2).reshape(Fl, H * Dm)
        out = pooled.reshape(B, H * Dm) @ w3.t() + attn.sum(dim=1) @ self.msg.biases[1]
        return out / H


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
        ok = ok and roost_kernels() is not None
        if self._impl == "fast" and not ok:
            why = _kernel_state.get("error", "needs CPU tensors and one hidden layer per MLP")
            raise RuntimeError(f"impl='fast' is unavailable: {why}")
        return ok

    def node_features(
        self, batch: CompositionBatch, input_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Node features after message passing: (B, N, F), plus weights and mask (B, N).

        ``input_mask`` (B, N) bool zeroes the input element vector of the marked nodes (their
        fractional weights are kept) — the masking augmentation of the SSL objective.
        """
        if not self.uses_fast_path(batch.z.device):
            fea = self.element_table[batch.z]  # (B, N, D)
            if input_mask is not None:
                fea = fea.masked_fill(input_mask.unsqueeze(-1), 0.0)
            x = torch.cat([self.embedding(fea), batch.weights.unsqueeze(-1)], dim=-1)
            for layer in cast("Iterable[MessageLayer]", self.graphs):
                x = layer.forward_reference(x, batch.weights, batch.mask)
            return x, batch.weights, batch.mask
        x, first = self._embed_unique(batch, input_mask)
        for k, layer in enumerate(cast("Iterable[MessageLayer]", self.graphs)):
            x = layer.forward_fast(x, batch.weights, batch.mask, first if k == 0 else None)
        return x, batch.weights, batch.mask

    def _embed_unique(
        self, batch: CompositionBatch, input_mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Input node features x (B, N, F) = [E f_z || w], and ``(emb, inv)`` with the embedded
        distinct elements emb (U, F-1) and each node's row inv (B, N): the first layer then works on
        U distinct elements instead of B·N nodes (W x_i = W_E emb_z + w_i W_w)."""
        z, w = batch.z, batch.weights
        key = z if input_mask is None else z.masked_fill(input_mask, -1)
        uz, inv = torch.unique(key, return_inverse=True)
        fea = self.element_table[uz.clamp_min(0)]
        if input_mask is not None:
            fea = fea.masked_fill((uz < 0).unsqueeze(-1), 0.0)
        emb = self.embedding(fea)  # (U, F-1)
        x = torch.cat([emb.float()[inv], w.unsqueeze(-1).float()], dim=-1)
        return x, (emb, inv)

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


TaskType = Literal["regression", "classification"]
TASK_TYPES: tuple[str, ...] = ("regression", "classification")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A Roost property model: encoder, residual trunk and output head.

    ``robust`` (regression only) doubles the outputs: a mean and a log standard deviation per target
    (Roost's heteroscedastic "robust" L1 loss, Kendall & Gal 2017). Classification is binary, one logit.
    """

    encoder: RoostConfig = field(default_factory=RoostConfig)
    task_type: TaskType = "regression"
    n_targets: int = 1
    robust: bool = True
    trunk_hidden: tuple[int, ...] = (1024, 512)
    out_hidden: tuple[int, ...] = (256, 128, 64)

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(
                f"unknown task_type {self.task_type!r}; valid: {', '.join(TASK_TYPES)}"
            )
        if self.task_type == "classification" and self.robust:
            object.__setattr__(self, "robust", False)
        object.__setattr__(self, "trunk_hidden", tuple(self.trunk_hidden))
        object.__setattr__(self, "out_hidden", tuple(self.out_hidden))
        if not self.out_hidden:
            raise ValueError("out_hidden needs at least one width (the trunk's output)")

    def to_dict(self) -> dict:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        enc = RoostConfig.from_dict(d.pop("encoder"))
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(encoder=enc, **kwargs)


class RoostModel(nn.Module):
    """Roost encoder -> ReLU(residual trunk) -> residual output network.

    ``forward`` returns (B, n_out): ``n_targets`` values, followed by ``n_targets`` log-stds when
    ``robust``; logits for classification. ``impl``: see :class:`RoostEncoder`.
    """

    def __init__(self, config: ModelConfig | None = None, *, impl: Impl = "auto") -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.encoder = RoostEncoder(config.encoder, impl=impl)
        self.trunk = ResidualNetwork(
            self.encoder.out_dim, config.out_hidden[0], config.trunk_hidden
        )
        n_out = config.n_targets * (2 if config.robust else 1)
        self.head = ResidualNetwork(config.out_hidden[0], n_out, config.out_hidden[1:])

    def forward(self, batch: CompositionBatch) -> Tensor:
        return self.head(F.relu(self.trunk(self.encoder(batch))))

    def embed(self, batch: CompositionBatch) -> Tensor:
        """(B, elem_fea_len) material vectors."""
        return self.encoder(batch)


def _stack_heads(
    sd: dict[str, Tensor], prefix: str, n_heads: int, net: str, mlp: MultiHeadMLP
) -> dict:
    """Stack the per-head ``SimpleNetwork`` tensors of a reference checkpoint into our layout."""
    out = {}
    n_layers = len(mlp.weights)
    for k in range(n_layers):
        name = f"fcs.{k}" if k < n_layers - 1 else "fc_out"
        for kind, dest in (("weight", "weights"), ("bias", "biases")):
            out[f"{dest}.{k}"] = torch.stack(
                [sd[f"{prefix}.{h}.{net}.{name}.{kind}"] for h in range(n_heads)]
            )
    return out


def from_aviary_state_dict(model: RoostModel, sd: dict[str, Tensor]) -> None:
    """Load the weights of an ``aviary`` ``Roost`` (aviary-models >= 1.1, one regression target)
    into ``model``, which must have the same hyperparameters. Used by the reference test and to
    import checkpoints trained with aviary."""
    ours: dict[str, Tensor] = {}
    enc = model.encoder
    ours["encoder.element_table"] = enc.element_table.clone()
    ref_table = sd["elem_embedding.weight"]
    ours["encoder.element_table"][: ref_table.shape[0]] = ref_table
    for kind in ("weight", "bias"):
        ours[f"encoder.embedding.{kind}"] = sd[f"material_nn.embedding.{kind}"]
    for i, layer in enumerate(cast("Iterable[MessageLayer]", enc.graphs)):
        pre = f"material_nn.graphs.{i}.pooling"
        heads = layer.power.shape[0]
        for net, mlp, ours_net in (
            ("gate_nn", layer.gate, "gate"),
            ("message_nn", layer.msg, "msg"),
        ):
            for k, v in _stack_heads(sd, pre, heads, net, mlp).items():
                ours[f"encoder.graphs.{i}.{ours_net}.{k}"] = v
        ours[f"encoder.graphs.{i}.power"] = torch.cat([sd[f"{pre}.{h}.pow"] for h in range(heads)])
    heads = enc.pool.power.shape[0]
    pre = "material_nn.cry_pool"
    for net, mlp, ours_net in (
        ("gate_nn", enc.pool.gate, "gate"),
        ("message_nn", enc.pool.msg, "msg"),
    ):
        for k, v in _stack_heads(sd, pre, heads, net, mlp).items():
            ours[f"encoder.pool.{ours_net}.{k}"] = v
    ours["encoder.pool.power"] = torch.cat([sd[f"{pre}.{h}.pow"] for h in range(heads)])
    for key, value in sd.items():
        if key.startswith("trunk_nn."):
            ours["trunk." + key.removeprefix("trunk_nn.")] = value
        elif key.startswith("output_nns.0."):
            ours["head." + key.removeprefix("output_nns.0.")] = value
    model.load_state_dict(ours, strict=True)
