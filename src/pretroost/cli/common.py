"""Options and helpers shared by the commands: the optimisation, model, architecture and
user-data flags (their defaults read from the config dataclasses), the configs built from them."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from pretroost.cli.config_options import add_config_options, attribute_docs, config_from_args
from pretroost.configs import FinetuneConfig, PretrainConfig, RoostConfig, TrainConfig
from pretroost.recipes import DEFAULT_RECIPE, RECIPES, SMALL_ROWS, Recipe, get_recipe

log = logging.getLogger("pretroost.cli")


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


#: TrainConfig fields that are options of every training command
TRAIN_FIELDS = (
    "epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_epochs", "patience", "seed",
    "precision",
)  # fmt: skip
#: FinetuneConfig fields that are options of ``finetune`` and ``ensemble``
FINETUNE_FIELDS = ("init", "init_trunk", "allow_partial", "loss", "val_fraction", "threshold",
                   "class_weight", "val_metric", "descriptors", "amount_encoding")  # fmt: skip
TRAIN_HELP = {
    "batch_size": "compositions per step, over all processes under torchrun",
    "precision": "bf16: bfloat16 autocast (faster on GPUs and CPUs with native BF16; on a CPU "
    "without it, emulated and many times slower: a WARNING is logged and training proceeds)",
}


def _add_train_args(p: argparse.ArgumentParser, *, pretrain: bool = False) -> None:
    """The optimisation flags, from ``TrainConfig``: for pretraining, with the defaults of
    ``PretrainConfig().train``; for finetuning, ``--recipe`` (:mod:`pretroost.recipes`) and the
    flags it sets default to the recipe's values (a flag given replaces the recipe's)."""
    g = p.add_argument_group("optimisation")
    if pretrain:
        add_config_options(g, TrainConfig, TRAIN_FIELDS, defaults=PretrainConfig().train,
                           help=TRAIN_HELP)  # fmt: skip
    else:
        g.add_argument(
            "--recipe", default=DEFAULT_RECIPE, choices=list(RECIPES),
            help="the finetuning recipe, default converged: "
            + "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values()),
        )  # fmt: skip
        docs = attribute_docs(TrainConfig)
        recipe_help = {
            f: f"{TRAIN_HELP.get(f) or docs.get(f, '').replace('%', '%%')} (default: the "
            "recipe's: "
            + ", ".join(f"{r.name} {_recipe_value(r, f)}" for r in RECIPES.values())
            + ")"
            for f in Recipe.TRAIN_FIELDS
        }
        # FinetuneConfig().train is TrainConfig's defaults with the recipe's fields set; those
        # are None here (not given: the recipe's value)
        defaults = argparse.Namespace(
            **{**TrainConfig().to_dict(), **dict.fromkeys(Recipe.TRAIN_FIELDS)}
        )
        add_config_options(g, TrainConfig, TRAIN_FIELDS, defaults=defaults,
                           help={**TRAIN_HELP, **recipe_help})  # fmt: skip
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def _recipe_value(recipe: Recipe, field: str) -> str:
    value = getattr(recipe, field)
    if field == "batch_size" and recipe.small_batch_size is not None:
        return f"{value} ({recipe.small_batch_size} under {SMALL_ROWS} training rows)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """Initialisation and loss flags shared by ``finetune`` and ``ensemble`` (``FinetuneConfig``)."""
    mdl = p.add_argument_group("model")
    add_config_options(mdl, FinetuneConfig, FINETUNE_FIELDS, help={
        "init": "'scratch', or a folder whose encoder to start from: a pretrained encoder "
        "(pretroost pretrain --out), a finetuned model or an ensemble (its member 0)",
        "amount_encoding": "'fourier': the encoder also reads sines and cosines of each "
        "element's amount (a pretrained encoder without them gets zero weights for them); "
        "'none': the paper's Roost; default: the encoder's own",
    })  # fmt: skip
    mdl.add_argument("--freeze-encoder", action="store_true", help="train only the output network")
    add_config_options(mdl, TrainConfig, ("encoder_lr_scale", "freeze_encoder_epochs"))
    add_config_options(mdl, RoostConfig, ("elem_embedding",))


def _add_user_data_args(
    g, *, required: bool, all_rows: str = "its validation split still picks the best epoch"
) -> None:
    """Your own CSV: shared by ``finetune --data``, ``ensemble`` and ``trees --data``
    (``all_rows``: what still selects the model when every row trains)."""
    g.add_argument("--data", required=required, help="your CSV of formulas and targets")
    g.add_argument("--formula-col", default="formula", help="formula column")
    g.add_argument("--target-col", default="target", help="target column")
    g.add_argument("--id-col", default=None, help="id column (checked for duplicates)")
    g.add_argument("--task-type", default="regression", choices=["regression", "classification"])
    g.add_argument(
        "--test-fraction", type=float, default=0.2,
        help="share of --data held out at random (--seed) as the test set; 0: train the final "
        f"model on every row ({all_rows}), no test score",
    )  # fmt: skip
    g.add_argument(
        "--test-data", default=None, metavar="FILE",
        help="score on your own test CSV (same columns) instead; then every --data row trains",
    )  # fmt: skip


def _add_overwrite_arg(p) -> None:
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing --out folder that pretroost wrote (only the files it wrote "
        "there are removed; a folder holding anything else is refused, naming it)",
    )  # fmt: skip


def _train_config(args: argparse.Namespace, *, pretrain: bool = False, **extra) -> TrainConfig:
    """The ``TrainConfig`` of the optimisation flags (others: the command's defaults; for
    finetuning, the ``--recipe``'s)."""
    if pretrain:
        return config_from_args(
            TrainConfig, args, TRAIN_FIELDS, base=PretrainConfig().train, **extra
        )
    base = FinetuneConfig.from_recipe(getattr(args, "recipe", DEFAULT_RECIPE)).train
    given = {f: getattr(args, f) for f in TRAIN_FIELDS if getattr(args, f, None) is not None}
    return dataclasses.replace(base, **{**given, **extra})


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


def _encoder_config(args: argparse.Namespace) -> RoostConfig:
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


def _check_out(
    out: str | Path, overwrite: bool, *, inputs: tuple[str | Path | None, ...] = ()
) -> Path:
    """Check ``--out`` before any work: never the current directory or a folder above it, nor a
    folder holding an input file (``inputs``); an existing, non-empty folder only with
    ``--overwrite``, and then only one that holds nothing but what pretroost wrote there
    (:func:`pretroost.artefacts.check_replaceable` names anything else)."""
    from pretroost.artefacts import (  # imports torch: at run time only
        check_out_path,
        check_replaceable,
    )

    out = check_out_path(out)
    for path in inputs:
        if path is not None and out.resolve() in Path(path).resolve().parents:
            raise ValueError(
                f"--out {out} would hold the input {path}: --out must name a new or "
                "pretroost-written folder of its own"
            )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"{out} exists; pass --overwrite to replace it, or choose another --out"
            )
        check_replaceable(out)
    return out


def _finetune_config(args: argparse.Namespace) -> FinetuneConfig:
    scale = 0.0 if args.freeze_encoder else args.encoder_lr_scale
    sizes = {
        k: tuple(getattr(args, k)) for k in ("trunk_hidden", "out_hidden") if getattr(args, k, None)
    }
    train = _train_config(
        args, encoder_lr_scale=scale, freeze_encoder_epochs=args.freeze_encoder_epochs
    )
    recipe = get_recipe(getattr(args, "recipe", DEFAULT_RECIPE))
    # a batch size given by hand is used whatever the training-set size
    small = recipe.small_batch_size if getattr(args, "batch_size", None) is None else None
    return config_from_args(
        FinetuneConfig, args, FINETUNE_FIELDS, train=train, encoder=_encoder_config(args),
        small_batch_size=small, **sizes,
    )  # fmt: skip
