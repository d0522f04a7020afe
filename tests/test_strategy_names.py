"""Combined strategies' names: written and read back in one module."""

from __future__ import annotations

from pretroost.strategy_names import (
    blend_label,
    hurdle_label,
    parse_combination,
    selection_label,
)


def test_round_trips() -> None:
    assert parse_combination(selection_label(["a", "b+trunk"])).parts == ("a", "b+trunk")
    nested = blend_label(["blend(a@0-4=5|b)", "trees"])
    combined = parse_combination(nested)
    assert combined is not None and combined.kind == "blend"
    assert combined.parts == ("blend(a@0-4=5|b)", "trees")
    assert parse_combination(hurdle_label("dft+trunk@0-9", pbe=True)).kind == "hurdle+pbe"
    assert parse_combination("scratch") is None
    assert parse_combination("select(a") is None
