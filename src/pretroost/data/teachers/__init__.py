"""Structure teachers: frozen crystal-structure encoders whose embeddings a composition model
learns to regress (multimodal pretraining, Huang, Magar & Barati Farimani, J. Chem. Inf. Model. 64,
627, 2024).

``get_teacher("crystal-twins")`` gives the Crystal Twins CGCNN (Barlow Twins) encoder,
``get_teacher("chgnet")`` CHGNet 0.3.0's crystal features (needs ``pip install 'pretroost[teachers]'``).
"""

from __future__ import annotations

from typing import Any

from pretroost.data.teachers.base import StructureTeacher
from pretroost.data.teachers.cache import average_polymorphs, embed_with_cache
from pretroost.data.teachers.cgcnn import CrystalTwinsTeacher
from pretroost.data.teachers.chgnet import CHGNetTeacher
from pretroost.errors import WeightsNotFoundError

__all__ = [
    "TEACHERS",
    "CHGNetTeacher",
    "CrystalTwinsTeacher",
    "StructureTeacher",
    "WeightsNotFoundError",
    "average_polymorphs",
    "embed_with_cache",
    "get_teacher",
]

#: teacher name -> class; keyword arguments of :func:`get_teacher` go to the class.
TEACHERS: dict[str, type[StructureTeacher]] = {
    "crystal-twins": CrystalTwinsTeacher,
    "chgnet": CHGNetTeacher,
}


def get_teacher(name: str, **kwargs: Any) -> StructureTeacher:
    """Build a teacher by name, e.g. ``get_teacher("crystal-twins", variant="simsiam")``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    try:
        cls = TEACHERS[name]
    except KeyError:
        raise ValueError(f"unknown teacher {name!r}; valid: {sorted(TEACHERS)}") from None
    return cls(**kwargs)
