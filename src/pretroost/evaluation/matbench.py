"""Roost's Matbench runner: train on each official training fold, score on its test fold; cells go
to the results store (:mod:`pretroost.results`: paths, cells, rows, submission files).

Per (strategy, task, fold) the test predictions are kept as a CSV, so a run can be resumed cell by
cell, and the strategy's Matbench-format ``results.json.gz`` is rebuilt from whatever folds exist.
Each fold also appends one row per metric to ``results/benchmark.jsonl``.

Classification: the stored ``prediction`` is the probability of class 1. Matbench scores labels
``p > 0.5``; a model whose decision threshold was chosen on validation
(``FinetuneConfig.threshold``) is scored with labels ``p > threshold`` instead, and its CSV carries
the threshold (column ``threshold``), so that ``results.json.gz`` holds those labels. Beside
Matbench's metrics each fold gets ``rocauc_prob``, the ROC AUC of the probabilities.

Beside each CSV, ``fold_<k>[_seed<s>].json`` records the cell's model selection on the validation
split of its training fold (:func:`validation_path`): ``best_val`` (lower is better), ``val_metric``
(``normalised_mae`` for regression, ``val_loss`` for classification), ``n_val``, ``best_epoch``,
``n_members``; a deep-ensemble cell (``n_members`` > 1) also its members' ``member_best_val``,
``member_best_epoch`` and test scores ``member_scores`` (N = 1 vs N = N in the same cell). The
validation rows depend only on the fold's training rows, the seed and ``val_fraction``
(:func:`pretroost.finetune.validation_split`), so every strategy of one (task, fold, seed) is
selected on the same rows; :func:`select_strategy` picks among strategies per fold by that score.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.finetune import FinetuneConfig
from pretroost.folds import SEED_STRIDE, matbench_splits, run_splits, training_subset
from pretroost.metrics import CLF_THRESHOLD
from pretroost.models.roost import TaskType
from pretroost.results import (
    append_benchmark_rows,
    cell_done,
    cell_scores,
    folds_to_run,
    prediction_path,
    read_benchmark_rows,
    rebuild_results,
    strategy_cells,
    strategy_dir,
    strategy_folder,
    validation_path,
    write_cell,
)
from pretroost.strategy_names import selection_label
from pretroost.utils import atomic_path, atomic_write_json

__all__ = [
    "SEED_STRIDE",
    "rethreshold_cells",
    "run_matbench_task",
    "select_strategy",
    "selection_label",
    "training_subset",
]

log = logging.getLogger(__name__)


def _validation_record(fitted: Any, result: Any, task_type: TaskType) -> dict[str, Any]:
    """The sidecar of one cell (see the module docstring); member test scores for ensembles."""
    info = fitted.info
    members = getattr(fitted, "members", None)
    record: dict[str, Any] = {
        "best_val": info.get("best_val"),
        "val_metric": info.get("val_metric"),
        "n_val": info.get("n_val"),
        "best_epoch": None if members else info.get("best_epoch"),
        "n_members": len(members) if members else 1,
    }
    if "thresholds" in info:  # classification: every rule's threshold, for rethreshold_cells
        record["thresholds"] = info["thresholds"]
    if members:
        record["member_best_val"] = [m.info.get("best_val") for m in members]
        record["member_best_epoch"] = [m.info.get("best_epoch") for m in members]
        key = "prob" if task_type == "classification" else "mean"
        data = CompositionDataset(result.test_comps)
        record["member_scores"] = [
            cell_scores(
                task_type, result.test_y[:, 0], m.predict_dataset(data)[key][:, 0], m.threshold
            )
            for m in members
        ]
    return record


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
    n_members: int = 1,
    member_split: str = "same",
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
        n_members: > 1 trains a deep ensemble per fold (members seeded ``s, s + 1, ...``) and
            scores its mean prediction.
        member_split: the members' validation splits (:mod:`pretroost.ensemble`); ``"same"``: the
            cell's own split for all, so the ensemble is selected on the rows every single model
            of the fold is, and member 0 is the single model.

    Returns:
        The benchmark rows written (one per metric and fold).
    """
    task = get_task(task_name)
    results_dir = Path(results_dir)
    df = load_task(task.name, source=source)
    comps = parse_formulas(df["formula"].tolist(), source=task.name)
    official = load_folds(task.name)
    todo = folds_to_run(
        results_dir, strategy, task.name, folds, len(official), seed=seed, resume=resume
    )
    splits = matbench_splits(
        df.index, official, todo, fraction=fraction, base_seed=config.train.seed, repeat=seed
    )
    names = [f"{strategy}/{task.name}/fold{k}" + (f"/seed{seed}" if seed else "") for k in todo]
    y = df["target"].to_numpy()
    rows: list[dict] = []
    for result in run_splits(
        comps, y, task.task_type, splits, config, progress=progress, name=names,
        n_members=n_members, member_split=member_split,
    ):  # fmt: skip
        k, fitted, pred = result.split.index, result.fitted, result.pred
        test_ids = official[k][1]
        y_test = result.test_y[:, 0]
        values = pred["prob"][:, 0] if task.task_type == "classification" else pred["mean"][:, 0]
        threshold = fitted.threshold  # Matbench scores labels: the model's threshold
        scores = cell_scores(task.task_type, y_test, values, threshold)
        frame = pd.DataFrame({"id": test_ids, "prediction": values})
        if task.task_type == "classification" and threshold != CLF_THRESHOLD:
            frame["threshold"] = threshold
        if "std" in pred:
            frame["std"] = pred["std"][:, 0]
        n_train, seconds = len(result.split.train), result.seconds
        members = getattr(fitted, "members", [fitted])
        fold_rows = write_cell(
            results_dir, strategy, task.name, k, seed,
            frame=frame, record=_validation_record(fitted, result, task.task_type), scores=scores,
            n_train=n_train, epochs=max(int(m.info["epochs_run"]) for m in members),
            seconds=seconds,
        )  # fmt: skip
        if save_models is not None:
            fitted.info["task"] = task.name
            fitted.save(
                Path(save_models) / (f"{task.name}_fold{k}" + (f"_seed{seed}" if seed else ""))
            )
        rows += fold_rows
        headline = "mae" if task.task_type == "regression" else "rocauc"
        log.info(
            "%s %s fold %d: %s = %.4f (%d train, %.0f s)",
            strategy, task.name, k, headline, scores[headline], n_train, seconds,
        )  # fmt: skip
    rebuild_results(results_dir, strategy, hyperparameters=config.to_dict())
    return rows


def rethreshold_cells(
    results_dir: str | Path,
    base: str,
    strategy: str,
    task_name: str,
    rule: str,
    *,
    folds: Sequence[int] = (0, 1, 2, 3, 4),
    seed: int = 0,
) -> list[int]:
    """Write ``strategy``'s cells of a classification task from ``base``'s, without training:
    the same model and probabilities, labelled at the threshold that ``base``'s validation record
    holds for ``rule`` (``FinetuneConfig.threshold``; records written since the thresholds were
    stored). For a variant that only moves the threshold (``+valthreshold``), training again
    would reproduce ``base``'s model. The benchmark rows keep the base cell's model facts
    (``n_train``, ``epochs``, ``seconds``, ``git_sha``, ``machine``); the validation record says
    ``derived_from``. Folds whose base cell, its rows or its threshold are missing, or whose own
    cell exists, are left alone. Returns the folds written."""
    task = get_task(task_name)
    if task.task_type != "classification":
        return []
    results_dir = Path(results_dir)
    rows = None
    targets = None
    done: list[int] = []
    for k in folds:
        record_path = validation_path(results_dir, base, task.name, k, seed)
        if cell_done(results_dir, strategy, task.name, k, seed) or not record_path.is_file():
            continue
        record = json.loads(record_path.read_text())
        threshold = (record.get("thresholds") or {}).get(rule)
        if threshold is None:
            continue
        if rows is None:
            rows = read_benchmark_rows(results_dir / "benchmark.jsonl")
        model_row = next(
            (
                r
                for r in rows
                if (r["strategy"], r["task"], r["fold"], r.get("seed", 0))
                == (base, task.name, k, seed)
            ),
            None,
        )
        if model_row is None:
            continue
        if targets is None:
            targets = load_task(task.name)["target"]
        frame = pd.read_csv(prediction_path(results_dir, base, task.name, k, seed))
        frame = frame.drop(columns="threshold", errors="ignore")
        if threshold != CLF_THRESHOLD:
            frame["threshold"] = threshold
        y_test = targets.loc[frame["id"]].to_numpy()
        scores = cell_scores(task.task_type, y_test, frame["prediction"].to_numpy(), threshold)
        atomic_write_json(
            validation_path(results_dir, strategy, task.name, k, seed),
            {**record, "derived_from": base, "threshold_rule": rule},
        )
        with atomic_path(prediction_path(results_dir, strategy, task.name, k, seed)) as tmp:
            frame.to_csv(tmp, index=False)
        append_benchmark_rows(
            results_dir / "benchmark.jsonl",
            [
                {**model_row, "strategy": strategy, "metric": metric, "value": float(value)}
                for metric, value in scores.items()
            ],
        )
        log.info(
            "%s %s fold %d seed %d: %s's model at threshold %.4g (%s), no training",
            strategy, task.name, k, seed, base, threshold, rule,
        )  # fmt: skip
        done.append(k)
    if done:
        rebuild_results(results_dir, strategy)
    return done


def select_strategy(
    results_dir: str | Path,
    task: str,
    candidates: Sequence[str],
    *,
    label: str | None = None,
) -> list[dict]:
    """Per (fold, seed), pick among ``candidates`` the strategy with the best validation score
    (lower ``best_val`` of the cells' validation records: the training fold's validation split
    only, never the test fold; ties go to the first listed) and record its cell as strategy
    ``label`` (default :func:`selection_label`), like any strategy: prediction CSVs and validation
    records, ``results.json.gz`` and rows in ``benchmark.jsonl`` (the chosen cell's scores; its
    ``seconds`` the sum over the candidates, since all of them had to be trained). The choice, with
    every candidate's score, goes to ``<label>/selection/<task>.json``.

    Cells run by only some candidates are left out (logged). Only cells whose choice or
    scores changed since the last selection append rows, so running it again adds nothing.

    Returns:
        The benchmark rows appended.

    Raises:
        ValueError: fewer than one or repeated candidates, a label that is a candidate, no cell
            run by every candidate, cells without a validation score (written before validation
            records existed: named in the message), or candidates scored on different metrics
            or validation rows.
    """
    name = get_task(task).name
    results_dir = Path(results_dir)
    candidates = list(candidates)
    if not candidates or len(set(candidates)) != len(candidates):
        raise ValueError(f"selection needs distinct candidate strategies, got {candidates}")
    label = label or selection_label(candidates)
    if label in candidates:
        raise ValueError(f"the selection's label {label!r} is one of its candidates")
    strategy_folder(label)  # refuse a label no file system can name, before any work
    ran = {c: strategy_cells(results_dir, c, name) for c in candidates}
    common = set.intersection(*ran.values())
    partial = sorted(set.union(*ran.values()) - common)
    if partial:
        log.warning(
            "select %s: cells (fold, seed) %s not run by every candidate: left out", name, partial
        )
    if not common:
        raise ValueError(
            f"{name}: no fold has predictions of every candidate {candidates} in {results_dir}"
        )
    records: dict[tuple[str, int, int], dict] = {}
    lacking = []
    for c in candidates:
        for k, s in sorted(common):
            path = validation_path(results_dir, c, name, k, s)
            record = json.loads(path.read_text()) if path.is_file() else {}
            if record.get("best_val") is None:
                lacking.append(str(path))
            records[(c, k, s)] = record
    if lacking:
        raise ValueError(
            f"{name}: {len(lacking)} cell(s) have no validation score (run before validation "
            "records were kept, or trained without a shared validation split); delete their "
            f"prediction CSVs and rerun them: {', '.join(lacking)}"
        )
    kinds = {r["val_metric"] for r in records.values() if r.get("val_metric") is not None}
    if len(kinds) > 1:  # e.g. a finetuned cell's normalised MAE against a tree's inner-CV MAE
        raise ValueError(
            f"{name}: the candidates' validation scores are not comparable (val_metric "
            f"{', '.join(sorted(kinds))}); select among strategies scored the same way"
        )
    latest: dict[tuple[str, int, int], list[dict]] = {}
    for r in read_benchmark_rows(results_dir / "benchmark.jsonl"):
        if r["task"] == name and r["strategy"] in candidates:
            key = (r["strategy"], int(r["fold"]), int(r.get("seed", 0)))
            cell = {m["metric"]: m for m in latest.get(key, [])}
            cell[r["metric"]] = r  # the last row written per metric
            latest[key] = list(cell.values())
    record_path = strategy_dir(results_dir, label) / "selection" / f"{name}.json"
    previous = {}
    if record_path.is_file():
        previous = {(e["fold"], e["seed"]): e for e in json.loads(record_path.read_text())["folds"]}
    entries, rows = [], []
    for k, s in sorted(common):
        cell_records = {c: records[(c, k, s)] for c in candidates}
        metrics = {r.get("val_metric") for r in cell_records.values()}
        n_val = {r.get("n_val") for r in cell_records.values()}
        if len(metrics) != 1 or len(n_val) != 1:
            raise ValueError(
                f"{name} fold {k} seed {s}: the candidates were not selected on the same "
                f"validation rows and score (val_metric {sorted(map(str, metrics))}, "
                f"n_val {sorted(map(str, n_val))})"
            )
        scores = {c: float(r["best_val"]) for c, r in cell_records.items()}
        pick = min(candidates, key=lambda c: scores[c])  # min keeps the first of equal scores
        entry = {
            "fold": k, "seed": s, "val_metric": metrics.pop(), "n_val": n_val.pop(),
            "scores": scores, "pick": pick,
        }  # fmt: skip
        entries.append(entry)
        missing_rows = [c for c in candidates if not latest.get((c, k, s))]
        if missing_rows:
            raise ValueError(
                f"{name} fold {k} seed {s}: no benchmark rows of {missing_rows} in "
                f"{results_dir / 'benchmark.jsonl'}"
            )
        out_csv = prediction_path(results_dir, label, name, k, s)
        if previous.get((k, s)) == entry and out_csv.is_file():
            continue
        seconds = sum(float(latest[(c, k, s)][0]["seconds"]) for c in candidates)
        atomic_write_json(
            validation_path(results_dir, label, name, k, s),
            {**cell_records[pick], "selected": pick},
        )
        src = prediction_path(results_dir, pick, name, k, s)
        with atomic_path(out_csv) as tmp:
            tmp.write_bytes(src.read_bytes())
        rows += [
            {**r, "strategy": label, "seed": s, "seconds": round(seconds, 2)}
            for r in latest[(pick, k, s)]
        ]
        log.info(
            "select %s fold %d seed %d: %s (%s %s)", name, k, s, pick, entry["val_metric"],
            ", ".join(f"{c} {v:.4g}" for c, v in scores.items()),
        )  # fmt: skip
    atomic_write_json(
        record_path,
        {"task": name, "label": label, "candidates": candidates, "rule": "lowest best_val, "
         "ties to the first candidate", "folds": entries},
    )  # fmt: skip
    append_benchmark_rows(results_dir / "benchmark.jsonl", rows)
    rebuild_results(results_dir, label, hyperparameters={"selection": {"candidates": candidates}})
    return rows
