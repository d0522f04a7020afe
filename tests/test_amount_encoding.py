"""Fourier features of the amounts (``amount_encoding="fourier"``, bench variant ``+fourier``):
what they compute, that both implementations agree, and that a pretrained encoder widened with
them starts as the pretrained function."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.experiment.strategies import FINETUNE_VARIANTS, parse_strategy
from pretroost.finetune import FinetuneConfig, FittedModel, build_model, fit
from pretroost.models.kernels import roost_kernels
from pretroost.models.roost import (
    AMOUNT_OCTAVES,
    RoostConfig,
    RoostEncoder,
    amount_features,
    set_impl,
)
from pretroost.train import TrainConfig
from tiny import BINARY_FORMULAS, tiny_encoder, toy_target

FOURIER = replace(tiny_encoder(width=8), amount_encoding="fourier")
FORMULAS = [*BINARY_FORMULAS[:30], "Fe2O3", "LiFePO4", "Ba0.5Sr0.5TiO3", "Fe0.999C0.001"]


def _batch(formulas=FORMULAS):
    comps = parse_formulas(formulas)
    return CompositionDataset(comps).batch(np.arange(len(comps)))


def _config(**kw) -> FinetuneConfig:
    return FinetuneConfig(
        train=TrainConfig(epochs=2, batch_size=8, seed=0), encoder=tiny_encoder(width=8),
        trunk_hidden=(16,), out_hidden=(8,), val_fraction=0.2, **kw,
    )  # fmt: skip


def test_amount_features_are_sines_and_cosines_of_both_scales() -> None:
    w = torch.tensor([[0.5, 1e-3, 1.0, 0.0]], dtype=torch.float64)
    phi = amount_features(w)
    assert phi.shape == (1, 4, 4 * AMOUNT_OCTAVES) and torch.isfinite(phi).all()
    k = 2  # pi * 4: the third octave; per scale the K sines, then the K cosines
    assert phi[0, 0, k].item() == pytest.approx(math.sin(math.pi * 4 * 0.5), abs=1e-12)
    assert phi[0, 0, AMOUNT_OCTAVES + k].item() == pytest.approx(math.cos(math.pi * 2), abs=1e-12)
    # log scale: 1e-3 -> 1 - 3/4 = 0.25; 1.0 -> 1; padding (0) -> 0
    assert phi[0, 1, 2 * AMOUNT_OCTAVES].item() == pytest.approx(
        math.sin(math.pi * 0.25), abs=1e-12
    )
    assert phi[0, 2, 2 * AMOUNT_OCTAVES].item() == pytest.approx(math.sin(math.pi), abs=1e-12)
    assert phi[0, 3, 3 * AMOUNT_OCTAVES].item() == pytest.approx(1.0)  # cos(0)


def test_the_amount_term_enters_the_node_features() -> None:
    torch.manual_seed(0)
    enc = RoostEncoder(FOURIER, impl="reference")
    plain = RoostEncoder(tiny_encoder(width=8), impl="reference")
    assert enc.amount_embedding is not None and plain.amount_embedding is None
    assert not any("amount" in k for k in plain.state_dict())  # the paper's keys, unchanged
    plain.load_state_dict({k: v for k, v in enc.state_dict().items() if "amount" not in k})
    batch = _batch()
    with torch.no_grad():
        assert not torch.allclose(enc(batch), plain(batch))
        enc.amount_embedding.weight.zero_()
        # adding exact zeros changes no float: the same vectors, bit for bit
        assert torch.equal(enc(batch), plain(batch))


@pytest.mark.skipif(roost_kernels() is None, reason="fused Roost kernels unavailable")
def test_fast_path_equals_reference_with_amount_features() -> None:
    torch.manual_seed(1)
    ref = RoostEncoder(FOURIER, impl="reference")
    fast = set_impl(copy.deepcopy(ref), "fast")
    assert fast.uses_fast_path()
    batch = _batch()
    mask = torch.zeros_like(batch.mask)
    mask[:, 0] = True  # the SSL masking: element vectors zeroed, amounts kept
    for input_mask in (None, mask & batch.mask):
        with torch.no_grad():
            exact = set_impl(copy.deepcopy(ref).double(), "reference")
            b64 = copy.copy(batch)
            b64.weights = batch.weights.double()
            out64 = exact(b64, input_mask)
            out_ref, out_fast = ref(batch, input_mask), fast(batch, input_mask)
        # both float32 paths sum the same few-term products in different orders: each within a
        # small multiple of the float32 reference path's own distance from float64
        err_ref = float((out_ref.double() - out64).abs().max())
        err_fast = float((out_fast.double() - out64).abs().max())
        # floor: float32 rounding of a sum of up to 64^2 terms (sqrt(n) eps of the largest value)
        floor = torch.finfo(torch.float32).eps * 64 * float(out64.abs().max())
        assert err_fast <= 4 * err_ref + floor


def test_permuting_the_elements_leaves_the_material_vector_unchanged() -> None:
    torch.manual_seed(2)
    enc = RoostEncoder(FOURIER, impl="reference")
    with torch.no_grad():
        a = enc(_batch(["Li2O1Fe3"]))
        b = enc(_batch(["Fe3O1Li2"]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_pretrained_encoder_with_zero_amount_weights_computes_the_pretrained_function(
    tmp_path,
) -> None:
    comps = parse_formulas(FORMULAS)
    plain = fit(comps, toy_target(FORMULAS), "regression", _config())
    plain.save(tmp_path / "plain")
    widened, report = build_model(
        "regression", 1, _config(init=str(tmp_path / "plain"), amount_encoding="fourier")
    )
    assert report == {"missing": [], "unexpected": []}
    assert widened.encoder.config.amount_encoding == "fourier"
    assert widened.encoder.amount_embedding is not None
    assert torch.count_nonzero(widened.encoder.amount_embedding.weight) == 0
    batch = _batch()
    a, b = set_impl(widened.encoder, "reference"), set_impl(plain.model.encoder, "reference")
    with torch.no_grad():  # adding exact zeros changes no float: the same vectors, bit for bit
        assert torch.equal(a(batch), b(batch))
    # it cannot go the other way
    fourier = fit(comps, toy_target(FORMULAS), "regression", _config(amount_encoding="fourier"))
    fourier.save(tmp_path / "fourier")
    with pytest.raises(ValueError, match="cannot drop it"):
        build_model(
            "regression", 1, _config(init=str(tmp_path / "fourier"), amount_encoding="none")
        )
    # from scratch the option simply sets the encoder's
    fresh, _ = build_model(
        "regression", 1, replace(_config(amount_encoding="none"), encoder=FOURIER)
    )
    assert fresh.encoder.amount_embedding is None
    # None keeps the artefact's own
    kept, _ = build_model("regression", 1, _config(init=str(tmp_path / "fourier")))
    assert kept.encoder.config.amount_encoding == "fourier"


def test_fit_save_load_gives_identical_predictions(tmp_path) -> None:
    comps = parse_formulas(FORMULAS)
    fitted = fit(comps, toy_target(FORMULAS), "regression", _config(amount_encoding="fourier"))
    fitted.save(tmp_path / "m")
    loaded = FittedModel.load(tmp_path / "m")
    assert loaded.model.encoder.config.amount_encoding == "fourier"
    assert "amount encoding: fourier" in (tmp_path / "m" / "README.md").read_text()
    data = CompositionDataset(comps)
    a, b = fitted.predict_dataset(data)["mean"], loaded.predict_dataset(data)["mean"]
    assert np.isfinite(a).all() and np.array_equal(a, b)


def test_unknown_amount_encodings_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: none, fourier"):
        RoostConfig(amount_encoding="sinusoid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: none, fourier"):
        FinetuneConfig(amount_encoding="crabnet")  # type: ignore[arg-type]
    # configs saved before the option existed load as the paper's Roost
    d = RoostConfig().to_dict()
    del d["amount_encoding"]
    assert RoostConfig.from_dict(d).amount_encoding == "none"


def test_fourier_variant_applies_to_scratch_and_pretrained_strategies() -> None:
    assert parse_strategy("scratch+fourier") == ("scratch", (), ("fourier",))
    assert parse_strategy("dft+trunk+fourier")[2] == ("trunk", "fourier")
    config = FINETUNE_VARIANTS["fourier"].apply(FinetuneConfig())
    assert config == replace(FinetuneConfig(), amount_encoding="fourier")
