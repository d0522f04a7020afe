"""Names of strategies made of other strategies, written and read in one place: a selection
``select(a|b)``, a blend ``blend(a@0-4=5|b)`` and a hurdle ``hurdle(a)`` / ``hurdle+pbe(a)``.
Parts keep nested names whole (``blend(blend(a|b)|c)``). Torch-free, on the ground floor, so the
results store, the Matbench runner, the report, blends and hurdles all use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "COMBINATIONS",
    "Combination",
    "blend_label",
    "hurdle_label",
    "parse_combination",
    "selection_label",
    "split_top_level",
]

#: the prefixes of combined strategies' names
COMBINATIONS: tuple[str, ...] = ("select", "blend", "hurdle", "hurdle+pbe")


@dataclass(frozen=True)
class Combination:
    """A combined strategy's name read back: its ``kind`` (one of :data:`COMBINATIONS`) and its
    ``parts`` as written."""

    kind: str
    parts: tuple[str, ...]


def split_top_level(inner: str) -> list[str]:
    """``inner`` split at the ``|`` outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        depth += (c == "(") - (c == ")")
        if c == "|" and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    return [*parts, inner[start:]]


def parse_combination(name: str) -> Combination | None:
    """The kind and parts of a combined strategy's name; None for any other name."""
    head, paren, _ = name.partition("(")
    if not paren or head not in COMBINATIONS or not name.endswith(")"):
        return None
    inner = name[len(head) + 1 : -1]
    parts = tuple(split_top_level(inner)) if head in ("select", "blend") else (inner,)
    return Combination(head, parts)


def selection_label(candidates: Sequence[str]) -> str:
    """The default name of a selection among ``candidates``: ``select(<c1>|<c2>|...)``."""
    return "select(" + "|".join(candidates) + ")"


def blend_label(parts: Sequence[str]) -> str:
    """The default name of a blend of ``parts`` (as written): ``blend(<part>|<part>|...)``."""
    return "blend(" + "|".join(parts) + ")"


def hurdle_label(part: str, *, pbe: bool = False) -> str:
    """The default name of a hurdle over ``part``: ``hurdle(<part>)`` (``hurdle+pbe(...)`` for a
    zero classifier on the PBE-gap feature set)."""
    return f"hurdle{'+pbe' if pbe else ''}({part})"
