"""pretroost.configs: every config dataclass in one light module (no numpy, torch or
scikit-learn), re-exported where it used to live."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from pretroost import configs


def test_importing_the_configs_loads_nothing_heavy() -> None:
    code = (
        "import sys\nimport pretroost.configs\n"
        "print(sorted(m for m in ('numpy', 'torch', 'sklearn', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_old_import_paths_give_the_same_classes() -> None:
    from pretroost import finetune, objectives, pretrain, select_model, train, trees
    from pretroost.data import corpus, dft_labels, elements
    from pretroost.models import roost
    from pretroost.objectives import dft, fingerprint, ssl, structure

    assert roost.RoostConfig is configs.RoostConfig and roost.ModelConfig is configs.ModelConfig
    assert train.TrainConfig is configs.TrainConfig
    assert finetune.FinetuneConfig is configs.FinetuneConfig
    assert pretrain.PretrainConfig is configs.PretrainConfig
    assert ssl.SSLConfig is objectives.SSLConfig is configs.SSLConfig
    assert fingerprint.FingerprintConfig is configs.FingerprintConfig
    assert structure.StructureConfig is configs.StructureConfig
    assert dft.DFTConfig is configs.DFTConfig
    assert objectives.parse_objective is configs.parse_objective
    assert elements.ELEMENT_FEATURES is configs.ELEMENT_FEATURES
    assert corpus.ALL_DFT_PROPERTIES is configs.ALL_DFT_PROPERTIES
    assert dft_labels.OQMD_PROPERTIES is configs.OQMD_PROPERTIES
    assert trees.TreesConfig is configs.TreesConfig
    assert trees.THRESHOLD_RULES == ("fixed", "validation") == configs.TREE_THRESHOLD_RULES
    assert select_model.FitConfig is configs.FitConfig
    assert select_model.CANDIDATES is configs.CANDIDATES


def test_every_objective_has_its_name_and_config_here() -> None:
    from pretroost.objectives import OBJECTIVES

    assert tuple(OBJECTIVES) == configs.OBJECTIVE_NAMES
    fields = {f.name: f.type for f in dataclasses.fields(configs.PretrainConfig)}
    for name, cls in OBJECTIVES.items():
        assert cls.name == name and fields[name] == cls.Config.__name__


@pytest.mark.parametrize(
    ("make", "valid"),
    [
        (lambda: configs.TrainConfig(schedule="linear"), "constant, cosine"),
        (lambda: configs.RoostConfig(elem_embedding="x"), "matscholar200, megnet16"),
        (lambda: configs.ModelConfig(descriptors="x"), "none, magpie, fractions, pbe"),
        (lambda: configs.FinetuneConfig(amount_encoding="x"), "none, fourier \\(or None"),
        (lambda: configs.PretrainConfig(objective="ssl+x"), "ssl, fingerprint, structure, dft"),
        (lambda: configs.PretrainConfig(autocast="on"), "off, native_bf16"),
        (lambda: configs.TreesConfig(models=("xgboost",)), "extratrees, randomforest"),
        (lambda: configs.FitConfig(candidates=("roost",)), "trees, trees\\+pbe, dft\\+trunk"),
    ],
)  # fmt: skip
def test_unknown_choices_name_the_valid_ones(make, valid) -> None:
    with pytest.raises(ValueError, match=f"valid: {valid}"):
        make()


def test_dicts_round_trip() -> None:
    model = configs.ModelConfig(encoder=configs.RoostConfig(elem_gate=(8,)), out_hidden=(4,))
    assert configs.ModelConfig.from_dict(model.to_dict()) == model
    assert configs.FinetuneConfig().to_dict()["train"] == configs.FinetuneConfig().train.to_dict()
