"""Finetuning options that change which parameters train: frozen encoder and frozen warm-up."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pretroost.data.composition import parse_formulas
from pretroost.finetune import FinetuneConfig, fit
from pretroost.train import TrainConfig
from tiny import tiny_encoder

FORMULAS = ["Fe2O3", "NaCl", "SiO2", "Al2O3", "MgO", "TiO2", "CaF2", "ZnS", "GaAs", "CuO"] * 3
TINY = tiny_encoder(width=8)


def _fit(**train) -> tuple[dict, dict]:
    comps = parse_formulas(FORMULAS)
    y = np.linspace(0.0, 1.0, len(FORMULAS))
    config = FinetuneConfig(
        train=TrainConfig(batch_size=8, seed=0, **train),
        encoder=TINY, trunk_hidden=(16,), out_hidden=(8,), val_fraction=0.0,  # keep the last epoch
    )  # fmt: skip
    torch.manual_seed(0)
    init = fit(comps, y, "regression", replace(config, train=TrainConfig(epochs=0)))
    torch.manual_seed(0)
    done = fit(comps, y, "regression", config)
    return init.model.state_dict(), done.model.state_dict()


def _changed(a: dict, b: dict, prefix: str) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


@pytest.mark.parametrize(("train", "encoder_moves"), [
    ({"epochs": 2}, True),
    ({"epochs": 2, "encoder_lr_scale": 0.0}, False),
    ({"epochs": 2, "freeze_encoder_epochs": 2}, False),
    ({"epochs": 3, "freeze_encoder_epochs": 2}, True),
])  # fmt: skip
def test_encoder_frozen_exactly_when_asked(train: dict, encoder_moves: bool) -> None:
    before, after = _fit(**train)
    assert _changed(before, after, "encoder.") is encoder_moves
    assert _changed(before, after, "head.") or _changed(before, after, "out.")


def test_freeze_epochs_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match="freeze_encoder_epochs"):
        TrainConfig(freeze_encoder_epochs=-1)


def test_validation_rows_depend_only_on_rows_fraction_and_seed() -> None:
    # every strategy of one (task, fold, seed) must be selected on the same validation rows with
    # the same target normaliser, whatever else its recipe changes (what --select relies on)
    from pretroost.finetune import Normaliser, validation_split

    comps = parse_formulas(FORMULAS)
    y = np.linspace(0.0, 1.0, len(FORMULAS)) ** 2
    val, train = validation_split(len(FORMULAS), 0.2, seed=3)
    assert len(val) == 6 and np.array_equal(np.sort(np.r_[val, train]), np.arange(len(FORMULAS)))
    fitted = []
    for train_cfg in (TrainConfig(epochs=1, seed=3), TrainConfig(epochs=2, lr=1e-2, seed=3,
                                                                 encoder_lr_scale=0.0)):  # fmt: skip
        config = FinetuneConfig(train=train_cfg, encoder=TINY, trunk_hidden=(16,), out_hidden=(8,),
                                val_fraction=0.2)  # fmt: skip
        fitted.append(fit(comps, y, "regression", config))
    assert fitted[0].normaliser == fitted[1].normaliser == Normaliser.fit(y[train])
    assert fitted[0].info["n_val"] == fitted[1].info["n_val"] == 6
    assert fitted[0].info["val_metric"] == "normalised_mae"
    assert not np.array_equal(validation_split(30, 0.2, seed=4)[0], val)
