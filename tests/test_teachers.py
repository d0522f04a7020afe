"""Structure teachers: Crystal Twins CGCNN loading and invariances, CHGNet, the embedding cache,
polymorph averaging, safe checkpoint loading and the linear probe."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from pretroost.data.structures import StructureError, read_structures
from pretroost.data.teachers import (
    TEACHERS,
    CrystalTwinsTeacher,
    StructureTeacher,
    WeightsNotFoundError,
    average_polymorphs,
    embed_with_cache,
    get_teacher,
)
from pretroost.data.teachers.base import load_state_dict_file
from pretroost.data.teachers.networks.cgcnn import CGCNNEncoder, config_from_state_dict
from pretroost.experiment.teacher_probe import barlow_twins_consistency


def _nacl() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def _small() -> list[Structure]:
    """Three small ordered crystals of different kinds."""
    perov = Structure(
        Lattice.cubic(3.9),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    wurtzite = Structure.from_spacegroup(
        "P6_3mc",
        Lattice.hexagonal(3.25, 5.21),
        ["Zn", "O"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]],
    )
    return [_nacl(), perov, wurtzite]


@pytest.fixture(scope="module")
def barlow(shared_data: Path) -> CrystalTwinsTeacher:
    return CrystalTwinsTeacher()


@pytest.fixture(scope="module")
def phonons(shared_data: Path) -> list[Structure]:
    return [s for _, s in read_structures(shared_data / "matbench/matbench_phonons.json.gz")]


# ----------------------------------------------------------------------------- registry


def test_registry() -> None:
    assert set(TEACHERS) == {"crystal-twins", "chgnet"}
    with pytest.raises(
        ValueError, match=r"unknown teacher 'cgcnn'; valid: \['chgnet', 'crystal-twins'\]"
    ):
        get_teacher("cgcnn")


def test_bad_choices_raise(shared_data: Path) -> None:
    with pytest.raises(ValueError, match="valid: \\['barlow', 'simsiam'\\]"):
        CrystalTwinsTeacher(variant="byol")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: \\['head', 'pooled'\\]"):
        CrystalTwinsTeacher(layer="conv")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- Crystal Twins


@pytest.mark.parametrize(
    ("variant", "folder", "h"), [("barlow", "CGCNNBarlow", 128), ("simsiam", "CGCNNSimSiam", 256)]
)
def test_checkpoint_loads_strictly(shared_data: Path, variant: str, folder: str, h: int) -> None:
    path = shared_data / "teachers/crystal_twins" / folder / "model.pth"
    state = load_state_dict_file(path)
    config = config_from_state_dict(state, CGCNNEncoder().config)
    assert (config.h_fea_len, config.embed_dim, config.n_conv, config.nbr_fea_len) == (
        h,
        256,
        3,
        41,
    )
    encoder = CGCNNEncoder(config)
    result = encoder.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(encoder.state_dict()) == set(state)
    teacher = get_teacher("crystal-twins", variant=variant)
    assert teacher.dim == 256 and teacher.name == f"crystal-twins-{variant}-head"


def test_missing_weights_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRETROOST_SHARED_DATA", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as info:
        CrystalTwinsTeacher()
    msg = str(info.value)
    assert str(tmp_path / "teachers/crystal_twins/CGCNNBarlow/model.pth") in msg
    assert "PRETROOST_SHARED_DATA" in msg
    with pytest.raises(WeightsNotFoundError, match=r"nowhere\.pth"):
        CrystalTwinsTeacher(tmp_path / "nowhere.pth")


def test_embeddings_shape_finite_deterministic(barlow: CrystalTwinsTeacher) -> None:
    structures = _small()
    a = barlow.embed(structures, progress=False)
    assert a.shape == (3, 256) and a.dtype == np.float32 and np.isfinite(a).all()
    b = barlow.embed(structures, batch_size=1, progress=False)  # eval-mode BN: batch-independent
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.array_equal(a, barlow.embed(structures, progress=False))
    assert np.abs(a[0] - a[1]).max() > 1e-3  # different crystals, different vectors


def test_pooled_layer(shared_data: Path) -> None:
    pooled = CrystalTwinsTeacher(layer="pooled")
    assert pooled.dim == 128
    emb = pooled.embed(_small(), progress=False)
    assert emb.shape == (3, 128) and (emb >= 0).all()  # a softplus output


@pytest.mark.parametrize("layer", ["head", "pooled"])
def test_supercell_and_permutation_invariance(shared_data: Path, layer: str) -> None:
    teacher = CrystalTwinsTeacher(layer=layer)  # type: ignore[arg-type]
    for s in _small():
        sc = s.copy()
        sc.make_supercell([2, 1, 1])  # every atom keeps its environment; mean pooling is unchanged
        perm = Structure.from_sites([s[i] for i in np.random.default_rng(1).permutation(len(s))])
        base, big, shuffled = teacher.embed([s, sc, perm], progress=False)
        np.testing.assert_allclose(big, base, atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(shuffled, base, atol=2e-5, rtol=1e-5)


def test_random_init_is_seeded(shared_data: Path) -> None:
    structures = _small()
    r0 = CrystalTwinsTeacher("random", seed=0)
    again = CrystalTwinsTeacher("random", seed=0).embed(structures, progress=False)
    np.testing.assert_array_equal(r0.embed(structures, progress=False), again)
    other = CrystalTwinsTeacher("random", seed=1).embed(structures, progress=False)
    assert np.abs(other - again).max() > 1e-3
    assert r0.fingerprint != CrystalTwinsTeacher("random", seed=1).fingerprint
    assert r0.fingerprint != CrystalTwinsTeacher().fingerprint


def test_graph_conventions(barlow: CrystalTwinsTeacher) -> None:
    g = barlow.graph(_nacl())  # primitive... from_spacegroup gives the 8-atom conventional cell
    assert g.atom_fea.shape == (8, 92) and g.nbr_idx.shape == (8, 12)
    assert np.all(np.diff(g.nbr_dist, axis=1) >= 0)  # sorted by distance
    np.testing.assert_allclose(g.nbr_dist[:, :6], 5.64 / 2, atol=1e-6)  # 6 Cl at a/2
    np.testing.assert_allclose(g.nbr_dist[:, 6:], 5.64 / np.sqrt(2), atol=1e-6)  # 12 Na, 6 kept
    # a sparse crystal (one atom per 20 Å cube) has no neighbour within 8 Å: all padding
    sparse = barlow.graph(Structure(Lattice.cubic(20.0), ["Fe"], [[0, 0, 0]]))
    assert np.all(sparse.nbr_idx == 0) and np.all(sparse.nbr_dist == 9.0)
    with pytest.raises(StructureError, match="ordered"):
        barlow.graph(Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]]))


def test_barlow_twins_objective_confirms_loading(
    barlow: CrystalTwinsTeacher, phonons: list[Structure]
) -> None:
    """The Barlow checkpoint must score its own training objective far better than a random
    encoder: this fails if the weights or the graph building are wrong."""
    subset = phonons[:128]
    trained = barlow_twins_consistency(barlow, subset)
    random = barlow_twins_consistency(CrystalTwinsTeacher("random"), subset)
    assert trained < 0.7 * random


# ----------------------------------------------------------------------------- CHGNet


def test_chgnet_teacher() -> None:
    pytest.importorskip("chgnet")
    teacher = get_teacher("chgnet")
    emb = teacher.embed(_small()[:2], progress=False)
    assert emb.shape == (2, 64) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.abs(emb[0] - emb[1]).max() > 1e-3
    assert teacher.name == "chgnet-0.3.0"
    with pytest.raises(ValueError, match="valid"):
        get_teacher("chgnet", model_name="9.9")


def test_chgnet_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "chgnet", None)  # import chgnet now raises ImportError
    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    with pytest.raises(ImportError, match=r"pip install 'pretroost\[teachers\]'"):
        get_teacher("chgnet")


# ----------------------------------------------------------------------------- cache


class CountingTeacher(StructureTeacher):
    """A fake teacher: the vector is (number of sites, volume), counting structures embedded."""

    name = "counting/teacher"
    dim = 2

    def __init__(self, tag: str = "v1") -> None:
        self.tag = tag
        self.calls: list[int] = []

    @property
    def fingerprint(self) -> str:
        return self.tag

    def embed(
        self, structures: Sequence[Structure], *, batch_size: int = 64, progress: bool = True
    ) -> np.ndarray:
        self.calls.append(len(structures))
        return np.array([[len(s), s.volume] for s in structures], dtype=np.float32)


def test_cache_hits_do_not_recompute(tmp_path: Path) -> None:
    a, b, c = _small()
    teacher = CountingTeacher()
    items = [("a", a), ("b", b), ("a-again", a.copy())]
    first = embed_with_cache(teacher, items, tmp_path, dataset="set1", progress=False)
    assert teacher.calls == [2]  # the duplicate was embedded once
    np.testing.assert_allclose(first[0], first[2])
    second = embed_with_cache(teacher, items, tmp_path, dataset="set1", progress=False)
    assert teacher.calls == [2]  # all cached
    np.testing.assert_array_equal(first, second)
    third = embed_with_cache(
        teacher, [("c", c), ("b", b)], tmp_path, dataset="set2", progress=False
    )
    assert teacher.calls == [2, 1]  # only the new structure
    np.testing.assert_array_equal(third[1], first[1])
    # a new process sees the same cache; other weights (fingerprint) do not
    fresh = CountingTeacher()
    embed_with_cache(fresh, items, tmp_path, progress=False)
    assert fresh.calls == []
    other = CountingTeacher("v2")
    embed_with_cache(other, items, tmp_path, progress=False)
    assert other.calls == [2]
    folders = sorted(p.name for p in (tmp_path / "teachers").iterdir())
    assert folders == ["counting_teacher-v1", "counting_teacher-v2"]
    index = json.loads((tmp_path / "teachers/counting_teacher-v1/index.json").read_text())
    assert index["n_structures"] == 3 and index["dim"] == 2


def test_cache_with_real_teacher(barlow: CrystalTwinsTeacher, tmp_path: Path) -> None:
    items = list(enumerate(_small()))
    cached = embed_with_cache(barlow, items, tmp_path, progress=False)
    np.testing.assert_array_equal(cached, embed_with_cache(barlow, items, tmp_path, progress=False))
    np.testing.assert_allclose(
        cached, barlow.embed([s for _, s in items], progress=False), atol=1e-6
    )


def test_average_polymorphs() -> None:
    keys = ["8:0.5 12:0.5", "6:1.0", "8:0.5 12:0.5", "8:0.5 12:0.5"]
    emb = np.array([[1.0, 0.0], [5.0, 5.0], [3.0, 2.0], [2.0, 4.0]], dtype=np.float32)
    unique, mean, counts = average_polymorphs(keys, emb)
    assert unique == ["8:0.5 12:0.5", "6:1.0"]
    np.testing.assert_array_equal(counts, [3, 1])
    np.testing.assert_allclose(mean, [[2.0, 2.0], [5.0, 5.0]])
    assert mean.dtype == np.float32
    with pytest.raises(ValueError):
        average_polymorphs(keys[:2], emb)


# ----------------------------------------------------------------------------- safe loading


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling this would run code
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_code_running_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="refused"):
        load_state_dict_file(path)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()
