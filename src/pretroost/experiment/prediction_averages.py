"""Ensembles of cells already trained, scored per fold: each strategy's seeds (a deep ensemble of
the models a multi-seed preset trains anyway) and, exploratory, every completed strategy together.

Nothing is trained here and nothing is chosen on a test fold: prediction files are averaged
(probabilities, for classification) and scored like single cells. A classification ensemble labels
its mean probability at the mean of its members' thresholds: Matbench's 0.5, except for the seeds
of a ``+valthreshold`` strategy, each thresholded where its own seed's validation split of the
training fold put it (the threshold its prediction file records).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost.data.matbench import get_task, load_task
from pretroost.experiment.scores import best_strategy, lower_is_better, paired_test
from pretroost.experiment.strategies import is_strategy, repeats_base_model, strategy_order
from pretroost.metrics import HEADLINE, score, to_labels
from pretroost.results import (
    prediction_path,
    read_prediction_file,
    strategy_folder,
    submission_values,
    write_matbench_results,
)

__all__ = [
    "seed_ensemble_results_path",
    "seed_ensembles",
    "strategy_ensembles",
    "task_targets",
    "write_seed_ensemble_results",
]


def task_targets(table: dict[str, dict[str, dict]]) -> dict[str, pd.Series]:
    """task -> its targets (indexed by Matbench id), for every task of ``table``."""
    return {task: load_task(task)["target"] for task in sorted(table)}


def _mean_prediction(
    results_dir: Path, strategy: str, task: str, fold: int, seeds: Sequence[int]
) -> tuple[pd.Series, float] | None:
    """The mean of ``seeds``' test predictions of one cell (indexed by Matbench id) and the mean
    of their decision thresholds (:func:`_read_prediction`); None if a seed's prediction file is
    missing."""
    paths = [prediction_path(results_dir, strategy, task, fold, s) for s in seeds]
    if not all(p.is_file() for p in paths):
        return None
    cells = [_read_prediction(str(p), p.stat().st_mtime_ns) for p in paths]
    preds = [pred for pred, _ in cells]
    return sum(preds[1:], preds[0]) / len(preds), float(np.mean([t for _, t in cells]))


@functools.lru_cache(maxsize=4096)
def _read_prediction(path: str, mtime_ns: int) -> tuple[pd.Series, float]:
    """:func:`~pretroost.evaluation.matbench.read_prediction_file`, cached on (path, modification time),
    since seed and pooled ensembles and their submission files read the same files (a rewritten
    file is read again)."""
    del mtime_ns  # part of the cache key only
    return read_prediction_file(path)


def _complete(cells: dict[str, dict]) -> dict[str, int]:
    """strategy -> seeds per fold, for the Roost strategies (names :func:`~pretroost.experiment.
    strategies.parse_strategy` reads: not ``select(...)`` or ``blend(...)``, which repeat others,
    nor reference models such as ``trees``) with the same number of seeds on every fold and every
    fold that scratch has (all folds run when there is no scratch)."""
    folds = set(cells["scratch"]["folds"]) if "scratch" in cells else set(range(5))
    out = {}
    for strategy, cell in cells.items():
        n = {len(v) for v in cell["seeds"].values()}
        if len(n) == 1 and folds <= set(cell["folds"]) and is_strategy(strategy):
            out[strategy] = n.pop()
    return out


def _ensemble_scores(
    results_dir: Path,
    task: str,
    members: dict[str, Sequence[int]],
    folds: list[int],
    target: pd.Series,
) -> dict[int, float] | None:
    """fold -> Matbench headline score (MAE, or "rocauc" of the labels) of the mean prediction of
    ``members`` (strategy -> the seeds it contributes, each strategy averaged over its seeds first; for
    classification the mean of the probabilities, labelled ``> t`` at the mean ``t`` of the
    members' thresholds); None if a prediction file is missing."""
    task_type = get_task(task).task_type
    out = {}
    for fold in folds:
        cells = [
            _mean_prediction(results_dir, s, task, fold, seeds) for s, seeds in members.items()
        ]
        if any(c is None for c in cells):
            return None
        preds = [c[0] for c in cells if c is not None]
        mean = sum(preds[1:], preds[0]) / len(preds)
        values: pd.Series | np.ndarray = mean
        if task_type == "classification":
            threshold = float(np.mean([c[1] for c in cells if c is not None]))
            values = to_labels(mean.to_numpy(), threshold)
        out[fold] = score(task_type, target.loc[mean.index], values)[HEADLINE[task_type]]
    return out


def _ensemble_pool(
    task: str, cells: dict[str, dict], *, threshold_variants: bool = False
) -> dict[str, int]:
    """The strategies an ensemble of ``task`` may average (:func:`_complete`), in report order. On
    classification tasks the ``+valthreshold`` cells are left out unless ``threshold_variants``
    (seed ensembles: each such strategy's seeds averaged at their mean threshold): they
    re-threshold their base strategy's model (same probabilities; ``Variant.threshold_only``), so
    among other strategies they would count a model twice."""
    pool = _complete(cells)
    if not lower_is_better(task) and not threshold_variants:
        pool = {s: n for s, n in pool.items() if not repeats_base_model(s)}
    return dict(sorted(pool.items(), key=lambda kv: strategy_order(kv[0])))


def seed_ensembles(
    results_dir: Path,
    table: dict[str, dict[str, dict]],
    targets: dict[str, pd.Series] | None = None,
) -> dict[str, dict]:
    """Strategies run with several seeds per fold, scored as an ensemble: per fold, the mean of
    the seeds' test predictions (classification: probabilities, labelled at 0.5, or for a
    ``+valthreshold`` strategy at the mean of the seeds' validation thresholds; each seed a model
    trained on the training fold alone, so nothing is tuned on the test fold; no training beyond
    the seeds already run).

    Returns task -> strategy -> {"n": seeds, "folds": {fold: score}, "mean", "single",
    "single_folds", "seed_sd", "by_size", "first_seeds", "minutes_per_model"} for the strategies complete on every
    fold (:func:`_complete`) with all their seeds' prediction files; ``single`` is the strategy's
    usual seed-averaged score (``single_folds`` per fold), ``seed_sd`` the seeds' standard
    deviation within a fold, averaged over the folds. ``by_size``: ensemble size k -> the mean
    over folds of the score of a k-member ensemble, averaged over every k of the n seeds (k = 1
    is ``single``, k = n the ensemble), the curve of what each extra member buys;
    ``first_seeds``: k -> {fold: score} of the ensemble of seeds 0 .. k-1, so that strategies
    run with different numbers of seeds compare at the same size; ``minutes_per_model``: the
    cells' recorded training time per fold and seed (None where the table has no times). ``targets``:
    :func:`task_targets` (loaded if not given)."""
    targets = task_targets(table) if targets is None else targets
    out: dict[str, dict] = {}
    for task, target in targets.items():
        cells = table[task]
        for strategy, n in _ensemble_pool(task, cells, threshold_variants=True).items():
            if n < 2:  # one seed: nothing to average, no prediction files to read
                continue
            cell = cells[strategy]
            folds = sorted(cell["folds"])
            ensemble = _ensemble_scores(results_dir, task, {strategy: range(n)}, folds, target)
            if ensemble is None:
                continue
            # every seed's file exists, so every subset of the seeds scores
            subsets = {
                seeds: _ensemble_scores(results_dir, task, {strategy: seeds}, folds, target) or {}
                for k in range(1, n)
                for seeds in itertools.combinations(range(n), k)
            } | {tuple(range(n)): ensemble}
            by_size = {
                k: float(
                    np.mean([np.mean(list(subsets[c].values())) for c in subsets if len(c) == k])
                )
                for k in range(1, n + 1)
            }
            out.setdefault(task, {})[strategy] = {
                "n": n,
                "folds": ensemble,
                "mean": float(np.mean(list(ensemble.values()))),
                "single": cell["mean"],
                "single_folds": dict(cell["folds"]),
                "seed_sd": float(np.mean([np.std(v, ddof=1) for v in cell["seeds"].values()])),
                "by_size": by_size,
                "first_seeds": {k: subsets[tuple(range(k))] for k in range(1, n + 1)},
                "minutes_per_model": cell["seconds"] / 60 / (n * len(folds))
                if "seconds" in cell
                else None,
            }
    return out


def seed_ensemble_results_path(results_dir: Path, strategy: str) -> Path:
    """The Matbench submission file of ``strategy``'s seed ensembles."""
    return Path(results_dir) / "seed_ensembles" / strategy_folder(strategy) / "results.json.gz"


def write_seed_ensemble_results(results_dir: Path, ens: dict[str, dict]) -> list[Path]:
    """One Matbench v0.1 submission file per strategy of ``ens`` (:func:`seed_ensembles`) at
    :func:`seed_ensemble_results_path`: each task where the strategy has a seed ensemble, each
    fold's mean prediction of its seeds (classification: the mean probability, or the labels where
    the seeds' mean threshold is not 0.5). Scores the same as the ensemble's ``folds``. Returns
    the files written."""
    by_strategy: dict[str, dict[str, dict]] = {}
    for task, cells in ens.items():
        for strategy, cell in cells.items():
            by_strategy.setdefault(strategy, {})[task] = cell
    written = []
    for strategy, tasks in sorted(by_strategy.items()):
        predictions: dict[str, list[pd.Series | None]] = {}
        for task, cell in tasks.items():
            series: list[pd.Series | None] = [None] * 5
            for fold in cell["folds"]:
                mean = _mean_prediction(results_dir, strategy, task, fold, range(cell["n"]))
                if mean is None:
                    raise FileNotFoundError(f"{strategy} {task} fold {fold}: a seed's predictions")
                series[fold] = submission_values(*mean)
            predictions[task] = series
        seeds = {task: cell["n"] for task, cell in tasks.items()}
        out = seed_ensemble_results_path(results_dir, strategy)
        write_matbench_results(
            out, predictions, authors="pretroost",
            algorithm_description=(
                f"Roost ({strategy}) finetuned with pretroost; per fold the mean prediction of "
                "models trained with different seeds"
            ),
            info={"strategy": strategy, "seed_ensemble": seeds}, partial=True,
        )  # fmt: skip
        written.append(out)
    return written


def strategy_ensembles(
    results_dir: Path,
    table: dict[str, dict[str, dict]],
    targets: dict[str, pd.Series] | None = None,
) -> dict[str, dict]:
    """Exploratory: per task and fold, the mean of the test predictions of every strategy run on
    all of scratch's folds (each strategy first averaged over its seeds, so each counts once;
    ``select(...)`` strategies, which repeat others, and, on classification, ``+valthreshold``
    cells, which repeat their base model, left out; classification averages probabilities and
    thresholds at 0.5). The pool is every completed strategy, not a choice, so nothing is picked on
    the test fold; but the idea came after seeing single strategies' test scores.

    Returns task -> {"members": [strategy, ...], "metric", "folds": {fold: score}, "mean",
    "best_member": the member with the best mean score, "vs_scratch", "vs_best_member": paired
    tests (see :func:`paired_test`)} for tasks with at least two such strategies."""
    targets = task_targets(table) if targets is None else targets
    out: dict[str, dict] = {}
    for task, target in targets.items():
        cells = table[task]
        pool = _ensemble_pool(task, cells)
        if len(pool) < 2:
            continue
        members = list(pool)
        folds = _ensemble_scores(
            results_dir,
            task,
            {s: range(n) for s, n in pool.items()},
            sorted(cells[members[0]]["folds"]),
            target,
        )
        if folds is None:
            continue
        best = best_strategy(task, {s: cells[s] for s in members})
        out[task] = {
            "metric": HEADLINE[get_task(task).task_type],
            "members": members,
            "folds": folds,
            "mean": float(np.mean(list(folds.values()))),
            "best_member": best,
            "vs_scratch": paired_test(folds, cells["scratch"]["folds"])
            if "scratch" in cells
            else None,
            "vs_best_member": paired_test(folds, cells[best]["folds"]),
        }
    return out
