"""Reading a user's spreadsheet of formulas (and targets), with errors that name file, row and reason.

Every bad row is found before anything is refused, and all of them are reported in one error
(row and line numbers included), so a user fixes a file in one pass rather than one row per run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pretroost.data.composition import CompositionArray, FormulaError, parse_formula
from pretroost.data.elements import element_table

__all__ = [
    "LINE_OFFSET",
    "TableError",
    "check_training_frame",
    "read_formula_table",
    "read_training_table",
]

log = logging.getLogger(__name__)

#: a 0-based data row of a CSV with one header line is on line ``row + LINE_OFFSET``
LINE_OFFSET = 2
MAX_LISTED = 20


class TableError(ValueError):
    """A CSV that cannot be used: empty, missing a column, duplicate ids, bad rows."""


def bad_rows_error(source: str, problems: list[tuple[int, str]]) -> TableError:
    """One error listing every bad row as ``row R (line L): reason`` (the first
    :data:`MAX_LISTED`, then a count), on one line."""
    problems = sorted(problems, key=lambda p: p[0])
    listed = [f"row {r} (line {r + LINE_OFFSET}): {why}" for r, why in problems[:MAX_LISTED]]
    more = len(problems) - MAX_LISTED
    if more > 0:
        listed.append(f"... and {more} more")
    head = f"{source}: " if len(problems) == 1 else f"{source}: {len(problems)} bad rows: "
    return TableError(head + "; ".join(listed))


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: not a readable CSV ({exc})") from None
    if df.empty:
        raise TableError(f"{path}: no data rows")
    return df.reset_index(drop=True)


def target_problems(values: np.ndarray, task_type: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Float targets (n, 1) and the bad rows: non-numeric, NaN/inf, or (classification) a label
    outside {0, 1}. Bad rows hold NaN in the returned array."""
    problems: list[tuple[int, str]] = []
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        try:
            x = float(v)
        except (TypeError, ValueError):
            problems.append((i, f"target {v!r} is not a number"))
            continue
        if not np.isfinite(x):
            problems.append((i, f"target {[x]} is not finite"))
        elif task_type == "classification" and x not in (0.0, 1.0):
            problems.append((i, f"classification target {[x]} not in {{0, 1}}"))
        else:
            out[i] = x
    return out.reshape(-1, 1), problems


def _columns(path: Path, df: pd.DataFrame, wanted: list[str | None]) -> None:
    missing = [c for c in wanted if c is not None and c not in df.columns]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {missing}; columns present: {list(df.columns)}"
        )


def _row_problems(
    df: pd.DataFrame, formula_col: str, id_col: str | None, elem_embedding: str | None
) -> tuple[list, list[tuple[int, str]]]:
    """The parsed ``(z, frac)`` of the good formulas and the problems of the bad rows
    (unparseable formula, element without a feature vector, duplicate id)."""
    known = None
    if elem_embedding is not None:
        known = element_table(elem_embedding)[1]
    problems: list[tuple[int, str]] = []
    items = []
    for i, formula in enumerate(df[formula_col].tolist()):
        try:
            z, frac = parse_formula(formula)
        except FormulaError as err:
            problems.append((i, f"formula {formula!r}: {err.reason}"))
            continue
        unknown = [] if known is None else [int(a) for a in z if not known[a]]
        if unknown:
            from pymatgen.core import Element

            symbol = Element.from_Z(unknown[0]).symbol
            why = f"element {symbol} has no {elem_embedding} feature vector"
            problems.append((i, f"formula {formula!r}: {why}"))
            continue
        items.append((z, frac))
    if id_col is not None:
        dup = np.flatnonzero(df[id_col].duplicated(keep="first").to_numpy())
        problems += [(int(i), f"duplicate id {df[id_col].iloc[i]!r}") for i in dup]
    return items, problems


def read_training_table(
    path: str | Path,
    *,
    formula_col: str = "formula",
    target_col: str = "target",
    id_col: str | None = None,
    task_type: str = "regression",
    elem_embedding: str | None = None,
) -> tuple[pd.DataFrame, CompositionArray, np.ndarray]:
    """Read and validate a training CSV: formulas, targets and (optionally) ids.

    Every row is checked (formula parses; with ``elem_embedding`` every element has a feature
    vector; the target is a finite number, 0/1 for classification; ids are unique) and all bad
    rows are reported in one :class:`TableError` before anything is trained or written.

    Returns:
        The frame (rows in file order), the compositions and the targets (n, 1) float64.
    """
    path = Path(path)
    df = _read_csv(path)
    comps, y = check_training_frame(
        df, str(path), formula_col=formula_col, target_col=target_col, id_col=id_col,
        task_type=task_type, elem_embedding=elem_embedding,
    )  # fmt: skip
    return df, comps, y


def check_training_frame(
    df: pd.DataFrame,
    source: str,
    *,
    formula_col: str = "formula",
    target_col: str = "target",
    id_col: str | None = None,
    task_type: str = "regression",
    elem_embedding: str | None = None,
) -> tuple[CompositionArray, np.ndarray]:
    """:func:`read_training_table`'s checks on a frame already in memory (``source`` names it in
    errors): the compositions and the targets (n, 1) float64, or one :class:`TableError` listing
    every bad row (rows numbered as in a CSV with one header line)."""
    _columns(Path(source), df, [formula_col, target_col, id_col])
    if df.empty:
        raise TableError(f"{source}: no data rows")
    items, problems = _row_problems(df, formula_col, id_col, elem_embedding)
    y, bad_targets = target_problems(df[target_col].to_numpy(), task_type)
    if problems or bad_targets:
        raise bad_rows_error(source, problems + bad_targets)
    return CompositionArray.from_lists(items), y


def read_formula_table(
    path: str | Path,
    *,
    formula_col: str = "formula",
    target_col: str | None = None,
    id_col: str | None = None,
) -> tuple[pd.DataFrame, CompositionArray]:
    """Read a CSV of formulas (and any target/id columns, which must exist); every bad formula
    and duplicate id is reported at once (:class:`TableError`). Targets are not checked here
    (:func:`read_training_table` does)."""
    path = Path(path)
    df = _read_csv(path)
    _columns(path, df, [formula_col, target_col, id_col])
    items, problems = _row_problems(df, formula_col, id_col, None)
    if problems:
        raise bad_rows_error(str(path), problems)
    return df, CompositionArray.from_lists(items)
