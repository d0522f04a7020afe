"""A DFT band-gap teacher for formula-only models: PBE gaps of Materials Project compositions.

Matbench's ``mp_gap`` task (Dunn et al., npj Comput. Mater. 6, 138, 2020) holds PBE band gaps of
106,113 Materials Project structures. Averaged per reduced composition, with **every composition
of the experimental composition tasks removed** (:data:`TEACHER_EXCLUDES`), they train a gradient
boosting model on element fractions + Magpie attributes whose prediction, a "PBE gap" for any
formula, is a feature for the tree models (``pretroost.trees``' feature set
``fractions+magpie+pbe``): transfer from DFT to experimental band gaps with no composition of an
experimental task's test fold in the teacher's data. (PBE underestimates gaps and calls some
semiconductors metals; the trees learn the mapping to experiment.)

The teacher is refitted from the data cache on first use in a process (47–48 s on one core here;
deterministic for a given scikit-learn), so nothing is stored beyond the cached Matbench data.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pretroost.data.composition import CompositionArray, parse_formulas
from pretroost.data.corpus import matbench_keys
from pretroost.data.fingerprint import magpie_fingerprint
from pretroost.data.matbench import TASKS, load_task

__all__ = ["TEACHER_EXCLUDES", "TEACHER_SETTINGS", "pbe_gap_feature", "pbe_gap_table"]

log = logging.getLogger(__name__)

#: Matbench's composition-input tasks (expt_gap, expt_is_metal, glass, steels): none of their
#: compositions is in the teacher's data
TEACHER_EXCLUDES: tuple[str, ...] = tuple(
    name for name, task in TASKS.items() if task.input_type == "composition"
)
# scikit-learn HistGradientBoostingRegressor settings of the teacher
TEACHER_SETTINGS: dict[str, Any] = {"max_iter": 1000, "learning_rate": 0.1, "random_state": 0}


def pbe_gap_table(
    exclude: Sequence[str] = TEACHER_EXCLUDES, *, frame: pd.DataFrame | None = None
) -> tuple[CompositionArray, np.ndarray]:
    """The teacher's data: each reduced composition of mp_gap (``frame``: its ``formula`` and
    ``target`` columns; default the data cache's) once, in order of first appearance, with the
    mean of its gaps (eV, shape (n,)); compositions of the tasks in ``exclude`` removed."""

    frame = load_task("matbench_mp_gap") if frame is None else frame
    comps = parse_formulas(frame["formula"].tolist(), source="matbench_mp_gap")
    keys = pd.Series(comps.keys())
    gaps = pd.Series(frame["target"].to_numpy(dtype=np.float64)).groupby(keys).mean()
    leaked = set().union(*matbench_keys(list(exclude)).values()) if exclude else set()
    first = keys.drop_duplicates()
    first = first[~first.isin(leaked)]
    return comps.subset(first.index.to_numpy()), gaps.loc[first.to_numpy()].to_numpy()


@functools.lru_cache(maxsize=1)
def _teacher() -> Any:
    """The fitted teacher (cached per process)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    t0 = time.perf_counter()
    comps, y = pbe_gap_table()
    x = np.hstack([comps.dense(), magpie_fingerprint(comps)])
    model = HistGradientBoostingRegressor(**TEACHER_SETTINGS).fit(x, y)
    log.info(
        "PBE gap teacher: %d mp_gap compositions (%s removed), fitted in %.0f s",
        len(y), ", ".join(TEACHER_EXCLUDES), time.perf_counter() - t0,
    )  # fmt: skip
    return model


def pbe_gap_feature(
    comps: CompositionArray, fractions_magpie: np.ndarray | None = None
) -> np.ndarray:
    """(n, 1) float64: the teacher's PBE band gap (eV) of each composition. ``fractions_magpie``:
    the compositions' fractions + Magpie features if already computed ((n, 103 + 144))."""
    if fractions_magpie is None:
        fractions_magpie = np.hstack([comps.dense(), magpie_fingerprint(comps)])
    return _teacher().predict(fractions_magpie)[:, None]
