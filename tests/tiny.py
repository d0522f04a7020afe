"""Tiny models and toy data shared by the tests: they train in seconds on one CPU thread."""

from __future__ import annotations

import numpy as np

from pretroost.data.composition import parse_formulas
from pretroost.models.roost import RoostConfig


def tiny_encoder(*, width: int = 16, hidden: int = 16, heads: int = 1) -> RoostConfig:
    """A one-message-layer Roost encoder: ``width``-long element features, ``hidden``-wide
    attention networks, ``heads`` heads in the message and pooling layers."""
    return RoostConfig(
        elem_fea_len=width, n_graph=1, elem_heads=heads, elem_gate=(hidden,), elem_msg=(hidden,),
        cry_heads=heads, cry_gate=(hidden,), cry_msg=(hidden,),
    )  # fmt: skip


TINY_ENCODER = tiny_encoder()

CATIONS = ["Li", "Na", "K", "Mg", "Ca", "Al", "Ti", "Fe", "Cu", "Zn"]
ANIONS = ["O", "S", "Cl", "N"]
#: 80 binary formulas, AB and A2B, of the cations and anions above
BINARY_FORMULAS = [f"{a}{i}{b}{j}" for a in CATIONS for b in ANIONS for i, j in ((1, 1), (2, 1))]


def toy_target(formulas: list[str]) -> np.ndarray:
    """A smooth target a tiny model can learn: 3 × (first fraction) + (last element index) / 20."""
    comps = parse_formulas(formulas)
    return np.array([comps[i][1][0] * 3 + comps[i][0][-1] / 20 for i in range(len(comps))])


def capture_logs(name: str, caplog, monkeypatch) -> None:
    """Deliver logger ``name``'s records to ``caplog`` exactly once, whatever handlers the CLI's
    ``setup_logging`` (which stops propagation at ``pretroost``) left on its parents."""
    import logging

    logger = logging.getLogger(name)
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [caplog.handler])
