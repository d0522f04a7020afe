"""The bench's presets: each a declared experiment matrix and its compute budget.

Kept apart from :mod:`pretroost.experiment.bench` so that the report, the convergence check and the
CLI's help read them without importing the bench.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pretroost.data.matbench import COMPOSITION_TASKS
from pretroost.recipes import SMALL_BATCH_SIZE, SMALL_ROWS, batch_size_for, get_recipe
from pretroost.train import TrainConfig

__all__ = ["PRESETS", "BenchPreset"]


@dataclass(frozen=True, kw_only=True)
class BenchPreset:
    """A declared experiment matrix and its compute budget."""

    name: str
    #: one line for ``--help``
    summary: str
    #: what a reader of this preset's results must know (the report prints it), e.g. that its
    #: scratch baseline is not converged
    caveat: str = ""
    pretrain: TrainConfig
    finetune: TrainConfig
    max_compositions: int | None = None
    tasks: tuple[str, ...] = COMPOSITION_TASKS
    data_efficiency_tasks: tuple[str, ...] = ()
    fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    data_efficiency_folds: tuple[int, ...] | None = None  # None: ``folds``
    structure_epochs: int | None = None  # the small structure corpus may need more epochs
    #: small training sets (fewer than ``small_rows`` rows) use batches of ``small_batch_size``;
    #: every finetune runs at least ``finetune.epochs`` epochs and ``min_steps`` optimiser steps
    small_rows: int = SMALL_ROWS
    small_batch_size: int = SMALL_BATCH_SIZE
    min_steps: int = 0
    max_epochs: int = 1000
    #: finetuning seeds per fold (seed + fold is the run's seed; 0 is every preset's first), for
    #: ``seeds_tasks`` only; other tasks run seed 0
    seeds: tuple[int, ...] = (0,)
    seeds_tasks: tuple[str, ...] = ()

    def seeds_for(self, task: str) -> tuple[int, ...]:
        return self.seeds if task in self.seeds_tasks else (0,)

    def finetune_for(self, n_train: int) -> TrainConfig:
        """The finetuning recipe for a training fold of ``n_train`` rows. It depends only on the
        training-set size, so every strategy gets exactly the same one; small sets get smaller
        batches and more epochs, so that no model is starved of optimiser steps."""
        batch = batch_size_for(
            n_train, self.finetune.batch_size, self.small_batch_size, self.small_rows
        )
        steps_per_epoch = max(1, math.ceil(n_train / batch))
        epochs = max(self.finetune.epochs, math.ceil(self.min_steps / steps_per_epoch))
        return replace(self.finetune, batch_size=batch, epochs=min(epochs, self.max_epochs))


PRESETS: dict[str, BenchPreset] = {
    # finishes the composition tasks on a 2-core CPU in about two hours (see results/README.md)
    "budget": BenchPreset(
        name="budget",
        summary="2-core CPU, about 2 h; scratch not converged",
        caveat="**Not converged**: this preset's scratch Roost is under-trained (cosine schedule, "
        "few epochs), so its gains are mostly faster convergence. The comparison with a converged "
        "scratch is the `converged` preset's (results/converged/README.md in the repository).",
        pretrain=TrainConfig(epochs=3, batch_size=256, lr=3e-4, warmup_epochs=0),
        finetune=TrainConfig(epochs=40, batch_size=128, lr=3e-4),
        min_steps=1200,
        structure_epochs=30,
        data_efficiency_tasks=(
            "matbench_expt_gap",
            "matbench_steels",
            "matbench_phonons",
            "matbench_log_kvrh",
        ),
        data_efficiency_folds=(0,),
    ),
    # ours, not the paper's: scratch Roost trained as the literature trains it (Roost's own default
    # optimiser: AdamW 3e-4, constant learning rate, weight decay 1e-6, batch 128; 300 epochs with
    # the best validation epoch kept, as Wang et al. 2021 retrained Roost on Matbench). Chosen on
    # validation data of the training fold only (`pretroost convergence`, results/convergence/):
    # a cosine schedule plateaus far above the constant rate on expt_gap, and doubling the epochs
    # of the constant recipe gains less than the seed spread. Pretraining: 10 epochs (the authors'
    # SSL length), cosine, batch 256 over the whole leak-free corpus.
    "converged": BenchPreset(
        name="converged",
        summary="300 epochs, constant rate, best validation epoch (days on a 2-core CPU)",
        pretrain=TrainConfig(epochs=10, batch_size=256, lr=3e-4, warmup_epochs=0),
        # the converged recipe (pretroost.recipes), the default of every finetuning command
        finetune=TrainConfig(**get_recipe("converged").train_fields()),
        structure_epochs=100,
        tasks=(
            "matbench_expt_gap",
            "matbench_expt_is_metal",
            "matbench_glass",
            "matbench_steels",
            "matbench_jdft2d",
            "matbench_phonons",
        ),
        seeds_tasks=("matbench_steels", "matbench_jdft2d", "matbench_phonons"),
        seeds=(0, 1, 2),
    ),
    # seconds: for tests and for trying the command
    "smoke": BenchPreset(
        name="smoke",
        summary="seconds; for tests and for trying the command",
        pretrain=TrainConfig(epochs=1, batch_size=64, lr=1e-4),
        finetune=TrainConfig(epochs=2, batch_size=64, lr=3e-4),
        max_compositions=300,
        structure_epochs=1,
        tasks=("matbench_steels",),
        folds=(0,),
        data_efficiency_tasks=("matbench_steels",),
        fractions=(0.5, 1.0),
    ),
}
