"""Reading crystal structures (CSV of CIFs, matminer JSON, CIF folders) and hashing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from pretroost.data.composition import CompositionArray, parse_formula
from pretroost.data.structures import (
    StructureError,
    composition_keys,
    read_structures,
    structure_hash,
)


def _nacl() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


@pytest.fixture(scope="module")
def perov_head(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "structures/cdvae/perov_5/val.csv", nrows=6)


def test_read_csv(perov_head: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "perov.csv"
    perov_head.to_csv(path, index=False)
    items = read_structures(path, progress=False)
    assert [i for i, _ in items] == [str(x) for x in perov_head["material_id"]]
    assert all(len(s) == 5 for _, s in items)  # cubic perovskites, 5 atoms
    items = read_structures(path, id_col="formula", progress=False)
    assert items[0][0] == perov_head["formula"][0]


def test_read_csv_bad_cif_names_file_row_and_id(perov_head: pd.DataFrame, tmp_path: Path) -> None:
    df = perov_head.copy()
    df.loc[2, "cif"] = "data_broken\n_cell_length_a 3\nnot a cif at all"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(StructureError) as info:
        read_structures(path, progress=False)
    err = info.value
    assert err.row == 2 and err.ident == str(df["material_id"][2])
    assert "bad.csv" in str(err) and "row 2" in str(err)
    assert isinstance(err, ValueError)


def test_read_csv_missing_columns(perov_head: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    perov_head.to_csv(path, index=False)
    with pytest.raises(StructureError, match="no CIF column 'structure_cif'"):
        read_structures(path, cif_col="structure_cif")
    with pytest.raises(StructureError, match="no id column"):
        read_structures(path, id_col="nope")


def test_read_matminer_json(shared_data: Path) -> None:
    items = read_structures(shared_data / "matbench/matbench_phonons.json.gz")
    assert len(items) == 1265
    assert items[0][0] == "0" and isinstance(items[0][1], Structure)


def test_read_cif_folder(tmp_path: Path) -> None:
    s = _nacl()
    s.to(filename=str(tmp_path / "b_nacl.cif"))
    Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]]).to(filename=str(tmp_path / "a_fe.cif"))
    (tmp_path / "notes.txt").write_text("ignored")
    items = read_structures(tmp_path, progress=False)
    assert [i for i, _ in items] == ["a_fe", "b_nacl"]
    assert items[1][1].composition.reduced_formula == "NaCl"
    (tmp_path / "c_bad.cif").write_text("garbage")
    with pytest.raises(StructureError, match=r"c_bad\.cif"):
        read_structures(tmp_path, progress=False)


def test_read_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_text("")
    with pytest.raises(StructureError, match="unknown kind"):
        read_structures(path)
    with pytest.raises(FileNotFoundError):
        read_structures(tmp_path / "missing.csv")


def test_structure_hash_stable_and_order_free() -> None:
    s = _nacl()
    h = structure_hash(s)
    assert len(h) == 64 and h == structure_hash(s.copy())
    perm = Structure.from_sites([s[i] for i in np.random.default_rng(0).permutation(len(s))])
    assert structure_hash(perm) == h
    shifted = s.copy()
    shifted.translate_sites([0], [1.0, 0.0, 0.0])  # a lattice vector: same crystal
    assert structure_hash(shifted) == h
    moved = s.copy()
    moved.translate_sites([0], [0.01, 0.0, 0.0])
    assert structure_hash(moved) != h
    bigger = s.copy()
    bigger.make_supercell([2, 1, 1])
    assert structure_hash(bigger) != h


def test_composition_keys_match_composition_module() -> None:
    fe2o3 = Structure(
        Lattice.cubic(5.0),
        ["Fe", "Fe", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]],
    )
    (key,) = composition_keys([fe2o3])
    assert key == "8:0.600000 26:0.400000"
    assert key == CompositionArray.from_lists([parse_formula("Fe2O3")]).keys()[0]
    bigger = fe2o3.copy()
    bigger.make_supercell([2, 1, 1])
    assert composition_keys([bigger]) == [key]
