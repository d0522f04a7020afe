"""Turn ``results/benchmark.jsonl`` into ``results/README.md`` tables and PNG plots.

Every number in the report is computed here from the rows the benchmark wrote (no hand edits): per
task, mean ± std over folds per strategy, the change vs scratch, and on how many folds a strategy
beat scratch; Matbench leaderboard values are quoted beside them with their source.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretroost.data.matbench import get_task
from pretroost.experiment.presets import PRESETS
from pretroost.metrics import HEADLINE
from pretroost.results import read_benchmark_rows
from pretroost.utils import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["headline_table", "write_report"]

log = logging.getLogger(__name__)


def _latest(rows: list[dict]) -> dict[tuple[str, str, int, int, str], dict]:
    """The last row written for each (strategy, task, fold, seed, metric)."""
    out: dict[tuple[str, str, int, int, str], dict] = {}
    for r in rows:
        out[(r["strategy"], r["task"], int(r["fold"]), int(r.get("seed", 0)), r["metric"])] = r
    return out


def headline_table(rows: list[dict], metric: str | None = None) -> dict[str, dict[str, dict]]:
    """task -> strategy -> {"folds": {fold: value}, "mean", "std", "metric", "seconds", "epochs",
    "seeds": {fold: [value per seed]}}, of each task's headline metric (or of ``metric``, for the
    tasks that record it, e.g. ``"rocauc_prob"``).

    A fold's value is the mean over the seeds run on it, so strategies are compared fold by fold
    (paired) on their seed-averaged scores; ``std`` is over folds."""
    latest = _latest(rows)
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for (strategy, task, fold, _seed, name), r in sorted(latest.items()):
        if name != (metric or HEADLINE[get_task(task).task_type]):
            continue
        cell = table[task].setdefault(
            strategy, {"folds": {}, "seeds": {}, "metric": name, "seconds": 0.0}
        )
        cell["seeds"].setdefault(fold, []).append(r["value"])
        cell["seconds"] += r["seconds"]
        cell["epochs"] = r["epochs"]
        cell["n_train"] = r["n_train"]
    for cells in table.values():
        for cell in cells.values():
            cell["folds"] = {k: float(np.mean(v)) for k, v in cell["seeds"].items()}
            v = np.array(list(cell["folds"].values()))
            cell["mean"], cell["std"] = float(v.mean()), float(v.std())
    return table


def paired_test(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    """Paired comparison of per-fold scores ``a`` (strategy) vs ``b`` (baseline) on their common
    folds: mean difference a - b, its 95 % t confidence interval, and the two-sided paired t-test
    and Wilcoxon signed-rank p-values (with 5 folds Wilcoxon cannot go below 0.0625). None with
    fewer than 3 common folds."""
    from scipy import stats

    common = sorted(set(a) & set(b))
    if len(common) < 3:
        return None
    d = np.array([a[k] - b[k] for k in common])
    n, mean = len(d), float(d.mean())
    sem = float(d.std(ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.975, n - 1) * sem)
    p_t = float(stats.ttest_rel([a[k] for k in common], [b[k] for k in common]).pvalue)
    p_w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {
        "n": n,
        "mean_diff": mean,
        "ci95": [mean - half, mean + half],
        "p_t": p_t if np.isfinite(p_t) else 1.0,
        "p_wilcoxon": p_w,
    }


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


def strategy_order(strategy: str) -> tuple[bool, int, str]:
    """Sort key: scratch, the bench strategies in their order, then their variants
    (``<strategy>+<variant>``) in the same order, then anything else."""
    from pretroost.experiment.strategies import EXTRA_STRATEGIES, STRATEGIES, parse_strategy

    bases = (*STRATEGIES, *EXTRA_STRATEGIES)
    try:
        base, pre, post = parse_strategy(strategy)
    except ValueError:
        return (True, len(bases), strategy)
    return (bool(pre or post), bases.index(base), strategy)


def _strategy_note(strategy: str) -> str:
    """A bench strategy's meaning: its base's note, then each variant's change."""
    from pretroost.experiment.strategies import FINETUNE_VARIANTS, PRETRAIN_VARIANTS, parse_strategy

    if strategy.startswith("select(") and strategy.endswith(")"):
        candidates = ", ".join(f"`{c}`" for c in strategy[len("select(") : -1].split("|"))
        return (
            f"per task and fold, whichever of {candidates} scored best on the validation split "
            "of the training fold (`--select`; the test fold plays no part); its time is all "
            "candidates' together"
        )
    try:
        base, pre, post = parse_strategy(strategy)
    except ValueError:
        return "see COMMANDS.md"
    notes = [PRETRAIN_VARIANTS[v].note for v in pre] + [FINETUNE_VARIANTS[v].note for v in post]
    return "; ".join(notes) if pre else "; ".join([STRATEGY_NOTES[base], *notes])


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
    from pretroost.experiment.leaderboard import (
        LEADERBOARD,
        PUBLISHED_CRABNET,
        PUBLISHED_ROOST,
        PUBLISHED_SOURCE,
    )

    board = LEADERBOARD.get(task)
    if board is None:
        return []
    lines = []
    for name, table in (("Roost", PUBLISHED_ROOST), ("CrabNet", PUBLISHED_CRABNET)):
        if task in table:  # the papers' own runs: 300 epochs, near-official folds
            lines.append(
                f"| *{name}* (published, Wang et al. 2021) | {table[task]:.4g} | | | | | |"
            )
    for label, entry in (
        ("leader", board.leader), ("MODNet", board.modnet),
        ("CrabNet", board.crabnet), ("RF-SCM/Magpie", board.rf_scm_magpie),
    ):  # fmt: skip
        if entry is not None and (label == "leader" or entry != board.leader):
            std = f" ± {entry.std:.4g}" if entry.std is not None else ""
            name = entry.algorithm if label == "leader" else label
            lines.append(f"| *{name}* (leaderboard) | {entry.mean:.4g}{std} | | | | | |")
    lines.append(f"\nLeaderboard source: {board.source}.")
    if task in PUBLISHED_ROOST:
        lines.append(f"Published: {PUBLISHED_SOURCE}.")
    return lines


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
    lines += _strategy_lines(table)
    overview = _overview_lines(table)
    lines += overview
    if readme is not None:
        replace_block(readme, [line for line in overview if line.startswith("|")])
    summary: dict[str, dict] = {}
    prob_table = headline_table(rows, "rocauc_prob")
    targets = _targets(table)  # read once: class balance and ensembles
    for task in sorted(table):
        cells = table[task]
        meta = get_task(task)
        metric = HEADLINE[meta.task_type]
        lower_better = _lower_is_better(task)
        base = cells.get("scratch")
        lines += [
            f"## {task} ({metric.upper()}{', ' + meta.unit if meta.unit and lower_better else ''})",
            "",
            *_class_balance_lines(task, targets[task]),
            "| strategy | mean ± std | change vs scratch | folds better than scratch "
            "| paired difference vs scratch (95 % CI) | p (paired t / Wilcoxon) "
            "| time (s, all folds) |",
            "|---|---|---|---|---|---|---|",
        ]
        for strategy, cell in sorted(cells.items(), key=lambda kv: strategy_order(kv[0])):
            change, wins, diff, pval = "", "", "", ""
            if base is not None and strategy != "scratch":
                test = paired_test(cell["folds"], base["folds"])
                cell["paired_vs_scratch"] = test
                if test is not None:
                    lo, hi = test["ci95"]
                    diff = f"{test['mean_diff']:+.4g} [{lo:+.3g}, {hi:+.3g}]"
                    pval = f"{test['p_t']:.2g} / {test['p_wilcoxon']:.2g}"
            if base is not None and strategy != "scratch":
                change = f"{100 * (cell['mean'] - base['mean']) / abs(base['mean']):+.1f} %"
                common = sorted(set(cell["folds"]) & set(base["folds"]))
                better = sum(
                    (cell["folds"][k] < base["folds"][k])
                    if lower_better
                    else (cell["folds"][k] > base["folds"][k])
                    for k in common
                )
                wins = f"{better}/{len(common)}"
            n = len(cell["folds"])
            n_seeds = max(len(v) for v in cell["seeds"].values())
            runs = f"{n} fold{'s' * (n > 1)}" + (f" × {n_seeds} seeds" if n_seeds > 1 else "")
            lines.append(
                f"| {_md_cell(strategy)} | {cell['mean']:.4g} ± {cell['std']:.2g} ({runs}) "
                f"| {change} | {wins} | {diff} | {pval} | {cell['seconds']:.0f} |"
            )
        lines += _leaderboard_lines(task)
        lines.append("")
        lines += _probability_lines(prob_table.get(task, {}))
        summary[task] = {
            s: {k: v for k, v in c.items() if k != "folds"} | {"folds": c["folds"]}
            for s, c in cells.items()
        }
    lines += _ensemble_lines(results_dir, table)
    seed_ens = seed_ensembles(results_dir, table, targets)
    lines += _seed_ensemble_lines(seed_ens)
    for task, cells in seed_ens.items():
        for strategy, cell in cells.items():
            summary[task][strategy]["seed_ensemble"] = cell
    strategy_ens = strategy_ensembles(results_dir, table, targets)
    lines += _strategy_ensemble_lines(strategy_ens, table)
    if strategy_ens:
        atomic_write_json(results_dir / "ensembles.json", {"every_strategy": strategy_ens})
    plots = _plots(results_dir, table)
    for task, cells in sorted(table.items()):  # parity / ROC of the best strategy per task
        best = sorted(
            cells, key=lambda s: cells[s]["mean"] * (1 if _lower_is_better(task) else -1)
        )[0]
        p = plot_parity_or_roc(results_dir, best, task)
        if p is not None:
            plots.append(p)
    if runs_dir is not None and Path(runs_dir).is_dir() and table:
        encoders: dict[str, str | None] = {"scratch (untrained)": None}
        for folder in sorted(Path(runs_dir).iterdir()):
            if (folder / "config.json").is_file():
                encoders[folder.name] = str(folder)
        map_task = "matbench_expt_gap" if "matbench_expt_gap" in table else sorted(table)[0]
        if len(encoders) > 1:
            probes: dict[str, dict[str, float]] = {}
            for task in sorted(table):
                emb = encoder_embeddings(encoders, task)
                probes[task] = linear_probe(*emb, task)
                if task == map_task:
                    out = results_dir / "plots" / f"{task}_embedding_map.png"
                    plots.append(plot_embedding_map(encoders, task, out, embeddings=emb))
            lines += _encoder_lines(encoders)
            lines += _probe_lines(probes, list(encoders))
            atomic_write_json(results_dir / "encoder_probe.json", probes)
    elif (results_dir / "pretrain").is_dir():  # no weights here: the committed configs and probe
        encoders = {"scratch (untrained)": None} | {
            f.parent.name: str(f.parent)
            for f in sorted((results_dir / "pretrain").glob("*/config.json"))
        }
        if len(encoders) > 1:
            lines += _encoder_lines(encoders)
        probe_file = results_dir / "encoder_probe.json"
        if probe_file.is_file():
            import json

            probes = json.loads(probe_file.read_text())
            labels = list(next(iter(probes.values()), {}))
            lines += _probe_lines(probes, labels)
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
            for p in _plot_data_efficiency(results_dir, de)
        ]
        atomic_write_json(results_dir / "data_efficiency.json", de)
    atomic_write_json(results_dir / "summary.json", summary)
    out = results_dir / "README.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    log.info("wrote %s", out)
    return out


def _ensemble_lines(results_dir: Path, table: dict[str, dict[str, dict]]) -> list[str]:
    """Deep-ensemble cells (``+ens5``) vs their own members scored alone (N = 1), from the cells'
    validation records (``member_scores``); [] when no cell is an ensemble."""
    import json

    out = []
    for task in sorted(table):
        metric = HEADLINE[get_task(task).task_type]
        for strategy, cell in sorted(table[task].items(), key=lambda kv: strategy_order(kv[0])):
            folder = results_dir / strategy / "predictions" / task
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
    from pretroost.experiment.strategies import repeats_base_model

    cells = {s: c for s, c in cells.items() if not repeats_base_model(s)}
    if not cells:
        return []
    base = cells.get("scratch")
    out = [
        "ROC-AUC of the predicted probabilities (`rocauc_prob`; no threshold):",
        "",
        "| strategy | mean ± std | paired difference vs scratch (95 % CI) | p (t / Wilcoxon) "
        "| folds better |",
        "|---|---|---|---|---|",
    ]
    for strategy, cell in sorted(cells.items(), key=lambda kv: strategy_order(kv[0])):
        vs = " |  | "
        if base is not None and strategy != "scratch":
            test = paired_test(cell["folds"], base["folds"])
            common = sorted(set(cell["folds"]) & set(base["folds"]))
            wins = sum(cell["folds"][k] > base["folds"][k] for k in common)
            if test is not None:
                lo, hi = test["ci95"]
                vs = (
                    f"{test['mean_diff']:+.4g} [{lo:+.3g}, {hi:+.3g}] | {test['p_t']:.2g} / "
                    f"{test['p_wilcoxon']:.2g} | {wins}/{len(common)}"
                )
        out.append(
            f"| {_md_cell(strategy)} | {cell['mean']:.4g} ± {cell['std']:.2g} ({len(cell['folds'])} folds) "
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


def _mean_prediction(
    results_dir: Path, strategy: str, task: str, fold: int, n_seeds: int
) -> pd.Series | None:
    """The mean of seeds ``0 .. n_seeds - 1``'s test predictions of one cell (indexed by Matbench
    id); None if a seed's prediction file is missing."""
    from pretroost.benchmark import prediction_path

    paths = [prediction_path(results_dir, strategy, task, fold, s) for s in range(n_seeds)]
    if not all(p.is_file() for p in paths):
        return None
    preds = [_read_prediction(str(p), p.stat().st_mtime_ns) for p in paths]
    return sum(preds[1:], preds[0]) / len(preds)


@functools.lru_cache(maxsize=4096)
def _read_prediction(path: str, mtime_ns: int) -> pd.Series:
    """One prediction file's ``prediction`` column; cached on (path, modification time), since
    seed and pooled ensembles read the same files (a rewritten file is read again)."""
    del mtime_ns  # part of the cache key only
    return pd.read_csv(path, index_col=0)["prediction"]


def _complete(cells: dict[str, dict]) -> dict[str, int]:
    """strategy -> seeds per fold, for the strategies with the same number of seeds on every fold
    and every fold that scratch has (all folds run when there is no scratch)."""
    folds = set(cells["scratch"]["folds"]) if "scratch" in cells else set(range(5))
    out = {}
    for strategy, cell in cells.items():
        n = {len(v) for v in cell["seeds"].values()}
        if len(n) == 1 and folds <= set(cell["folds"]) and not strategy.startswith("select("):
            out[strategy] = n.pop()
    return out


def _ensemble_scores(
    results_dir: Path, task: str, members: dict[str, int], folds: list[int], target: pd.Series
) -> dict[int, float] | None:
    """fold -> Matbench headline score (MAE, or "rocauc" of the labels thresholded at 0.5) of the
    mean prediction of ``members`` (strategy -> its seeds, each strategy averaged over its seeds
    first; for classification the mean of the probabilities); None if a prediction file is
    missing."""
    from pretroost.metrics import score

    task_type = get_task(task).task_type
    out = {}
    for fold in folds:
        preds = [_mean_prediction(results_dir, s, task, fold, n) for s, n in members.items()]
        if any(p is None for p in preds):
            return None
        mean = sum(p for p in preds if p is not None) / len(preds)
        out[fold] = score(task_type, target.loc[mean.index], mean)[HEADLINE[task_type]]
    return out


def _targets(table: dict[str, dict[str, dict]]) -> dict[str, pd.Series]:
    """task -> its targets (indexed by Matbench id), for every task of ``table``."""
    from pretroost.data.matbench import load_task

    return {task: load_task(task)["target"] for task in sorted(table)}


def _lower_is_better(task: str) -> bool:
    return HEADLINE[get_task(task).task_type] != "rocauc"


def _ensemble_pool(task: str, cells: dict[str, dict]) -> dict[str, int]:
    """The strategies an ensemble of ``task`` may average (:func:`_complete`), in report order. On
    classification tasks the ``+valthreshold`` cells are left out: they re-threshold their base
    strategy's model (same probabilities; ``Variant.threshold_only``), and an ensemble's mean probability is thresholded at
    Matbench's 0.5."""
    from pretroost.experiment.strategies import repeats_base_model

    pool = _complete(cells)
    if not _lower_is_better(task):
        pool = {s: n for s, n in pool.items() if not repeats_base_model(s)}
    return dict(sorted(pool.items(), key=lambda kv: strategy_order(kv[0])))


def seed_ensembles(
    results_dir: Path,
    table: dict[str, dict[str, dict]],
    targets: dict[str, pd.Series] | None = None,
) -> dict[str, dict]:
    """Strategies run with several seeds per fold, scored as an ensemble: per fold, the mean of
    the seeds' test predictions (classification: probabilities, thresholded at 0.5; each seed a
    model trained on the training fold alone, so nothing is tuned on the test fold; no training
    beyond the preset's seeds).

    Returns task -> strategy -> {"n": seeds, "folds": {fold: score}, "mean", "single",
    "single_folds", "seed_sd"} for the strategies complete on every fold (:func:`_complete`) with
    all their seeds' prediction files; ``single`` is the strategy's usual seed-averaged score
    (``single_folds`` per fold), ``seed_sd`` the seeds' standard deviation within a fold, averaged
    over the folds. ``targets``: :func:`_targets` (loaded if not given)."""
    targets = _targets(table) if targets is None else targets
    out: dict[str, dict] = {}
    for task, target in targets.items():
        cells = table[task]
        for strategy, n in _ensemble_pool(task, cells).items():
            if n < 2:  # one seed: nothing to average, no prediction files to read
                continue
            cell = cells[strategy]
            folds = _ensemble_scores(
                results_dir, task, {strategy: n}, sorted(cell["folds"]), target
            )
            if folds is None:
                continue
            out.setdefault(task, {})[strategy] = {
                "n": n,
                "folds": folds,
                "mean": float(np.mean(list(folds.values()))),
                "single": cell["mean"],
                "single_folds": dict(cell["folds"]),
                "seed_sd": float(np.mean([np.std(v, ddof=1) for v in cell["seeds"].values()])),
            }
    return out


def strategy_ensembles(
    results_dir: Path,
    table: dict[str, dict[str, dict]],
    targets: dict[str, pd.Series] | None = None,
) -> dict[str, dict]:
    """Exploratory: per task and fold, the mean of the test predictions of every strategy run on
    all of scratch's folds (each strategy first averaged over its seeds, so each counts once;
    ``select(...)`` strategies, which repeat others, and, on classification, ``+valthreshold``
    cells, which repeat their base model, left out; classification averages probabilities and
    thresholds at 0.5). The pool is every completed strategy, not a choice, so nothing is picked on
    the test fold; but the idea came after seeing single strategies' test scores.

    Returns task -> {"members": [strategy, ...], "metric", "folds": {fold: score}, "mean",
    "best_member": the member with the best mean score, "vs_scratch", "vs_best_member": paired
    tests (see :func:`paired_test`)} for tasks with at least two such strategies."""
    targets = _targets(table) if targets is None else targets
    out: dict[str, dict] = {}
    for task, target in targets.items():
        cells = table[task]
        pool = _ensemble_pool(task, cells)
        if len(pool) < 2:
            continue
        members = list(pool)
        folds = _ensemble_scores(
            results_dir, task, pool, sorted(cells[members[0]]["folds"]), target
        )
        if folds is None:
            continue
        sign = 1 if _lower_is_better(task) else -1
        best = min(members, key=lambda s: sign * cells[s]["mean"])
        out[task] = {
            "metric": HEADLINE[get_task(task).task_type],
            "members": members,
            "folds": folds,
            "mean": float(np.mean(list(folds.values()))),
            "best_member": best,
            "vs_scratch": paired_test(folds, cells["scratch"]["folds"])
            if "scratch" in cells
            else None,
            "vs_best_member": paired_test(folds, cells[best]["folds"]),
        }
    return out


def _seed_ensemble_lines(ens: dict[str, dict]) -> list[str]:
    def p(test: dict[str, Any] | None) -> str:
        return "" if test is None else f"{test['p_t']:.2g} / {test['p_wilcoxon']:.2g}"

    out = []
    for task, cells in ens.items():
        base = cells.get("scratch")
        for strategy, cell in cells.items():
            vs_single = paired_test(cell["folds"], cell["single_folds"])
            vs_base = None
            if base is not None and strategy != "scratch":
                vs_base = paired_test(cell["folds"], base["folds"])
            out.append(
                f"| {task} | {_md_cell(strategy)} | {cell['n']} | {cell['seed_sd']:.3g} | {cell['single']:.4g} "
                f"| {cell['mean']:.4g} | {p(vs_single)} | "
                + (f"{vs_base['mean_diff']:+.4g} ({p(vs_base)})" if vs_base else "")
                + " |"
            )
    if not out:
        return []
    return [
        "## Seed ensembles (no extra training)",
        "",
        "Where the preset runs several seeds per fold, the mean of the seeds' test predictions, "
        "scored per fold: a deep ensemble of the models already trained (each on the training fold "
        "alone; nothing chosen on the test fold). Single: the seed-averaged score of the tables "
        "above; seed sd: the seeds' standard deviation within a fold, averaged over the folds. "
        "Paired tests over the folds (t / Wilcoxon).",
        "",
        "| task | strategy | seeds | seed sd | single | seed ensemble | p vs single "
        "| ensemble vs scratch's ensemble (p) |",
        "|---|---|---|---|---|---|---|---|",
        *out,
        "",
    ]


def _strategy_ensemble_lines(ens: dict[str, dict], table: dict[str, dict[str, dict]]) -> list[str]:
    def test(t: dict[str, Any] | None) -> str:
        if t is None:
            return ""
        return f"{t['mean_diff']:+.4g} [{t['ci95'][0]:+.3g}, {t['ci95'][1]:+.3g}], p = {t['p_t']:.2g} / {t['p_wilcoxon']:.2g}"

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
        "Paired over folds (difference [95 % CI], p t / Wilcoxon).",
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
    import json

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


def _save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


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


def _colour(strategy: str) -> str:
    """Grey for scratch, blue for a base strategy, cyan for a variant."""
    from pretroost.experiment.strategies import parse_strategy

    if strategy == "scratch":
        return "0.6"
    try:
        _, pre, post = parse_strategy(strategy)
    except ValueError:
        return "tab:blue"
    return "tab:cyan" if pre or post else "tab:blue"


def _plots(results_dir: Path, table: dict[str, dict[str, dict]]) -> list[Path]:
    """Per task: (left) each strategy's score as a horizontal bar (mean over folds) with its
    per-fold points, and vertical reference lines for converged scratch, the published Roost and
    the leaderboard's MODNet / CrabNet / RF-SCM/Magpie; (right) the paired per-fold difference vs
    scratch with its mean and 95 % confidence interval. Base strategies first, variants after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pretroost.experiment.leaderboard import references

    paths = []
    for task, cells in sorted(table.items()):
        base = cells.get("scratch")
        order = sorted(cells, key=strategy_order)
        if base is None or len(order) < 2:
            continue
        order = order[::-1]  # top to bottom as in the tables
        y = np.arange(len(order))
        height = 2.0 + 0.38 * len(order)  # room for the reference legend below the axes
        fig, (ax, bx) = plt.subplots(
            1, 2, figsize=(11, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
        )
        means = [cells[s]["mean"] for s in order]
        colours = [_colour(s) for s in order]
        ax.barh(y, means, color=colours, alpha=0.8)
        for i, s in enumerate(order):
            v = list(cells[s]["folds"].values())
            ax.plot(v, np.full(len(v), i) + np.linspace(-0.2, 0.2, len(v)), "k.", ms=4)
        refs = references(task)
        palette = ["tab:red", "tab:purple", "tab:orange", "tab:green", "tab:brown", "tab:pink"]
        for (label, value), colour in zip(refs.items(), palette, strict=False):
            ax.axvline(value, color=colour, ls="--", lw=1.2, label=f"{label} {value:.4g}")
        lo = min([*means, *refs.values()]) * 0.9
        hi = max([*(max(c["folds"].values()) for c in cells.values()), *refs.values()]) * 1.03
        ax.set_xlim(lo if base["metric"] != "rocauc" else max(0.0, lo), hi)
        ax.set_yticks(y, order)
        ax.set_xlabel(f"{base['metric'].upper()}\n(bars: mean over folds; dots: folds)")
        if refs:  # below the axes: inside, it would hide the fold dots
            fig.legend(fontsize=7, loc="lower center", ncol=min(len(refs), 3), frameon=False)
        ax.set_title(task)
        for i, s in enumerate(order):
            if s == "scratch":
                continue
            common = sorted(set(cells[s]["folds"]) & set(base["folds"]))
            d = [cells[s]["folds"][k] - base["folds"][k] for k in common]
            bx.plot(d, np.full(len(d), i), ".", color="k", ms=4)
            test = paired_test(cells[s]["folds"], base["folds"])
            if test is not None:
                lo_ci, hi_ci = test["ci95"]
                bx.errorbar(test["mean_diff"], i, xerr=[[test["mean_diff"] - lo_ci],
                            [hi_ci - test["mean_diff"]]], fmt="o", color="tab:blue", capsize=3)  # fmt: skip
        bx.axvline(0, color="k", lw=0.8)
        better = "lower" if base["metric"] != "rocauc" else "higher"
        bx.set_xlabel(
            f"paired difference vs scratch\n(dots: folds; mean, 95 % CI; {better} is better)"
        )
        fig.tight_layout(rect=(0, 0.1 + 0.05 * (len(refs) > 3), 1, 1))
        path = _save_figure(fig, results_dir / "plots" / f"{task}_vs_scratch.png")
        paths.append(path)
    return paths


def _plot_data_efficiency(results_dir: Path, de: dict[str, dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for task, curves in de.items():
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for s, vals in curves["strategies"].items():
            pts = [
                (f, v, sd or 0.0)
                for f, v, sd in zip(curves["fractions"], vals, curves["std"][s], strict=True)
                if v is not None
            ]
            xs, ys, sds = (np.array(c) for c in zip(*pts, strict=True))
            (line,) = ax.plot(xs, ys, marker="o", label=s)
            ax.fill_between(xs, ys - sds, ys + sds, color=line.get_color(), alpha=0.12, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("share of training fold")
        ax.set_ylabel(curves["metric"].upper())
        folds = ", ".join(map(str, curves["folds"]))
        ax.set_title(f"{task} (folds {folds}; band: ± std over folds)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = _save_figure(fig, results_dir / "plots" / f"{task}_data_efficiency.png")
        paths.append(path)
    return paths


def plot_parity_or_roc(results_dir: str | Path, strategy: str, task: str) -> Path | None:
    """Parity plot (regression) or ROC curve (classification) of a strategy's out-of-fold test
    predictions pooled over folds; returns the PNG path (None if no predictions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from pretroost.data.matbench import load_task

    results_dir = Path(results_dir)
    files = sorted((results_dir / strategy / "predictions" / task).glob("fold_*.csv"))
    if not files:
        return None
    pred = pd.concat([pd.read_csv(f) for f in files]).set_index("id")
    truth = load_task(task)["target"].loc[pred.index]
    meta = get_task(task)
    fig, ax = plt.subplots(figsize=(4, 4))
    if meta.task_type == "regression":
        lo, hi = (
            float(min(truth.min(), pred["prediction"].min())),
            float(max(truth.max(), pred["prediction"].max())),
        )
        ax.scatter(truth, pred["prediction"], s=4, alpha=0.4)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"true {meta.target}")
        ax.set_ylabel("predicted")
        mae = float(np.mean(np.abs(truth.to_numpy() - pred["prediction"].to_numpy())))
        ax.set_title(f"{task}: {strategy} (MAE {mae:.4g})", fontsize=9)
        kind = "parity"
    else:
        from sklearn.metrics import roc_auc_score, roc_curve

        fpr, tpr, _ = roc_curve(truth.to_numpy(), pred["prediction"].to_numpy())
        auc = roc_auc_score(truth.to_numpy(), pred["prediction"].to_numpy())
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{task}: {strategy} (ROC AUC of probabilities {auc:.3f})", fontsize=9)
        kind = "roc"
    fig.tight_layout()
    path = _save_figure(
        fig, results_dir / "plots" / f"{task}_{strategy.replace('+', '_')}_{kind}.png"
    )
    return path


def encoder_embeddings(
    encoders: dict[str, str | None], task: str, *, max_points: int = 3000, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Frozen material vectors of (up to ``max_points`` of) one task's compositions.

    ``encoders`` maps a label to a pretrained artefact folder, or None for a randomly initialised
    (untrained, "scratch") encoder. Returns the targets (n,) and label -> (n, d) embeddings.
    """
    import torch

    from pretroost.data.matbench import load_task
    from pretroost.models.roost import RoostConfig, RoostEncoder
    from pretroost.predict import Predictor, load

    df = load_task(task)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(df), min(max_points, len(df)), replace=False))
    formulas = df["formula"].iloc[idx].tolist()
    out = {}
    for label, folder in encoders.items():
        torch.manual_seed(seed)
        model = Predictor(RoostEncoder(RoostConfig())) if folder is None else load(folder)
        out[label] = model.embed(formulas, errors="raise", progress=False)
    return df["target"].to_numpy()[idx], out


def linear_probe(
    y: np.ndarray, emb: dict[str, np.ndarray], task: str, *, seed: int = 0
) -> dict[str, float]:
    """How much of the target a linear model reads off each frozen encoder: 5-fold CV R² of a
    ridge regression (regression tasks) or ROC-AUC of a logistic regression (classification), on
    standardised material vectors. Higher = the pretrained features already carry the target."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if get_task(task).task_type == "classification":
        model = LogisticRegression(max_iter=2000)
        cv, scoring = StratifiedKFold(5, shuffle=True, random_state=seed), "roc_auc"
    else:
        model, scoring = RidgeCV(alphas=np.logspace(-3, 5, 17)), "r2"
        cv = KFold(5, shuffle=True, random_state=seed)
    pipe = make_pipeline(StandardScaler(), model)
    return {
        k: float(cross_val_score(pipe, X, y, cv=cv, scoring=scoring).mean()) for k, X in emb.items()
    }


def plot_embedding_map(
    encoders: dict[str, str | None],
    task: str,
    out: str | Path,
    *,
    max_points: int = 3000,
    seed: int = 0,
    embeddings: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
) -> Path:
    """PCA maps of encoder material vectors of one task's compositions, one panel per encoder,
    coloured by the target (``embeddings``: the output of :func:`encoder_embeddings`, if at hand)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    y, emb = embeddings or encoder_embeddings(encoders, task, max_points=max_points, seed=seed)
    fig, axes = plt.subplots(1, len(emb), figsize=(3.2 * len(emb), 3.2), squeeze=False)
    for ax, (label, X) in zip(axes[0], emb.items(), strict=True):
        xy = PCA(n_components=2, random_state=seed).fit_transform(X)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, s=3, cmap="viridis")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label=get_task(task).target)
    return _save_figure(fig, Path(out))
