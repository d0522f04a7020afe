"""Finetuning throughput of this code against a baseline commit: a ``pretroost speed`` measurement.

``pretroost speed --only finetune_epoch --baseline COMMIT --threads 1 --merge``

``finetune_epoch`` times :func:`pretroost.finetune.fit` with the ``converged`` recipe on the
training rows of official fold 0 of matbench_jdft2d (batches of 32) and matbench_expt_gap
(batches of 128), a few epochs each. Every timing runs in a fresh process
(:mod:`pretroost.experiment.finetune_speed_worker`) on one source tree: this one, and with
``--baseline`` the package as committed there (``git archive`` into a temporary folder). The
sides alternate, round r in one order and round r + 1 in the other, so that the load of a shared
machine falls on both alike. Reported per task and side: training compositions per second over
the whole fit (validation passes included), in wall and in CPU time of the worker, medians over
rounds, the speed-up over the baseline, and whether every run of both sides computed the same
validation score, weights and test predictions, bit for bit.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pretroost
from pretroost.experiment import finetune_speed_worker
from pretroost.experiment.speed import SpeedContext, register_measurement

__all__ = ["EPOCHS", "measure_finetune_epoch", "source_tree"]

log = logging.getLogger("pretroost.speed")

#: Matbench task -> epochs timed per run (``--quick``: matbench_jdft2d, 1 epoch)
EPOCHS = {"matbench_jdft2d": 10, "matbench_expt_gap": 3}
#: what must agree bit for bit between every run of a task
COMPUTED = ("best_val", "best_epoch", "weights_sha256", "predictions_sha256")


def _src() -> Path:
    """The ``src`` folder this package is imported from."""
    return Path(pretroost.__file__).resolve().parents[1]


def source_tree(commit: str, into: Path) -> tuple[Path, str]:
    """``src`` of ``commit`` of this checkout's repository, written under ``into``; returns the
    folder and the commit's short SHA. ValueError if git does not know the commit."""
    repo = _src().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", f"{commit}^{{commit}}"], cwd=repo, check=True,
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        tar = subprocess.run(
            ["git", "archive", "--format=tar", sha, "src"], cwd=repo, check=True,
            capture_output=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ValueError(f"--baseline {commit!r}: not a commit of {repo} ({exc})") from None
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into / "src", sha


def _run_worker(src: Path, task: str, epochs: int, threads: int, seed: int) -> dict[str, Any]:
    """One worker process on the package in ``src``; its JSON result."""
    args = json.dumps({"task": task, "epochs": epochs, "threads": threads, "seed": seed})
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, "-P", finetune_speed_worker.__file__, args], env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"finetune_epoch worker on {src} failed ({args}):\n" + done.stderr[-3000:]
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


@register_measurement("finetune_epoch")
def measure_finetune_epoch(ctx: SpeedContext) -> dict:
    """Finetuning throughput, this tree against ``ctx.baseline``, interleaved (module docstring)."""
    epochs = {"matbench_jdft2d": 1} if ctx.quick else EPOCHS
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this": _src()}
        baseline_sha = None
        if ctx.baseline is not None:
            src, baseline_sha = source_tree(ctx.baseline, Path(tmp))
            trees = {f"baseline {baseline_sha}": src, **trees}
        runs: dict[str, dict[str, list[dict]]] = {t: {s: [] for s in trees} for t in epochs}
        for task, n_epochs in epochs.items():
            for r in range(ctx.rounds):
                for side in list(trees) if r % 2 == 0 else list(trees)[::-1]:
                    res = _run_worker(trees[side], task, n_epochs, ctx.threads, ctx.seed)
                    runs[task][side].append(res)
                    log.info(
                        "finetune_epoch %s round %d %s: %.1f s wall, %.1f s CPU", task, r, side,
                        res["seconds_wall"], res["seconds_cpu"],
                    )  # fmt: skip
    out: dict[str, Any] = {
        "baseline": baseline_sha,
        "rounds": ctx.rounds,
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "tasks": {},
    }
    table = [
        [
            "finetune (converged recipe, fold 0 training rows)",
            f"{ctx.rounds} rounds interleaved, one process per run, {ctx.threads} thread(s), load "
            f"{load_start[0]:.1f} -> {out['load_average_end'][0]:.1f}",
        ]
    ]
    for task, by_side in runs.items():
        first = next(iter(by_side.values()))[0]
        computed = {
            json.dumps({k: res[k] for k in COMPUTED}) for rs in by_side.values() for res in rs
        }
        entry: dict[str, Any] = {
            "epochs": first["epochs"],
            "n_train": first["n_train"],
            "n_val": first["n_val"],
            "batch_size": first["batch_size"],
            "identical_results": len(computed) == 1,
            "computed": [json.loads(c) for c in sorted(computed)],
            "sides": {},
        }
        for side, rs in by_side.items():
            rows = first["n_train"] * first["epochs"]
            entry["sides"][side] = {
                "per_s": _median([rows / r["seconds_wall"] for r in rs]),
                "per_s_cpu": _median([rows / r["seconds_cpu"] for r in rs]),
                "rounds_per_s": [round(rows / r["seconds_wall"], 1) for r in rs],
                "rounds_per_s_cpu": [round(rows / r["seconds_cpu"], 1) for r in rs],
                "minor_page_faults": [r["minor_page_faults"] for r in rs],
            }
        base = entry["sides"][next(iter(trees))]
        for side, s in entry["sides"].items():
            s["speedup"] = s["per_s"] / base["per_s"]
            s["speedup_cpu"] = s["per_s_cpu"] / base["per_s_cpu"]
            table.append(
                [
                    f"  {task} ({first['n_train']} rows, batch {first['batch_size']}) {side}",
                    f"{s['per_s']:.0f}/s wall, {s['per_s_cpu']:.0f}/s CPU; "
                    f"x{s['speedup']:.3f} wall, x{s['speedup_cpu']:.3f} CPU",
                ]
            )
        table.append(
            [
                f"  {task} identical results (score, weights, predictions)",
                "yes" if entry["identical_results"] else "NO",
            ]
        )
        out["tasks"][task] = entry
    out["table"] = table
    return out
