"""``ready``: build the ready property models shipped in the package, and score their shipped
forms on Matbench's official folds."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_ready(args: argparse.Namespace) -> int:
    from pretroost.ready import RECIPES

    names = args.names or list(RECIPES)
    if args.action == "list":
        for name, recipe in RECIPES.items():
            sys.stdout.write(f"{name}\t{recipe.task or '-'}\t{recipe.quantity}\n")
        return 0
    if args.action in ("build", "card"):
        from pretroost.experiment.ready_build import build_ready, refresh_card

        make = build_ready if args.action == "build" else refresh_card
        for name in names:
            out = make(name, root=args.root, results_dir=args.results_dir)
            sys.stdout.write(f"{args.action} {name} -> {out}\n")
        return 0
    from pretroost.experiment.ready_scores import check_dft, score_ready, summarise

    scored = [n for n in names if RECIPES[n].kind != "dft"]
    for name in scored:
        score_ready(name, results_dir=args.results_dir, folds=args.folds)
    if "oqmd-dft" in names:
        check_dft(args.results_dir)
    report = summarise(args.results_dir, scored)
    sys.stdout.write(json.dumps(report["models"], indent=1) + "\n")
    return 0


def register_ready(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Ready property models (pretroost.ready): 'build' trains each on every row of its\n"
        "Matbench task and writes it into the package (src/pretroost/pretrained/NAME, atomically);\n"
        "'score' fits the same recipe on each official training fold and scores it on the test\n"
        "fold (scores and uncertainty calibration in --results-dir; oqmd-dft: compared with\n"
        "Materials Project PBE values of mp_gap / mp_e_form); 'card' rewrites a built\n"
        "folder's card and evaluation from --results-dir without refitting; 'list' names them."
    )
    p.add_argument("action", choices=["build", "score", "card", "list"])
    p.add_argument("names", nargs="*", help="ready models (default: all)")
    p.add_argument("--root", default=None, help="build: destination (default: the package's)")
    p.add_argument("--results-dir", default="results/ready",
                   help="where the 5-fold scores are (written by score, read by build)")  # fmt: skip
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="score: official folds")  # fmt: skip
