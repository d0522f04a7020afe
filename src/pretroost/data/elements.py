"""Element feature tables (the node inputs of Roost), read from data that installed packages ship.

Nothing is vendored: matscholar200 (Tshitoyan et al., Nature 571, 95, 2019), megnet16 (Chen et al.,
Chem. Mater. 31, 3564, 2019), cgcnn92 (Xie & Grossman, PRL 120, 145301, 2018) and the Magpie element
properties (Ward et al., npj Comput. Mater. 2, 16028, 2016) all come from matminer's data files.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from pretroost.configs import ELEMENT_FEATURES, ElementFeatureName

__all__ = ["ELEMENT_FEATURES", "ElementFeatureName", "element_table"]

MAX_Z = 118

# Magpie element properties used as node features (the 22 of matminer's "magpie" preset).
_MAGPIE_PROPS = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence",
    "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa",
    "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)  # fmt: skip


def _matminer_data() -> Path:
    import matminer

    return Path(matminer.__file__).parent / "utils" / "data_files"


def _from_symbol_json(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from pymatgen.core import Element

    data = json.loads(path.read_text())
    dim = len(next(iter(data.values())))
    table = np.zeros((MAX_Z + 1, dim), dtype=np.float32)
    known = np.zeros(MAX_Z + 1, dtype=bool)
    for key, vec in data.items():
        z = int(key) if key.isdigit() else Element(key).Z
        table[z], known[z] = vec, True
    return table, known


@cache
def element_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The feature table of one element embedding.

    Args:
        name: one of :data:`ELEMENT_FEATURES`.

    Returns:
        ``(table, known)``: ``table`` float32 of shape (119, d), row ``Z`` holding element ``Z``'s
        vector (row 0 and unknown elements are zero); ``known`` bool of shape (119,), True where the
        embedding defines the element. Both arrays are read-only.
    """
    root = _matminer_data()
    if name == "matscholar200":
        table, known = _from_symbol_json(root / "matscholar_els.json")
    elif name == "cgcnn92":
        table, known = _from_symbol_json(root / "cgcnn_atom_feature.json")
    elif name == "megnet16":
        rows = json.loads((root / "megnet_elemental_embedding.json").read_text())
        table = np.zeros((MAX_Z + 1, len(rows[0])), dtype=np.float32)
        known = np.zeros(MAX_Z + 1, dtype=bool)
        table[1 : len(rows)] = rows[1:]  # row 0 of the file is a dummy element
        known[1 : len(rows)] = True
    elif name == "magpie":
        table, known = _magpie_table(root / "magpie_elementdata")
    elif name == "onehot":
        table = np.eye(MAX_Z + 1, dtype=np.float32)[:, 1:]
        known = np.ones(MAX_Z + 1, dtype=bool)
        known[0] = False
    else:
        raise ValueError(f"unknown element features {name!r}; valid: {', '.join(ELEMENT_FEATURES)}")
    table.setflags(write=False)
    known.setflags(write=False)
    return table, known


def _magpie_table(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """22 Magpie properties, standardised over the defined elements; a missing value is set to the
    property's mean (0 after standardising). Elements 1..103 are defined (Magpie's coverage)."""
    cols = []
    for prop in _MAGPIE_PROPS:
        tokens = (folder / f"{prop}.table").read_text().split()
        values = [float(v) if v not in ("Missing", "NaN", "nan") else np.nan for v in tokens]
        col = np.full(MAX_Z + 1, np.nan)
        col[1 : 1 + len(values)] = values
        cols.append(col)
    raw = np.stack(cols, axis=1)
    known = np.zeros(MAX_Z + 1, dtype=bool)
    known[1:104] = True
    mean = np.nanmean(raw[known], axis=0)
    std = np.nanstd(raw[known], axis=0)
    std[std == 0] = 1.0
    table = np.nan_to_num((raw - mean) / std, nan=0.0)
    table[~known] = 0.0
    return table.astype(np.float32), known
