"""Results files: official Matbench v0.1 submissions and our benchmark rows (JSON lines).

:func:`write_matbench_results` writes ``results.json.gz`` in exactly the schema that
``matbench.MatbenchBenchmark.as_dict()`` (matbench 0.6) produces and ``MatbenchBenchmark.from_dict``
accepts::

    {"@module": "matbench.bench", "@class": "MatbenchBenchmark", "version": "0.6",
     "tasks": {task: {"@class": "MatbenchTask", "@module": "matbench.task",
                      "benchmark_name": "matbench_v0.1", "dataset_name": task,
                      "results": {"fold_<k>": {"data": {id: prediction, ...},
                                               "parameters": {...}, "scores": {metric: float},
                                               "uncertainty": null}}}},
     "user_metadata": {...}, "benchmark_name": "matbench_v0.1",
     "datestamp": "%Y.%m.%d %H:%M.%S" (UTC), "hash": sha256 of the rest}

Dictionaries are key-sorted as matbench's ``immutify_dictionary`` leaves them, predictions of a fold
are in the order of the official test ids, and the hash is computed the way matbench checks it
(sha256 of ``json.dumps`` of the key-sorted document without ``hash``).

Matbench has no place for free-form fields outside ``user_metadata`` (``from_dict`` rejects extra
keys), so ``authors``, ``algorithm_description``, ``info`` and the summary statistics (per task and
metric: ``mean``, ``max``, ``min``, ``std`` over the recorded folds, NumPy semantics, population std,
as matbench's ``MatbenchTask.scores``) go into ``user_metadata``; ``hyperparameters`` become every
fold's ``parameters``.

If a task has fewer than 5 folds, only those folds are written. Such a file is not a valid
submission: ``MatbenchBenchmark.from_dict`` validates each task and raises
``ValueError("Cannot validate task <task> unless all folds recorded!; folds [...] not recorded!")``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.metrics import score
from pretroost.utils import atomic_path

__all__ = [
    "BENCHMARK_ROW_KEYS",
    "MATBENCH_VERSION",
    "append_benchmark_rows",
    "matbench_hash",
    "read_benchmark_rows",
    "summarize_scores",
    "write_matbench_results",
]

log = logging.getLogger(__name__)

MATBENCH_VERSION = "0.6"
BENCHMARK_NAME = "matbench_v0.1"
DATESTAMP_FORMAT = "%Y.%m.%d %H:%M.%S"
FOLD_STATS: tuple[str, ...] = ("mean", "max", "min", "std")
_RESERVED_METADATA = ("authors", "algorithm_description", "info", "summary")

BENCHMARK_ROW_KEYS: tuple[str, ...] = (
    "strategy",
    "task",
    "fold",
    "metric",
    "value",
    "n_train",
    "epochs",
    "seconds",
    "git_sha",
    "machine",
)
#: keys a row may carry besides those (older rows lack them): the repeat index of a seeded run
BENCHMARK_ROW_OPTIONAL_KEYS: tuple[str, ...] = ("seed",)


# ----------------------------------------------------------------------------- matbench files


def _jsonable(obj: Any) -> Any:
    """Native JSON types, every dict key-sorted (as matbench's ``immutify_dictionary``)."""
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"metadata keys must be str, got {k!r}")
            out[k] = _jsonable(v)
        return dict(sorted(out.items()))
    if isinstance(obj, (np.ndarray, pd.Series)):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a Matbench results file: {obj!r}")


def _sorted_dicts(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sorted_dicts(v) for k, v in sorted(obj.items())}
    return obj


def matbench_hash(doc: Mapping[str, Any]) -> str:
    """The ``hash`` matbench records and checks: sha256 of the key-sorted JSON of ``doc`` (sans hash)."""
    body = {k: v for k, v in doc.items() if k != "hash"}
    return hashlib.sha256(json.dumps(_sorted_dicts(body)).encode("utf-8")).hexdigest()


def _prediction_values(task_name: str, series: pd.Series) -> list[Any]:
    task = get_task(task_name)
    values = series.to_numpy()
    if len(values) and pd.isna(values).any():
        raise ValueError(f"{task_name}: predictions contain missing values")
    if task.task_type == "regression":
        if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"{task_name}: regression predictions must be numeric")
        return [float(v) for v in values.astype(np.float64)]
    if values.dtype == np.bool_:
        return [bool(v) for v in values]
    if np.issubdtype(values.dtype, np.integer):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{task_name}: integer class predictions must be 0 or 1")
        return [bool(v) for v in values]
    if np.issubdtype(values.dtype, np.floating):
        if ((values < 0) | (values > 1)).any():
            raise ValueError(f"{task_name}: probability predictions must lie in [0, 1]")
        return [float(v) for v in values]
    raise ValueError(f"{task_name}: cannot read class predictions of dtype {values.dtype}")


def summarize_scores(fold_scores: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Matbench's per-task summary: metric -> {mean, max, min, std} over folds (population std)."""
    if not fold_scores:
        raise ValueError("no fold scores to summarize")
    metrics = list(fold_scores[0])
    return {
        m: {
            op: float(getattr(np, op)(np.asarray([s[m] for s in fold_scores], dtype=np.float64)))
            for op in FOLD_STATS
        }
        for m in metrics
    }


def _task_results(
    task_name: str,
    fold_predictions: Sequence[pd.Series | None],
    parameters: dict[str, Any],
    cache: Path | None,
    partial: bool = False,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    task = get_task(task_name)
    folds = load_folds(task.name, cache)
    if len(fold_predictions) > len(folds):
        raise ValueError(
            f"{task.name}: {len(fold_predictions)} prediction sets for {len(folds)} folds"
        )
    targets = load_task(task.name, cache=cache)["target"]
    test_sets = [frozenset(test) for _, test in folds]
    results: dict[str, Any] = {}
    seen: set[int] = set()
    for series in fold_predictions:
        if series is None:
            continue
        if not isinstance(series, pd.Series):
            raise TypeError(f"{task.name}: predictions must be pandas Series indexed by test id")
        if series.index.has_duplicates:
            raise ValueError(f"{task.name}: duplicate ids in predictions")
        ids = frozenset(str(i) for i in series.index)
        matches = [k for k, s in enumerate(test_sets) if s == ids]
        if not matches:
            raise ValueError(
                f"{task.name}: a prediction Series' ids ({len(ids)}) are not the test ids of "
                f"any official fold"
            )
        k = matches[0]
        if k in seen:
            raise ValueError(f"{task.name}: fold {k} given twice")
        seen.add(k)
        test_ids = folds[k][1]
        ordered = series.copy()
        ordered.index = ordered.index.map(str)
        ordered = ordered.loc[test_ids]
        values = _prediction_values(task.name, ordered)
        fold_score = score(task.task_type, targets.loc[test_ids].to_numpy(), np.asarray(values))
        results[f"fold_{k}"] = {
            "data": dict(zip(test_ids, values, strict=True)),
            "parameters": parameters,
            "scores": dict(sorted(fold_score.items())),
            "uncertainty": None,
        }
    if not results:
        raise ValueError(f"{task.name}: no fold predictions given")
    if len(results) < len(folds):
        missing = sorted(set(range(len(folds))) - seen)
        log.log(
            logging.INFO if partial else logging.WARNING,
            "%s: folds %s not given; the file will not validate as a Matbench submission",
            task.name,
            missing,
        )
    results = _sorted_dicts(results)
    return results, [results[k]["scores"] for k in results]


def write_matbench_results(
    path: str | os.PathLike[str],
    predictions: Mapping[str, Sequence[pd.Series | None]],
    *,
    user_metadata: Mapping[str, Any] | None = None,
    authors: str = "",
    algorithm_description: str = "",
    info: Mapping[str, Any] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    cache: Path | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """Write a gzipped Matbench v0.1 results file (see the module docstring for the schema).

    Args:
        path: output file (conventionally ``results.json.gz``); written atomically.
        predictions: task name (official or short) -> per-fold predictions, each a Series
            indexed by the fold's official test ids (any order). Up to 5; each Series is matched
            to its fold by its ids, and ``None`` entries are skipped. Regression: numbers;
            classification: bools, 0/1 integers (stored as bools) or probabilities in [0, 1].
        user_metadata: free-form metadata (str keys; JSON-able values, numpy arrays allowed).
        authors, algorithm_description, info: stored in ``user_metadata`` under those keys.
        hyperparameters: stored as every fold's ``parameters``.
        cache: data cache holding targets and folds (default :func:`pretroost.paths.cache_dir`).
        partial: missing folds are expected (a run still in progress): say so at INFO, not as a
            warning.

    Returns:
        The document written (a dict, as ``json.load`` of the file gives it).
    """
    if not predictions:
        raise ValueError("no tasks given")
    parameters = _jsonable(dict(hyperparameters or {}))
    tasks: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for name, fold_predictions in predictions.items():
        task = get_task(name)
        if task.name in tasks:
            raise ValueError(f"task {task.name} given twice")
        results, fold_scores = _task_results(
            task.name, fold_predictions, parameters, cache, partial
        )
        tasks[task.name] = {
            "@class": "MatbenchTask",
            "@module": "matbench.task",
            "benchmark_name": BENCHMARK_NAME,
            "dataset_name": task.name,
            "results": results,
        }
        summary[task.name] = {
            "folds": sorted(int(k.removeprefix("fold_")) for k in results),
            "scores": summarize_scores(fold_scores),
        }
    meta = dict(user_metadata or {})
    for key in _RESERVED_METADATA:
        if key in meta:
            raise ValueError(
                f"user_metadata key {key!r} is reserved; reserved keys: {list(_RESERVED_METADATA)}"
            )
    meta.update(
        authors=authors,
        algorithm_description=algorithm_description,
        info=dict(info or {}),
        summary=summary,
    )
    doc: dict[str, Any] = {
        "@module": "matbench.bench",
        "@class": "MatbenchBenchmark",
        "version": MATBENCH_VERSION,
        "tasks": dict(sorted(tasks.items())),
        "user_metadata": _jsonable(meta),
        "benchmark_name": BENCHMARK_NAME,
        "datestamp": datetime.now(timezone.utc).strftime(DATESTAMP_FORMAT),
    }
    doc["hash"] = matbench_hash(doc)
    text = json.dumps(doc)
    with atomic_path(path) as tmp, gzip.GzipFile(tmp, "wb", mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    log.info("wrote Matbench results for %d task(s) to %s", len(tasks), path)
    return json.loads(text)


# ----------------------------------------------------------------------------- benchmark rows


def _check_row(row: Mapping[str, Any], i: int) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise TypeError(f"row {i}: expected a mapping, got {type(row).__name__}")
    keys = set(row)
    missing = [k for k in BENCHMARK_ROW_KEYS if k not in keys]
    extra = sorted(keys - set(BENCHMARK_ROW_KEYS) - set(BENCHMARK_ROW_OPTIONAL_KEYS))
    if missing or extra:
        raise ValueError(
            f"row {i}: missing keys {missing}, unexpected keys {extra}; "
            f"required keys: {list(BENCHMARK_ROW_KEYS)}"
        )
    out = {
        k: _jsonable(row[k])
        for k in (*BENCHMARK_ROW_KEYS, *BENCHMARK_ROW_OPTIONAL_KEYS)
        if k in row
    }
    if "seed" in out and (isinstance(out["seed"], bool) or not isinstance(out["seed"], int)):
        raise ValueError(f"row {i}: 'seed' must be an int, got {out['seed']!r}")
    for k in ("strategy", "task", "metric"):
        if not isinstance(out[k], str) or not out[k]:
            raise ValueError(f"row {i}: {k!r} must be a non-empty string, got {out[k]!r}")
    if isinstance(out["fold"], bool) or not isinstance(out["fold"], int):
        raise ValueError(f"row {i}: 'fold' must be an int, got {out['fold']!r}")
    if isinstance(out["value"], bool) or not isinstance(out["value"], numbers.Real):
        raise ValueError(f"row {i}: 'value' must be a number, got {out['value']!r}")
    out["value"] = float(out["value"])
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock beside ``path`` so that concurrent appenders do not lose rows."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def append_benchmark_rows(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows (one JSON object per line) to a benchmark-results file.

    Every row must have exactly the keys of :data:`BENCHMARK_ROW_KEYS`. The file is rewritten
    whole (existing lines + new ones) to a temporary file that is renamed over it, under an
    advisory lock, so readers never see a partial line and concurrent writers lose nothing.
    """
    path = Path(path)
    checked = [_check_row(row, i) for i, row in enumerate(rows)]
    if not checked:
        return
    new_lines = "".join(json.dumps(r) + "\n" for r in checked)
    with _locked(path):
        old = path.read_text() if path.is_file() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        with atomic_path(path) as tmp:
            tmp.write_text(old + new_lines)
            if path.is_file():
                tmp.chmod(path.stat().st_mode & 0o777)
    log.debug("appended %d row(s) to %s", len(checked), path)


def read_benchmark_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of a benchmark-results file (``[]`` if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not a JSON line: {err}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: not a JSON object")
        rows.append(row)
    return rows
