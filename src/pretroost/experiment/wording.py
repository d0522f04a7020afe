"""A check of the wording of generated reports: no claim of equality without its evidence.

A test that fails to find a difference does not show that two scores are equal: "not
distinguishable" is not "equal". :func:`check_equality_claims` finds every sentence that says two
things are equal ("level with", "matches", "equal", "on par", "indistinguishable", ...) and raises
unless the same sentence carries what would support it: an equivalence test (TOST) or a stated
margin ("within ±0.01", "to 1e-5", "max deviation 4.6e-13").
"""

from __future__ import annotations

import re

__all__ = ["EQUALITY_WORDS", "EVIDENCE", "check_equality_claims", "equality_claims"]

#: words that claim two things are equal
EQUALITY_WORDS = re.compile(
    r"\b(level with|on par|as good as|no different from|indistinguishable|"
    r"match(es|ed|ing)?|equal(s|led)?|the same as)\b",
    re.IGNORECASE,
)

#: what supports such a claim in the same sentence: an equivalence test or a stated margin
EVIDENCE = re.compile(
    r"(\bTOST\b|equivalence test|within\s*±|within\s+[-+]?\d|±\s*\d|\bto\s+\d+(\.\d+)?e-\d+|"
    r"\btolerance\b|deviation\s+(of\s+)?\d|\bmax(imum)? deviation\b|\bmargin of\s+\d)",
    re.IGNORECASE,
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*`(\[|])|\n\s*\n|\n(?=\s*[-*|#])")


def _sentences(text: str) -> list[str]:
    """``text`` cut into sentences (and table rows, list items and headings, each on its own)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)  # code blocks say nothing of scores
    return [" ".join(s.split()) for s in _SENTENCE_END.split(text) if s.strip()]


#: a negation just before an equality word ("not equal", "no test shows them to be equal")
_NEGATED = re.compile(r"\b(not|no|never|nor|cannot)\b(\s+\S+){0,4}\s*$", re.IGNORECASE)


def _claims(sentence: str) -> bool:
    """Whether ``sentence`` uses an equality word that no negation just before it denies."""
    return any(
        not _NEGATED.search(sentence[: m.start()]) for m in EQUALITY_WORDS.finditer(sentence)
    )


def equality_claims(text: str) -> list[str]:
    """The sentences of ``text`` that claim equality without an equivalence test or margin
    (an equality word a negation denies, as in "not equal", is no claim)."""
    return [s for s in _sentences(text) if _claims(s) and not EVIDENCE.search(s)]


def check_equality_claims(text: str, *, source: str = "text") -> None:
    """Raise ValueError listing every sentence of ``text`` (named ``source`` in the message) that
    claims two things are equal without an equivalence test or a stated margin."""
    bad = equality_claims(text)
    if bad:
        listed = "\n".join(f"  - {s[:300]}" for s in bad)
        raise ValueError(
            f"{source}: {len(bad)} sentence(s) claim equality without an equivalence test or a "
            f"stated margin (say 'not distinguishable (p = …)', or give the margin):\n{listed}"
        )
