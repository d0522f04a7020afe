"""DFT pretraining throughput and its cost in accuracy: two ``pretroost speed`` measurements.

``pretroost speed --only dft_epoch,dft_heldout --threads 1 --merge``

* ``dft_epoch``: one epoch of ``--objective dft`` training (:func:`pretroost.train.train`, the loop
  ``pretroost pretrain`` runs) on ``--n`` compositions of the leak-free corpus with their OQMD
  labels, today's path (the shipped ``dft-oqmd`` recipe: fp32, batch 256) against the faster
  settings of :class:`pretroost.pretrain.PretrainConfig` (bf16 autocast where the CPU has native
  BF16, larger batches with a learning-rate rule), all sides interleaved in one process (round r
  runs them in order, round r+1 reversed) so the machine's load hits each alike. Reported:
  compositions/s (wall and CPU time of this process), the epoch time over the whole corpus
  extrapolated from it, and the share of the epoch spent slicing batches (the data pipeline).
* ``dft_heldout``: the same settings at equal epochs: :func:`pretroost.pretrain.pretrain` on a
  random subset of the corpus (same seed, 10 % held out), the held-out loss (masked smooth L1 on
  standardised labels, x2) after each epoch.

The OQMD labels are joined once (:meth:`pretroost.data.corpus.Corpus.dft_labels`) and written
for the subset into a temporary ``OQMD_<property>_train.csv`` folder that the runs read
(:attr:`pretroost.objectives.dft.DFTConfig.oqmd_dir`), so each run skips re-parsing all of OQMD.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.corpus import DFT_PROPERTIES, Corpus
from pretroost.experiment.speed import SpeedContext, _interleaved, register_measurement
from pretroost.models.roost import RoostConfig, RoostEncoder
from pretroost.objectives import CombinedObjective, DFTConfig
from pretroost.objectives.base import RegressionObjective
from pretroost.paths import cache_dir
from pretroost.pretrain import PretrainConfig, pretrain, resolved_train
from pretroost.train import TrainConfig, train

__all__ = ["VARIANTS", "Variant", "measure_dft_epoch", "measure_dft_heldout"]

log = logging.getLogger("pretroost.speed")


@dataclass(frozen=True)
class Variant:
    """One way to pretrain: batch size, learning-rate rule and autocast (the base lr is the
    shipped recipe's 3e-4 at batch 256)."""

    label: str
    batch_size: int
    lr_scaling: str = "none"
    autocast: str = "off"

    def config(self, epochs: int, **kw: Any) -> PretrainConfig:
        return PretrainConfig(
            objective="dft",
            train=TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=3e-4),
            lr_scaling=self.lr_scaling,  # type: ignore[arg-type]
            autocast=self.autocast,  # type: ignore[arg-type]
            **kw,
        )


#: today's path first (``experiment.presets``' pretraining recipe: fp32, batch 256, lr 3e-4)
VARIANTS: tuple[Variant, ...] = (
    Variant("today: fp32, batch 256", 256),
    Variant("bf16, batch 256", 256, autocast="native_bf16"),
    Variant("bf16, batch 512, sqrt lr", 512, "sqrt", "native_bf16"),
    Variant("bf16, batch 1024, sqrt lr", 1024, "sqrt", "native_bf16"),
    Variant("bf16, batch 1024, linear lr", 1024, "linear", "native_bf16"),
)
#: the sides timed by ``dft_epoch`` (labels from :data:`VARIANTS`)
TIMED = (
    "today: fp32, batch 256",
    "bf16, batch 256",
    "bf16, batch 1024, sqrt lr",
)


def _corpus_path() -> Path:
    return cache_dir() / "corpus" / "oqmd-leakfree.npz"


def _labelled_corpus(ctx: SpeedContext) -> tuple[Corpus, np.ndarray] | None:
    """The leak-free corpus and its (n, 4) OQMD labels (cached in ``ctx``), or None if unbuilt."""
    if "dft_corpus" not in ctx._cache:
        path = _corpus_path()
        if not path.is_file():
            return None
        corpus = Corpus.load(path)
        ctx._cache["dft_corpus"] = (corpus, corpus.dft_labels(DFT_PROPERTIES))
    return ctx._cache["dft_corpus"]


def _subset(corpus: Corpus, labels: np.ndarray, n: int, seed: int) -> tuple[Corpus, np.ndarray]:
    """``n`` random labelled compositions (sorted positions)."""
    pool = np.flatnonzero(np.isfinite(labels).any(axis=1))
    idx = np.sort(np.random.default_rng(seed).choice(pool, min(n, len(pool)), replace=False))
    return corpus.subset(idx), labels[idx]


def _write_labels(folder: Path, corpus: Corpus, labels: np.ndarray) -> Path:
    """``OQMD_<property>_train.csv`` (formula,target) of the subset, for ``DFTConfig.oqmd_dir``."""
    folder.mkdir(parents=True, exist_ok=True)
    forms = np.asarray(corpus.formulas, dtype=object)
    for j, prop in enumerate(DFT_PROPERTIES):
        ok = np.isfinite(labels[:, j])
        lines = [f"{f},{v!r}" for f, v in zip(forms[ok], labels[ok, j].tolist(), strict=True)]
        (folder / f"OQMD_{prop}_train.csv").write_text("formula,target\n" + "\n".join(lines) + "\n")
    return folder


def _one_epoch(module: CombinedObjective, data: CompositionDataset, config: TrainConfig) -> int:
    train(module, data, config, progress=False, description="dft epoch")
    return len(data)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@register_measurement("dft_epoch")
def measure_dft_epoch(ctx: SpeedContext) -> dict:
    """Epoch throughput of DFT pretraining: today's path vs the faster settings, interleaved."""
    loaded = _labelled_corpus(ctx)
    if loaded is None:
        return {"skipped": f"no corpus at {_corpus_path()}: run `pretroost corpus build`"}
    corpus, labels = loaded
    sub, y = _subset(corpus, labels, ctx.n, ctx.seed)
    data = CompositionDataset(sub.comps, {"dft": y, "dft_mask": np.isfinite(y).any(axis=1)})
    variants = {v.label: v for v in VARIANTS if v.label in TIMED}
    sides: dict[str, Callable[[], int]] = {}
    notes, modules = {}, {}
    for label, v in variants.items():
        tc, note = resolved_train(v.config(1), "cpu")
        notes[label] = note
        torch.manual_seed(ctx.seed)
        module = CombinedObjective(
            RoostEncoder(RoostConfig()), ["dft"], configs={"dft": DFTConfig()},
            target_dims={"dft": len(DFT_PROPERTIES)},
        )  # fmt: skip
        cast(RegressionObjective, module.parts["dft"]).set_scaler(y)
        modules[label] = module

        sides[label] = functools.partial(_one_epoch, module, data, tc)
    if not ctx.bf16_native:
        log.info("dft_epoch: %s: the bf16 sides run in fp32", ctx.bf16_reason)
    load_start = _load()
    timed = _interleaved(sides, ctx.rounds, ctx.min_seconds, warmup=not ctx.quick)
    # the data pipeline alone: slicing every batch of one epoch (what a step does before forward)
    rng = np.random.default_rng(ctx.seed)
    t0 = time.perf_counter()
    for idx in data.batch_indices(256, shuffle=True, generator=rng):
        data.batch(idx)
    batching_s = time.perf_counter() - t0
    n_corpus = len(corpus)
    base = timed[TIMED[0]]
    out: dict[str, Any] = {
        "compositions": len(data),
        "corpus_size": n_corpus,
        "rounds": ctx.rounds,
        "load_average_start": load_start,
        "load_average_end": _load(),
        "bf16": {"native": ctx.bf16_native, "reason": ctx.bf16_reason},
        "batching_seconds_per_epoch": batching_s,
        "sides": {},
    }
    table = [
        [
            "DFT pretraining epoch (extrapolated to the corpus)",
            f"{n_corpus} compositions; {len(data)} timed, {ctx.rounds} rounds interleaved, load "
            f"{out['load_average_start'][0]:.1f} -> {out['load_average_end'][0]:.1f}",
        ]
    ]
    for label, r in timed.items():
        side = {
            **r,
            "settings": notes[label],
            "batch_size": variants[label].batch_size,
            "epoch_seconds_wall": n_corpus / r["per_s"],
            "epoch_seconds_cpu": n_corpus / r["per_s_cpu"],
            "speedup_wall": r["per_s"] / base["per_s"],
            "speedup_cpu": r["per_s_cpu"] / base["per_s_cpu"],
        }
        out["sides"][label] = side
        table.append(
            [
                f"  {label} ({notes[label]['precision_used']}, lr {notes[label]['lr_used']:.2g})",
                f"{side['epoch_seconds_wall']:.0f} s wall, {side['epoch_seconds_cpu']:.0f} s CPU"
                f" per epoch; x{side['speedup_wall']:.2f} wall, x{side['speedup_cpu']:.2f} CPU",
            ]
        )
    table.append(
        [
            "  batch slicing (data pipeline)",
            f"{batching_s * n_corpus / len(data):.1f} s per corpus epoch",
        ]
    )
    out["table"] = table
    return out


@register_measurement("dft_heldout")
def measure_dft_heldout(ctx: SpeedContext) -> dict:
    """Held-out loss at equal epochs for every :data:`VARIANTS` entry (same seed and subset)."""
    loaded = _labelled_corpus(ctx)
    if loaded is None:
        return {"skipped": f"no corpus at {_corpus_path()}: run `pretroost corpus build`"}
    corpus, labels = loaded
    n = 1500 if ctx.quick else 2 * ctx.n
    epochs = 1 if ctx.quick else 3
    sub, y = _subset(corpus, labels, n, ctx.seed + 1)
    out: dict[str, Any] = {
        "compositions": len(sub),
        "epochs": epochs,
        "val_fraction": 0.1,
        "seed": ctx.seed,
        "load_average_start": _load(),
        "runs": {},
    }
    table = [
        [
            "DFT held-out loss at equal epochs",
            f"{len(sub)} compositions (10 % held out), {epochs} epochs, seed {ctx.seed}",
        ]
    ]
    with tempfile.TemporaryDirectory() as tmp:
        label_dir = _write_labels(Path(tmp) / "labels", sub, y)
        for i, v in enumerate(VARIANTS):
            config = v.config(epochs, val_fraction=0.1)
            config = replace(
                config,
                train=replace(config.train, seed=ctx.seed),
                dft=DFTConfig(oqmd_dir=str(label_dir)),
            )
            w0, c0 = time.perf_counter(), time.process_time()
            art = pretrain(sub, config, Path(tmp) / f"run{i}", progress=False)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            cfg = json.loads((art / "config.json").read_text())
            val = [r.get("val_score") for r in cfg["history"]]
            out["runs"][v.label] = {
                "settings": cfg["train_resolved"],
                "batch_size": v.batch_size,
                "val_loss_per_epoch": val,
                "train_loss_per_epoch": [r["train_loss"] for r in cfg["history"]],
                "best_val_loss": cfg["best_val_loss"],
                "seconds_wall": wall,
                "seconds_cpu": cpu,
            }
            table.append(
                [
                    f"  {v.label}",
                    "held-out " + " -> ".join(f"{x:.4f}" for x in val) + f" ({cpu:.0f} s CPU)",
                ]
            )
    out["load_average_end"] = _load()
    out["table"] = table
    return out
