"""A DFT band-gap teacher for formula-only models: PBE gaps of Materials Project compositions.

Matbench's ``mp_gap`` task (Dunn et al., npj Comput. Mater. 6, 138, 2020) holds PBE band gaps of
106,113 Materials Project structures. Averaged per reduced composition, with **every composition
of the experimental composition tasks removed** (:data:`TEACHER_EXCLUDES`), they train a gradient
boosting model on element fractions + Magpie attributes whose prediction, a "PBE gap" for any
formula, is a feature for the tree models (``pretroost.trees``' feature set
``fractions+magpie+pbe``): transfer from DFT to experimental band gaps with no composition of an
experimental task's test fold in the teacher's data. (PBE underestimates gaps and calls some
semiconductors metals; the trees learn the mapping to experiment.)

The teacher is fitted once (47–48 s on one core here; deterministic for a given scikit-learn) and
kept in the data cache as ``<cache>/pbe_gap/teacher-<key>.skops`` (skops' pickle-free format),
``key`` (:func:`teacher_info`) being a sha256 of what it is made of: the data files it reads, the
excluded tasks, :data:`TEACHER_SETTINGS`, :data:`TEACHER_VERSION` and scikit-learn's version; a
change to any of them fits a new one, so a stale teacher is never read. A saved trees model that
uses it keeps its own copy (``pretroost.trees.save_trees``) and reads nothing from the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretroost.artefacts import ArtefactError, load_skops
from pretroost.data.composition import CompositionArray, parse_formulas
from pretroost.data.corpus import matbench_keys
from pretroost.data.fingerprint import magpie_fingerprint
from pretroost.data.matbench import TASKS, load_task, task_cache_file
from pretroost.paths import cache_dir
from pretroost.utils import atomic_path

__all__ = [
    "TEACHER_EXCLUDES",
    "TEACHER_SETTINGS",
    "TEACHER_VERSION",
    "fit_teacher",
    "pbe_gap_feature",
    "pbe_gap_table",
    "teacher",
    "teacher_cache_file",
    "teacher_info",
]

log = logging.getLogger(__name__)

#: Matbench's composition-input tasks (expt_gap, expt_is_metal, glass, steels): none of their
#: compositions is in the teacher's data
TEACHER_EXCLUDES: tuple[str, ...] = tuple(
    name for name, task in TASKS.items() if task.input_type == "composition"
)
# scikit-learn HistGradientBoostingRegressor settings of the teacher
TEACHER_SETTINGS: dict[str, Any] = {"max_iter": 1000, "learning_rate": 0.1, "random_state": 0}
#: bump when the code that makes the teacher changes (its table, features or model): a cached
#: teacher of another version is never read
TEACHER_VERSION = 1
#: the Matbench task whose PBE gaps teach
TEACHER_SOURCE = "matbench_mp_gap"


def pbe_gap_table(
    exclude: Sequence[str] = TEACHER_EXCLUDES, *, frame: pd.DataFrame | None = None
) -> tuple[CompositionArray, np.ndarray]:
    """The teacher's data: each reduced composition of mp_gap (``frame``: its ``formula`` and
    ``target`` columns; default the data cache's) once, in order of first appearance, with the
    mean of its gaps (eV, shape (n,)); compositions of the tasks in ``exclude`` removed. Both
    read from the data cache's CSVs (:func:`~pretroost.data.matbench.task_cache_file`)."""

    frame = load_task(TEACHER_SOURCE, source="cache") if frame is None else frame
    comps = parse_formulas(frame["formula"].tolist(), source=TEACHER_SOURCE)
    keys = pd.Series(comps.keys())
    gaps = pd.Series(frame["target"].to_numpy(dtype=np.float64)).groupby(keys).mean()
    leaked = set().union(*matbench_keys(list(exclude)).values()) if exclude else set()
    first = keys.drop_duplicates()
    first = first[~first.isin(leaked)]
    return comps.subset(first.index.to_numpy()), gaps.loc[first.to_numpy()].to_numpy()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def teacher_info() -> dict[str, Any]:
    """What the teacher is made of, and ``key``, the sha256 of all of it: the sha256 of each data
    file it reads (mp_gap's and the excluded tasks' CSVs in the data cache), the excluded tasks,
    :data:`TEACHER_SETTINGS`, :data:`TEACHER_VERSION` and scikit-learn's version."""
    import sklearn

    names = (TEACHER_SOURCE, *TEACHER_EXCLUDES)
    doc: dict[str, Any] = {
        "version": TEACHER_VERSION, "settings": dict(TEACHER_SETTINGS),
        "excludes": list(TEACHER_EXCLUDES), "sklearn_version": sklearn.__version__,
        "data_sha256": {name: _sha256(task_cache_file(name)) for name in names},
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return {"key": key, **doc}


def teacher_cache_file(key: str) -> Path:
    """Where the data cache keeps the teacher of ``key`` (:func:`teacher_info`)."""

    return cache_dir() / "pbe_gap" / f"teacher-{key[:24]}.skops"


def fit_teacher() -> Any:
    """The teacher fitted on :func:`pbe_gap_table` (fractions + Magpie attributes ->
    mean PBE gap; 47–48 s on one core here): a scikit-learn HistGradientBoostingRegressor."""
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


@functools.lru_cache(maxsize=4)
def _cached_teacher(key: str) -> Any:
    """The teacher of ``key``: read from the data cache, or fitted once and written there."""
    import skops.io

    path = teacher_cache_file(key)
    if path.is_file():
        try:
            return load_skops(path)
        except ArtefactError as exc:
            log.warning("cached PBE gap teacher unusable (%s); fitting it again", exc)
    log.info("fitting the PBE band-gap teacher once (~50 s); cached in %s", path)
    model = fit_teacher()
    with atomic_path(path) as tmp:
        skops.io.dump(model, tmp)
    return model


def _teacher() -> Any:
    """The teacher of the data cache's current files (:func:`teacher_info`), fitted at most once
    per machine and read once per process."""
    return _cached_teacher(teacher_info()["key"])


def teacher() -> Any:
    """The fitted teacher (:func:`_teacher`): a scikit-learn regressor of (n, 103 + 144)
    fractions + Magpie attributes."""
    return _teacher()


def pbe_gap_feature(
    comps: CompositionArray,
    fractions_magpie: np.ndarray | None = None,
    *,
    model: Any = None,
) -> np.ndarray:
    """(n, 1) float64: the teacher's PBE band gap (eV) of each composition. ``fractions_magpie``:
    the compositions' fractions + Magpie features if already computed ((n, 103 + 144));
    ``model``: a teacher to use (a saved model's own copy; default :func:`teacher`)."""
    if fractions_magpie is None:
        fractions_magpie = np.hstack([comps.dense(), magpie_fingerprint(comps)])
    model = _teacher() if model is None else model
    return model.predict(fractions_magpie)[:, None]
