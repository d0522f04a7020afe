"""pretroost.domain: nearest training compositions and the in-domain flag."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pretroost.data.composition import CompositionArray, parse_formula, parse_formulas
from pretroost.domain import DomainConfig, DomainIndex, composition_distance
from tiny import BINARY_FORMULAS, toy_target


def index_of(formulas: list[str], targets: object = None, **kw: float) -> DomainIndex:
    values = toy_target(formulas) if targets is None else targets
    return DomainIndex.fit(parse_formulas(formulas), values, formulas, DomainConfig(**kw))


@pytest.fixture(scope="module")
def binaries() -> DomainIndex:
    return index_of(BINARY_FORMULAS)


def test_a_training_composition_is_at_distance_zero_and_in_domain(binaries: DomainIndex) -> None:
    table = binaries.check(parse_formulas(["NaCl", "Na2Cl2", "Fe2O3"]), k=2)
    assert table.columns.tolist() == ["in_domain", "domain_reason", "nearest"]
    assert table["in_domain"].dtype == bool
    nb = binaries.neighbours(parse_formulas(["NaCl", "Na2Cl2"]), k=2)
    assert (nb.distance[:, 0] == 0).all()
    assert BINARY_FORMULAS[nb.index[0, 0]] == "Na1Cl1"
    assert table["in_domain"].tolist()[:2] == [True, True]
    assert table["domain_reason"].tolist()[:2] == ["", ""]
    value = toy_target(["NaCl"])[0]
    assert table["nearest"][0].startswith(f"Na1Cl1 {value:.4g} (d=0); ")


def test_an_unseen_element_is_out_of_domain_and_named(binaries: DomainIndex) -> None:
    table = binaries.check(parse_formulas(["PuO2", "PuAmO4", "NaCl", "OgCl"]))
    assert table["in_domain"].tolist() == [False, False, True, False]
    assert table["domain_reason"][3].startswith("Og not in training data")  # beyond Lr too
    assert table["domain_reason"][0].startswith("Pu not in training data")
    assert table["domain_reason"][1].startswith("Pu, Am not in training data")
    nb = binaries.neighbours(parse_formulas(["PuO2"]), k=1)
    assert nb.unseen == [[94]]
    # Pu's third of the formula counts fully: O is shared with the nearest oxide at most 2/3
    assert nb.distance[0, 0] >= 2 / 3


def test_a_far_composition_is_out_with_the_threshold_in_the_reason(binaries: DomainIndex) -> None:
    # every element is seen, but no binary mixes four of them
    table = binaries.check(parse_formulas(["LiNaKMg", "Li4Na"]), k=1)
    assert not table["in_domain"][0]
    reason = table["domain_reason"][0]
    assert reason.startswith("nearest training composition at d=")
    assert f"beyond {binaries.threshold:.3g} (99th percentile of training rows' " in reason
    assert "not in training data" not in reason


def test_the_threshold_is_leave_one_out(binaries: DomainIndex) -> None:
    loo = binaries.training_distances()
    assert (loo > 0).all()  # no training row is its own neighbour (the binaries are distinct)
    assert binaries.threshold == pytest.approx(np.percentile(loo, 99))
    full = composition_distance(parse_formulas(BINARY_FORMULAS), parse_formulas(BINARY_FORMULAS))
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(loo, full.min(axis=1), atol=1e-12)
    # a duplicate composition elsewhere in the training set is a neighbour at 0
    dup = index_of(["NaCl", "Na2Cl2", "KBr", "MgO"], targets=np.arange(4.0))
    np.testing.assert_array_equal(dup.training_distances()[:2], [0.0, 0.0])
    assert index_of(BINARY_FORMULAS, percentile=50).threshold == pytest.approx(
        np.percentile(loo, 50)
    )


def test_neighbours_are_the_nearest_and_bad_rows_stay_in_place(binaries: DomainIndex) -> None:
    queries = ["Na3Cl", "FeS2", "CuZnO2"]
    comps = parse_formulas(queries)
    nb = binaries.neighbours(comps, k=4)
    full = composition_distance(comps, parse_formulas(BINARY_FORMULAS))
    np.testing.assert_allclose(nb.distance, np.sort(full, axis=1)[:, :4], atol=1e-12)
    assert (np.diff(nb.distance, axis=1) >= 0).all()
    good = np.array([True, False, True, True, False])
    nb2 = binaries.neighbours(comps, k=2, good=good)
    assert nb2.index[1].tolist() == [-1, -1] and np.isnan(nb2.distance[4]).all()
    np.testing.assert_array_equal(nb2.distance[good], nb.distance[:, :2])
    table = binaries.check(comps, k=2, good=good)
    assert len(table) == 5 and not table["in_domain"][1]
    assert table["domain_reason"][1] == "no composition (the formula was not parsed)"
    with pytest.raises(ValueError, match="good rows"):
        binaries.neighbours(comps, good=good[:3])
    with pytest.raises(ValueError, match="k must lie"):
        binaries.neighbours(comps, k=81)


def test_classification_labels_are_shown_as_labels(tmp_path: Path) -> None:
    formulas = ["NaCl", "KCl", "Fe", "Cu"]
    index = index_of(formulas, targets=np.array([False, False, True, True]))
    assert index.check(parse_formulas(["Fe"]), k=2)["nearest"][0].startswith("Fe True (d=0); ")
    labels = index_of(formulas, targets=["salt", "salt", "metal", "metal"])
    labels.save(tmp_path)
    again = DomainIndex.load(tmp_path)
    assert again.check(parse_formulas(["Cu"]), k=1)["nearest"][0] == "Cu metal (d=0)"
    with pytest.raises(ValueError, match="not supported"):
        index_of(formulas, targets=[1, "a", 2.0, None])


def test_save_and_load_round_trip(binaries: DomainIndex, tmp_path: Path) -> None:
    folder = binaries.save(tmp_path / "domain")
    assert sorted(p.name for p in folder.iterdir()) == ["domain.json", "training.csv.gz"]
    info = json.loads((folder / "domain.json").read_text())
    assert info["metric"] == "l1_fraction" and info["percentile"] == 99.0
    assert info["n_train"] == len(BINARY_FORMULAS) and info["target_type"] == "float"
    again = DomainIndex.load(folder)
    assert again.threshold == binaries.threshold and again.formulas == binaries.formulas
    np.testing.assert_array_equal(again.targets, binaries.targets)  # floats round-trip exactly
    queries = parse_formulas(["NaCl", "PuO2", "LiNaKMg", "Cu3N"])
    assert again.check(queries).equals(binaries.check(queries))
    binaries.save(folder)  # overwriting gives the same bytes
    assert json.loads((folder / "domain.json").read_text()) == info
    (folder / "training.csv.gz").write_bytes(gzip.compress(b"formula,target\nNaCl,1.0\n"))
    with pytest.raises(ValueError, match="checksum"):
        DomainIndex.load(folder)


def test_the_saved_files_are_small_for_5000_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    elements = ["Li", "Na", "K", "Mg", "Ca", "Al", "Ti", "Fe", "Cu", "Zn", "O", "S", "Cl", "N"]
    formulas = []
    for _ in range(5000):
        picks = rng.choice(elements, size=3, replace=False)
        formulas.append(
            "".join(f"{e}{n}" for e, n in zip(picks, rng.integers(1, 9, 3), strict=True))
        )
    targets = rng.normal(size=5000)  # 17 significant digits each, as real targets have
    config = DomainConfig()  # the threshold does not change the size: skip the fit's distances
    index = DomainIndex(parse_formulas(formulas), targets, formulas, threshold=0.1, config=config)
    folder = index.save(tmp_path)
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 200_000


def test_too_few_rows_or_a_bad_percentile_raise() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        index_of(["NaCl"])
    with pytest.raises(ValueError, match="percentile"):
        DomainConfig(percentile=101)
    with pytest.raises(ValueError, match="targets"):
        DomainIndex.fit(parse_formulas(["NaCl", "KCl"]), [1.0], ["NaCl", "KCl"])


# ----------------------------------------------------------------------------------- properties

ZS = st.lists(st.integers(1, 118), min_size=1, max_size=5, unique=True)


@st.composite
def compositions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    z = np.array(sorted(draw(ZS)), dtype=np.int64)
    w = np.array(draw(st.lists(st.integers(1, 20), min_size=len(z), max_size=len(z))), float)
    return z, w / w.sum()


@settings(max_examples=200, deadline=None)
@given(compositions(), compositions())
def test_distance_is_symmetric_bounded_and_zero_only_for_the_same_composition(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> None:
    ca, cb = CompositionArray.from_lists([a]), CompositionArray.from_lists([b])
    d_ab = composition_distance(ca, cb)[0, 0]
    assert d_ab == composition_distance(cb, ca)[0, 0]
    assert 0.0 <= d_ab <= 2.0
    same = np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert (d_ab == 0.0) == same
    assert composition_distance(ca, ca)[0, 0] == 0.0
    if not set(a[0].tolist()) & set(b[0].tolist()):
        assert d_ab == pytest.approx(2.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=4), st.integers(2, 7))
def test_a_multiple_of_a_formula_is_at_distance_zero_in_the_index(
    amounts: list[int], m: int
) -> None:
    symbols = ["Li", "O", "Fe", "P"][: len(amounts)]
    formula = "".join(f"{s}{n}" for s, n in zip(symbols, amounts, strict=False))
    scaled = "".join(f"{s}{n * m}" for s, n in zip(symbols, amounts, strict=False))
    np.testing.assert_array_equal(parse_formula(formula)[1], parse_formula(scaled)[1])
    index = index_of([formula, "NaCl", "KBr"], targets=np.arange(3.0))
    nb = index.neighbours(parse_formulas([scaled]), k=1)
    assert nb.distance[0, 0] == 0.0 and nb.index[0, 0] == 0 and nb.in_domain[0]


def test_a_distance_equal_to_the_threshold_up_to_rounding_is_within_it() -> None:
    formulas = ["NaCl", "LiBr"]
    comps, targets = parse_formulas(formulas), np.array([1.0, 2.0])
    query = parse_formulas(["NaBr"])  # at d = 1 from NaCl and from LiBr
    for threshold, inside in ((np.nextafter(1.0, 0.0), True), (1.0 - 1e-6, False)):
        index = DomainIndex(comps, targets, formulas, threshold=threshold, config=DomainConfig())
        assert index.neighbours(query, k=1).in_domain[0] == inside
        reason = index.check(query, k=1)["domain_reason"][0]
        assert reason == ("" if inside else "nearest training composition at d=1, beyond 0.999999 "
                          "(99th percentile of training rows' nearest-neighbour distances)")  # fmt: skip
