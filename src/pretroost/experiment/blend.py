"""Declared blends: per fold, a weighted mean of strategies' test predictions, written as a
strategy of its own (cells in the bench layout, a Matbench submission file, rows in
``benchmark.jsonl``), so that a mixed ensemble declared before its scores were read is reported
and submitted like any model.

A part is ``STRATEGY[@SEEDS][=WEIGHT]``: ``dft+trunk`` (all the seeds it has on a fold, averaged),
``dft+trunk@0-4`` (seeds 0 … 4), ``dft+trunk@0,2`` or ``dft+trunk@0-4=5`` (weight 5; default 1); a
blend written before is a strategy too (``blend(a@0-4=5|b@0-2=3)`` as one part).
Each part is first averaged over its seeds, then the parts are averaged with their weights, so
``a@0-4=5 b@0-2=3`` weighs the eight models alike. Classification averages probabilities and labels
the mean at the same weighted mean of the parts' thresholds (0.5 unless a part is a
``+valthreshold`` strategy). Nothing is trained and nothing is chosen on a test fold: the parts and
weights are given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pretroost import strategy_names as names
from pretroost.data.matbench import MatbenchTask, get_task, load_task
from pretroost.experiment.prediction_averages import _mean_prediction
from pretroost.experiment.scores import latest_rows
from pretroost.metrics import CLF_THRESHOLD, HEADLINE
from pretroost.results import (
    cell_done,
    cell_scores,
    read_benchmark_rows,
    rebuild_results,
    strategy_cells,
    write_cell,
)
from pretroost.strategy_names import parse_combination, split_top_level

__all__ = [
    "BlendPart",
    "blend_label",
    "parse_part",
    "part_prediction",
    "split_parts",
    "training_facts",
    "write_blend",
]

log = logging.getLogger(__name__)

_PART = re.compile(r"^(?P<strategy>.+?)(?:@(?P<seeds>[0-9,\-]+))?(?:=(?P<weight>[0-9.]+))?$")


@dataclass(frozen=True, kw_only=True)
class BlendPart:
    """One part of a blend: a strategy, the seeds it contributes (None: all it has on the fold)
    and its weight."""

    strategy: str
    seeds: tuple[int, ...] | None = None
    weight: float = 1.0
    spec: str = ""

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"blend part {self.spec or self.strategy!r}: weight must be > 0")


def parse_part(text: str) -> BlendPart:
    """:class:`BlendPart` of ``STRATEGY[@SEEDS][=WEIGHT]`` (module docstring); ValueError if
    malformed."""
    m = _PART.match(text.strip())
    # "@" and "=" may appear only inside a nested blend's name, "blend(a@0-4=5|b)"
    if m is None or (set("@=") & set(_outside_parentheses(m["strategy"]))):
        raise ValueError(
            f"blend part {text!r}: expected STRATEGY[@SEEDS][=WEIGHT], e.g. dft+trunk@0-4=5"
        )
    seeds: tuple[int, ...] | None = None
    if m["seeds"]:
        out: list[int] = []
        for item in m["seeds"].split(","):
            lo, _, hi = item.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or (hi and int(hi) < int(lo)):
                raise ValueError(f"blend part {text!r}: bad seeds {m['seeds']!r} (e.g. 0-4 or 0,2)")
            out += range(int(lo), int(hi or lo) + 1)
        seeds = tuple(dict.fromkeys(out))
    weight = float(m["weight"]) if m["weight"] else 1.0
    return BlendPart(strategy=m["strategy"], seeds=seeds, weight=weight, spec=text.strip())


def _outside_parentheses(text: str) -> str:
    """The characters of ``text`` at parenthesis depth 0."""
    out, depth = [], 0
    for c in text:
        depth += c == "("
        if depth == 0:
            out.append(c)
        depth -= c == ")"
    return "".join(out)


def split_parts(label: str) -> list[str]:
    """The parts of a blend's name ``blend(<part>|<part>)`` as written, nested blends kept whole
    (:func:`pretroost.strategy_names.parse_combination`)."""
    combination = parse_combination(label)
    if combination is not None and combination.kind == "blend":
        return list(combination.parts)
    return split_top_level(label)


def blend_label(parts: Sequence[BlendPart]) -> str:
    """The default name of a blend: ``blend(<part>|<part>|...)``, the parts as written."""
    return names.blend_label([p.spec or p.strategy for p in parts])


def part_prediction(
    results_dir: Path, part: BlendPart, task: str, fold: int
) -> tuple[list[int], pd.Series, float] | None:
    """A part's seeds on one fold (its own, or every seed the fold has), the mean of their test
    predictions (indexed by Matbench id) and of their thresholds; None if a prediction is
    missing."""

    ran = strategy_cells(results_dir, part.strategy, task)
    seeds = list(part.seeds or sorted(s for f, s in ran if f == fold))
    mean = _mean_prediction(results_dir, part.strategy, task, fold, seeds) if seeds else None
    return None if mean is None else (seeds, *mean)


def training_facts(
    latest: dict, strategy: str, task: str, fold: int, seeds: Sequence[int]
) -> list[dict]:
    """The headline benchmark rows (``latest``: :func:`~pretroost.experiment.scores.latest_rows`)
    of a strategy's seeds on one fold: their ``n_train``, ``epochs`` and ``seconds``."""
    headline = HEADLINE[get_task(task).task_type]
    keys = ((strategy, task, fold, s, headline) for s in seeds)
    return [latest[key] for key in keys if key in latest]


def pending_folds(
    results_dir: Path, name: str, tasks: Sequence[str], folds: Sequence[int]
) -> Iterator[tuple[MatbenchTask, pd.Series, int]]:
    """(task, its targets indexed by Matbench id, fold) for each fold of ``tasks`` whose cell of
    the derived strategy ``name`` (a blend, a hurdle) is not written yet; the others are logged
    and skipped."""
    for task_name in tasks:
        task = get_task(task_name)
        targets = load_task(task.name)["target"]
        for fold in folds:
            if cell_done(results_dir, name, task.name, fold):
                log.info("%s %s fold %d: exists, skipped", name, task.name, fold)
                continue
            yield task, targets, fold


def write_blend(
    results_dir: str | Path,
    parts: Sequence[BlendPart],
    tasks: Sequence[str],
    *,
    name: str | None = None,
    folds: Sequence[int] = (0, 1, 2, 3, 4),
) -> list[dict]:
    """Write the blend of ``parts`` on ``tasks`` as strategy ``name`` (default
    :func:`blend_label`) in ``results_dir``: per fold a prediction file, a record
    (``blend_of``: each part's strategy, seeds and weight) and benchmark rows whose ``seconds`` is
    the parts' models' training time together. Folds where a part has no prediction file, or the
    blend's own file exists, are skipped. Returns the rows written."""
    if len(parts) < 2:
        raise ValueError("a blend needs at least two parts")
    results_dir = Path(results_dir)
    name = name or blend_label(parts)
    latest = latest_rows(read_benchmark_rows(results_dir / "benchmark.jsonl"))
    written: list[dict] = []
    for task, targets, fold in pending_folds(results_dir, name, tasks, folds):
        headline = HEADLINE[task.task_type]
        cells = []
        for part in parts:
            mean = part_prediction(results_dir, part, task.name, fold)
            if mean is None:
                break
            cells.append((part, *mean))
        if len(cells) < len(parts):
            log.warning("%s %s fold %d: a part's predictions are missing", name, task.name, fold)
            continue
        total = sum(p.weight for p, *_ in cells)
        order = cells[0][2].index  # the test fold's ids, in the first part's order
        pred = (sum(p.weight * s for p, _, s, _ in cells) / total).loc[order]
        threshold = float(sum(p.weight * t for p, _, _, t in cells) / total)
        y_test = targets.loc[pred.index].to_numpy()
        scores = cell_scores(task.task_type, y_test, pred.to_numpy(), threshold)
        facts = [
            fact
            for p, seeds, *_ in cells
            for fact in training_facts(latest, p.strategy, task.name, fold, seeds)
        ]
        record = {
            "blend_of": [
                {"strategy": p.strategy, "seeds": seeds, "weight": p.weight}
                for p, seeds, *_ in cells
            ],
            "n_members": sum(len(seeds) for _, seeds, *_ in cells),
        }
        frame = pd.DataFrame({"id": pred.index, "prediction": pred.to_numpy()})
        if task.task_type == "classification" and threshold != CLF_THRESHOLD:
            frame["threshold"] = threshold
        written += write_cell(
            results_dir, name, task.name, fold, 0, frame=frame, record=record, scores=scores,
            n_train=max((r["n_train"] for r in facts), default=0),
            epochs=max((r["epochs"] for r in facts), default=0),
            seconds=sum(r["seconds"] for r in facts),
        )  # fmt: skip
        log.info("%s %s fold %d: %s = %.4f", name, task.name, fold, headline, scores[headline])
    rebuild_results(
        results_dir, name,
        hyperparameters={"blend_of": [p.spec or p.strategy for p in parts]},
        algorithm_description="pretroost blend: per fold the weighted mean of the test "
        "predictions of " + ", ".join(p.spec or p.strategy for p in parts),
    )  # fmt: skip
    return written
