"""Using a trained model: load an artefact folder, predict properties and embed formulas.

>>> import pretroost
>>> model = pretroost.load("models/demo")  # doctest: +SKIP
>>> model.predict(["Fe2O3", "NaCl", "not a formula"])  # doctest: +SKIP

These kinds of folders load (``config.json``'s ``"kind"``):

- ``"finetuned"``: one property model (:meth:`FittedModel.save`);
- ``"ensemble"``: a deep ensemble (:mod:`pretroost.ensemble`); predictions carry total, aleatoric
  and epistemic stds;
- ``"pretrained"``: an encoder only (``"encoder"`` config, tensors under ``encoder.``): ``embed``
  works, ``predict`` does not (there is no property head);
- ``"ready"``: a ready property model shipped in the package (:mod:`pretroost.ready`), e.g.
  ``load("expt-gap")``;
- ``"trees"``: a tree ensemble on composition features (:func:`pretroost.trees.save_trees`), loaded
  as a :class:`~pretroost.trees.TreesPredictor` with the same ``predict``;
- ``"hurdle"`` and ``"blend"``: folders of models (:mod:`pretroost.hurdle`,
  :mod:`pretroost.blend`), loaded as :class:`~pretroost.hurdle.HurdlePredictor` and
  :class:`~pretroost.blend.BlendPredictor`.

Bad formulas never vanish: with ``errors="coerce"`` (the default) their row stays in place with NaN
predictions (or a NaN embedding) and the reason in the ``error`` column; ``errors="raise"`` raises a
:class:`~pretroost.data.composition.FormulaError` naming the first bad row instead.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, cast

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from pretroost.artefacts import load_artefact
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import CompositionArray, FormulaError, parse_formula
from pretroost.ensemble import Ensemble, combine_predictions
from pretroost.errors import ArtefactError
from pretroost.finetune import FittedModel
from pretroost.models.roost import RoostEncoder, TaskType, encoder_from_artefact
from pretroost.utils import atomic_path

__all__ = [
    "ERRORS",
    "KINDS",
    "ParsedFormulas",
    "Predictor",
    "as_formula_list",
    "encoder_from_artefact",
    "known_elements",
    "parse_for_model",
    "read_formula_input",
    "write_table",
]

log = logging.getLogger(__name__)

Errors = Literal["coerce", "raise"]
ERRORS: tuple[str, ...] = ("coerce", "raise")
KINDS: tuple[str, ...] = ("finetuned", "ensemble", "pretrained")  # the Roost kinds
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".pq")
_CHUNK = 4096  # rows per prediction chunk (one progress-bar step)


# ------------------------------------------------------------------------------- input handling


def as_formula_list(X: object, *, allow_str: bool = True) -> tuple[list[object], pd.Index | None]:
    """Formulas from a sequence, array, Series, or a one-column 2-D array / DataFrame.

    Returns the formulas (as given, not yet validated) and the pandas index of a Series/DataFrame
    input (else ``None``). A single string is one formula when ``allow_str``.
    """
    if isinstance(X, str):
        if not allow_str:
            raise ValueError(
                "expected a sequence of formula strings, got a single string; wrap it in a list"
            )
        return [X], None
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(
                f"expected one column of formulas, got {X.shape[1]} columns: {list(X.columns)}"
            )
        return X.iloc[:, 0].tolist(), X.index
    if isinstance(X, pd.Series):
        return X.tolist(), X.index
    if isinstance(X, pd.Index):
        return X.tolist(), None
    if isinstance(X, np.ndarray):
        arr = X
    else:
        if not isinstance(X, Iterable):
            raise ValueError(f"expected a sequence of formula strings, got {type(X).__name__}")
        items = list(X)
        arr = np.empty(len(items), dtype=object)
        for i, x in enumerate(items):  # element-wise: numpy must not broadcast tuples
            arr[i] = x[0] if isinstance(x, list | tuple) and len(x) == 1 else x
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"expected a 1-D sequence (or one column) of formulas, got shape {arr.shape}"
        )
    return arr.tolist(), None


@dataclass(frozen=True)
class ParsedFormulas:
    """Formulas checked against a model.

    Attributes:
        comps: the compositions of the good rows, in input order.
        good: (n,) bool, True where the row parsed and every element has a feature vector.
        errors: (n,) the reason for each bad row, ``None`` for good rows.
    """

    comps: CompositionArray
    good: np.ndarray
    errors: list[str | None]

    @property
    def n_bad(self) -> int:
        return int((~self.good).sum())


def parse_for_model(
    formulas: Sequence[object],
    known: np.ndarray,
    *,
    elem_embedding: str = "element table",
    errors: Errors = "coerce",
    source: str | None = None,
) -> ParsedFormulas:
    """Parse ``formulas`` and check their elements against ``known`` (bool, indexed by Z).

    Duplicate formulas are parsed once. With ``errors="raise"`` the first bad row raises a
    :class:`FormulaError` (row numbers 0-based).
    """
    if errors not in ERRORS:
        raise ValueError(f"unknown errors={errors!r}; valid: {', '.join(ERRORS)}")
    cache: dict[object, tuple[np.ndarray, np.ndarray] | str] = {}
    items: list[tuple[np.ndarray, np.ndarray]] = []
    good = np.zeros(len(formulas), dtype=bool)
    reasons: list[str | None] = [None] * len(formulas)
    for i, formula in enumerate(formulas):
        key = formula if isinstance(formula, str) else (type(formula).__name__, repr(formula))
        hit = cache.get(key)
        if hit is None:
            try:
                z, frac = parse_formula(formula)
                unknown = [int(a) for a in z if a >= len(known) or not known[a]]
                if unknown:
                    from pymatgen.core import Element

                    symbol = Element.from_Z(unknown[0]).symbol
                    raise FormulaError(
                        formula, f"element {symbol} has no {elem_embedding} feature vector"
                    )
                hit = (z, frac)
            except FormulaError as err:
                hit = err.reason
            cache[key] = hit
        if isinstance(hit, str):
            if errors == "raise":
                raise FormulaError(formula, hit, row=i, source=source)
            reasons[i] = hit
        else:
            good[i] = True
            items.append(hit)
    return ParsedFormulas(CompositionArray.from_lists(items), good, reasons)


# ------------------------------------------------------------------------------------ predictor


def _progress_enabled(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def known_elements(encoder: RoostEncoder) -> np.ndarray:
    """Elements with a feature vector in the encoder's own (saved) element table."""
    table = cast(torch.Tensor, encoder.element_table).detach().cpu().numpy()
    known = np.abs(table).sum(axis=1) > 0
    known[0] = False
    return known


class Predictor:
    """A trained model (single, ensemble) or a pretrained encoder, ready for new formulas.

    Build one with :func:`pretroost.hub.load` (an artefact folder) or directly from a :class:`FittedModel`,
    :class:`~pretroost.ensemble.Ensemble` or :class:`RoostEncoder` in memory.
    """

    def __init__(
        self, model: FittedModel | Ensemble | RoostEncoder, *, path: str | Path | None = None
    ) -> None:
        self.model = model
        self.path = Path(path) if path is not None else None
        if isinstance(model, Ensemble):
            self.kind, self.members = "ensemble", list(model.members)
        elif isinstance(model, FittedModel):
            self.kind, self.members = "finetuned", [model]
        elif isinstance(model, RoostEncoder):
            self.kind, self.members = "pretrained", []
        else:
            raise TypeError(
                f"expected a FittedModel, Ensemble or RoostEncoder, got {type(model).__name__}"
            )
        for m in self.members:
            m.model.eval()
        if isinstance(model, RoostEncoder):
            model.eval()

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """A finetuned model, an ensemble or a pretrained encoder folder (``config.json``'s
        ``"kind"``); :func:`pretroost.hub.load` reads any kind and resolves shipped names."""
        art = load_artefact(path)
        kind = art.config.get("kind")
        if kind == "finetuned":
            model: FittedModel | Ensemble | RoostEncoder = FittedModel.load(path)
        elif kind == "ensemble":
            model = Ensemble.from_artefact(art)
        elif kind == "pretrained":
            model = encoder_from_artefact(art)
        else:
            raise ArtefactError(
                f"{path}: unknown artefact kind {kind!r}; valid: {', '.join(KINDS)}"
            )
        return cls(model, path=path)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        members = f", members={len(self.members)}" if self.kind == "ensemble" else ""
        return f"Predictor(kind={self.kind!r}, task_type={self.task_type!r}{members}{where})"

    # ---------------------------------------------------------------------------- properties
    @property
    def task_type(self) -> TaskType | None:
        """``"regression"``/``"classification"``, or ``None`` for an encoder-only artefact."""
        return self.members[0].task_type if self.members else None

    @property
    def threshold(self) -> float:
        """Classification decision threshold (label = probability > threshold): a single model's
        own (0.5 unless chosen on its validation split), 0.5 for an ensemble's mean probability."""
        if self.kind == "finetuned":
            return float(self.members[0].threshold)
        return 0.5

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def n_targets(self) -> int:
        return self.members[0].model.config.n_targets if self.members else 0

    def encoder(self, member: int = 0) -> RoostEncoder:
        if isinstance(self.model, RoostEncoder):
            return self.model
        if not 0 <= member < len(self.members):
            raise ValueError(f"member {member} out of range 0..{len(self.members) - 1}")
        return self.members[member].model.encoder

    @property
    def embedding_dim(self) -> int:
        return self.encoder().out_dim

    @property
    def elem_embedding(self) -> str:
        return self.encoder().config.elem_embedding

    @property
    def columns(self) -> list[str]:
        """The value columns :meth:`predict` returns (between ``formula`` and ``error``)."""
        if self.task_type is None:
            return []
        if self.task_type == "classification":
            names = ["prediction", "probability"]
            if self.kind == "ensemble":
                names.append("std_epistemic")
        else:
            names = ["prediction", "std"]
            if self.kind == "ensemble":
                names += ["std_aleatoric", "std_epistemic"]
        t = self.n_targets
        return names if t == 1 else [f"{c}_{j}" for j in range(t) for c in names]

    # ----------------------------------------------------------------------------- parsing
    def parse(
        self, formulas: object, *, errors: Errors = "coerce", member: int = 0
    ) -> tuple[list[object], pd.Index | None, ParsedFormulas]:
        values, index = as_formula_list(formulas)
        enc = self.encoder(member)
        parsed = parse_for_model(
            values, known_elements(enc), elem_embedding=enc.config.elem_embedding, errors=errors
        )
        return values, index, parsed

    # ------------------------------------------------------------------------------ predict
    def predict(
        self,
        formulas: object,
        *,
        errors: Errors = "coerce",
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Predict the property of each formula.

        Args:
            formulas: formula strings (list, array, Series, one-column DataFrame, or one string).
            errors: ``"coerce"``: bad rows get NaN values and their reason in ``error``;
                ``"raise"``: raise :class:`FormulaError` for the first bad row.
            batch_size: compositions per forward pass.
            progress: progress bar (default: when stderr is a terminal).

        Returns:
            One row per input, in input order (index kept from a pandas input): ``formula``, then
            regression: ``prediction``, ``std`` (single model: aleatoric std, NaN unless the
            robust loss was used; ensemble: total std) and, for ensembles, ``std_aleatoric`` and
            ``std_epistemic``; classification: ``prediction`` (0/1 label,
            ``probability > threshold``, see :attr:`threshold`),
            ``probability`` (of class 1) and, for ensembles, ``std_epistemic``; then ``error``
            (``None`` for good rows). Several targets get ``_0``, ``_1``, ... suffixes.
        """
        if self.task_type is None:
            where = str(self.path) if self.path is not None else "DIR"
            raise ValueError(
                f"{where}: a pretrained encoder without a property head predicts nothing; embed "
                f"formulas with it (`pretroost embed --model {where} INPUT`, or .embed()), or "
                f"finetune it first (`pretroost finetune --init {where} --data ...`); ready "
                "property models load by name (`pretroost ready list`; oqmd-dft gives dft-oqmd's "
                "OQMD DFT estimates)"
            )
        values, index, parsed = self.parse(formulas, errors=errors)
        n, t = len(values), self.n_targets
        combined = self._predict_good(parsed.comps, batch_size, progress)
        frame: dict[str, object] = {"formula": values}
        good = parsed.good

        def full(a: np.ndarray) -> np.ndarray:
            out = np.full((n, t), np.nan)
            out[good] = a
            return out

        suffix = [""] if t == 1 else [f"_{j}" for j in range(t)]
        if self.task_type == "classification":
            prob = full(combined["prob"])
            threshold = self.threshold
            for j, s in enumerate(suffix):
                label = pd.array(np.where(good, prob[:, j] > threshold, False).astype(int), "Int64")
                label[~good] = pd.NA
                frame[f"prediction{s}"] = label
                frame[f"probability{s}"] = prob[:, j]
                if self.kind == "ensemble":
                    frame[f"std_epistemic{s}"] = full(combined["std_epistemic"])[:, j]
        else:
            keys = ["mean", "std"] + (
                ["std_aleatoric", "std_epistemic"] if self.kind == "ensemble" else []
            )
            arrays = {k: full(combined[k]) for k in keys}
            names = {"mean": "prediction"}
            for j, s in enumerate(suffix):
                for k in keys:
                    frame[f"{names.get(k, k)}{s}"] = arrays[k][:, j]
        frame["error"] = parsed.errors
        return pd.DataFrame(frame, index=index)

    def _predict_good(
        self, comps: CompositionArray, batch_size: int, progress: bool | None
    ) -> dict[str, np.ndarray]:
        n, m = len(comps), len(self.members)
        t = self.n_targets
        if n == 0:
            shape = (0, t)
            keys = (
                ("prob", "std_epistemic")
                if self.task_type == "classification"
                else ("mean", "std", "std_aleatoric", "std_epistemic")
            )
            return {k: np.zeros(shape) for k in keys}
        chunks = [np.arange(s, min(n, s + _CHUNK)) for s in range(0, n, _CHUNK)]
        per_member: list[list[dict[str, np.ndarray]]] = [[] for _ in range(m)]
        with tqdm(
            total=n * m, desc="predict", unit="formula", disable=not _progress_enabled(progress),
            leave=False,
        ) as bar:  # fmt: skip
            for idx in chunks:
                data = CompositionDataset(comps.subset(idx))
                for k, member in enumerate(self.members):
                    per_member[k].append(member.predict_dataset(data, batch_size))
                    bar.update(len(idx))
        outputs = [
            {key: np.concatenate([c[key] for c in chunks_k]) for key in chunks_k[0]}
            for chunks_k in per_member
        ]
        if self.kind == "ensemble":
            return combine_predictions(outputs, self.task_type or "regression")
        return outputs[0]

    # -------------------------------------------------------------------------------- embed
    def embed(
        self,
        formulas: object,
        *,
        errors: Errors = "coerce",
        member: int = 0,
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Encoder material vectors, float32 (n, :attr:`embedding_dim`), rows in input order;
        NaN rows for bad formulas (or :class:`FormulaError` with ``errors="raise"``).

        For an ensemble, ``member`` picks whose encoder to use: the members' latent spaces are not
        aligned, so averaging them would be meaningless.
        """
        values, _, parsed = self.parse(formulas, errors=errors, member=member)
        return self._embed_parsed(len(values), parsed, member, batch_size, progress)

    def embed_frame(
        self,
        formulas: object,
        *,
        errors: Errors = "coerce",
        member: int = 0,
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """:meth:`embed` as a frame: ``formula``, ``emb_0`` .. ``emb_{d-1}``, ``error``."""
        values, index, parsed = self.parse(formulas, errors=errors, member=member)
        emb = self._embed_parsed(len(values), parsed, member, batch_size, progress)
        frame = pd.DataFrame(emb, columns=[f"emb_{j}" for j in range(emb.shape[1])], index=index)
        frame.insert(0, "formula", values)
        frame["error"] = parsed.errors
        return frame

    @torch.no_grad()
    def _embed_parsed(
        self, n: int, parsed: ParsedFormulas, member: int, batch_size: int, progress: bool | None
    ) -> np.ndarray:
        enc = self.encoder(member)
        enc.eval()
        comps = parsed.comps
        vecs = np.zeros((len(comps), enc.out_dim), dtype=np.float32)
        with tqdm(
            total=len(comps), desc="embed", unit="formula",
            disable=not _progress_enabled(progress), leave=False,
        ) as bar:  # fmt: skip
            for s in range(0, len(comps), _CHUNK):
                idx = np.arange(s, min(len(comps), s + _CHUNK))
                data = CompositionDataset(comps.subset(idx))
                for b in data.batch_indices(batch_size):
                    vecs[idx[b]] = enc(data.batch(b)).numpy()
                bar.update(len(idx))
        out = np.full((n, enc.out_dim), np.nan, dtype=np.float32)
        out[parsed.good] = vecs
        return out

    def save(self, out: str | Path) -> Path:
        """Save the wrapped model (single or ensemble) as an artefact folder."""
        if isinstance(self.model, RoostEncoder):
            raise ValueError("saving a bare encoder is the pretraining code's job")
        return self.model.save(out)


# ---------------------------------------------------------------------------------- loading


# ------------------------------------------------------------------------------ file helpers


def read_formula_input(
    source: str | Path, *, formula_col: str = "formula", stdin: TextIO | None = None
) -> pd.DataFrame:
    """Read formulas from a CSV file or ``-`` (standard input) for the CLI.

    The input is a CSV when its header has ``formula_col``; otherwise it is read as one formula
    per line into a column named ``formula_col``. Either way trailing blank lines are dropped and
    other blank lines are kept as rows (later reported as missing values). CSV cells are read as
    strings (ids keep leading zeros; empty cells stay empty strings).

    Returns all columns, rows in input order, with ``attrs["line_offset"]``: add it to a 0-based
    row to get the line number in the input.
    """
    if str(source) == "-":
        text = (stdin if stdin is not None else sys.stdin).read()
        name = "<stdin>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        text = path.read_text()
        name = str(path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{name}: no input rows")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    if formula_col in header:
        # blank lines are rows too (a missing formula, reported): never silently dropped
        body = "\n".join(lines) + "\n"
        df = pd.read_csv(
            io.StringIO(body), dtype=str, keep_default_na=False, skip_blank_lines=False
        )
        df = df.fillna("")
        df.columns = [str(c).strip() for c in df.columns]
        if df.empty:
            raise ValueError(f"{name}: no data rows")
        df.attrs["line_offset"] = 2
        return df.reset_index(drop=True)
    if "," in lines[0]:
        raise ValueError(
            f"{name}: no column {formula_col!r} (header: {header}); pass --formula-col, or give "
            "one formula per line without a header"
        )
    df = pd.DataFrame({formula_col: [line.strip() for line in lines]})
    df.attrs["line_offset"] = 1
    return df


def write_table(
    df: pd.DataFrame,
    out: str | Path | None,
    *,
    stdout: TextIO | None = None,
    float_format: str | None = "%.7g",
) -> None:
    """Write ``df`` (no index) as CSV or Parquet chosen by ``out``'s extension, atomically;
    ``None`` or ``-`` writes CSV to standard output. CSV floats get ``float_format`` (7
    significant digits: all that float32 model outputs carry)."""
    if out is None or str(out) == "-":
        text = df.to_csv(index=False, float_format=float_format)
        (stdout if stdout is not None else sys.stdout).write(text)
        return
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(
            f"{path}: unknown output format {suffix or '(none)'!r}; valid: "
            + ", ".join(TABLE_SUFFIXES)
        )
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False, float_format=float_format)
        else:
            df.to_parquet(tmp, index=False)
    log.info("wrote %s (%d rows)", path, len(df))
