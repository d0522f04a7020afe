"""The ``pretroost`` command line: a thin layer over the library (``main(argv) -> exit code``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pretroost import __version__

log = logging.getLogger("pretroost.cli")

EXAMPLES = {
    "data": "pretroost data fetch",
    "finetune": (
        "pretroost finetune --task matbench_steels --folds 0 --epochs 50\n"
        "  pretroost finetune --task expt_gap --init runs/ssl --strategy ssl\n"
        "  pretroost finetune --data my.csv --target-col gap --task-type regression --out my_model"
    ),
}


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _add_train_args(
    p: argparse.ArgumentParser, *, epochs: int, batch_size: int = 128, lr: float = 3e-4
) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    g.add_argument(
        "--batch-size", type=int, default=batch_size, help=f"batch size (default {batch_size})"
    )
    g.add_argument("--lr", type=float, default=lr, help=f"peak AdamW learning rate (default {lr})")
    g.add_argument("--weight-decay", type=float, default=1e-6)
    g.add_argument("--schedule", default="cosine", help="cosine or constant")
    g.add_argument("--warmup-epochs", type=int, default=0)
    g.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def _train_config(args: argparse.Namespace, **extra):
    from pretroost.train import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, patience=args.patience,
        seed=args.seed, **extra,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ data


def cmd_data(args: argparse.Namespace) -> int:
    from pretroost.data.fetch import fetch_all

    path = fetch_all(wheel_dir=Path(args.wheel_dir) if args.wheel_dir else None, force=args.force)
    log.info("data ready in %s", path)
    return 0


# -------------------------------------------------------------------------------------- finetune


def _finetune_config(args: argparse.Namespace):
    from pretroost.finetune import FinetuneConfig
    from pretroost.models.roost import RoostConfig

    scale = 0.0 if args.freeze_encoder else args.encoder_lr_scale
    return FinetuneConfig(
        train=_train_config(args, encoder_lr_scale=scale),
        encoder=RoostConfig(elem_embedding=args.elem_embedding),
        loss=args.loss,
        init=args.init,
        init_trunk=args.init_trunk,
        val_fraction=args.val_fraction,
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    config = _finetune_config(args)
    if (args.task is None) == (args.data is None):
        raise SystemExit("finetune: give exactly one of --task (Matbench) or --data (your CSV)")
    if args.task is not None:
        from pretroost.benchmark import run_matbench_task

        strategy = args.strategy or ("scratch" if args.init == "scratch" else Path(args.init).name)
        rows = run_matbench_task(
            args.task, config, strategy=strategy, folds=_ints(args.folds),
            results_dir=args.results_dir, fraction=args.fraction,
            save_models=args.save_models, resume=args.resume,
        )  # fmt: skip
        _print_fold_table(rows)
        return 0
    return _finetune_custom(args, config)


def _print_fold_table(rows: list[dict]) -> None:
    if not rows:
        log.info("nothing to do (all requested folds already have predictions; use --no-resume)")
        return
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    folds = sorted({r["fold"] for r in rows})
    table = {(r["fold"], r["metric"]): r["value"] for r in rows}
    head = "fold  " + "  ".join(f"{m:>12}" for m in metrics)
    lines = [head] + [
        f"{k:>4}  " + "  ".join(f"{table[(k, m)]:>12.4f}" for m in metrics) for k in folds
    ]
    if len(folds) > 1:
        means = [np.mean([table[(k, m)] for k in folds]) for m in metrics]
        lines.append("mean  " + "  ".join(f"{v:>12.4f}" for v in means))
    sys.stdout.write("\n".join(lines) + "\n")


def _finetune_custom(args: argparse.Namespace, config) -> int:
    from pretroost.data.batching import CompositionDataset
    from pretroost.data.tables import read_formula_table
    from pretroost.finetune import fit, validate_targets
    from pretroost.metrics import score
    from pretroost.utils import atomic_write_json

    if args.out is None:
        raise SystemExit("finetune --data needs --out DIR for the trained model")
    df, comps = read_formula_table(
        args.data, formula_col=args.formula_col, target_col=args.target_col, id_col=args.id_col
    )
    y = validate_targets(df[args.target_col].to_numpy(), args.task_type, source=str(args.data))
    n = len(df)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(n)
    if args.split == "kfold":
        splits = [np.sort(part) for part in np.array_split(perm, args.k)]
    else:
        splits = [np.sort(perm[: max(1, int(round(args.test_fraction * n)))])]
    out = Path(args.out)
    all_scores = []
    for k, test in enumerate(splits):
        train_idx = np.setdiff1d(np.arange(n), test)
        fitted = fit(
            comps.subset(train_idx), y[train_idx], args.task_type, config, name=f"split{k}"
        )
        pred = fitted.predict_dataset(CompositionDataset(comps.subset(test)))
        values = pred["prob" if args.task_type == "classification" else "mean"][:, 0]
        scores = score(args.task_type, y[test, 0], values)
        all_scores.append(scores)
        fitted.info["source"] = str(args.data)
        fitted.save(out if len(splits) == 1 else out / f"fold_{k}")
        log.info("split %d: %s", k, ", ".join(f"{m}={v:.4f}" for m, v in scores.items()))
    summary = {
        m: {
            "mean": float(np.mean([s[m] for s in all_scores])),
            "std": float(np.std([s[m] for s in all_scores])),
        }
        for m in all_scores[0]
    }
    atomic_write_json(out / "metrics.json", {"splits": all_scores, "summary": summary})
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


# ------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pretroost",
        description="Pretrain structure-agnostic Roost models and benchmark them on Matbench.",
    )
    parser.add_argument("--version", action="version", version=f"pretroost {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-q", "--quiet", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help, description=help, epilog=f"example:\n  {EXAMPLES.get(name, '')}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        p.set_defaults(func=func)
        return p

    p = add(
        "data",
        cmd_data,
        "Fetch Matbench targets, official folds and the OQMD corpus into the cache.",
    )
    p.add_argument("action", choices=["fetch"])
    p.add_argument("--wheel-dir", help="use already downloaded crabnet/matbench wheels from here")
    p.add_argument("--force", action="store_true", help="re-extract even if the cache is complete")

    p = add(
        "finetune", cmd_finetune, "Train Roost (from scratch or a pretrained encoder) and score it."
    )
    src = p.add_argument_group("data")
    src.add_argument("--task", help="a Matbench task, e.g. matbench_steels (official folds)")
    src.add_argument("--folds", default="0,1,2,3,4", help="official folds to run (default all)")
    src.add_argument(
        "--fraction", type=float, default=1.0, help="share of each training fold to use"
    )
    src.add_argument("--data", help="your own CSV of formulas and targets")
    src.add_argument("--formula-col", default="formula")
    src.add_argument("--target-col", default="target")
    src.add_argument("--id-col", default=None)
    src.add_argument("--task-type", default="regression", choices=["regression", "classification"])
    src.add_argument("--split", default="random", choices=["random", "kfold"])
    src.add_argument("--test-fraction", type=float, default=0.2)
    src.add_argument("--k", type=int, default=5, help="folds for --split kfold")
    mdl = p.add_argument_group("model")
    mdl.add_argument("--init", default="scratch", help="'scratch' or a pretrained model folder")
    mdl.add_argument("--init-trunk", action="store_true", help="also load the pretrained trunk")
    mdl.add_argument("--freeze-encoder", action="store_true", help="train only the output network")
    mdl.add_argument("--encoder-lr-scale", type=float, default=1.0)
    mdl.add_argument("--elem-embedding", default="matscholar200")
    mdl.add_argument("--loss", default=None, choices=["robust", "l1", "bce"])
    mdl.add_argument("--val-fraction", type=float, default=0.1)
    _add_train_args(p, epochs=100)
    res = p.add_argument_group("output")
    res.add_argument(
        "--strategy", default=None, help="label for results (default: scratch / init folder)"
    )
    res.add_argument("--results-dir", default="results")
    res.add_argument("--save-models", default=None, help="save each fold's model under this folder")
    res.add_argument("--out", default=None, help="model folder (with --data)")
    res.add_argument(
        "--no-resume", dest="resume", action="store_false", help="redo folds that exist"
    )

    for extra in _EXTRA_COMMANDS:
        extra(add)
    return parser


_EXTRA_COMMANDS: list[Callable] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 1 bad input or failure, 2 usage)."""
    from pretroost.utils import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose - args.quiet)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        log.error("%s", exc)
        return 1


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
