"""The structure-teacher interface.

A *teacher* maps crystal structures to fixed-length vectors. Multimodal pretraining ("MML", Huang,
Magar & Barati Farimani, J. Chem. Inf. Model. 64, 627, 2024) trains a composition-only Roost model to
regress the teacher's vector of each material's structure, so the student learns what a structure
encoder knows from the composition alone.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure
from tqdm.auto import tqdm

from pretroost.errors import WeightsNotFoundError

__all__ = [
    "StructureTeacher",
    "WeightsNotFoundError",
    "file_sha256",
    "load_state_dict_file",
    "progress_bar",
]

log = logging.getLogger(__name__)


class StructureTeacher(abc.ABC):
    """A frozen structure encoder: ``embed(structures) -> (n, dim)`` float32.

    Subclasses set :attr:`name` (a readable id of the teacher, its variant and the layer taken),
    :attr:`dim` and :attr:`fingerprint` (changes whenever the weights or the featurisation change,
    so cached embeddings are never reused across them).
    """

    name: str
    dim: int

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short string identifying the weights and featurisation (for embedding caches)."""

    @abc.abstractmethod
    def embed(
        self, structures: Sequence[Structure], *, batch_size: int = 64, progress: bool = True
    ) -> np.ndarray:
        """Embed structures.

        Args:
            structures: n pymatgen structures (ordered sites).
            batch_size: structures per forward pass.
            progress: show a tqdm bar (only on a terminal).

        Returns:
            (n, dim) float32 array, row i the embedding of ``structures[i]``.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def progress_bar(total: int, desc: str, progress: bool) -> tqdm:
    """A tqdm bar that is shown only when asked for and when stderr is a terminal."""
    return tqdm(total=total, desc=desc, disable=not (progress and sys.stderr.isatty()), leave=False)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (memoised on path, size and mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Only tensors and plain containers are unpickled; a file that would build arbitrary Python
    objects (and so could run code) is refused.

    Raises:
        ValueError: the file is not a weights-only checkpoint, or holds no tensor dict.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: refused to load: not a weights-only checkpoint (torch.load with "
            f"weights_only=True would have to run arbitrary code): {exc}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state_dict of tensors, got {type(state).__name__}")
    return state
