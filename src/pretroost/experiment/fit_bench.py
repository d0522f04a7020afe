"""``pretroost fit`` measured on Matbench: on each official training fold, :func:`pretroost.fit`
chooses a model by k-fold cross-validation on that fold's training rows only, and its choice is
scored on the test fold with Matbench's metrics. Cells are written like the bench's
(:func:`pretroost.evaluation.matbench.write_cell`; the validation record holds the choice and every
candidate's CV errors), so the report, blends and Matbench submission files read them like any
strategy's."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.metrics import HEADLINE
from pretroost.results import cell_scores, folds_to_run, rebuild_results, write_cell
from pretroost.select_model import ROOST_CANDIDATES, FitConfig, fit

__all__ = ["fit_strategy", "run_fit_task"]

log = logging.getLogger(__name__)


def fit_strategy(config: FitConfig) -> str:
    """The default results label: ``fit``, or ``fit-<recipe>`` for a recipe other than
    ``converged`` (a trial's cells never mix with the measurement's)."""
    return "fit" if config.recipe == "converged" else f"fit-{config.recipe}"


def run_fit_task(
    task_name: str,
    config: FitConfig,
    *,
    results_dir: str | Path = "results/fit",
    runs_dir: str | Path = "runs/fit",
    strategy: str | None = None,
    folds: Sequence[int] = (0, 1, 2, 3, 4),
    resume: bool = True,
    progress: bool | None = None,
    source: str = "auto",
) -> list[dict]:
    """:func:`~pretroost.select_model.fit` on each official training fold of a Matbench task
    (its model saved under ``runs_dir/<strategy>/<task>/fold_<k>``), scored on the test fold.
    The target is a band gap (``trees+pbe`` a candidate) where the task's name contains ``gap``,
    unless ``config.band_gap`` says otherwise. Returns the benchmark rows written."""
    task = get_task(task_name)
    strategy = strategy or fit_strategy(config)
    results_dir = Path(results_dir)
    df = load_task(task.name, source=source)
    official = load_folds(task.name)
    if config.band_gap is None:
        config = replace(config, band_gap="gap" in task.name)
    rows: list[dict] = []
    todo = folds_to_run(
        results_dir, strategy, task.name, folds, len(official), seed=config.seed, resume=resume
    )
    for k in todo:
        train_ids, test_ids = official[k]
        t0 = time.perf_counter()
        train = df.loc[train_ids, ["formula", "target"]].astype({"target": np.float64})
        result = fit(
            train, target_col="target", out=Path(runs_dir) / strategy / task.name / f"fold_{k}",
            task_type=task.task_type, config=config, overwrite=True, progress=progress,
        )  # fmt: skip
        test = df.loc[test_ids]
        frame = result.model.predict(test["formula"].tolist())
        clf = task.task_type == "classification"
        values = frame["probability" if clf else "prediction"].to_numpy(dtype=np.float64)
        threshold = float(getattr(result.model, "threshold", 0.5))
        scores = cell_scores(task.task_type, test["target"].to_numpy(), values, threshold)
        seconds = time.perf_counter() - t0
        chosen = result.candidates[result.chosen]
        record = {
            "selected": result.chosen, "reason": result.reason, "rule": result.rule,
            "val_metric": "cv_" + result.metric, "best_val": chosen.mean, "n_val": len(train_ids),
            "n_members": 1, "cv": {c: s.to_dict() for c, s in result.candidates.items()},
            "config": config.to_dict(), "model": str(result.path),
        }  # fmt: skip
        base = chosen.detail.removeprefix("hurdle over ") if result.chosen == "hurdle" else ""
        uses_roost = {result.chosen, base} & {*ROOST_CANDIDATES, "blend"}
        epochs = config.roost_config().train.epochs if uses_roost else 0
        pred = pd.DataFrame({"id": test_ids, "prediction": values})
        if clf and threshold != 0.5:
            pred["threshold"] = threshold
        rows += write_cell(
            results_dir, strategy, task.name, k, config.seed, frame=pred, record=record,
            scores=scores, n_train=len(train_ids), epochs=epochs, seconds=seconds,
        )  # fmt: skip
        head = HEADLINE[task.task_type]
        log.info("%s %s fold %d: %s = %.4f with %s (%.0f s)",
                 strategy, task.name, k, head, scores[head], result.chosen, seconds)  # fmt: skip
    rebuild_results(
        results_dir, strategy, hyperparameters=config.to_dict(),
        algorithm_description="pretroost fit: per fold, a model chosen among tree ensembles, "
        "pretrained Roost (dft-oqmd encoder and trunk), their blend and a hurdle by k-fold "
        "cross-validation on the training rows only, refitted on them (pretroost.select_model)",
    )  # fmt: skip
    return rows
