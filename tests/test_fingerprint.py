"""The Magpie fingerprint equals matminer's, value for value (NaN for NaN)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pretroost.data.composition import CompositionArray, parse_formulas
from pretroost.data.fingerprint import MAGPIE_FEATURE_NAMES, magpie_fingerprint

pytest.importorskip("matminer")
from matminer.featurizers.composition import (
    ElementProperty,
    IonProperty,
    Stoichiometry,
    ValenceOrbital,
)
from pymatgen.core import Composition, Element

EDGE_FORMULAS = [
    "Fe",  # single element: ionic character 0, avg_dev 0
    "O2",
    "H",
    "He",  # no MeltingT / electronegativity in Magpie, no Pauling X in pymatgen
    "Ne",
    "HeNe",  # two elements, both without X
    "HeFe",
    "Xe2F",
    "Rn",  # no SpaceGroupNumber
    "Fr",
    "Lr",
    "Bk",
    "Og",  # beyond the Magpie tables: almost everything missing
    "TsOg",
    "NaCl",  # tie in the mode: smallest value wins
    "Fe2O3",
    "FeCo1.000001",  # np.isclose tie
    "FeCo1.0001",  # no tie
    "Li0.333333Na0.333333K0.333334",
    "AlCoCrFeNiTi",  # 6-element alloy
    "AlCoCrCuFeMnNiTi",  # 8 elements
    "Cs2SnI6",
]


def _featurizers(impute_nan: bool) -> list:
    feats = [
        Stoichiometry(),
        ElementProperty.from_preset("magpie", impute_nan=impute_nan),
        ValenceOrbital(props=["frac"], impute_nan=impute_nan),
        # fast=True only changes the "compound possible" flag, which we drop.
        IonProperty(fast=True, impute_nan=impute_nan),
    ]
    for f in feats:
        f.set_n_jobs(1)
    return feats


def _matminer(comps: list[Composition], impute_nan: bool) -> np.ndarray:
    """(n, 144) matminer's values, computed one composition at a time."""
    feats = _featurizers(impute_nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [[v for f in feats for v in f.featurize(c)] for c in comps]
    ref = np.array(rows, dtype=np.float64)
    labels = [label for f in feats for label in f.feature_labels()]
    drop = labels.index("compound possible")
    return np.delete(ref, drop, axis=1)


def _assert_equal_to_matminer(ours: np.ndarray, ref: np.ndarray, names: list[str]) -> None:
    assert ours.shape == ref.shape
    assert ours.dtype == np.float64
    nan_ours, nan_ref = np.isnan(ours), np.isnan(ref)
    bad = np.argwhere(nan_ours != nan_ref)
    assert len(bad) == 0, [
        (names[i], MAGPIE_FEATURE_NAMES[j], ours[i, j], ref[i, j]) for i, j in bad[:10]
    ]
    tol = 1e-6 * np.maximum(1.0, np.abs(np.nan_to_num(ref)))
    diff = np.abs(np.nan_to_num(ours) - np.nan_to_num(ref))
    bad = np.argwhere(diff > tol)
    assert len(bad) == 0, [
        (names[i], MAGPIE_FEATURE_NAMES[j], ours[i, j], ref[i, j]) for i, j in bad[:10]
    ]


def test_feature_names_match_matminer() -> None:
    labels = [label for f in _featurizers(True) for label in f.feature_labels()]
    labels.remove("compound possible")
    assert tuple(labels) == MAGPIE_FEATURE_NAMES
    assert len(MAGPIE_FEATURE_NAMES) == 144


@pytest.mark.parametrize("impute_nan", [True, False])
def test_edge_cases_match_matminer(impute_nan: bool) -> None:
    ours = magpie_fingerprint(parse_formulas(EDGE_FORMULAS), impute_nan=impute_nan)
    ref = _matminer([Composition(f) for f in EDGE_FORMULAS], impute_nan)
    _assert_equal_to_matminer(ours, ref, EDGE_FORMULAS)
    if impute_nan:
        assert not np.isnan(ours).any()  # matminer's default imputes every missing property
    else:
        assert np.isnan(ours).any()
    fe = ours[EDGE_FORMULAS.index("Fe")]
    assert fe[MAGPIE_FEATURE_NAMES.index("0-norm")] == 1
    assert fe[MAGPIE_FEATURE_NAMES.index("max ionic char")] == 0
    assert fe[MAGPIE_FEATURE_NAMES.index("avg ionic char")] == 0


def test_corpus_matches_matminer(data_cache: Path) -> None:
    """≥ 1,000 real compositions of matbench_expt_gap, with and without imputation."""
    table = pd.read_csv(data_cache / "matbench" / "matbench_expt_gap.csv")
    formulas = table["formula"].astype(str).tolist()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(formulas), size=min(1200, len(formulas)), replace=False)
    sample = [formulas[i] for i in pick]
    assert len(sample) >= 1000
    comps = parse_formulas(sample)
    pmg = [Composition(f) for f in sample]
    ours = magpie_fingerprint(comps, chunk_size=500)
    _assert_equal_to_matminer(ours, _matminer(pmg, True), sample)
    # Without imputation on a subset (noble gases, Fr, ... give NaN there).
    sub = np.arange(400)
    ours = magpie_fingerprint(comps.subset(sub), impute_nan=False)
    _assert_equal_to_matminer(ours, _matminer(pmg[:400], False), sample[:400])


_ELEMENTS = st.lists(st.integers(1, 118), min_size=1, max_size=7, unique=True)
# Integer and coarse decimal amounts: ties in the mode are frequent.
_AMOUNT = st.one_of(st.integers(1, 6).map(float), st.integers(1, 400).map(lambda k: k / 20))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), impute_nan=st.booleans())
def test_random_compositions_match_matminer(data: st.DataObject, impute_nan: bool) -> None:
    zs = data.draw(_ELEMENTS)
    amounts = data.draw(st.lists(_AMOUNT, min_size=len(zs), max_size=len(zs)))
    comp = Composition({Element.from_Z(z): a for z, a in zip(zs, amounts, strict=True)})
    order = np.argsort(zs)
    z = np.asarray(zs, dtype=np.int64)[order]
    amt = np.asarray(amounts)[order]
    ours = magpie_fingerprint(
        CompositionArray.from_lists([(z, amt / amt.sum())]), impute_nan=impute_nan
    )
    _assert_equal_to_matminer(ours, _matminer([comp], impute_nan), [comp.formula])


def test_chunking_and_shapes() -> None:
    comps = parse_formulas(EDGE_FORMULAS * 3)
    whole = magpie_fingerprint(comps)
    assert whole.shape == (len(comps), 144)
    for chunk in (1, 7, 1000):
        np.testing.assert_array_equal(magpie_fingerprint(comps, chunk_size=chunk), whole)
    np.testing.assert_array_equal(magpie_fingerprint(comps.subset([5, 0])), whole[[5, 0]])
    empty = CompositionArray.from_lists([])
    assert magpie_fingerprint(empty).shape == (0, 144)
    with pytest.raises(ValueError):
        magpie_fingerprint(comps, chunk_size=0)
    bad = CompositionArray(np.array([119]), np.array([1.0]), np.array([0, 1]))
    with pytest.raises(ValueError):
        magpie_fingerprint(bad)
