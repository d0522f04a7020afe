"""The trees' Matbench runner: :func:`~pretroost.trees.fit_trees` on each official training fold,
scored on its test fold, cells written to the results store (:mod:`pretroost.results`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.metrics import CLF_THRESHOLD, HEADLINE
from pretroost.results import cell_scores, folds_to_run, rebuild_results, write_cell
from pretroost.trees import TreesConfig, fit_trees

__all__ = ["run_trees_task"]

log = logging.getLogger(__name__)


def run_trees_task(
    task_name: str,
    config: TreesConfig | None = None,
    *,
    results_dir: str | Path = "results",
    strategy: str = "trees",
    folds: Sequence[int] = (0, 1, 2, 3, 4),
    resume: bool = True,
    source: str = "auto",
) -> list[dict]:
    """Fit :func:`fit_trees` on each official training fold of a task and score it on the test
    fold; the cells are written like the bench's (:func:`pretroost.results.prediction_path`,
    its validation record holding ``selected`` and ``inner_scores``, rows in
    ``benchmark.jsonl`` with ``epochs`` 0). Returns the benchmark rows written."""
    config = config or TreesConfig()
    task = get_task(task_name)
    results_dir = Path(results_dir)
    df = load_task(task.name, source=source)
    official = load_folds(task.name)
    rows: list[dict] = []
    todo = folds_to_run(
        results_dir, strategy, task.name, folds, len(official), seed=config.seed, resume=resume
    )
    for k in todo:
        train_ids, test_ids = official[k]
        t0 = time.perf_counter()
        train = df.loc[train_ids]
        fitted = fit_trees(
            parse_formulas(train["formula"].tolist(), source=task.name),
            train["target"].to_numpy(), task.task_type, config,
        )  # fmt: skip
        test = df.loc[test_ids]
        values = fitted.predict(parse_formulas(test["formula"].tolist(), source=task.name))
        seconds = time.perf_counter() - t0
        threshold = fitted.threshold
        scores = cell_scores(task.task_type, test["target"].to_numpy(), values, threshold)
        best = f"{fitted.model}/{fitted.features}"
        kind = "minus_balanced_accuracy" if task.task_type == "classification" else "mae"
        if fitted.thresholds:
            kind += "_at_threshold"
        record = {
            "selected": best, "inner_scores": fitted.inner_scores, "val_metric": "inner_cv_" + kind,
            "best_val": fitted.inner_scores[best], "n_val": len(train_ids), "n_members": 1,
            "config": config.to_dict(),
        }  # fmt: skip
        frame = pd.DataFrame({"id": test_ids, "prediction": values})
        if fitted.thresholds:
            record.update(threshold=threshold, candidate_thresholds=fitted.thresholds)
        if threshold != CLF_THRESHOLD:
            frame["threshold"] = threshold
        fold_rows = write_cell(
            results_dir, strategy, task.name, k, config.seed, frame=frame, record=record,
            scores=scores, n_train=len(train_ids), epochs=0, seconds=seconds,
        )  # fmt: skip
        rows += fold_rows
        headline = HEADLINE[task.task_type]
        log.info(
            "%s %s fold %d: %s = %.4f with %s (%.0f s)",
            strategy, task.name, k, headline, scores[headline], best, seconds,
        )  # fmt: skip
    rebuild_results(
        results_dir, strategy, hyperparameters=config.to_dict(),
        algorithm_description="tree ensemble on composition features, chosen per fold by "
        "cross-validation on the training rows (pretroost.trees)",
    )  # fmt: skip
    return rows
