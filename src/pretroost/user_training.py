"""Training on your own table (``pretroost finetune --data``, ``pretroost ensemble``): train on
each split, score the test rows, save the model(s) and ``metrics.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pretroost.artefacts import register_files, remove_written
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import CompositionArray
from pretroost.ensemble import Ensemble, uncertainty_scores
from pretroost.finetune import FinetuneConfig
from pretroost.folds import Split, run_splits
from pretroost.metrics import CLF_THRESHOLD, USER_HEADLINE, user_scores
from pretroost.models.roost import TaskType
from pretroost.utils import atomic_write_json

__all__ = ["remove_checkpoints_of", "test_report", "train_on_user_data"]

log = logging.getLogger(__name__)


def test_report(
    fitted: Any, pred: dict, comps: CompositionArray, y: np.ndarray, task_type: str
) -> dict:
    """Test scores of a model or ensemble, each named for what it is
    (:func:`pretroost.metrics.user_scores`); ensembles add uncertainty calibration (regression)
    and each member's headline score, so ``finetune --ensemble`` and ``ensemble`` report alike."""
    data = CompositionDataset(comps)
    key = "prob" if task_type == "classification" else "mean"
    # classification: labels with the model's decision threshold, ROC AUC of the probabilities
    threshold = getattr(fitted, "threshold", CLF_THRESHOLD)
    scores, notes = user_scores(task_type, y[:, 0], pred[key][:, 0], threshold=threshold)
    report: dict[str, Any] = {"scores": scores}
    if notes:
        report["notes"] = notes
        for note in notes:
            log.info("%s", note)
    if isinstance(fitted, Ensemble):
        if task_type == "regression":
            scores.update(uncertainty_scores(y[:, 0], pred["mean"][:, 0], pred["std"][:, 0]))
        head = USER_HEADLINE[task_type]
        members = [
            user_scores(task_type, y[:, 0], m.predict_dataset(data)[key][:, 0])[0][head]
            for m in fitted.members
        ]
        report[f"member_{head}"] = members
        report[f"member_{head}_mean"] = float(np.mean(members))
    return report


def train_on_user_data(
    comps: CompositionArray,
    y: np.ndarray,
    task_type: TaskType,
    splits: list[Split],
    config: FinetuneConfig,
    out: Path,
    *,
    test_set: tuple[CompositionArray, np.ndarray] | None,
    source: str,
    target: str,
    test_source: str | None,
    seed: int,
    n_members: int,
    member_split: str = "different",
    checkpoint_dir: Path | None,
    remove_checkpoints: bool,
    split_subdirs: bool = True,
    resume: bool = False,
    device: str | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Train on each of ``splits`` (one: the model goes to ``out``; several: ``out/fold_<k>``),
    score its test rows (or ``test_set``, read from ``test_source``), save (``source`` and
    ``target`` naming the data in the model's info), and write
    ``out/metrics.json`` (every split's scores and their mean and std). ``write=False`` (data
    parallel ranks other than 0) trains without writing. Returns the metrics."""
    single = len(splits) == 1
    if not single and write and out.exists():  # one folder per split: the old ones go
        remove_written(out)
    names = [out.name if single else f"{out.name} fold {s.index}" for s in splits]
    reports: list[dict] = []
    for result in run_splits(
        comps, y, task_type, splits, config, n_members=n_members, member_split=member_split,
        test_set=test_set, checkpoint_dir=checkpoint_dir, split_subdirs=split_subdirs,
        resume=resume, name=names, device=device,
    ):  # fmt: skip
        fitted, n_test, name = result.fitted, len(result.test_comps), names[result.split.index]
        where_test = test_source or (f"{n_test} held-out rows" if n_test else None)
        report: dict[str, Any] = {"n_train": len(result.split.train), "n_test": n_test}
        report["test"] = where_test
        if n_test:
            report.update(
                test_report(fitted, result.pred, result.test_comps, result.test_y, task_type)
            )
            log.info(
                "%s: test %s", name, ", ".join(f"{m}={v:.4f}" for m, v in report["scores"].items())
            )
        fitted.info.update(source=source, target=target, n_test=n_test, test=where_test)
        fitted.info["test_seed"] = seed
        if write:  # data parallel: rank 0 alone writes
            fitted.save(out if single else out / f"fold_{result.split.index}")
            if not single:
                register_files(out, [f"fold_{result.split.index}"])
        reports.append(report)
    metrics: dict[str, Any] = reports[0]
    if len(reports) > 1:
        # a score some splits leave out (mape where a fold's targets hold a 0) has no summary
        metric_names = [m for m in reports[0]["scores"] if all(m in r["scores"] for r in reports)]
        metrics = {
            "splits": reports,
            "summary": {
                m: {
                    "mean": float(np.mean([r["scores"][m] for r in reports])),
                    "std": float(np.std([r["scores"][m] for r in reports])),
                }
                for m in metric_names
            },
        }
    if not write:
        return metrics
    atomic_write_json(out / "metrics.json", metrics)
    register_files(out, ["metrics.json"])
    if checkpoint_dir is not None and remove_checkpoints:  # done: not needed any more
        remove_checkpoints_of(checkpoint_dir, [s.index for s in splits], n_members)
    return metrics


def remove_checkpoints_of(folder: Path, splits: list[int], n_members: int) -> None:
    """Delete the checkpoints ``finetune --data`` wrote (``split<i>.pt``, or
    ``split<i>/member_<k>.pt``, and the temporaries of their atomic writes that a killed run
    left: ``.split<i>.pt.*.tmp``) and the folders they leave empty; nothing else."""
    for i in splits:
        files = [(folder, f"split{i}.pt")]
        files += [(folder / f"split{i}", f"member_{k}.pt") for k in range(n_members)]
        for where, name in files:
            (where / name).unlink(missing_ok=True)
            for tmp in where.glob(f".{name}.*.tmp"):  # utils.atomic_path's names
                tmp.unlink()
        for d in (folder / f"split{i}", folder):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    if folder.exists():
        log.warning("%s: kept, it holds files other than this run's checkpoints", folder)
