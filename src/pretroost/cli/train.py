"""``pretrain``, ``finetune`` and ``ensemble``: the commands that train."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from pretroost.cli.common import (
    _add_arch_args,
    _add_model_args,
    _add_overwrite_arg,
    _add_train_args,
    _add_user_data_args,
    _check_out,
    _encoder_config,
    _finetune_config,
    _floats,
    _ints,
    _start_distributed,
    _train_config,
)
from pretroost.cli.config_options import add_config_options, config_from_args
from pretroost.cli.data import default_corpus
from pretroost.configs import (
    DFTConfig,
    FingerprintConfig,
    PretrainConfig,
    RoostConfig,
    SSLConfig,
    StructureConfig,
)

log = logging.getLogger("pretroost.cli")

SSL_FIELDS = ("mask_fraction", "mask_both", "amount_noise")


def cmd_finetune(args: argparse.Namespace) -> int:
    config = _finetune_config(args)
    if (args.task is None) == (args.data is None):
        raise SystemExit("finetune: give exactly one of --task (Matbench) or --data (your CSV)")
    if args.task is not None:
        from pretroost.evaluation.matbench import run_matbench_task

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
    """``finetune --data`` and ``ensemble``: check everything (the data, ``--out``), then
    :func:`pretroost.user_training.train_on_user_data`; prints ``metrics.json``."""
    from pretroost.folds import user_splits
    from pretroost.user_training import train_on_user_data

    out = _check_out(args.out, args.overwrite, inputs=(args.data, args.test_data))
    comps, y, test_set = _read_user_data(args, config)  # every check before anything is trained
    if args.test_data and k:
        raise ValueError("--test-data and --split kfold exclude each other")
    splits = user_splits(
        len(comps), source=str(args.data), test_data=args.test_data,
        test_fraction=args.test_fraction, seed=args.seed, k=k,
    )  # fmt: skip
    ctx = _start_distributed(args)
    metrics = train_on_user_data(
        comps, y, args.task_type, splits, config, out, test_set=test_set,
        source=str(args.data), target=args.target_col,
        test_source=args.test_data, seed=args.seed, n_members=n_members,
        member_split=member_split, checkpoint_dir=checkpoint_dir,
        remove_checkpoints=remove_checkpoints, split_subdirs=split_subdirs, resume=args.resume,
        device=args.device, write=ctx.is_main,
    )  # fmt: skip
    if ctx.is_main:
        sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
    return 0


def _finetune_custom(args: argparse.Namespace, config) -> int:
    from pretroost.artefacts import check_out_path

    if args.out is None:
        raise SystemExit("finetune --data needs --out DIR for the trained model")
    out = check_out_path(args.out)
    default_ckpt = out.with_name(out.name + ".ckpt")
    return _train_on_user_data(
        args, config, n_members=args.ensemble, k=args.k if args.split == "kfold" else None,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else default_ckpt,
        remove_checkpoints=not args.checkpoint_dir,
    )  # fmt: skip


def register_finetune(p: argparse.ArgumentParser) -> None:
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
    _add_train_args(p)
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


def cmd_ensemble(args: argparse.Namespace) -> int:
    return _train_on_user_data(
        args, _finetune_config(args), n_members=args.n, member_split=args.split,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
        remove_checkpoints=False, split_subdirs=False,
    )  # fmt: skip


def register_ensemble(p: argparse.ArgumentParser) -> None:
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
    _add_train_args(p)
    _add_arch_args(p, pretrain=False)
    p.add_argument("--out", required=True, help="model folder to write")
    _add_overwrite_arg(p)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from pretroost.data.corpus import Corpus, build_corpus
    from pretroost.data.dft_labels import label_set
    from pretroost.pretrain import pretrain

    _check_out(args.out, args.overwrite)
    if args.structures:
        corpus = build_corpus(
            oqmd=not args.no_oqmd, structures=args.structures, exclude=args.exclude or None
        )
    else:
        corpus = Corpus.load(args.corpus or default_corpus())
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
        train=_train_config(args, pretrain=True),
        ssl=config_from_args(SSLConfig, args, SSL_FIELDS, **head, **proj),
        fingerprint=FingerprintConfig(**head),
        structure=StructureConfig(teacher=args.teacher, **head),
        dft=DFTConfig(properties=label_set(args.dft_labels), **head),
        weights=weights,
        balance=args.balance,
        max_compositions=args.max_compositions,
        lr_scaling=args.lr_scaling,
        lr_reference_batch=args.lr_reference_batch,
        autocast=args.autocast,
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


def register_pretrain(p: argparse.ArgumentParser) -> None:
    add_config_options(p, PretrainConfig, ("objective",), help={
        "objective": "ssl | fingerprint | structure | dft | e.g. ssl+fingerprint"
    })  # fmt: skip
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
    add_config_options(p, StructureConfig, ("teacher",), help={"teacher": "crystal-twins | chgnet"})
    p.add_argument("--weights", default=None, help="loss weights per objective, e.g. 1,0.5")
    add_config_options(p, PretrainConfig, ("balance", "max_compositions"), help={
        "balance": "combinations without --weights: 'initial' scales each loss by 1 / its value "
        "at initialisation so that no objective dominates",
        "max_compositions": "pretrain on a random subset of this size",
    })  # fmt: skip
    add_config_options(p, PretrainConfig, ("lr_scaling", "lr_reference_batch", "autocast"), help={
        "lr_scaling": "scale --lr with --batch-size / --lr-reference-batch: none, sqrt or linear",
        "autocast": "native_bf16: bfloat16 autocast where the device has native BF16 (detected), "
        "fp32 elsewhere; off: --precision as given",
    })  # fmt: skip
    add_config_options(p, SSLConfig, SSL_FIELDS)
    add_config_options(p, RoostConfig, ("elem_embedding",))
    p.add_argument(
        "--dft-labels", default="oqmd4", choices=["oqmd4", "all", "all+perovskites"],
        help="--objective dft: the labels regressed: OQMD's four, or also Matbench's DFT tasks' "
        "(use a corpus from `pretroost corpus build --labels all`)",
    )  # fmt: skip
    p.add_argument("--checkpoint", default=None, help="resumable checkpoint (default: <out>.ckpt)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    _add_train_args(p, pretrain=True)
    _add_arch_args(p, pretrain=True)
