"""Matbench evaluation: train on each official training fold, score on its test fold.

Per (strategy, task, fold) the test predictions are kept as a CSV, so a run can be resumed cell by
cell, and the strategy's Matbench-format ``results.json.gz`` is rebuilt from whatever folds exist.
Each fold also appends one row per metric to ``results/benchmark.jsonl``.

Classification: the stored ``prediction`` is the probability of class 1. Matbench scores labels
``p > 0.5``; a model whose decision threshold was chosen on validation
(``FinetuneConfig.threshold``) is scored with labels ``p > threshold`` instead, and its CSV carries
the threshold (column ``threshold``), so that ``results.json.gz`` holds those labels. Beside
Matbench's metrics each fold gets ``rocauc_prob``, the ROC AUC of the probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.finetune import FinetuneConfig
from pretroost.folds import SEED_STRIDE, matbench_splits, run_splits, training_subset
from pretroost.metrics import CLF_THRESHOLD, PROB_ROCAUC, probability_rocauc, score, to_labels
from pretroost.results import append_benchmark_rows, write_matbench_results
from pretroost.utils import atomic_path, git_sha, machine_description

__all__ = [
    "SEED_STRIDE",
    "prediction_path",
    "rebuild_results",
    "run_matbench_task",
    "training_subset",
]

log = logging.getLogger(__name__)


def prediction_path(results_dir: Path, strategy: str, task: str, fold: int, seed: int = 0) -> Path:
    """Test predictions of one cell; seed 0 is ``fold_<k>.csv``, seed s > 0 ``fold_<k>_seed<s>.csv``."""
    name = f"fold_{fold}.csv" if seed == 0 else f"fold_{fold}_seed{seed}.csv"
    return Path(results_dir) / strategy / "predictions" / task / name


def run_matbench_task(
    task_name: str,
    config: FinetuneConfig,
    *,
    strategy: str = "scratch",
    folds: Sequence[int] = (0, 1, 2, 3, 4),
    results_dir: str | Path = "results",
    fraction: float = 1.0,
    save_models: str | Path | None = None,
    resume: bool = True,
    progress: bool | None = None,
    source: str = "auto",
    seed: int = 0,
) -> list[dict]:
    """Finetune and score one task on the given official folds.

    Args:
        task_name: official or short Matbench name.
        config: the finetuning recipe (``config.init`` is "scratch" or a pretrained folder).
        strategy: label for results (e.g. "scratch", "ssl").
        folds: official fold indices to run.
        results_dir: where ``<strategy>/predictions``, ``<strategy>/results.json.gz`` and
            ``benchmark.jsonl`` go.
        fraction: train on this share of each training fold (data-efficiency curves).
        save_models: folder to save each fold's model in (``<task>_fold<k>``), or None.
        resume: skip folds whose predictions already exist.
        seed: repeat index (0: the first run); repeats differ in initialisation, batch order and
            validation split, never in the official folds.

    Returns:
        The benchmark rows written (one per metric and fold).
    """
    task = get_task(task_name)
    results_dir = Path(results_dir)
    df = load_task(task.name, source=source)
    comps = parse_formulas(df["formula"].tolist(), source=task.name)
    official = load_folds(task.name)
    todo = []
    for k in folds:
        if not 0 <= k < len(official):
            raise ValueError(f"fold {k} out of range 0..{len(official) - 1}")
        if resume and prediction_path(results_dir, strategy, task.name, k, seed).is_file():
            log.info(
                "%s %s fold %d seed %d: predictions exist, skipped", strategy, task.name, k, seed
            )
            continue
        todo.append(k)
    splits = matbench_splits(
        df.index, official, todo, fraction=fraction, base_seed=config.train.seed, repeat=seed
    )
    names = [f"{strategy}/{task.name}/fold{k}" + (f"/seed{seed}" if seed else "") for k in todo]
    y = df["target"].to_numpy()
    rows: list[dict] = []
    for result in run_splits(
        comps, y, task.task_type, splits, config, progress=progress, name=names
    ):
        k, fitted, pred = result.split.index, result.fitted, result.pred
        test_ids = official[k][1]
        y_test = result.test_y[:, 0]
        values = pred["prob"][:, 0] if task.task_type == "classification" else pred["mean"][:, 0]
        threshold = fitted.threshold
        if task.task_type == "classification":  # Matbench scores labels: the model's threshold
            scores = score(task.task_type, y_test, to_labels(values, threshold))
            scores[PROB_ROCAUC] = probability_rocauc(y_test, values)
        else:
            scores = score(task.task_type, y_test, values)
        frame = pd.DataFrame({"id": test_ids, "prediction": values})
        if task.task_type == "classification" and threshold != CLF_THRESHOLD:
            frame["threshold"] = threshold
        if "std" in pred:
            frame["std"] = pred["std"][:, 0]
        with atomic_path(prediction_path(results_dir, strategy, task.name, k, seed)) as tmp:
            frame.to_csv(tmp, index=False)
        if save_models is not None:
            fitted.info["task"] = task.name
            fitted.save(
                Path(save_models) / (f"{task.name}_fold{k}" + (f"_seed{seed}" if seed else ""))
            )
        sha, machine = git_sha(), machine_description()
        n_train, seconds = len(result.split.train), result.seconds
        fold_rows = [
            {
                "strategy": strategy,
                "task": task.name,
                "fold": k,
                "seed": seed,
                "metric": metric,
                "value": float(value),
                "n_train": n_train,
                "epochs": int(fitted.info["epochs_run"]),
                "seconds": round(seconds, 2),
                "git_sha": sha,
                "machine": machine,
            }
            for metric, value in scores.items()
        ]
        append_benchmark_rows(results_dir / "benchmark.jsonl", fold_rows)
        rows += fold_rows
        headline = "mae" if task.task_type == "regression" else "rocauc"
        log.info(
            "%s %s fold %d: %s = %.4f (%d train, %.0f s)",
            strategy, task.name, k, headline, scores[headline], n_train, seconds,
        )  # fmt: skip
    rebuild_results(results_dir, strategy, hyperparameters=config.to_dict())
    return rows


def rebuild_results(
    results_dir: str | Path, strategy: str, *, hyperparameters: dict | None = None
) -> Path | None:
    """(Re)write ``<results_dir>/<strategy>/results.json.gz`` from the stored fold predictions
    (classification folds with a ``threshold`` column as labels ``prediction > threshold``)."""
    root = Path(results_dir) / strategy / "predictions"
    if not root.is_dir():
        return None
    predictions: dict[str, list[pd.Series | None]] = {}
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        series: list[pd.Series | None] = [None] * 5
        for k in range(5):
            f = task_dir / f"fold_{k}.csv"
            if f.is_file():
                frame = pd.read_csv(f)
                values = frame["prediction"].to_numpy()
                if "threshold" in frame:  # labels with the model's own decision threshold
                    values = values > frame["threshold"].to_numpy()
                series[k] = pd.Series(values, index=frame["id"].astype(str))
        if any(s is not None for s in series):
            predictions[task_dir.name] = series
    if not predictions:
        return None
    out = Path(results_dir) / strategy / "results.json.gz"
    write_matbench_results(
        out, predictions, authors="pretroost",
        algorithm_description=f"Roost ({strategy}) finetuned with pretroost",
        hyperparameters=hyperparameters or {}, info={"strategy": strategy},
    )  # fmt: skip
    return out
