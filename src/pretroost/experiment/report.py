"""Turn ``results/benchmark.jsonl`` into ``results/README.md`` tables and PNG plots.

Every number in the report is computed here from the rows the benchmark wrote (no hand edits): per
task, mean ± std over folds per strategy, the change vs scratch, and on how many folds a strategy
beat scratch; Matbench leaderboard values are quoted beside them with their source.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretroost.data.matbench import get_task
from pretroost.experiment.encoder_probe import encoder_embeddings, linear_probe
from pretroost.experiment.leaderboard import (
    LEADERBOARD,
    PUBLISHED_CRABNET,
    PUBLISHED_ROOST,
    PUBLISHED_SOURCE,
    against_leaderboard,
)
from pretroost.experiment.plots import (
    plot_data_efficiency,
    plot_embedding_map,
    plot_parity_or_roc,
    plot_vs_scratch,
)
from pretroost.experiment.prediction_averages import (
    seed_ensembles,
    strategy_ensembles,
    task_targets,
    write_seed_ensemble_results,
)
from pretroost.experiment.presets import PRESETS
from pretroost.experiment.scores import (
    best_strategy,
    folds_better,
    headline_table,
    lower_is_better,
    paired_test,
)
from pretroost.experiment.selection import selection_lines, selection_summary
from pretroost.experiment.strategies import (
    FINETUNE_VARIANTS,
    PRETRAIN_VARIANTS,
    is_strategy,
    parse_strategy,
    repeats_base_model,
    scratch_counterpart,
    strategy_order,
)
from pretroost.experiment.wording import check_equality_claims
from pretroost.metrics import HEADLINE
from pretroost.results import read_benchmark_rows, strategy_dir
from pretroost.strategy_names import parse_combination
from pretroost.utils import atomic_write_json, atomic_write_text

__all__ = ["write_report"]

log = logging.getLogger(__name__)


#: what each bench strategy means (variants: ``pretroost.experiment.strategies.FINETUNE_VARIANTS`` and
#: ``PRETRAIN_VARIANTS`` carry their own notes)
STRATEGY_NOTES = {
    "scratch": "Roost trained from random initialisation (the baseline)",
    "ssl": "encoder pretrained with Barlow Twins on two masked views of each composition",
    "fingerprint": "encoder pretrained to regress the Magpie fingerprint",
    "structure": "encoder pretrained to regress a Crystal Twins CGCNN embedding of the structure",
    "ssl+fingerprint+structure": "encoder pretrained on the three objectives at once",
    "dft": "encoder pretrained to regress four OQMD DFT labels (band gap, formation enthalpy, "
    "energy and volume per atom) of the leak-free corpus",
    "dft+fingerprint": "encoder pretrained on the DFT labels and the Magpie fingerprint at once",
}


def _strategy_note(strategy: str) -> str:
    """A bench strategy's meaning: its base's note, then each variant's change."""

    combined = parse_combination(strategy)
    kind = combined.kind if combined else ""
    if kind == "select" and combined and all(map(is_strategy, combined.parts)):
        candidates = ", ".join(f"`{c}`" for c in combined.parts)
        return (
            f"per task and fold, whichever of {candidates} scored best on the validation split "
            "of the training fold (`--select`; the test fold plays no part); its time is all "
            "candidates' together"
        )
    if strategy in ("trees", "trees+valthreshold", "trees+pbe"):
        note = (
            "not Roost: a reference model, tree ensembles on element fractions (and Magpie), "
            "the model and features chosen per fold by cross-validation on the training rows "
            "(`pretroost trees`)"
        )
        if strategy == "trees+pbe":
            note += (
                ", here the three models on fractions, Magpie and a PBE band-gap teacher's "
                "prediction (`--features fractions+magpie+pbe`; the teacher is fitted on Matbench "
                "mp_gap's compositions minus every composition of the experimental tasks)"
            )
        if strategy == "trees+valthreshold":
            note += (
                "; classification labelled at the threshold that maximises the balanced accuracy "
                "of the inner folds' out-of-fold probabilities (`--threshold validation`)"
            )
        return note
    if kind == "blend" and combined:
        parts = ", ".join(f"`{p}`" for p in combined.parts)
        return (
            f"per fold the mean of the test predictions of {parts}, each first averaged over "
            "its seeds (`pretroost blend`; declared, nothing tuned); its time is the parts' "
            "together"
        )
    if kind in ("hurdle", "hurdle+pbe") and combined:
        pbe = kind == "hurdle+pbe"
        return (
            f"the test predictions of `{combined.parts[0]}` (its seeds "
            "averaged), set to 0 where a tree classifier of target = 0, fitted on the training "
            + (
                "fold on fractions, Magpie and the PBE gap teacher (`--features fractions+magpie+pbe`), "
                if pbe
                else "fold, "
            )
            + "gives a probability above 0.5, where the median, the MAE's best prediction, is 0 "
            "(`pretroost hurdle`; nothing tuned); its time adds the classifier's fit"
        )
    try:
        base, pre, post = parse_strategy(strategy)
    except ValueError:
        return "see COMMANDS.md"
    own = ["its own encoder, pretrained " + "; ".join(PRETRAIN_VARIANTS[v].note for v in pre)]
    notes = [
        STRATEGY_NOTES[base],
        *(own if pre else []),
        *(FINETUNE_VARIANTS[v].note for v in post),
    ]
    return "; ".join(notes)


def _strategy_lines(table: dict[str, dict[str, dict]]) -> list[str]:
    """A legend of the strategy labels that appear in ``table``."""
    present = sorted({s for cells in table.values() for s in cells}, key=strategy_order)
    lines = ["## Strategies", ""]
    for s in present:
        lines.append(f"- `{s}`: {_strategy_note(s)}.")
    lines.append(
        "\nEvery strategy is finetuned with the scratch recipe (same splits, epochs, batch size, "
        "optimiser, schedule and seeds). Structure strategies are not run on matbench_perovskites: "
        "the offline structure set is those materials, so there is no leak-free structure corpus."
    )
    return [*lines, ""]


def _md_cell(text: str) -> str:
    """``text`` for a Markdown table cell: ``|`` (as in ``select(a|b)``) escaped."""
    return text.replace("|", "\\|")


def _fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def _leaderboard_lines(task: str) -> list[str]:
    board = LEADERBOARD.get(task)
    if board is None:
        return []
    lines = []
    for name, table in (("Roost", PUBLISHED_ROOST), ("CrabNet", PUBLISHED_CRABNET)):
        if task in table:  # the papers' own runs: 300 epochs, near-official folds
            lines.append(
                f"| *{name}* (published, Wang et al. 2021) | {table[task]:.4g} | | | | | | |"
            )
    for label, entry in (
        ("leader", board.leader), ("MODNet", board.modnet),
        ("CrabNet", board.crabnet), ("RF-SCM/Magpie", board.rf_scm_magpie),
        *((e.algorithm, e) for e in board.also),
    ):  # fmt: skip
        if entry is not None and (label == "leader" or entry != board.leader):
            std = f" ± {entry.std:.4g}" if entry.std is not None else ""
            name = entry.algorithm if label == "leader" else label
            lines.append(f"| *{name}* (leaderboard) | {entry.mean:.4g}{std} | | | | | | |")
    lines.append(
        f"\nLeaderboard source: {board.source}. ¹ Against the leaderboard's own fold scores "
        "(the same official folds; `leaderboard.against_leaderboard`): on how many folds this "
        "strategy beats MODNet (v0.1.12) and the leader, with the paired t-test's p and its "
        "corrected p (Statistics, above)."
    )
    if task in PUBLISHED_ROOST:
        lines.append(f"Published: {PUBLISHED_SOURCE}.")
    return lines


def _vs_board(task: str, pairs: list[dict]) -> str:
    """``"3/5 (0.41) · 0/5 (0.0021)"``: folds better than MODNet (v0.1.12) and than the leader,
    one figure where MODNet leads; empty for a task off the board."""
    board = LEADERBOARD.get(task)
    if board is None:
        return ""
    names = [e.algorithm for e in (board.modnet, board.leader) if e is not None]
    by_name = {p["algorithm"]: p for p in pairs}
    marks = []
    for name in dict.fromkeys(names):  # MODNet once where it leads
        p = by_name.get(name)
        if p is not None:
            pval = f" ({p['p_t']:.2g}; {p['p_corrected']:.2g})" if "p_t" in p else ""
            marks.append(f"{p['better']}/{p['n']}{pval}")
    return " · ".join(marks)


def write_report(
    results_dir: str | Path = "results",
    *,
    preset: str | None = None,
    runs_dir: str | Path | None = None,
    readme: str | Path | None = None,
) -> Path:
    """Write ``README.md``, ``summary.json`` and plots under ``results_dir``; returns README path.

    With ``runs_dir`` (the pretrained artefacts of ``pretroost bench``), also a PCA map of the
    encoders' material vectors for one task. With ``readme``, the overview table also replaces the
    block between ``OVERVIEW_MARKERS`` in that file (so a project README quotes it verbatim).
    """
    results_dir = Path(results_dir)
    rows = read_benchmark_rows(results_dir / "benchmark.jsonl")
    table = headline_table(rows)
    lines = [
        "# Results",
        "",
        "Generated by `pretroost.experiment.report.write_report` from `benchmark.jsonl` (no hand edits). "
        "Matbench v0.1, official 5 folds; model selection on a validation split of each training fold.",
        "",
    ]
    if preset:
        lines.append(f"Preset: `{preset}` (see `pretroost.experiment.presets.PRESETS`).\n")
    if (results_dir / "COMMANDS.md").is_file():
        lines.append("The exact commands that made these files: [COMMANDS.md](COMMANDS.md).\n")
    if preset in PRESETS and PRESETS[preset].caveat:
        lines.append(PRESETS[preset].caveat + "\n")
    machines = sorted({r["machine"] for r in rows})
    shas = sorted({r["git_sha"].removesuffix("+dirty")[:10] for r in rows})
    lines += [
        f"Machines: {', '.join(machines)}.",
        f"Code: {len(shas)} revisions ({', '.join(shas)}; each row's full `git_sha` is in "
        "benchmark.jsonl).",
        "",
    ]
    lines += _statistics_lines(rows)
    lines += _strategy_lines(table)
    overview = _overview_lines(table)
    lines += overview
    if readme is not None:
        replace_block(readme, [line for line in overview if line.startswith("|")])
    summary: dict[str, dict] = {}
    prob_table = headline_table(rows, "rocauc_prob")
    targets = task_targets(table)  # read once: class balance and ensembles
    for task in sorted(table):
        cells = table[task]
        meta = get_task(task)
        metric = HEADLINE[meta.task_type]
        lower_better = lower_is_better(task)
        base = cells.get("scratch")
        lines += [
            f"## {task} ({metric.upper()}{', ' + meta.unit if meta.unit and lower_better else ''})",
            "",
            *_class_balance_lines(task, targets[task]),
            "| strategy | mean ± std | change vs scratch | folds better than scratch "
            "| paired difference vs scratch (95 % CI) | p (paired t / corrected t / Wilcoxon) "
            "| time (s, all folds) | folds better than MODNet · leader (p, paired t)¹ |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for strategy, cell in sorted(cells.items(), key=lambda kv: strategy_order(kv[0])):
            change, wins, diff, pval = "", "", "", ""
            if base is not None and strategy != "scratch":
                test = paired_test(cell["folds"], base["folds"])
                cell["paired_vs_scratch"] = test
                if test is not None:
                    lo, hi = test["ci95"]
                    diff = f"{test['mean_diff']:+.4g} [{lo:+.3g}, {hi:+.3g}]"
                    pval = _p(test)
                change = f"{100 * (cell['mean'] - base['mean']) / abs(base['mean']):+.1f} %"
                better, common = folds_better(
                    cell["folds"], base["folds"], lower_better=lower_better
                )
                wins = f"{better}/{common}"
            cell["paired_vs_leaderboard"] = against_leaderboard(task, cell["folds"])
            lines.append(
                f"| {_md_cell(strategy)} | {cell['mean']:.4g} ± {cell['std']:.2g} ({_runs(cell)}) "
                f"| {change} | {wins} | {diff} | {pval} | {cell['seconds']:.0f} "
                f"| {_vs_board(task, cell['paired_vs_leaderboard'])} |"
            )
        lines += _leaderboard_lines(task)
        lines.append("")
        lines += _probability_lines(prob_table.get(task, {}))
        summary[task] = {
            s: {k: v for k, v in c.items() if k != "folds"} | {"folds": c["folds"]}
            for s, c in cells.items()
        }
    selection = selection_summary(results_dir, table, targets)
    lines += selection_lines(selection)
    for task, sel in selection.items():
        summary[task]["_selection"] = {k: v for k, v in sel.items() if k != "noise"}
    lines += modified_tree_lines(rows)
    lines += _ensemble_lines(results_dir, table)
    seed_ens = seed_ensembles(results_dir, table, targets)
    lines += _seed_ensemble_lines(seed_ens)
    write_seed_ensemble_results(results_dir, seed_ens)
    for task, cells in seed_ens.items():
        for strategy, cell in cells.items():
            summary[task][strategy]["seed_ensemble"] = cell
    strategy_ens = strategy_ensembles(results_dir, table, targets)
    lines += _strategy_ensemble_lines(strategy_ens, table)
    if strategy_ens:
        atomic_write_json(results_dir / "ensembles.json", {"every_strategy": strategy_ens})
    plots = plot_vs_scratch(results_dir, table)
    for task, cells in sorted(table.items()):  # parity / ROC of the best strategy per task
        p = plot_parity_or_roc(results_dir, best_strategy(task, cells), task)
        if p is not None:
            plots.append(p)
    # the best strategy changes as cells are added: drop the parity / ROC plots of earlier ones
    # (only names this report writes, <task>_<strategy>_<kind>.png, for the tasks it reports)
    for kind in ("parity", "roc"):
        for task in table:
            for old in (results_dir / "plots").glob(f"{task}_*_{kind}.png"):
                if old not in plots:
                    old.unlink()
    recorded = _record_encoders(results_dir, runs_dir)
    if recorded and table:
        lines += _encoder_lines({name: str(folder) for name, folder in recorded.items()})
        probe_file = results_dir / "encoder_probe.json"
        probes: dict[str, dict[str, float]] = (
            json.loads(probe_file.read_text()) if probe_file.is_file() else {}
        )
        present: dict[str, str | None] = {"scratch (untrained)": None}
        if runs_dir is not None and Path(runs_dir).is_dir():
            present |= {  # only the recorded artefact itself (not a re-pretraining of that name)
                n: str(Path(runs_dir) / n)
                for n, folder in recorded.items()
                if _same_artefact(Path(runs_dir) / n, folder)
            }
        map_task = "matbench_expt_gap" if "matbench_expt_gap" in table else sorted(table)[0]
        embedding_map = results_dir / "plots" / f"{map_task}_embedding_map.png"
        if len(present) > 1:  # weights at hand: probe them (absent ones keep their last probe)
            for task in sorted(table):
                emb = encoder_embeddings(present, task)
                probes[task] = probes.get(task, {}) | linear_probe(*emb, task)
                # the map needs every encoder's weights: a partial one does not replace it
                if task == map_task and (
                    len(present) > len(recorded) or not embedding_map.exists()
                ):
                    plot_embedding_map(present, task, embedding_map, embeddings=emb)
            atomic_write_json(results_dir / "encoder_probe.json", probes)
        if probes:
            labels = ["scratch (untrained)", *recorded]
            lines += _probe_lines(
                probes, [k for k in labels if all(k in row for row in probes.values())]
            )
        if embedding_map.exists():
            plots.append(embedding_map)
    lines += [f"![{p.stem}]({p.relative_to(results_dir)})" for p in plots]
    de = _data_efficiency(results_dir, rows)
    if de:
        de_minutes = (
            sum(  # per fraction: rows of one (strategy, task, fold) differ by fraction
                c["seconds"]
                for d in (results_dir / "data_efficiency").glob("fraction_*")
                for cells in headline_table(read_benchmark_rows(d / "benchmark.jsonl")).values()
                for c in cells.values()
            )
            / 60
        )
        lines += [
            "",
            "## Data efficiency",
            "",
            "Error vs share of each training fold used (same subsets for every strategy); "
            f"finetuning time of the points below 100 %: {de_minutes:.0f} min.",
        ]
        for task, curves in de.items():
            folds = ", ".join(map(str, curves["folds"]))
            lines += [
                "",
                f"### {task}",
                "",
                f"{curves['metric']}, mean ± std over official fold(s) {folds}.",
                "",
                "| strategy | " + " | ".join(f"{f:g}" for f in curves["fractions"]) + " |",
            ]
            lines.append("|---|" + "---|" * len(curves["fractions"]))
            for s, vals in curves["strategies"].items():
                marks = [
                    _fmt(v) if v is None or sd is None else f"{_fmt(v)} ± {_fmt(sd, 2)}"
                    for v, sd in zip(vals, curves["std"][s], strict=True)
                ]
                lines.append(f"| {_md_cell(s)} | " + " | ".join(marks) + " |")
        lines.append("")
        lines += [
            f"![data efficiency]({p.relative_to(results_dir)})"
            for p in plot_data_efficiency(results_dir, de)
        ]
        atomic_write_json(results_dir / "data_efficiency.json", de)
    atomic_write_json(results_dir / "summary.json", summary)
    out = results_dir / "README.md"
    text = "\n".join(lines) + "\n"
    check_equality_claims(text, source=str(out))
    atomic_write_text(out, text)
    log.info("wrote %s", out)
    return out


def _p(test: dict[str, Any]) -> str:
    """A paired test's p-values: ``"t / corrected t / Wilcoxon"``."""
    return f"{test['p_t']:.2g} / {test['p_corrected']:.2g} / {test['p_wilcoxon']:.2g}"


def _statistics_lines(rows: list[dict]) -> list[str]:
    """How the tables test differences, what five folds allow, and how many rows come from code
    with uncommitted changes."""
    dirty = [r for r in rows if str(r.get("git_sha", "")).endswith("+dirty")]
    cells = sorted({f"{r['task'].removeprefix('matbench_')} `{r['strategy']}`" for r in dirty})
    lines = [
        "## Statistics",
        "",
        "Strategies are compared fold by fold on the official folds (each fold's score the mean "
        "of its seeds): the mean difference with its 95 % t interval, the count of folds "
        "better, and three two-sided p-values. The paired t-test (p t) treats the five folds as "
        "independent samples, but their training sets share three quarters of their rows, so "
        "it understates the variance; the corrected t of Nadeau and Bengio (*Machine Learning* "
        "52, 239, 2003) scales the variance of the mean difference by 1/k + n_test/n_train = "
        "1/5 + 1/4 instead of 1/5 (`pretroost.experiment.stats.corrected_paired_t`), which "
        "raises p. The Wilcoxon signed-rank test (and the sign test behind 'folds better') "
        "cannot go below 2/2⁵ = 0.0625 with five folds: 5/5 folds better is the strongest "
        "result five folds can give by rank. So with n = 5 a p below 0.05 needs the t-test, "
        "whose assumptions the folds do not meet; a p above 0.05 means a difference is not "
        "shown, not that the scores are equal (no equivalence test was run). Each task's best figure is picked "
        "among many strategies scored on the same test folds: see 'Selection on the test "
        "folds' below.",
        "",
    ]
    if dirty:
        lines += [
            f"{len(dirty)} of {len(rows)} rows ({100 * len(dirty) / len(rows):.0f} %) record a "
            "`git_sha` ending in `+dirty`: they ran from a tree with uncommitted changes, so "
            "their code is known only up to those changes. Cells with such rows: "
            + ", ".join(_md_cell(c) for c in cells)
            + ".",
            "",
        ]
    return lines


def _runs(cell: dict) -> str:
    """What a table cell's mean is over: "5 folds", or "5 folds × 3 seeds"."""
    n = len(cell["folds"])
    n_seeds = max(len(v) for v in cell["seeds"].values())
    return f"{n} fold{'s' * (n > 1)}" + (f" × {n_seeds} seeds" if n_seeds > 1 else "")


def _ensemble_lines(results_dir: Path, table: dict[str, dict[str, dict]]) -> list[str]:
    """Deep-ensemble cells (``+ens5``) vs their own members scored alone (N = 1), from the cells'
    validation records (``member_scores``); [] when no cell is an ensemble."""
    out = []
    for task in sorted(table):
        metric = HEADLINE[get_task(task).task_type]
        for strategy, cell in sorted(table[task].items(), key=lambda kv: strategy_order(kv[0])):
            folder = strategy_dir(results_dir, strategy) / "predictions" / task
            records = [json.loads(f.read_text()) for f in sorted(folder.glob("fold_*.json"))]
            members = [
                [m[metric] for m in r["member_scores"]] for r in records if r.get("member_scores")
            ]
            if not members:
                continue
            single = np.array([m[0] for m in members])  # member 0: the single model of that seed
            each = np.array([np.mean(m) for m in members])
            n = len(members[0])
            out.append(
                f"| {task} | {_md_cell(strategy)} | {np.mean(single):.4g} | {np.mean(each):.4g} "
                f"| {cell['mean']:.4g} | {cell['seconds'] / n:.0f} | {cell['seconds']:.0f} |"
            )
    if not out:
        return []
    return [
        "## Deep ensembles: N = 1 vs N = 5",
        "",
        "Each ensemble cell scored as a whole and by its members alone (same folds and seeds; "
        "member 0 is the single model of its seed), with the training time of one member "
        "(the ensemble's divided by its size) and of the ensemble.",
        "",
        "| task | strategy | member 0 | members' mean | ensemble | time N = 1 (s) "
        "| time ensemble (s) |",
        "|---|---|---|---|---|---|---|",
        *out,
        "",
    ]


def _probability_lines(cells: dict[str, dict]) -> list[str]:
    """A classification task's ROC-AUC of the predicted probabilities (``rocauc_prob``, beside
    Matbench's "rocauc" of thresholded labels), per strategy, paired over folds vs scratch; []
    without such rows. Cells that only re-threshold their base model (``+valthreshold``) are left
    out: same probabilities."""
    cells = {s: c for s, c in cells.items() if not repeats_base_model(s)}
    if not cells:
        return []
    base = cells.get("scratch")
    out = [
        "ROC-AUC of the predicted probabilities (`rocauc_prob`; no threshold):",
        "",
        "| strategy | mean ± std | paired difference vs scratch (95 % CI) "
        "| p (t / corrected t / Wilcoxon) "
        "| folds better |",
        "|---|---|---|---|---|",
    ]
    for strategy, cell in sorted(cells.items(), key=lambda kv: strategy_order(kv[0])):
        vs = " |  | "
        if base is not None and strategy != "scratch":
            test = paired_test(cell["folds"], base["folds"])
            wins, common = folds_better(cell["folds"], base["folds"], lower_better=False)
            if test is not None:
                lo, hi = test["ci95"]
                vs = (
                    f"{test['mean_diff']:+.4g} [{lo:+.3g}, {hi:+.3g}] | {_p(test)} "
                    f"| {wins}/{common}"
                )
        out.append(
            f"| {_md_cell(strategy)} | {cell['mean']:.4g} ± {cell['std']:.2g} ({_runs(cell)}) "
            f"| {vs} |"
        )
    return [*out, ""]


def _class_balance_lines(task: str, target: pd.Series) -> list[str]:
    """For a classification task, its share of positive labels (Matbench's metric thresholds
    probabilities, so the balance decides how much the threshold matters); [] otherwise."""
    if get_task(task).task_type != "classification":
        return []
    y = target.astype(bool)
    return [f"Positive labels: {100 * y.mean():.1f} % of the task's {len(y)} rows.", ""]


def _seed_ensemble_lines(ens: dict[str, dict]) -> list[str]:
    def p(test: dict[str, Any] | None) -> str:
        return "" if test is None else _p(test)

    out = []
    for task, cells in ens.items():
        for strategy, cell in cells.items():
            vs_single = paired_test(cell["folds"], cell["single_folds"])
            ref = scratch_counterpart(strategy)  # scratch at the same threshold rule
            if ref == strategy or ref not in cells:
                ref = "scratch"
            vs_base, size = None, min(cell["n"], cells.get(ref, {}).get("n", 0))
            if ref in cells and strategy != ref:  # both at the same size: seeds 0 .. size-1
                vs_base = paired_test(cell["first_seeds"][size], cells[ref]["first_seeds"][size])
            curve = " → ".join(f"{v:.4g}" for v in cell["by_size"].values())
            minutes = cell["minutes_per_model"]
            cost = "" if minutes is None else f"{minutes:.1f} → {minutes * cell['n']:.1f}"
            out.append(
                f"| {task} | {_md_cell(strategy)} | {cell['n']} | {cell['seed_sd']:.3g} "
                f"| {cell['single']:.4g} | {cell['mean']:.4g} | {curve} | {cost} | {p(vs_single)} | "
                + (f"{vs_base['mean_diff']:+.4g} ({p(vs_base)})" if vs_base else "")
                + (f" vs {_md_cell(ref)}" if vs_base and ref != "scratch" else "")
                + (f", {size} seeds each" if vs_base and size != cell["n"] else "")
                + f" | {_vs_board(task, against_leaderboard(task, cell['folds']))} |"
            )
    if not out:
        return []
    return [
        "## Seed ensembles (no extra training)",
        "",
        "Where several seeds ran per fold (the preset's, or `bench --seeds`), the mean of the "
        "seeds' test predictions, scored per fold: a deep ensemble of the models already trained "
        "(each on the training fold alone; nothing chosen on the test fold). Classification "
        "labels the mean probability at 0.5, or for a `+valthreshold` strategy at the mean of "
        "the seeds' thresholds (each chosen on its own seed's validation split of the training "
        "fold). Single: the "
        "seed-averaged score of the tables above; seed sd: the seeds' standard deviation within "
        "a fold, averaged over the folds. By size: the score of an ensemble of 1, 2, …, n "
        "members, each averaged over every choice of that many of the n seeds (1 is single, n "
        "the ensemble); cost: training minutes per fold of one model and of the n (the cells' "
        "recorded times; the machine is the rows'). Paired tests over the folds (t / corrected "
        "t / Wilcoxon); "
        "the comparison with scratch's ensemble takes the same number of seeds on both sides "
        "(seeds 0 .. k-1, k the smaller count; said where it is fewer than the row's n); a "
        "`+valthreshold` strategy's ensemble is compared with scratch+valthreshold's (the same "
        "threshold rule) where that has one. Each "
        "strategy's seed ensembles are a Matbench submission file, "
        "`seed_ensembles/<strategy>/results.json.gz`. Last column: on how many folds the "
        "ensemble beats MODNet (v0.1.12) and the leaderboard's leader, fold by fold, with the "
        "paired t-test's p and its corrected p (as in the per-task tables).",
        "",
        "| task | strategy | seeds | seed sd | single | seed ensemble | by size (1 → n) "
        "| cost (min per fold, 1 → n) | p vs single | ensemble vs scratch's ensemble (p) "
        "| folds better than MODNet · leader (p) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *out,
        "",
    ]


def _strategy_ensemble_lines(ens: dict[str, dict], table: dict[str, dict[str, dict]]) -> list[str]:
    def test(t: dict[str, Any] | None) -> str:
        if t is None:
            return ""
        return f"{t['mean_diff']:+.4g} [{t['ci95'][0]:+.3g}, {t['ci95'][1]:+.3g}], p = {_p(t)}"

    if not ens:
        return []
    out = [
        "## Ensemble of every strategy (exploratory)",
        "",
        "Per fold, the mean of the test predictions of every strategy run on all folds of the "
        "task (each strategy averaged over its seeds first, so each counts once): no choice is "
        "made on the test fold, but the idea came after the single strategies' test scores, so "
        "it stays exploratory until it holds on tasks not used to conceive it. Classification "
        "averages the members' probabilities and thresholds at Matbench's 0.5 (`+valthreshold` "
        "cells, which re-threshold a member's model, are left out; higher rocauc is better). "
        "Paired over folds (difference [95 % CI], p t / corrected t / Wilcoxon).",
        "",
        "| task | members | ensemble | vs scratch | best member | vs best member |",
        "|---|---|---|---|---|---|",
    ]
    for task, e in ens.items():
        best = e["best_member"]
        out.append(
            f"| {task} ({e['metric']}) | {_md_cell(', '.join(e['members']))} | {e['mean']:.4g} | {test(e['vs_scratch'])} "
            f"| {_md_cell(best)} ({table[task][best]['mean']:.4g}) | {test(e['vs_best_member'])} |"
        )
    return [*out, ""]


OVERVIEW_MARKERS = ("<!-- pretroost report: overview -->", "<!-- /pretroost report: overview -->")


def replace_block(path: str | Path, lines: list[str]) -> None:
    """Replace the text between the two ``OVERVIEW_MARKERS`` lines of ``path`` with ``lines``."""
    path = Path(path)
    start, end = OVERVIEW_MARKERS
    text = path.read_text()
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{path}: needs one {start!r} line followed by one {end!r} line")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = "\n".join(line for line in lines if line.strip())
    atomic_write_text(path, f"{head}{start}\n{body}\n{end}{tail}")
    log.info("updated the overview block of %s", path)


def _overview_lines(table: dict[str, dict[str, dict]]) -> list[str]:
    """One row per strategy, one column per task: mean over folds and change vs scratch (rows,
    not columns, per strategy, so that the table grows downwards as variants are added)."""
    if not table:
        return []
    strategies = sorted({s for cells in table.values() for s in cells}, key=strategy_order)
    tasks = sorted(table)
    header = [f"{t.removeprefix('matbench_')} ({HEADLINE[get_task(t).task_type]})" for t in tasks]
    lines = [
        "## Overview",
        "",
        "Mean over folds (number of folds if fewer than 5); in brackets the change vs scratch "
        "(negative = lower error; for ROC-AUC positive = better); last column: finetuning time of "
        "all the strategy's cells.",
        "",
        "| strategy | " + " | ".join(header) + " | time (min) |",
        "|---|" + "---|" * (len(tasks) + 1),
    ]
    for s in strategies:
        row = []
        for task in tasks:
            c, base = table[task].get(s), table[task].get("scratch")
            if c is None:
                row.append("–")
                continue
            n = len(c["folds"])
            text = f"{c['mean']:.4g}" + (f" ({n} fold{'s' * (n > 1)})" if n < 5 else "")
            if base is not None and s != "scratch":
                text += f" [{100 * (c['mean'] - base['mean']) / abs(base['mean']):+.1f} %]"
            row.append(text)
        minutes = sum(table[t][s]["seconds"] for t in tasks if s in table[t]) / 60
        lines.append(f"| {_md_cell(s)} | " + " | ".join(row) + f" | {minutes:.0f} |")
    return [*lines, ""]


def _encoder_lines(encoders: dict[str, str | None]) -> list[str]:
    """The pretrained encoders the strategies start from: objective, corpus, epochs, loss, time."""
    lines = [
        "## Pretrained encoders",
        "",
        "Each pretrained once and shared by all tasks; every corpus excludes the compositions of "
        "the Matbench tasks listed in its artefact's `config.json` (the structure corpus: every task "
        "but perovskites, on which structure strategies are not run), so the corpus size is the "
        "same for every task evaluated.",
        "",
        "| artefact | objective(s) | corpus (compositions) | tasks excluded | epochs | "
        "best held-out loss | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, folder in encoders.items():
        if folder is None:
            continue
        cfg = json.loads((Path(folder) / "config.json").read_text())
        corpus = cfg.get("corpus", {})
        lines.append(
            f"| {name} | {' + '.join(cfg.get('objectives', {})) or cfg.get('objective', '?')} "
            f"| {corpus.get('size', '?')} | {len(corpus.get('excluded_tasks', []))} "
            f"| {cfg.get('epochs_run', '?')} | {_fmt(cfg.get('best_val_loss'))} "
            f"| {cfg.get('seconds', float('nan')):.0f} |"
        )
    return [*lines, ""]


def _record_encoders(results_dir: Path, runs_dir: str | Path | None) -> dict[str, Path]:
    """Every pretrained encoder of this results folder: name -> its record ``pretrain/<name>/``.

    An artefact of ``runs_dir`` (weights, not committed) is recorded there on first sight, its
    ``config.json`` and model card copied, so the report still describes it once the weights are
    gone; a name already recorded keeps its first record (delete it to record a new pretraining).
    """
    import shutil

    record = results_dir / "pretrain"
    if runs_dir is not None and Path(runs_dir).is_dir():
        for folder in sorted(Path(runs_dir).iterdir()):
            if (folder / "config.json").is_file() and not (record / folder.name).is_dir():
                (record / folder.name).mkdir(parents=True)
                for name in ("config.json", "README.md"):
                    if (folder / name).is_file():
                        shutil.copyfile(folder / name, record / folder.name / name)
    return {f.parent.name: f.parent for f in sorted(record.glob("*/config.json"))}


def _same_artefact(folder: Path, record: Path) -> bool:
    """Whether the artefact in ``folder`` is the one recorded in ``record``: equal configs (its
    training history, loss and time included; a shipped copy, stored at lower precision, says so in
    its config and is not the same)."""
    return (folder / "config.json").is_file() and json.loads(
        (folder / "config.json").read_text()
    ) == json.loads((record / "config.json").read_text())


def _probe_lines(probes: dict[str, dict[str, float]], labels: list[str]) -> list[str]:
    lines = [
        "## Linear probe of the frozen encoders",
        "",
        "What a linear model reads off each encoder's material vector before any finetuning "
        "(up to 3,000 compositions per task, 5-fold CV; R² of a ridge regression, or ROC-AUC "
        "of a logistic regression for classification; `pretroost.experiment.report.linear_probe`).",
        "",
        "| task | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for task, row in probes.items():
        lines.append(f"| {task} | " + " | ".join(f"{row[k]:.3f}" for k in labels) + " |")
    return [*lines, ""]


def _data_efficiency(results_dir: Path, main_rows: list[dict]) -> dict[str, dict]:
    """task -> {"fractions", "metric", "folds", "strategies": {s: [mean headline per fraction]},
    "std": {s: [its std over the folds]}}.

    The full-data point comes from the main matrix (or ``data_efficiency/fraction_1`` for a task
    outside it); every point of a curve averages the same folds: those run at every fraction by
    every strategy that has a curve (so an interrupted run never mixes fold sets).
    """
    per: dict[float, list[dict]] = {1.0: list(main_rows)}
    for d in sorted((results_dir / "data_efficiency").glob("fraction_*")):
        f = float(d.name.removeprefix("fraction_"))
        per.setdefault(f, []).extend(read_benchmark_rows(d / "benchmark.jsonl"))
    if len(per) == 1:
        return {}
    fractions = sorted(per)
    tasks = sorted({r["task"] for f in fractions if f < 1 for r in per[f]})
    out = {}
    for task in tasks:
        curved = {r["strategy"] for f in fractions if f < 1 for r in per[f] if r["task"] == task}
        folds = set.intersection(
            *(
                {r["fold"] for r in per[f] if r["task"] == task and r["strategy"] == s}
                for f in fractions
                for s in curved
            )
        )
        tables = {
            f: headline_table([r for r in rows if r["task"] == task and r["fold"] in folds])
            for f, rows in per.items()
        }
        # strategies with a curve (not just the main matrix's full-data point)
        strategies = sorted(
            {s for f in fractions if f < 1 for s in tables[f].get(task, {})}, key=strategy_order
        )

        stats = {  # mean and std over folds, per strategy and fraction
            stat: {
                s: [tables[f].get(task, {}).get(s, {}).get(stat) for f in fractions]
                for s in strategies
            }
            for stat in ("mean", "std")
        }
        out[task] = {
            "fractions": fractions,
            "metric": HEADLINE[get_task(task).task_type],
            "folds": sorted(folds),
            "strategies": stats["mean"],
            "std": stats["std"],
        }
    return out


def modified_tree_lines(rows: list[dict]) -> list[str]:
    """A section listing the cells recorded from a modified package (``git_sha`` ending in
    ``+dirty``: written with ``--allow-dirty``, the diff beside each cell); none: no section."""
    cells: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        if str(r.get("git_sha", "")).endswith("+dirty"):
            key = (r["strategy"], r["task"])
            cells.setdefault(key, set()).add(
                f"{r['fold']}" + (f"/s{r['seed']}" if r.get("seed") else "")
            )
    if not cells:
        return []
    out = [
        "## Cells recorded from a modified tree",
        "",
        "These rows' `git_sha` ends in `+dirty`: the package had uncommitted changes when they "
        "were written (`--allow-dirty`; the `git diff` lies beside each cell, its sha256 in the "
        "rows' `diff_sha256`). They cannot be reproduced from a commit alone.",
        "",
        "| strategy | task | folds |",
        "|---|---|---|",
    ]
    for (strategy, task), folds in sorted(cells.items()):
        out.append(f"| {_md_cell(strategy)} | {task} | {', '.join(sorted(folds))} |")
    return [*out, ""]
