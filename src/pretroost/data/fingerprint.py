"""Magpie composition fingerprints ("FL" target), vectorised over whole corpora.

Huang, Magar & Barati Farimani (J. Chem. Inf. Model. 64, 627, 2024) pretrain Roost by regressing
the Magpie general-purpose attributes of Ward et al. (npj Comput. Mater. 2, 16028, 2016) as
computed by matminer. This module reproduces matminer's numbers (``matminer.featurizers.
composition``: ``Stoichiometry()``, ``ElementProperty.from_preset("magpie")``,
``ValenceOrbital(props=["frac"])`` and the two ionic-character outputs of ``IonProperty()``) for
a whole :class:`~pretroost.data.composition.CompositionArray` at once: element properties are
gathered from per-Z tables and the weighted statistics are segment reductions over the CSR layout
(``np.minimum.reduceat`` and friends), with no Python loop over compositions.

Semantics matched to matminer 0.10 (read from its source):

* Element tables come from matminer's own ``MagpieData`` (22 Magpie properties) and
  ``PymatgenData`` (Pauling electronegativity ``X``, which ``IonProperty`` uses by default, *not*
  Magpie's ``Electronegativity`` table). With ``impute_nan=True`` (matminer's default) a missing
  element property is replaced by the mean of that property over all elements, so no output is
  NaN; with ``impute_nan=False`` the NaN propagates as in matminer.
* ``minimum``/``maximum``/``range`` are NaN if any element's property is NaN.
* ``mean`` and ``avg_dev`` are fraction-weighted (``np.average`` with the amounts as weights);
  ``avg_dev`` is the weighted mean of ``|x - mean|``.
* ``mode`` is the *smallest* property value among the elements whose weight is
  ``np.isclose`` (rtol 1e-5, atol 1e-8) to the largest weight; NaN if one of those values is NaN.
  matminer compares the raw formula amounts, we compare fractions: the two can only disagree
  when two leading amounts differ by about 1e-8 in absolute terms (never in practice).
* ``Stoichiometry``: the 0-norm is the number of distinct elements; the p-norms are
  ``(sum_i f_i**p)**(1/p)`` of the fractions.
* ``ValenceOrbital`` "frac": the fraction-weighted mean of ``N{s,p,d,f}Valence`` divided by that
  of ``NValence``.
* ``IonProperty``: ionic character ``1 - exp(-(X_a - X_b)**2 / 4)`` over unordered element pairs;
  "max ionic char" is its maximum over pairs, "avg ionic char" the sum over pairs of
  ``f_a f_b`` times it. A single-element composition gets 0 for both (even if its ``X`` is NaN).
  The oxidation-state "compound possible" flag is left out.
"""

from __future__ import annotations

import functools
import logging
import warnings

import numpy as np

from pretroost.data.composition import CompositionArray

__all__ = ["MAGPIE_FEATURE_NAMES", "MAGPIE_PROPERTIES", "MAGPIE_STATS", "magpie_fingerprint"]

log = logging.getLogger("pretroost.data.fingerprint")

_P_NORMS: tuple[int, ...] = (0, 2, 3, 5, 7, 10)

#: The 22 Magpie element properties of ``ElementProperty.from_preset("magpie")``, in its order.
MAGPIE_PROPERTIES: tuple[str, ...] = (
    "Number",
    "MendeleevNumber",
    "AtomicWeight",
    "MeltingT",
    "Column",
    "Row",
    "CovalentRadius",
    "Electronegativity",
    "NsValence",
    "NpValence",
    "NdValence",
    "NfValence",
    "NValence",
    "NsUnfilled",
    "NpUnfilled",
    "NdUnfilled",
    "NfUnfilled",
    "NUnfilled",
    "GSvolume_pa",
    "GSbandgap",
    "GSmagmom",
    "SpaceGroupNumber",
)

#: The six statistics of the Magpie preset, in matminer's order.
MAGPIE_STATS: tuple[str, ...] = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")

_ORBITALS: tuple[str, ...] = ("s", "p", "d", "f")

#: The 144 feature names, identical to matminer's ``feature_labels()`` and in the same order.
MAGPIE_FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"{p}-norm" for p in _P_NORMS)
    + tuple(f"MagpieData {s} {prop}" for prop in MAGPIE_PROPERTIES for s in MAGPIE_STATS)
    + tuple(f"frac {orb} valence electrons" for orb in _ORBITALS)
    + ("max ionic char", "avg ionic char")
)

_N_STOICH = len(_P_NORMS)
_N_STATS = len(MAGPIE_STATS)
_ELEM_START = _N_STOICH
_VALENCE_START = _ELEM_START + len(MAGPIE_PROPERTIES) * _N_STATS
_ION_START = _VALENCE_START + len(_ORBITALS)
N_FEATURES = _ION_START + 2
assert N_FEATURES == len(MAGPIE_FEATURE_NAMES) == 144

_MAX_Z = 118
# np.isclose defaults, as used by matminer's PropertyStats.mode.
_MODE_RTOL, _MODE_ATOL = 1e-5, 1e-8


@functools.lru_cache(maxsize=2)
def _element_tables(impute_nan: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-element property tables read from matminer's installed data.

    Returns:
        ``(props, x)``: ``props`` float64 of shape (119, 22), row ``Z`` holding the
        :data:`MAGPIE_PROPERTIES` of element ``Z``; ``x`` float64 of shape (119,), the Pauling
        electronegativity that ``IonProperty`` reads through ``PymatgenData``. Row 0 is NaN.
        Both are read-only.
    """
    from matminer.utils.data import MagpieData, PymatgenData
    from pymatgen.core import Element

    magpie = MagpieData(impute_nan=impute_nan)
    pmg = PymatgenData(impute_nan=impute_nan)
    props = np.full((_MAX_Z + 1, len(MAGPIE_PROPERTIES)), np.nan)
    x = np.full(_MAX_Z + 1, np.nan)
    with warnings.catch_warnings():
        # pymatgen warns for every element without a Pauling electronegativity.
        warnings.simplefilter("ignore", UserWarning)
        for z in range(1, _MAX_Z + 1):
            el = Element.from_Z(z)
            for k, name in enumerate(MAGPIE_PROPERTIES):
                props[z, k] = float(magpie.get_elemental_property(el, name))
            value = pmg.get_elemental_property(el, "X")
            x[z] = np.nan if value is None else float(value)
    props.setflags(write=False)
    x.setflags(write=False)
    log.debug("loaded Magpie element tables (impute_nan=%s)", impute_nan)
    return props, x


def _fingerprint_chunk(
    z: np.ndarray, frac: np.ndarray, offsets: np.ndarray, props: np.ndarray, xtab: np.ndarray
) -> np.ndarray:
    """Fingerprints of one CSR chunk.

    Args:
        z: (m,) int64 atomic numbers; frac: (m,) float64 fractions.
        offsets: (n + 1,) int64 starting at 0; every composition has at least one element.
        props: (119, 22) element property table; xtab: (119,) electronegativity table.

    Returns:
        (n, 144) float64.
    """
    n = len(offsets) - 1
    counts = np.diff(offsets)
    starts = offsets[:-1]
    owner = np.repeat(np.arange(n), counts)
    out = np.empty((n, N_FEATURES), dtype=np.float64)

    # Stoichiometry p-norms (the 0-norm is the number of elements).
    out[:, 0] = counts
    for j, p in enumerate(_P_NORMS[1:], start=1):
        out[:, j] = np.add.reduceat(frac**p, starts) ** (1.0 / p)

    # Mode mask: elements whose weight is np.isclose to the composition's largest weight.
    wmax = np.maximum.reduceat(frac, starts)[owner]
    leading = np.abs(frac - wmax) <= _MODE_ATOL + _MODE_RTOL * wmax

    # Element-property statistics, one property at a time (1-D arrays keep memory small).
    means = np.empty((n, len(MAGPIE_PROPERTIES)))
    for k in range(len(MAGPIE_PROPERTIES)):
        v = props[z, k]
        lo = np.minimum.reduceat(v, starts)  # NaN-propagating, like matminer
        hi = np.maximum.reduceat(v, starts)
        mean = np.add.reduceat(v * frac, starts)
        dev = np.add.reduceat(np.abs(v - mean[owner]) * frac, starts)
        mode = np.minimum.reduceat(np.where(leading, v, np.inf), starts)
        c = _ELEM_START + k * _N_STATS
        out[:, c] = lo
        out[:, c + 1] = hi
        out[:, c + 2] = hi - lo
        out[:, c + 3] = mean
        out[:, c + 4] = dev
        out[:, c + 5] = mode
        means[:, k] = mean

    # ValenceOrbital fractions: <N_orb Valence> / <NValence>.
    i_total = MAGPIE_PROPERTIES.index("NValence")
    for j, orb in enumerate(_ORBITALS):
        i_orb = MAGPIE_PROPERTIES.index(f"N{orb}Valence")
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, _VALENCE_START + j] = means[:, i_orb] / means[:, i_total]

    # IonProperty. The ionic character is increasing in |X_a - X_b|, so its maximum over pairs is
    # that of the largest difference, max(X) - min(X) (exact in floating point too).
    x = xtab[z]
    spread = np.maximum.reduceat(x, starts) - np.minimum.reduceat(x, starts)
    single = counts == 1
    out[:, _ION_START] = np.where(single, 0.0, 1.0 - np.exp(-0.25 * spread**2))
    # Average: all unordered pairs (a, b), a < b, within each composition.
    node = np.arange(len(z))
    partners = offsets[1:][owner] - node - 1  # (m,) nodes after this one in its composition
    first = np.repeat(node, partners)
    pair_start = np.cumsum(partners) - partners
    second = first + 1 + (np.arange(len(first)) - np.repeat(pair_start, partners))
    ionic = 1.0 - np.exp(-0.25 * (x[first] - x[second]) ** 2)
    out[:, _ION_START + 1] = np.bincount(
        owner[first], weights=frac[first] * frac[second] * ionic, minlength=n
    )
    return out


def magpie_fingerprint(
    comps: CompositionArray,
    *,
    chunk_size: int = 200_000,
    progress: bool = False,
    impute_nan: bool = True,
) -> np.ndarray:
    """The 144 Magpie attributes of every composition, equal to matminer's.

    Args:
        comps: ``n`` compositions; atomic numbers must lie in 1..118 and every composition must
            have at least one element.
        chunk_size: compositions per vectorised chunk (bounds peak memory, about
            ``chunk_size * 4 * 8`` bytes per temporary array).
        progress: log a line per chunk at INFO level.
        impute_nan: matminer's ``impute_nan`` (default True, as in matminer): replace missing
            element properties by their mean over all elements. With False, NaN appears wherever
            matminer gives NaN (e.g. ``MeltingT`` of He, electronegativities of noble gases).

    Returns:
        (n, 144) float64, columns named by :data:`MAGPIE_FEATURE_NAMES`.

    Raises:
        ValueError: an atomic number outside 1..118, an empty composition, or ``chunk_size < 1``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    n = len(comps)
    out = np.empty((n, N_FEATURES), dtype=np.float64)
    if n == 0:
        return out
    z_all = np.asarray(comps.z, dtype=np.int64)
    frac_all = np.asarray(comps.frac, dtype=np.float64)
    offsets_all = np.asarray(comps.offsets, dtype=np.int64)
    if np.any(np.diff(offsets_all) < 1):
        raise ValueError("every composition needs at least one element")
    if len(z_all) and (z_all.min() < 1 or z_all.max() > _MAX_Z):
        raise ValueError(f"atomic numbers must lie in 1..{_MAX_Z}")
    props, xtab = _element_tables(bool(impute_nan))

    n_chunks = -(-n // chunk_size)
    for c in range(n_chunks):
        lo, hi = c * chunk_size, min(n, (c + 1) * chunk_size)
        a, b = offsets_all[lo], offsets_all[hi]
        out[lo:hi] = _fingerprint_chunk(
            z_all[a:b], frac_all[a:b], offsets_all[lo : hi + 1] - a, props, xtab
        )
        if progress:
            log.info("magpie fingerprint: chunk %d/%d (%d/%d compositions)", c + 1, n_chunks, hi, n)
    return out
