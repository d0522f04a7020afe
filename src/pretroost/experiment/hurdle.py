"""The hurdle on Matbench folds (:mod:`pretroost.hurdle` says why): a declared regression
strategy's test predictions (its seeds averaged first, as in :mod:`~pretroost.experiment.blend`)
set to 0 where a classifier of ``target == 0``, fitted on the training fold's rows only
(:func:`~pretroost.hurdle.fit_zero_classifier`), gives a probability above 0.5.

The classifier's test-fold probabilities are cached per fold and classifier config
(:func:`classifier_dir`; CSV + JSON record), so hurdles over several strategies fit it once. A hurdle is written like a blend: per fold a prediction file (with the classifier's
``p_zero``), a record, benchmark rows and a Matbench submission file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost import strategy_names as names
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.experiment.blend import BlendPart, part_prediction, pending_folds, training_facts
from pretroost.experiment.scores import latest_rows
from pretroost.hurdle import ZERO_PROBABILITY, apply_hurdle, fit_zero_classifier
from pretroost.metrics import CLF_THRESHOLD
from pretroost.results import cell_scores, read_benchmark_rows, rebuild_results, write_cell
from pretroost.trees import TreesConfig
from pretroost.utils import atomic_path, atomic_write_json

__all__ = ["classifier_dir", "hurdle_label", "write_hurdle", "zero_probabilities"]

log = logging.getLogger(__name__)


def hurdle_label(part: BlendPart) -> str:
    """The default strategy name of a hurdle over ``part``: ``hurdle(<part as written>)``."""
    return names.hurdle_label(part.spec or part.strategy)


def _settings(config: dict) -> dict:
    """What decides a zero classifier's predictions: its config without ``n_jobs``."""
    return {k: v for k, v in config.items() if k != "n_jobs"}


def classifier_dir(results_dir: str | Path, task: str, config: TreesConfig) -> Path:
    """Where a task's zero classifiers of one config are cached:
    ``<results_dir>/zero_classifier/<task>/<10 hex digits of the config's sha1>/``."""
    digest = hashlib.sha1(json.dumps(_settings(config.to_dict()), sort_keys=True).encode())
    return Path(results_dir) / "zero_classifier" / task / digest.hexdigest()[:10]


def zero_probabilities(
    results_dir: str | Path, task_name: str, fold: int, config: TreesConfig | None = None
) -> tuple[pd.Series, dict]:
    """P(target == 0) on one official test fold (indexed by Matbench id) from
    :func:`~pretroost.trees.fit_trees` fitted on the training fold's rows, and its record
    (``selected``, ``inner_scores``, ``n_zero_train``, ``seconds``, ``config``). Read from the
    cache when it holds the same ``config``'s; fitted and cached otherwise.

    Raises ``ValueError`` for a classification task, or a training fold with negative targets or
    without exact zeros (no point mass at a lower bound of 0: the hurdle has no meaning there).
    """
    config = config or TreesConfig()
    task = get_task(task_name)
    if task.task_type != "regression":
        raise ValueError(f"a hurdle needs a regression task, not {task.name} ({task.task_type})")
    folder = classifier_dir(results_dir, task.name, config)
    csv, meta = folder / f"fold_{fold}.csv", folder / f"fold_{fold}.json"
    if csv.is_file() and meta.is_file():
        record = json.loads(meta.read_text())
        if _settings(record.get("config", {})) == _settings(config.to_dict()):
            frame = pd.read_csv(csv)
            return pd.Series(frame["p_zero"].to_numpy(), index=frame["id"].astype(str)), record
    df = load_task(task.name)
    train_ids, test_ids = load_folds(task.name)[fold]
    y = df.loc[train_ids, "target"].to_numpy(dtype=np.float64)
    t0 = time.perf_counter()
    comps = parse_formulas(df.loc[train_ids, "formula"].tolist(), source=task.name)
    try:
        fitted = fit_zero_classifier(comps, y, config)
    except ValueError as exc:
        raise ValueError(f"{task.name} fold {fold}: {exc}") from None
    prob = fitted.predict(parse_formulas(df.loc[test_ids, "formula"].tolist(), source=task.name))
    best = f"{fitted.model}/{fitted.features}"
    record = {
        "selected": best, "inner_scores": fitted.inner_scores, "n_train": len(y),
        "n_zero_train": int((y == 0).sum()), "seconds": round(time.perf_counter() - t0, 2),
        "config": config.to_dict(),
    }  # fmt: skip
    p_zero = pd.Series(prob, index=pd.Index([str(i) for i in test_ids]))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(meta, record)
    with atomic_path(csv) as tmp:
        pd.DataFrame({"id": p_zero.index, "p_zero": p_zero.to_numpy()}).to_csv(tmp, index=False)
    log.info("%s fold %d: zero classifier %s (%.0f s)", task.name, fold, best, record["seconds"])
    return p_zero, record


def write_hurdle(
    results_dir: str | Path,
    part: BlendPart,
    tasks: Sequence[str],
    *,
    name: str | None = None,
    folds: Sequence[int] = (0, 1, 2, 3, 4),
    config: TreesConfig | None = None,
) -> list[dict]:
    """Write the hurdle over ``part`` on ``tasks`` as strategy ``name`` (default
    :func:`hurdle_label`) in ``results_dir``: per fold a prediction file (``prediction``, the
    part's ``before`` and the classifier's ``p_zero``), a record (``hurdle_of``, the classifier's
    choice, ``n_set_to_zero``) and benchmark rows whose ``seconds`` add the classifier's fit to
    the part's models' training. Folds where the part has no prediction, or the hurdle's own file
    exists, are skipped. Returns the rows written."""
    results_dir = Path(results_dir)
    name = name or hurdle_label(part)
    latest = latest_rows(read_benchmark_rows(results_dir / "benchmark.jsonl"))
    written: list[dict] = []
    for task, targets, fold in pending_folds(results_dir, name, tasks, folds):
        found = part_prediction(results_dir, part, task.name, fold)
        if found is None:
            log.warning("%s %s fold %d: the part's predictions are missing", name, task.name, fold)
            continue
        seeds, before, _ = found
        p_zero, classifier = zero_probabilities(results_dir, task.name, fold, config)
        p_zero = p_zero.loc[before.index]
        pred = apply_hurdle(before.to_numpy(), p_zero.to_numpy())
        y_test = targets.loc[before.index].to_numpy()
        scores = cell_scores(task.task_type, y_test, pred, CLF_THRESHOLD)  # regression: unused
        facts = training_facts(latest, part.strategy, task.name, fold, seeds)
        record = {
            "hurdle_of": {"strategy": part.strategy, "seeds": seeds},
            "n_members": len(seeds),
            "zero_probability": ZERO_PROBABILITY,
            "n_set_to_zero": int((p_zero.to_numpy() > ZERO_PROBABILITY).sum()),
            "zero_classifier": {k: classifier[k] for k in ("selected", "inner_scores", "config")},
        }
        frame = pd.DataFrame(
            {"id": before.index, "prediction": pred, "before": before.to_numpy(),
             "p_zero": p_zero.to_numpy()}
        )  # fmt: skip
        written += write_cell(
            results_dir, name, task.name, fold, 0, frame=frame, record=record, scores=scores,
            n_train=max((r["n_train"] for r in facts), default=classifier["n_train"]),
            epochs=max((r["epochs"] for r in facts), default=0),
            seconds=sum(r["seconds"] for r in facts) + classifier["seconds"],
        )  # fmt: skip
        log.info("%s %s fold %d: mae = %.4f", name, task.name, fold, scores["mae"])
    rebuild_results(
        results_dir, name,
        hyperparameters={
            "hurdle_of": part.spec or part.strategy, "zero_probability": ZERO_PROBABILITY,
            "zero_classifier": _settings((config or TreesConfig()).to_dict()),
        },
        algorithm_description="pretroost hurdle: per fold the test predictions of "
        f"{part.spec or part.strategy}, set to 0 where a tree classifier of target == 0 (fitted "
        "on the training fold, chosen by inner cross-validation) gives a probability above 0.5",
    )  # fmt: skip
    return written
