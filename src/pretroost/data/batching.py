"""Pre-tensorised composition datasets and dense, padded batches for the Roost encoder.

Formula parsing and element lookup happen once, when a dataset is built; a training step then only
slices tensors. Batches are dense: ``(B, N)`` element slots, ``N`` the largest element count in the
batch, padding masked. Bucketing by element count keeps padding small.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from pretroost.data.composition import CompositionArray, FormulaError
from pretroost.data.elements import element_table

__all__ = ["CompositionBatch", "CompositionDataset", "check_elements"]


@dataclass
class CompositionBatch:
    """A padded batch of compositions.

    Attributes:
        z: (B, N) int64 atomic numbers, 0 in padding slots.
        weights: (B, N) float32 fractional amounts (each row sums to 1), 0 in padding.
        mask: (B, N) bool, True for real elements.
        index: (B,) int64 positions of the rows in their dataset.
        targets: name -> tensor with leading dimension B (e.g. ``"y"``: (B, T)).
    """

    z: Tensor
    weights: Tensor
    mask: Tensor
    index: Tensor
    targets: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def to(self, device: torch.device | str) -> CompositionBatch:
        return CompositionBatch(
            self.z.to(device),
            self.weights.to(device),
            self.mask.to(device),
            self.index.to(device),
            {k: v.to(device) for k, v in self.targets.items()},
        )


def check_elements(
    comps: CompositionArray, elem_embedding: str, *, source: str | None = None, formulas=None
) -> None:
    """Raise :class:`FormulaError` for the first composition holding an element that the embedding
    does not define (e.g. a noble gas missing from a table)."""
    from pymatgen.core import Element

    _, known = element_table(elem_embedding)
    bad = ~known[comps.z]
    if bad.any():
        node = int(np.flatnonzero(bad)[0])
        row = int(comps.owner[node])
        symbol = Element.from_Z(int(comps.z[node])).symbol
        formula = formulas[row] if formulas is not None else symbol
        raise FormulaError(
            formula,
            f"element {symbol} has no {elem_embedding} feature vector",
            row=row,
            source=source,
        )


class CompositionDataset:
    """Compositions (and optional per-row targets) stored as padded tensors.

    Args:
        comps: the compositions.
        targets: name -> array with leading dimension ``len(comps)``; rows are sliced with the batch.
    """

    def __init__(
        self, comps: CompositionArray, targets: Mapping[str, np.ndarray | Tensor] | None = None
    ) -> None:
        n = len(comps)
        counts = comps.n_elements
        self.max_elements = int(counts.max()) if n else 1
        slot = np.arange(len(comps.z)) - np.repeat(comps.offsets[:-1], counts)
        z = np.zeros((n, self.max_elements), dtype=np.int64)
        w = np.zeros((n, self.max_elements), dtype=np.float32)
        z[comps.owner, slot] = comps.z
        w[comps.owner, slot] = comps.frac
        self.comps = comps
        self.n_elements = torch.from_numpy(counts.astype(np.int64))
        self.z = torch.from_numpy(z)
        self.weights = torch.from_numpy(w)
        self.targets: dict[str, Tensor] = {}
        for name, value in (targets or {}).items():
            t = torch.as_tensor(value)
            if t.shape[0] != n:
                raise ValueError(f"target {name!r} has {t.shape[0]} rows, expected {n}")
            self.targets[name] = t.float() if t.is_floating_point() else t

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def batch(self, index: np.ndarray | Tensor) -> CompositionBatch:
        """The rows at ``index`` as one batch, cropped to its largest element count."""
        idx = torch.as_tensor(index, dtype=torch.long)
        width = int(self.n_elements[idx].max()) if len(idx) else 1
        z = self.z[idx, :width]
        return CompositionBatch(
            z=z,
            weights=self.weights[idx, :width],
            mask=z > 0,
            index=idx,
            targets={k: v[idx] for k, v in self.targets.items()},
        )

    def batch_indices(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: np.random.Generator | None = None,
        bucket: bool = True,
        drop_last: bool = False,
    ) -> list[np.ndarray]:
        """Split the rows into batches.

        Without shuffling, rows are sorted by element count (stable) and cut into batches. With
        shuffling and ``bucket``, a random permutation is cut into windows of 32 batches, each window
        is sorted by element count and cut into batches, and the batch order is shuffled: batches
        stay random but carry little padding.
        """
        n = len(self)
        counts = self.n_elements.numpy()
        if shuffle:
            rng = generator if generator is not None else np.random.default_rng()
            order = rng.permutation(n)
            if bucket:
                window = 32 * batch_size
                parts = [
                    order[s : s + window][np.argsort(counts[order[s : s + window]], kind="stable")]
                    for s in range(0, n, window)
                ]
                order = np.concatenate(parts) if parts else order
        else:
            order = np.argsort(counts, kind="stable") if bucket else np.arange(n)
        batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
        if drop_last and batches and len(batches[-1]) < batch_size:
            batches = batches[:-1]
        if shuffle:
            rng.shuffle(batches)
        return batches

    def batches(self, batch_size: int, **kwargs) -> Iterator[CompositionBatch]:
        """Iterate over batches (see :meth:`batch_indices` for the options)."""
        for idx in self.batch_indices(batch_size, **kwargs):
            yield self.batch(idx)
