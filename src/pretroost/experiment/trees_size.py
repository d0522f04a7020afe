"""What capping the trees of a saved forest costs: inner cross-validated MAE against file size.

An unpruned forest of extremely randomised trees keeps about one leaf per training row in each
tree, so a model saved by ``pretroost trees --out`` grows with rows × trees (293 MB for 500 trees
on 4,160 rows). :func:`measure_trees_size` fits, on the training rows of one official Matbench
fold only (never its test rows), the candidate the Matbench runs pick on that fold with each
cap (``min_samples_leaf``, or ``max_leaf_nodes``), scores it by ``inner_folds``-fold cross-validation on those rows, and
saves the forest fitted on all of them with skops to read the file's size. Forests of fewer trees
are the first ``k`` trees of the largest one: scikit-learn seeds tree ``i`` of a forest from the
``i``-th draw of its random state, so they are exactly the forests of ``k`` trees, one fit giving
every ``n_estimators``. The result table (:func:`format_table`) goes to results/trees_size.md and
the numbers to results/trees_size.json (``pretroost trees-size``).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pretroost.artefacts import load_skops
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.trees import TreesConfig, composition_features, tree_estimator
from pretroost.utils import git_sha

__all__ = ["CANDIDATES", "format_table", "measure_trees_size"]

log = logging.getLogger(__name__)

#: the candidate the Matbench runs pick on fold 0 of each task (``selected`` in
#: results/converged/trees/predictions/<task>/fold_0.json)
CANDIDATES: dict[str, tuple[str, str]] = {
    "matbench_steels": ("extratrees", "fractions"),
    "matbench_expt_gap": ("extratrees", "fractions+magpie"),
}


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
    ``min_samples_leaf`` 1) and ``n_estimators``: the inner cross-validated MAE on
    official fold ``fold``'s training rows, its difference from the unpruned forest of the most
    trees (mean and standard error of the per-inner-fold differences) and the size of the skops
    file of the forest fitted on all those rows (stored and deflated) and the CPU seconds to
    load it. Regression tasks with an extra-trees or random-forest candidate only."""
    from sklearn.model_selection import KFold

    grid_trees = sorted(set(n_estimators))
    most = grid_trees[-1]
    caps: list[tuple[int, int | None]] = [(1, None)]  # the reference: unpruned
    caps += [(m, None) for m in sorted(set(min_samples_leaf)) if m != 1]
    caps += [(1, n) for n in sorted(set(max_leaf_nodes))]
    out: dict[str, Any] = {"tasks": {}}
    for name in tasks:
        task = get_task(name)
        if task.name not in CANDIDATES or task.task_type != "regression":
            raise ValueError(f"no size benchmark for {task.name}; valid: {', '.join(CANDIDATES)}")
        model, feats = CANDIDATES[task.name]
        df = load_task(task.name)
        train = df.loc[load_folds(task.name)[fold][0]]
        x = composition_features(parse_formulas(train["formula"].tolist(), source=task.name), feats)
        y = train["target"].to_numpy(dtype=np.float64)
        splits = list(KFold(inner_folds, shuffle=True, random_state=seed).split(x))
        rows: list[dict[str, Any]] = []
        # (min_samples_leaf, max_leaf_nodes, trees) -> per-inner-fold MAE
        errors: dict[tuple[int, int | None, int], np.ndarray] = {}
        for leaf, nodes in caps:
            config = TreesConfig(
                models=(model,), features=(feats,), n_estimators=most, seed=seed,
                n_jobs=n_jobs, min_samples_leaf=leaf, max_leaf_nodes=nodes,
            )  # fmt: skip
            t0 = time.perf_counter()
            per_tree = []
            for tr, va in splits:
                est = tree_estimator(model, task.task_type, config).fit(x[tr], y[tr])
                per_tree.append(np.stack([t.predict(x[va]) for t in est.estimators_]))
            full = tree_estimator(model, task.task_type, config).fit(x, y)
            seconds = time.perf_counter() - t0
            for k in grid_trees:
                errors[leaf, nodes, k] = np.array(
                    [np.mean(np.abs(p[:k].mean(axis=0) - y[va]))
                     for p, (_, va) in zip(per_tree, splits, strict=True)]
                )  # fmt: skip
                forest = _truncated(full, k)
                stored, load_stored = _file_size(forest, zipfile.ZIP_STORED)
                deflated, load_deflated = _file_size(forest, zipfile.ZIP_DEFLATED)
                rows.append({
                    "min_samples_leaf": leaf, "max_leaf_nodes": nodes, "n_estimators": k,
                    "inner_mae": float(errors[leaf, nodes, k].mean()),
                    "size_bytes": stored, "size_bytes_deflated": deflated,
                    "load_seconds": load_stored, "load_seconds_deflated": load_deflated,
                    "leaves_per_tree": float(np.mean([t.get_n_leaves() for t in forest.estimators_])),
                })  # fmt: skip
            log.info(
                "%s min_samples_leaf %d, max_leaf_nodes %s: %d inner fits + 1 of %d trees in %.0f s",
                task.name, leaf, nodes, inner_folds, most, seconds,
            )  # fmt: skip
        reference = errors[1, None, most]
        for row in rows:
            diff = errors[row["min_samples_leaf"], row["max_leaf_nodes"], row["n_estimators"]]
            diff = diff - reference
            row["delta_mae"] = float(diff.mean())
            row["delta_mae_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
        out["tasks"][task.name] = {
            "model": model, "features": feats, "fold": fold, "n_train": len(y),
            "inner_folds": inner_folds, "seed": seed, "rows": rows,
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
        "# Capping a saved forest: inner cross-validated MAE vs size on disk",
        "",
        f"`{command}` at commit {doc['git_sha']}, {doc['date']}, {doc['machine']}; scikit-learn "
        f"{doc['sklearn_version']}, skops {doc['skops_version']} (`pretroost.experiment.trees_size`).",
        "",
        "Only the training rows of the official fold are read. MAE: mean over the inner folds; "
        "ΔMAE: against the unpruned forest of the most trees, mean ± standard error of the "
        "per-inner-fold differences. Size: the skops file of the forest fitted on all those rows "
        "(stored; deflated, as `save_trees` writes it, in brackets) and the CPU seconds to load it "
        "(deflated).",
    ]
    for name, t in doc["tasks"].items():
        lines += [
            "",
            f"## {name}: {t['model']}/{t['features']}, fold {t['fold']} training rows "
            f"({t['n_train']}), {t['inner_folds']} inner folds",
            "",
            "| min_samples_leaf | max_leaf_nodes | trees | leaves/tree | inner MAE | ΔMAE "
            "| size MB (deflated) | load CPU s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in t["rows"]:
            lines.append(
                f"| {r['min_samples_leaf']} | {r['max_leaf_nodes'] or '-'} | {r['n_estimators']} | "
                f"{r['leaves_per_tree']:.0f} | "
                f"{r['inner_mae']:.4g} | {r['delta_mae']:+.3g} ± {r['delta_mae_se']:.2g} | "
                f"{r['size_bytes'] / 1e6:.1f} ({r['size_bytes_deflated'] / 1e6:.1f}) | "
                f"{r['load_seconds_deflated']:.2f} |"
            )
    return "\n".join(lines) + "\n"
