"""Teacher embeddings computed once and cached on disk; polymorph averaging by composition.

Layout, one folder per teacher and weights::

    <cache_dir>/teachers/<teacher name>-<fingerprint>/
        index.json              # teacher, fingerprint, dim, and each shard's size
        <dataset>.npz           # hashes (k,) str, emb (k, dim) float32

A teacher's fingerprint changes with its weights and featurisation, so stale vectors are never
read. Rows are keyed by :func:`pretroost.data.structures.structure_hash`, so the same structure in
two datasets is embedded once. Every file is written atomically (temporary file + rename); several
processes may fill the same folder, the worst case being that both compute a vector.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from pretroost.data.structures import structure_hash
from pretroost.data.teachers.base import StructureTeacher
from pretroost.paths import cache_dir as default_cache_dir
from pretroost.utils import atomic_path, atomic_write_json

__all__ = ["average_polymorphs", "embed_with_cache", "teacher_cache_dir"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def teacher_cache_dir(
    teacher: StructureTeacher, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The folder that holds ``teacher``'s cached embeddings."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    slug = _UNSAFE.sub("_", teacher.name)
    return root / "teachers" / f"{slug}-{teacher.fingerprint}"


def _load_shards(folder: Path, dim: int) -> dict[str, np.ndarray]:
    """hash -> (dim,) vector from every shard in ``folder`` (unreadable shards are skipped)."""
    table: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("*.npz")):
        try:
            with np.load(shard, allow_pickle=False) as z:
                hashes, emb = z["hashes"], z["emb"]
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring unreadable cache shard %s (%s)", shard, exc)
            continue
        if emb.ndim != 2 or emb.shape[1] != dim or len(hashes) != len(emb):
            log.warning(
                "ignoring cache shard %s of shape %s (expected (*, %d))", shard, emb.shape, dim
            )
            continue
        table.update(zip(hashes.tolist(), emb, strict=True))
    return table


def _write_shard(folder: Path, name: str, hashes: list[str], emb: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stem = _UNSAFE.sub("_", name)
    path = folder / f"{stem}.npz"
    i = 1
    while path.exists():  # never overwrite another call's shard
        path = folder / f"{stem}.{i}.npz"
        i += 1
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, hashes=np.asarray(hashes, dtype=str), emb=emb.astype(np.float32))
    return path


def _update_index(folder: Path, teacher: StructureTeacher) -> None:
    shards = {}
    for shard in sorted(folder.glob("*.npz")):
        try:
            with np.load(shard, allow_pickle=False) as z:
                shards[shard.name] = len(z["hashes"])
        except (OSError, KeyError, ValueError):
            continue
    atomic_write_json(
        folder / "index.json",
        {
            "teacher": teacher.name,
            "fingerprint": teacher.fingerprint,
            "dim": teacher.dim,
            "shards": shards,
            "n_structures": sum(shards.values()),
        },
    )


def embed_with_cache(
    teacher: StructureTeacher,
    items: Sequence[tuple[Hashable, Structure]],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    dataset: str = "embeddings",
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Embed ``(id, structure)`` pairs, computing only what the cache lacks.

    Each distinct structure (by :func:`structure_hash`) is embedded at most once: repeats within
    ``items`` share one computation, and vectors cached by earlier calls are read back. New
    vectors are saved as one shard named after ``dataset``.

    Args:
        teacher: the structure teacher.
        items: n ``(id, structure)`` pairs (ids are only carried along for the caller).
        cache_dir: root of the cache (default :func:`pretroost.paths.cache_dir`).
        dataset: name of the shard new vectors go into.
        batch_size, progress: passed to ``teacher.embed`` (progress: a tqdm bar on a terminal).

    Returns:
        (n, teacher.dim) float32, row i for ``items[i]``.
    """
    folder = teacher_cache_dir(teacher, cache_dir)
    hashes = [structure_hash(s) for _, s in items]
    table = _load_shards(folder, teacher.dim) if folder.is_dir() else {}
    todo: dict[str, Structure] = {}
    for h, (_, s) in zip(hashes, items, strict=True):
        if h not in table and h not in todo:
            todo[h] = s
    log.info(
        "%s: %d structures, %d distinct, %d cached, %d to embed",
        teacher.name,
        len(items),
        len(set(hashes)),
        len(set(hashes)) - len(todo),
        len(todo),
    )
    if todo:
        new = teacher.embed(list(todo.values()), batch_size=batch_size, progress=progress)
        new = np.asarray(new, dtype=np.float32)
        if new.shape != (len(todo), teacher.dim):
            raise ValueError(
                f"{teacher.name}.embed returned shape {new.shape}, expected {(len(todo), teacher.dim)}"
            )
        shard = _write_shard(folder, dataset, list(todo), new)
        _update_index(folder, teacher)
        log.info("cached %d embeddings in %s", len(todo), shard)
        table.update(zip(todo, new, strict=True))
    out = np.empty((len(items), teacher.dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        out[i] = table[h]
    return out


def average_polymorphs(
    keys: Sequence[str], emb: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Average the embeddings of structures that share a reduced composition.

    A composition-only student sees one input per composition, so its target is the mean over that
    composition's polymorphs. Use :func:`pretroost.data.structures.composition_keys` for ``keys``.

    Args:
        keys: n composition keys.
        emb: (n, dim) embeddings, row i for ``keys[i]``.

    Returns:
        ``(unique_keys, mean_emb, counts)``: m distinct keys in order of first appearance,
        (m, dim) float32 mean embeddings, (m,) int64 number of structures per key.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2 or len(emb) != len(keys):
        raise ValueError(f"emb must be (n, dim) with n = len(keys) = {len(keys)}; got {emb.shape}")
    index: dict[str, int] = {}
    group = np.fromiter(
        (index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys)
    )
    counts = np.bincount(group, minlength=len(index)).astype(np.int64)
    sums = np.zeros((len(index), emb.shape[1]), dtype=np.float64)
    np.add.at(sums, group, emb.astype(np.float64))
    mean = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return list(index), mean, counts
