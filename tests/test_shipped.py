"""Shipped encoders: each loads by name, offline, and embeds the reference formulas as recorded
when it was made; `pretroost ship` makes one that finetuning can start from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pretroost.pretrained import REFERENCE_FORMULAS, resolve, shipped
from pretroost.shipping import ship

#: float32 unit roundoff
EPS32 = float(np.finfo(np.float32).eps)


def _bound(config: dict) -> float:
    """Tolerance (relative to the largest |embedding| value) for recomputing a recorded embedding
    on another CPU: fp32 sums in another order differ by about eps·sqrt(n) per reduction of n
    terms (random-walk rounding); a Roost forward chains about 4 reductions per message layer and
    pooling (input projection, gate/message MLPs, softmax sum, weighted sum) of at most
    max(width, 2·hidden) terms; we allow 16x that for error growth through the nonlinearities."""
    enc = config["encoder"]
    widest = max(enc["elem_fea_len"], 200, *enc["elem_gate"], *enc["elem_msg"], *enc["cry_msg"])
    reductions = 4 * (enc["n_graph"] + 1)
    return 16 * reductions * EPS32 * np.sqrt(widest)


@pytest.mark.parametrize("name", sorted(shipped("pretrained")) or ["<none shipped>"])
def test_shipped_encoder_reproduces_its_reference_embeddings(name) -> None:
    if name not in shipped("pretrained"):
        pytest.skip("no encoder shipped in this checkout")
    import pretroost

    folder = shipped()[name]
    ref = json.loads((folder / "reference.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert (folder / "model.safetensors").stat().st_size <= 8 * 2**20
    assert ref["formulas"] == list(REFERENCE_FORMULAS)
    torch.set_num_threads(1)
    got = pretroost.load(name).embed(ref["formulas"], errors="raise")
    want = np.array(ref["embedding"])
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= _bound(config) * scale
    assert "pretroost ship" in (folder / "README.md").read_text()


def test_ship_makes_an_encoder_that_loads_by_name_and_initialises_finetuning(
    tmp_path, monkeypatch
) -> None:
    from tests.tiny import BINARY_FORMULAS, TINY_ENCODER, toy_target

    from pretroost import pretrained
    from pretroost.data.composition import parse_formulas
    from pretroost.data.corpus import Corpus
    from pretroost.finetune import FinetuneConfig, fit
    from pretroost.objectives import FingerprintConfig
    from pretroost.pretrain import PretrainConfig, pretrain
    from pretroost.train import TrainConfig

    torch.set_num_threads(1)
    corpus = Corpus(parse_formulas(BINARY_FORMULAS), list(BINARY_FORMULAS), {"size": 80})
    config = PretrainConfig(
        objective="fingerprint", encoder=TINY_ENCODER, train=TrainConfig(epochs=1, batch_size=16),
        fingerprint=FingerprintConfig(trunk_hidden=(16,), trunk_out=16),
    )  # fmt: skip
    run = pretrain(corpus, config, tmp_path / "run", progress=False)
    root = tmp_path / "pkg"
    out = ship(run, "tiny-fp", dtype="bf16", command="pretroost ship run --name tiny-fp", root=root)
    with pytest.raises(FileExistsError):
        ship(run, "tiny-fp", root=root)
    monkeypatch.setattr(pretrained, "ROOT", root)
    assert shipped() == {"tiny-fp": out} and resolve("tiny-fp") == out
    assert resolve(tmp_path / "run") == tmp_path / "run"  # a real folder wins over a name
    # stored in bf16: the embeddings equal those of the fp32 run within bf16 rounding of weights
    import pretroost

    a = pretroost.load("tiny-fp").embed(["NaCl", "Fe2O3"], errors="raise")
    b = pretroost.load(run).embed(["NaCl", "Fe2O3"], errors="raise")
    assert np.abs(a - b).max() <= 0.05 * np.abs(b).max()  # bf16 keeps 8 bits: ~0.4 % per weight
    comps = parse_formulas(BINARY_FORMULAS[:40])
    fitted = fit(comps, toy_target(BINARY_FORMULAS[:40]), "regression",
                 FinetuneConfig(init="tiny-fp", train=TrainConfig(epochs=1, batch_size=16),
                                trunk_hidden=(16,), out_hidden=(8,)), progress=False)  # fmt: skip
    assert fitted.info["init"] == "tiny-fp"
    with pytest.raises(ValueError, match="tiny-fp"):  # the error lists the shipped names
        pretroost.load("no-such-encoder")


def test_demo_compares_scratch_and_a_pretrained_start(tmp_path, data_cache, monkeypatch) -> None:
    """`pretroost demo` (make demo) runs both starts on the same fold and prints both scores."""
    from tests.tiny import BINARY_FORMULAS, TINY_ENCODER

    from pretroost import pretrained
    from pretroost.cli import main
    from pretroost.data.composition import parse_formulas
    from pretroost.data.corpus import Corpus
    from pretroost.objectives import FingerprintConfig
    from pretroost.pretrain import PretrainConfig, pretrain
    from pretroost.train import TrainConfig

    torch.set_num_threads(1)
    corpus = Corpus(parse_formulas(BINARY_FORMULAS), list(BINARY_FORMULAS), {"size": 80})
    config = PretrainConfig(
        objective="fingerprint", encoder=TINY_ENCODER, train=TrainConfig(epochs=1, batch_size=16),
        fingerprint=FingerprintConfig(trunk_hidden=(1024, 512), trunk_out=256),
    )  # fmt: skip
    run = pretrain(corpus, config, tmp_path / "run", progress=False)
    ship(run, "tiny-fp", root=tmp_path / "pkg")
    monkeypatch.setattr(pretrained, "ROOT", tmp_path / "pkg")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["-q", "demo", "--epochs", "1", "--results-dir", str(tmp_path / "demo")])
    assert code == 0
    text = buf.getvalue()
    assert "scratch" in text and "tiny-fp (+trunk)" in text and text.count("MAE") == 2
