"""Formula notations beyond pymatgen's own (unicode subscripts, hydrates/adducts) read in the one
parsing place, and blank lines of a predict CSV kept as rows with an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pretroost.data.composition import FormulaError, normalise_formula, parse_formula


def _same(a: str, b: str) -> None:
    za, fa = parse_formula(a)
    zb, fb = parse_formula(b)
    np.testing.assert_array_equal(za, zb)
    np.testing.assert_allclose(fa, fb, rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("Fe₂O₃", "Fe2O3"),
        ("CuSO4·5H2O", "CuH10SO9"),
        ("CuSO₄·5H₂O", "CuH10SO9"),
        ("CuSO4*5H2O", "CuH10SO9"),
        ("CuSO4 • 5 H2O", "CuH10SO9"),
        ("Na2SO4.H2O", "Na2SO5H2"),
        ("CaCl2 . 2H2O", "CaCl2H4O2"),
        ("3CdSO4·8H2O", "Cd3S3O20H16"),
        ("Na2CO3·0.5H2O", "Na2CO3.5H1"),
    ],
)
def test_subscripts_and_hydrate_notation_parse_as_the_plain_formula(text, plain) -> None:
    _same(text, plain)


def test_decimal_points_stay_decimal_points() -> None:
    assert normalise_formula("Fe0.5O0.5") == "Fe0.5O0.5"
    _same("Li0.5CoO2", "LiCo2O4")
    # Matbench's own formulas with one decimal amount >= 1 followed by an element
    _same("Cu1.8S1", "Cu9S5")
    _same("Hg7.5As4Cl6", "Hg15As8Cl12")
    _same("La5Cu6.33S7O4", "La500Cu633S700O400")
    _same("H2OCaCl2.2", "H10O5Ca5Cl11")


@pytest.mark.parametrize("text", ["CuSO4.5H2O", "CuSO4·5H2O", "CuSO4*5H2O", "CuSO4 . 5H2O"])
def test_a_dot_before_a_count_is_a_hydrate_when_an_element_repeats(text) -> None:
    """Read as a decimal, CuSO4.5H2O would name O twice: no one writes a decimal amount so."""
    assert normalise_formula(text) == "(CuSO4)(H2O)5"
    _same(text, "CuH10SO9")
    _same("Ca(OH)2.5H2O", "CaO7H12")


def test_a_decimal_or_a_count_before_water_is_refused_with_a_hint() -> None:
    with pytest.raises(FormulaError, match="ambiguous") as info:
        parse_formula("CaCl2.2H2O")
    assert "'CaCl2·2H2O'" in info.value.reason and "'H2OCaCl2.2'" in info.value.reason


@pytest.mark.parametrize("suffix", ["(s)", "(l)", "(g)", "(aq)", "(cr)", " (s)"])
def test_state_suffixes_are_refused_with_a_hint(suffix) -> None:
    with pytest.raises(FormulaError, match=r"state of matter.*write 'NaCl'"):
        parse_formula(f"NaCl{suffix}")
    _same("NaCl(S)", "NaClS")  # capital S: sulfur


@pytest.mark.parametrize("text", ["H2O 1", "Fe 2 O 3", "NaCl 0.5", "CuSO4·5H2O 2"])
def test_a_bare_number_after_a_space_is_refused_with_a_hint(text) -> None:
    with pytest.raises(FormulaError, match="number after a space"):
        parse_formula(text)
    _same("Fe2 O3", "Fe2O3")  # pymatgen's own spacing stays fine


@pytest.mark.parametrize("bad", ["NaCl·", "·H2O", "Fe*", "CuSO4·0H2O"])
def test_broken_adducts_are_refused_with_a_reason(bad) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(bad)
    assert info.value.formula == bad  # the error quotes the user's text, not the rewrite


def test_blank_line_in_a_predict_csv_is_a_row_with_an_error(tmp_path, capsys) -> None:
    import torch

    from pretroost.artefacts import save_artefact
    from pretroost.cli import main
    from pretroost.models.roost import RoostEncoder
    from tiny import TINY_ENCODER

    holder = torch.nn.Module()
    holder.encoder = RoostEncoder(TINY_ENCODER)
    art = save_artefact(
        tmp_path / "enc", holder, {"kind": "pretrained", "encoder": TINY_ENCODER.to_dict()}, card=""
    )
    src = tmp_path / "in.csv"
    src.write_text("id,formula\na,NaCl\n\nc,Fe₂O₃\nd,CuSO4·5H2O\n\n")
    out = tmp_path / "emb.csv"
    assert main(["embed", "--model", str(art), str(src), "-o", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert df["id"].tolist() == ["a", "", "c", "d"]
    assert df["error"].tolist()[0] == "" and "missing value" in df["error"][1]
    assert df["error"].tolist()[2:] == ["", ""]
    assert "row 1 (line 3)" in capsys.readouterr().err
