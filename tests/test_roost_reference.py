"""Reference check: our dense Roost equals aviary-models' Roost (scatter over edge lists) given the
same weights, on a batch of real formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.models.aviary_import import from_aviary_state_dict
from pretroost.models.roost import ModelConfig, RoostModel

aviary_roost = pytest.importorskip(
    "aviary.roost.model", reason="aviary-models is a test dependency"
)
aviary_data = pytest.importorskip("aviary.roost.data")

FORMULAS = [
    "Fe2O3", "NaCl", "Ag(AuS)2", "Fe", "O2", "Ba0.5Sr0.5Co0.8Fe0.2O3", "LiFePO4", "Cu2ZnSnS4",
    "Al0.2Co0.2Cr0.2Fe0.2Ni0.2", "La2CuO4", "Mg2SiO4", "H2O", "SiC", "CsPbI3", "Y1Ba2Cu3O7",
    "Ti0.5Zr0.25Hf0.25NiSn", "KMgF3", "GaN", "Bi2Te3", "Nb3Sn",
]  # fmt: skip


def _aviary_outputs(model, formulas):
    import pandas as pd

    df = pd.DataFrame({"material_id": range(len(formulas)), "composition": formulas, "y": 0.0})
    data = aviary_data.CompositionData(df, task_dict={"y": "regression"})
    inputs, *_ = aviary_data.collate_batch([data[i] for i in range(len(df))])
    with torch.no_grad():
        return model(*inputs)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_dense_roost_equals_aviary(seed: int) -> None:
    torch.manual_seed(seed)
    ref = aviary_roost.Roost(
        robust=True, n_targets=[1], elem_embedding="matscholar200", task_dict={"y": "regression"}
    ).eval()
    ours = RoostModel(ModelConfig(robust=True)).eval()
    from_aviary_state_dict(ours, ref.state_dict())
    expected = _aviary_outputs(ref, FORMULAS)
    comps = parse_formulas(FORMULAS)
    ds = CompositionDataset(comps)
    with torch.no_grad():
        got = ours(ds.batch(np.arange(len(FORMULAS))))
    assert got.shape == expected.shape == (len(FORMULAS), 2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
