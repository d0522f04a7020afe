"""Where a finetune's time goes: cProfile of :func:`pretroost.finetune.fit` (the ``converged``
recipe) on the training rows of a Matbench task's official fold 0, after a one-epoch warm-up.

``python tools/profile_finetune.py TASK [--epochs 20] [--threads 1] [--top 25]``

Prints the phases of the fit (seconds and share): forward and backward of the training batches,
the optimiser's step and zero_grad, slicing the training batches, the validation passes, the rest
of the training loop, and what ``fit`` does around ``train`` (model, data, final predictions);
then cProfile's functions with the most own time. cProfile adds a few per cent of its own to
every Python call, so shares compare within one profile. Only the package's public API is used,
so ``PYTHONPATH=<another commit's src>`` profiles that version the same way.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from dataclasses import replace

import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.finetune import FinetuneConfig, fit
from pretroost.train import train as train_loop


def _key(function) -> tuple:
    """cProfile's key of a Python function."""
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def _find(stats: pstats.Stats, file_end: str, name: str) -> tuple:
    """The key of function ``name`` defined in a file whose path ends with ``file_end``."""
    keys = [k for k in stats.stats if k[0].endswith(file_end) and k[2] == name]  # type: ignore[attr-defined]
    if len(keys) != 1:
        raise LookupError(f"{name} in *{file_end}: {len(keys)} matches")
    return keys[0]


def _cumulative(stats: pstats.Stats, key: tuple, caller: tuple | None = None) -> float:
    """Cumulative seconds of ``key``, all calls or those made from ``caller``."""
    *_, ct, callers = stats.stats[key]  # type: ignore[attr-defined]
    return ct if caller is None else callers.get(caller, (0, 0, 0.0, 0.0))[3]


def phases(stats: pstats.Stats) -> dict[str, float]:
    """Seconds per phase of one profiled ``fit`` (see the module docstring)."""
    fit_key, train_key = _key(fit), _key(train_loop)
    val_key = _find(stats, "pretroost/finetune.py", "val_score")
    module_call = _find(stats, "torch/nn/modules/module.py", "_wrapped_call_impl")
    out = {
        "forward (training batches)": _cumulative(stats, module_call, train_key),
        "backward": _cumulative(stats, _find(stats, "torch/_tensor.py", "backward")),
        "optimiser step": _cumulative(stats, _find(stats, "torch/optim/adam.py", "step")),
        "optimiser zero_grad": _cumulative(
            stats, _find(stats, "torch/optim/optimizer.py", "zero_grad")
        ),
        "batch slicing (training)": _cumulative(stats, _key(CompositionDataset.batch), train_key),
        "validation passes": _cumulative(stats, val_key),
    }
    out["rest of the training loop"] = _cumulative(stats, train_key) - sum(out.values())
    out["fit outside train()"] = _cumulative(stats, fit_key) - _cumulative(stats, train_key)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task", help="a Matbench composition task, e.g. matbench_jdft2d")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=25, help="functions listed by own time")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    df = load_task(task.name)
    train = df.loc[load_folds(task.name)[0][0]]
    comps, y = parse_formulas(train["formula"].tolist()), train["target"].to_numpy()
    recipe = FinetuneConfig()

    def run(epochs: int):
        config = replace(recipe, train=replace(recipe.train, epochs=epochs))
        return fit(comps, y, task.task_type, config, seed=0, progress=False)

    run(1)  # warm-up: kernels loaded
    profile = cProfile.Profile()
    fitted = profile.runcall(run, args.epochs)
    stats = pstats.Stats(profile)
    total = _cumulative(stats, _key(fit))
    n, bs = fitted.info["n_train"], fitted.info["batch_size"]
    lines = [
        f"{task.name}: fit, {args.epochs} epochs of {n} training rows (batch {bs}) and "
        f"{fitted.info['n_val']} validation rows, {args.threads} thread(s): {total:.2f} s "
        f"under cProfile ({n * args.epochs / total:.0f} training compositions/s)",
    ]
    lines += [f"  {k:<28} {v:7.2f} s  {100 * v / total:5.1f} %" for k, v in phases(stats).items()]
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.top)
    sys.stdout.write("\n".join(lines) + "\n\n" + text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
