"""Data parallelism with ``torch.distributed``: one code path for 1 CPU, N GPUs and several nodes.

Launch the ordinary command under ``torchrun`` (or anything that sets the same environment:
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); without those variables
nothing here does anything and training is the plain single-process loop.

The design (see ``docs/scale.md``):

* every rank builds the same dataset and draws the same seeded shuffle, so all ranks agree on the
  *global* batches (``--batch-size`` is the global batch: the optimisation does not depend on the
  number of processes); rank ``r`` runs forward/backward on the ``r``-th contiguous shard
  (:func:`shard`);
* each rank back-propagates its loss times ``n_r / N`` (its share of the global batch) and the
  gradients are summed over ranks (:func:`all_reduce_gradients`, one flat ``all_reduce``). For a
  loss that is a mean over rows this is exactly the gradient of the global batch's mean;
* losses that need the whole batch (Barlow Twins' cross-correlation) gather rows from every rank
  with gradient (:func:`gather_for_loss`, active only inside :func:`sharded_step`), so their value and
  gradient equal the single-process global batch's;
* only rank 0 writes checkpoints and artefacts, evaluates the validation set and broadcasts the
  score, so that every rank takes the same model-selection and early-stopping decisions.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "DistContext",
    "all_reduce_gradients",
    "broadcast_module",
    "broadcast_score",
    "context",
    "gather_for_loss",
    "gather_rows",
    "init_from_env",
    "shard",
    "sharded_step",
    "shutdown",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def _device_for(backend: str, local_rank: int) -> torch.device:
    if backend == "nccl":
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_from_env(
    backend: str | None = None, *, timeout_s: float = 1800.0, device: str | None = None
) -> DistContext:
    """Join the process group described by torchrun's environment, if there is one.

    ``WORLD_SIZE`` unset or 1: nothing happens and the single-process context is returned. Else the
    default process group is initialised from ``MASTER_ADDR``/``MASTER_PORT`` (``env://``) with
    ``backend`` (default: ``nccl`` when CUDA is available, ``gloo`` otherwise), and on CUDA this
    process uses GPU ``LOCAL_RANK``.

    Args:
        backend: ``"gloo"`` (CPU), ``"nccl"`` (GPUs) or None (choose).
        timeout_s: how long a collective may wait for the other ranks.
        device: ``"cpu"`` forces CPU tensors (and gloo) even where CUDA exists.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return context(device=device)
    if dist.is_initialized():
        return context(device=device)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun "
            "(see docs/scale.md)"
        )
    use_cuda = torch.cuda.is_available() and device != "cpu"
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend, init_method="env://", rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )  # fmt: skip
    ctx = context(device=device)
    log.info(
        "rank %d/%d (local %d) joined the %s process group on %s",
        ctx.rank, ctx.world_size, ctx.local_rank, backend, ctx.device,
    )  # fmt: skip
    return ctx


def context(device: str | torch.device | None = None) -> DistContext:
    """The current context: from the initialised process group, else a single CPU process.

    ``device`` overrides the device (default: ``cuda:LOCAL_RANK`` under nccl, else CPU).
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = _env_int("LOCAL_RANK", 0)
        dev = torch.device(device) if device else _device_for(dist.get_backend(), local_rank)
        return DistContext(rank, world, local_rank, dev)
    return DistContext(device=torch.device(device) if device else torch.device("cpu"))


def shutdown() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(index: np.ndarray, ctx: DistContext) -> tuple[np.ndarray, list[int]]:
    """This rank's contiguous share of a global batch, and every rank's share size.

    Shares differ by at most one row (``np.array_split``); with bucketed batches a contiguous share
    keeps compositions of similar size together (less padding).
    """
    parts = np.array_split(np.asarray(index), ctx.world_size)
    return parts[ctx.rank], [len(p) for p in parts]


# ------------------------------------------------------------------------- gathering for losses

_STEP_SIZES: list[int] | None = None


@contextlib.contextmanager
def sharded_step(sizes: Sequence[int]) -> Iterator[None]:
    """Mark a training forward pass over shards of one global batch (``sizes[r]`` rows on rank
    ``r``): inside it, :func:`gather_for_loss` gathers rows from all ranks."""
    global _STEP_SIZES
    previous, _STEP_SIZES = _STEP_SIZES, [int(s) for s in sizes]
    try:
        yield
    finally:
        _STEP_SIZES = previous


class _GatherRows(torch.autograd.Function):
    """All-gather of (n_r, ...) row blocks of unequal ``sizes`` into (sum n_r, ...), with gradient:
    the backward sums every rank's gradient of the gathered tensor and returns this rank's rows."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: tuple[int, ...]) -> Tensor:
        rank, width = dist.get_rank(), max(sizes)
        ctx.sizes, ctx.rank, ctx.width = sizes, rank, width
        padded = x.new_zeros((width, *x.shape[1:]))
        padded[: x.shape[0]] = x
        blocks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(blocks, padded.contiguous())
        return torch.cat([b[:n] for b, n in zip(blocks, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        sizes, width = ctx.sizes, ctx.width
        padded = grad.new_zeros((len(sizes), width, *grad.shape[1:]))
        start = 0
        for r, n in enumerate(sizes):
            padded[r, :n] = grad[start : start + n]
            start += n
        dist.all_reduce(padded, op=dist.ReduceOp.SUM)
        return padded[ctx.rank, : sizes[ctx.rank]].contiguous(), None


def gather_rows(x: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
    """Concatenate every rank's rows of ``x`` (rank order), differentiably.

    ``sizes``: rows per rank (default: exchanged with a small all_gather).
    """
    if sizes is None:
        n = torch.tensor([x.shape[0]], device=x.device)
        got = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
        dist.all_gather(got, n)
        sizes = [int(t) for t in got]
    if x.shape[0] != sizes[dist.get_rank()]:
        raise ValueError(f"this rank has {x.shape[0]} rows, expected {sizes[dist.get_rank()]}")
    return _GatherRows.apply(x, tuple(int(s) for s in sizes))


def gather_for_loss(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Inside :func:`sharded_step`: each (n_r, ...) tensor gathered from all ranks (one collective
    for all of them); elsewhere the tensors unchanged. For losses over the whole batch."""
    sizes = _STEP_SIZES
    if sizes is None or len(sizes) <= 1 or not dist.is_initialized():
        return tensors
    flat = [t.reshape(t.shape[0], -1) for t in tensors]
    widths = [f.shape[1] for f in flat]
    gathered = gather_rows(torch.cat(flat, dim=1), sizes)
    out, start = [], 0
    for t, w in zip(tensors, widths, strict=True):
        out.append(gathered[:, start : start + w].reshape(-1, *t.shape[1:]))
        start += w
    return tuple(out)


# ----------------------------------------------------------------------------- gradient exchange


def all_reduce_gradients(params: Sequence[torch.nn.Parameter], extra: Tensor) -> Tensor:
    """Sum the gradients of ``params`` over ranks, in one flat all_reduce, and ``extra`` with them.

    A parameter without a gradient on every rank keeps ``grad=None`` (as in a single process, so
    the optimiser skips it); one with a gradient on some rank gets the sum (zeros elsewhere).
    Returns the summed ``extra`` (e.g. the weighted loss, so every rank sees the global loss).
    """
    has = [p.grad is not None for p in params]
    device = extra.device
    pieces = [
        p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=device)
        for p in params
    ]
    flags = torch.tensor(has, dtype=extra.dtype, device=device)
    flat = torch.cat([*(x.to(extra.dtype) for x in pieces), flags, extra.reshape(-1)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    start = 0
    for p in params:
        n = p.numel()
        chunk = flat[start : start + n].view_as(p).to(p.dtype)
        start += n
        p.grad = chunk.clone() if p.grad is None else p.grad.copy_(chunk)
    counts = flat[start : start + len(params)]
    start += len(params)
    for p, c in zip(params, counts.tolist(), strict=True):
        if c == 0:
            p.grad = None
    return flat[start:].reshape(extra.shape)


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (identical starting points)."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def broadcast_score(value: float | None, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank."""
    t = torch.tensor([0.0 if value is None else value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())
