"""Fetch the project's data from two pinned wheels into the cache (``pretroost data fetch``).

Both wheels are obtained with ``pip download`` (by package name, through pip's configured index) or
taken from a local folder for offline use, verified against pinned sha256 hashes, and extracted:

- ``crabnet==2.0.8`` ships all 13 Matbench v0.1 tasks as ``formula,target`` CSVs in official row
  order (``crabnet/data/matbench/*.csv``) and the OQMD corpus
  (``crabnet/data/benchmark_data/OQMD_*/{train,val,test}.csv``);
- ``matbench==0.6`` ships the official folds (``matbench_v0.1_validation.json``) and the task
  metadata (``matbench_v0.1_dataset_metadata.json``).

Cache layout (other modules rely on it)::

    <cache>/matbench/<task>.csv       id,formula,target; official ids and order, all 13 tasks
                                      (classification targets written as 0/1)
    <cache>/matbench/folds.json       {task: [{"train": [ids], "test": [ids]}, ... 5 folds]}
    <cache>/matbench/metadata.json    copy of matbench_v0.1_dataset_metadata.json
    <cache>/oqmd/<dir>_<split>.csv    e.g. OQMD_Bandgap_train.csv, columns as shipped
    <cache>/manifest.json             every file's sha256 and size, and the wheels' names/hashes

Every file is written atomically; the manifest is written last, so its presence means a complete
cache. A second call verifies the manifest and does nothing else unless ``force``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pretroost.data.matbench import TASKS, official_ids
from pretroost.paths import cache_dir
from pretroost.utils import atomic_path

__all__ = [
    "CRABNET_WHEEL",
    "MATBENCH_WHEEL",
    "OQMD_DIRS",
    "PINNED_WHEELS",
    "WheelHashError",
    "fetch_all",
    "verify_cache",
]

log = logging.getLogger(__name__)

CRABNET_WHEEL = "crabnet-2.0.8-py3-none-any.whl"
MATBENCH_WHEEL = "matbench-0.6-py3-none-any.whl"
PINNED_WHEELS: Mapping[str, str] = {
    CRABNET_WHEEL: "4901565abaa5b4cd1a7841b9de647a3906df21676b226a7abf972d113f92054a",
    MATBENCH_WHEEL: "90b131032c3c2afe37c57b8891efefca05efe2d14296ae1f22445f7ddfb14c01",
}
_REQUIREMENT = {CRABNET_WHEEL: "crabnet==2.0.8", MATBENCH_WHEEL: "matbench==0.6"}

OQMD_DIRS: tuple[str, ...] = (
    "OQMD_Bandgap",
    "OQMD_Energy_per_atom",
    "OQMD_Formation_Enthalpy",
    "OQMD_Volume_per_atom",
)
OQMD_SPLITS: tuple[str, ...] = ("train", "val", "test")

_CRABNET_MATBENCH = "crabnet/data/matbench/"
_CRABNET_OQMD = "crabnet/data/benchmark_data/"
_MB_VALIDATION = "matbench/matbench_v0.1_validation.json"
_MB_METADATA = "matbench/matbench_v0.1_dataset_metadata.json"
_MANIFEST = "manifest.json"
_MANIFEST_FORMAT = 1


def _file_mode() -> int:
    """Mode for cache files: 0666 minus the umask (``mkstemp`` would leave them 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class WheelHashError(RuntimeError):
    """A wheel's sha256 is not the pinned one."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(wheel: str, dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.10", _REQUIREMENT[wheel], "-d", str(dest),
    ]  # fmt: skip
    log.info("downloading %s with pip", _REQUIREMENT[wheel])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}); for offline use pass a folder "
            f"holding {wheel} as wheel_dir.\n{tail}"
        )
    path = dest / wheel
    if not path.is_file():
        raise RuntimeError(f"pip download did not produce {wheel} in {dest}")
    return path


def _obtain_wheels(wheel_dir: Path | None, tmp: Path, pinned: Mapping[str, str]) -> dict[str, Path]:
    """Locate or download each pinned wheel and verify its sha256."""
    wheels: dict[str, Path] = {}
    for wheel, expected in pinned.items():
        if wheel not in _REQUIREMENT:
            raise ValueError(f"unknown wheel {wheel!r}; valid: {sorted(_REQUIREMENT)}")
        if wheel_dir is not None:
            path = Path(wheel_dir) / wheel
            if not path.is_file():
                raise FileNotFoundError(f"{wheel} not found in wheel_dir {wheel_dir}")
        else:
            path = _download(wheel, tmp)
        actual = _sha256_file(path)
        if actual != expected:
            raise WheelHashError(
                f"sha256 mismatch for {path}: expected {expected}, got {actual}; refusing to use "
                f"a wheel that is not the pinned release"
            )
        log.info("verified %s (sha256 %s…)", wheel, actual[:12])
        wheels[wheel] = path
    missing = set(_REQUIREMENT) - set(wheels)
    if missing:
        raise ValueError(f"pinned hashes missing for {sorted(missing)}")
    return wheels


class _Writer:
    """Writes files atomically under ``root`` and records their sha256 and size."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode = _file_mode()
        self.files: dict[str, dict[str, Any]] = {}

    def write(self, rel: str, data: bytes) -> None:
        with atomic_path(self.root / rel) as tmp:
            tmp.write_bytes(data)
            tmp.chmod(self.mode)  # mkstemp makes 0600 files; the cache is meant to be shared
        self.files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        log.debug("wrote %s (%d bytes)", rel, len(data))


def _task_csv(name: str, raw: bytes, n_expected: int, classification: bool) -> bytes:
    """Turn crabnet's ``formula,target`` CSV into ours (``id,formula,target``), checking it."""
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    header, body = rows[0], [r for r in rows[1:] if r]
    if header != ["formula", "target"]:
        raise ValueError(f"{name}: unexpected crabnet header {header}")
    if len(body) != n_expected:
        raise ValueError(
            f"{name}: crabnet has {len(body)} rows, the Matbench metadata says {n_expected}"
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "formula", "target"])
    for i, (mbid, (formula, target)) in enumerate(
        zip(official_ids(name, n_expected), body, strict=True)
    ):
        value = float(target)  # raises on a malformed value
        if value != value:
            raise ValueError(f"{name}: row {i} has a missing target")
        if classification:
            if value not in (0.0, 1.0):
                raise ValueError(f"{name}: row {i} classification target {target!r} is not 0/1")
            target = str(int(value))
        writer.writerow([mbid, formula, target])
    return out.getvalue().encode("utf-8")


def _extract(wheels: Mapping[str, Path], writer: _Writer) -> None:
    with zipfile.ZipFile(wheels[MATBENCH_WHEEL]) as mbz:
        metadata_raw = mbz.read(_MB_METADATA)
        validation = json.loads(mbz.read(_MB_VALIDATION))
    metadata = json.loads(metadata_raw)
    if set(metadata) != set(TASKS):
        raise ValueError(f"matbench metadata tasks {sorted(metadata)} != {sorted(TASKS)}")
    for name, task in TASKS.items():
        md = metadata[name]
        for field in ("target", "task_type", "input_type"):
            if md[field] != getattr(task, field):
                raise ValueError(
                    f"{name}: metadata {field}={md[field]!r} but the registry says "
                    f"{getattr(task, field)!r}"
                )

    n_rows: dict[str, int] = {}
    with zipfile.ZipFile(wheels[CRABNET_WHEEL]) as cz:
        for name, task in TASKS.items():
            member = _CRABNET_MATBENCH + task.crabnet_file
            n = int(metadata[name]["n_samples"])
            data = _task_csv(name, cz.read(member), n, task.task_type == "classification")
            writer.write(f"matbench/{name}.csv", data)
            n_rows[name] = n
            log.info("matbench/%s.csv: %d rows", name, n)

        members = set(cz.namelist())
        for d in OQMD_DIRS:
            for split in OQMD_SPLITS:
                member = f"{_CRABNET_OQMD}{d}/{split}.csv"
                if member not in members:
                    raise ValueError(f"{CRABNET_WHEEL} lacks {member}")
                writer.write(f"oqmd/{d}_{split}.csv", cz.read(member))
        log.info("oqmd: %d files", len(OQMD_DIRS) * len(OQMD_SPLITS))

    splits = validation["splits"]
    folds: dict[str, list[dict[str, list[str]]]] = {}
    for name in TASKS:
        task_splits = splits[name]
        keys = sorted(task_splits, key=lambda k: int(k.split("_")[1]))
        ids = set(official_ids(name, n_rows[name]))
        tested: set[str] = set()
        task_folds = []
        for key in keys:
            train, test = list(task_splits[key]["train"]), list(task_splits[key]["test"])
            if set(train) | set(test) != ids or set(train) & set(test):
                raise ValueError(f"{name} {key}: train/test do not partition the task's ids")
            tested.update(test)
            task_folds.append({"train": train, "test": test})
        if tested != ids or len(task_folds) != 5:
            raise ValueError(f"{name}: the test sets of the 5 folds do not cover all ids")
        folds[name] = task_folds
    writer.write("matbench/folds.json", json.dumps(folds).encode("utf-8"))
    writer.write("matbench/metadata.json", metadata_raw)
    log.info("matbench/folds.json: 5 folds for %d tasks", len(folds))


def verify_cache(cache: Path | None = None, pinned: Mapping[str, str] = PINNED_WHEELS) -> list[str]:
    """Check a fetched cache against its manifest; returns the problems found (empty: all good)."""
    cache = Path(cache) if cache is not None else cache_dir()
    path = cache / _MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return [f"no readable manifest at {path}: {err}"]
    problems = []
    if manifest.get("format") != _MANIFEST_FORMAT:
        problems.append(f"manifest format {manifest.get('format')!r} != {_MANIFEST_FORMAT}")
    wheels = {w: info.get("sha256") for w, info in manifest.get("wheels", {}).items()}
    if wheels != dict(pinned):
        problems.append("manifest was made from other wheels than the pinned ones")
    files = manifest.get("files", {})
    if not files:
        problems.append("manifest lists no files")
    for rel, info in files.items():
        fpath = cache / rel
        if not fpath.is_file():
            problems.append(f"missing {rel}")
        elif fpath.stat().st_size != info["size"]:
            problems.append(f"size mismatch for {rel}")
        elif _sha256_file(fpath) != info["sha256"]:
            problems.append(f"sha256 mismatch for {rel}")
    return problems


_SAFE = re.compile(r"^[\w.()\-]+$")


def fetch_all(
    *,
    cache: Path | None = None,
    wheel_dir: Path | None = None,
    force: bool = False,
    pinned: Mapping[str, str] = PINNED_WHEELS,
) -> Path:
    """Fill the data cache from the pinned crabnet and matbench wheels; returns the cache folder.

    Args:
        cache: where to write (default :func:`pretroost.paths.cache_dir`).
        wheel_dir: a folder already holding both wheel files (offline use); else pip downloads
            them into a temporary folder.
        force: re-extract even when the manifest verifies.
        pinned: wheel file name -> expected sha256 (tests inject hashes of fake wheels).

    Raises:
        WheelHashError: a wheel's sha256 differs from the pinned value.
        RuntimeError: pip download failed.
        ValueError: the wheels' content is not what is expected (row counts, folds, headers).
    """
    cache = Path(cache) if cache is not None else cache_dir()
    start = time.perf_counter()
    if not force and (cache / _MANIFEST).is_file():
        problems = verify_cache(cache, pinned)
        if not problems:
            log.info("data cache %s is complete and verified; nothing to do", cache)
            return cache
        log.warning("data cache %s fails verification (%s); fetching again", cache, problems[0])

    for wheel in pinned:
        if not _SAFE.match(wheel):
            raise ValueError(f"odd wheel name {wheel!r}")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pretroost-wheels-") as tmp:
        wheels = _obtain_wheels(wheel_dir, Path(tmp), pinned)
        writer = _Writer(cache)
        _extract(wheels, writer)
        manifest = {
            "format": _MANIFEST_FORMAT,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wheels": {
                w: {"sha256": pinned[w], "size": wheels[w].stat().st_size} for w in sorted(pinned)
            },
            "files": dict(sorted(writer.files.items())),
        }
    with atomic_path(cache / _MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(writer.mode)
    log.info(
        "fetched %d files into %s in %.1f s", len(writer.files), cache, time.perf_counter() - start
    )
    return cache
