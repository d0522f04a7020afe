"""``ship``: copy a pretrained encoder into the package (:mod:`pretroost.shipping`)."""

from __future__ import annotations

import argparse
import shlex
import sys


def cmd_ship(args: argparse.Namespace) -> int:
    from pretroost.pretrained import ROOT
    from pretroost.shipping import ship

    command = "pretroost ship " + shlex.join(
        [args.src, "--name", args.name, "--dtype", args.dtype]
        + (["--root", args.root] if args.root else [])
        + (["--pretrained-by", args.pretrained_by] if args.pretrained_by else [])
    )
    out = ship(
        args.src, args.name, dtype=args.dtype, command=command, pretrained_by=args.pretrained_by,
        root=args.root or ROOT, overwrite=args.overwrite,
    )  # fmt: skip
    sys.stdout.write(f"shipped encoder -> {out}\n")
    return 0


def register_ship(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="a pretrained artefact folder (pretroost pretrain / bench)")
    p.add_argument("--name", required=True, help="the shipped name, e.g. fingerprint-oqmd")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="storage dtype of the weights")  # fmt: skip
    p.add_argument("--root", default=None, help="destination folder (default: the package's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing one")
    p.add_argument(
        "--pretrained-by",
        "--made-by",  # the name the shipped fingerprint-oqmd card records
        default="",
        help="the command that pretrained SRC (for the card and config.json's shipped.pretrained_by)",
    )
