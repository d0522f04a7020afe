"""Composition descriptors, one place for Roost's trunk (``ModelConfig.descriptors``) and the tree
models' feature sets (``pretroost.trees``): ``"fractions"`` (103 element fractions, column Z - 1:
element Z's amount, :meth:`CompositionArray.dense`), ``"magpie"`` (the 144 Magpie attributes,
:func:`~pretroost.data.fingerprint.magpie_fingerprint`) and ``"pbe"`` (one number, a PBE band-gap
teacher's prediction, :func:`~pretroost.data.pbe_gap.pbe_gap_feature`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pretroost.configs import DESCRIPTORS
from pretroost.data.composition import MAX_Z, CompositionArray
from pretroost.data.fingerprint import MAGPIE_FEATURE_NAMES, magpie_fingerprint
from pretroost.data.pbe_gap import pbe_gap_feature

__all__ = ["DESCRIPTOR_NAMES", "descriptor_matrix", "descriptor_values", "n_descriptors"]

#: the descriptor sets that give numbers (``configs.DESCRIPTORS`` but ``"none"``)
DESCRIPTOR_NAMES: tuple[str, ...] = tuple(d for d in DESCRIPTORS if d != "none")


def descriptor_values(name: str, comps: CompositionArray) -> np.ndarray:
    """(n, n_descriptors(name)) float64 descriptors of ``comps``."""
    if name == "magpie":
        return magpie_fingerprint(comps)
    if name == "fractions":
        return comps.dense()
    if name == "pbe":
        return pbe_gap_feature(comps)
    raise ValueError(f"unknown descriptors {name!r}; valid: {', '.join(DESCRIPTOR_NAMES)}")


def n_descriptors(name: str) -> int:
    """How many numbers ``name`` gives (0 for ``"none"``)."""
    sizes = {"none": 0, "fractions": MAX_Z, "pbe": 1, "magpie": len(MAGPIE_FEATURE_NAMES)}
    if name not in sizes:
        raise ValueError(f"unknown descriptors {name!r}; valid: {', '.join(sizes)}")
    return sizes[name]


def descriptor_matrix(
    names: Sequence[str], comps: CompositionArray, *, pbe_model: Any = None
) -> np.ndarray:
    """(n, d) float64: the descriptors ``names`` side by side, in that order. ``"pbe"`` after
    ``"fractions"`` and ``"magpie"`` reuses them (the teacher reads both); ``pbe_model``: the
    PBE gap teacher to use (default the data cache's, :func:`pretroost.data.pbe_gap.teacher`)."""
    parts = [descriptor_values(n, comps) for n in names if n != "pbe"]
    if "pbe" in names:
        if list(names[:2]) == ["fractions", "magpie"]:
            parts.append(pbe_gap_feature(comps, np.hstack(parts[:2]), model=pbe_model))
        else:
            parts.insert(list(names).index("pbe"), pbe_gap_feature(comps, model=pbe_model))
    return np.hstack(parts)
