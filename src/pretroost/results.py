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
import functools
import gzip
import hashlib
import json
import logging
import numbers
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pretroost.data.matbench import get_task, load_folds, load_task
from pretroost.errors import DirtyTreeError
from pretroost.metrics import CLF_THRESHOLD, PROB_ROCAUC, probability_rocauc, score, to_labels
from pretroost.utils import atomic_path, atomic_write_json, git_sha, machine_description

__all__ = [
    "ALLOW_DIRTY_ENV",
    "BENCHMARK_ROW_KEYS",
    "MATBENCH_VERSION",
    "SourceState",
    "append_benchmark_rows",
    "cell_done",
    "cell_scores",
    "check_source",
    "folds_to_run",
    "matbench_hash",
    "prediction_path",
    "read_benchmark_rows",
    "read_prediction_file",
    "rebuild_results",
    "source_state",
    "strategy_cells",
    "strategy_dir",
    "strategy_folder",
    "submission_values",
    "summarize_scores",
    "validation_path",
    "write_cell",
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
#: keys a row may carry besides those (older rows lack them): the repeat index of a seeded run;
#: the sha256 of the package's ``git diff`` for a row recorded from a modified tree (--allow-dirty)
BENCHMARK_ROW_OPTIONAL_KEYS: tuple[str, ...] = ("seed", "diff_sha256")


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

    Every row must have exactly the keys of :data:`BENCHMARK_ROW_KEYS` (and may have
    :data:`BENCHMARK_ROW_OPTIONAL_KEYS`). Refused (:func:`check_source`) while the package has
    uncommitted changes, unless allowed; then each row gets ``diff_sha256``. The file is rewritten
    whole (existing lines + new ones) to a temporary file that is renamed over it, under an
    advisory lock, so readers never see a partial line and concurrent writers lose nothing.
    """
    path = Path(path)
    checked = [_check_row(row, i) for i, row in enumerate(rows)]
    if not checked:
        return
    state = check_source()
    if state.dirty:
        checked = [{**r, "diff_sha256": state.diff_sha256} for r in checked]
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


# ----------------------------------------------------------------------------- provenance

#: set to 1 to record cells from a package with uncommitted changes (the CLI's --allow-dirty)
ALLOW_DIRTY_ENV = "PRETROOST_ALLOW_DIRTY"
#: the package folder whose uncommitted changes refuse a cell (tests point it elsewhere)
SOURCE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SourceState:
    """The revision of a source folder: ``sha`` (``+dirty`` when modified; ``"unknown"`` outside
    git) and ``diff``, its ``git diff HEAD`` ("" when clean)."""

    sha: str
    diff: str

    @property
    def dirty(self) -> bool:
        return bool(self.diff)

    @property
    def diff_sha256(self) -> str:
        return hashlib.sha256(self.diff.encode()).hexdigest()


@functools.cache
def source_state(root: Path) -> SourceState:
    """``root``'s revision and uncommitted changes to tracked files under it (kept from the first
    call, like :func:`pretroost.utils.git_sha`: a long run records the tree it started from)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        sha = git("rev-parse", "HEAD").strip()
        diff = git("diff", "HEAD", "--binary", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return SourceState("unknown", "")
    return SourceState(sha + ("+dirty" if diff else ""), diff)


def check_source(allow_dirty: bool | None = None) -> SourceState:
    """The package's :func:`source_state`; :class:`~pretroost.errors.DirtyTreeError` when it has
    uncommitted changes, unless ``allow_dirty`` (default: the environment variable
    :data:`ALLOW_DIRTY_ENV` set to 1, which the CLI's ``--allow-dirty`` sets)."""
    state = source_state(SOURCE)
    if allow_dirty is None:
        allow_dirty = os.environ.get(ALLOW_DIRTY_ENV, "") == "1"
    if state.dirty and not allow_dirty:
        files = sorted({line.removeprefix("diff --git a/").split(" b/")[0] for line in state.diff.splitlines()
                        if line.startswith("diff --git a/")})  # fmt: skip
        raise DirtyTreeError(
            f"{SOURCE} has uncommitted changes ({', '.join(files)}): result cells are recorded "
            "from committed code only. Commit them, or pass --allow-dirty (or set "
            f"{ALLOW_DIRTY_ENV}=1) to record anyway: the diff is then stored beside each cell "
            "and its sha256 in each benchmark row"
        )
    return state


#: characters no strategy folder may hold (Windows forbids them in paths; "/" and "\\" would nest)
_UNPORTABLE = frozenset('<>:"/\\|?*')


def strategy_folder(strategy: str) -> str:
    """The folder name of ``strategy``'s results: the name itself, with the ``|`` of a selection's
    label (:func:`selection_label`) written ``,`` so that the tree checks out on every file
    system (``select(a|b)`` -> ``select(a,b)``). Raises ValueError for a name with another
    character some file system forbids (``<>:"/\\?*``) or a control character."""
    folder = strategy.replace("|", ",")
    bad = sorted({c for c in folder if c in _UNPORTABLE or ord(c) < 32})
    if bad or not folder.strip(". "):
        raise ValueError(f"strategy name {strategy!r} cannot name a folder (characters {bad})")
    return folder


def strategy_dir(results_dir: str | Path, strategy: str) -> Path:
    """``<results_dir>/<strategy folder>``: where a strategy's predictions, validation records,
    selection records and Matbench file live (:func:`strategy_folder`)."""
    return Path(results_dir) / strategy_folder(strategy)


def prediction_path(results_dir: Path, strategy: str, task: str, fold: int, seed: int = 0) -> Path:
    """Test predictions of one cell; seed 0 is ``fold_<k>.csv``, seed s > 0 ``fold_<k>_seed<s>.csv``."""
    name = f"fold_{fold}.csv" if seed == 0 else f"fold_{fold}_seed{seed}.csv"
    return strategy_dir(results_dir, strategy) / "predictions" / task / name


def cell_done(results_dir: Path, strategy: str, task: str, fold: int, seed: int = 0) -> bool:
    """Whether one cell is finished: its prediction file, written last (after the validation
    record) and atomically, exists. Resuming skips such cells."""
    return prediction_path(results_dir, strategy, task, fold, seed).is_file()


def folds_to_run(
    results_dir: Path,
    strategy: str,
    task: str,
    folds: Sequence[int],
    n_folds: int,
    *,
    seed: int = 0,
    resume: bool = True,
) -> list[int]:
    """The folds of ``folds`` whose cell of ``strategy`` on ``task`` (``seed``) is still to write
    (with ``resume``; else all of them), in order; the others are logged and skipped. A fold
    outside ``0..n_folds - 1`` raises ValueError before anything runs."""
    todo = []
    for k in folds:
        if not 0 <= k < n_folds:
            raise ValueError(f"fold {k} out of range 0..{n_folds - 1}")
        if resume and cell_done(results_dir, strategy, task, k, seed):
            log.info("%s %s fold %d seed %d: predictions exist, skipped", strategy, task, k, seed)
            continue
        todo.append(k)
    return todo


def read_prediction_file(path: str | Path) -> tuple[pd.Series, float]:
    """A cell's test predictions (``prediction``, indexed by Matbench id as str) and its decision
    threshold: the ``threshold`` column a classification cell labelled at another threshold than
    0.5 writes, else 0.5 (unused for regression)."""
    frame = pd.read_csv(path)
    pred = pd.Series(frame["prediction"].to_numpy(), index=frame["id"].astype(str))
    threshold = float(frame["threshold"].iloc[0]) if "threshold" in frame else CLF_THRESHOLD
    return pred, threshold


def submission_values(pred: pd.Series, threshold: float) -> pd.Series:
    """What a Matbench results file records for one fold: the predictions (regression values or
    probabilities, which Matbench labels at 0.5), or the labels ``pred > threshold`` where a
    classification model has a threshold of its own."""
    return pred if threshold == CLF_THRESHOLD else pred > threshold


def validation_path(results_dir: Path, strategy: str, task: str, fold: int, seed: int = 0) -> Path:
    """The validation record of one cell: its prediction CSV's name with ``.json``."""
    return prediction_path(results_dir, strategy, task, fold, seed).with_suffix(".json")


def cell_scores(task_type: str, y_test: Any, values: Any, threshold: float) -> dict[str, float]:
    """Matbench's scores of test predictions ``values`` (probabilities for classification, scored
    as labels ``> threshold``, plus ``rocauc_prob``)."""
    if task_type == "classification":
        scores = score(task_type, y_test, to_labels(values, threshold))
        scores[PROB_ROCAUC] = probability_rocauc(y_test, values)
        return scores
    return score(task_type, y_test, values)


def write_cell(
    results_dir: Path,
    strategy: str,
    task: str,
    fold: int,
    seed: int,
    *,
    frame: pd.DataFrame,
    record: dict[str, Any],
    scores: dict[str, float],
    n_train: int,
    epochs: int,
    seconds: float,
) -> list[dict]:
    """Write one finished cell of any model (a finetuned Roost, a tree reference, a blend): its
    validation record first, then its prediction CSV ``frame`` (``id``, ``prediction``, optional
    ``threshold`` / ``std``), whose existence marks the cell done (:func:`cell_done`), then one
    ``benchmark.jsonl`` row per score, stamped with this revision and machine. Refused while the
    package has uncommitted changes (:func:`check_source`); allowed, the ``git diff`` goes beside
    the cell (``fold_<k>[_seed<s>].diff``). Returns the rows."""
    state = check_source()  # before anything is written
    atomic_write_json(validation_path(results_dir, strategy, task, fold, seed), record)
    if state.dirty:  # recorded from a modified package (allowed): keep what was modified
        diff_file = validation_path(results_dir, strategy, task, fold, seed).with_suffix(".diff")
        with atomic_path(diff_file) as tmp:
            tmp.write_text(state.diff)
    with atomic_path(prediction_path(results_dir, strategy, task, fold, seed)) as tmp:
        frame.to_csv(tmp, index=False)
    sha, machine = git_sha(), machine_description()
    rows = [
        {
            "strategy": strategy, "task": task, "fold": fold, "seed": seed, "metric": metric,
            "value": float(value), "n_train": n_train, "epochs": epochs,
            "seconds": round(float(seconds), 2), "git_sha": sha, "machine": machine,
        }
        for metric, value in scores.items()
    ]  # fmt: skip
    append_benchmark_rows(Path(results_dir) / "benchmark.jsonl", rows)
    return rows


def rebuild_results(
    results_dir: str | Path,
    strategy: str,
    *,
    hyperparameters: dict | None = None,
    algorithm_description: str | None = None,
) -> Path | None:
    """(Re)write ``<results_dir>/<strategy>/results.json.gz`` from the stored fold predictions
    (classification folds with a ``threshold`` column as labels ``prediction > threshold``).
    ``algorithm_description`` defaults to Roost finetuned as ``strategy``."""
    root = strategy_dir(results_dir, strategy) / "predictions"
    if not root.is_dir():
        return None
    predictions: dict[str, list[pd.Series | None]] = {}
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        series: list[pd.Series | None] = [None] * 5
        for k in range(5):
            f = task_dir / f"fold_{k}.csv"
            if f.is_file():
                series[k] = submission_values(*read_prediction_file(f))
        if any(s is not None for s in series):
            predictions[task_dir.name] = series
    if not predictions:
        return None
    out = strategy_dir(results_dir, strategy) / "results.json.gz"
    write_matbench_results(
        out, predictions, authors="pretroost",
        algorithm_description=algorithm_description or f"Roost ({strategy}) finetuned with pretroost",
        hyperparameters=hyperparameters or {}, info={"strategy": strategy}, partial=True,
    )  # fmt: skip
    return out


def strategy_cells(results_dir: Path, strategy: str, task: str) -> set[tuple[int, int]]:
    """(fold, seed) of every prediction CSV of ``strategy`` on ``task``."""
    folder = strategy_dir(results_dir, strategy) / "predictions" / task
    out = set()
    for f in folder.glob("fold_*.csv") if folder.is_dir() else ():
        fold, _, seed = f.stem.removeprefix("fold_").partition("_seed")
        if fold.isdigit() and (not seed or seed.isdigit()):
            out.add((int(fold), int(seed or 0)))
    return out
