"""data/descriptors.py: one place for Roost's trunk descriptors and the trees' feature sets."""

from __future__ import annotations

import numpy as np
import pytest

from pretroost.data.composition import parse_formulas
from pretroost.data.descriptors import descriptor_matrix, descriptor_values, n_descriptors


def test_sizes_and_order() -> None:
    comps = parse_formulas(["Fe2O3", "NaCl"])
    fractions = descriptor_values("fractions", comps)
    magpie = descriptor_values("magpie", comps)
    assert fractions.shape == (2, n_descriptors("fractions"))
    assert magpie.shape == (2, n_descriptors("magpie"))
    np.testing.assert_array_equal(
        descriptor_matrix(["fractions", "magpie"], comps), np.hstack([fractions, magpie])
    )
    with pytest.raises(ValueError, match="valid"):
        descriptor_values("nope", comps)
