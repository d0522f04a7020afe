"""The DFT pretraining corpus: OQMD's compositions plus those of Matbench's own DFT tasks, with
every composition of the evaluation and confirmation tasks removed.

``pretroost corpus build --labels all`` (or ``all+perovskites``) writes it to the data cache as
``corpus/dft-<labels>-leakfree.npz``; ``pretroost pretrain --objective dft --dft-labels all
--corpus ...`` regresses its labels (:data:`pretroost.data.dft_labels.LABEL_SETS`): the four of
OQMD and those of ``matbench_mp_e_form``, ``matbench_mp_gap``, ``matbench_mp_is_metal`` (and
``matbench_perovskites``), each averaged per reduced composition, missing ones masked. No other
labelled set enters.

Unlike the OQMD corpus (:func:`pretroost.data.corpus.build_corpus`, which drops all 13 Matbench
tasks' compositions by reduced-composition key), this one must keep the Materials Project tasks'
compositions (they are its labels), and drops those of :data:`EXCLUDED_TASKS` (the evaluation and
confirmation tasks) by key **and** by near match: same elements, every normalised fraction within
:data:`pretroost.data.dft_labels.NEAR_TOLERANCE` (:func:`~pretroost.data.dft_labels.near_duplicates`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost.data.composition import CompositionArray
from pretroost.data.corpus import Corpus, _parse_many
from pretroost.data.dft_labels import (
    CONFIRMATION_TASKS,
    EVALUATION_TASKS,
    MATBENCH_DFT_PROPERTIES,
    NEAR_TOLERANCE,
    label_set,
    near_duplicates,
)
from pretroost.data.matbench import load_task
from pretroost.paths import cache_dir

__all__ = ["EXCLUDED_TASKS", "build_dft_corpus", "dft_corpus_path", "task_compositions"]

log = logging.getLogger(__name__)

#: the tasks none of whose compositions a DFT corpus holds
EXCLUDED_TASKS: tuple[str, ...] = (*EVALUATION_TASKS, *CONFIRMATION_TASKS)


def dft_corpus_path(labels: str, cache: Path | None = None) -> Path:
    """Where ``pretroost corpus build --labels <labels>`` keeps a DFT corpus."""
    label_set(labels)
    return (cache or cache_dir()) / "corpus" / f"dft-{labels}-leakfree.npz"


def task_compositions(
    tasks: Sequence[str], cache: Path | None = None
) -> dict[str, CompositionArray]:
    """The parsed compositions of each Matbench task, from the data cache."""
    out = {}
    for name in tasks:
        df = load_task(name, source="cache", cache=cache)
        out[name], _, _ = _parse_many(df["formula"].astype(str), name)
    return out


def build_dft_corpus(
    labels: str = "all",
    *,
    exclude: Sequence[str] = EXCLUDED_TASKS,
    tol: float = NEAR_TOLERANCE,
    cache: Path | None = None,
    limit: int | None = None,
) -> Corpus:
    """Build the corpus of label set ``labels`` (``"all"`` or ``"all+perovskites"``).

    Args:
        labels: a name of :data:`pretroost.data.dft_labels.LABEL_SETS` holding Matbench labels.
        exclude: Matbench tasks whose compositions are removed (by key and by near match).
        tol: the near-match tolerance on normalised fractions.
        cache: the data cache holding ``oqmd/`` and ``matbench/``.
        limit: read at most this many rows of each file (tests, quick tries).

    Returns:
        The corpus; ``info`` holds the label set, the sources, and per excluded task its size and
        the compositions removed (``removed_exact``: same key; ``removed_near``: within ``tol``
        only).
    """
    properties = label_set(labels)
    tasks = [MATBENCH_DFT_PROPERTIES[p] for p in properties if p in MATBENCH_DFT_PROPERTIES]
    if not tasks:
        raise ValueError(
            f"label set {labels!r} has no Matbench labels: `pretroost corpus build` (OQMD only) "
            "builds that corpus"
        )
    leak = sorted(set(tasks) & set(exclude))
    if leak:
        raise ValueError(f"{', '.join(leak)}: both a label source and excluded")
    root = cache or cache_dir()
    files = sorted((root / "oqmd").glob("OQMD_*.csv"))
    if not files:
        raise FileNotFoundError(
            f"no OQMD files in {root / 'oqmd'}: run `pretroost data fetch` first"
        )
    formulas: list[str] = []
    sources: list[str] = []
    raw = pd.concat([pd.read_csv(f, usecols=["formula"], nrows=limit) for f in files])["formula"]
    unique = list(dict.fromkeys(raw.astype(str)))
    formulas += unique
    sources += ["oqmd"] * len(unique)
    for task in tasks:
        df = load_task(task, source="cache", cache=cache)
        forms = list(dict.fromkeys(df["formula"].astype(str).iloc[:limit]))
        formulas += forms
        sources += [task] * len(forms)
    comps, kept, n_bad = _parse_many(formulas, "DFT corpus")
    keys = comps.keys()
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    keep = np.fromiter(first.values(), dtype=np.int64)
    unique_comps = comps.subset(keep)
    unique_keys = [keys[i] for i in keep]
    removed = np.zeros(len(keep), dtype=bool)
    report: dict[str, dict[str, int]] = {}
    for task, tc in task_compositions(list(exclude), cache).items():
        task_keys = set(tc.keys())
        exact = np.fromiter((k in task_keys for k in unique_keys), bool, len(unique_keys))
        near = near_duplicates(unique_comps, tc, tol)
        report[task] = {
            "task_compositions": len(task_keys),
            "removed_exact": int(exact.sum()),
            "removed_near": int((near & ~exact).sum()),
        }
        removed |= exact | near
    keep = keep[~removed]
    source_of = [sources[kept[i]] for i in keep]
    info: dict = {
        "labels": labels,
        "properties": list(properties),
        "sources": ["oqmd", *tasks],
        "per_source": {s: source_of.count(s) for s in ["oqmd", *tasks]},
        "parsed": len(keys),
        "unparseable": n_bad,
        "duplicates": len(keys) - len(first),
        "aggregation": "labels: mean per reduced composition (mp_is_metal: fraction of metals)",
        "excluded_tasks": list(exclude),
        "exclusion_rule": f"same reduced composition, or same elements with every normalised "
        f"fraction within {tol:g}",
        "exclusion_report": report,
        "removed_total": int(removed.sum()),
    }
    corpus = Corpus(comps.subset(keep), [formulas[kept[i]] for i in keep], info)
    corpus.info["size"] = len(corpus)
    corpus.info["hash"] = corpus.content_hash
    log.info(
        "DFT corpus %s: %d compositions (%s; %d removed), hash %s",
        labels, len(corpus), info["per_source"], info["removed_total"], corpus.info["hash"],
    )  # fmt: skip
    return corpus
