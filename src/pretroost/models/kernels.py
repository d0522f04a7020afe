"""The fast CPU path of the Roost encoder (``impl="fast"``): fused C++ pair-attention kernels and
node-major torch layouts, equal to the reference path of :mod:`pretroost.models.roost` to float
rounding (``tests/test_speed_equivalence.py``).

Message layer: the first layer of ``g_t`` and ``f_t`` on ``h_i || h_j`` is split as
``W_s h_i + W_n h_j`` (node-sized matmuls), and the last, linear layer of ``f_t`` is applied *after*
the attention sum (it commutes with the weighted sum). The per-pair work in between (add,
LeakyReLU, gate output layer, weighted softmax, weighted sum of message hidden layers, and the
backward of all of it) runs in ``csrc/roost_kernels.cpp``, one composition at a time in cache, so
no ``(B, N, N, ·)`` tensor is materialised. The first message layer's first layer is computed on
the batch's distinct elements only. Pooling: all heads of each MLP in one matmul. Works under
``torch.autocast("cpu", dtype=torch.bfloat16)`` too.

Build: compiled with :func:`torch.utils.cpp_extension.load` on first use (about a minute) into
``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``)``/py3X_cpu/pretroost_roost_<key>``,
the key a hash of the C++ source bytes, the compile flags, the torch version and the CPU (model and
ISA flags, as ``-march=native`` code is CPU-specific) — nothing from the environment (PATH, cwd,
interpreter path), so the CLI, the tests and ``make`` share one build. A finished build is marked
and then imported directly, without asking ninja; an INFO message says whenever a build runs.
``PRETROOST_ROOST_KERNELS=0`` disables the kernels; ``PRETROOST_KERNEL_MARCH`` (default ``native``)
overrides ``-march`` (e.g. ``x86-64-v3`` to test a build without AVX-512).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from pretroost.data.batching import CompositionBatch

if TYPE_CHECKING:
    from pretroost.models.roost import MessageLayer, RoostEncoder, WeightedAttentionPooling

__all__ = [
    "attention_pooling",
    "kernel_build_dir",
    "kernel_flags",
    "kernel_key",
    "kernels_unavailable_reason",
    "message_layer",
    "node_features",
    "roost_kernels",
]

log = logging.getLogger(__name__)

EPS = 1e-10  # softmax denominator guard: roost.EPS, and kEps in the C++

SOURCE = Path(__file__).with_name("csrc") / "roost_kernels.cpp"
_BUILT_MARK = "pretroost-build-complete"
_kernel_lock = threading.Lock()
_kernel_state: dict[str, object] = {}


# ----------------------------------------------------------------------------------------------
# build


def kernel_flags() -> list[str]:
    """Compiler flags: ``-O3 -march=<PRETROOST_KERNEL_MARCH or native> -fopenmp``."""
    march = os.environ.get("PRETROOST_KERNEL_MARCH", "").strip() or "native"
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", march):
        raise ValueError(f"PRETROOST_KERNEL_MARCH={march!r} is not a -march value")
    return ["-O3", f"-march={march}", "-fopenmp"]


def _cpu_signature() -> str:
    """Model and ISA flags of this CPU: ``-march=native`` builds are cached per machine type."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    keep = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(" ".join(ln.split()) for ln in keep)


def kernel_key() -> str:
    """Hash of what the compiled kernels depend on: source bytes, flags, torch version, CPU."""
    h = hashlib.sha256(SOURCE.read_bytes())
    for part in (*kernel_flags(), torch.__version__, _cpu_signature()):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def kernel_build_dir(key: str | None = None) -> Path:
    """The build directory of ``key`` (default: this machine's): one directory per key."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        base = Path(root)
    else:
        base = (
            Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "torch_extensions"
        )
    abi = f"py{sys.version_info.major}{sys.version_info.minor}_cpu"  # a CPython extension module
    return base / abi / f"pretroost_roost_{key or kernel_key()}"


def _import_built(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_or_build() -> ModuleType:
    key = kernel_key()
    build_dir = kernel_build_dir(key)
    name = f"pretroost_roost_{key}"
    so = build_dir / f"{name}.so"
    if so.is_file() and (build_dir / _BUILT_MARK).is_file():
        try:
            return _import_built(name, so)
        except ImportError as exc:  # e.g. a truncated file: rebuild it
            log.warning("cached Roost CPU kernels in %s do not load (%s); rebuilding", so, exc)
    from torch.utils.cpp_extension import load

    log.info(
        "compiling the Roost CPU kernels in %s (once per machine and source version, about a "
        "minute)",
        build_dir,
    )
    t0 = time.perf_counter()
    build_dir.mkdir(parents=True, exist_ok=True)
    module = load(
        name,
        sources=[str(SOURCE)],
        extra_cflags=kernel_flags(),
        extra_ldflags=["-fopenmp"],
        build_directory=str(build_dir),
        verbose=False,
    )
    (build_dir / _BUILT_MARK).write_text(key + "\n")
    log.info("Roost CPU kernels built in %.0f s", time.perf_counter() - t0)
    return module


def roost_kernels() -> ModuleType | None:
    """The compiled pair-attention kernels, built on first use; ``None`` where they cannot be
    built (no C++ compiler) or are disabled with ``PRETROOST_ROOST_KERNELS=0``."""
    if "module" in _kernel_state:
        return _kernel_state["module"]  # type: ignore[return-value]
    with _kernel_lock:
        if "module" in _kernel_state:
            return _kernel_state["module"]  # type: ignore[return-value]
        module = None
        if os.environ.get("PRETROOST_ROOST_KERNELS", "1").strip().lower() in {"0", "false", "no"}:
            _kernel_state["error"] = "disabled by PRETROOST_ROOST_KERNELS"
        else:
            try:
                module = _load_or_build()
            except Exception as exc:  # no compiler, no headers, build error: use the reference path
                _kernel_state["error"] = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "Roost CPU kernels unavailable (%s); using the slower reference path",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
        _kernel_state["module"] = module
        return module


def kernels_unavailable_reason() -> str | None:
    """Why :func:`roost_kernels` returned ``None`` (``None`` if it did not, or was not called)."""
    err = _kernel_state.get("error")
    return None if err is None else str(err)


# ----------------------------------------------------------------------------------------------
# autograd wrapper of the kernels


def _ops() -> Any:
    module = roost_kernels()
    if module is None:
        raise RuntimeError(f"the Roost CPU kernels are unavailable: {kernels_unavailable_reason()}")
    return module


class _PairAttention(torch.autograd.Function):
    """First layers (direct or factored) and attention parameters -> (P, sum_j a_ij); see
    :func:`pair_attention` and ``csrc/roost_kernels.cpp``."""

    @staticmethod
    def forward(ctx, Sg, Sm, cg, cm, inv, w, bg, bm, w2, b2, wp, mask):
        args = (Sg, Sm, cg, cm, inv, w, bg, bm, w2, b2, wp, mask)
        P, asum, A, Q = _ops().pair_attention_forward(*args, True)
        ctx.save_for_backward(Sg, Sm, cg, cm, inv, w, bg, bm, w2, wp, mask, A, Q)
        return P, asum

    @staticmethod
    @once_differentiable
    def backward(ctx, dP, dasum):
        Sg, Sm, cg, cm, inv, w, bg, bm, w2, wp, mask, A, Q = ctx.saved_tensors
        B, N, _, H = A.shape
        dP = Sg.new_zeros((B, N, H, bm.numel() // H)) if dP is None else dP.to(Sg.dtype)
        dasum = wp.new_zeros(wp.shape) if dasum is None else dasum.float()
        dG, dM, dcg, dcm, dbg, dbm, dw2, db2, dwp = _ops().pair_attention_backward(
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


def pair_attention(
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
    P, asum, _, _ = _ops().pair_attention_forward(*args, False)
    return P, asum


# ----------------------------------------------------------------------------------------------
# the fast forwards of the encoder's layers


def _weights_pow_bnh(weights: Tensor, mask: Tensor, power: Tensor) -> Tensor:
    """(B, N) weights, (H,) powers -> (B, N, H) ``w^p``, zero at padding."""
    w = torch.where(mask, weights, torch.ones_like(weights)).unsqueeze(-1) ** power
    return w * mask.unsqueeze(-1)


def node_features(
    encoder: RoostEncoder, batch: CompositionBatch, input_mask: Tensor | None
) -> Tensor:
    """:meth:`RoostEncoder.node_features` on the fast path: (B, N) batch -> (B, N, F).

    The input node features are ``x = [E f_z || w]``; the first message layer's first layer works
    on the U distinct (masked) elements of the batch instead of all B·N nodes
    (``W x_i = W_E emb_z + w_i W_w``). With an amount encoding (``x = [E f_z + A phi(w) || w]``)
    the rows differ per node and are computed per node.
    """
    z, w = batch.z, batch.weights
    key = z if input_mask is None else z.masked_fill(input_mask, -1)
    uz, inv = torch.unique(key, return_inverse=True)
    fea = encoder.element_table[uz.clamp_min(0)]
    if input_mask is not None:
        fea = fea.masked_fill((uz < 0).unsqueeze(-1), 0.0)
    emb = encoder.embedding(fea)  # (U, F-1)
    first: tuple[Tensor, Tensor] | None = (emb, inv)
    node_emb = emb.float()[inv]
    amount = encoder.amount_term(w)
    if amount is not None:  # h^0 depends on the amount too: no factoring
        node_emb, first = node_emb + amount.float(), None
    x = torch.cat([node_emb, w.unsqueeze(-1).float()], dim=-1)
    for k, layer in enumerate(encoder.graphs):
        x = message_layer(layer, x, w, batch.mask, first if k == 0 else None)  # type: ignore[arg-type]
    return x


def message_layer(
    layer: MessageLayer,
    x: Tensor,
    weights: Tensor,
    mask: Tensor,
    first: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """:class:`MessageLayer` on the fused kernels (one hidden layer per MLP): x (B, N, F),
    weights (B, N), mask (B, N) -> (B, N, F). ``first = (emb, inv)``: the input is
    ``x = [emb[inv] || w]``, so its first-layer rows are computed on the distinct rows of ``emb``
    and never materialised per node."""
    B, N, Fl = x.shape
    H, Dg, Dm = layer.power.shape[0], layer.gate.dims[1], layer.msg.dims[1]
    flat = x.reshape(B * N, Fl)
    # (H, D, 2F) -> (2HD, F): rows interleave [self, neighbour] halves, no copy
    wg = layer.gate.weights[0].view(-1, Fl)
    wm = layer.msg.weights[0].view(-1, Fl)
    factored = None
    if first is None:
        Sg, Sm = flat @ wg.t(), flat @ wm.t()
    else:
        emb, inv = first
        Fe = emb.shape[1]
        Sg, Sm = emb @ wg[:, :Fe].t(), emb @ wm[:, :Fe].t()
        factored = (wg[:, Fe], wm[:, Fe], inv.reshape(B, N), weights)
    P, asum = pair_attention(
        Sg,
        Sm,
        layer.gate.biases[0].reshape(-1),
        layer.msg.biases[0].reshape(-1),
        layer.gate.weights[1].reshape(H, Dg),
        layer.gate.biases[1].reshape(H),
        _weights_pow_bnh(weights, mask, layer.power),
        mask,
        factored,
    )
    # mean over heads of W3_h P_h + (sum_j a_ij) b3_h: one matmul over the concatenated heads
    w3 = layer.msg.weights[1].permute(1, 0, 2).reshape(Fl, H * Dm)
    P, asum = P.view(B * N, H * Dm), asum.view(B * N, H)
    if torch.is_autocast_enabled(x.device.type):  # keep the residual stream in fp32
        out = flat + (P @ w3.t() + asum @ layer.msg.biases[1]) / H
    else:
        out = torch.addmm(flat, P, w3.t(), alpha=1.0 / H)
        out = torch.addmm(out, asum, layer.msg.biases[1], alpha=1.0 / H)
    return out.view(B, N, Fl)


def attention_pooling(
    layer: WeightedAttentionPooling, x: Tensor, weights: Tensor, mask: Tensor
) -> Tensor:
    """:class:`WeightedAttentionPooling` in a node-major layout: x (B, N, F), weights (B, N),
    mask (B, N) -> (B, F). All heads of each MLP in one matmul, the per-head Dg -> 1 gate layer as
    one block-diagonal matmul (no batched matrix-vector products)."""
    B, N, Fl = x.shape
    H, Dg, Dm = layer.power.shape[0], layer.gate.dims[1], layer.msg.dims[1]
    flat = x.reshape(B * N, Fl)
    gate_w, msg_w = layer.gate.weights[0].view(-1, Fl), layer.msg.weights[0].view(-1, Fl)
    hg = F.leaky_relu(torch.addmm(layer.gate.biases[0].reshape(-1), flat, gate_w.t()))
    hm = F.leaky_relu(torch.addmm(layer.msg.biases[0].reshape(-1), flat, msg_w.t()))
    w2 = torch.block_diag(*layer.gate.weights[1].reshape(H, Dg, 1).unbind(0))  # (H·Dg, H)
    gate = torch.addmm(layer.gate.biases[1].reshape(H), hg, w2).view(B, N, H)
    wp = _weights_pow_bnh(weights, mask, layer.power)
    gate = gate.float().masked_fill(~mask.unsqueeze(-1), float("-inf"))
    num = wp * (gate - gate.amax(dim=1, keepdim=True)).exp()
    attn = num / (num.sum(dim=1, keepdim=True) + EPS)  # (B, N, H)
    pooled = (attn.unsqueeze(-1) * hm.view(B, N, H, Dm)).sum(dim=1)  # (B, H, Dm)
    w3 = layer.msg.weights[1].permute(1, 0, 2).reshape(Fl, H * Dm)
    out = pooled.reshape(B, H * Dm) @ w3.t() + attn.sum(dim=1) @ layer.msg.biases[1]
    return out / H
