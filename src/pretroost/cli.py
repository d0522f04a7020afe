"""The ``pretroost`` command line: a thin layer over the library (``main(argv) -> exit code``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pretroost import __version__

log = logging.getLogger("pretroost.cli")

EXAMPLES = {
    "data": "pretroost data fetch",
    "corpus": "pretroost corpus build\n  pretroost corpus build --structures ../shared/data/structures/cdvae/perov_5/test.csv",
    "pretrain": (
        "pretroost pretrain --objective ssl --epochs 5 --out runs/ssl\n"
        "  pretroost pretrain --objective structure --no-oqmd --structures "
        "../shared/data/structures/cdvae/perov_5/val.csv --out runs/structure"
    ),
    "bench": "pretroost bench --preset budget\n  pretroost bench --preset smoke --strategies scratch ssl",
    "report": "pretroost report --results-dir results",
    "convergence": "pretroost convergence --tasks matbench_steels --seeds 0 1 2 --schedules cosine",
    "speed": "pretroost speed --threads 1\n  pretroost speed --quick",
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
        "--batch-size",
        type=int,
        default=batch_size,
        help=f"compositions per step, over all processes under torchrun (default {batch_size})",
    )
    g.add_argument("--lr", type=float, default=lr, help=f"peak AdamW learning rate (default {lr})")
    g.add_argument("--weight-decay", type=float, default=1e-6)
    g.add_argument("--schedule", default="cosine", help="cosine or constant")
    g.add_argument("--warmup-epochs", type=int, default=0)
    g.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    g.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16: bfloat16 autocast (faster on GPUs and CPUs with native BF16; on a CPU "
        "without it, emulated and many times slower: a WARNING is logged and training proceeds)",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """Initialisation and loss flags shared by ``finetune`` and ``ensemble``."""
    mdl = p.add_argument_group("model")
    mdl.add_argument(
        "--init", default="scratch",
        help="'scratch', or a folder whose encoder to start from: a pretrained encoder "
        "(pretroost pretrain --out), a finetuned model or an ensemble (its member 0)",
    )  # fmt: skip
    mdl.add_argument("--init-trunk", action="store_true", help="also load the pretrained trunk")
    mdl.add_argument(
        "--allow-partial", action="store_true",
        help="accept an --init folder whose encoder tensors do not match this model's exactly "
        "(missing ones stay at their initial values); by default that is an error",
    )  # fmt: skip
    mdl.add_argument("--freeze-encoder", action="store_true", help="train only the output network")
    mdl.add_argument("--encoder-lr-scale", type=float, default=1.0)
    mdl.add_argument(
        "--freeze-encoder-epochs",
        type=int,
        default=0,
        help="frozen warm-up: keep the encoder fixed for this many first epochs",
    )
    mdl.add_argument("--elem-embedding", default="matscholar200")
    mdl.add_argument("--loss", default=None, choices=["robust", "l1", "bce"])
    mdl.add_argument("--val-fraction", type=float, default=0.1)
    mdl.add_argument(
        "--threshold",
        default="0.5",
        choices=["0.5", "val_balanced_accuracy"],
        help="classification: label = probability > 0.5, or > the threshold that maximises "
        "balanced accuracy on the validation split (saved with the model)",
    )
    mdl.add_argument(
        "--class-weight",
        default="none",
        choices=["none", "balanced"],
        help="classification: 'balanced' weights positives by n_neg / n_pos of the training part",
    )


def _add_user_data_args(g, *, required: bool) -> None:
    """Your own CSV: shared by ``finetune --data`` and ``ensemble``."""
    g.add_argument("--data", required=required, help="your CSV of formulas and targets")
    g.add_argument("--formula-col", default="formula", help="formula column")
    g.add_argument("--target-col", default="target", help="target column")
    g.add_argument("--id-col", default=None, help="id column (checked for duplicates)")
    g.add_argument("--task-type", default="regression", choices=["regression", "classification"])
    g.add_argument(
        "--test-fraction", type=float, default=0.2,
        help="share of --data held out at random (--seed) as the test set; 0: train the final "
        "model on every row (its validation split still picks the best epoch), no test score",
    )  # fmt: skip
    g.add_argument(
        "--test-data", default=None, metavar="FILE",
        help="score on your own test CSV (same columns) instead; then every --data row trains",
    )  # fmt: skip


def _add_overwrite_arg(p) -> None:
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out folder (else refused)"
    )


def _train_config(args: argparse.Namespace, **extra):
    from pretroost.train import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, patience=args.patience,
        seed=args.seed, precision=args.precision, **extra,
    )  # fmt: skip


def _add_arch_args(p: argparse.ArgumentParser, *, pretrain: bool) -> None:
    """Model-size flags (defaults: the paper's Roost); small values make quick experiments/tests."""
    g = p.add_argument_group("architecture (advanced; default: the paper's Roost)")
    g.add_argument("--elem-fea-len", type=int, default=None, help="node/material vector width")
    g.add_argument("--n-graph", type=int, default=None, help="message-passing layers")
    g.add_argument("--heads", type=int, default=None, help="attention heads (messages and pooling)")
    g.add_argument(
        "--hidden",
        type=_ints,
        default=None,
        help="hidden widths of the gate/message MLPs, e.g. 256",
    )
    g.add_argument("--trunk-hidden", type=_ints, default=None, help="residual trunk widths")
    if pretrain:
        g.add_argument("--trunk-out", type=int, default=None, help="objective heads' trunk output")
        g.add_argument("--proj-dim", type=int, default=None, help="SSL projection width")
    else:
        g.add_argument(
            "--out-hidden", type=_ints, default=None, help="output network widths, e.g. 256,128,64"
        )
    g.add_argument(
        "--device", default=None,
        help="cpu, cuda, cuda:1, ... (default: CPU; under torchrun the rank's GPU when present)",
    )  # fmt: skip


def _encoder_config(args: argparse.Namespace):
    from pretroost.models.roost import RoostConfig

    kw: dict = {"elem_embedding": args.elem_embedding}
    if getattr(args, "elem_fea_len", None) is not None:
        kw["elem_fea_len"] = args.elem_fea_len
    if getattr(args, "n_graph", None) is not None:
        kw["n_graph"] = args.n_graph
    if getattr(args, "heads", None) is not None:
        kw["elem_heads"] = kw["cry_heads"] = args.heads
    if getattr(args, "hidden", None):
        kw.update(
            dict.fromkeys(("elem_gate", "elem_msg", "cry_gate", "cry_msg"), tuple(args.hidden))
        )
    return RoostConfig(**kw)


def _start_distributed(args: argparse.Namespace):
    """Join the torchrun process group if launched under one (else a no-op); quieter logs on
    ranks other than 0."""
    from pretroost import distributed

    ctx = distributed.init_from_env(device=getattr(args, "device", None))
    if not ctx.is_main:
        logging.getLogger("pretroost").setLevel(logging.WARNING)
    return ctx


# ------------------------------------------------------------------------------------------ data


def cmd_data(args: argparse.Namespace) -> int:
    from pretroost.data.fetch import fetch_all

    path = fetch_all(wheel_dir=Path(args.wheel_dir) if args.wheel_dir else None, force=args.force)
    log.info("data ready in %s", path)
    return 0


# -------------------------------------------------------------------------------------- finetune


def _finetune_config(args: argparse.Namespace):
    from pretroost.finetune import FinetuneConfig

    scale = 0.0 if args.freeze_encoder else args.encoder_lr_scale
    sizes = {
        k: tuple(getattr(args, k)) for k in ("trunk_hidden", "out_hidden") if getattr(args, k, None)
    }
    return FinetuneConfig(
        train=_train_config(
            args, encoder_lr_scale=scale, freeze_encoder_epochs=args.freeze_encoder_epochs
        ),
        encoder=_encoder_config(args),
        **sizes,
        loss=args.loss,
        init=args.init,
        init_trunk=args.init_trunk,
        allow_partial=args.allow_partial,
        val_fraction=args.val_fraction,
        threshold=args.threshold,
        class_weight=args.class_weight,
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    config = _finetune_config(args)
    if (args.task is None) == (args.data is None):
        raise SystemExit("finetune: give exactly one of --task (Matbench) or --data (your CSV)")
    if args.task is not None:
        from pretroost.benchmark import run_matbench_task

        if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
            raise ValueError(
                "finetune --task runs in one process (folds are small); use torchrun only for "
                "pretrain and finetune --data"
            )
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


def _check_out(out: str | Path, overwrite: bool) -> Path:
    """Refuse an existing, non-empty ``--out`` folder unless ``--overwrite`` (before any work)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(
            f"{out} exists; pass --overwrite to replace it, or choose another --out"
        )
    return out


def _read_user_data(args: argparse.Namespace, config):
    """``--data`` (and ``--test-data``) as compositions and targets, every row checked at once
    (with the element table of the model to be trained: the ``--init`` folder's own)."""
    from pretroost.data.tables import read_training_table
    from pretroost.finetune import init_elem_embedding

    kw = dict(
        formula_col=args.formula_col, target_col=args.target_col, id_col=args.id_col,
        task_type=args.task_type, elem_embedding=init_elem_embedding(config),
    )  # fmt: skip
    _, comps, y = read_training_table(args.data, **kw)
    test = read_training_table(args.test_data, **kw)[1:] if args.test_data else None
    return comps, y, test


def _test_splits(args: argparse.Namespace, n: int, *, k: int | None = None):
    """The user-data splits (``pretroost.folds``): all rows with ``--test-data``, ``k``-fold, or a
    random hold-out (``--test-fraction``, possibly 0: nothing held out); each decision is logged."""
    from pretroost.folds import all_rows_split, holdout_split, kfold_splits

    if args.test_data:
        if k:
            raise ValueError("--test-data and --split kfold exclude each other")
        log.info("training on all %d rows of %s; testing on %s", n, args.data, args.test_data)
        return all_rows_split(n)
    if not 0.0 <= args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    if k:
        log.info(
            "%s: %d-fold cross-validation over %d rows (--seed %d)", args.data, k, n, args.seed
        )
        return kfold_splits(n, k, args.seed)
    splits = holdout_split(n, args.test_fraction, args.seed)
    n_test = len(splits[0].test)
    if n_test:
        log.info(
            "%s: held out %d rows (%.0f %%) as test (--test-fraction %g, --seed %d); training on "
            "the other %d", args.data, n_test, 100 * n_test / n, args.test_fraction, args.seed,
            n - n_test,
        )  # fmt: skip
    else:
        log.info(
            "%s: training on all %d rows (--test-fraction 0: no test score; a validation split "
            "of them still picks the best epoch)", args.data, n,
        )  # fmt: skip
    return splits


def _test_report(fitted, pred: dict, comps, y: np.ndarray, task_type: str) -> dict:
    """Test scores of a model or ensemble; ensembles add uncertainty calibration (regression)
    and each member's headline score, so ``finetune --ensemble`` and ``ensemble`` report alike."""
    from pretroost.data.batching import CompositionDataset
    from pretroost.ensemble import Ensemble, uncertainty_scores
    from pretroost.metrics import CLF_THRESHOLD, HEADLINE, score, to_labels

    data = CompositionDataset(comps)
    key = "prob" if task_type == "classification" else "mean"
    values = pred[key][:, 0]
    if task_type == "classification":  # labels with the model's decision threshold
        values = to_labels(values, getattr(fitted, "threshold", CLF_THRESHOLD))
    scores = score(task_type, y[:, 0], values)
    report: dict[str, Any] = {"scores": scores}
    if isinstance(fitted, Ensemble):
        if task_type == "regression":
            scores.update(uncertainty_scores(y[:, 0], pred["mean"][:, 0], pred["std"][:, 0]))
        head = HEADLINE[task_type]
        members = [
            score(task_type, y[:, 0], m.predict_dataset(data)[key][:, 0])[head]
            for m in fitted.members
        ]
        report[f"member_{head}"] = members
        report[f"member_{head}_mean"] = float(np.mean(members))
    return report


def _train_on_user_data(
    args: argparse.Namespace,
    config,
    *,
    n_members: int,
    member_split: str = "different",
    k: int | None = None,
    checkpoint_dir: Path | None,
    remove_checkpoints: bool,
    split_subdirs: bool = True,
) -> int:
    """The one user-data path of ``finetune --data`` and ``ensemble``: check everything, hold out
    the test rows (or read ``--test-data``), train, score, save and write ``metrics.json``."""
    import shutil

    from pretroost.folds import run_splits
    from pretroost.utils import atomic_write_json

    comps, y, test_set = _read_user_data(args, config)  # every check before anything is trained
    out = _check_out(args.out, args.overwrite)
    splits = _test_splits(args, len(comps), k=k)
    ctx = _start_distributed(args)
    single = len(splits) == 1
    names = [out.name if single else f"{out.name} fold {s.index}" for s in splits]
    reports: list[dict] = []
    for result in run_splits(
        comps, y, args.task_type, splits, config, n_members=n_members, member_split=member_split,
        test_set=test_set, checkpoint_dir=checkpoint_dir, split_subdirs=split_subdirs,
        resume=args.resume, name=names, device=args.device,
    ):  # fmt: skip
        fitted, n_test, name = result.fitted, len(result.test_comps), names[result.split.index]
        where_test = args.test_data or (f"{n_test} held-out rows" if n_test else None)
        report: dict[str, Any] = {"n_train": len(result.split.train), "n_test": n_test}
        report["test"] = where_test
        if n_test:
            report.update(
                _test_report(fitted, result.pred, result.test_comps, result.test_y, args.task_type)
            )
            log.info(
                "%s: test %s", name, ", ".join(f"{m}={v:.4f}" for m, v in report["scores"].items())
            )
        fitted.info.update(source=str(args.data), n_test=n_test, test=where_test)
        fitted.info["test_seed"] = args.seed
        if ctx.is_main:  # data parallel: rank 0 alone writes
            fitted.save(out if single else out / f"fold_{result.split.index}")
        reports.append(report)
    if not ctx.is_main:
        return 0
    metrics: dict[str, Any] = reports[0]
    if len(reports) > 1:
        names = reports[0]["scores"]
        metrics = {
            "splits": reports,
            "summary": {
                m: {
                    "mean": float(np.mean([r["scores"][m] for r in reports])),
                    "std": float(np.std([r["scores"][m] for r in reports])),
                }
                for m in names
            },
        }
    atomic_write_json(out / "metrics.json", metrics)
    if checkpoint_dir is not None and remove_checkpoints:  # done: not needed any more
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
    return 0


def _finetune_custom(args: argparse.Namespace, config) -> int:
    if args.out is None:
        raise SystemExit("finetune --data needs --out DIR for the trained model")
    out = Path(args.out)
    default_ckpt = out.with_name(out.name + ".ckpt")
    return _train_on_user_data(
        args, config, n_members=args.ensemble, k=args.k if args.split == "kfold" else None,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else default_ckpt,
        remove_checkpoints=not args.checkpoint_dir,
    )  # fmt: skip


# ------------------------------------------------------------------------------- corpus/pretrain


def _default_corpus() -> Path:
    from pretroost.paths import cache_dir

    return cache_dir() / "corpus" / "oqmd-leakfree.npz"


def cmd_corpus(args: argparse.Namespace) -> int:
    from pretroost.data.corpus import build_corpus

    corpus = build_corpus(
        oqmd=not args.no_oqmd, structures=args.structures, exclude=args.exclude or None,
        include_matbench=args.include_matbench,
    )  # fmt: skip
    out = corpus.save(args.out or _default_corpus())
    report = corpus.info.get("exclusion_report", {})
    if report:
        cols = sorted({c for row in report.values() for c in row})
        lines = ["task".ljust(24) + "".join(c.rjust(max(14, len(c) + 2)) for c in cols)]
        for task, row in report.items():
            lines.append(
                task.ljust(24)
                + "".join(str(row.get(c, "")).rjust(max(14, len(c) + 2)) for c in cols)
            )
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write(
        f"corpus: {len(corpus)} compositions, hash {corpus.info['hash']}, "
        f"{corpus.info.get('removed_total', 0)} Matbench compositions removed -> {out}\n"
    )
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from pretroost.data.corpus import Corpus, build_corpus
    from pretroost.objectives import DFTConfig, FingerprintConfig, SSLConfig, StructureConfig
    from pretroost.pretrain import PretrainConfig, pretrain

    _check_out(args.out, args.overwrite)
    if args.structures:
        corpus = build_corpus(
            oqmd=not args.no_oqmd, structures=args.structures, exclude=args.exclude or None
        )
    else:
        corpus = Corpus.load(args.corpus or _default_corpus())
    weights = (
        tuple(
            (n, float(w))
            for n, w in zip(args.objective.split("+"), _floats(args.weights), strict=False)
        )
        if args.weights
        else ()
    )
    head: dict = {}
    if args.trunk_hidden:
        head["trunk_hidden"] = tuple(args.trunk_hidden)
    if args.trunk_out is not None:
        head["trunk_out"] = args.trunk_out
    proj = {"proj_dim": args.proj_dim} if args.proj_dim is not None else {}
    config = PretrainConfig(
        objective=args.objective,
        encoder=_encoder_config(args),
        train=_train_config(args),
        ssl=SSLConfig(
            mask_fraction=args.mask_fraction,
            mask_both=args.mask_both,
            amount_noise=args.amount_noise,
            **head,
            **proj,
        ),
        fingerprint=FingerprintConfig(**head),
        structure=StructureConfig(teacher=args.teacher, **head),
        dft=DFTConfig(**head),
        weights=weights,
        balance=args.balance,
        max_compositions=args.max_compositions,
    )
    checkpoint = (
        Path(args.checkpoint)
        if args.checkpoint
        else Path(args.out).with_name(Path(args.out).name + ".ckpt")
    )
    ctx = _start_distributed(args)
    out = pretrain(
        corpus, config, args.out, checkpoint=checkpoint, resume=args.resume, device=args.device
    )
    if ctx.is_main:
        sys.stdout.write(f"pretrained {args.objective} encoder -> {out}\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pretroost.experiment.bench import STRATEGIES, run_bench

    out = run_bench(
        args.preset, strategies=args.strategies or STRATEGIES, tasks=args.tasks or None,
        include_large=args.include_large, results_dir=args.results_dir, runs_dir=args.runs_dir,
        structures=args.structures or None, data_efficiency=not args.no_data_efficiency,
        folds=args.folds, data_efficiency_folds=args.data_efficiency_folds,
        pretrain_only=args.pretrain_only,
    )  # fmt: skip
    if args.pretrain_only:
        sys.stdout.write(f"pretrained encoders -> {out}\n")
    else:
        sys.stdout.write(out.read_text())
    return 0


def cmd_convergence(args: argparse.Namespace) -> int:
    from pretroost.experiment.convergence import convergence_check, format_summary

    for task in args.tasks:
        doc = convergence_check(
            task, preset=args.preset, fold=args.fold, seeds=args.seeds, factor=args.factor,
            schedules=args.schedules, results_dir=args.results_dir,
        )  # fmt: skip
        sys.stdout.write(format_summary(doc))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pretroost.experiment.report import write_report

    out = write_report(
        args.results_dir, preset=args.preset, runs_dir=args.runs_dir, readme=args.readme
    )
    sys.stdout.write(out.read_text())
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from pretroost.experiment import speed

    return speed.main(args.speed_args)


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


# ------------------------------------------------------------------------------------------ main


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and examples as written; every option's default shown, unless its help
    already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if "default" in (action.help or "").lower() or not action.option_strings:
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    """The installed distribution's version (metadata only: no torch, nothing heavy)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pretroost")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH
        return __version__


def _verbosity_args(p: argparse.ArgumentParser, *, default: Any) -> None:
    p.add_argument(
        "-v", "--verbose", action="count", default=default, help="more log output (repeatable)"
    )
    p.add_argument(
        "-q", "--quiet", action="count", default=default, help="less log output (repeatable)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pretroost",
        description="Pretrain structure-agnostic Roost models and benchmark them on Matbench.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pretroost {_version()}")
    _verbosity_args(parser, default=0)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str, **kw: Any
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help, description=help, epilog=f"example:\n  {EXAMPLES.get(name, '')}",
            formatter_class=_HelpFormatter, **kw,
        )  # fmt: skip
        p.set_defaults(func=func)
        if kw.get("add_help", True):  # -q/-v also after the command (not `speed`: its own parser)
            _verbosity_args(p, default=argparse.SUPPRESS)
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
    _add_user_data_args(src, required=False)
    src.add_argument(
        "--split", default="random", choices=["random", "kfold"],
        help="--data: one random test split (--test-fraction), or k-fold cross-validation",
    )  # fmt: skip
    src.add_argument("--k", type=int, default=5, help="folds for --split kfold")
    _add_model_args(p)
    _add_train_args(p, epochs=100)
    res = p.add_argument_group("output")
    res.add_argument(
        "--strategy", default=None, help="label for results (default: scratch / init folder)"
    )
    res.add_argument("--results-dir", default="results")
    res.add_argument("--save-models", default=None, help="save each fold's model under this folder")
    res.add_argument("--out", default=None, help="model folder (with --data)")
    _add_overwrite_arg(res)
    res.add_argument(
        "--ensemble", type=int, default=1, help="with --data: train a deep ensemble of N models"
    )
    res.add_argument(
        "--no-resume", dest="resume", action="store_false",
        help="redo folds that exist (--task); ignore existing checkpoints (--data)",
    )  # fmt: skip
    res.add_argument(
        "--resume", dest="resume", action="store_true",
        help="the default: skip finished folds (--task); continue from checkpoints (--data)",
    )  # fmt: skip
    res.add_argument(
        "--checkpoint-dir", default=None,
        help="--data: per-split resumable checkpoints (default: <out>.ckpt, removed when done)",
    )  # fmt: skip
    _add_arch_args(p, pretrain=False)

    p = add(
        "corpus",
        cmd_corpus,
        "Build the leak-free pretraining corpus (OQMD minus Matbench compositions).",
    )
    p.add_argument("action", choices=["build"])
    p.add_argument(
        "--out", default=None, help="corpus file (default: <cache>/corpus/oqmd-leakfree.npz)"
    )
    p.add_argument(
        "--exclude", nargs="*", default=None, help="Matbench tasks to exclude (default: all)"
    )
    p.add_argument("--include-matbench", action="store_true", help="exclude nothing")
    p.add_argument(
        "--structures", nargs="*", default=[], help="structure sets to add (CSV/json.gz/CIF dir)"
    )
    p.add_argument("--no-oqmd", action="store_true", help="only the structure sets")

    p = add(
        "pretrain",
        cmd_pretrain,
        "Pretrain a Roost encoder (ssl, fingerprint, structure, dft or a combination).",
    )
    p.add_argument(
        "--objective",
        default="ssl",
        help="ssl | fingerprint | structure | dft | e.g. ssl+fingerprint",
    )
    p.add_argument("--out", required=True, help="artefact folder to write")
    _add_overwrite_arg(p)
    p.add_argument("--corpus", default=None, help="corpus from `pretroost corpus build`")
    p.add_argument(
        "--structures", nargs="*", default=[], help="structure sets for the structure objective"
    )
    p.add_argument(
        "--no-oqmd", action="store_true", help="with --structures: only structure compositions"
    )
    p.add_argument(
        "--exclude", nargs="*", default=None, help="Matbench tasks to exclude (default: all)"
    )
    p.add_argument("--teacher", default="crystal-twins", help="crystal-twins | chgnet")
    p.add_argument("--weights", default=None, help="loss weights per objective, e.g. 1,0.5")
    p.add_argument(
        "--balance",
        default="initial",
        choices=["initial", "none"],
        help="combinations without --weights: 'initial' scales each loss by 1 / its value at "
        "initialisation so that no objective dominates (default: initial)",
    )
    p.add_argument("--max-compositions", type=int, default=None, help="pretrain on a random subset")
    p.add_argument("--mask-fraction", type=float, default=0.1)
    p.add_argument("--mask-both", action="store_true")
    p.add_argument("--amount-noise", type=float, default=0.0)
    p.add_argument("--elem-embedding", default="matscholar200")
    p.add_argument("--checkpoint", default=None, help="resumable checkpoint (default: <out>.ckpt)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    _add_train_args(p, epochs=10, batch_size=256, lr=1e-4)
    _add_arch_args(p, pretrain=True)

    p = add(
        "bench",
        cmd_bench,
        "Run (or resume) the pretraining-vs-scratch Matbench matrix and write the report.",
    )
    p.add_argument(
        "--preset", default="budget", help="budget (2-core CPU, ~2 h), paper (GPU), smoke"
    )
    p.add_argument(
        "--strategies",
        nargs="*",
        default=None,
        help="subset of: scratch ssl fingerprint structure ssl+fingerprint+structure "
        "(default: these five), or dft, dft+fingerprint (DFT-label pretraining); a pretrained "
        "one may carry variants, each one change: +trunk "
        "(also start the property model's trunk from the pretraining head's), +encoder_lr0.1, "
        "+frozen_warmup20, +strong_views (SSL pretrained on stronger views), e.g. ssl+trunk",
    )
    p.add_argument("--tasks", nargs="*", default=None, help="override the preset's tasks")
    p.add_argument("--include-large", action="store_true", help="also the mp_* tasks")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--runs-dir", default=None, help="pretrained artefacts (default runs/<preset>)")
    p.add_argument("--structures", nargs="*", default=None, help="structure sets for the teacher")
    p.add_argument("--no-data-efficiency", action="store_true")
    p.add_argument(
        "--folds", nargs="*", type=int, default=None, help="official folds (default: the preset's)"
    )
    p.add_argument(
        "--data-efficiency-folds",
        nargs="*",
        type=int,
        default=None,
        help="folds of the data-efficiency curves (default: the preset's; budget: 0)",
    )
    p.add_argument(
        "--pretrain-only", action="store_true", help="pretrain the encoders, finetune nothing"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")

    p = add(
        "convergence",
        cmd_convergence,
        "Check on validation data (one official training fold) that doubling a preset's "
        "finetuning epochs no longer improves scratch Roost beyond the seed spread.",
    )
    p.add_argument("--tasks", nargs="+", required=True, help="Matbench tasks")
    p.add_argument("--preset", default="converged", help="bench preset whose recipe is checked")
    p.add_argument("--fold", type=int, default=0, help="official fold (its training part only)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--factor", type=int, default=2, help="long run = factor x the recipe's epochs")
    p.add_argument(
        "--schedules",
        nargs="*",
        default=[],
        help="also run these schedules for the recipe's epochs",
    )
    p.add_argument("--results-dir", default="results/convergence")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")

    p = add(
        "report", cmd_report, "Rebuild results/README.md and plots from results/benchmark.jsonl."
    )
    p.add_argument("--results-dir", default="results")
    p.add_argument("--preset", default=None, help="the bench preset that made the results")
    p.add_argument(
        "--runs-dir", default=None, help="pretrained encoders: adds the linear probe and PCA map"
    )
    p.add_argument(
        "--readme",
        default=None,
        help="also write the overview table into this file, between the lines "
        "'<!-- pretroost report: overview -->' and '<!-- /pretroost report: overview -->'",
    )

    add(
        "speed",
        cmd_speed,
        "Throughput benchmark vs aviary-models and matminer (= python -m pretroost.speed; "
        "see `pretroost speed --help`).",
        add_help=False,  # --help reaches the benchmark's own parser
    )

    for extra in _EXTRA_COMMANDS:
        extra(add)
    for p in (parser, *sub.choices.values()):
        _show_defaults(p)
    return parser


def _show_defaults(p: argparse.ArgumentParser) -> None:
    """Options declared without help text still show their default in ``--help``."""
    for action in p._actions:
        if (
            action.option_strings
            and action.help is None
            and action.default is not argparse.SUPPRESS
        ):
            action.help = "(default: %(default)s)"


_EXTRA_COMMANDS: list[Callable] = []


# ------------------------------------------------------------------- predict / embed / ensemble
# (pretroost.predict and pretroost.ensemble; registered through _EXTRA_COMMANDS)

EXAMPLES.update(
    {
        "predict": (
            "pretroost predict --model models/demo formulas.csv -o preds.csv\n"
            "  printf 'Fe2O3\\nNaCl\\n' | pretroost predict --model models/demo -"
        ),
        "embed": "pretroost embed --model runs/ssl formulas.csv -o emb.parquet",
        "ensemble": (
            "pretroost ensemble --data my.csv --target-col gap --n 5 --epochs 100 --out models/gap5"
        ),
    }
)

_MAX_LOGGED_BAD_ROWS = 20


def _add_formula_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder (finetune/ensemble/pretrain --out)")
    p.add_argument(
        "input",
        help="CSV with a formula column, a file with one formula per line, or - (standard input)",
    )
    p.add_argument(
        "-o", "--output", default=None,
        help="output file, .csv or .parquet by extension (default: CSV on standard output)",
    )  # fmt: skip
    p.add_argument("--formula-col", default="formula", help="formula column (default: formula)")
    p.add_argument(
        "--id-col", default=None,
        help="id column copied to the output (default: 'id' when the input has one)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1024, help="compositions per forward pass")
    p.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, default=None,
        help="no progress bar (default: shown when stderr is a terminal)",
    )  # fmt: skip


def _read_formula_rows(args: argparse.Namespace):
    """The input's ([id], formula) columns, the id column used (or None) and the line offset."""
    from pretroost.predict import read_formula_input

    df = read_formula_input(args.input, formula_col=args.formula_col)
    offset = df.attrs.get("line_offset", 2)
    id_col = args.id_col
    if id_col is None and "id" in df.columns and args.formula_col != "id":
        id_col = "id"
    if id_col is not None and id_col not in df.columns:
        raise ValueError(f"{args.input}: no id column {id_col!r}; columns: {list(df.columns)}")
    if id_col is not None and df[id_col].duplicated().any():
        log.warning("%s: the id column %r has duplicates", args.input, id_col)
    keep = [c for c in (id_col, args.formula_col) if c is not None]
    return df[keep].reset_index(drop=True), id_col, offset


def _report_bad_rows(formulas: list, errors: list, offset: int, source: str) -> int:
    """Log each bad row (row, line, formula, reason); returns how many rows were good."""
    bad = [i for i, e in enumerate(errors) if e is not None]
    for i in bad[:_MAX_LOGGED_BAD_ROWS]:
        log.warning(
            "%s: row %d (line %d): formula %r: %s", source, i, i + offset, formulas[i], errors[i]
        )
    if len(bad) > _MAX_LOGGED_BAD_ROWS:
        more = len(bad) - _MAX_LOGGED_BAD_ROWS
        log.warning("... and %d more bad rows (see the error column)", more)
    n_good = len(errors) - len(bad)
    log.info("%s: %d rows done, %d failed", source, n_good, len(bad))
    if n_good == 0:
        log.error("%s: no row could be used", source)
    return n_good


def _with_ids(df, id_col: str | None, result, formula_col: str):
    import pandas as pd

    result = result.reset_index(drop=True).rename(columns={"formula": formula_col})
    return pd.concat([df[[id_col]], result], axis=1) if id_col else result


def cmd_predict(args: argparse.Namespace) -> int:
    from pretroost.predict import load, write_table

    model = load(args.model)
    df, id_col, offset = _read_formula_rows(args)
    formulas = df[args.formula_col].tolist()
    pred = model.predict(formulas, batch_size=args.batch_size, progress=args.progress)
    source = "<stdin>" if args.input == "-" else args.input
    n_good = _report_bad_rows(formulas, pred["error"].tolist(), offset, source)
    write_table(_with_ids(df, id_col, pred, args.formula_col), args.output)
    return 0 if n_good else 1


def cmd_embed(args: argparse.Namespace) -> int:
    from pretroost.predict import load, write_table

    model = load(args.model)
    df, id_col, offset = _read_formula_rows(args)
    formulas = df[args.formula_col].tolist()
    emb = model.embed_frame(
        formulas, member=args.member, batch_size=args.batch_size, progress=args.progress
    )
    source = "<stdin>" if args.input == "-" else args.input
    n_good = _report_bad_rows(formulas, emb["error"].tolist(), offset, source)
    write_table(_with_ids(df, id_col, emb, args.formula_col), args.output)
    return 0 if n_good else 1


def cmd_ensemble(args: argparse.Namespace) -> int:
    return _train_on_user_data(
        args, _finetune_config(args), n_members=args.n, member_split=args.split,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
        remove_checkpoints=False, split_subdirs=False,
    )  # fmt: skip


def _register_predict(add: Callable) -> None:
    p = add("predict", cmd_predict, "Predict a property for each formula with a trained model.")
    p.description = (
        "Predict a property for each formula with a trained model (finetuned or ensemble).\n\n"
        "Output: the id column (if any), the formula, then 'prediction' and 'std' (regression;\n"
        "ensembles add 'std_aleatoric' and 'std_epistemic', 'std' being their total) or\n"
        "'prediction' and 'probability' (classification), then 'error'. Rows keep the input\n"
        "order. A formula that cannot be used keeps its row, with empty predictions and the\n"
        "reason in 'error'; each is also logged with its row and line number.\n\n"
        "Exit status: 0 if at least one row was predicted, 1 if none was (or on bad input)."
    )
    _add_formula_input_args(p)


def _register_embed(add: Callable) -> None:
    p = add("embed", cmd_embed, "Write the encoder's material vector for each formula.")
    p.description = (
        "Write the encoder's material vector for each formula (any model folder, pretrained\n"
        "encoders included).\n\n"
        "Output: the id column (if any), the formula, emb_0 .. emb_{d-1}, then 'error' (empty\n"
        "vector and the reason for a formula that cannot be used). Rows keep the input order.\n\n"
        "Exit status: 0 if at least one row was embedded, 1 if none was (or on bad input)."
    )
    _add_formula_input_args(p)
    p.add_argument(
        "--member", type=int, default=0,
        help="ensembles: whose encoder (members' latent spaces differ; default 0)",
    )  # fmt: skip


def _register_ensemble(add: Callable) -> None:
    p = add(
        "ensemble", cmd_ensemble,
        "Train a deep ensemble of Roost models on your CSV and save it as one model folder.",
    )  # fmt: skip
    p.description = (
        "Train a deep ensemble (Lakshminarayanan et al. 2017) of N Roost models with seeds\n"
        "seed, seed+1, ... on your CSV, save it as ONE model folder, and score it on a random\n"
        "held-out test split (--test-fraction; 0 trains on all rows; --test-data scores your own\n"
        "test file): the same split as `finetune --data` with the same --seed, so the scores\n"
        "compare. Writes metrics.json (the same report as `finetune --data --ensemble N`:\n"
        "ensemble and per-member scores, uncertainty calibration) into the folder.\n"
        "Predictions carry total, aleatoric and epistemic standard deviations (pretroost predict)."
    )
    _add_user_data_args(p.add_argument_group("data"), required=True)
    ens = p.add_argument_group("ensemble")
    ens.add_argument("--n", type=int, default=5, help="members (default 5)")
    ens.add_argument(
        "--split", default="different", choices=["different", "same"],
        help="members' validation splits: each its own (default) or one shared",
    )  # fmt: skip
    ens.add_argument("--checkpoint-dir", default=None, help="per-member resumable checkpoints")
    ens.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    _add_model_args(p)
    _add_train_args(p, epochs=100)
    _add_arch_args(p, pretrain=False)
    p.add_argument("--out", required=True, help="model folder to write")
    _add_overwrite_arg(p)


_EXTRA_COMMANDS.extend([_register_predict, _register_embed, _register_ensemble])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 1 bad input or failure, 2 usage)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)  # --help/--version exit here, before torch loads
    from pretroost.utils import setup_logging

    if getattr(args, "func", None) is cmd_speed:  # `speed` has its own parser: it takes the rest
        args.speed_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    setup_logging(args.verbose - args.quiet)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as exc:
        # our input errors are ValueError (FormulaError, TableError, ArtefactError,
        # StructureError) or FileNotFoundError (DataNotFetchedError, WeightsNotFoundError)
        log.error("%s", exc)
        return 1
    finally:
        if "pretroost.distributed" in sys.modules:
            sys.modules["pretroost.distributed"].shutdown()


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
