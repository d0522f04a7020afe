"""Element feature tables come from installed packages and agree with aviary-models' copies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretroost.data.elements import ELEMENT_FEATURES, element_table
from pretroost.models.roost import RoostConfig


@pytest.mark.parametrize("name", ELEMENT_FEATURES)
def test_every_table_loads(name: str) -> None:
    table, known = element_table(name)
    assert table.shape[0] == 119 and known.shape == (119,)
    assert np.isfinite(table).all()
    assert known[8] and known[26] and not known[0]  # O and Fe are defined, row 0 is padding
    assert not np.any(table[~known])


def test_unknown_table_lists_valid() -> None:
    with pytest.raises(ValueError, match="matscholar200"):
        element_table("word2vec")
    with pytest.raises(ValueError, match="valid"):
        RoostConfig(elem_embedding="word2vec")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["matscholar200", "megnet16", "cgcnn92"])
def test_tables_equal_aviary(name: str) -> None:
    aviary = pytest.importorskip("aviary")
    from pymatgen.core import Element

    ref = json.loads(
        (Path(aviary.__file__).parent / "embeddings" / "element" / f"{name}.json").read_text()
    )
    table, known = element_table(name)
    for symbol, vec in ref.items():
        if not Element.is_valid_symbol(symbol):  # aviary's megnet16 has a "Null" row
            continue
        z = Element(symbol).Z
        if known[z]:
            np.testing.assert_allclose(table[z], vec, atol=1e-6)
