"""Is a finetuning recipe converged? Decided on validation data of one training fold only.

``pretroost convergence --task matbench_expt_gap`` trains scratch Roost with a preset's recipe on an
official *training* fold for ``factor`` × its epochs, once per seed, and records the validation
curve (the score the recipe selects its best epoch on; for regression the MAE in target units). With
a constant learning rate the first E epochs of a 2E-epoch run *are* the E-epoch run (same seeds,
same batches, same learning rate), so one run per seed answers "does doubling the epochs still help?":
the recipe counts as converged when the mean gain of the best validation score from E to 2E epochs
is smaller than the spread of the E-epoch score over seeds. ``--schedules cosine`` adds runs of
E epochs with a cosine schedule, for comparison. The test fold is never touched.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.experiment.presets import PRESETS
from pretroost.finetune import FinetuneConfig, fit
from pretroost.train import Schedule
from pretroost.utils import atomic_path, git_sha, machine_description

__all__ = ["convergence_check"]

log = logging.getLogger(__name__)


def _run(comps, y, task_type, config: FinetuneConfig, name: str, progress) -> dict:
    t0 = time.perf_counter()
    fitted = fit(comps, y, task_type, config, progress=progress, name=name)
    assert fitted.result is not None
    scale = fitted.normaliser.std[0] if fitted.normaliser is not None else 1.0
    curve = [float(r.get("val_score", math.nan)) * scale for r in fitted.result.history]
    return {"curve": curve, "seconds": round(time.perf_counter() - t0, 1)}


def convergence_check(
    task: str,
    *,
    preset: str = "converged",
    fold: int = 0,
    seeds: Sequence[int] = (0, 1, 2),
    factor: int = 2,
    schedules: Sequence[Schedule] = (),
    results_dir: str | Path = "results/convergence",
    progress: bool | None = None,
) -> dict:
    """Run (or resume, seed by seed) the check; writes and returns ``<results_dir>/<task>.json``.

    Args:
        task: Matbench task (official or short name).
        preset: bench preset whose finetuning recipe is checked (its schedule must be constant).
        fold: official fold whose *training* part is used (validation split drawn from it as in
            every finetune: ``val_fraction`` of the rows, by the run's seed).
        seeds: run seeds (the training seed is ``seed + fold``, as for a bench cell of seed 0).
        factor: the long run's epochs as a multiple of the recipe's.
        schedules: extra schedules to run for the recipe's epochs (e.g. ``("cosine",)``).
    """
    meta = get_task(task)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    bench = PRESETS[preset]
    df = load_task(meta.name)
    comps = parse_formulas(df["formula"].tolist(), source=meta.name)
    position = pd.Series(np.arange(len(df)), index=df.index)
    train_ids, _ = load_folds(meta.name)[fold]
    rows = position[train_ids].to_numpy()
    y = df["target"].to_numpy()[rows]
    base = FinetuneConfig(small_batch_size=None)  # the preset's recipe sets the batch size
    recipe = bench.finetune_for(int(len(rows) * (1 - base.val_fraction)))
    if recipe.schedule != "constant":
        raise ValueError(f"preset {preset!r} uses a {recipe.schedule} schedule: the E-in-2E reading "
                         "needs a constant learning rate")  # fmt: skip
    epochs = recipe.epochs
    out_path = Path(results_dir) / f"{meta.name}.json"
    doc: dict = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if doc.get("recipe") not in (None, recipe.to_dict()) or doc.get("fold", fold) != fold:
        raise ValueError(f"{out_path} holds another recipe or fold: move it away first")
    doc.update(
        task=meta.name, preset=preset, fold=fold, epochs=epochs, factor=factor,
        recipe=recipe.to_dict(), metric="MAE (target units)" if meta.task_type == "regression"
        else "validation loss (binary cross-entropy)",
    )  # fmt: skip
    runs: dict = doc.setdefault("runs", {})
    plan: list[tuple[Schedule, int, int]] = [("constant", factor * epochs, s) for s in seeds]
    plan += [(sched, epochs, s) for sched in schedules for s in seeds]
    for sched, n_epochs, s in plan:
        key = f"{sched}_{n_epochs}_seed{s}"
        if key in runs:
            log.info("convergence %s: %s done, skipped", meta.name, key)
            continue
        config = replace(
            base, train=replace(recipe, epochs=n_epochs, schedule=sched, seed=s + fold)
        )
        name = f"convergence/{meta.name}/{key}"
        runs[key] = _run(comps.subset(rows), y, meta.task_type, config, name, progress)
        runs[key].update(git_sha=git_sha(), machine=machine_description())
        with atomic_path(out_path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
    doc["summary"] = summarise(doc, seeds)
    with atomic_path(out_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def summarise(doc: dict, seeds: Sequence[int]) -> dict:
    """Best validation score within E and within factor·E epochs per seed; the verdict."""
    e, f = doc["epochs"], doc["factor"]
    short: list[float] = []
    long_: list[float] = []
    other: dict[str, list[float]] = {}
    for s in seeds:
        curve = doc["runs"][f"constant_{f * e}_seed{s}"]["curve"]
        short.append(float(np.nanmin(curve[:e])))
        long_.append(float(np.nanmin(curve)))
        for key, run in doc["runs"].items():
            if key.endswith(f"_{e}_seed{s}") and not key.startswith("constant"):
                other.setdefault(key.split("_")[0], []).append(float(np.nanmin(run["curve"])))
    gain = np.array(short) - np.array(long_)
    spread = float(np.std(short, ddof=1)) if len(short) > 1 else math.nan
    return {
        f"best_val_{e}_epochs": short,
        f"best_val_{f * e}_epochs": long_,
        "mean_gain_from_doubling": float(gain.mean()),
        "seed_std_at_recipe": spread,
        "converged": bool(gain.mean() < spread) if np.isfinite(spread) else None,
        **{f"best_val_{e}_epochs_{k}": v for k, v in other.items()},
    }


def format_summary(doc: dict) -> str:
    s, e, f = doc["summary"], doc["epochs"], doc["factor"]
    lines = [
        f"{doc['task']} (fold {doc['fold']} training part, {doc['metric']}, preset {doc['preset']})",
        f"  best within {e} epochs (constant): "
        + ", ".join(f"{v:.4g}" for v in s[f"best_val_{e}_epochs"]),
        f"  best within {f * e} epochs (constant): "
        + ", ".join(f"{v:.4g}" for v in s[f"best_val_{f * e}_epochs"]),
        f"  mean gain from doubling: {s['mean_gain_from_doubling']:.4g}; "
        f"seed std at {e} epochs: {s['seed_std_at_recipe']:.4g}; converged: {s['converged']}",
    ]
    for k, v in s.items():
        if k.startswith(f"best_val_{e}_epochs_"):
            lines.append(f"  best within {e} epochs ({k.rsplit('_', 1)[1]}): "
                         + ", ".join(f"{x:.4g}" for x in v))  # fmt: skip
    return "\n".join(lines) + "\n"
