"""Chemical formulas -> Roost's composition graphs.

A composition is a fully connected graph of its *distinct* elements (Goodall & Lee, Nat. Commun. 11,
6280, 2020); each node carries its element and its fractional amount. We parse with pymatgen's
``Composition`` and store many compositions at once as a ragged (CSR) array, so that featurisers and
the batcher work on whole corpora as NumPy arrays instead of looping over Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from pymatgen.core import Composition, Element

__all__ = [
    "MAX_Z",
    "STATE_SUFFIXES",
    "CompositionArray",
    "FormulaError",
    "normalise_formula",
    "parse_formula",
    "parse_formulas",
]

#: the heaviest element a dense element-fraction vector has a column for (Lr; column Z - 1)
MAX_Z = 103
# Strings that spreadsheets and pandas use for "no value". "NaN" is also sodium nitride for pymatgen,
# but in a formula column it is far more likely a missing cell, so we refuse it with a clear reason.
_MISSING = {"", "nan", "none", "null", "na", "n/a"}
_AMOUNT = re.compile(r"([A-Z][a-z]*|\))\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_SYMBOL = re.compile(r"[A-Z][a-z]*")
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
# between the units of a hydrate/adduct: a middle dot (and look-alikes), "*", or a "." that is not
# between digits ("Na2SO4.H2O", "CaCl2 . 2H2O"); a "." between digits: see normalise_formula
_UNIT_SEP = re.compile(r"\s*(?:[·•∙⋅*]|\.(?!\s*\d)|\s+\.\s+)\s*")
_UNIT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)?\s*(.+)")
# an amount "a.b" whose integer part a is not 0, right after an element or ")" and followed by an
# element or "(": "O4.5H2O", "Cu1.8S1"; the "." may be a decimal point or an adduct's "X.nY"
_DIGIT_DOT = re.compile(r"(?<=[A-Za-z)\]])([1-9]\d*)\.(\d+)(?=\s*[A-Z(\[])")
_WATER = re.compile(r"\s*(?:H2O|\(H2O\))\s*")
#: state-of-matter suffixes, refused with a hint (they are no part of the composition)
STATE_SUFFIXES = ("s", "l", "g", "aq", "cr")
_STATE = re.compile(r"\s*\((" + "|".join(STATE_SUFFIXES) + r")\)\s*$")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def normalise_formula(text: str) -> str:
    """Rewrite notations pymatgen does not read into one it does, or refuse (:class:`FormulaError`)
    what cannot be read without guessing.

    - Unicode subscripts: ``Fe₂O₃`` -> ``Fe2O3``.
    - Hydrates/adducts: units joined by ``·`` (or ``•``, ``∙``, ``⋅``), ``*``, or a ``.`` that is
      not between two digits (``Na2SO4.H2O``, ``CaCl2 . 2H2O``) become ``X + n·Y``: each unit may
      start with a count, ``CuSO4·5H2O`` -> ``(CuSO4)(H2O)5``.
    - A ``.`` between two digits is a decimal point (``Fe0.5Ni0.5``, ``Li0.5CoO2``,
      ``Cu1.8S1``), with two exceptions, both for an amount ``a.b`` whose integer part ``a`` is
      not 0, that follows an element or ``)`` and is followed by an element or ``(``:
      (1) if the unit names an element twice (``CuSO4.5H2O``: O), no one meant a decimal amount:
      the first such ``.`` is an adduct separator, ``CuSO4.5H2O`` = ``CuSO4·5H2O``;
      (2) otherwise, if water (``H2O``) follows ``b`` and ends the unit (``CaCl2.2H2O``), the
      formula is refused as ambiguous, with a hint (``CaCl2·2H2O`` for the hydrate,
      ``H2OCaCl2.2`` for the decimal amount). An ``a`` of 0 (``Li0.5CoO2``) is always decimal.
    - Refused with a hint: a state-of-matter suffix (``NaCl(s)``, also ``(l)``, ``(g)``, ``(aq)``,
      ``(cr)``: not part of the composition; write ``NaCl``), and a bare number after a space
      (``H2O 1``, ``Fe 2 O 3``: an amount of no element, or a stray value).

    Other text is returned as is (pymatgen reads it or refuses it)."""
    original = text
    text = text.translate(_SUBSCRIPTS).strip()
    state = _STATE.search(text)
    if state:
        raise FormulaError(
            original,
            f"'({state.group(1)})' is a state of matter, not part of the composition: write "
            f"{text[: state.start()]!r}",
        )
    units = [u for part in _UNIT_SEP.split(text) for u in _split_digit_dot(part, original)]
    out = []
    for unit in units:
        m = _UNIT.fullmatch(unit.strip())
        if m is None:  # an empty unit ("NaCl·"): leave the text for pymatgen to refuse
            return text
        count, body = m.groups()
        bare = [t for t in body.split()[1:] if _NUMBER.fullmatch(t)]
        if bare:
            raise FormulaError(
                original,
                f"a number after a space ({bare[0]!r}) is the amount of no element: write the "
                "formula without spaces before amounts (e.g. 'H2O', 'Fe2O3')",
            )
        out.append(f"({body}){count or ''}")
    return text if len(units) == 1 else "".join(out)


def _split_digit_dot(unit: str, original: str) -> list[str]:
    """``unit`` cut at the ``.`` that :func:`normalise_formula`'s rule (1) makes an adduct
    separator (repeatedly), or refused by its rule (2)."""
    for m in _DIGIT_DOT.finditer(unit):
        symbols = _SYMBOL.findall(unit)
        head, tail = unit[: m.end(1)], unit[m.start(2) :]
        if len(set(symbols)) < len(symbols):  # an element named twice: an adduct
            return [head, *_split_digit_dot(tail, original)]
        if _WATER.fullmatch(unit[m.end(2) :]):
            amount = f"{m.group(1)}.{m.group(2)}"
            raise FormulaError(
                original,
                f"ambiguous: {amount!r} before water may be a decimal amount or a hydrate's "
                f"count; write {f'{head}·{m.group(2)}H2O'!r} (or '*' for '·') for the hydrate, "
                f"or {f'H2O{unit[: m.end(2)]}'!r} for the decimal amount",
            )
    return [unit]


@cache
def _symbol_z(token: str) -> int | None:
    """Atomic number of an element symbol as pymatgen reads it (``D`` -> 1), else None."""
    try:
        els = list(Composition(token))
    except Exception:
        return None
    return els[0].Z if len(els) == 1 and isinstance(els[0], Element) else None


class FormulaError(ValueError):
    """A formula that cannot become a composition graph.

    Attributes:
        formula: the offending input.
        reason: why it was refused.
        row: 0-based row in the source (or ``None``); ``source`` names the file, when known.
    """

    def __init__(
        self, formula: object, reason: str, *, row: int | None = None, source: str | None = None
    ) -> None:
        self.formula, self.reason, self.row, self.source = formula, reason, row, source
        where = ""
        if source is not None:
            where += f"{source}: "
        if row is not None:
            where += f"row {row}: "
        super().__init__(f"{where}formula {formula!r}: {reason}")


def parse_formula(formula: object) -> tuple[np.ndarray, np.ndarray]:
    """Parse one formula into atomic numbers and fractional amounts.

    The one place formulas are read: unicode subscripts and hydrate/adduct notation are
    normalised first (:func:`normalise_formula`), then pymatgen parses the text.

    Returns:
        ``(z, frac)``: ``z`` int64 of shape (n_elements,) sorted ascending, ``frac`` float64 of the
        same shape, positive and summing to 1.

    Raises:
        FormulaError: unparseable text, a missing value, a symbol that is not a real element, or a
            zero, negative or non-finite amount.
    """
    if not isinstance(formula, str):
        if formula is None or (isinstance(formula, float) and np.isnan(formula)):
            raise FormulaError(formula, "missing value (empty cell)")
        raise FormulaError(formula, f"expected a string, got {type(formula).__name__}")
    text = formula.strip()
    if text.lower() in _MISSING:
        raise FormulaError(formula, "missing value (empty or NaN-like cell)")
    text = normalise_formula(text)
    for _, amount in _AMOUNT.findall(text):
        if float(amount) == 0.0:
            raise FormulaError(formula, "an amount is zero")
        if float(amount) < 0.0:
            raise FormulaError(formula, f"an amount ({amount}) is negative")
    try:
        comp = Composition(text)
    except Exception as exc:  # pymatgen raises ValueError, KeyError, ... for bad text
        raise FormulaError(formula, f"pymatgen cannot parse it ({exc})") from None
    amounts: dict[int, float] = {}
    for species, amount in comp.items():
        if not isinstance(species, Element):
            symbol = getattr(species, "symbol", species)
            raise FormulaError(formula, f"{symbol!r} is not a chemical element")
        amounts[species.Z] = amounts.get(species.Z, 0.0) + float(amount)
    if not amounts:
        raise FormulaError(formula, "no elements")
    seen = {_symbol_z(t) for t in _SYMBOL.findall(text)}
    lost = sorted(a for a in seen if a is not None and a not in amounts)
    if lost:  # pymatgen silently drops amounts below its tolerance
        symbols = ", ".join(Element.from_Z(a).symbol for a in lost)
        raise FormulaError(formula, f"the amount of {symbols} is too small to keep (below 1e-8)")
    z = np.fromiter(sorted(amounts), dtype=np.int64)
    amt = np.array([amounts[k] for k in z], dtype=np.float64)
    if not np.all(np.isfinite(amt)):
        raise FormulaError(formula, "an amount is not finite")
    if np.any(amt <= 0):
        raise FormulaError(formula, "amounts must be positive")
    frac = amt / amt.max()  # scaled first: huge amounts (1e308) must not overflow the sum
    frac /= frac.sum()
    if not np.all(frac > 0):
        raise FormulaError(formula, "amounts differ too much to represent as fractions")
    return z, frac


@dataclass(frozen=True)
class CompositionArray:
    """Many compositions in CSR layout.

    Attributes:
        z: (n_nodes,) int64 atomic numbers, ascending within each composition.
        frac: (n_nodes,) float64 fractional amounts; each composition's sum to 1.
        offsets: (n + 1,) int64; composition ``i`` is ``z[offsets[i]:offsets[i + 1]]``.
    """

    z: np.ndarray
    frac: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_elements(self) -> np.ndarray:
        """(n,) number of distinct elements of each composition."""
        return np.diff(self.offsets)

    @property
    def owner(self) -> np.ndarray:
        """(n_nodes,) index of the composition each node belongs to."""
        return np.repeat(np.arange(len(self)), self.n_elements)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.z[lo:hi], self.frac[lo:hi]

    def dense(self, max_z: int = MAX_Z) -> np.ndarray:
        """(n, max_z) float64 element fractions: column Z - 1 holds element Z's fraction."""
        if len(self.z) and int(self.z.max()) > max_z:
            raise ValueError(f"element fractions cover Z <= {max_z}; got Z = {int(self.z.max())}")
        out = np.zeros((len(self), max_z))
        out[self.owner, self.z - 1] = self.frac
        return out

    def subset(self, index: Sequence[int] | np.ndarray) -> CompositionArray:
        """The compositions at ``index``, in that order."""
        index = np.asarray(index, dtype=np.int64)
        counts = self.n_elements[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        starts = np.repeat(self.offsets[index], counts)
        within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)
        take = starts + within
        return CompositionArray(self.z[take], self.frac[take], offsets)

    def keys(self, decimals: int = 6) -> list[str]:
        """A canonical string per composition (elements and rounded fractions), for dedup and
        leakage checks: two formulas with the same reduced composition get the same key."""
        out = []
        for i in range(len(self)):
            z, f = self[i]
            out.append(" ".join(f"{a}:{b:.{decimals}f}" for a, b in zip(z, f, strict=True)))
        return out

    @classmethod
    def from_lists(cls, items: Iterable[tuple[np.ndarray, np.ndarray]]) -> CompositionArray:
        zs, fs, counts = [], [], [0]
        for z, f in items:
            zs.append(z)
            fs.append(f)
            counts.append(len(z))
        offsets = np.cumsum(np.asarray(counts, dtype=np.int64))
        z_all = np.concatenate(zs) if zs else np.zeros(0, dtype=np.int64)
        f_all = np.concatenate(fs) if fs else np.zeros(0, dtype=np.float64)
        return cls(z_all.astype(np.int64), f_all.astype(np.float64), offsets)


def parse_formulas(
    formulas: Iterable[object], *, source: str | None = None, row_offset: int = 0
) -> CompositionArray:
    """Parse many formulas; the first bad one raises a :class:`FormulaError` naming its row.

    Args:
        formulas: formula strings.
        source: a file name to quote in errors.
        row_offset: added to the 0-based position when reporting the row.
    """
    items = []
    for i, formula in enumerate(formulas):
        try:
            items.append(parse_formula(formula))
        except FormulaError as err:
            raise FormulaError(err.formula, err.reason, row=i + row_offset, source=source) from None
    return CompositionArray.from_lists(items)
