"""The experiment's commands (``pretroost.experiment``): ``bench``, ``select``, ``trees``, ``blend``,
``hurdle``, ``convergence``, ``demo``, ``report``, ``speed``, ``teacher-probe``, ``trees-size``,
``encoder-validation`` and ``scale-report``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pretroost.configs import FEATURE_SETS, TREE_MODELS, TREE_THRESHOLD_RULES, TreesConfig

log = logging.getLogger("pretroost.cli")


def cmd_bench(args: argparse.Namespace) -> int:
    from pretroost.experiment.bench import STRATEGIES, run_bench

    out = run_bench(
        args.preset, strategies=args.strategies or STRATEGIES, tasks=args.tasks or None,
        include_large=args.include_large, results_dir=args.results_dir, runs_dir=args.runs_dir,
        structures=args.structures or None, data_efficiency=not args.no_data_efficiency,
        folds=args.folds, data_efficiency_folds=args.data_efficiency_folds,
        pretrain_only=args.pretrain_only, select=args.select or (), select_label=args.select_label,
        seeds=args.seeds,
    )  # fmt: skip
    if args.pretrain_only:
        sys.stdout.write(f"pretrained encoders -> {out}\n")
    else:
        sys.stdout.write(out.read_text())
    return 0


def register_bench(p: argparse.ArgumentParser) -> None:
    from pretroost.experiment.presets import PRESETS
    from pretroost.experiment.strategies import (
        EXTRA_STRATEGIES,
        FINETUNE_VARIANTS,
        PRETRAIN_VARIANTS,
        STRATEGIES,
    )

    p.add_argument(
        "--preset",
        default="budget",
        choices=list(PRESETS),
        help="; ".join(f"{k}: {v.summary}" for k, v in PRESETS.items()) + " (default: budget)",
    )
    variants = [f"+{k}" for k in (*PRETRAIN_VARIANTS, *FINETUNE_VARIANTS)]
    on_scratch = [f"scratch+{k}" for k, v in FINETUNE_VARIANTS.items() if v.scratch]
    p.add_argument(
        "--strategies",
        nargs="*",
        default=None,
        help=f"subset of: {' '.join(STRATEGIES)} (default: these {len(STRATEGIES)}), or "
        f"{', '.join(EXTRA_STRATEGIES)} (DFT-label pretraining); a pretrained one may carry "
        f"variants, each one declared change ({', '.join(variants)}; see "
        "pretroost.experiment.strategies), e.g. fingerprint+trunk or "
        "dft+labels_all+e30+bf16+trunk (pretraining variants in the order listed); scratch "
        f"takes {', '.join(on_scratch)}",
    )
    p.add_argument("--tasks", nargs="*", default=None, help="override the preset's tasks")
    p.add_argument("--include-large", action="store_true", help="also the mp_* tasks")
    p.add_argument("--results-dir", default="results")
    p.add_argument(
        "--runs-dir", default=None,
        help="pretrained encoders (default runs/<preset>), one folder per encoder, e.g. "
        "dft_labels_all_e30_bf16 for dft+labels_all+e30+bf16(+trunk); a folder already there "
        "is reused only if its config.json records the same pretraining settings and corpus, "
        "so an encoder from `pretroost pretrain` with those settings, copied there under that "
        "name, is finetuned without pretraining again (see pretroost.experiment.strategies)",
    )  # fmt: skip
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
    p.add_argument(
        "--select",
        nargs="+",
        default=None,
        metavar="CAND",
        help="after the cells, per task and fold, pick among these strategies (of --strategies) "
        "the one with the best validation score on the training fold (never the test fold; ties: "
        "the first listed) and record it as strategy 'select(CAND|...)' (default: no selection)",
    )
    p.add_argument(
        "--select-label", default=None, help="name of the --select strategy (default: select(...))"
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="finetuning seeds per fold on every task of this run (default: the preset's; "
        "converged: 0 1 2 on steels, jdft2d and phonons, 0 elsewhere)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def cmd_select(args: argparse.Namespace) -> int:
    from pretroost.evaluation.matbench import select_strategy

    for task in args.tasks:
        select_strategy(args.results_dir, task, args.candidates, label=args.label)
    return 0


def register_select(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results-dir", default="results", help="a bench's results (default: results)")
    p.add_argument("--tasks", nargs="+", required=True, help="Matbench tasks")
    p.add_argument(
        "--candidates", nargs="+", required=True, help="strategies to choose among, in tie order"
    )
    p.add_argument(
        "--label", default=None, help="the selection's strategy name (default: select(...))"
    )


def cmd_trees(args: argparse.Namespace) -> int:
    from pretroost.data.matbench import get_task
    from pretroost.evaluation.trees import run_trees_task

    config = _trees_config(args, threshold=args.threshold, saving=bool(args.out))
    regression = [t for t in args.tasks if get_task(t).task_type != "classification"]
    if args.threshold != "fixed" and regression:
        raise ValueError(
            f"trees: --threshold {args.threshold} is for classification; regression tasks "
            f"given: {', '.join(regression)}"
        )
    if args.test_data and not args.data:
        raise ValueError("trees: --test-data goes with --data (--tasks use the official folds)")
    if args.data or args.out:
        return _save_trees(args, config)
    if not args.tasks:
        raise SystemExit("trees: give --tasks (Matbench folds), or --data CSV --out DIR")
    strategy = args.strategy or (
        "trees+valthreshold" if args.threshold == "validation" else "trees"
    )
    for task in args.tasks:
        rows = run_trees_task(
            task, config, results_dir=args.results_dir, strategy=strategy, folds=args.folds
        )
        name = get_task(task).name
        picked = [r for r in rows if r["metric"] in ("mae", "rocauc")]
        for r in picked:
            sys.stdout.write(
                f"{strategy} {name} fold {r['fold']}: {r['metric']} {r['value']:.4f}\n"
            )
    return 0


def _save_trees(args: argparse.Namespace, config) -> int:
    """``--out``: one model on the rows of ``--data`` (your CSV; a random ``--test-fraction``
    held out and scored, or every row with ``--test-data`` scored on that file, as
    ``finetune --data``) or on every row of each of ``--tasks`` (a Matbench dataset, saved to
    OUT/<task>; no test score, the inner folds choose the model)."""
    from pretroost.cli.common import _check_out
    from pretroost.data.matbench import get_task, training_rows
    from pretroost.trees import fit_trees, save_trees

    if not args.out:
        raise SystemExit("trees --data CSV needs --out DIR, the folder for the model")
    if bool(args.data) == bool(args.tasks):
        raise SystemExit("trees --out DIR needs exactly one of --data CSV or --tasks")
    if args.data:
        return _save_trees_on_data(args, config)
    for name in args.tasks:
        task = get_task(name)
        comps, y = training_rows(task.name)
        out = _check_out(Path(args.out) / task.name, args.overwrite)
        fitted = fit_trees(comps, y, task.task_type, config)
        save_trees(
            fitted, out, config=config, data=f"{task.name}, Matbench v0.1", n_train=len(y),
            target=task.target, id_col="id",
        )  # fmt: skip
        _print_saved(out, fitted)
    return 0


def _print_saved(out: Path, fitted) -> None:
    best = f"{fitted.model}/{fitted.features}"
    # inner_scores are minimised: classification stores minus the balanced accuracy
    inner = fitted.inner_scores[best]
    clf = fitted.task_type == "classification"
    what = ("balanced accuracy", -inner) if clf else ("MAE", inner)
    sys.stdout.write(
        f"{out}: {best}, inner cross-validation {what[0]} {what[1]:.4g}"
        + (f", threshold {fitted.threshold:.4g}" if clf else "")
        + "\n"
    )


def _save_trees_on_data(args: argparse.Namespace, config) -> int:
    """``trees --data``: the test split of ``finetune --data`` (:func:`~pretroost.folds.user_splits`: ``--test-data``, or ``--test-fraction`` of the rows drawn with ``--seed``),
    the model chosen and fitted on the training rows, scored on the test rows, saved with
    ``metrics.json`` (the report ``finetune --data`` writes)."""
    import json

    from pretroost.artefacts import register_files
    from pretroost.cli.common import _check_out
    from pretroost.data.tables import read_training_table
    from pretroost.folds import user_splits
    from pretroost.metrics import user_scores
    from pretroost.trees import fit_trees, save_trees
    from pretroost.utils import atomic_write_json

    kw = dict(
        formula_col=args.formula_col, target_col=args.target_col, id_col=args.id_col,
        task_type=args.task_type,
    )  # fmt: skip
    _, comps, y = read_training_table(args.data, **kw)  # every check before anything is fitted
    test_set = read_training_table(args.test_data, **kw)[1:] if args.test_data else None
    out = _check_out(args.out, args.overwrite)
    (split,) = user_splits(
        len(comps), source=str(args.data), test_data=args.test_data,
        test_fraction=args.test_fraction, seed=args.seed,
    )  # fmt: skip
    test_comps, test_y = test_set or (comps.subset(split.test), y[split.test])
    fitted = fit_trees(comps.subset(split.train), y[split.train, 0], args.task_type, config)
    n_test = len(test_y)
    where = args.test_data or (f"{n_test} held-out rows" if n_test else None)
    report: dict = {"n_train": len(split.train), "n_test": n_test, "test": where}
    if n_test:
        values = fitted.predict(test_comps)  # classification: probabilities of class 1
        report["scores"], notes = user_scores(
            args.task_type, test_y[:, 0], values, threshold=fitted.threshold
        )
        if notes:
            report["notes"] = notes
        log.info(
            "%s: test %s", out.name, ", ".join(f"{m}={v:.4f}" for m, v in report["scores"].items())
        )
    test = {"data": where, "n_test": n_test, "seed": args.seed, "scores": report.get("scores")}
    save_trees(
        fitted, out, config=config, data=str(args.data), n_train=len(split.train),
        target=args.target_col, id_col=args.id_col, test=test,
    )  # fmt: skip
    atomic_write_json(out / "metrics.json", report)
    register_files(out, ["metrics.json"])
    _print_saved(out, fitted)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


def register_trees(p: argparse.ArgumentParser) -> None:
    from pretroost.cli.common import _add_overwrite_arg, _add_user_data_args

    p.description = (
        "Tree ensembles on composition features, the candidate chosen by cross-validation on\n"
        "the training rows. With --tasks: per official Matbench fold, cells in the bench layout\n"
        "under --results-dir. With --out: one model on --data (your CSV; --test-fraction held out\n"
        "and scored, or --test-data, as finetune --data) or on every row of each task, saved as a\n"
        "folder that `pretroost predict --model` and pretroost.load() read."
    )
    default = TreesConfig()
    p.add_argument("--tasks", nargs="+", default=[], help="Matbench tasks")
    p.add_argument("--out", default=None, help="save a model trained on every row here")
    _add_user_data_args(
        p.add_argument_group("your data (with --out)"), required=False,
        all_rows="the inner cross-validation still chooses the candidate",
    )  # fmt: skip
    _add_overwrite_arg(p)
    p.add_argument("--results-dir", default="results", help="where the cells go (bench layout)")
    p.add_argument(
        "--strategy", default=None,
        help="the cells' strategy name (default: trees, or trees+valthreshold with "
        "--threshold validation)",
    )  # fmt: skip
    p.add_argument(
        "--threshold", choices=TREE_THRESHOLD_RULES, default=default.threshold,
        help="classification: label at 0.5 (fixed) or at the threshold that maximises the "
        "balanced accuracy of the inner folds' out-of-fold probabilities (validation)",
    )  # fmt: skip
    p.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    _add_tree_options(p)


def _add_tree_options(p: argparse.ArgumentParser) -> None:
    """The candidates, caps and inner cross-validation of :class:`~pretroost.configs.TreesConfig`
    (the caps' defaults: a saved model's, :meth:`TreesConfig.for_saving`, with ``--out``)."""
    default, saving = TreesConfig(), TreesConfig.for_saving()

    def both(name: str) -> str:
        return f"default {getattr(default, name)}; a saved model (--out): {getattr(saving, name)}"

    p.add_argument("--models", nargs="+", choices=TREE_MODELS, default=list(default.models))
    p.add_argument("--features", nargs="+", choices=FEATURE_SETS, default=list(default.features))
    p.add_argument(
        "--n-estimators", type=int, default=None,
        help=f"trees per forest and iterations of gradient boosting ({both('n_estimators')}; a "
        f"saved model's gradient boosting: {saving.iterations} iterations)",
    )  # fmt: skip
    p.add_argument(
        "--min-samples-leaf", type=int, default=None,
        help=f"forests: fewest training rows in a leaf ({both('min_samples_leaf')})",
    )  # fmt: skip
    p.add_argument(
        "--max-leaf-nodes", default=None, metavar="N|none",
        help=f"forests: most leaves per tree, none for no cap ({both('max_leaf_nodes')})",
    )  # fmt: skip
    p.add_argument("--inner-folds", type=int, default=default.inner_folds)
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--jobs", type=int, default=None, help="forest worker threads (default: 1)")


def _trees_config(args: argparse.Namespace, *, saving: bool = False, **extra):
    """:class:`~pretroost.configs.TreesConfig` from :func:`_add_tree_options`' flags; ``saving``:
    a model saved for use, whose caps default to :meth:`TreesConfig.for_saving`'s."""
    caps = {"n_estimators": args.n_estimators, "boosting_iterations": args.n_estimators,
            "min_samples_leaf": args.min_samples_leaf}  # fmt: skip
    given = {k: v for k, v in caps.items() if v is not None}
    if args.max_leaf_nodes is not None:  # given: a number, or none (no cap)
        text = str(args.max_leaf_nodes).lower()
        if text != "none" and not text.isdigit():
            raise ValueError(
                f"--max-leaf-nodes takes a number or none, not {args.max_leaf_nodes!r}"
            )
        given["max_leaf_nodes"] = None if text == "none" else int(text)
    make = TreesConfig.for_saving if saving else TreesConfig
    return make(
        models=tuple(args.models), features=tuple(args.features), inner_folds=args.inner_folds,
        seed=args.seed, n_jobs=args.jobs, **given, **extra,
    )  # fmt: skip


def cmd_blend(args: argparse.Namespace) -> int:
    from pretroost.experiment.blend import blend_label, parse_part, write_blend

    parts = [parse_part(p) for p in args.parts]
    name = args.name or blend_label(parts)
    rows = write_blend(args.results_dir, parts, args.tasks, name=name, folds=args.folds)
    for r in rows:
        if r["metric"] in ("mae", "rocauc"):
            sys.stdout.write(
                f"{name} {r['task']} fold {r['fold']}: {r['metric']} {r['value']:.4f}\n"
            )
    return 0


def register_blend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "parts", nargs="+",
        help="STRATEGY[@SEEDS][=WEIGHT], e.g. dft+trunk trees, or dft+trunk@0-4=5 dft+trunk+fourier@0-2=3",
    )  # fmt: skip
    p.add_argument("--tasks", nargs="+", required=True, help="Matbench tasks")
    p.add_argument("--results-dir", default="results", help="a bench's results (default: results)")
    p.add_argument("--name", default=None, help="the blend's strategy name (default: blend(...))")
    p.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])


def cmd_hurdle(args: argparse.Namespace) -> int:
    from pretroost.experiment.blend import parse_part
    from pretroost.experiment.hurdle import write_hurdle

    config = _trees_config(args, saving=bool(args.out))
    if args.out or args.data or args.regressor:
        return _save_hurdle(args, config)
    if not args.parts or not args.tasks:
        raise ValueError(
            "hurdle: give strategies and --tasks (Matbench folds), or --data CSV --regressor DIR "
            "--out DIR (a model)"
        )
    if args.name and len(args.parts) != 1:
        raise ValueError("hurdle: --name names one hurdle; give one strategy with it")
    for part in [parse_part(p) for p in args.parts]:
        rows = write_hurdle(
            args.results_dir, part, args.tasks, name=args.name, folds=args.folds, config=config
        )
        for r in rows:
            if r["metric"] == "mae":
                sys.stdout.write(
                    f"{r['strategy']} {r['task']} fold {r['fold']}: mae {r['value']:.4f}\n"
                )
    return 0


def _save_hurdle(args: argparse.Namespace, config) -> int:
    """``--out``: the zero classifier fitted on every row of ``--data`` and saved with a copy of
    the ``--regressor`` folder (trained on the same rows) as one hurdle model."""
    from pretroost.cli.common import _check_out
    from pretroost.data.tables import read_training_table
    from pretroost.hurdle import check_regressor_target, fit_zero_classifier, save_hurdle

    if not (args.out and args.data and args.regressor) or args.parts or args.tasks:
        raise ValueError("hurdle: a model needs --data CSV, --regressor DIR and --out DIR only")
    _check_out(Path(args.out), args.overwrite)
    allow = args.allow_unknown_target
    check_regressor_target(args.regressor, args.target_col, allow_unknown_target=allow)
    _, comps, y = read_training_table(
        args.data, formula_col=args.formula_col, target_col=args.target_col,
        id_col=args.id_col, task_type="regression",
    )  # fmt: skip
    fitted = fit_zero_classifier(comps, y[:, 0], config)
    save_hurdle(
        args.out, regressor=args.regressor, classifier=fitted, config=config,
        data=str(args.data), n_train=len(y), target=args.target_col, allow_unknown_target=allow,
        id_col=args.id_col,
    )  # fmt: skip
    best = f"{fitted.model}/{fitted.features}"
    sys.stdout.write(
        f"{args.out}: zero classifier {best}, inner balanced accuracy "
        f"{-fitted.inner_scores[best]:.4g}\n"
    )
    return 0


def register_hurdle(p: argparse.ArgumentParser) -> None:
    from pretroost.cli.common import _add_overwrite_arg

    p.description = (
        "A tree classifier of target == 0 (pretroost trees' candidates, chosen by inner\n"
        "cross-validation) sets a regressor's predictions to 0 where its probability exceeds\n"
        "0.5, where the median, the MAE's best prediction, is 0 (band gaps of metals).\n"
        "With strategies and --tasks: per official fold, fitted on the training rows, each\n"
        "strategy's test predictions (seeds averaged) written as strategy hurdle(<part>).\n"
        "With --data CSV --regressor DIR --out DIR: a model folder holding both, for\n"
        "`pretroost predict --model` and pretroost.load() (train the regressor on the same CSV)."
    )
    p.add_argument(
        "parts", nargs="*", help="STRATEGY[@SEEDS], one hurdle each, e.g. dft+trunk@0-9 trees"
    )
    p.add_argument("--tasks", nargs="+", default=[], help="Matbench regression tasks")
    p.add_argument("--results-dir", default="results", help="a bench's results (default: results)")
    p.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--name",
        default=None,
        help="the hurdle's strategy name (one strategy; default: hurdle(...))",
    )
    p.add_argument("--data", default=None, help="your CSV of formulas and targets (with --out)")
    p.add_argument(
        "--regressor", default=None,
        help="a regression model folder (with --out) trained on the same target (--target-col)",
    )  # fmt: skip
    p.add_argument(
        "--allow-unknown-target", action="store_true",
        help="accept a --regressor that records no target name (else refused: it cannot be "
        "checked to predict --target-col)",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="the hurdle model's folder")
    p.add_argument("--formula-col", default="formula", help="--data: formula column")
    p.add_argument("--target-col", default="target", help="--data: target column")
    p.add_argument("--id-col", default=None, help="--data: id column (checked for duplicates)")
    _add_overwrite_arg(p)
    _add_tree_options(p)  # the classifier's candidates, as for `pretroost trees`


def cmd_convergence(args: argparse.Namespace) -> int:
    from pretroost.experiment.convergence import convergence_check, format_summary

    for task in args.tasks:
        doc = convergence_check(
            task, preset=args.preset, fold=args.fold, seeds=args.seeds, factor=args.factor,
            schedules=args.schedules, results_dir=args.results_dir,
        )  # fmt: skip
        sys.stdout.write(format_summary(doc))
    return 0


def register_convergence(p: argparse.ArgumentParser) -> None:
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


def cmd_demo(args: argparse.Namespace) -> int:
    from pretroost.experiment.demo import run_demo

    text = run_demo(task=args.task, fold=args.fold, encoder=args.encoder, recipe=args.recipe,
                    epochs=args.epochs, results_dir=args.results_dir)  # fmt: skip
    sys.stdout.write(text)
    return 0


def register_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="matbench_steels", help="a Matbench task")
    p.add_argument("--fold", type=int, default=0, help="official fold")
    p.add_argument(
        "--encoder", default=None, help="shipped encoder name or folder (default: first shipped)"
    )
    from pretroost.recipes import RECIPES  # light: no torch

    p.add_argument(
        "--recipe", default="quick", choices=list(RECIPES),
        help="finetuning recipe (pretroost.recipes); default quick: a demo in minutes",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=int, default=None, help="finetuning epochs (default: the recipe's)"
    )
    p.add_argument("--results-dir", default="runs/demo")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def cmd_report(args: argparse.Namespace) -> int:
    from pretroost.experiment.report import write_report

    out = write_report(
        args.results_dir, preset=args.preset, runs_dir=args.runs_dir, readme=args.readme
    )
    sys.stdout.write(out.read_text())
    return 0


def register_report(p: argparse.ArgumentParser) -> None:
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


def cmd_speed(args: argparse.Namespace) -> int:
    from pretroost.experiment import finetune_speed, pretrain_speed, speed

    # imported for their measurements (dft_epoch, dft_heldout; finetune_epoch)
    assert pretrain_speed.VARIANTS and finetune_speed.EPOCHS
    return speed.main(args)


#: ``pretroost.experiment.speed.MEASUREMENTS`` (named here: the parser loads no torch)
MEASUREMENT_NAMES = (
    "machine", "train", "steels", "flops", "fingerprint", "ssl_epoch", "teachers", "ready",
    "finetune_epoch", "dft_epoch", "dft_heldout",
)  # fmt: skip


def register_speed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=None, help="OQMD compositions (default 20000)")
    p.add_argument("--quick", action="store_true", help="smoke run: small data, one round")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per comparison (3)")
    p.add_argument("--batch-sizes", default=None, help="sweep, comma-separated (128,256,512,1024)")
    p.add_argument(
        "--only", default=None, help=f"comma-separated subset of {list(MEASUREMENT_NAMES)}"
    )
    p.add_argument("--out", type=Path, default=Path("results/speed.json"), help="JSON output")
    p.add_argument("--foreach-adamw", action="store_true", help="AdamW foreach (default fused)")
    p.add_argument("--no-tune-malloc", action="store_true", help="keep glibc malloc defaults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--baseline", default=None,
        help="a commit to time this code against (finetune_epoch; default: this code alone)",
    )  # fmt: skip
    p.add_argument(
        "--merge",
        action="store_true",
        help="update only the selected measurements of an existing --out file",
    )


def cmd_teacher_probe(args: argparse.Namespace) -> int:
    from pretroost.experiment.teacher_probe import run_probe

    run_probe(
        args.path, dataset=args.dataset, out=args.out, n=args.n, chgnet=not args.no_chgnet,
        seed=args.seed,
    )  # fmt: skip
    return 0


def register_teacher_probe(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="phonons", help="phonons or carbon_24")
    p.add_argument("--path", type=Path, default=None, help="the dataset file")
    p.add_argument("--out", type=Path, default=Path("results/teacher_probe.json"))
    p.add_argument("--n", type=int, default=None, help="only the first N structures")
    p.add_argument("--no-chgnet", action="store_true")
    p.add_argument("--seed", type=int, default=0)


def cmd_trees_size(args: argparse.Namespace) -> int:
    from pretroost.experiment.trees_size import format_table, measure_trees_size
    from pretroost.utils import atomic_write_json, atomic_write_text

    doc = measure_trees_size(
        args.tasks, fold=args.fold, min_samples_leaf=args.min_samples_leaf,
        max_leaf_nodes=args.max_leaf_nodes, n_estimators=args.n_estimators, inner_folds=args.inner_folds, seed=args.seed,
        n_jobs=args.jobs,
    )  # fmt: skip
    command = (
        f"pretroost trees-size --tasks {' '.join(args.tasks)} --fold {args.fold} "
        f"--min-samples-leaf {' '.join(map(str, args.min_samples_leaf))} "
        f"--max-leaf-nodes {' '.join(map(str, args.max_leaf_nodes))} "
        f"--n-estimators {' '.join(map(str, args.n_estimators))} --inner-folds "
        f"{args.inner_folds} --seed {args.seed}" + (f" --jobs {args.jobs}" if args.jobs else "")
    )
    doc["command"] = command
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), doc)
    table = format_table(doc, command)
    atomic_write_text(out.with_suffix(".md"), table)
    sys.stdout.write(table)
    return 0


def register_trees_size(p: argparse.ArgumentParser) -> None:
    from pretroost.experiment.trees_size import CANDIDATES

    p.description = (
        "Inner cross-validated error (MAE; 1 - ROC AUC for classification) vs size on disk of\n"
        "a saved trees model, per cap (forests: min_samples_leaf, max_leaf_nodes) and number of\n"
        "trees or boosting iterations, on one official fold's training rows\n"
        "(results/trees_size.{json,md})."
    )
    p.add_argument("--tasks", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--fold", type=int, default=0, help="official fold (its training rows only)")
    p.add_argument("--min-samples-leaf", nargs="+", type=int, default=[1, 2])
    p.add_argument(
        "--max-leaf-nodes", nargs="*", type=int, default=[512, 1024],
        help="caps of max_leaf_nodes (each with min_samples_leaf 1)",
    )  # fmt: skip
    p.add_argument(
        "--n-estimators", nargs="+", type=int, default=[100, 200, 500],
        help="trees per forest, or iterations of gradient boosting (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--inner-folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None, help="forest worker threads (default: 1)")
    p.add_argument("--out", default="results/trees_size", help="writes OUT.json and OUT.md")


def cmd_encoder_validation(args: argparse.Namespace) -> int:
    from pretroost.experiment.encoder_validation import validate_encoders

    rows = validate_encoders(
        args.encoders, args.tasks, folds=args.folds, seeds=args.seeds, recipe=args.recipe,
        init_trunk=not args.no_trunk, out=args.out, threads=args.threads,
    )  # fmt: skip
    for r in rows:
        sys.stdout.write(
            f"{r['task']} {r['encoder']} fold {r['fold']} seed {r['seed']}: "
            f"{r['metric']} {r['value']:.4g}\n"
        )
    sys.stdout.write(f"table: {args.out}.md\n")
    return 0


def register_encoder_validation(p: argparse.ArgumentParser) -> None:
    from pretroost.recipes import RECIPES

    p.description = (
        "Compare pretrained encoders on training rows only: per task and official fold, 20 %\n"
        "of the fold's training rows held out once (seeded by the fold: each fold one replicate);\n"
        "each encoder finetuned on the rest and scored there (no test fold read). Rows go to\n"
        "OUT.jsonl (resumable per task, encoder, seed, fold and recipe), a table to OUT.md;\n"
        "`pretroost scale-report` compares the encoders over the replicates."
    )
    p.add_argument("--encoders", nargs="+", required=True,
                   help="scratch, a shipped name (dft-oqmd) or a pretrained folder")  # fmt: skip
    p.add_argument("--tasks", nargs="+", required=True, help="Matbench tasks")
    p.add_argument(
        "--folds", "--fold", dest="folds", nargs="+", type=int, default=[0],
        help="official folds, each its own design split of its training rows (--fold is an "
        "alias; default: 0)",
    )  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--recipe", choices=sorted(RECIPES), default="converged")
    p.add_argument("--no-trunk", action="store_true", help="do not load the pretrained trunk")
    p.add_argument("--out", default="results/scale/encoder_validation")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def cmd_scale_report(args: argparse.Namespace) -> int:
    from pretroost.experiment.scaling import write_scale_report

    md = write_scale_report(
        args.encoders, validation=args.validation, reference=args.reference, recipe=args.recipe,
        out=args.out, test_strategy=args.test_strategy, test_rows=args.test_rows,
        confirm_strategy=args.confirm_strategy,
    )  # fmt: skip
    sys.stdout.write(md.read_text())
    return 0


def register_scale_report(p: argparse.ArgumentParser) -> None:
    from pretroost.recipes import RECIPES

    p.description = (
        "Exploratory report on the scaling of supervised DFT pretraining: per pretrained encoder\n"
        "its pretraining (labels, compositions, epochs, precision, held-out loss, wall time), the\n"
        "held-out loss curves, and per task the design-validation scores of `pretroost\n"
        "encoder-validation` with the paired difference vs --reference (and scratch) in %, mean\n"
        "± standard error over (fold, seed) pairs; positive = worse than the reference; and\n"
        "the choice of the encoder by the declared rule, once every encoder has every design row.\n"
        "Writes OUT/scaling.md, scaling.json, heldout_loss.png and validation.png."
    )
    p.add_argument(
        "--encoders", nargs="+", required=True, metavar="NAME_OR_DIR",
        help="pretrained folders or shipped encoder names; scratch rows are read wherever they "
        "exist",
    )  # fmt: skip
    p.add_argument(
        "--validation", default="results/scale/encoder_validation.jsonl",
        help="rows of `pretroost encoder-validation` (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--reference", default="dft-oqmd",
        help="the encoder the others are compared with, paired per task, fold and seed "
        "(default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--recipe", choices=sorted(RECIPES), default="converged",
        help="read the rows of this finetuning recipe (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--out", default="results/scale/scaling", help="output folder (default: %(default)s)"
    )
    p.add_argument(
        "--test-strategy", default=None, metavar="STRATEGY",
        help="also judge this bench strategy's test-fold cells (the chosen encoder, seeds 0-2) "
        "against dft+trunk and scratch by the declared rule (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--confirm-strategy", default=None, metavar="STRATEGY",
        help="also judge this bench strategy's cells on the confirmation tasks (log_kvrh, "
        "log_gvrh, dielectric; seeds 0-2) against dft+trunk and scratch by the declared rule "
        "(default: none)",
    )  # fmt: skip
    p.add_argument(
        "--test-rows", default="results/converged/benchmark.jsonl",
        help="the benchmark rows holding those cells (test folds and confirmation) and the baselines' (default: %(default)s)",
    )  # fmt: skip
