"""Downstream validation of pretrained encoders, on training rows only.

To choose among pretrained encoders (pretraining epochs, corpus, labels) without reading any test
fold: per task and official fold, the fold's training part is split once, seeded by the fold's
number, into design-training rows (80 %) and design-validation rows (20 %); folds 0, 1 and 2 give
three different design splits (replicates). Each encoder (``scratch``, a shipped name such as
``dft-oqmd``, or a pretrained folder) is finetuned on the design-training rows with the converged
recipe (:mod:`pretroost.recipes`; its own 10 % validation split picks the epoch; the pretrained
trunk too where ``init_trunk``) and scored on the design-validation rows: MAE, or the ROC AUC of
the probabilities for classification. Every encoder sees the same rows and seed of a fold, so the
differences are paired per (task, fold, seed). No official test fold is ever read.

One row per (task, encoder, seed, fold, recipe) is appended to ``OUT.jsonl`` (an interrupted run
resumes: rows already there are skipped), with the SHA-256 of the encoder folder's
``config.json`` (``encoder_config_sha256``; None for ``scratch``), so that rows can be told apart
from those of another folder of that name; ``OUT.md`` tabulates them.
:mod:`pretroost.experiment.scaling` compares encoders over the replicates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.finetune import FinetuneConfig, fit
from pretroost.metrics import probability_rocauc
from pretroost.pretrained import resolve
from pretroost.results import check_source
from pretroost.utils import git_sha

__all__ = [
    "DesignSplit",
    "config_sha256",
    "design_split",
    "format_table",
    "validate_encoders",
]

log = logging.getLogger(__name__)

#: the share of an official training fold held out as design-validation rows
DESIGN_FRACTION = 0.2


@dataclass(frozen=True)
class DesignSplit:
    """Positions (into the task's rows) of the design-training and design-validation rows."""

    train: np.ndarray
    val: np.ndarray


def design_split(
    n_rows: int, train_positions: np.ndarray, *, fraction: float = DESIGN_FRACTION, seed: int = 0
) -> DesignSplit:
    """A seeded split of an official fold's training rows (``train_positions``, positions in
    the task's ``n_rows``) into design-training and design-validation rows."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    positions = np.asarray(train_positions)
    if positions.size and (positions.min() < 0 or positions.max() >= n_rows):
        raise ValueError("training positions outside the task's rows")
    order = np.random.default_rng(seed).permutation(positions)
    n_val = int(round(fraction * len(order)))
    return DesignSplit(train=np.sort(order[n_val:]), val=np.sort(order[:n_val]))


def config_sha256(folder: str | Path) -> str:
    """The SHA-256 (hex) of a pretrained folder's ``config.json``: which encoder a row was made
    with, whatever the folder was called."""
    return hashlib.sha256((Path(folder) / "config.json").read_bytes()).hexdigest()


def _score(task_type: str, y: np.ndarray, model, comps) -> float:
    out = model.predict_dataset(CompositionDataset(comps))
    if task_type == "classification":
        return probability_rocauc(y, out["prob"][:, 0])
    return float(np.mean(np.abs(out["mean"][:, 0] - y)))


def validate_encoders(
    encoders: Sequence[str],
    tasks: Sequence[str],
    *,
    folds: Sequence[int] = (0,),
    seeds: Sequence[int] = (0,),
    recipe: str = "converged",
    init_trunk: bool = True,
    out: str | Path = "results/scale/encoder_validation",
    threads: int | None = None,
) -> list[dict]:
    """Finetune from each of ``encoders`` on each task's design-training rows of each official
    fold of ``folds`` and score the design-validation rows (module docstring); rows already in
    ``OUT.jsonl`` (same task, encoder, seed, fold and recipe) are skipped, so an interrupted run
    resumes. Returns the rows written by this call."""
    import torch

    if not folds:
        raise ValueError("folds: give at least one official fold")
    check_source()  # rows are recorded from committed code only (--allow-dirty overrides)
    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".jsonl")
    done = set()
    if path.is_file():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["task"], r["encoder"], r["seed"], r["fold"], r["recipe"]))
    inits = {e: e if e == "scratch" else str(resolve(e)) for e in encoders}  # fail before training
    rows: list[dict] = []
    for task_name in tasks:
        task = get_task(task_name)
        df = load_task(task.name)
        official = load_folds(task.name)
        bad = [f for f in folds if not 0 <= f < len(official)]
        if bad:
            valid = ", ".join(map(str, range(len(official))))
            raise ValueError(f"{task.name}: no official fold {bad}; valid: {valid}")
        comps = parse_formulas(df["formula"].tolist(), source=task.name)
        y = df["target"].to_numpy(np.float64)
        for fold in folds:
            train_ids, _ = official[fold]
            split = design_split(len(df), df.index.get_indexer(train_ids), seed=fold)
            for encoder in encoders:
                init = inits[encoder]
                for seed in seeds:
                    key = (task.name, encoder, seed, fold, recipe)
                    if key in done:
                        log.info(
                            "%s %s fold %d seed %d: done, skipped", task.name, encoder, fold, seed
                        )
                        continue
                    row = _validate_one(
                        task, encoder, init, comps, y, split, fold=fold, seed=seed, recipe=recipe,
                        init_trunk=init_trunk,
                    )  # fmt: skip
                    with path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    done.add(key)
                    rows.append(row)
    all_rows = [json.loads(line) for line in path.read_text().splitlines()]
    out.with_suffix(".md").write_text(format_table(all_rows))
    return rows


def _validate_one(
    task, encoder: str, init: str, comps, y: np.ndarray, split: DesignSplit, *, fold: int,
    seed: int, recipe: str, init_trunk: bool,
) -> dict:  # fmt: skip
    """Finetune from ``init`` on ``split.train`` and score ``split.val``: the row to record."""
    config = FinetuneConfig.from_recipe(
        recipe, init=init, init_trunk=init_trunk and init != "scratch"
    )
    t0 = time.perf_counter()
    model = fit(
        comps.subset(split.train), y[split.train][:, None], task.task_type, config,
        seed=seed, name=f"{encoder}/{task.name}/fold{fold}/seed{seed}",
    )  # fmt: skip
    value = _score(task.task_type, y[split.val], model, comps.subset(split.val))
    row = {
        "task": task.name, "encoder": encoder, "seed": seed, "fold": fold,
        "recipe": recipe, "init_trunk": bool(config.init_trunk),
        "metric": "rocauc_prob" if task.task_type == "classification" else "mae",
        "value": value, "n_train": len(split.train), "n_val": len(split.val),
        "seconds": round(time.perf_counter() - t0, 1), "git_sha": git_sha(),
        "encoder_config_sha256": None if init == "scratch" else config_sha256(init),
    }  # fmt: skip
    log.info("%s %s fold %d seed %d: %s %.4g", task.name, encoder, fold, seed, row["metric"], value)
    return row


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table: per task and encoder the mean design-validation score over seeds."""
    groups: dict[tuple[str, str, str, int, str], list[float]] = {}
    for r in rows:
        key = (r["task"], r["metric"], r["encoder"], r["fold"], r["recipe"])
        groups.setdefault(key, []).append(float(r["value"]))
    lines = [
        "# Encoders on design-validation rows (training rows of an official fold only)",
        "",
        "Made by `pretroost encoder-validation` (`pretroost.experiment.encoder_validation`): "
        f"{int(DESIGN_FRACTION * 100)} % of the official fold's training rows held out once, "
        "each encoder finetuned on the rest with the recipe named; no test fold is read.",
        "",
        "| task | metric | encoder | fold | recipe | seeds | mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for (task, metric, encoder, fold, recipe), values in sorted(groups.items()):
        lines.append(
            f"| {task} | {metric} | {encoder} | {fold} | {recipe} | {len(values)} | "
            f"{np.mean(values):.4g} |"
        )
    return "\n".join(lines) + "\n"
