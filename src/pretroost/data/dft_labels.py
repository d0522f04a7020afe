"""DFT labels from Matbench's own DFT tasks, and the near-duplicate test that keeps a corpus free of
the evaluated compositions.

Matbench's Materials Project tasks (Dunn et al., npj Comput. Mater. 6, 138, 2020) label
compositions with DFT (PBE) properties: ``matbench_mp_e_form`` (formation energy, eV/atom),
``matbench_mp_gap`` (band gap, eV), ``matbench_mp_is_metal`` (metal or not) and, optionally,
``matbench_perovskites`` (formation energy of perovskite cells, eV/atom). Each task is read from
the data cache (its ``formula`` per row), formulas are parsed, and rows are **aggregated per
reduced composition by the mean** of their targets (polymorphs of one composition share a row; for
``mp_is_metal`` the mean of 0/1 is the fraction of its structures that are metals).

Next to OQMD's four labels (:data:`pretroost.data.corpus.DFT_PROPERTIES`) these give the label sets
of :data:`LABEL_SETS`, the columns of the multi-task ``dft`` objective.

A composition "of a task" is any composition whose normalised fractions lie within
:data:`NEAR_TOLERANCE` (max absolute difference, same elements) of one of the task's: reduced
composition keys alone would miss e.g. ``Fe1000Ni1001`` against ``FeNi``
(:func:`near_duplicates`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost.configs import MATBENCH_DFT_PROPERTIES, OQMD_PROPERTIES
from pretroost.data.composition import CompositionArray, parse_formulas
from pretroost.data.matbench import load_task

__all__ = [
    "CONFIRMATION_TASKS",
    "EVALUATION_TASKS",
    "LABEL_SETS",
    "MATBENCH_DFT_PROPERTIES",
    "NEAR_TOLERANCE",
    "OQMD_PROPERTIES",
    "label_set",
    "matbench_dft_labels",
    "near_duplicates",
]

log = logging.getLogger(__name__)

#: named label sets (``pretroost corpus build --labels``, ``pretroost pretrain --dft-labels``)
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "oqmd4": OQMD_PROPERTIES,
    "all": (*OQMD_PROPERTIES, "mp_e_form", "mp_gap", "mp_is_metal"),
    "all+perovskites": (*OQMD_PROPERTIES, "mp_e_form", "mp_gap", "mp_is_metal", "perovskites"),
}
#: the Matbench tasks pretrained models are evaluated on: never in a DFT corpus
EVALUATION_TASKS: tuple[str, ...] = (
    "matbench_expt_gap",
    "matbench_steels",
    "matbench_glass",
    "matbench_expt_is_metal",
    "matbench_jdft2d",
    "matbench_phonons",
)
#: the Matbench tasks that confirm a choice after the evaluation: never in a DFT corpus either
CONFIRMATION_TASKS: tuple[str, ...] = (
    "matbench_log_kvrh",
    "matbench_log_gvrh",
    "matbench_dielectric",
)
#: two compositions are the same material when they have the same elements and no normalised
#: fraction differs by more than this
NEAR_TOLERANCE = 1e-3


def label_set(name: str) -> tuple[str, ...]:
    """The label names of a set of :data:`LABEL_SETS`; unknown names raise ValueError."""
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; valid: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


def matbench_dft_labels(
    properties: Sequence[str] = ("mp_e_form", "mp_gap", "mp_is_metal"),
    *,
    cache: Path | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Labels of Matbench's DFT tasks, one row per reduced composition (mean per composition).

    Args:
        properties: names from :data:`MATBENCH_DFT_PROPERTIES` (the column order of the result).
        cache: the data cache (default :func:`pretroost.paths.cache_dir`).
        limit: read at most this many rows of each task (tests, quick tries).

    Returns:
        DataFrame indexed by composition key (:meth:`CompositionArray.keys`), one float column per
        property, NaN where a composition has no label of that task.
    """
    unknown = [p for p in properties if p not in MATBENCH_DFT_PROPERTIES]
    if unknown or not properties:
        raise ValueError(
            f"unknown Matbench DFT labels {unknown}; valid: {', '.join(MATBENCH_DFT_PROPERTIES)}"
        )
    columns = []
    for prop in properties:
        task = MATBENCH_DFT_PROPERTIES[prop]
        df = load_task(task, source="cache", cache=cache)
        if limit is not None:
            df = df.iloc[:limit]
        comps = parse_formulas(df["formula"].astype(str).tolist(), source=task)
        values = pd.Series(df["target"].to_numpy(dtype=np.float64)).groupby(comps.keys()).mean()
        columns.append(values.rename(prop))
        log.info("%s: %d rows -> %d compositions", task, len(df), len(values))
    return pd.concat(columns, axis=1).reindex(columns=list(properties)).astype(np.float64)


def _rows(comps: CompositionArray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(element set, fractions) of each composition."""
    bounds = comps.offsets.tolist()
    return [
        (tuple(comps.z[a:b].tolist()), comps.frac[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def near_duplicates(
    comps: CompositionArray, reference: CompositionArray, tol: float = NEAR_TOLERANCE
) -> np.ndarray:
    """(n,) bool: True where a composition of ``comps`` has exactly the elements of some
    composition of ``reference`` and no normalised fraction differs from it by more than ``tol``
    (both sides' fractions sum to 1, elements sorted by Z, as parsed)."""
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for els, frac in _rows(reference):
        groups.setdefault(els, []).append(frac)
    stacked = {k: np.stack(v) for k, v in groups.items()}
    out = np.zeros(len(comps), dtype=bool)
    for i, (els, frac) in enumerate(_rows(comps)):
        ref = stacked.get(els)
        if ref is not None:
            out[i] = bool((np.abs(ref - frac).max(axis=1) <= tol).any())
    return out
