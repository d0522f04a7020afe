"""The Matbench v0.1 task registry, official ids, task data and the official 5 folds.

The registry facts (target column, task type, input type, sample count, unit) are transcribed from
``matbench_v0.1_dataset_metadata.json`` as shipped in the ``matbench==0.6`` wheel; the fetched copy
(``<cache>/matbench/metadata.json``) is checked against them by the tests.

Ids are the official Matbench ids, built exactly as ``matbench.data_ops.load`` builds them: row ``i``
(0-based, official order) of task ``matbench_<short>`` is ``mb-<short with "_" -> "-">-<i+1>``, the
number zero-padded to ``floor(log(n_samples, 10)) + 1`` digits (``math.log`` with base 10, as matbench
computes it), e.g. ``mb-steels-001``, ``mb-expt-is-metal-0001``, ``mb-mp-e-form-000001``.

Data sources for :func:`load_task` (this module never downloads anything itself):

- ``"cache"``: ``<cache>/matbench/<task>.csv`` written by :func:`pretroost.data.fetch.fetch_all`;
- a directory or file path: an official ``matbench_<short>.json.gz`` (as matminer stores it);
- ``"matminer"``: ``matminer.datasets.load_dataset`` (matminer's own, online route);
- ``"auto"``: ``$PRETROOST_MATBENCH_DIR/matbench_<short>.json.gz`` if that variable is set and the
  file exists, else the cache.

Targets are always ``float64``; classification targets are ``0.0`` / ``1.0`` (``1.0`` = True).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pretroost.data.composition import CompositionArray, parse_formulas
from pretroost.paths import cache_dir

__all__ = [
    "COMPOSITION_TASKS",
    "LARGE_TASKS",
    "MATBENCH_DIR_ENV",
    "SMALL_STRUCTURE_TASKS",
    "TASKS",
    "DataNotFetchedError",
    "MatbenchTask",
    "get_task",
    "load_folds",
    "load_task",
    "official_ids",
    "task_cache_file",
    "training_rows",
]

log = logging.getLogger(__name__)

MATBENCH_DIR_ENV = "PRETROOST_MATBENCH_DIR"

TaskType = Literal["regression", "classification"]
InputType = Literal["composition", "structure"]
Source = Literal["auto", "cache", "matminer"]


class DataNotFetchedError(FileNotFoundError):
    """The data cache lacks a file that ``pretroost data fetch`` writes."""


@dataclass(frozen=True)
class MatbenchTask:
    """One Matbench v0.1 task.

    Attributes:
        name: official task name, e.g. ``"matbench_steels"``.
        short: the name without the ``matbench_`` prefix, e.g. ``"steels"``.
        target: the target column name in the official dataset, e.g. ``"yield strength"``.
        task_type: ``"regression"`` or ``"classification"``.
        input_type: ``"composition"`` or ``"structure"`` (the official input; we always use
            the composition).
        n_samples: number of rows in the official dataset.
        unit: unit of the target (``""`` for classification, where the metadata says ``null``).
        crabnet_file: file name of the task under ``crabnet/data/matbench/`` in the crabnet wheel.
    """

    name: str
    short: str
    target: str
    task_type: TaskType
    input_type: InputType
    n_samples: int
    unit: str
    crabnet_file: str

    @property
    def id_prefix(self) -> str:
        """``mb-<short with dashes>``, the prefix of every official id of this task."""
        return self.name.replace("matbench", "mb").replace("_", "-")

    @property
    def is_classification(self) -> bool:
        return self.task_type == "classification"


def _task(
    short: str,
    target: str,
    task_type: TaskType,
    input_type: InputType,
    n_samples: int,
    unit: str | None,
    crabnet_file: str,
) -> MatbenchTask:
    return MatbenchTask(
        name=f"matbench_{short}",
        short=short,
        target=target,
        task_type=task_type,
        input_type=input_type,
        n_samples=n_samples,
        unit=unit or "",
        crabnet_file=crabnet_file,
    )


# Transcribed from matbench_v0.1_dataset_metadata.json (matbench 0.6), in that file's order:
# short name, target column, task type, input type, n_samples, unit, crabnet file.
# fmt: off
_REGISTRY: tuple[tuple[str, str, TaskType, InputType, int, str | None, str], ...] = (
    ("dielectric", "n", "regression", "structure", 4764, "unitless", "dielectric.csv"),
    ("expt_gap", "gap expt", "regression", "composition", 4604, "eV", "expt_gap.csv"),
    ("expt_is_metal", "is_metal", "classification", "composition", 4921, None, "expt_is_metal.csv"),
    ("glass", "gfa", "classification", "composition", 5680, None, "glass.csv"),
    ("jdft2d", "exfoliation_en", "regression", "structure", 636, "meV/atom", "jdft2d.csv"),
    ("log_gvrh", "log10(G_VRH)", "regression", "structure", 10987, "log10(GPa)", "elasticity_log10(G_VRH).csv"),
    ("log_kvrh", "log10(K_VRH)", "regression", "structure", 10987, "log10(GPa)", "elasticity_log10(K_VRH).csv"),
    ("mp_e_form", "e_form", "regression", "structure", 132752, "eV/atom", "mp_e_form.csv"),
    ("mp_gap", "gap pbe", "regression", "structure", 106113, "eV", "mp_gap.csv"),
    ("mp_is_metal", "is_metal", "classification", "structure", 106113, None, "mp_is_metal.csv"),
    ("perovskites", "e_form", "regression", "structure", 18928, "eV/unit cell", "castelli.csv"),
    ("phonons", "last phdos peak", "regression", "structure", 1265, "cm^-1", "phonons.csv"),
    ("steels", "yield strength", "regression", "composition", 312, "MPa", "steels_yield.csv"),
)
# fmt: on

TASKS: dict[str, MatbenchTask] = {t.name: t for t in (_task(*row) for row in _REGISTRY)}
"""Official task name -> :class:`MatbenchTask`, for all 13 Matbench v0.1 tasks."""

COMPOSITION_TASKS: tuple[str, ...] = (
    "matbench_expt_gap",
    "matbench_expt_is_metal",
    "matbench_glass",
    "matbench_steels",
)
SMALL_STRUCTURE_TASKS: tuple[str, ...] = (
    "matbench_jdft2d",
    "matbench_phonons",
    "matbench_dielectric",
    "matbench_log_gvrh",
    "matbench_log_kvrh",
    "matbench_perovskites",
)
LARGE_TASKS: tuple[str, ...] = ("matbench_mp_e_form", "matbench_mp_gap", "matbench_mp_is_metal")


def get_task(name: str) -> MatbenchTask:
    """Look a task up by official name (``"matbench_steels"``) or short name (``"steels"``).

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    key = name if name.startswith("matbench_") else f"matbench_{name}"
    try:
        return TASKS[key]
    except KeyError:
        valid = ", ".join(sorted(TASKS))
        raise ValueError(
            f"unknown Matbench task {name!r}; valid names (the 'matbench_' prefix is optional): "
            f"{valid}"
        ) from None


def official_ids(name: str, n: int | None = None) -> list[str]:
    """The official ids of a task's rows in official order, as ``matbench.data_ops.load`` makes them.

    Args:
        name: task name (official or short).
        n: number of rows; defaults to the task's ``n_samples``.
    """
    task = get_task(name)
    n = task.n_samples if n is None else n
    if n <= 0:
        raise ValueError(f"number of rows must be positive, got {n}")
    width = math.floor(math.log(n, 10)) + 1  # exactly matbench's (float) digit count
    return [f"{task.id_prefix}-{i + 1:0{width}d}" for i in range(n)]


def _not_fetched(path: Path) -> DataNotFetchedError:
    return DataNotFetchedError(
        f"{path} not found: the Matbench data cache has not been fetched; run "
        f"`pretroost data fetch` (or set $PRETROOST_CACHE to a fetched cache)"
    )


def _official_json_path(task: MatbenchTask, where: Path) -> Path:
    path = where / f"{task.name}.json.gz" if where.is_dir() else where
    if not path.is_file():
        raise FileNotFoundError(f"official Matbench file not found: {path}")
    return path


def _frame(task: MatbenchTask, formulas: list[str], targets: Any) -> pd.DataFrame:
    if len(formulas) != task.n_samples:
        raise ValueError(
            f"{task.name}: expected {task.n_samples} rows (official metadata), got {len(formulas)}"
        )
    index = pd.Index(official_ids(task.name), name="id")
    frame = pd.DataFrame(
        {
            "formula": pd.Series(formulas, dtype=object).astype(str).to_numpy(),
            "target": pd.Series(targets).astype("float64").to_numpy(),
        },
        index=index,
    )
    return frame


def _from_official_frame(task: MatbenchTask, df: pd.DataFrame) -> pd.DataFrame:
    """Convert a dataframe as matminer loads it (input column + target column) to ours."""
    if task.target not in df.columns:
        raise ValueError(
            f"{task.name}: target column {task.target!r} missing; got {list(df.columns)}"
        )
    if task.input_type == "structure":
        formulas = [s.composition.formula.replace(" ", "") for s in df["structure"]]
    else:
        formulas = [str(c) for c in df["composition"]]
    return _frame(task, formulas, df[task.target].to_numpy())


def task_cache_file(name: str, cache: Path | None = None) -> Path:
    """The data cache's CSV of a task (``load_task(name, source="cache")`` reads it).

    Raises:
        DataNotFetchedError: the cache has not been fetched.
    """
    path = (cache or cache_dir()) / "matbench" / f"{get_task(name).name}.csv"
    if not path.is_file():
        raise _not_fetched(path)
    return path


def _load_cache(task: MatbenchTask, cache: Path | None) -> pd.DataFrame:
    path = task_cache_file(task.name, cache)
    df = pd.read_csv(
        path,
        dtype={"id": str, "formula": str, "target": "float64"},
        keep_default_na=False,
        na_filter=False,
    )
    if list(df.columns) != ["id", "formula", "target"]:
        raise ValueError(f"{path}: expected columns id,formula,target; got {list(df.columns)}")
    if len(df) != task.n_samples:
        raise ValueError(f"{path}: expected {task.n_samples} rows, got {len(df)}")
    df = df.set_index("id")
    return df


def load_task(
    name: str,
    *,
    source: Source | str | os.PathLike[str] = "auto",
    cache: Path | None = None,
) -> pd.DataFrame:
    """Load a Matbench task as a dataframe indexed by official id (``id``), official row order.

    Columns: ``formula`` (str; for structure tasks the unreduced cell formula without spaces, as
    ``structure.composition.formula`` gives it) and ``target`` (float64; for classification
    ``1.0``/``0.0`` for True/False).

    Args:
        name: task name (official or short).
        source: ``"auto"``, ``"cache"``, ``"matminer"`` or a path to a directory holding (or a file
            that is) an official ``matbench_<short>.json.gz``; see the module docstring.
        cache: the data cache (default :func:`pretroost.paths.cache_dir`).

    Raises:
        DataNotFetchedError: the cache is needed and has not been fetched.
        ValueError: unknown task or source.
    """
    task = get_task(name)
    if isinstance(source, os.PathLike):
        return _load_json(task, _official_json_path(task, Path(source)))
    if source not in ("auto", "cache", "matminer"):
        if Path(source).expanduser().exists():
            return _load_json(task, _official_json_path(task, Path(source).expanduser()))
        raise ValueError(
            f"unknown source {source!r} (and no such path); valid: 'auto', 'cache', 'matminer' "
            f"or the path of a directory/file holding {task.name}.json.gz"
        )
    if source == "auto":
        env = os.environ.get(MATBENCH_DIR_ENV)
        if env:
            candidate = Path(env).expanduser() / f"{task.name}.json.gz"
            if candidate.is_file():
                return _load_json(task, candidate)
            log.debug("%s not in $%s; using the cache", candidate.name, MATBENCH_DIR_ENV)
        return _load_cache(task, cache)
    if source == "cache":
        return _load_cache(task, cache)
    # source == "matminer"
    from matminer.datasets import load_dataset

    log.info("loading %s through matminer.datasets.load_dataset", task.name)
    return _from_official_frame(task, load_dataset(task.name))


def _load_json(task: MatbenchTask, path: Path) -> pd.DataFrame:
    from matminer.utils.io import load_dataframe_from_json

    log.info("loading %s from %s", task.name, path)
    return _from_official_frame(task, load_dataframe_from_json(str(path), pbar=False))


_FOLDS_MEMO: dict[str, tuple[tuple[int, int], dict[str, list[tuple[list[str], list[str]]]]]] = {}


def _all_folds(cache: Path | None) -> dict[str, list[tuple[list[str], list[str]]]]:
    path = (cache or cache_dir()) / "matbench" / "folds.json"
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise _not_fetched(path) from None
    key, version = str(path.resolve()), (stat.st_mtime_ns, stat.st_size)
    memo = _FOLDS_MEMO.get(key)
    if memo is None or memo[0] != version:
        with path.open() as fh:
            raw = json.load(fh)
        parsed = {
            task: [(list(f["train"]), list(f["test"])) for f in folds]
            for task, folds in raw.items()
        }
        _FOLDS_MEMO[key] = (version, parsed)
        memo = _FOLDS_MEMO[key]
    return memo[1]


def load_folds(name: str, cache: Path | None = None) -> list[tuple[list[str], list[str]]]:
    """The official Matbench v0.1 5-fold split of a task: ``[(train ids, test ids), ...]``.

    Read from ``<cache>/matbench/folds.json``; parsed once and kept in memory (re-read only if the
    file changes). The returned lists are fresh copies.
    """
    task = get_task(name)
    folds = _all_folds(cache)
    if task.name not in folds:
        raise ValueError(f"folds.json has no folds for {task.name}")
    return [(list(tr), list(te)) for tr, te in folds[task.name]]


def training_rows(name: str) -> tuple[CompositionArray, np.ndarray]:
    """Every row of a composition task: its compositions and targets (a model trained on all of
    them, e.g. ``pretroost trees --tasks T --out DIR``)."""
    task = get_task(name)
    df = load_task(task.name)
    return parse_formulas(df["formula"].tolist(), source=task.name), df["target"].to_numpy()
