"""How much picking strategies by their test scores flatters the best one, per task.

Every strategy of a results folder is scored on the same official test folds, so the best of N
strategies is chosen on those folds. :func:`selection_summary` counts the N strategies of each
task, measures the noise of the difference between two models on the same test rows (a bootstrap
over the rows of each fold, :func:`~pretroost.experiment.stats.bootstrap_difference`) and turns
the two into the gain the best of N equally good strategies shows by chance:
``sd * E[max of N standard normals]`` (:func:`~pretroost.experiment.stats.expected_max_normal`).
Nothing here trains or chooses anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretroost.data.matbench import get_task
from pretroost.experiment.scores import best_strategy, lower_is_better
from pretroost.experiment.stats import (
    balanced_accuracy_rows,
    bootstrap_difference,
    expected_max_normal,
    mae_rows,
)
from pretroost.experiment.strategies import strategy_order
from pretroost.metrics import to_labels
from pretroost.results import prediction_path, read_prediction_file

__all__ = ["cell_prediction", "selection_lines", "selection_summary"]


def cell_prediction(
    results_dir: Path, strategy: str, task: str, fold: int, seeds: list[int]
) -> pd.DataFrame | None:
    """The test predictions of one cell, one column per seed, indexed by Matbench id
    (classification: each seed's labels at its own threshold, as Matbench scores them); None
    where a seed's file is missing."""
    paths = [prediction_path(results_dir, strategy, task, fold, s) for s in seeds]
    if not paths or not all(p.is_file() for p in paths):
        return None
    classification = get_task(task).task_type == "classification"
    preds = {}
    for seed, path in zip(seeds, paths, strict=True):
        pred, threshold = read_prediction_file(path)
        if classification:
            pred = pd.Series(to_labels(pred.to_numpy(), threshold).astype(float), index=pred.index)
        preds[seed] = pred
    return pd.DataFrame(preds)


def _noise(
    results_dir: Path, task: str, cells: dict[str, dict], target: pd.Series, pair: tuple[str, str]
) -> dict[str, Any] | None:
    """Bootstrap of the mean-over-folds difference between ``pair``'s seed-averaged scores on the
    same test rows; None where either misses the other's folds or a prediction file."""
    a, b = pair
    if a not in cells or b not in cells:
        return None
    folds = sorted(set(cells[a]["folds"]) & set(cells[b]["folds"]))
    if len(folds) < 2:
        return None
    data = []
    for fold in folds:
        pa = cell_prediction(results_dir, a, task, fold, list(range(len(cells[a]["seeds"][fold]))))
        pb = cell_prediction(results_dir, b, task, fold, list(range(len(cells[b]["seeds"][fold]))))
        if pa is None or pb is None:
            return None
        ids = pa.index.intersection(pb.index)
        truth = target.loc[ids].to_numpy(dtype=float)
        data.append((truth, pa.loc[ids].to_numpy().T, pb.loc[ids].to_numpy().T))
    metric = mae_rows if lower_is_better(task) else balanced_accuracy_rows
    return bootstrap_difference(data, metric) | {"pair": list(pair), "folds": folds}


def selection_summary(
    results_dir: str | Path,
    table: dict[str, dict[str, dict]],
    targets: dict[str, pd.Series],
) -> dict[str, dict[str, Any]]:
    """task -> {"n": strategies scored on all of the task's folds, "strategies": their names,
    "best": the best of them, "best_mean", "second" (the runner-up), "lead" (the best's margin
    over it, as a positive number), "noise": {strategy: the bootstrap of its difference
    from the best} (strategies with prediction files for every seed and fold), "noise_sd": the
    median of those sds and "noise_range" their (min, max) (None without any), "expected_max_z":
    E[max of n standard normals], "chance_gain": noise_sd × that (or None)}.

    Seed ensembles and other combinations made after the fact from the same cells are not
    counted: they add to N, so the count is a lower bound on the choices made on the test folds.
    """
    results_dir = Path(results_dir)
    out: dict[str, dict[str, Any]] = {}
    for task, cells in sorted(table.items()):
        n_folds = max(len(c["folds"]) for c in cells.values())
        full = {s: c for s, c in cells.items() if len(c["folds"]) == n_folds}
        names = sorted(full, key=strategy_order)
        best = best_strategy(task, full)
        rest = {k: v for k, v in full.items() if k != best}
        second = best_strategy(task, rest) if rest else None
        noise = {
            s: n
            for s in names
            if s != best and (n := _noise(results_dir, task, full, targets[task], (s, best)))
        }
        sds = [n["sd"] for n in noise.values()]
        z = expected_max_normal(len(names))
        sd = float(np.median(sds)) if sds else None
        out[task] = {
            "n": len(names),
            "strategies": names,
            "best": best,
            "best_mean": full[best]["mean"],
            "second": second,
            "lead": None if second is None else abs(full[best]["mean"] - full[second]["mean"]),
            "noise": noise,
            "noise_sd": sd,
            "noise_range": (min(sds), max(sds)) if sds else None,
            "expected_max_z": z,
            "chance_gain": None if sd is None else sd * z,
        }
    return out


def selection_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The report's section on selection on the test folds, from :func:`selection_summary`."""
    if not summary:
        return []
    lines = [
        "## Selection on the test folds",
        "",
        "Every strategy of a task was scored on the same official test folds, and the best of "
        "them is picked by those scores, so each task's best figure is flattered. N: the "
        "strategies run on all of the task's folds in this folder (seed ensembles and the "
        "exploratory ensemble, made afterwards from the same cells, would add to it). Noise: "
        "the standard deviation of the difference in the task's mean-over-folds metric between "
        "two models scored on the same test rows, from 1,000 bootstrap resamples of each fold's "
        "test rows (`pretroost.experiment.stats.bootstrap_difference`; each model the mean of "
        "its seeds' scores), for each strategy against the best; the median over strategies, "
        "and their range. Chance gain: median noise × E[max of N standard normals], what the "
        "best of N strategies with no true difference gains over the others by chance when their "
        "comparisons are independent (models trained alike are correlated and gain less). A "
        "lead smaller than the chance gain does not show a better strategy.",
        "",
        "| task | N | best (mean) | lead over the runner-up | noise sd, median (range) "
        "| E[max of N] | chance gain |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, s in summary.items():
        sd, gain = s["noise_sd"], s["chance_gain"]
        noise = (
            "–" if sd is None else f"{sd:.3g} ({s['noise_range'][0]:.3g}–{s['noise_range'][1]:.3g})"
        )
        best = s["best"].replace("|", "\\|")
        lead = (
            "–" if s["second"] is None else f"{s['lead']:.3g} (`{s['second']}`)".replace("|", "\\|")
        )
        lines.append(
            f"| {task} | {s['n']} | {best} ({s['best_mean']:.4g}) | {lead} | {noise} "
            f"| {s['expected_max_z']:.2f} | {'–' if gain is None else f'{gain:.3g}'} |"
        )
    return [*lines, ""]
