"""Property-based tests of formula parsing: any input either parses to a valid composition graph
(distinct elements in ascending Z, positive finite fractions summing to 1) or raises FormulaError —
never another exception, never a silently wrong composition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pymatgen.core.periodic_table import Element

from pretroost.data.composition import FormulaError, parse_formula, parse_formulas

SETTINGS = settings(max_examples=300, deadline=None, database=None, derandomize=True)
SYMBOLS = [e.symbol for e in Element]
TOKENS = [*SYMBOLS, "Xx", "X", "D", "T", "Uuo", "fe", "(", ")", "[", "]", "{", "}", "·", "*",
          ".", "-", "+", "e", "E", " ", "\t", "\n", "0", "1", "2", "0.5", "1e-9", "1e308",
          "nan", "inf", "NaN", "\x00", "é"]  # fmt: skip


def check(formula: object) -> None:
    """The property: a valid graph, or FormulaError (any other exception fails the test)."""
    try:
        z, frac = parse_formula(formula)
    except FormulaError as err:
        assert err.reason and str(err)
        return
    assert z.dtype == np.int64 and frac.dtype == np.float64 and z.shape == frac.shape
    assert len(z) >= 1
    assert np.all(np.diff(z) > 0), "distinct elements, ascending Z"
    assert z.min() >= 1 and z.max() <= 118
    assert np.all(np.isfinite(frac)) and np.all(frac > 0)
    assert math.isclose(frac.sum(), 1.0, rel_tol=0, abs_tol=1e-9)


@SETTINGS
@given(st.text(max_size=40))
@example("Fe2O3)")
@example("Xx2")
@example("H-1")
@example("")
@example("NaN")
@example("H1e308O1e308")  # amounts that overflow their sum
@example("H1e-9O")  # pymatgen would drop H silently
@example("Fe1e999")
@example("(H0.0001)0.0001O")
@example("Fe2+")
@example("\x00")
@example("Fe2O3·H2O")
def test_any_text(formula: str) -> None:
    check(formula)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=12).map("".join))
def test_formula_like_text(formula: str) -> None:
    check(formula)


amounts = st.one_of(
    st.just(""),
    st.integers(-3, 1000).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["0", "0.0", "1e-320", "1e-8", "1e308", "2.5.3", "-0"]),
)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(SYMBOLS[:103]), amounts), min_size=1, max_size=30))
def test_element_amount_lists(parts: list[tuple[str, str]]) -> None:
    formula = "".join(f"{sym}{amt}" for sym, amt in parts)
    check(formula)
    try:
        z, _ = parse_formula(formula)
    except FormulaError:
        return
    assert {Element.from_Z(int(a)).symbol for a in z} == {s for s, _ in parts}, "no element lost"


@SETTINGS
@given(st.one_of(st.none(), st.floats(), st.integers(), st.binary(max_size=8), st.lists(st.text())))
def test_non_strings(value: object) -> None:
    with pytest.raises(FormulaError):
        parse_formula(value)


def test_many_formulas_name_the_bad_row() -> None:
    with pytest.raises(FormulaError) as info:
        parse_formulas(["Fe2O3", "NaCl", "Fe2O3)"], source="x.csv")
    assert info.value.row == 2 and str(info.value).startswith("x.csv: row 2: formula 'Fe2O3)'")


def _pymatgen(text: str) -> dict[int, float]:
    from pymatgen.core import Composition

    return {e.Z: float(v) for e, v in Composition(text).fractional_composition.items()}


def _ours(text: str) -> dict[int, float]:
    z, frac = parse_formula(text)
    return dict(zip(z.tolist(), frac.tolist(), strict=True))


positive = st.one_of(
    st.integers(1, 99).map(str),
    st.tuples(st.integers(0, 20), st.integers(1, 999)).map(lambda t: f"{t[0]}.{t[1]}"),
)
distinct = st.lists(st.sampled_from(SYMBOLS[:103]), min_size=1, max_size=6, unique=True)


@SETTINGS
@given(distinct.flatmap(lambda s: st.tuples(st.just(s), st.lists(positive, min_size=len(s),
                                                                    max_size=len(s)))))  # fmt: skip
@example((["Cu", "S"], ["1.8", "1"]))
@example((["Ca", "Cl", "H", "O"], ["1", "2.2", "2", "1"]))
def test_decimal_amounts_read_as_pymatgen_reads_them(case) -> None:
    """Distinct elements with positive amounts, decimals >= 1 included: pymatgen's reading (the
    reference: there is no adduct here), or refused as ambiguous only before a closing water."""
    symbols, amounts = case
    formula = "".join(f"{s}{a}" for s, a in zip(symbols, amounts, strict=True))
    try:
        ours = _ours(formula)
    except FormulaError as err:
        assert "ambiguous" in err.reason and formula.endswith("H2O"), err.reason
        return
    ref = _pymatgen(formula)
    assert ours.keys() == ref.keys()
    assert all(math.isclose(ours[k], ref[k], rel_tol=1e-9) for k in ref)


units = st.lists(st.tuples(st.sampled_from(SYMBOLS[:103]), st.integers(1, 9)), min_size=1,
                 max_size=4, unique_by=lambda t: t[0])  # fmt: skip


@SETTINGS
@given(units, st.integers(1, 12), units, st.sampled_from(["·", "*", " · ", "."]))
@example([("Cu", 1), ("S", 1), ("O", 4)], 5, [("H", 2), ("O", 1)], ".")
@example([("Fe", 2)], 5, [("O", 3)], ".")
def test_adducts_read_as_x_plus_n_y(x, n: int, y, sep: str) -> None:
    """``X<sep>nY`` is X + n·Y (pymatgen's ``(X)(Y)n``); a plain "." between digits only where X
    and Y share an element, else it is a decimal point (pymatgen's reading of the text)."""
    xs, ys = ("".join(f"{s}{k}" for s, k in unit) for unit in (x, y))
    formula = f"{xs}{sep}{n}{ys}"
    shared = {s for s, _ in x} & {s for s, _ in y}
    adduct = sep != "." or bool(shared)
    ref = _pymatgen(f"({xs})({ys}){n}" if adduct else formula)
    ours = _ours(formula)
    assert ours.keys() == ref.keys()
    assert all(math.isclose(ours[k], ref[k], rel_tol=1e-9) for k in ref)
