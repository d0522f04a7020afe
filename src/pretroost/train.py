"""The one training loop, for pretraining objectives and supervised finetuning alike.

Anything with ``forward(batch) -> {"loss": scalar, ...}`` trains here: AdamW, an optional warm-up
plus cosine schedule, optional different learning rate for the encoder, model selection on a
validation set, per-epoch resumable checkpoints (atomic, loaded with ``weights_only=True``), and
deterministic per-epoch seeds so that an interrupted run resumes to the same weights.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pretroost.data.batching import CompositionDataset
from pretroost.utils import atomic_path

__all__ = ["TrainConfig", "TrainResult", "evaluate_loss", "train"]

log = logging.getLogger(__name__)

Schedule = Literal["constant", "cosine"]
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings shared by pretraining and finetuning.

    Attributes:
        epochs: passes over the training set.
        batch_size: compositions per step.
        lr: peak AdamW learning rate; ``encoder_lr_scale`` multiplies it for encoder parameters
            (0 freezes the encoder: a linear-probe-style finetune).
        weight_decay: AdamW weight decay.
        schedule: ``"constant"`` or ``"cosine"`` (to 1 % of ``lr``), after ``warmup_epochs`` of
            linear warm-up.
        grad_clip: max gradient norm, or None.
        patience: stop when the validation score has not improved for this many epochs (None: never).
        seed: seeds batching and augmentation, per epoch.
        bucket: batch compositions of similar element count together (less padding).
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 3e-4
    encoder_lr_scale: float = 1.0
    weight_decay: float = 1e-6
    schedule: Schedule = "cosine"
    warmup_epochs: int = 0
    grad_clip: float | None = None
    patience: int | None = None
    seed: int = 0
    bucket: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs >= 0, batch_size >= 1 and lr > 0 are required")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.inf
    seconds: float = 0.0
    epochs_run: int = 0


def _param_groups(module: nn.Module, config: TrainConfig) -> list[dict]:
    enc, rest = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (enc if ".encoder." in f".{name}" else rest).append(p)
    groups = [{"params": rest, "lr_scale": 1.0}]
    if config.encoder_lr_scale > 0:
        groups.append({"params": enc, "lr_scale": config.encoder_lr_scale})
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
def evaluate_loss(module: nn.Module, data: CompositionDataset, batch_size: int = 1024) -> float:
    """Mean of ``module(batch)["loss"]`` over ``data`` (weighted by batch size), in eval mode."""
    was_training = module.training
    module.eval()
    total, n = 0.0, 0
    for batch in data.batches(batch_size):
        total += float(module(batch)["loss"]) * len(batch)
        n += len(batch)
    module.train(was_training)
    return total / max(1, n)


def _progress_enabled(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


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
) -> TrainResult:
    """Train ``module`` in place; at the end it holds the best weights on ``val_data`` (if given).

    Args:
        module: an objective or supervised task: ``module(batch)["loss"]`` is minimised.
        train_data: training compositions (with the targets the module reads).
        config: optimisation settings.
        val_data: validation set for model selection / early stopping (from the training fold only).
        val_score: lower-is-better score of ``(module, val_data)``; default: the mean loss.
        checkpoint: a file written after every epoch (model, optimiser, history, best weights).
        resume: continue from ``checkpoint`` if it exists.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        The per-epoch history (train loss, val score, lr, seconds) and the best epoch.
    """
    score_fn = val_score or (lambda m, d: evaluate_loss(m, d))
    groups = _param_groups(module, config)
    optimiser = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_data) / config.batch_size))
    result = TrainResult()
    best_state: dict | None = None
    start_epoch = 0
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        module.load_state_dict(state["module"])
        optimiser.load_state_dict(state["optimiser"])
        result = TrainResult(**state["result"])
        best_state = state.get("best_state")
        start_epoch = int(state["epoch"]) + 1
        log.info("resumed %s from %s at epoch %d", description, checkpoint, start_epoch)
    t0 = time.perf_counter() - result.seconds
    bar = tqdm(
        total=config.epochs, initial=start_epoch, desc=description, unit="epoch",
        disable=not _progress_enabled(progress), leave=False,
    )  # fmt: skip
    for epoch in range(start_epoch, config.epochs):
        module.train()
        torch.manual_seed(config.seed * 100_003 + epoch)
        rng = np.random.default_rng([config.seed, epoch])
        total, n = 0.0, 0
        t_epoch = time.perf_counter()
        for i, idx in enumerate(
            train_data.batch_indices(
                config.batch_size, shuffle=True, generator=rng, bucket=config.bucket
            )
        ):
            factor = _lr_factor(epoch * steps_per_epoch + i, steps_per_epoch, config)
            for g in optimiser.param_groups:
                g["lr"] = config.lr * g["lr_scale"] * factor
            out = module(train_data.batch(idx))
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{description}: non-finite loss at epoch {epoch}, step {i}"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        row = {"epoch": epoch, "train_loss": total / max(1, n), "lr": config.lr * factor}
        row["epoch_seconds"] = time.perf_counter() - t_epoch
        if val_data is not None and len(val_data):
            score = float(score_fn(module, val_data))
            row["val_score"] = score
            if score < result.best_score:
                result.best_score, result.best_epoch = score, epoch
                best_state = copy.deepcopy(module.state_dict())
        result.history.append(row)
        result.epochs_run = epoch + 1
        result.seconds = time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(
            loss=f"{row['train_loss']:.4g}", val=f"{row.get('val_score', float('nan')):.4g}"
        )
        log.debug("%s epoch %d: %s", description, epoch, row)
        if checkpoint is not None:
            with atomic_path(checkpoint) as tmp:
                torch.save(
                    {
                        "module": module.state_dict(),
                        "optimiser": optimiser.state_dict(),
                        "result": asdict(result),
                        "best_state": best_state,
                        "epoch": epoch,
                    },
                    tmp,
                )
        if (
            config.patience is not None
            and val_data is not None
            and epoch - result.best_epoch >= config.patience
        ):
            log.info("%s: early stop at epoch %d (best %d)", description, epoch, result.best_epoch)
            break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    return result
