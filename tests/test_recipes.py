"""The finetuning recipes (pretroost.recipes): converged is every default, quick is asked for."""

from __future__ import annotations

import numpy as np
import pytest

from pretroost.cli import build_parser
from pretroost.cli.common import _finetune_config
from pretroost.data.composition import parse_formulas
from pretroost.experiment.presets import PRESETS
from pretroost.finetune import FinetuneConfig, fit
from pretroost.recipes import RECIPES, get_recipe
from pretroost.sklearn import RoostClassifier, RoostRegressor
from pretroost.train import TrainConfig
from tiny import BINARY_FORMULAS, TINY_ENCODER, toy_target

CONVERGED = TrainConfig(epochs=300, batch_size=128, lr=3e-4, schedule="constant")


def test_the_defaults_are_the_converged_recipe() -> None:
    assert FinetuneConfig().train == CONVERGED and FinetuneConfig().small_batch_size == 32
    assert FinetuneConfig.from_recipe("converged") == FinetuneConfig()
    quick = FinetuneConfig.from_recipe("quick").train
    assert (quick.epochs, quick.schedule) == (30, "cosine")
    # the converged bench preset trains with the same recipe as before it was named
    assert PRESETS["converged"].finetune == CONVERGED
    assert PRESETS["converged"].finetune_for(999).batch_size == 32
    assert PRESETS["converged"].finetune_for(1000).batch_size == 128
    with pytest.raises(ValueError, match="valid: converged, quick"):
        get_recipe("slow")


def test_small_training_sets_get_small_batches() -> None:
    config = FinetuneConfig()
    assert config.batch_size_for(999) == 32 and config.batch_size_for(1000) == 128
    assert FinetuneConfig(small_batch_size=None).batch_size_for(10) == 128
    tiny = FinetuneConfig(
        train=TrainConfig(epochs=1), encoder=TINY_ENCODER, trunk_hidden=(8,), out_hidden=(8,)
    )
    formulas = BINARY_FORMULAS[:40]
    fitted = fit(parse_formulas(formulas), toy_target(formulas)[:, None], "regression", tiny)
    assert fitted.info["batch_size"] == 32 and fitted.info["n_train"] == 36


def _config(*argv: str) -> FinetuneConfig:
    args = build_parser("finetune").parse_args(["finetune", "--data", "x.csv", *argv])
    return _finetune_config(args)


def test_command_line_recipes() -> None:
    assert _config() == FinetuneConfig()
    quick = _config("--recipe", "quick")
    assert quick == FinetuneConfig.from_recipe("quick")
    longer = _config("--recipe", "quick", "--epochs", "50").train
    assert (longer.epochs, longer.schedule) == (50, "cosine")
    by_hand = _config("--batch-size", "64")
    assert by_hand.train.batch_size == 64 and by_hand.small_batch_size is None
    assert set(RECIPES) == {"converged", "quick"}


@pytest.mark.parametrize("cls", [RoostRegressor, RoostClassifier])
def test_estimators_default_to_the_converged_recipe(cls) -> None:
    config = cls()._finetune_config()
    assert config.train == CONVERGED and config.small_batch_size == 32
    by_hand = cls(batch_size=64, epochs=5)._finetune_config()
    assert by_hand.train.batch_size == 64 and by_hand.small_batch_size is None
    assert by_hand.train.epochs == 5 and np.isclose(by_hand.train.lr, 3e-4)
