"""Is a formula inside the chemistry a model was trained on? Nearest training compositions.

A property model only interpolates: its prediction for a composition far from every training
composition, or one holding an element it never saw, deserves less trust than its std may say.
:class:`DomainIndex` keeps the training compositions and their recorded targets and reports, per
queried composition, its ``k`` nearest training compositions and an in-domain flag with a reason.

Distance (``metric = "l1_fraction"``): the L1 distance between normalised element-fraction
vectors, ``d(a, b) = sum_Z |a_Z - b_Z|`` where ``a_Z`` is element Z's fraction of composition ``a``
(fractions sum to 1, :meth:`CompositionArray.dense`). It is 0 exactly when the two reduced
compositions are the same (``NaCl`` and ``Na2Cl2``), 2 when they share no element, and in general
``2 - 2 * sum_Z min(a_Z, b_Z)``: twice the share of the composition that would have to change.
Swapping one element of a binary AB for another gives 1.0; NaCl vs Na0.6Cl0.4 gives 0.2.

A query is out of domain when

(a) one of its elements appears in no training composition (the reason names them: ``"Pu not in
    training data"``), or
(b) its nearest training composition lies further than a threshold set by the training rows among
    themselves: the ``percentile``-th percentile (99 by default; NumPy's linear interpolation) of
    every training row's leave-one-out nearest-neighbour distance, the distance to the nearest
    *other* training row (a duplicate composition elsewhere in the training set counts, the row
    itself does not). So at most about 1 % of the training rows lie as far from the others as an
    out-of-domain query lies from all of them.
    Distances within ``TOLERANCE`` (1e-9) of the threshold count as within it (rounding).

Both reasons are given when both hold. Neighbours are found exactly, by brute force
(scikit-learn's ``NearestNeighbors``, manhattan metric, on sparse fraction vectors). This is a
coverage check on compositions only, in the spirit of applicability-domain checks for QSAR models
(e.g. Sahigara et al., *Molecules* 17, 4791, 2012, k-nearest-neighbour distance thresholds); it
says nothing about whether the model is right there.

A saved index is two small files (no pickle): ``domain.json`` (metric, percentile, threshold,
row count, the target's type, a checksum of the training file) and ``training.csv.gz`` (columns
``formula,target``); the compositions are parsed again from the formulas on load.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Element
from scipy import sparse
from sklearn.metrics.pairwise import manhattan_distances
from sklearn.neighbors import NearestNeighbors

from pretroost.data.composition import CompositionArray, parse_formulas

__all__ = [
    "METRIC",
    "DomainConfig",
    "DomainIndex",
    "Neighbours",
    "composition_distance",
]

METRIC = "l1_fraction"
METRIC_DESCRIPTION = (
    "L1 distance between normalised element-fraction vectors, sum over elements of "
    "|fraction_a - fraction_b|; 0 = the same reduced composition, 2 = no element in common"
)
FORMAT = "pretroost-domain"
VERSION = 1
CONFIG_FILE = "domain.json"
TRAINING_FILE = "training.csv.gz"
TARGET_TYPES = ("float", "int", "bool", "str")
MAX_DISTANCE = 2.0
#: element-fraction vectors here have a column for every element pymatgen knows (up to Og), so a
#: query with an element beyond any element table is reported as unseen, not refused
MAX_ELEMENT_Z = 118
#: distances within this of the threshold count as within it: sums of fractions that are equal on
#: paper (a binary AB against AC: 1) differ in the last bit from one pair of rows to the next
TOLERANCE = 1e-9


@dataclass(frozen=True)
class DomainConfig:
    """How the in-domain threshold is set.

    Attributes:
        percentile: the threshold is this percentile (0-100) of the training rows' leave-one-out
            nearest-neighbour distances.
    """

    percentile: float = 99.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must lie in [0, 100]; got {self.percentile}")


@dataclass(frozen=True)
class Neighbours:
    """The structured result of :meth:`DomainIndex.neighbours` for ``n`` queried rows.

    Attributes:
        index: (n, k) int64 training rows, nearest first; -1 for rows without a composition.
        distance: (n, k) float64 distances (``METRIC``); NaN for rows without a composition.
        in_domain: (n,) bool.
        unseen: per row, the atomic numbers of its elements that no training composition holds.
        good: (n,) bool, False for rows without a composition (those are never in domain).
    """

    index: np.ndarray
    distance: np.ndarray
    in_domain: np.ndarray
    unseen: list[list[int]]
    good: np.ndarray


@cache
def _symbol(z: int) -> str:
    return str(Element.from_Z(z).symbol)


def _ordinal(x: float) -> str:
    text = f"{x:g}"
    if not float(x).is_integer():
        return f"{text}th"
    n = int(x)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{text}{suffix}"


def _sparse(comps: CompositionArray) -> sparse.csr_matrix:
    """(n, MAX_ELEMENT_Z) CSR element fractions, column Z - 1 (``comps.dense()``, sparse)."""
    if len(comps.z) and int(comps.z.max()) > MAX_ELEMENT_Z:
        raise ValueError(f"elements go up to Z = {MAX_ELEMENT_Z}; got Z = {int(comps.z.max())}")
    shape = (len(comps), MAX_ELEMENT_Z)
    return sparse.csr_matrix((comps.frac, comps.z - 1, comps.offsets), shape=shape)


def composition_distance(a: CompositionArray, b: CompositionArray) -> np.ndarray:
    """(len(a), len(b)) pairwise distances (``METRIC``), in [0, 2]: the L1 distance between the
    dense element-fraction vectors, clipped at 2 against rounding."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return np.minimum(manhattan_distances(_sparse(a), _sparse(b)), MAX_DISTANCE)


def _target_type(values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    if kind in "OUS" and all(isinstance(v, str) for v in values):
        return "str"
    raise ValueError(
        f"targets of dtype {values.dtype} are not supported; valid: {', '.join(TARGET_TYPES)}"
    )


def _distinct(d: float, threshold: float) -> tuple[str, str]:
    """``d`` and ``threshold`` to 3 significant digits, more where 3 would print them equal."""
    for digits in range(3, 18):
        a, b = f"{d:.{digits}g}", f"{threshold:.{digits}g}"
        if a != b:
            break
    return a, b


def _format_target(value: Any, target_type: str) -> str:
    if target_type == "float":
        return f"{float(value):.4g}"
    return str(value)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class DomainIndex:
    """The training compositions of a model, for nearest-neighbour look-ups and domain checks.

    Build it with :meth:`fit` (or :meth:`load`); query with :meth:`check` (a table for people)
    or :meth:`neighbours` (arrays).
    """

    def __init__(
        self,
        comps: CompositionArray,
        targets: np.ndarray,
        formulas: list[str],
        *,
        threshold: float,
        config: DomainConfig,
    ) -> None:
        if not (len(comps) == len(targets) == len(formulas)):
            raise ValueError(
                f"{len(comps)} compositions, {len(targets)} targets and {len(formulas)} formulas"
            )
        if len(comps) < 2:
            raise ValueError(f"a domain needs at least 2 training rows; got {len(comps)}")
        self.targets = targets
        self.target_type = _target_type(targets)
        self.formulas = formulas
        self.threshold = float(threshold)
        self.config = config
        self.seen = np.zeros(MAX_ELEMENT_Z + 1, dtype=bool)
        self.seen[comps.z] = True
        self._train = _sparse(comps)
        self._nn = NearestNeighbors(metric="manhattan", algorithm="brute", n_jobs=1)
        self._nn.fit(self._train)

    def __len__(self) -> int:
        return len(self.formulas)

    @classmethod
    def fit(
        cls,
        comps: CompositionArray,
        targets: Sequence[Any] | np.ndarray | pd.Series,
        formulas: Sequence[str],
        config: DomainConfig | None = None,
    ) -> DomainIndex:
        """Index the training rows and set the threshold from their leave-one-out distances.

        Args:
            comps: the training compositions (at least 2).
            targets: their recorded targets: floats (regression) or labels (bool, int, str).
            formulas: the formulas the compositions were parsed from, shown in :meth:`check`;
                :meth:`load` parses them again, so they must parse to the same compositions.
            config: the threshold's percentile.
        """
        config = config or DomainConfig()
        values = np.asarray(targets)
        index = cls(comps, values, [str(f) for f in formulas], threshold=0.0, config=config)
        loo = index.training_distances()
        index.threshold = float(np.percentile(loo, config.percentile))
        return index

    def training_distances(self) -> np.ndarray:
        """(n_train,) each training row's distance to its nearest *other* training row."""
        dist, _ = self._nn.kneighbors(None, n_neighbors=1)
        return np.minimum(dist[:, 0], MAX_DISTANCE)

    def neighbours(
        self, comps: CompositionArray, k: int = 3, *, good: np.ndarray | None = None
    ) -> Neighbours:
        """The ``k`` nearest training rows of each composition, and whether it is in domain.

        Args:
            comps: the compositions to check.
            k: how many neighbours (1 to the number of training rows).
            good: (n,) bool over the caller's rows, True where a row has a composition; ``comps``
                then holds only those rows, in order (``ParsedFormulas.comps``/``.good`` of
                :func:`pretroost.predict.parse_for_model`). The other rows get index -1, NaN
                distances and ``in_domain`` False. ``None``: every row has one.
        """
        if not 1 <= k <= len(self):
            raise ValueError(f"k must lie in [1, {len(self)}] (the training rows); got {k}")
        if good is None:
            good = np.ones(len(comps), dtype=bool)
        good = np.asarray(good, dtype=bool)
        if int(good.sum()) != len(comps):
            raise ValueError(f"{int(good.sum())} good rows but {len(comps)} compositions")
        n = len(good)
        index = np.full((n, k), -1, dtype=np.int64)
        distance = np.full((n, k), np.nan)
        unseen: list[list[int]] = [[] for _ in range(n)]
        rows = np.flatnonzero(good)
        if len(comps):
            dist, idx = self._nn.kneighbors(_sparse(comps), n_neighbors=k)
            distance[rows] = np.minimum(dist, MAX_DISTANCE)
            index[rows] = idx
            owner = comps.owner
            for node in np.flatnonzero(~self.seen[comps.z]):
                unseen[rows[owner[node]]].append(int(comps.z[node]))
        has_unseen = np.array([bool(u) for u in unseen], dtype=bool)
        in_domain = good & ~has_unseen & ~self._beyond(distance[:, 0])
        return Neighbours(index, distance, in_domain, unseen, good)

    def _beyond(self, d: Any) -> Any:
        """Whether distances ``d`` lie beyond the threshold (NaN: no)."""
        return np.greater(d, self.threshold + TOLERANCE)

    def check(
        self, comps: CompositionArray, k: int = 3, *, good: np.ndarray | None = None
    ) -> pd.DataFrame:
        """A table, one row per queried row: ``in_domain`` (bool), ``domain_reason`` (``""`` when
        in domain, else why not) and ``nearest`` (``"NaCl 8.5 (d=0); KCl 8.4 (d=0.12)"``: the
        ``k`` nearest training formulas with their targets, floats to 4 significant digits,
        labels as they are, and distances to 3). ``good`` as in :meth:`neighbours`; rows
        without a composition read ``"no composition (the formula was not parsed)"``."""
        nb = self.neighbours(comps, k, good=good)
        pct = _ordinal(self.config.percentile)
        reasons, nearest = [], []
        for i in range(len(nb.good)):
            if not nb.good[i]:
                reasons.append("no composition (the formula was not parsed)")
                nearest.append("")
                continue
            why = []
            if nb.unseen[i]:
                symbols = ", ".join(_symbol(z) for z in sorted(nb.unseen[i]))
                why.append(f"{symbols} not in training data")
            d0 = nb.distance[i, 0]
            if self._beyond(d0):
                a, b = _distinct(d0, self.threshold)
                why.append(
                    f"nearest training composition at d={a}, beyond {b} "
                    f"({pct} percentile of training rows' nearest-neighbour distances)"
                )
            reasons.append("; ".join(why))
            nearest.append(
                "; ".join(
                    f"{self.formulas[j]} {_format_target(self.targets[j], self.target_type)} "
                    f"(d={d:.3g})"
                    for j, d in zip(nb.index[i], nb.distance[i], strict=True)
                )
            )
        return pd.DataFrame(
            {"in_domain": nb.in_domain, "domain_reason": reasons, "nearest": nearest}
        )

    def info(self) -> dict[str, Any]:
        """What ``domain.json`` records (without the checksum)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "metric": METRIC,
            "metric_description": METRIC_DESCRIPTION,
            **asdict(self.config),
            "threshold": self.threshold,
            "threshold_rule": (
                f"the {_ordinal(self.config.percentile)} percentile (linear interpolation) of "
                "each training row's distance to its nearest other training row"
            ),
            "n_train": len(self),
            "n_elements_seen": int(self.seen.sum()),
            "target_type": self.target_type,
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``domain.json`` and ``training.csv.gz`` into ``folder`` (created if needed),
        each through a temporary file and a rename; ``domain.json`` last, with the training
        file's SHA-256, so a half-finished overwrite is detected on load."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"formula": self.formulas, "target": self.targets})
        text = frame.to_csv(index=False, lineterminator="\n").encode()
        data = gzip.compress(text, compresslevel=9, mtime=0)
        _write_atomic(folder / TRAINING_FILE, data)
        info = {**self.info(), "training_sha256": hashlib.sha256(data).hexdigest()}
        _write_atomic(folder / CONFIG_FILE, (json.dumps(info, indent=2) + "\n").encode())
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> DomainIndex:
        """Read a folder :meth:`save` wrote (the formulas are parsed again)."""
        folder = Path(folder)
        info = json.loads((folder / CONFIG_FILE).read_text())
        if info.get("format") != FORMAT or info.get("version") != VERSION:
            raise ValueError(
                f"{folder / CONFIG_FILE}: not a {FORMAT} version {VERSION} file "
                f"(format={info.get('format')!r}, version={info.get('version')!r})"
            )
        if info.get("metric") != METRIC:
            raise ValueError(f"unknown metric {info.get('metric')!r}; valid: {METRIC}")
        target_type = info.get("target_type")
        if target_type not in TARGET_TYPES:
            raise ValueError(
                f"unknown target_type {target_type!r}; valid: {', '.join(TARGET_TYPES)}"
            )
        data = (folder / TRAINING_FILE).read_bytes()
        if hashlib.sha256(data).hexdigest() != info.get("training_sha256"):
            raise ValueError(f"{folder / TRAINING_FILE} does not match {CONFIG_FILE}'s checksum")
        frame = pd.read_csv(
            io.BytesIO(gzip.decompress(data)),
            dtype={"formula": str, "target": target_type},
            keep_default_na=False,
            na_values={"target": ["", "nan", "NaN"]} if target_type == "float" else {},
        )
        if len(frame) != info["n_train"]:
            raise ValueError(f"{len(frame)} training rows but n_train = {info['n_train']}")
        formulas = frame["formula"].tolist()
        comps = parse_formulas(formulas, source=str(folder / TRAINING_FILE))
        config = DomainConfig(percentile=float(info["percentile"]))
        threshold = float(info["threshold"])
        if not math.isfinite(threshold):
            raise ValueError(f"{folder / CONFIG_FILE}: threshold {threshold} is not finite")
        targets = frame["target"].to_numpy()
        if target_type == "str":
            targets = targets.astype(object)
        return cls(comps, targets, formulas, threshold=threshold, config=config)
