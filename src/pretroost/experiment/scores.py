"""Per-fold scores of a benchmark: the headline table (seed-averaged per fold) and paired tests.

The numbers every table and plot of :mod:`pretroost.experiment.report` is made from.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from pretroost.data.matbench import get_task
from pretroost.experiment.stats import corrected_paired_t
from pretroost.metrics import HEADLINE

__all__ = [
    "best_strategy",
    "folds_better",
    "headline_table",
    "latest_rows",
    "lower_is_better",
    "paired_test",
]


def latest_rows(rows: list[dict]) -> dict[tuple[str, str, int, int, str], dict]:
    """The last row written for each (strategy, task, fold, seed, metric)."""
    out: dict[tuple[str, str, int, int, str], dict] = {}
    for r in rows:
        out[(r["strategy"], r["task"], int(r["fold"]), int(r.get("seed", 0)), r["metric"])] = r
    return out


def headline_table(rows: list[dict], metric: str | None = None) -> dict[str, dict[str, dict]]:
    """task -> strategy -> {"folds": {fold: value}, "mean", "std", "metric", "seconds", "epochs",
    "seeds": {fold: [value per seed]}}, of each task's headline metric (or of ``metric``, for the
    tasks that record it, e.g. ``"rocauc_prob"``).

    A fold's value is the mean over the seeds run on it, so strategies are compared fold by fold
    (paired) on their seed-averaged scores; ``std`` is over folds."""
    latest = latest_rows(rows)
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for (strategy, task, fold, _seed, name), r in sorted(latest.items()):
        if name != (metric or HEADLINE[get_task(task).task_type]):
            continue
        cell = table[task].setdefault(
            strategy, {"folds": {}, "seeds": {}, "metric": name, "seconds": 0.0}
        )
        cell["seeds"].setdefault(fold, []).append(r["value"])
        cell["seconds"] += r["seconds"]
        cell["epochs"] = r["epochs"]
        cell["n_train"] = r["n_train"]
    for cells in table.values():
        for cell in cells.values():
            cell["folds"] = {k: float(np.mean(v)) for k, v in cell["seeds"].items()}
            v = np.array(list(cell["folds"].values()))
            cell["mean"], cell["std"] = float(v.mean()), float(v.std())
    return table


def paired_test(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    """Paired comparison of per-fold scores ``a`` (strategy) vs ``b`` (baseline) on their common
    folds: mean difference a - b, its 95 % t confidence interval, and the two-sided paired t-test
    (``p_t``), the same t with Nadeau and Bengio's variance correction for the overlap of the
    folds' training sets (``p_corrected``, :func:`~pretroost.experiment.stats.corrected_paired_t`)
    and the Wilcoxon signed-rank p-values (with 5 folds Wilcoxon cannot go below 0.0625). None with
    fewer than 3 common folds."""
    from scipy import stats

    common = sorted(set(a) & set(b))
    if len(common) < 3:
        return None
    d = np.array([a[k] - b[k] for k in common])
    n, mean = len(d), float(d.mean())
    sem = float(d.std(ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.975, n - 1) * sem)
    p_t = float(stats.ttest_rel([a[k] for k in common], [b[k] for k in common]).pvalue)
    p_w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    p_c = corrected_paired_t(d)["p_corrected"]
    return {
        "n": n,
        "mean_diff": mean,
        "ci95": [mean - half, mean + half],
        "p_t": p_t if np.isfinite(p_t) else 1.0,
        "p_corrected": p_c if np.isfinite(p_t) else 1.0,
        "p_wilcoxon": p_w,
    }


def lower_is_better(task: str) -> bool:
    """Whether ``task``'s headline metric is an error (MAE) rather than a score (ROC-AUC)."""
    return HEADLINE[get_task(task).task_type] != "rocauc"


def best_strategy(task: str, cells: dict[str, dict]) -> str:
    """The strategy of ``cells`` (one task's :func:`headline_table` entry) with the best mean:
    the lowest error, or the highest ROC-AUC."""
    sign = 1 if lower_is_better(task) else -1
    return min(cells, key=lambda s: sign * cells[s]["mean"])


def folds_better(
    a: dict[int, float], b: dict[int, float], *, lower_better: bool
) -> tuple[int, int]:
    """(on how many of their common folds ``a`` beats ``b``, how many common folds)."""
    common = set(a) & set(b)
    wins = sum((a[k] < b[k]) if lower_better else (a[k] > b[k]) for k in common)
    return wins, len(common)
