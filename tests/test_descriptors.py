"""The hybrid trunk input (``descriptors="magpie"``): Magpie attributes beside the material vector."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.fingerprint import magpie_fingerprint
from pretroost.experiment.strategies import FINETUNE_VARIANTS, parse_strategy
from pretroost.finetune import FinetuneConfig, FittedModel, build_model, fit
from pretroost.models.roost import ModelConfig, RoostModel, batch_compositions
from pretroost.train import TrainConfig
from tiny import BINARY_FORMULAS, tiny_encoder, toy_target

TINY = tiny_encoder(width=8)
FORMULAS = [*BINARY_FORMULAS[:30], "Fe2O3", "LiFePO4", "Ba0.5Sr0.5TiO3"]


def _config(**kw) -> FinetuneConfig:
    return FinetuneConfig(
        train=TrainConfig(epochs=2, batch_size=8, seed=0), encoder=TINY, trunk_hidden=(16,),
        out_hidden=(8,), val_fraction=0.2, **kw,
    )  # fmt: skip


def test_batch_compositions_round_trip_the_formulas() -> None:
    comps = parse_formulas(FORMULAS)
    batch = CompositionDataset(comps).batch(np.arange(len(comps)))
    back = batch_compositions(batch)
    assert np.array_equal(back.offsets, comps.offsets) and np.array_equal(back.z, comps.z)
    # the batch stores fractions as float32: each is off by at most half an ulp, 2^-24 relative
    np.testing.assert_allclose(back.frac, comps.frac, rtol=2.0**-24, atol=0)


def test_model_reads_the_standardised_magpie_attributes() -> None:
    comps = parse_formulas(FORMULAS)
    model = RoostModel(ModelConfig(encoder=TINY, descriptors="magpie"))
    model.fit_descriptor_scaler(comps)
    batch = CompositionDataset(comps).batch(np.arange(len(comps)))
    d = model.descriptors(batch).double().numpy()
    ref = magpie_fingerprint(batch_compositions(batch))
    std = ref.std(axis=0)
    varying = std > 1e-8
    # mean and std come from the exact fractions, the batch's values from float32 ones; both are
    # then rounded to float32 (relative 2^-24 of values up to |z| ~ sqrt(n))
    expect = (ref - magpie_fingerprint(comps).mean(axis=0)) / np.where(varying, std, 1.0)
    np.testing.assert_allclose(d[:, varying], expect[:, varying], rtol=0, atol=1e-5)
    np.testing.assert_allclose(d[:, varying].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(d[:, varying].std(axis=0), 1.0, atol=1e-5)
    assert model(batch).shape == (len(comps), 2)


def test_model_reads_the_element_fractions_of_the_batch() -> None:
    """``descriptors="fractions"``: column Z - 1 is element Z's amount, standardised on the
    training rows; an element absent from them stays at its (zero) mean."""
    comps = parse_formulas(FORMULAS)
    model = RoostModel(ModelConfig(encoder=TINY, descriptors="fractions"))
    model.fit_descriptor_scaler(comps)
    batch = CompositionDataset(comps).batch(np.arange(len(comps)))
    d = model.descriptors(batch).double().numpy()
    dense = comps.dense()
    assert d.shape == (len(comps), 103)
    for i in range(len(comps)):
        z, f = comps[i]
        np.testing.assert_allclose(dense[i, z - 1], f)
    std = dense.std(axis=0)
    present = std > 1e-8
    expect = (dense - dense.mean(axis=0)) / np.where(present, std, 1.0)
    # the batch's fractions are float32 (relative 2^-24), scaled by 1/std of up to ~ sqrt(n)
    np.testing.assert_allclose(d[:, present], expect[:, present], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(d[:, ~present], 0.0)
    assert model(batch).shape == (len(comps), 2)


def test_descriptors_outside_the_training_range_are_clipped_to_it() -> None:
    # a training set of oxides and one composition unlike any of them (expt_gap's Fe9Co7 gave
    # -3895 eV through an unclipped descriptor constant in its training rows)
    train = parse_formulas(BINARY_FORMULAS[:30])
    model = RoostModel(ModelConfig(encoder=TINY, descriptors="magpie"))
    model.fit_descriptor_scaler(train)
    seen = model.descriptors(CompositionDataset(train).batch(np.arange(len(train))))
    odd = model.descriptors(CompositionDataset(parse_formulas(["Fe9Co7", "U3Pu"])).batch([0, 1]))
    lo, hi = seen.min(dim=0).values, seen.max(dim=0).values
    # equal to the training extremes up to float32 rounding of values of order sqrt(n) ~ 5
    assert bool(((odd >= lo - 1e-5) & (odd <= hi + 1e-5)).all())
    raw = magpie_fingerprint(parse_formulas(["Fe9Co7", "U3Pu"]))
    assert (raw > model.descriptor_hi.double().numpy()).any()  # there was something to clip


def test_widened_pretrained_trunk_computes_the_pretrained_function(tmp_path) -> None:
    comps = parse_formulas(FORMULAS)
    y = toy_target(FORMULAS)
    plain = fit(comps, y, "regression", _config())
    plain.save(tmp_path / "plain")
    hybrid, report = build_model(
        "regression",
        1,
        _config(init=str(tmp_path / "plain"), init_trunk=True, descriptors="magpie"),
    )
    assert report == {"missing": [], "unexpected": []}
    hybrid.fit_descriptor_scaler(comps)
    batch = CompositionDataset(comps).batch(np.arange(len(comps)))
    with torch.no_grad():
        x = plain.model.encoder(batch)
        hx = torch.cat([hybrid.encoder(batch), hybrid.descriptors(batch)], dim=1)
        # the descriptor columns are zeros: the same sums, in the same order, as without them
        torch.testing.assert_close(hybrid.trunk(hx), plain.model.trunk(x), rtol=1e-6, atol=1e-6)


def test_fit_save_load_gives_identical_predictions(tmp_path) -> None:
    comps = parse_formulas(FORMULAS)
    fitted = fit(comps, toy_target(FORMULAS), "regression", _config(descriptors="magpie"))
    assert fitted.model.descriptor_std.ne(1).any()  # the scaler was fitted on the training rows
    fitted.save(tmp_path / "m")
    loaded = FittedModel.load(tmp_path / "m")
    assert loaded.model.config.descriptors == "magpie"
    assert "magpie descriptors" in (tmp_path / "m" / "README.md").read_text()
    data = CompositionDataset(comps)
    a, b = fitted.predict_dataset(data)["mean"], loaded.predict_dataset(data)["mean"]
    assert np.isfinite(a).all() and np.array_equal(a, b)


def test_unknown_descriptors_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: none, magpie"):
        FinetuneConfig(descriptors="matminer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: none, magpie"):
        ModelConfig(descriptors="oqmd")  # type: ignore[arg-type]


def test_magpie_variant_applies_to_scratch_and_pretrained_strategies() -> None:
    assert parse_strategy("scratch+magpie") == ("scratch", (), ("magpie",))
    assert parse_strategy("dft+trunk+magpie+valthreshold")[2] == ("trunk", "magpie", "valthreshold")
    config = FINETUNE_VARIANTS["magpie"].apply(FinetuneConfig())
    assert config == replace(FinetuneConfig(), descriptors="magpie")


def test_model_reads_the_pbe_teachers_gap(monkeypatch, tmp_path) -> None:
    """``descriptors="pbe"``: one column, the teacher's gap (a stand-in here: the mean atomic
    number / 10), standardised on the training rows; fit -> save -> load predicts alike."""
    from pretroost.data import pbe_gap

    class Teacher:
        def predict(self, x: np.ndarray) -> np.ndarray:
            return x[:, :103] @ np.arange(1, 104) / 10.0

    monkeypatch.setattr(pbe_gap, "_teacher", lambda: Teacher())
    comps = parse_formulas(FORMULAS)
    model = RoostModel(ModelConfig(encoder=TINY, descriptors="pbe"))
    model.fit_descriptor_scaler(comps)
    batch = CompositionDataset(comps).batch(np.arange(len(comps)))
    d = model.descriptors(batch).double().numpy()
    gap = comps.dense() @ np.arange(1, 104) / 10.0
    assert d.shape == (len(comps), 1)
    # float32 fractions in the batch (relative 2^-24) times Z / 10 <= 10.3, over a std of order 1
    np.testing.assert_allclose(d[:, 0], (gap - gap.mean()) / gap.std(), rtol=0, atol=1e-5)
    fitted = fit(comps, toy_target(FORMULAS), "regression", _config(descriptors="pbe"))
    fitted.save(tmp_path / "m")
    data = CompositionDataset(comps)
    a = fitted.predict_dataset(data)["mean"]
    assert np.array_equal(a, FittedModel.load(tmp_path / "m").predict_dataset(data)["mean"])
    assert parse_strategy("dft+trunk+pbe") == ("dft", (), ("trunk", "pbe"))
