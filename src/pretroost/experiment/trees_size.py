"""What capping the trees of a saved model costs: inner cross-validated error against file size.

An unpruned forest of extremely randomised trees keeps about one leaf per training row in each
tree, so a model saved by ``pretroost trees --out`` grows with rows × trees (293 MB for 500 trees
on 4,160 rows). :func:`measure_trees_size` fits, on the training rows of one official Matbench
fold only (never its test rows), the candidate the Matbench runs pick on that fold with each
cap (``min_samples_leaf``, or ``max_leaf_nodes``; forests only), scores it by ``inner_folds``-fold
cross-validation on those rows (MAE; classification: 1 − ROC AUC of the probabilities, the error
``pretroost fit`` compares), and saves the model fitted on all of them with skops to read the
file's size. Forests of fewer trees are the first ``k`` trees of the largest one: scikit-learn
seeds tree ``i`` of a forest from the ``i``-th draw of its random state, so they are exactly the
forests of ``k`` trees, one fit giving every ``n_estimators``. Gradient boosting of fewer
iterations is the same model stopped early (its staged predictions), a different model rather
than a smaller average: its ``n_estimators`` rows are boosting iterations. The result table
(:func:`format_table`) goes to results/trees_size.md and the numbers to results/trees_size.json
(``pretroost trees-size``).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pretroost.artefacts import load_skops
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.metrics import probability_rocauc
from pretroost.trees import TreesConfig, composition_features, tree_estimator
from pretroost.utils import git_sha

__all__ = ["CANDIDATES", "format_table", "measure_trees_size"]

log = logging.getLogger(__name__)

#: the candidate the Matbench runs pick on fold 0 of each task (``selected`` in
#: results/converged/trees/predictions/<task>/fold_0.json)
CANDIDATES: dict[str, tuple[str, str]] = {
    "matbench_steels": ("extratrees", "fractions"),
    "matbench_expt_gap": ("extratrees", "fractions+magpie"),
    "matbench_expt_is_metal": ("gradientboosting", "fractions+magpie"),
    "matbench_glass": ("gradientboosting", "fractions+magpie"),
}
#: the inner error per task type (lower is better)
ERRORS = {"regression": "MAE", "classification": "1 - ROC AUC"}


def _file_size(estimator: Any, compression: int) -> tuple[int, float]:
    """Bytes of ``estimator``'s skops file and CPU seconds to load it (checked, as models are)."""
    import skops.io

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        skops.io.dump(estimator, path, compression=compression)
        t0 = time.process_time()  # CPU seconds: the machine may be shared
        load_skops(path)
        return path.stat().st_size, time.process_time() - t0


def _truncated(estimator: Any, k: int) -> Any:
    """The forest of the first ``k`` trees of ``estimator`` (a shallow copy)."""
    from copy import copy

    out = copy(estimator)
    out.estimators_ = estimator.estimators_[:k]
    out.n_estimators = k
    return out


def _staged(estimator: Any, x: np.ndarray, clf: bool, counts: Sequence[int]) -> dict[int, Any]:
    """``{k: predictions of the model of k trees or iterations}`` (classification: the
    probability of class 1): a forest's first ``k`` trees averaged, boosting's stage ``k``."""
    if hasattr(estimator, "estimators_"):  # a forest: every tree predicts, averaged per k
        per_tree = np.stack([
            t.predict_proba(x)[:, list(t.classes_).index(1)] if clf else t.predict(x)
            for t in estimator.estimators_
        ])  # fmt: skip
        return {k: per_tree[:k].mean(axis=0) for k in counts}
    stages = estimator.staged_predict_proba(x) if clf else estimator.staged_predict(x)
    wanted, out = set(counts), {}
    for i, p in enumerate(stages, 1):
        if i in wanted:
            out[i] = p[:, list(estimator.classes_).index(1)] if clf else p
    return out


def _error(y: np.ndarray, pred: np.ndarray, clf: bool) -> float:
    """MAE, or 1 − ROC AUC of the probabilities for classification."""
    if clf:
        return 1.0 - probability_rocauc(y, pred)
    return float(np.mean(np.abs(pred - y)))


def measure_trees_size(
    tasks: Sequence[str] = tuple(CANDIDATES),
    *,
    fold: int = 0,
    min_samples_leaf: Sequence[int] = (1, 2),
    max_leaf_nodes: Sequence[int] = (512, 1024),
    n_estimators: Sequence[int] = (100, 200, 500),
    inner_folds: int = 5,
    seed: int = 0,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Per task and cap (each ``min_samples_leaf`` unlimited leaves, each ``max_leaf_nodes`` with
    ``min_samples_leaf`` 1; forests only, gradient boosting has no caps here) and ``n_estimators``
    (trees, or boosting iterations): the inner cross-validated error (:data:`ERRORS`) on official
    fold ``fold``'s training rows, its difference from the uncapped model of the most trees (mean
    and standard error of the per-inner-fold differences) and the size of the skops file of the
    model fitted on all those rows (stored and deflated) and the CPU seconds to load it. Tasks of
    :data:`CANDIDATES` only."""
    from sklearn.model_selection import KFold, StratifiedKFold

    grid_trees = sorted(set(n_estimators))
    most = grid_trees[-1]
    forest_caps: list[tuple[int, int | None]] = [(1, None)]  # the reference: unpruned
    forest_caps += [(m, None) for m in sorted(set(min_samples_leaf)) if m != 1]
    forest_caps += [(1, n) for n in sorted(set(max_leaf_nodes))]
    out: dict[str, Any] = {"tasks": {}}
    for name in tasks:
        task = get_task(name)
        if task.name not in CANDIDATES:
            raise ValueError(f"no size benchmark for {task.name}; valid: {', '.join(CANDIDATES)}")
        model, feats = CANDIDATES[task.name]
        clf = task.task_type == "classification"
        boosting = model == "gradientboosting"
        caps = [(1, None)] if boosting else forest_caps
        df = load_task(task.name)
        train = df.loc[load_folds(task.name)[fold][0]]
        x = composition_features(parse_formulas(train["formula"].tolist(), source=task.name), feats)
        y = train["target"].to_numpy(dtype=np.float64)
        splitter = (StratifiedKFold if clf else KFold)(inner_folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(x, y))
        rows: list[dict[str, Any]] = []
        # (min_samples_leaf, max_leaf_nodes, trees) -> per-inner-fold error
        errors: dict[tuple[int, int | None, int], np.ndarray] = {}
        for leaf, nodes in caps:
            config = TreesConfig(
                models=(model,), features=(feats,), n_estimators=most, seed=seed,
                n_jobs=n_jobs, min_samples_leaf=leaf, max_leaf_nodes=nodes,
            )  # fmt: skip
            t0 = time.perf_counter()
            staged = []
            for tr, va in splits:
                est = tree_estimator(model, task.task_type, config).fit(x[tr], y[tr])
                staged.append(_staged(est, x[va], clf, grid_trees))
            full = tree_estimator(model, task.task_type, config).fit(x, y)
            seconds = time.perf_counter() - t0
            for k in grid_trees:
                errors[leaf, nodes, k] = np.array(
                    [_error(y[va], p[k], clf) for p, (_, va) in zip(staged, splits, strict=True)]
                )
                leaves: float | None = None  # boosting: scikit-learn's cap, at most 31 per tree
                if boosting:  # the model of k iterations, fitted on all rows, for its size
                    small = replace(config, n_estimators=k)
                    model_k = full if k == most else tree_estimator(
                        model, task.task_type, small).fit(x, y)  # fmt: skip
                else:
                    model_k = _truncated(full, k)
                    leaves = float(np.mean([t.get_n_leaves() for t in model_k.estimators_]))
                stored, load_stored = _file_size(model_k, zipfile.ZIP_STORED)
                deflated, load_deflated = _file_size(model_k, zipfile.ZIP_DEFLATED)
                rows.append({
                    "min_samples_leaf": leaf, "max_leaf_nodes": nodes, "n_estimators": k,
                    "inner_error": float(errors[leaf, nodes, k].mean()),
                    "size_bytes": stored, "size_bytes_deflated": deflated,
                    "load_seconds": load_stored, "load_seconds_deflated": load_deflated,
                    "leaves_per_tree": leaves,
                })  # fmt: skip
            log.info(
                "%s min_samples_leaf %d, max_leaf_nodes %s: %d inner fits + 1 of %d in %.0f s",
                task.name, leaf, nodes, inner_folds, most, seconds,
            )  # fmt: skip
        reference = errors[1, None, most]
        for row in rows:
            diff = errors[row["min_samples_leaf"], row["max_leaf_nodes"], row["n_estimators"]]
            diff = diff - reference
            row["delta_error"] = float(diff.mean())
            row["delta_error_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
        out["tasks"][task.name] = {
            "model": model, "features": feats, "error": ERRORS[task.task_type], "fold": fold,
            "n_train": len(y), "inner_folds": inner_folds, "seed": seed, "rows": rows,
        }  # fmt: skip
    import sklearn
    import skops

    out.update(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), git_sha=git_sha(),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs", sklearn_version=sklearn.__version__,
        skops_version=skops.__version__,
    )  # fmt: skip
    return out


def format_table(doc: dict[str, Any], command: str) -> str:
    """results/trees_size.md: one table per task."""
    lines = [
        "# Capping a saved trees model: inner cross-validated error vs size on disk",
        "",
        f"`{command}` at commit {doc['git_sha']}, {doc['date']}, {doc['machine']}; scikit-learn "
        f"{doc['sklearn_version']}, skops {doc['skops_version']} (`pretroost.experiment.trees_size`).",
        "",
        "Only the training rows of the official fold are read. Error: MAE, or 1 − ROC AUC for "
        "classification, mean over the inner folds; Δ: against the uncapped model of the most "
        "trees (iterations, for gradient boosting), mean ± standard error of the per-inner-fold "
        "differences. Size: the skops file of the model fitted on all those rows (stored; "
        "deflated, as `save_trees` writes it, in brackets) and the CPU seconds to load it "
        "(deflated).",
    ]
    for name, t in doc["tasks"].items():
        boosting = t["model"] == "gradientboosting"
        error = t.get("error", "MAE")
        lines += [
            "",
            f"## {name}: {t['model']}/{t['features']}, fold {t['fold']} training rows "
            f"({t['n_train']}), {t['inner_folds']} inner folds",
            "",
            f"| min_samples_leaf | max_leaf_nodes | {'iterations' if boosting else 'trees'} | "
            f"leaves/tree | inner {error} | Δ | size MB (deflated) | load CPU s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in t["rows"]:
            leaf = "-" if boosting else r["min_samples_leaf"]
            leaves = "≤ 31" if r["leaves_per_tree"] is None else f"{r['leaves_per_tree']:.0f}"
            lines.append(
                f"| {leaf} | {r['max_leaf_nodes'] or '-'} | {r['n_estimators']} | {leaves} | "
                f"{r['inner_error']:.4g} | {r['delta_error']:+.3g} ± {r['delta_error_se']:.2g} | "
                f"{r['size_bytes'] / 1e6:.1f} ({r['size_bytes_deflated'] / 1e6:.1f}) | "
                f"{r['load_seconds_deflated']:.2f} |"
            )
    return "\n".join(lines) + "\n"
