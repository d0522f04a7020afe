"""The one fold runner: train on each split of a data set, predict its test rows.

Every way of scoring a model goes through :func:`run_splits`: Matbench's official folds
(:func:`matbench_splits`, used by ``finetune --task`` and ``bench``), k-fold cross-validation
(:func:`kfold_splits`), a random hold-out (:func:`holdout_split`) or a user's own test file (one
split whose test rows come from elsewhere: :func:`all_rows_split` plus ``test_set``). A split
trains one model (:func:`~pretroost.finetune.fit`) or a deep ensemble
(:func:`~pretroost.ensemble.fit_ensemble`) with the same recipe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import CompositionArray
from pretroost.ensemble import fit_ensemble
from pretroost.finetune import FinetuneConfig, fit
from pretroost.models.roost import TaskType

__all__ = [
    "SPLIT_KINDS",
    "Split",
    "SplitKind",
    "SplitResult",
    "all_rows_split",
    "holdout_split",
    "kfold_splits",
    "matbench_splits",
    "run_splits",
    "training_subset",
]

SplitKind = Literal["matbench", "kfold", "random", "test_file"]
SPLIT_KINDS: tuple[str, ...] = ("matbench", "kfold", "random", "test_file")

#: a Matbench repeat's training seed is ``config.train.seed + fold + SEED_STRIDE * seed``
log = logging.getLogger(__name__)

SEED_STRIDE = 100


@dataclass(frozen=True)
class Split:
    """One train/test split of ``n`` rows.

    Attributes:
        index: the split's number (a Matbench fold, a k-fold part, 0 for a single split).
        train: (n_train,) int64 row positions to train on.
        test: (n_test,) int64 row positions to score (may be empty: nothing held out).
        seed: the training seed, or None for ``config.train.seed``.
    """

    index: int
    train: np.ndarray
    test: np.ndarray
    seed: int | None = None


@dataclass
class SplitResult:
    """What :func:`run_splits` yields per split: the trained model (or ensemble), its predictions
    on the split's test rows (``predict_dataset`` keys, each (n_test, T)), the test targets
    (n_test, T) and the seconds spent training and predicting."""

    split: Split
    fitted: Any
    pred: dict[str, np.ndarray]
    test_comps: CompositionArray
    test_y: np.ndarray
    seconds: float


def training_subset(n: int, fraction: float, *, fold: int, seed: int = 0) -> np.ndarray:
    """Indices of a ``fraction`` of ``n`` training rows: the same for every strategy (seeded by fold
    and fraction only), nested for growing fractions of one fold."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    order = np.random.default_rng([seed, fold, 7919]).permutation(n)
    return np.sort(order[: max(2, int(round(fraction * n)))])


def _rest(n: int, test: np.ndarray) -> np.ndarray:
    return np.setdiff1d(np.arange(n), test)


def all_rows_split(n: int) -> list[Split]:
    """Train on every row, hold nothing out (score on a separate test file, or not at all)."""
    return [Split(0, np.arange(n), np.zeros(0, dtype=np.int64))]


def holdout_split(n: int, test_fraction: float, seed: int) -> list[Split]:
    """A random ``test_fraction`` of the rows (drawn with ``seed``) held out; 0: none."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n))) if test_fraction > 0 else 0
    test = np.sort(perm[:n_test])
    return [Split(0, _rest(n, test), test)]


def kfold_splits(n: int, k: int, seed: int) -> list[Split]:
    """``k``-fold cross-validation over a permutation drawn with ``seed``."""
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2, got {k}")
    perm = np.random.default_rng(seed).permutation(n)
    return [
        Split(i, _rest(n, np.sort(part)), np.sort(part))
        for i, part in enumerate(np.array_split(perm, k))
    ]


def matbench_splits(
    ids: Sequence,
    official: Sequence[tuple[Sequence, Sequence]],
    folds: Sequence[int],
    *,
    fraction: float = 1.0,
    base_seed: int = 0,
    repeat: int = 0,
) -> list[Split]:
    """Matbench's official folds ``folds`` (``official``: (train ids, test ids) per fold, of the
    rows ``ids`` in order); ``fraction`` < 1 trains on a nested subset of each training fold."""
    position = {key: i for i, key in enumerate(ids)}
    out = []
    for k in folds:
        if not 0 <= k < len(official):
            raise ValueError(f"fold {k} out of range 0..{len(official) - 1}")
        train_ids, test_ids = official[k]
        train = np.array([position[i] for i in train_ids], dtype=np.int64)
        if fraction < 1.0:
            train = train[training_subset(len(train), fraction, fold=k)]
        test = np.array([position[i] for i in test_ids], dtype=np.int64)
        out.append(Split(k, train, test, seed=base_seed + k + SEED_STRIDE * repeat))
    return out


def user_splits(
    n: int,
    *,
    source: str,
    test_data: str | None,
    test_fraction: float,
    seed: int,
    k: int | None = None,
) -> list[Split]:
    """The splits of your own table of ``n`` rows (``source``): all rows when a separate
    ``test_data`` table scores the model, ``k``-fold, or a random hold-out of ``test_fraction``
    (possibly 0: nothing held out); each decision is logged."""
    if test_data:
        if k:
            raise ValueError("--test-data and --split kfold exclude each other")
        log.info("training on all %d rows of %s; testing on %s", n, source, test_data)
        return all_rows_split(n)
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if k:
        log.info("%s: %d-fold cross-validation over %d rows (--seed %d)", source, k, n, seed)
        return kfold_splits(n, k, seed)
    splits = holdout_split(n, test_fraction, seed)
    n_test = len(splits[0].test)
    if n_test:
        log.info(
            "%s: held out %d rows (%.0f %%) as test (--test-fraction %g, --seed %d); training on "
            "the other %d", source, n_test, 100 * n_test / n, test_fraction, seed, n - n_test,
        )  # fmt: skip
    else:
        log.info(
            "%s: training on all %d rows (--test-fraction 0: no test score; a validation split "
            "of them still picks the best epoch)", source, n,
        )  # fmt: skip
    return splits


def run_splits(
    comps: CompositionArray,
    y: np.ndarray,
    task_type: TaskType,
    splits: Sequence[Split],
    config: FinetuneConfig,
    *,
    n_members: int = 1,
    member_split: str = "different",
    test_set: tuple[CompositionArray, np.ndarray] | None = None,
    checkpoint_dir: str | Path | None = None,
    split_subdirs: bool = True,
    resume: bool = False,
    progress: bool | None = None,
    name: str | Sequence[str] = "model",
    device: str | None = None,
) -> Iterator[SplitResult]:
    """Train per split and predict its test rows, yielding each result as soon as it is done
    (so that callers write it at once and an interrupted run keeps what it finished).

    Args:
        comps, y: all ``n`` rows (y: (n,) or (n, T)).
        task_type: "regression" or "classification".
        splits: from :func:`matbench_splits`, :func:`kfold_splits`, :func:`holdout_split` or
            :func:`all_rows_split`.
        config: the finetuning recipe (each split's ``seed``, if set, replaces its train seed).
        n_members: > 1 trains a deep ensemble per split (``member_split``: its members'
            validation splits, see :mod:`pretroost.ensemble`).
        test_set: score on these (compositions, targets) instead of each split's test rows.
        checkpoint_dir: resumable checkpoints: ``split<i>.pt`` (one model) or, for an ensemble,
            ``split<i>/member_<k>.pt`` (``split_subdirs``) or ``member_<k>.pt``.
        name: the run's name, or one per split (logs and model cards).
    """
    y = np.asarray(y)
    y2 = y.reshape(len(y), -1)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else None
    for j, split in enumerate(splits):
        label = name if isinstance(name, str) else name[j]
        cfg = config
        if split.seed is not None:
            cfg = replace(config, train=replace(config.train, seed=split.seed))
        train_comps, train_y = comps.subset(split.train), y[split.train]
        t0 = time.perf_counter()
        fitted: Any
        if n_members > 1:
            member_ckpt = None
            if ckpt_root is not None:
                member_ckpt = ckpt_root / f"split{split.index}" if split_subdirs else ckpt_root
            fitted = fit_ensemble(
                train_comps, train_y, task_type, cfg, n_members, split=member_split,  # type: ignore[arg-type]
                name=label, resume=resume, device=device, checkpoint_dir=member_ckpt,
                progress=progress,
            )  # fmt: skip
        else:
            fitted = fit(
                train_comps, train_y, task_type, cfg, name=label, resume=resume, device=device,
                checkpoint=ckpt_root / f"split{split.index}.pt" if ckpt_root else None,
                progress=progress,
            )  # fmt: skip
        if test_set is not None:
            test_comps, test_y = test_set[0], np.asarray(test_set[1]).reshape(len(test_set[1]), -1)
        else:
            test_comps, test_y = comps.subset(split.test), y2[split.test]
        pred = fitted.predict_dataset(CompositionDataset(test_comps)) if len(test_comps) else {}
        yield SplitResult(split, fitted, pred, test_comps, test_y, time.perf_counter() - t0)
