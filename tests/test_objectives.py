"""Contract test over every registered objective, plus the properties of the losses and encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretroost.artefacts import load_artefact, save_artefact
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.losses import BarlowTwinsLoss, MaskedMSELoss, RobustL1Loss
from pretroost.models.roost import RoostEncoder
from pretroost.objectives import OBJECTIVES, CombinedObjective, parse_objective
from pretroost.objectives.ssl import mask_elements
from tiny import tiny_encoder

TINY = tiny_encoder(heads=2)
FORMULAS = ["Fe2O3", "NaCl", "LiFePO4", "Fe", "Al0.2Co0.2Cr0.2Fe0.2Ni0.2", "SiO2", "GaN", "CsPbI3"]
DIMS = {"fingerprint": 7, "structure": 5, "dft": 4}


def small_configs():
    return {
        name: cls.Config(**{"trunk_hidden": (32,), "trunk_out": 16})
        if name != "ssl"
        else cls.Config(trunk_hidden=(32,), trunk_out=16, proj_dim=24)
        for name, cls in OBJECTIVES.items()
    }


def make_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    comps = parse_formulas(FORMULAS)
    n = len(FORMULAS)
    targets = {
        "fingerprint": rng.normal(size=(n, DIMS["fingerprint"])).astype(np.float32),
        "structure": rng.normal(size=(n, DIMS["structure"])).astype(np.float32),
        "structure_mask": np.arange(n) % 2 == 0,
        "dft": rng.normal(size=(n, DIMS["dft"])).astype(np.float32),
    }
    targets["fingerprint"][0, 0] = np.nan  # NaN entries are ignored
    targets["dft"][1, 1:] = np.nan  # missing labels
    targets["dft"][2] = np.nan  # a composition without any
    targets["dft_mask"] = np.isfinite(targets["dft"]).any(axis=1)
    return CompositionDataset(comps, targets).batch(np.arange(n))


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objective_contract(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    encoder = RoostEncoder(TINY)
    cls = OBJECTIVES[name]
    assert cls.name == name and cls.reference  # the model card cites where it comes from
    obj = cls(encoder, small_configs()[name], in_dim=encoder.out_dim, target_dim=DIMS.get(name))
    batch = make_batch()
    out = obj(batch)
    assert "loss" in out and out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    if "pred" in out:
        assert out["pred"].shape == (len(batch), DIMS[name])
    out["loss"].backward()
    grads = [p.grad for p in encoder.parameters()]
    assert all(g is not None for g in grads), "every encoder parameter gets a gradient"
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # save -> load gives identical outputs (SSL is random: fix the seed for both calls)
    combined = CombinedObjective(encoder, [name], configs=small_configs(), target_dims=DIMS).eval()
    save_artefact(tmp_path / "a", combined, {"objective": name}, card="x")
    art = load_artefact(tmp_path / "a")
    clone = CombinedObjective(
        RoostEncoder(TINY), [name], configs=small_configs(), target_dims=DIMS
    ).eval()
    clone.load_state_dict(art.state_dict)
    torch.manual_seed(1)
    a = combined(batch)["loss"]
    torch.manual_seed(1)
    b = clone(batch)["loss"]
    assert torch.equal(a, b)


def test_combination_sums_weighted_losses() -> None:
    torch.manual_seed(0)
    enc = RoostEncoder(TINY)
    names = parse_objective("fingerprint+structure")
    obj = CombinedObjective(
        enc, names, configs=small_configs(), target_dims=DIMS, weights={"structure": 0.5}
    )
    out = obj(make_batch())
    expected = out["loss_fingerprint"] + 0.5 * out["loss_structure"]
    torch.testing.assert_close(out["loss"].detach(), expected)


def test_unknown_objective_lists_valid() -> None:
    with pytest.raises(ValueError, match="ssl, fingerprint, structure"):
        parse_objective("ssl+magic")


def test_barlow_twins_invariant_to_affine_rescaling() -> None:
    torch.manual_seed(0)
    z1, z2 = torch.randn(64, 8), torch.randn(64, 8)
    loss = BarlowTwinsLoss()
    scale, shift = torch.rand(8) * 5 + 0.1, torch.randn(8) * 3
    torch.testing.assert_close(loss(z1, z2), loss(z1 * scale + shift, z2), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss(z1, z2), loss(z1, z2 * 2.5 - 1.0), rtol=1e-4, atol=1e-4)


def test_barlow_twins_zero_for_identical_decorrelated_views() -> None:
    # columns of an orthogonal matrix (scaled) are exactly decorrelated, zero-mean after centering
    q, _ = torch.linalg.qr(torch.randn(64, 8, dtype=torch.float64))
    z = q - q.mean(dim=0)
    z, _ = torch.linalg.qr(z)
    z = z - z.mean(dim=0)
    loss = BarlowTwinsLoss()(z.float(), z.float())
    assert float(loss) < 1e-2
    assert float(BarlowTwinsLoss()(z.float(), torch.randn(64, 8))) > 1.0


def test_robust_l1_minimum_and_masked_mse_zero_at_target() -> None:
    y = torch.randn(10, 1)
    mu = y + 0.3
    best = torch.log(torch.tensor(2.0).sqrt() * 0.3)
    losses = [
        float(RobustL1Loss()(mu, torch.full_like(y, s), y)) for s in (best - 0.2, best, best + 0.2)
    ]
    assert losses[1] < losses[0] and losses[1] < losses[2]
    t = torch.randn(4, 3)
    t[0, 1] = float("nan")
    assert float(MaskedMSELoss()(torch.nan_to_num(t), t)) == 0.0
    assert (
        float(MaskedMSELoss()(t.nan_to_num() + 1, t, torch.tensor([True, False, False, False])))
        == 1.0
    )


def test_encoder_invariant_to_element_order() -> None:
    torch.manual_seed(0)
    enc = RoostEncoder(TINY).eval()
    ds = CompositionDataset(parse_formulas(FORMULAS))
    batch = ds.batch(np.arange(len(FORMULAS)))
    perm = torch.randperm(batch.z.shape[1])
    from pretroost.data.batching import CompositionBatch

    shuffled = CompositionBatch(
        batch.z[:, perm], batch.weights[:, perm], batch.mask[:, perm], batch.index
    )
    with torch.no_grad():
        torch.testing.assert_close(enc(batch), enc(shuffled), atol=1e-6, rtol=1e-5)


def test_mask_elements_counts() -> None:
    comps = parse_formulas(["Fe", "NaCl", "Al0.1Co0.1Cr0.1Fe0.1Ni0.1Cu0.1Zn0.1Ti0.1V0.1Mn0.1Mo0.1"])
    batch = CompositionDataset(comps).batch(np.arange(3))
    m = mask_elements(batch.mask, 0.1)
    assert m.sum(dim=1).tolist() == [1, 1, 1]
    assert not (m & ~batch.mask).any()
    m = mask_elements(batch.mask, 0.5)
    assert m.sum(dim=1).tolist() == [1, 1, 5]
