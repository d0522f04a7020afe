"""The ``pretroost`` command line: a thin layer over the library (``main(argv) -> exit code``).

Each subcommand lives in a module of this package (``train``: data, corpus, pretrain, finetune,
ensemble; ``predict``: predict, embed; ``serve``: serve; ``fit``: fit, fit-bench;
``experiment``: bench, select, report, convergence, speed, teacher-probe, encoder-validation,
scale-report, ...) as ``cmd_<name>(args)``
and ``register_<name>(parser)``; :data:`COMMANDS` lists them. Options that set a config field are
declared from the config dataclass itself
(:mod:`pretroost.cli.config_options`), so each default is written once, in the dataclass.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pretroost import __version__
from pretroost.errors import DirtyTreeError

log = logging.getLogger("pretroost.cli")

EXAMPLES = {
    "data": "pretroost data fetch",
    "corpus": "pretroost corpus build\n  pretroost corpus build --structures ../shared/data/structures/cdvae/perov_5/test.csv",
    "pretrain": (
        "pretroost pretrain --objective ssl --epochs 5 --out runs/ssl\n"
        "  pretroost pretrain --objective structure --no-oqmd --structures "
        "../shared/data/structures/cdvae/perov_5/val.csv --out runs/structure"
    ),
    "bench": (
        "pretroost bench --preset budget\n  pretroost bench --preset smoke --strategies scratch ssl\n"
        "  pretroost bench --preset smoke --strategies scratch scratch+ens5 fingerprint "
        "--select scratch fingerprint"
    ),
    "report": "pretroost report --results-dir results",
    "trees": "pretroost trees --tasks matbench_steels --results-dir results",
    "encoder-validation": (
        "pretroost encoder-validation --encoders scratch dft-oqmd --tasks matbench_steels "
        "--folds 0 1 2"
    ),
    "scale-report": (
        "pretroost scale-report --encoders dft-oqmd runs/scale/dft-all-e10 "
        "--out results/scale/scaling"
    ),
    "blend": "pretroost blend dft+trunk trees --tasks matbench_steels --results-dir results",
    "hurdle": (
        "pretroost hurdle dft+trunk@0-9 trees --tasks matbench_expt_gap --results-dir results\n"
        "  pretroost hurdle --data gaps.csv --target-col gap --regressor models/gap "
        "--out models/gap_hurdle"
    ),
    "fit": (
        "pretroost fit --data my.csv --target-col gap --out models/gap\n"
        "  pretroost fit --data my.csv --target-col y --recipe quick --folds 3 --out models/try"
    ),
    "fit-bench": (
        "pretroost fit-bench --tasks matbench_steels --recipe quick --results-dir results/fit-quick"
    ),
    "select": "pretroost select --tasks matbench_steels --candidates scratch fingerprint",
    "demo": "pretroost demo\n  pretroost demo --task matbench_expt_gap --epochs 30",
    "ship": "pretroost ship runs/converged/fingerprint --name fingerprint-oqmd",
    "ready": "pretroost ready score expt-gap\n  pretroost ready build expt-gap\n  pretroost ready list",
    "convergence": "pretroost convergence --tasks matbench_steels --seeds 0 1 2 --schedules cosine",
    "speed": "pretroost speed --threads 1\n  pretroost speed --quick",
    "teacher-probe": "pretroost teacher-probe --n 256 --no-chgnet",
    "finetune": (
        "pretroost finetune --task matbench_steels --folds 0 --recipe quick\n"
        "  pretroost finetune --task expt_gap --init runs/ssl --strategy ssl\n"
        "  pretroost finetune --data my.csv --target-col gap --task-type regression --out my_model"
    ),
}
EXAMPLES.update(
    {
        "predict": (
            "pretroost predict --model models/demo formulas.csv -o preds.csv\n"
            "  printf 'Fe2O3\\nNaCl\\n' | pretroost predict --model models/demo -"
        ),
        "embed": "pretroost embed --model runs/ssl formulas.csv -o emb.parquet",
        "ensemble": (
            "pretroost ensemble --data my.csv --target-col gap --n 5 --recipe quick --out models/gap5"
        ),
        "serve": "pretroost serve\n  pretroost serve --model models/gap --port 8001",
    }
)


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, the module (``pretroost.cli.<module>``) holding ``run(args)``
    and ``register(parser)`` (which declares its options), and its one-line help."""

    name: str
    module: str
    run: str
    register: str
    help: str

    def function(self, attr: str) -> Callable:
        return getattr(importlib.import_module(f"pretroost.cli.{self.module}"), attr)


#: every subcommand, in ``pretroost --help`` order
COMMANDS: tuple[Command, ...] = (
    Command("demo", "experiment", "cmd_demo", "register_demo",
            "Finetune from scratch and from a shipped pretrained encoder on one small task and "
            "fold; print both scores side by side (a few minutes on 2 cores)."),
    Command("data", "data", "cmd_data", "register_data",
            "Fetch Matbench targets, official folds and the OQMD corpus into the cache."),
    Command("finetune", "train", "cmd_finetune", "register_finetune",
            "Train Roost (from scratch or a pretrained encoder) and score it."),
    Command("fit", "fit", "cmd_fit", "register_fit",
            "Choose a model for your CSV (trees, pretrained Roost, their blend, a hurdle) by "
            "k-fold cross-validation on its training rows; refit and save the choice."),
    Command("corpus", "data", "cmd_corpus", "register_corpus",
            "Build the leak-free pretraining corpus (OQMD minus Matbench compositions)."),
    Command("pretrain", "train", "cmd_pretrain", "register_pretrain",
            "Pretrain a Roost encoder (ssl, fingerprint, structure, dft or a combination)."),
    Command("bench", "experiment", "cmd_bench", "register_bench",
            "Run (or resume) the pretraining-vs-scratch Matbench matrix and write the report."),
    Command("select", "experiment", "cmd_select", "register_select",
            "Per task and fold, pick among bench strategies the one with the best validation score "
            "(training fold only) and record the picks as a strategy of their own."),
    Command("trees", "experiment", "cmd_trees", "register_trees",
            "Reference model: tree ensembles on composition features, chosen per official fold by "
            "cross-validation on its training rows; cells written like the bench's."),
    Command("encoder-validation", "experiment", "cmd_encoder_validation",
            "register_encoder_validation",
            "Compare pretrained encoders finetuned and scored on training rows only (design "
            "choices of pretraining, before any test fold)."),
    Command("scale-report", "experiment", "cmd_scale_report", "register_scale_report",
            "Exploratory report on pretrained encoders side by side: their pretraining, held-out "
            "loss curves and paired design-validation differences vs a reference encoder."),
    Command("trees-size", "experiment", "cmd_trees_size", "register_trees_size",
            "Benchmark: what capping a saved forest's trees costs in inner-CV MAE vs file size."),
    Command("blend", "experiment", "cmd_blend", "register_blend",
            "Write a declared blend (per fold the weighted mean of strategies' test predictions) "
            "as a strategy of its own, with its Matbench submission file."),
    Command("hurdle", "experiment", "cmd_hurdle", "register_hurdle",
            "Set a regressor's predictions to 0 where a tree classifier of target == 0 says "
            "P > 0.5 (band gaps of metals): on Matbench folds, or as a model folder."),
    Command("fit-bench", "fit", "cmd_fit_bench", "register_fit_bench",
            "Run `pretroost fit` on each official training fold of Matbench tasks and score its "
            "choice on the test fold; cells written like the bench's."),
    Command("convergence", "experiment", "cmd_convergence", "register_convergence",
            "Check on validation data (one official training fold) that doubling a preset's "
        "finetuning epochs no longer improves scratch Roost beyond the seed spread."),
    Command("report", "experiment", "cmd_report", "register_report",
            "Rebuild results/README.md and plots from results/benchmark.jsonl."),
    Command("speed", "experiment", "cmd_speed", "register_speed",
            "Throughput benchmark: ours vs aviary-models and matminer, side by side."),
    Command("teacher-probe", "experiment", "cmd_teacher_probe", "register_teacher_probe",
            "Probe the structure teachers' embeddings with ridge regressions (results/teacher_probe.json)."),
    Command("predict", "predict", "cmd_predict", "register_predict",
            "Predict a property for each formula with a trained model."),
    Command("embed", "predict", "cmd_embed", "register_embed",
            "Write the encoder's material vector for each formula."),
    Command("ship", "ship", "cmd_ship", "register_ship",
            "Copy a pretrained encoder into the package (src/pretroost/pretrained/NAME) with its "
            "model card and reference embeddings, so that `--init NAME` works offline."),
    Command("ready", "ready", "cmd_ready", "register_ready",
            "Build the ready property models shipped in the package (expt-gap, glass, ...) and "
            "score their shipped forms on the official folds."),
    Command("ensemble", "train", "cmd_ensemble", "register_ensemble",
            "Train a deep ensemble of Roost models on your CSV and save it as one model folder."),
    Command("serve", "serve", "cmd_serve", "register_serve",
            "A local web page: formulas in, predictions with their uncertainty, in-domain flag and "
            "nearest training compositions out (browser, no code)."),
)  # fmt: skip


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


def _allow_dirty_arg(p: argparse.ArgumentParser, *, default: Any) -> None:
    p.add_argument(
        "--allow-dirty", action="store_true", default=default,
        help="record result cells although the package (src/pretroost) has uncommitted changes: "
        "the git diff is stored beside each cell, its sha256 in each row",
    )  # fmt: skip


#: commands that write result cells (the store refuses them from a modified package): checked
#: before they start, not after an hour of training
_RECORDS_ALWAYS = frozenset({"bench", "select", "blend", "demo", "fit-bench"})
_RECORDS_WITH_TASKS = frozenset({"finetune", "trees", "hurdle"})


def _records_cells(args: argparse.Namespace) -> bool:
    name = args.func.name
    tasks = getattr(args, "task", None) or getattr(args, "tasks", None)
    model_only = name in ("trees", "hurdle") and getattr(args, "out", None)  # a model, no cells
    return name in _RECORDS_ALWAYS or (
        name in _RECORDS_WITH_TASKS and bool(tasks) and not model_only
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; ``only``: declare the options of this command alone (the others are
    listed by name and help), so that ``--version`` or a quick command loads nothing heavy."""
    parser = argparse.ArgumentParser(
        prog="pretroost",
        description="Pretrain structure-agnostic Roost models and benchmark them on Matbench.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pretroost {_version()}")
    _verbosity_args(parser, default=0)
    _allow_dirty_arg(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True)

    for command in COMMANDS:
        p = sub.add_parser(
            command.name, help=command.help, description=command.help,
            epilog=f"example:\n  {EXAMPLES.get(command.name, '')}", formatter_class=_HelpFormatter,
        )  # fmt: skip
        p.set_defaults(func=command)
        _verbosity_args(p, default=argparse.SUPPRESS)  # -q/-v also after the command
        _allow_dirty_arg(p, default=argparse.SUPPRESS)
        if only is None or only == command.name:  # options of the others: not needed (fast)
            command.function(command.register)(p)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 1 bad input or failure, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    names = {c.name for c in COMMANDS}
    parser = build_parser(only=next((a for a in argv if a in names), ""))
    args = parser.parse_args(argv)  # --help/--version exit here, before torch loads
    from pretroost.utils import git_sha, setup_logging

    setup_logging(args.verbose - args.quiet)
    git_sha()  # the revision this process runs, before anything long (it is cached)
    if args.allow_dirty:
        from pretroost.results import ALLOW_DIRTY_ENV

        os.environ[ALLOW_DIRTY_ENV] = "1"  # read by the results store (and worker processes)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        if _records_cells(args):
            from pretroost.results import check_source  # start-up time: loaded per command

            check_source()
        return int(args.func.function(args.func.run)(args) or 0)
    except DirtyTreeError as exc:
        log.error("%s", exc)
        return 1
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
