"""The DFT-throughput measurements' parts: today's recipe first, and the subset labels they write
read back unchanged by the ``dft`` objective."""

from __future__ import annotations

import numpy as np
import pytest

from pretroost.data.composition import parse_formulas
from pretroost.data.corpus import DFT_PROPERTIES, Corpus, oqmd_labels
from pretroost.experiment.pretrain_speed import TIMED, VARIANTS, _write_labels
from pretroost.pretrain import resolved_train


def test_variants_start_with_todays_recipe() -> None:
    today = resolved_train(VARIANTS[0].config(1), "cpu")[0]
    assert (today.precision, today.batch_size, today.lr) == ("fp32", 256, 3e-4)
    assert TIMED[0] == VARIANTS[0].label and set(TIMED) <= {v.label for v in VARIANTS}
    lrs = [resolved_train(v.config(1), "cpu")[1]["lr_used"] for v in VARIANTS]
    assert lrs == pytest.approx([3e-4, 3e-4, 3e-4 * 2**0.5, 6e-4, 1.2e-3])


def test_written_labels_read_back(tmp_path) -> None:
    forms = ["NaCl", "Fe2O3", "GaAs"]
    corpus = Corpus(parse_formulas(forms), forms)
    y = np.array([[1.0, -2.0, 3.0, 4.0], [np.nan, 0.5, 0.25, 10.0], [0.0, 1.0, 2.0, 3.0]])
    folder = _write_labels(tmp_path / "labels", corpus, y.astype(np.float32))
    back = oqmd_labels(DFT_PROPERTIES, oqmd_dir=folder).reindex(corpus.comps.keys()).to_numpy()
    np.testing.assert_allclose(back, y.astype(np.float32), rtol=0, atol=0)
