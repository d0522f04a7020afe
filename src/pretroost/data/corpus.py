"""The pretraining corpus: unlabeled compositions (OQMD, 341,700 from the data step), deduplicated by
reduced composition and, by default, with every composition of every Matbench task removed, so that
pretraining never sees a test material. Structure sets (CIFs) add compositions with a crystal
structure for the multimodal (structure-teacher) objective. The OQMD files also carry DFT labels
(:data:`DFT_PROPERTIES`); :meth:`Corpus.dft_labels` joins them onto the corpus for the supervised
``dft`` objective.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost.configs import (
    ALL_DFT_PROPERTIES,
    DFT_PROPERTIES,
    MATBENCH_DFT_PROPERTIES,
    OQMD_PROPERTIES,
)
from pretroost.data.composition import CompositionArray, FormulaError, parse_formula
from pretroost.data.dft_labels import matbench_dft_labels
from pretroost.data.matbench import TASKS, load_task
from pretroost.paths import cache_dir
from pretroost.utils import atomic_path, atomic_write_json

__all__ = [
    "ALL_DFT_PROPERTIES",
    "DFT_PROPERTIES",
    "Corpus",
    "build_corpus",
    "matbench_keys",
    "oqmd_labels",
]

log = logging.getLogger(__name__)


def _parse_many(formulas: Iterable[str], source: str) -> tuple[CompositionArray, list[int], int]:
    """Parse formulas, skipping (and counting) the ones that do not parse; returns the compositions,
    the positions of the parsed formulas, and the number skipped."""
    items, kept, bad = [], [], 0
    for i, f in enumerate(formulas):
        try:
            items.append(parse_formula(f))
            kept.append(i)
        except FormulaError as err:
            bad += 1
            log.debug("%s: skipped %s", source, err)
    if bad:
        log.warning("%s: %d formulas did not parse and were skipped", source, bad)
    return CompositionArray.from_lists(items), kept, bad


def matbench_keys(tasks: Sequence[str] | None = None) -> dict[str, set[str]]:
    """Composition keys of each Matbench task (all 13 by default), from the data cache."""

    out = {}
    for name in tasks or list(TASKS):
        df = load_task(name, source="cache")
        comps, _, _ = _parse_many(df["formula"], name)
        out[TASKS[name].name if name in TASKS else name] = set(comps.keys())
    return out


def oqmd_labels(
    properties: Sequence[str] = DFT_PROPERTIES,
    *,
    oqmd_dir: Path | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """DFT labels of the OQMD files, one row per reduced composition.

    The files of each property (its train, val and test parts alike: they are one labelled set
    to us) are concatenated, formulas are parsed, and rows are grouped by reduced composition
    (:meth:`CompositionArray.keys`): **duplicates are averaged** (formulas that reduce to the
    same composition, and repeats within a property). Compositions without a label for a property
    get NaN in its column; formulas that do not parse are skipped (and counted in the log).

    Args:
        properties: names from :data:`DFT_PROPERTIES` (the column order of the result).
        oqmd_dir: folder of the ``OQMD_*.csv`` files (default: the data cache's ``oqmd/``).
        limit: read at most this many rows of each file (tests, quick tries).

    Returns:
        DataFrame indexed by composition key, one float column per property.
    """
    unknown = [p for p in properties if p not in DFT_PROPERTIES]
    if unknown or not properties:
        raise ValueError(f"unknown DFT properties {unknown}; valid: {', '.join(DFT_PROPERTIES)}")
    root = oqmd_dir if oqmd_dir is not None else cache_dir() / "oqmd"
    frames = []
    for prop in properties:
        files = sorted(Path(root).glob(f"OQMD_{prop}_*.csv"))
        if not files:
            raise FileNotFoundError(
                f"no OQMD_{prop}_*.csv in {root}: run `pretroost data fetch` first"
            )
        df = pd.concat([pd.read_csv(f, usecols=["formula", "target"], nrows=limit) for f in files])
        frames.append(df.assign(property=prop))
    rows = pd.concat(frames, ignore_index=True)
    rows["formula"] = rows["formula"].astype(str)
    unique = list(dict.fromkeys(rows["formula"]))
    comps, kept, _ = _parse_many(unique, "OQMD labels")
    key_of = dict(zip((unique[i] for i in kept), comps.keys(), strict=True))
    rows["key"] = rows["formula"].map(key_of)
    rows = rows.dropna(subset=["key"])
    table = rows.pivot_table(index="key", columns="property", values="target", aggfunc="mean")
    table = table.reindex(columns=list(properties)).astype(np.float64)
    log.info(
        "OQMD labels: %d compositions; labelled per property: %s",
        len(table), {p: int(table[p].notna().sum()) for p in properties},
    )  # fmt: skip
    return table


@dataclass
class Corpus:
    """Compositions to pretrain on, plus optional structure sets for a teacher.

    Attributes:
        comps: the compositions (unique by reduced composition).
        formulas: a formula string per composition.
        info: provenance: sources, size, content hash, what was excluded and why.
        structure_files: structure sets whose teacher embeddings become ``structure`` targets.
    """

    comps: CompositionArray
    formulas: list[str]
    info: dict = field(default_factory=dict)
    structure_files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.comps)

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for arr in (self.comps.z, self.comps.frac.round(8), self.comps.offsets):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """``path`` (.npz) with the arrays, and ``path`` with .json holding formulas and info."""
        path = Path(path).with_suffix(".npz")
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(fh, z=self.comps.z, frac=self.comps.frac, offsets=self.comps.offsets)
        meta = {
            "info": self.info,
            "structure_files": self.structure_files,
            "formulas": self.formulas,
        }
        atomic_write_json(path.with_suffix(".json"), meta, indent=None)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        path = Path(path).with_suffix(".npz")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no corpus here; run `pretroost corpus build` first")
        with np.load(path, allow_pickle=False) as data:
            comps = CompositionArray(data["z"], data["frac"], data["offsets"])
        meta = json.loads(path.with_suffix(".json").read_text())
        return cls(comps, meta["formulas"], meta["info"], meta.get("structure_files", []))

    def subset(self, index: np.ndarray) -> Corpus:
        info = {**self.info, "subset_of": self.info.get("hash"), "size": int(len(index))}
        return Corpus(
            self.comps.subset(index), [self.formulas[i] for i in index], info, self.structure_files
        )

    def dft_labels(
        self,
        properties: Sequence[str] = DFT_PROPERTIES,
        *,
        oqmd_dir: Path | None = None,
        limit: int | None = None,
    ) -> np.ndarray:
        """(n, P) float32 DFT labels of the corpus' compositions, joined by reduced composition
        (OQMD's: :func:`oqmd_labels`; Matbench's DFT tasks':
        :func:`pretroost.data.dft_labels.matbench_dft_labels`; duplicates averaged), NaN where a
        property is not known. Being a view of this corpus, it keeps the corpus' Matbench
        exclusion: no excluded composition gets a row. ``oqmd_dir`` and ``limit`` apply to the
        OQMD files (``limit`` also to each Matbench task)."""
        unknown = [p for p in properties if p not in ALL_DFT_PROPERTIES]
        if unknown or not properties:
            raise ValueError(
                f"unknown DFT properties {unknown}; valid: {', '.join(ALL_DFT_PROPERTIES)}"
            )
        keys = self.comps.keys()
        oqmd = [p for p in properties if p in OQMD_PROPERTIES]
        mb = [p for p in properties if p in MATBENCH_DFT_PROPERTIES]
        parts = []
        if oqmd:
            parts.append(oqmd_labels(oqmd, oqmd_dir=oqmd_dir, limit=limit).reindex(keys))
        if mb:
            parts.append(matbench_dft_labels(mb, limit=limit).reindex(keys))
        table = pd.concat(parts, axis=1)[list(properties)]
        out = table.to_numpy(dtype=np.float32)
        log.info(
            "DFT labels: %d of %d compositions have at least one; per property: %s",
            int(np.isfinite(out).any(axis=1).sum()), len(self),
            {p: int(np.isfinite(out[:, j]).sum()) for j, p in enumerate(properties)},
        )  # fmt: skip
        return out

    def teacher_embeddings(self, teacher: str, **teacher_kwargs) -> np.ndarray:
        """(n, d) teacher embedding per composition (mean over its polymorphs in the structure
        files), NaN rows where no structure is known. Embeddings are cached on disk."""
        # start-up time: structures and teachers load pymatgen (and torch), for structure labels only
        from pretroost.data.structures import composition_keys, read_structures
        from pretroost.data.teachers import average_polymorphs, embed_with_cache, get_teacher

        if not self.structure_files:
            raise ValueError("this corpus has no structure files; build it with --structures")
        model = get_teacher(teacher, **teacher_kwargs)
        keys_all: list[str] = []
        embs = []
        for f in self.structure_files:
            items = read_structures(f)
            embs.append(embed_with_cache(model, items, dataset=Path(f).stem))
            keys_all += composition_keys([s for _, s in items])
        ukeys, mean, counts = average_polymorphs(keys_all, np.concatenate(embs))
        where = {k: i for i, k in enumerate(ukeys)}
        out = np.full((len(self), model.dim), np.nan, dtype=np.float32)
        hit = 0
        for i, k in enumerate(self.comps.keys()):
            j = where.get(k)
            if j is not None:
                out[i] = mean[j]
                hit += 1
        log.info(
            "%s: %d of %d compositions have a structure (%d structures, mean %.2f polymorphs)",
            teacher, hit, len(self), int(counts.sum()), float(counts.mean()) if len(counts) else 0.0,
        )  # fmt: skip
        return out


def _structure_compositions(path: str) -> tuple[list[str], list[str]]:
    """(keys, formulas) of the structures in a file, without building pymatgen Structures when the
    CSV carries a formula column."""
    p = Path(path)
    if p.suffix == ".csv":
        df = pd.read_csv(p, usecols=lambda c: c in ("formula", "cif"))
        if "formula" in df:
            comps, kept, _ = _parse_many(df["formula"], p.name)
            return comps.keys(), [str(df["formula"].iloc[i]) for i in kept]
    # start-up time: pymatgen, only for structure files
    from pretroost.data.structures import composition_keys, read_structures

    structures = [s for _, s in read_structures(p, progress=False)]
    return composition_keys(structures), [s.composition.reduced_formula for s in structures]


def build_corpus(
    *,
    oqmd: bool = True,
    structures: Sequence[str | Path] = (),
    exclude: Sequence[str] | None = None,
    include_matbench: bool = False,
    cache: Path | None = None,
    limit: int | None = None,
) -> Corpus:
    """Build the leak-free pretraining corpus.

    Args:
        oqmd: include the 341,700 OQMD compositions of the data cache.
        structures: structure sets (CSV with CIFs, matminer json.gz, CIF folder) whose compositions
            are added (and whose teacher embeddings the structure objective regresses).
        exclude: Matbench tasks whose compositions are removed (default: all 13).
        include_matbench: keep Matbench compositions (no exclusion at all).
        cache: the data cache holding ``oqmd/`` (default :func:`pretroost.paths.cache_dir`).
        limit: read at most this many rows of each OQMD file (tests, quick tries).

    Returns:
        The corpus; ``info`` reports sizes, duplicates and the compositions removed per task (for
        OQMD and for each structure set).
    """

    root = cache or cache_dir()
    formulas: list[str] = []
    sources: list[str] = []
    if oqmd:
        files = sorted((root / "oqmd").glob("OQMD_*.csv"))
        if not files:
            raise FileNotFoundError(
                f"no OQMD files in {root / 'oqmd'}: run `pretroost data fetch` first"
            )
        parts = [pd.read_csv(f, usecols=["formula"], nrows=limit) for f in files]
        raw = pd.concat(parts)["formula"]
        unique = list(dict.fromkeys(raw.astype(str)))
        formulas += unique
        sources += ["oqmd"] * len(unique)
        log.info("OQMD: %d rows, %d unique formula strings", len(raw), len(unique))
    structure_keys: dict[str, set[str]] = {}
    for f in structures:
        keys, forms = _structure_compositions(str(f))
        structure_keys[str(f)] = set(keys)
        formulas += forms
        sources += [str(f)] * len(forms)
    comps, kept_pos, n_bad = _parse_many(formulas, "corpus")
    formulas_kept = [formulas[i] for i in kept_pos]
    sources = [sources[i] for i in kept_pos]
    keys = comps.keys()
    # dedupe by reduced composition, keeping first occurrence (OQMD first)
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    keep = np.fromiter(first.values(), dtype=np.int64)
    info: dict = {
        "sources": (["oqmd"] if oqmd else []) + [str(f) for f in structures],
        "parsed": len(keys),
        "unparseable": n_bad,
        "duplicates": len(keys) - len(keep),
    }
    excluded_tasks = [] if include_matbench else list(exclude if exclude is not None else TASKS)
    report: dict[str, dict[str, int]] = {}
    if excluded_tasks:
        task_keys = matbench_keys(excluded_tasks)
        uniq_keys = [keys[i] for i in keep]
        oqmd_keys = {keys[i] for i in keep if sources[i] == "oqmd"}
        banned: set[str] = set()
        for task, tk in task_keys.items():
            row = {"task_compositions": len(tk)}
            if oqmd:
                row["removed_from_oqmd"] = len(tk & oqmd_keys)
            for f, sk in structure_keys.items():
                row[f"overlap_{Path(f).parent.name}/{Path(f).name}"] = len(tk & sk)
            report[task] = row
            banned |= tk
        mask = np.array([k not in banned for k in uniq_keys])
        info["removed_total"] = int((~mask).sum())
        keep = keep[mask]
    info["excluded_tasks"] = excluded_tasks
    info["exclusion_report"] = report
    keep = np.sort(keep)
    corpus = Corpus(
        comps.subset(keep), [formulas_kept[i] for i in keep], info, [str(f) for f in structures]
    )
    corpus.info["size"] = len(corpus)
    corpus.info["hash"] = corpus.content_hash
    log.info("corpus: %d compositions (hash %s)", len(corpus), corpus.info["hash"])
    return corpus
