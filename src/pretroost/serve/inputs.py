"""Formulas from what a person gives the page: pasted text or an uploaded CSV, within limits.

Pasted text holds one formula per line; blank lines are skipped and a first line reading
``formula`` (a copied column header) is dropped. A CSV holds a header row; the ``formula`` column
(any case) is used, else the first column. A CSV of one column without a ``formula`` header is read
as pasted text (a list of formulas, no header). A row whose formula is longer than the limit is kept
and reported in place (:func:`formula_too_long`), never sent to the model.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace

__all__ = ["FormulaInput", "InputError", "formula_too_long", "from_csv", "from_text"]


class InputError(ValueError):
    """Input the page refuses as a whole; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FormulaInput:
    """The formulas of one request, in input order, and where they were read from."""

    formulas: list[str]
    source: str


def _check_count(formulas: list[str], max_rows: int, source: str) -> FormulaInput:
    if not formulas:
        raise InputError("no formulas given: type or paste one per line, or upload a CSV file")
    if len(formulas) > max_rows:
        raise InputError(
            f"{len(formulas):,} formulas: at most {max_rows:,} per request; split the list",
            status=413,
        )
    return FormulaInput(formulas, source)


def from_text(text: str, *, max_rows: int) -> FormulaInput:
    """One formula per line (blank lines skipped, a leading ``formula`` header line dropped)."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if lines and lines[0].lower() == "formula":
        lines = lines[1:]
    return _check_count(lines, max_rows, "typed list")


def from_csv(data: bytes, filename: str, *, max_rows: int) -> FormulaInput:
    """The ``formula`` column (or the first) of an uploaded CSV file (UTF-8, header row)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{filename}: not UTF-8 text (byte {exc.start}); save the file as CSV (UTF-8)"
        ) from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise InputError(f"{filename}: not a readable CSV file ({exc})") from None
    if not rows:
        raise InputError(f"{filename}: the file is empty")
    header = [c.strip().lower() for c in rows[0]]
    if "formula" in header:
        col = header.index("formula")
        source = f"column 'formula' of {filename}"
        body = rows[1:]
    elif max(len(r) for r in rows) == 1:
        return replace(from_text(text, max_rows=max_rows), source=f"{filename} (one per line)")
    else:
        col = 0
        source = f"first column ('{rows[0][0].strip()}') of {filename}"
        body = rows[1:]
    formulas = [(row[col].strip() if col < len(row) else "") for row in body]
    return _check_count(formulas, max_rows, source)


def formula_too_long(formula: str, max_chars: int) -> str | None:
    """The error of a formula longer than ``max_chars`` characters, else None."""
    if len(formula) > max_chars:
        return f"formula of {len(formula):,} characters: at most {max_chars} allowed"
    return None
