"""Pretrained Roost encoders shipped inside the package, usable offline right after install.

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


def shipped() -> dict[str, Path]:
    """Name -> folder of every encoder shipped with this installation."""
    return {p.parent.name: p.parent for p in sorted(ROOT.glob("*/config.json"))}


def resolve(path: str | os.PathLike[str]) -> Path:
    """A model folder from a folder or a shipped encoder's name: ``path`` itself when it exists,
    else the shipped encoder of that name. :class:`~pretroost.errors.ArtefactError` (a
    ``ValueError``) naming the shipped encoders when it is neither."""
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
