"""The PBE band-gap teacher (pretroost.data.pbe_gap) and the trees' `fractions+magpie+pbe` set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pretroost.data import pbe_gap
from pretroost.data.composition import parse_formulas
from pretroost.trees import composition_features


def test_the_table_averages_per_composition_and_drops_the_experimental_tasks(
    data_cache, monkeypatch
) -> None:
    """Formulas that reduce alike are one row with their mean gap (noble-gas formulas, in no
    Matbench task); a composition of
    matbench_steels (one of the excluded tasks) is left out."""
    from pretroost.data.matbench import load_task

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    steel = load_task("matbench_steels")["formula"].iloc[0]
    frame = pd.DataFrame(
        {"formula": ["Kr2Ne", "Kr4Ne2", "Ar3He", steel], "target": [4.0, 5.0, 1.7, 0.0]}
    )
    comps, y = pbe_gap.pbe_gap_table(frame=frame)
    assert comps.keys() == parse_formulas(["Kr2Ne", "Ar3He"]).keys()
    np.testing.assert_allclose(y, [4.5, 1.7])
    comps, y = pbe_gap.pbe_gap_table((), frame=frame)  # nothing excluded
    assert len(y) == 3


def test_pbe_feature_set_adds_the_teachers_gap_as_a_last_column(monkeypatch) -> None:
    """The teacher (here a stand-in that reads the first Magpie-side column) gets the same
    fractions + Magpie the trees see; its prediction is one more column."""

    class Teacher:
        def predict(self, x: np.ndarray) -> np.ndarray:
            assert x.shape[1] == 103 + 144
            return x[:, 0] * 10.0

    monkeypatch.setattr(pbe_gap, "_teacher", lambda: Teacher())
    comps = parse_formulas(["H2O", "NaCl"])
    base = composition_features(comps, "fractions+magpie")
    with_pbe = composition_features(comps, "fractions+magpie+pbe")
    assert with_pbe.shape == (2, base.shape[1] + 1)
    np.testing.assert_array_equal(with_pbe[:, :-1], base)
    np.testing.assert_allclose(with_pbe[:, -1], base[:, 0] * 10.0)
    with pytest.raises(ValueError, match="fractions"):
        composition_features(comps, "magpie+pbe")
