"""One timed finetune for ``pretroost speed --only finetune_epoch``, in a process of its own.

Run as ``python -P finetune_speed_worker.py '{"task": ..., "epochs": ..., "threads": ...,
"seed": ...}'`` with ``PYTHONPATH`` naming the source tree to time: this commit's or a baseline's
(:mod:`pretroost.experiment.finetune_speed`). It therefore uses only what every version of the
package has: :func:`pretroost.finetune.fit` with its default, the ``converged`` recipe, on the
training rows of a Matbench task's official fold 0. It fits one epoch to warm up (kernels loaded,
allocator settled), then times a fit of ``epochs`` epochs, and prints one JSON line: seconds (wall
and CPU time of this process), page faults, and what the fit computed (validation score, best
epoch, hashes of the weights and of the predictions on the fold's test rows), so that two trees'
results can be compared bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.finetune import FinetuneConfig, FittedModel, fit

__all__ = ["digest", "run"]


def digest(fitted: FittedModel, test: CompositionDataset) -> dict[str, Any]:
    """What a fit computed: its validation score and best epoch, sha256 of its weights (names and
    bytes in state-dict order) and of its predictions on ``test``."""
    weights = hashlib.sha256()
    for name, tensor in fitted.model.state_dict().items():
        weights.update(name.encode() + tensor.contiguous().numpy().tobytes())
    preds = hashlib.sha256()
    for value in fitted.predict_dataset(test).values():
        preds.update(np.ascontiguousarray(value).tobytes())
    return {
        "best_val": fitted.info["best_val"],
        "best_epoch": fitted.info["best_epoch"],
        "weights_sha256": weights.hexdigest(),
        "predictions_sha256": preds.hexdigest(),
    }


def run(task: str, epochs: int, threads: int = 1, seed: int = 0) -> dict[str, Any]:
    """Warm up, then time ``fit`` (the ``converged`` recipe, ``epochs`` epochs, ``seed``) on the
    training rows of Matbench ``task``'s fold 0; the timings and :func:`digest` of the fit."""
    torch.set_num_threads(threads)
    info = get_task(task)
    df = load_task(info.name)
    train_ids, test_ids = load_folds(info.name)[0]
    train, test = df.loc[train_ids], df.loc[test_ids]
    comps = parse_formulas(train["formula"].tolist())
    y = train["target"].to_numpy()
    recipe = FinetuneConfig()

    def config(n: int) -> FinetuneConfig:
        return replace(recipe, train=replace(recipe.train, epochs=n))

    fit(comps, y, info.task_type, config(1), seed=seed, progress=False)  # warm-up
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = time.perf_counter(), time.process_time()
    fitted = fit(comps, y, info.task_type, config(epochs), seed=seed, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    assert fitted.result is not None
    n_train = int(fitted.info["n_train"])
    return {
        "task": info.name,
        "epochs": epochs,
        "n_train": n_train,
        "n_val": int(fitted.info["n_val"]),
        "batch_size": int(fitted.info["batch_size"]),
        "threads": torch.get_num_threads(),
        "seconds_wall": wall,
        "seconds_cpu": cpu,
        "train_seconds_wall": sum(r["epoch_seconds"] for r in fitted.result.history),
        "minor_page_faults": faults,
        **digest(fitted, CompositionDataset(parse_formulas(test["formula"].tolist()))),
    }


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    sys.stdout.write(json.dumps(run(**args)) + "\n")
