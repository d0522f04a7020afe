"""The shipped form of each ready model (:mod:`pretroost.ready`) scored on Matbench's official
folds: per fold the recipe is fitted on the training rows only (its uncertainty scale or decision
threshold from inner cross-validation of those rows) and scored on the test rows.

``pretroost ready score NAME [--results-dir results/ready]`` writes the cells like the bench's
(``<results_dir>/<name>/predictions/<task>/fold_k.csv`` with ``std``/``p_metal`` and
``in_domain`` columns, a record per fold, rows in ``benchmark.jsonl`` and the Matbench submission
``<name>/results.json.gz``); folds already done are skipped. :func:`summarise` then measures the
scores and the calibration of the uncertainty over the five test folds and writes
``ready.json`` and ``README.md`` there; in/out of domain
(:class:`~pretroost.domain.DomainIndex` fitted on each training fold) is recomputed there.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretroost.artefacts import load_skops
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.data.pbe_gap import fit_teacher, teacher_cache_file, teacher_info
from pretroost.domain import DomainIndex
from pretroost.hub import load
from pretroost.metrics import CLF_THRESHOLD, HEADLINE, PROB_ROCAUC
from pretroost.ready import DFT_COLUMNS, RECIPES, fit_ready, get_recipe, predict_ready
from pretroost.results import (
    cell_done,
    cell_scores,
    prediction_path,
    rebuild_results,
    validation_path,
    write_cell,
)
from pretroost.uncertainty import calibration_report
from pretroost.utils import atomic_write_json, atomic_write_text, git_sha

__all__ = ["calibration", "check_dft", "score_ready", "summarise", "teacher"]

log = logging.getLogger(__name__)

DEFAULT_DIR = "results/ready"


@functools.lru_cache(maxsize=1)
def teacher() -> Any:
    """The PBE band-gap teacher (:mod:`pretroost.data.pbe_gap`): the data cache's copy where one
    is there, else fitted here (deterministic: the same model), once per process; the cache is
    only read."""

    path = teacher_cache_file(teacher_info()["key"])
    return load_skops(path) if path.is_file() else fit_teacher()


def score_ready(
    name: str,
    *,
    results_dir: str | Path = DEFAULT_DIR,
    folds: Sequence[int] = (0, 1, 2, 3, 4),
    resume: bool = True,
) -> list[dict]:
    """Fit ready recipe ``name`` on each official training fold and score it on the test fold;
    returns the benchmark rows written."""
    recipe = get_recipe(name)
    if recipe.kind == "dft":
        raise ValueError(f"{name} is not trained on a Matbench task: nothing to score on folds")
    task = get_task(recipe.task)
    results_dir = Path(results_dir)
    df = load_task(task.name)
    official = load_folds(task.name)
    rows: list[dict] = []
    for k in folds:
        if resume and cell_done(results_dir, name, task.name, k, 0):
            log.info("%s fold %d: done, skipped", name, k)
            continue
        train_ids, test_ids = official[k]
        train, test = df.loc[train_ids], df.loc[test_ids]
        t0 = time.perf_counter()
        comps = parse_formulas(train["formula"].tolist(), source=task.name)
        y = train["target"].to_numpy(np.float64)
        fitted = fit_ready(recipe, comps, y, teacher=teacher() if recipe.uses_teacher else None)
        test_comps = parse_formulas(test["formula"].tolist(), source=task.name)
        out = predict_ready(fitted, test_comps)
        seconds = time.perf_counter() - t0
        domain = DomainIndex.fit(comps, y, train["formula"].tolist()).check(test_comps)
        clf = task.task_type == "classification"
        values = out["probability"] if clf else out["prediction"]
        scores = cell_scores(task.task_type, test["target"].to_numpy(), values, fitted.threshold)
        frame = pd.DataFrame({"id": test_ids, "prediction": values})
        for col in ("std", "p_metal"):
            if col in out:
                frame[col] = out[col]
        if fitted.threshold != CLF_THRESHOLD:
            frame["threshold"] = fitted.threshold
        frame["in_domain"] = domain["in_domain"].to_numpy()
        record = {
            "recipe": recipe.to_dict(), "scale": fitted.scale, "threshold": fitted.threshold,
            "inner": fitted.inner, "n_train": len(train_ids), "n_members": 1,
        }  # fmt: skip
        rows += write_cell(
            results_dir, name, task.name, k, 0, frame=frame, record=record, scores=scores,
            n_train=len(train_ids), epochs=0, seconds=seconds,
        )  # fmt: skip
        metric = HEADLINE[task.task_type]
        log.info("%s fold %d: %s = %.4f (%.0f s)", name, k, metric, scores[metric], seconds)
    rebuild_results(
        results_dir, name, hyperparameters=recipe.to_dict(),
        algorithm_description=f"pretroost ready model {name}: {recipe.why}",
    )  # fmt: skip
    return rows


def calibration(
    task_type: str, y: np.ndarray, frame: pd.DataFrame, threshold: float = CLF_THRESHOLD
) -> dict[str, float]:
    """Scores and calibration of pooled test predictions ``frame`` against truth ``y``.

    Regression: MAE and :func:`pretroost.uncertainty.calibration_report` of ``std`` (fractions
    of rows within ±1 and ±2 ``std``, a Normal giving 0.683 and 0.954, the Spearman correlation
    of |error| with ``std``, the miscalibration area); the hurdle adds the accuracy of
    ``p_metal > 0.5`` as "gap = 0". Classification: ROC-AUC of the probabilities, balanced
    accuracy of the labels, Brier score and expected calibration error (10 bins).
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    pred = frame["prediction"].to_numpy(np.float64)
    if task_type == "classification":
        truth = y.astype(bool)
        report = calibration_report(truth.astype(float), prob=pred)
        return {
            "rocauc": float(roc_auc_score(truth, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(truth, pred > threshold)),
            "brier": float(report["brier"]),
            "ece": float(report["ece"]),
        }
    std = np.maximum(frame["std"].to_numpy(np.float64), np.finfo(np.float64).tiny)
    report = calibration_report(y, pred=pred, std=std)
    keys = ("coverage_1sigma", "coverage_2sigma", "spearman_abs_error_std", "miscalibration_area")
    out = {"mae": float(np.mean(np.abs(pred - y))), **{k: float(report[k]) for k in keys}}
    if "p_metal" in frame:
        metal = frame["p_metal"].to_numpy(np.float64) > 0.5
        out["accuracy_zero_vs_nonzero"] = float(np.mean(metal == (y == 0)))
    return out


def summarise(results_dir: str | Path = DEFAULT_DIR, names: Sequence[str] = ()) -> dict:
    """Per ready model with folds done (all five, unless a run was cut short: ``fold_ids``): the
    per-fold headline scores, their mean, and
    :func:`calibration` over the pooled test folds (all rows, and in/out of domain); written to
    ``<results_dir>/ready.json`` and ``README.md``. Returns the summary."""
    results_dir = Path(results_dir)
    summary: dict[str, Any] = {}
    for name in names or [n for n, r in RECIPES.items() if r.kind != "dft"]:
        recipe = get_recipe(name)
        task = get_task(recipe.task)
        files = {k: prediction_path(results_dir, name, task.name, k, 0) for k in range(5)}
        files = {k: f for k, f in files.items() if f.is_file()}
        if not files:
            log.info("%s: no fold scored yet", name)
            continue
        df = load_task(task.name)
        official = load_folds(task.name)
        frames, fold_scores, records = [], [], []
        for k, f in files.items():
            frame = pd.read_csv(f, dtype={"id": str})
            train = df.loc[official[k][0]]
            index = DomainIndex.fit(
                parse_formulas(train["formula"].tolist()),
                train["target"].to_numpy(),
                train["formula"].tolist(),
            )
            test_comps = parse_formulas(df.loc[frame["id"], "formula"].tolist())
            frame["in_domain"] = index.neighbours(test_comps).in_domain  # fmt: skip
            record = json.loads(validation_path(results_dir, name, task.name, k, 0).read_text())
            y = df.loc[frame["id"], "target"].to_numpy(np.float64)
            scores = cell_scores(task.task_type, y, frame["prediction"].to_numpy(),
                                 float(record["threshold"]))  # fmt: skip
            fold_scores.append(scores)
            frame["target"] = y
            frames.append(frame)
            records.append(record)
        pooled = pd.concat(frames, ignore_index=True)
        y = pooled["target"].to_numpy()
        thr = float(np.mean([r["threshold"] for r in records]))
        metric = HEADLINE[task.task_type]
        domain = pooled["in_domain"].astype(bool).to_numpy()
        entry: dict[str, Any] = {
            "task": task.name, "metric": metric, "fold_ids": list(files),
            "folds": [s[metric] for s in fold_scores],
            "mean": float(np.mean([s[metric] for s in fold_scores])),
            "calibration": calibration(task.task_type, y, pooled, thr),
            "in_domain_fraction": float(domain.mean()),
            "scale": [r["scale"] for r in records], "threshold": [r["threshold"] for r in records],
            "recorded": recipe.recorded,
        }  # fmt: skip
        if task.task_type == "classification":
            entry["rocauc_prob_mean"] = float(np.mean([s[PROB_ROCAUC] for s in fold_scores]))
        for part, mask in (("in_domain", domain), ("out_of_domain", ~domain)):
            if mask.sum() >= 20 and (task.task_type == "regression" or len(set(y[mask])) == 2):
                entry[part] = calibration(task.task_type, y[mask],
                                          pooled[mask].reset_index(drop=True), thr)  # fmt: skip
        summary[name] = entry
    old = results_dir / "ready.json"
    before = json.loads(old.read_text()) if old.is_file() else {}
    merged = {**before.get("models", {}), **summary}
    report = {**before, "git_sha": git_sha(), "models": merged}
    atomic_write_json(old, report)
    atomic_write_text(results_dir / "README.md", _table(merged))
    return report


#: oqmd-dft's OQMD property -> the Matbench task of Materials Project PBE values to compare with
DFT_CHECKS: dict[str, str] = {
    "Bandgap": "matbench_mp_gap",
    "Formation_Enthalpy": "matbench_mp_e_form",
}


def check_dft(results_dir: str | Path = DEFAULT_DIR, *, n: int = 5000, seed: int = 0) -> dict:
    """oqmd-dft against Materials Project PBE values: for ``n`` random rows of Matbench
    ``mp_gap`` and ``mp_e_form`` (their compositions are not in dft-oqmd's pretraining corpus,
    which had every Matbench composition removed), the MAE of the band-gap and formation-enthalpy
    heads, and that of predicting the mean. OQMD and Materials Project differ in their own
    settings (reference energies, +U), so this bounds the heads' error from above. Written to
    ``ready.json`` under ``oqmd_dft_check``."""

    model = load("oqmd-dft")
    out: dict[str, Any] = {"n": n, "seed": seed}
    for prop, task in DFT_CHECKS.items():
        df = load_task(task)
        rows = df.iloc[np.sort(np.random.default_rng(seed).choice(len(df), n, replace=False))]
        pred = model.predict(rows["formula"].tolist())[DFT_COLUMNS[prop][0]].to_numpy()
        y = rows["target"].to_numpy(np.float64)
        ok = np.isfinite(pred)
        out[prop] = {
            "task": task, "n_predicted": int(ok.sum()),
            "mae": float(np.mean(np.abs(pred[ok] - y[ok]))),
            "mae_of_the_mean": float(np.mean(np.abs(y[ok] - y[ok].mean()))),
        }  # fmt: skip
        log.info("oqmd-dft %s vs %s: MAE %.3f", prop, task, out[prop]["mae"])
    path = Path(results_dir) / "ready.json"
    report = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    report["oqmd_dft_check"] = out
    atomic_write_json(path, report)
    return out


def _table(models: dict[str, Any]) -> str:
    lines = [
        "# Ready models: the shipped forms on Matbench's official folds",
        "",
        "Generated by `pretroost ready score NAME` (`pretroost.experiment.ready_scores`) from the",
        "cells in this folder; each fold fitted on its training rows only. Regression: the",
        "fraction of test rows within ±1σ / ±2σ of the prediction (a Normal: 0.683 / 0.954) and",
        "the Spearman correlation of |error| with σ; classification: Brier score and expected",
        "calibration error (10 bins) of the probabilities. 'in domain': the share of test rows",
        "that `pretroost.domain` fitted on the training fold calls in domain.",
        "",
        "| model | task | metric | mean (5 folds) | recorded recipe | ±1σ | ±2σ | Spearman "
        "|err|–σ | Brier | ECE | in domain |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in models.items():
        c = e["calibration"]

        def f(key: str, c: dict = c) -> str:
            return f"{c[key]:.3f}" if key in c else "–"

        n = len(e["folds"])
        mean = f"{e['mean']:.4g}" + ("" if n == 5 else f" ({n} of 5 folds)")
        lines.append(
            f"| {name} | {e['task']} | {e['metric']} | {mean} | {e['recorded']} | "
            f"{f('coverage_1sigma')} | {f('coverage_2sigma')} | {f('spearman_abs_error_std')} | "
            f"{f('brier')} | {f('ece')} | {e['in_domain_fraction']:.1%} |"
        )
    return "\n".join(lines) + "\n"
