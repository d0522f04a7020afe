"""Reading a user's spreadsheet of formulas (and targets), with errors that name file, row and reason."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pretroost.data.composition import CompositionArray, parse_formulas

__all__ = ["TableError", "read_formula_table"]

log = logging.getLogger(__name__)


class TableError(ValueError):
    """A CSV that cannot be used: empty, missing a column, duplicate ids, bad targets."""


def read_formula_table(
    path: str | Path,
    *,
    formula_col: str = "formula",
    target_col: str | None = None,
    id_col: str | None = None,
) -> tuple[pd.DataFrame, CompositionArray]:
    """Read and validate a CSV (``-`` is not accepted here; pass a file).

    Returns the frame (index reset; rows in file order) and the parsed compositions. Raises
    :class:`TableError` or :class:`~pretroost.data.composition.FormulaError` (row numbers are
    0-based data rows, i.e. the CSV line number minus 2) before anything is written.
    """
    path = Path(path)
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
    wanted = [c for c in (formula_col, target_col, id_col) if c is not None]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {missing}; columns present: {list(df.columns)}"
        )
    if id_col is not None:
        dup = df[id_col].duplicated(keep="first")
        if dup.any():
            i = int(dup.to_numpy().nonzero()[0][0])
            raise TableError(f"{path}: row {i}: duplicate id {df[id_col].iloc[i]!r}")
    comps = parse_formulas(df[formula_col].tolist(), source=str(path))
    return df.reset_index(drop=True), comps
