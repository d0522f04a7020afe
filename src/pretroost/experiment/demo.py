"""``pretroost demo`` (what ``make demo`` runs): the point of the project in a few minutes on a
laptop CPU. One small Matbench task, one official fold, the same recipe and seed twice: Roost from
scratch, and Roost started from an encoder shipped with the package; both test scores side by side.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from pretroost.data.matbench import get_task
from pretroost.evaluation.matbench import run_matbench_task
from pretroost.finetune import FinetuneConfig
from pretroost.pretrained import shipped

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def run_demo(
    *,
    task: str = "matbench_steels",
    fold: int = 0,
    encoder: str | None = None,
    recipe: str = "quick",
    epochs: int | None = None,
    results_dir: str | Path = "runs/demo",
    progress: bool | None = None,
) -> str:
    """Finetune from scratch and from ``encoder`` (default: the first shipped one, with its
    pretraining head's trunk) on one official fold with ``recipe`` (:mod:`pretroost.recipes`;
    ``epochs`` replaces its epochs); returns the comparison as text."""

    names = shipped("pretrained")
    if encoder is None:
        if not names:
            raise ValueError("no shipped encoder in this installation: pass --encoder DIR")
        encoder = sorted(names)[0]
    meta = get_task(task)
    config = FinetuneConfig.from_recipe(recipe)
    if epochs is not None:
        config = replace(config, train=replace(config.train, epochs=epochs))
    runs = {
        "scratch": config,
        f"{encoder} (+trunk)": replace(config, init=encoder, init_trunk=True),
    }
    scores = {}
    for label, config in runs.items():
        log.info("demo: %s on %s fold %d", label, meta.name, fold)
        rows = run_matbench_task(
            meta.name, config, strategy=label.split(" ")[0], folds=(fold,),
            results_dir=results_dir, resume=False, progress=progress,
        )  # fmt: skip
        scores[label] = {r["metric"]: r["value"] for r in rows}
        n_train = rows[0]["n_train"]
    headline = "mae" if meta.task_type == "regression" else "rocauc"
    unit = f" {meta.unit}" if meta.unit and headline == "mae" else ""
    lines = [
        f"{meta.name}, official fold {fold} ({n_train} training rows), recipe {recipe} "
        f"({config.train.epochs} epochs), same recipe and seed:",
        *(
            f"  {label:<34} {headline.upper()} {s[headline]:.4g}{unit}"
            for label, s in scores.items()
        ),
    ]
    base, pre = (s[headline] for s in scores.values())
    better = pre < base if headline == "mae" else pre > base
    lines.append(
        f"  the pretrained start is {abs(pre - base) / abs(base):.0%} "
        f"{'better' if better else 'worse'} on this fold (one fold: see results/ for all five)"
    )
    return "\n".join(lines) + "\n"
