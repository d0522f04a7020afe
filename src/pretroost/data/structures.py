"""Crystal structures for the structure teachers: reading them, hashing them, keying them by composition.

Three sources are read into one shape, a list of ``(id, Structure)``:

* a CSV file with a column of CIF text (e.g. the CDVAE ``perov_5`` / ``carbon_24`` splits);
* a matminer-format ``.json.gz``/``.json`` data frame with a ``structure`` column of pymatgen
  structures (e.g. the Matbench ``matbench_phonons.json.gz`` file), read with matminer's
  :func:`~matminer.utils.io.load_dataframe_from_json`;
* a folder of ``.cif`` files (ids are the file stems).

A CIF that does not parse raises :class:`StructureError` naming the file, the row or id and the
reason, so a bad record in a corpus of thousands is found at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from tqdm.auto import tqdm

from pretroost.data.composition import CompositionArray, FormulaError, parse_formula

__all__ = [
    "StructureError",
    "composition_keys",
    "read_structures",
    "structure_hash",
]

log = logging.getLogger(__name__)

_JSON_SUFFIXES = (".json.gz", ".json", ".json.bz2", ".json.xz")


class StructureError(ValueError):
    """A crystal structure that cannot be read or used.

    Attributes:
        reason: why it was refused.
        source: the file it came from (or ``None``).
        row: 0-based row in ``source`` (or ``None``).
        ident: the record's id (or ``None``).
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str | os.PathLike[str] | None = None,
        row: int | None = None,
        ident: object = None,
    ) -> None:
        self.reason = reason
        self.source = None if source is None else str(source)
        self.row, self.ident = row, ident
        where = []
        if self.source is not None:
            where.append(self.source)
        if row is not None:
            where.append(f"row {row}")
        if ident is not None:
            where.append(f"id {ident!r}")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


def _progress(iterable, *, total: int | None, desc: str, progress: bool):
    """A tqdm bar, shown only when asked for and when stderr is a terminal."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        disable=not (progress and sys.stderr.isatty()),
        leave=False,
    )


def _parse_cif(text: object, *, source: str, row: int | None, ident: object) -> Structure:
    """One CIF text -> a Structure, or a :class:`StructureError` saying why not."""
    if not isinstance(text, str) or not text.strip():
        raise StructureError("empty or missing CIF text", source=source, row=row, ident=ident)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Structure.from_str(text, fmt="cif")
        except Exception as exc:  # pymatgen raises ValueError, KeyError, IndexError, ...
            reason = f"CIF does not parse ({type(exc).__name__}: {exc})"
            raise StructureError(reason, source=source, row=row, ident=ident) from None
    for w in caught:
        log.debug("%s row %s id %r: %s", source, row, ident, w.message)
    _check_structure(structure, source=source, row=row, ident=ident)
    return structure


def _check_structure(structure: object, *, source: str, row: int | None, ident: object) -> None:
    if not isinstance(structure, Structure):
        raise StructureError(
            f"expected a pymatgen Structure, got {type(structure).__name__}",
            source=source,
            row=row,
            ident=ident,
        )
    if len(structure) == 0:
        raise StructureError("structure has no sites", source=source, row=row, ident=ident)
    if not np.isfinite(structure.lattice.matrix).all() or structure.volume <= 0:
        raise StructureError("degenerate lattice", source=source, row=row, ident=ident)


def _read_csv(
    path: Path, *, cif_col: str, id_col: str | None, progress: bool
) -> list[tuple[str, Structure]]:
    df = pd.read_csv(path)
    if cif_col not in df.columns:
        raise StructureError(
            f"no CIF column {cif_col!r}; columns are {list(df.columns)}", source=path
        )
    if id_col is None:
        id_col = "material_id" if "material_id" in df.columns else None
    elif id_col not in df.columns:
        raise StructureError(
            f"no id column {id_col!r}; columns are {list(df.columns)}", source=path
        )
    ids = [str(i) for i in (df[id_col] if id_col else range(len(df)))]
    out = []
    bar = _progress(
        enumerate(df[cif_col]), total=len(df), desc=f"CIF {path.name}", progress=progress
    )
    for row, text in bar:
        out.append((ids[row], _parse_cif(text, source=str(path), row=row, ident=ids[row])))
    return out


def _read_json(
    path: Path, *, id_col: str | None, structure_col: str
) -> list[tuple[str, Structure]]:
    from matminer.utils.io import load_dataframe_from_json

    try:
        df = load_dataframe_from_json(str(path), pbar=False)
    except Exception as exc:
        raise StructureError(f"cannot read a matminer data frame ({exc})", source=path) from None
    if structure_col not in df.columns:
        raise StructureError(
            f"no structure column {structure_col!r}; columns are {list(df.columns)}", source=path
        )
    if id_col is not None and id_col not in df.columns:
        raise StructureError(
            f"no id column {id_col!r}; columns are {list(df.columns)}", source=path
        )
    ids = [str(i) for i in (df[id_col] if id_col else df.index)]
    out = []
    for row, s in enumerate(df[structure_col]):
        if isinstance(s, dict):  # an undecoded as_dict()
            try:
                s = Structure.from_dict(s)
            except Exception as exc:
                raise StructureError(
                    f"structure dict does not decode ({exc})", source=path, row=row, ident=ids[row]
                ) from None
        _check_structure(s, source=str(path), row=row, ident=ids[row])
        out.append((ids[row], s))
    return out


def _read_folder(path: Path, *, progress: bool) -> list[tuple[str, Structure]]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif" and p.is_file())
    if not files:
        raise StructureError("folder holds no .cif files", source=path)
    out = []
    for f in _progress(files, total=len(files), desc=f"CIF {path.name}", progress=progress):
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise StructureError(f"cannot read the file ({exc})", source=f, ident=f.stem) from None
        out.append((f.stem, _parse_cif(text, source=str(f), row=None, ident=f.stem)))
    return out


def read_structures(
    path: str | os.PathLike[str],
    *,
    cif_col: str = "cif",
    id_col: str | None = None,
    structure_col: str = "structure",
    progress: bool = True,
) -> list[tuple[str, Structure]]:
    """Read crystal structures from a CSV of CIF text, a matminer JSON data frame or a CIF folder.

    Args:
        path: a ``.csv`` file, a ``.json``/``.json.gz`` matminer data frame, or a folder of
            ``.cif`` files.
        cif_col: the CSV column holding CIF text.
        id_col: the column holding record ids. ``None``: the CSV's ``material_id`` column if it
            has one, else the 0-based row number; the data frame's index for JSON files. Ignored
            for folders, whose ids are the file stems (sorted by name).
        structure_col: the JSON data frame's column of structures.
        progress: show a progress bar while parsing CIFs (only on a terminal).

    Returns:
        ``[(id, structure), ...]`` in file order (ids are strings).

    Raises:
        StructureError: a CIF that does not parse, an empty structure, a missing column, or a path
            that is none of the three kinds (the message names the file, row, id and reason).
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        items = _read_folder(path, progress=progress)
    elif path.name.lower().endswith(".csv") or path.name.lower().endswith(".csv.gz"):
        items = _read_csv(path, cif_col=cif_col, id_col=id_col, progress=progress)
    elif path.name.lower().endswith(_JSON_SUFFIXES):
        items = _read_json(path, id_col=id_col, structure_col=structure_col)
    else:
        raise StructureError(
            "unknown kind of structure source; expected one of: a .csv with CIF text, "
            f"a matminer {'/'.join(_JSON_SUFFIXES)} data frame, a folder of .cif files",
            source=path,
        )
    log.info("read %d structures from %s", len(items), path)
    return items


def structure_hash(structure: Structure, *, decimals: int = 6) -> str:
    """A stable sha256 of a structure, for caching embeddings.

    Hashes the lattice matrix (Å) and every site's species and occupancy with its fractional
    coordinates wrapped into [0, 1), all rounded to ``decimals``. Sites are sorted first, so the
    hash does not depend on site order (every teacher here is invariant to it); translations,
    rotations and supercells do give different hashes.

    Returns:
        64 hex characters.
    """
    lat = np.round(structure.lattice.matrix, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    frac = np.round(np.mod(np.round(structure.frac_coords, decimals), 1.0), decimals) + 0.0
    species = [
        ",".join(f"{sp}:{occ:.{decimals}f}" for sp, occ in sorted(site.species.items()))
        for site in structure
    ]
    rows = sorted(
        f"{sp}|{c[0]:.{decimals}f},{c[1]:.{decimals}f},{c[2]:.{decimals}f}"
        for sp, c in zip(species, frac, strict=True)
    )
    h = hashlib.sha256()
    h.update(" ".join(f"{x:.{decimals}f}" for x in lat.ravel()).encode())
    h.update(b"\n")
    h.update("\n".join(rows).encode())
    return h.hexdigest()


def composition_keys(structures: Sequence[Structure]) -> list[str]:
    """The reduced-composition key of each structure, in the format of
    :meth:`pretroost.data.composition.CompositionArray.keys` (so embeddings can be joined on
    composition with the rest of the project).

    Raises:
        StructureError: a structure whose composition is not a set of real elements.
    """
    items = []
    for i, s in enumerate(structures):
        try:
            items.append(parse_formula(s.composition.element_composition.formula))
        except FormulaError as err:
            raise StructureError(f"composition cannot be keyed ({err.reason})", row=i) from None
    return CompositionArray.from_lists(items).keys()
