"""The one training loop, for pretraining objectives and supervised finetuning alike.

Anything with ``forward(batch) -> {"loss": scalar, ...}`` trains here: AdamW, an optional warm-up
plus cosine schedule, optional different learning rate for the encoder, model selection on a
validation set, per-epoch resumable checkpoints (atomic, loaded with ``weights_only=True``), and
deterministic per-epoch seeds so that an interrupted run resumes to the same weights. Its
settings, :class:`~pretroost.configs.TrainConfig`, live in :mod:`pretroost.configs`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pretroost import distributed
from pretroost.configs import PRECISIONS, SCHEDULES, Precision, Schedule, TrainConfig
from pretroost.data.batching import CompositionDataset
from pretroost.utils import atomic_path, native_bf16, tune_malloc

__all__ = [
    "PRECISIONS",
    "SCHEDULES",
    "Precision",
    "Schedule",
    "TrainConfig",
    "TrainResult",
    "evaluate_loss",
    "load_checkpoint",
    "train",
]

log = logging.getLogger(__name__)


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` when ``config.precision == "bf16"``, else a no-op."""
    if config.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def warn_if_bf16_emulated(device: torch.device, what: str = "bf16") -> bool:
    """Log a WARNING when bf16 would run emulated on ``device`` (a CPU without native BF16,
    :func:`pretroost.utils.native_bf16`); returns whether bf16 is native. bf16 is then still used
    (it is what was asked for), just slowly."""
    native, reason = native_bf16(device)
    if not native:
        log.warning(
            "%s: --precision bf16 requested, but %s: bfloat16 is emulated and will run many times "
            "slower than fp32; use --precision fp32 on this machine",
            what, reason,
        )  # fmt: skip
    return native


def make_optimiser(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, with the fused kernel where torch offers it for these parameters (several times
    faster per step on CPU than the default multi-tensor path)."""
    try:
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.inf
    seconds: float = 0.0
    epochs_run: int = 0


def _param_groups(module: nn.Module, config: TrainConfig) -> list[dict]:
    enc: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (enc if ".encoder." in f".{name}" else rest).append(p)
    groups = [{"params": rest, "lr_scale": 1.0, "encoder": False}]
    if config.encoder_lr_scale > 0:
        groups.append({"params": enc, "lr_scale": config.encoder_lr_scale, "encoder": True})
    else:
        for p in enc:
            p.requires_grad_(False)
    return [g for g in groups if g["params"]]


def _lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    total = max(1, config.epochs * steps_per_epoch)
    warm = config.warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if config.schedule == "constant":
        return 1.0
    progress = (step - warm) / max(1, total - warm)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate_loss(module: nn.Module, data: CompositionDataset, batch_size: int = 512) -> float:
    """Mean of ``module(batch)["loss"]`` over ``data`` (weighted by batch size), in eval mode."""
    was_training = module.training
    module.eval()
    total, n = 0.0, 0
    for batch in data.batches(batch_size):
        total += float(module(batch)["loss"]) * len(batch)
        n += len(batch)
    module.train(was_training)
    return total / max(1, n)


def _epoch_line(description: str, epoch: int, epochs: int, row: dict, n_rows: int) -> str:
    """``"<description> epoch 3/10: train loss 0.41, val 0.39, 2.1 s, 1520 compositions/s"``."""
    seconds = row["epoch_seconds"]
    val = f", val {row['val_score']:.4g}" if "val_score" in row else ""
    rate = n_rows / seconds if seconds > 0 else float("inf")
    return (
        f"{description} epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.4g}{val}, "
        f"{seconds:.1f} s, {rate:.0f} compositions/s"
    )


def _progress_enabled(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


CHECKPOINT_VERSION = 2


def _data_fingerprint(data: CompositionDataset) -> str:
    """A short hash of the training compositions and the names/shapes of their targets, so that a
    checkpoint is never resumed on different data."""
    h = hashlib.sha256()
    comps = data.comps
    for arr in (comps.z, comps.frac, comps.offsets):
        h.update(np.ascontiguousarray(arr).tobytes())
    for name in sorted(data.targets):
        h.update(f"{name}:{tuple(data.targets[name].shape)}".encode())
    return h.hexdigest()[:16]


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint with ``torch.load(weights_only=True)``: tensors and plain
    containers only, so a crafted file cannot run code; such a file (or a damaged one) raises
    :class:`ValueError` naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((x.strip() for x in str(exc).splitlines() if "Unpickler error" in x), "")
        detail = detail.split(". Please")[0]  # not torch's advice to allow-list the global
        raise ValueError(
            f"{path}: refused to load: not a weights-only checkpoint (unpickling it would run "
            f"arbitrary code) {detail}".rstrip()
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(
            f"{path}: unreadable or truncated checkpoint ({exc}); delete it to start afresh"
        ) from None
    if not isinstance(state, dict) or not {"module", "optimiser", "result", "epoch"} <= set(state):
        raise ValueError(f"{path}: not a pretroost training checkpoint")
    return state


def _check_resumable(state: dict, path: str | Path, config: TrainConfig, fingerprint: str) -> None:
    """Refuse to resume a checkpoint written by a different run (settings or data)."""
    old = state.get("config")
    if old is not None and old != config.to_dict():
        diff = sorted(
            k for k in set(old) | set(config.to_dict()) if old.get(k) != config.to_dict().get(k)
        )
        raise ValueError(
            f"{path}: the checkpoint was written with different training settings "
            f"({', '.join(f'{k}: {old.get(k)!r} -> {config.to_dict().get(k)!r}' for k in diff)}); "
            "rerun with the original settings, or start afresh (delete it / no resume)"
        )
    if state.get("data") not in (None, fingerprint):
        raise ValueError(
            f"{path}: the checkpoint was written for different training data; "
            "start afresh (delete it / no resume)"
        )


def _copy_state(module: nn.Module, into: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """A copy of ``module.state_dict()`` (the best weights so far), written into the tensors of
    ``into`` when given: no new memory at every improvement."""
    state = module.state_dict()
    if into is None:  # the first: the state dict itself (its metadata too), tensors cloned
        for name, tensor in list(state.items()):
            state[name] = tensor.detach().clone()
        return state
    for name, tensor in state.items():
        into[name].copy_(tensor)
    return into


class _OnDevice:
    """A dataset view whose batches live on ``device`` (for validation on a GPU)."""

    def __init__(self, data: CompositionDataset, device: torch.device) -> None:
        self.data, self.device = data, device

    def __len__(self) -> int:
        return len(self.data)

    def __getattr__(self, name: str):
        return getattr(self.data, name)

    def batch(self, index):
        return self.data.batch(index).to(self.device)

    def batches(self, batch_size: int, **kwargs):
        for idx in self.data.batch_indices(batch_size, **kwargs):
            yield self.batch(idx)


def train(
    module: nn.Module,
    train_data: CompositionDataset,
    config: TrainConfig,
    *,
    val_data: CompositionDataset | None = None,
    val_score: Callable[[nn.Module, CompositionDataset], float] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    description: str = "train",
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``module`` in place; at the end it holds the best weights on ``val_data`` (if given).

    Args:
        module: an objective or supervised task: ``module(batch)["loss"]`` is minimised.
        train_data: training compositions (with the targets the module reads).
        config: optimisation settings.
        val_data: validation set for model selection / early stopping (from the training fold only).
        val_score: lower-is-better score of ``(module, val_data)``; default: the mean loss.
        checkpoint: a file written (atomically) after every epoch: model, optimiser, history, best
            weights, the settings and a fingerprint of the data.
        resume: continue from ``checkpoint`` if it exists. Each epoch reseeds shuffling and
            augmentation from ``(seed, epoch)``, so a resumed run ends with the same weights as an
            uninterrupted one (bit for bit on CPU). A checkpoint of other settings or data is
            refused.
        progress: show a progress bar (default: when stderr is a terminal).
        device: where to train (default: ``cuda:LOCAL_RANK`` in a multi-GPU run, else the CPU);
            the module is back on the CPU afterwards.

    Under ``torchrun`` (an initialised process group, :mod:`pretroost.distributed`), every rank
    trains on its shard of each global batch of ``config.batch_size`` rows, gradients are summed
    over ranks, rank 0 scores the validation set and alone writes the checkpoint.

    The process keeps freed memory for the next step (:func:`pretroost.utils.tune_malloc`; off
    with ``PRETROOST_TUNE_MALLOC=0``).

    Returns:
        The per-epoch history (train loss, val score, lr, seconds) and the best epoch.
    """
    tune_malloc()
    ctx = distributed.context(device)
    dev = ctx.device
    on_cpu = dev.type == "cpu"
    if config.precision == "bf16":
        warn_if_bf16_emulated(dev, description)
    if not on_cpu:
        module.to(dev)
    score_fn = val_score or (lambda m, d: evaluate_loss(m, d))
    groups = _param_groups(module, config)
    params = [p for g in groups for p in g["params"]]
    optimiser = make_optimiser(groups, config)
    steps_per_epoch = max(1, math.ceil(len(train_data) / config.batch_size))
    if ctx.enabled and config.batch_size < ctx.world_size:
        raise ValueError(
            f"batch size {config.batch_size} (the global batch) is smaller than the "
            f"{ctx.world_size} processes; each needs at least one row"
        )
    fingerprint = _data_fingerprint(train_data)
    result = TrainResult()
    best_state: dict | None = None
    start_epoch = 0
    stopped = False
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)
        _check_resumable(state, checkpoint, config, fingerprint)
        module.load_state_dict(state["module"])
        optimiser.load_state_dict(state["optimiser"])
        result = TrainResult(**state["result"])
        best_state = state.get("best_state")
        start_epoch = int(state["epoch"]) + 1
        stopped = bool(state.get("stopped", False))
        log.info("resumed %s from %s at epoch %d", description, checkpoint, start_epoch)
    if ctx.enabled:
        distributed.broadcast_module(module)
    val_view = val_data if on_cpu or val_data is None else _OnDevice(val_data, dev)
    t0 = time.perf_counter() - result.seconds
    show_bar = _progress_enabled(progress) and ctx.is_main
    log_epochs = ctx.is_main and not show_bar  # no terminal: one log line per epoch instead
    bar = tqdm(
        total=config.epochs, initial=start_epoch, desc=description, unit="epoch",
        disable=not show_bar, leave=False,
    )  # fmt: skip
    if log_epochs and start_epoch < config.epochs and not stopped:
        log.info(
            "%s: %d epochs x %d steps of %d compositions (%d training, %s validation)",
            description, config.epochs - start_epoch, steps_per_epoch, config.batch_size,
            len(train_data), len(val_data) if val_data is not None else 0,
        )  # fmt: skip
    for epoch in range(start_epoch, config.epochs):
        if stopped:
            break
        module.train()
        # per-epoch seeds: resuming at an epoch boundary replays the same batches and views;
        # each rank draws its own augmentation stream (rank 0's is the single-process one)
        torch.manual_seed(config.seed * 100_003 + epoch + 1_000_003 * ctx.rank)
        rng = np.random.default_rng([config.seed, epoch])
        total, n = 0.0, 0
        t_epoch = time.perf_counter()
        factor = _lr_factor(epoch * steps_per_epoch, steps_per_epoch, config)
        for i, idx in enumerate(
            train_data.batch_indices(
                config.batch_size, shuffle=True, generator=rng, bucket=config.bucket
            )
        ):
            factor = _lr_factor(epoch * steps_per_epoch + i, steps_per_epoch, config)
            frozen = epoch < config.freeze_encoder_epochs
            for g in optimiser.param_groups:
                g["lr"] = 0.0 if frozen and g["encoder"] else config.lr * g["lr_scale"] * factor
            if ctx.enabled:
                if len(idx) < ctx.world_size:  # too few rows to give every rank one: skipped
                    continue
                loss_value = _sharded_step(module, train_data, idx, params, optimiser, ctx, config)
            else:
                batch = train_data.batch(idx)
                with autocast(config, dev):
                    out = module(batch if on_cpu else batch.to(dev))
                loss = out["loss"]
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise FloatingPointError(
                        f"{description}: non-finite loss at epoch {epoch}, step {i}"
                    )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"{description}: non-finite loss at epoch {epoch}, step {i}"
                )
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimiser.step()
            total += loss_value * len(idx)
            n += len(idx)
        row = {"epoch": epoch, "train_loss": total / max(1, n), "lr": config.lr * factor}
        row["epoch_seconds"] = time.perf_counter() - t_epoch
        if val_data is not None and len(val_data):
            score = float(score_fn(module, val_view)) if ctx.is_main else None  # type: ignore[arg-type]
            if ctx.enabled:  # every rank takes rank 0's model-selection decision
                score = distributed.broadcast_score(score, dev)
            assert score is not None
            row["val_score"] = score
            if score < result.best_score:
                result.best_score, result.best_epoch = score, epoch
                best_state = _copy_state(module, into=best_state)
        result.history.append(row)
        result.epochs_run = epoch + 1
        result.seconds = time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(
            loss=f"{row['train_loss']:.4g}", val=f"{row.get('val_score', float('nan')):.4g}"
        )
        if log_epochs:
            log.info("%s", _epoch_line(description, epoch, config.epochs, row, n))
        log.debug("%s epoch %d: %s", description, epoch, row)
        stopped = (
            config.patience is not None
            and val_data is not None
            and epoch - result.best_epoch >= config.patience
        )
        if checkpoint is not None and ctx.is_main:
            with atomic_path(checkpoint) as tmp:
                torch.save(
                    {
                        "version": CHECKPOINT_VERSION,
                        "module": module.state_dict(),
                        "optimiser": optimiser.state_dict(),
                        "result": asdict(result),
                        "best_state": best_state,
                        "epoch": epoch,
                        "stopped": stopped,
                        "config": config.to_dict(),
                        "data": fingerprint,
                        "world_size": ctx.world_size,
                    },
                    tmp,
                )
                with open(tmp, "rb") as fh:  # on disk before the rename makes it the checkpoint
                    os.fsync(fh.fileno())
        if stopped:
            log.info("%s: early stop at epoch %d (best %d)", description, epoch, result.best_epoch)
            break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    if not on_cpu:
        module.to("cpu")
    result.seconds = time.perf_counter() - t0
    return result


def _sharded_step(
    module: nn.Module,
    data: CompositionDataset,
    idx: np.ndarray,
    params: list[nn.Parameter],
    optimiser: torch.optim.Optimizer,
    ctx: distributed.DistContext,
    config: TrainConfig | None = None,
) -> float:
    """Forward/backward of this rank's shard of the global batch ``idx``; leaves the global batch's
    gradient in every rank's ``.grad`` and returns the global batch's loss."""
    mine, sizes = distributed.shard(idx, ctx)
    share = len(mine) / len(idx)
    with distributed.sharded_step(sizes), autocast(config or TrainConfig(), ctx.device):
        loss = module(data.batch(mine).to(ctx.device))["loss"]
    optimiser.zero_grad(set_to_none=True)
    # d(sum_r share_r * loss_r) is the global mean's gradient for row-mean losses, and (through the
    # gathering's backward) for losses computed on rows gathered from all ranks
    (loss * share).backward()
    weighted = (loss.detach() * share).reshape(1).float()
    return float(distributed.all_reduce_gradients(params, weighted).item())
