"""``fit`` (choose a model for your CSV by k-fold cross-validation) and ``fit-bench`` (the same
on Matbench's official folds)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap

from pretroost.cli.common import _add_overwrite_arg, _check_out
from pretroost.cli.config_options import add_config_options, config_from_args
from pretroost.configs import CANDIDATES, RULE, FitConfig
from pretroost.recipes import RECIPES

log = logging.getLogger("pretroost.cli")

#: FitConfig fields that are options of ``fit`` and ``fit-bench``
FIT_FIELDS = (
    "folds",
    "recipe",
    "epochs",
    "seed",
    "n_estimators",
    "inner_folds",
    "n_jobs",
    "device",
    "jobs",
)


def _fit_config(args: argparse.Namespace, **extra) -> FitConfig:
    if args.candidates is not None:
        extra["candidates"] = tuple(args.candidates)
    return config_from_args(FitConfig, args, FIT_FIELDS, band_gap=args.band_gap, **extra)


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("choice")
    g.add_argument(
        "--candidates", nargs="+", default=None, metavar="NAME",
        help=f"score these instead of the default rule ({', '.join(CANDIDATES)})",
    )  # fmt: skip
    g.add_argument(
        "--band-gap", action=argparse.BooleanOptionalAction, default=None,
        help="the target is a band gap: add trees+pbe (default: when the target column's name "
        "contains 'gap')",
    )  # fmt: skip
    add_config_options(g, FitConfig, FIT_FIELDS, help={
        "recipe": "the Roost recipe: "
        + "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values()),
        "epochs": "override the recipe's Roost epochs (trials; default: the recipe's)",
        "seed": "seeds the folds, the test split, the Roost trainings and the trees",
        "n_estimators": "trees per forest and boosting iterations of the trees candidates "
        "(default: a saved trees model's, TreesConfig.for_saving: 200 trees, 500 iterations)",
        "inner_folds": "folds of the trees' own inner cross-validation among its models and "
        "feature sets (default: TreesConfig's)",
        "n_jobs": "the forests' worker threads (default: scikit-learn's, one)",
        "device": "where Roost trains: cpu, cuda, ... (default: CPU)",
        "jobs": "trainings of the cross-validation run at once, each a process on one CPU "
        "thread (e.g. the number of cores; each holds its own copy of the data and model); "
        "the refit then runs alone",
    })  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None,
        help="no progress bar on a terminal (one log line per step instead; the default off a "
        "terminal)",
    )  # fmt: skip


def cmd_fit(args: argparse.Namespace) -> int:
    from pretroost.select_model import fit

    _check_out(args.out, args.overwrite, inputs=(args.data, args.test_data))
    result = fit(
        args.data, target_col=args.target_col, out=args.out, formula_col=args.formula_col,
        id_col=args.id_col, task_type=args.task_type, test_data=args.test_data,
        test_fraction=args.test_fraction, config=_fit_config(args), overwrite=args.overwrite,
        progress=args.progress,
    )  # fmt: skip
    lines = [
        result.table(),
        "",
        f"chosen: {result.chosen} ({result.reason})",
        f"rule: {result.rule}",
        f"saved: {result.path} (fit_report.json inside)",
    ]
    if result.test_scores is not None:
        lines.append("test: " + json.dumps(result.test_scores))
        lines += [f"  ({note})" for note in result.report["test"]["notes"]]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def register_fit(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Choose a model for your CSV by k-fold cross-validation on its training rows, refit the\n"
        "choice on all of them and save it as a model folder (pretroost predict --model DIR,\n"
        "pretroost.load(DIR)) with fit_report.json.\n\n"
        "Candidates (default rule): trees; trees+pbe where the target is a band gap (--band-gap,\n"
        "or 'gap' in --target-col); dft+trunk (Roost from the shipped dft-oqmd encoder and\n"
        "trunk); blend (mean of the best Roost and trees candidates); hurdle (the best\n"
        "regressor, 0 where a tree classifier says P(target = 0) > 0.5) where >= 10 % of the\n"
        "targets are exactly 0 and none is negative. All share the same --folds folds; blend\n"
        "and hurdle reuse their members' out-of-fold predictions.\n\n"
        + textwrap.fill(f"Rule: {RULE}", 88)
        + "\n\n"
        "The expected cost is logged before anything trains: with --recipe converged each\n"
        "Roost training takes minutes to tens of minutes on a CPU (k + 1 of them)."
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="your CSV of formulas and targets")
    d.add_argument("--target-col", default="target", help="target column")
    d.add_argument("--formula-col", default="formula", help="formula column")
    d.add_argument("--id-col", default=None, help="id column (checked for duplicates)")
    d.add_argument("--task-type", default="regression", choices=["regression", "classification"])
    t = d.add_mutually_exclusive_group()
    t.add_argument(
        "--test-data", default=None, metavar="FILE",
        help="score the refitted choice on your own test CSV (same columns)",
    )  # fmt: skip
    t.add_argument(
        "--test-fraction", type=float, default=0.0,
        help="hold out this random share of --data (--seed) as test rows before choosing; "
        "default 0: every row is used, and the CV error is the expected error",
    )  # fmt: skip
    _add_fit_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="the model folder to write")
    _add_overwrite_arg(o)


def cmd_fit_bench(args: argparse.Namespace) -> int:
    from pretroost.experiment.fit_bench import run_fit_task

    config = _fit_config(args)
    for task in args.tasks:
        rows = run_fit_task(
            task, config, results_dir=args.results_dir, runs_dir=args.runs_dir,
            strategy=args.strategy, folds=args.official_folds, resume=args.resume, progress=args.progress,
        )  # fmt: skip
        for r in rows:
            if r["metric"] in ("mae", "rocauc"):
                sys.stdout.write(
                    f"{r['strategy']} {r['task']} fold {r['fold']}: {r['metric']} "
                    f"{r['value']:.4f}\n"
                )
    return 0


def register_fit_bench(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run `pretroost fit` on each official training fold of Matbench tasks and score its\n"
        "choice on the test fold with Matbench's metrics; cells, benchmark.jsonl rows and a\n"
        "Matbench submission file are written like the bench's (strategy --strategy). The\n"
        "target is treated as a band gap where the task's name contains 'gap'."
    )
    p.add_argument("--tasks", nargs="+", required=True, help="Matbench tasks")
    p.add_argument("--official-folds", nargs="+", type=int, default=[0, 1, 2, 3, 4],
                   help="Matbench's folds to run (--folds is the k of fit's cross-validation)")  # fmt: skip
    p.add_argument("--results-dir", default="results/fit", help="where the cells go")
    p.add_argument("--runs-dir", default="runs/fit", help="where each fold's chosen model goes")
    p.add_argument("--strategy", default=None, help="the results' label (default: fit, or "
                   "fit-<recipe> for a recipe other than converged)")  # fmt: skip
    p.add_argument("--no-resume", dest="resume", action="store_false", help="redo done folds")
    _add_fit_options(p)
