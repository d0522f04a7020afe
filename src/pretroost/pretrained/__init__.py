"""Pretrained Roost encoders and ready property models shipped inside the package, usable
offline right after install (the ready models: :mod:`pretroost.ready`, ``pretroost ready list``).

Each is a release folder ``pretrained/<name>/`` (``config.json``, ``model.safetensors``, model card
``README.md`` with the exact command that made it, and ``reference.json``: the embeddings of a few
formulas recorded when it was made, which the test suite checks). Use a name wherever a model
folder is accepted: ``pretroost.load("fingerprint-oqmd")``, ``pretroost finetune --init
fingerprint-oqmd``. ``pretroost ship RUN_DIR --name NAME`` makes one from a pretraining run
(:func:`pretroost.shipping.ship`).

:func:`resolve` is the one place where a shipped name becomes a folder: ``pretroost.load``,
``--init``, ``--regressor`` and ``RoostRegressor(init=...)`` all call it; the artefact readers
below them take folders only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pretroost.errors import ArtefactError

__all__ = ["REFERENCE_FORMULAS", "ROOT", "resolve", "shipped"]

ROOT = Path(__file__).resolve().parent
#: formulas whose embeddings are recorded with each shipped encoder (1 to 12 elements)
REFERENCE_FORMULAS = (
    "Fe2O3", "GaN", "NaCl", "Si", "LiFePO4", "CuSO4H10O5", "Ba0.5Sr0.5Co0.8Fe0.2O3",
    "Fe0.62C0.001Mn0.001Si0.001Cr0.1Ni0.19Mo0.02V0.001Nb0.001Co0.05Al0.003Ti0.02",
)  # fmt: skip
SHIPPED_KINDS = ("pretrained", "ready")


def shipped(kind: str | None = None) -> dict[str, Path]:
    """Name -> folder of every model shipped with this installation: the pretrained encoders
    (``kind="pretrained"``) and the ready property models (``kind="ready"``,
    :mod:`pretroost.ready`); ``None``: all."""
    if kind not in (None, *SHIPPED_KINDS):
        raise ValueError(f"unknown shipped kind {kind!r}; valid: {', '.join(SHIPPED_KINDS)}")
    out = {}
    for p in sorted(ROOT.glob("*/config.json")):
        if kind is None or json.loads(p.read_text()).get("kind") == kind:
            out[p.parent.name] = p.parent
    return out


def resolve(path: str | os.PathLike[str]) -> Path:
    """A model folder from a folder or a shipped encoder's name: ``path`` itself when it exists,
    else the shipped model (encoder or ready model) of that name.
    :class:`~pretroost.errors.ArtefactError` (a ``ValueError``) naming the shipped models when it
    is neither."""
    p = Path(path)
    if p.exists():
        return p
    found = shipped().get(str(path))
    if found is None:
        raise ArtefactError(
            f"{path}: not a model folder (no such path) nor a shipped encoder "
            f"({', '.join(shipped()) or 'none installed'})"
        )
    return found
