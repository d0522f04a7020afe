"""Pretraining settings resolved per machine (learning-rate rule, native-bf16 autocast), and a DFT
pretraining interrupted after two of three epochs resuming to the uninterrupted run's weights."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pretroost import pretrain as pretrain_module
from pretroost import train as train_module
from pretroost.data.corpus import build_corpus
from pretroost.objectives import DFTConfig
from pretroost.pretrain import PretrainConfig, pretrain, resolved_train
from pretroost.train import TrainConfig, load_checkpoint
from test_dft import write_oqmd
from tiny import tiny_encoder


def test_lr_scaling_follows_the_batch_size() -> None:
    base = TrainConfig(epochs=1, batch_size=1024, lr=3e-4)
    lrs = {
        rule: resolved_train(PretrainConfig(objective="dft", train=base, lr_scaling=rule))[0].lr
        for rule in ("none", "sqrt", "linear")
    }
    assert lrs == pytest.approx({"none": 3e-4, "sqrt": 6e-4, "linear": 1.2e-3})
    half = PretrainConfig(objective="dft", train=base, lr_scaling="linear", lr_reference_batch=512)
    assert resolved_train(half)[0].lr == pytest.approx(6e-4)
    with pytest.raises(ValueError, match="valid: none, sqrt, linear"):
        PretrainConfig(lr_scaling="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: off, native_bf16"):
        PretrainConfig(autocast="bf16")  # type: ignore[arg-type]


def test_native_bf16_autocast_is_detected_not_assumed(monkeypatch) -> None:
    config = PretrainConfig(objective="dft", autocast="native_bf16")
    monkeypatch.setattr(pretrain_module, "native_bf16", lambda d: (False, "no avx512_bf16"))
    tc, note = resolved_train(config)
    assert tc.precision == "fp32" and note["bf16_reason"] == "no avx512_bf16"
    monkeypatch.setattr(pretrain_module, "native_bf16", lambda d: (True, "avx512_bf16"))
    tc, note = resolved_train(config)
    assert tc.precision == "bf16" and note["bf16_native"] is True
    assert resolved_train(PretrainConfig(objective="dft"))[0].precision == "fp32"  # default off


def _config(oqmd: Path) -> PretrainConfig:
    return PretrainConfig(
        objective="dft",
        encoder=tiny_encoder(width=8, hidden=8),
        train=TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=0),
        dft=DFTConfig(oqmd_dir=str(oqmd), trunk_hidden=(16,), trunk_out=8),
    )


def test_dft_pretraining_interrupted_after_two_epochs_resumes_to_the_same_weights(
    tmp_path, monkeypatch
) -> None:
    """Epochs 1-2, killed right after the second checkpoint is on disk (before anything is
    released), then ``resume=True`` runs epoch 3: weights, history and the best epoch equal
    those of three uninterrupted epochs, bit for bit (CPU, one thread)."""
    oqmd = write_oqmd(tmp_path)
    corpus = build_corpus(cache=tmp_path, include_matbench=True)
    config = _config(oqmd)
    torch.set_num_threads(1)
    ckpt = tmp_path / "run.ckpt"
    written = []
    real = train_module.atomic_path

    @contextlib.contextmanager
    def dies_after_two(path):
        with real(path) as tmp:
            yield tmp
        written.append(path)
        if len(written) == 2:
            raise KeyboardInterrupt("killed after epoch 2")

    monkeypatch.setattr(train_module, "atomic_path", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        pretrain(corpus, config, tmp_path / "run", checkpoint=ckpt, progress=False)
    monkeypatch.setattr(train_module, "atomic_path", real)
    assert load_checkpoint(ckpt)["epoch"] == 1 and not (tmp_path / "run").exists()
    stale = tmp_path / ".run.ckpt.k1ll3d.tmp"  # a checkpoint write cut short by a kill
    stale.write_bytes(b"half")
    other = tmp_path / ".run.ckpt.notes"
    other.write_text("not ours")
    pretrain(corpus, config, tmp_path / "run", checkpoint=ckpt, resume=True, progress=False)
    assert not stale.exists() and other.read_text() == "not ours"
    pretrain(corpus, config, tmp_path / "ref", progress=False)
    wa = load_file(tmp_path / "run" / "model.safetensors")
    wb = load_file(tmp_path / "ref" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ha, hb = (json.loads((tmp_path / d / "config.json").read_text()) for d in ("run", "ref"))
    assert len(ha["history"]) == 3
    strip = ("epoch_seconds",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in ha["history"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in hb["history"]
    ]
    assert ha["best_epoch"] == hb["best_epoch"]


def test_cli_passes_the_pretraining_options(tmp_path, monkeypatch) -> None:
    from pretroost.cli import main
    from pretroost.data.composition import parse_formulas
    from pretroost.data.corpus import Corpus
    from pretroost.data.dft_labels import LABEL_SETS

    forms = ["NaCl", "KBr"]
    Corpus(parse_formulas(forms), forms).save(tmp_path / "c.npz")
    seen = {}

    def fake(corpus, config, out, **kw):
        seen["config"] = config
        return Path(out)

    monkeypatch.setattr(pretrain_module, "pretrain", fake)
    args = ["pretrain", "--objective", "dft", "--corpus", str(tmp_path / "c.npz"),
            "--out", str(tmp_path / "out"), "--dft-labels", "all", "--autocast", "native_bf16",
            "--lr-scaling", "sqrt", "--batch-size", "1024"]  # fmt: skip
    assert main(args) == 0
    config = seen["config"]
    assert config.dft.properties == LABEL_SETS["all"]
    assert (config.autocast, config.lr_scaling, config.train.batch_size) == (
        "native_bf16",
        "sqrt",
        1024,
    )
