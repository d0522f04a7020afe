"""Data parallelism: two CPU processes (gloo on 127.0.0.1, launched as torchrun would: RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT) must do the math of one process holding the global batch.

One pair of worker processes (this file run as a script) runs every scenario, so the test pays the
process start-up once; the single-process references run in the test process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Element

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.corpus import Corpus
from pretroost.finetune import SupervisedTask
from pretroost.models.roost import ModelConfig, RoostEncoder, RoostModel
from pretroost.objectives import CombinedObjective, FingerprintConfig, SSLConfig
from pretroost.train import TrainConfig, _sharded_step, train
from tiny import TINY_ENCODER

TINY = TINY_ENCODER
TINY_FLAGS = [
    "--elem-fea-len", "16", "--n-graph", "1", "--heads", "1", "--hidden", "16",
    "--trunk-hidden", "16", "--threads", "1",
]  # fmt: skip
# light elements with feature vectors: Z 1-34 without the noble gases and Sc (30 symbols)
ELEMENTS = [
    e.symbol for e in map(Element.from_Z, range(1, 35)) if not e.is_noble_gas and e.symbol != "Sc"
]
WORLD = 2


def _formulas(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        els = rng.choice(ELEMENTS, int(rng.integers(1, 6)), replace=False)
        out.add("".join(f"{e}{int(rng.integers(1, 6))}" for e in els))
    return sorted(out)


def _first_element_mask(mask, fraction, generator=None):
    """A deterministic stand-in for the random SSL masking: the first real element of each row.
    (Random views depend on each rank's random stream; the math must not.)"""
    return mask & (mask.long().cumsum(dim=1) == 1)


def _deterministic_views(monkeypatch=None) -> None:
    import pretroost.objectives.ssl as ssl

    if monkeypatch is not None:
        monkeypatch.setattr(ssl, "mask_elements", _first_element_mask)
    else:
        ssl.mask_elements = _first_element_mask


def _objective(names: list[str]) -> CombinedObjective:
    torch.manual_seed(0)
    return CombinedObjective(
        RoostEncoder(TINY), names,
        configs={
            "ssl": SSLConfig(trunk_hidden=(16,), trunk_out=16, proj_dim=24),
            "fingerprint": FingerprintConfig(trunk_hidden=(16,), trunk_out=16),
        },
        target_dims={"fingerprint": 6},
    )  # fmt: skip


def _data(n: int = 96) -> tuple[CompositionDataset, CompositionDataset]:
    comps = parse_formulas(_formulas(n + 12))
    rng = np.random.default_rng(1)
    targets = {
        "fingerprint": rng.normal(size=(len(comps), 6)).astype(np.float32),
        "y": rng.normal(size=(len(comps), 1)).astype(np.float32),
    }
    tr, va = np.arange(n), np.arange(n, n + 12)
    return (
        CompositionDataset(comps.subset(tr), {k: v[tr] for k, v in targets.items()}),
        CompositionDataset(comps.subset(va), {k: v[va] for k, v in targets.items()}),
    )


def _scenarios():
    """(name, module factory, train config): SSL alone with an even split, SSL + a row-mean
    regression loss and a supervised robust-L1 model with uneven splits (odd global batches)."""
    supervised = lambda: SupervisedTask(  # noqa: E731
        _seeded(
            lambda: RoostModel(ModelConfig(encoder=TINY, trunk_hidden=(16,), out_hidden=(16, 8)))
        ),
        "robust",
    )
    return [
        ("ssl", lambda: _objective(["ssl"]), TrainConfig(epochs=2, batch_size=32, lr=3e-3)),
        (
            "ssl+fingerprint",
            lambda: _objective(["ssl", "fingerprint"]),
            TrainConfig(epochs=2, batch_size=31, lr=3e-3, grad_clip=1.0),
        ),
        ("supervised", supervised, TrainConfig(epochs=2, batch_size=27, lr=3e-3, patience=5)),
    ]


def _seeded(factory):
    torch.manual_seed(0)
    return factory()


def _first_step(module, data: CompositionDataset, idx: np.ndarray, ctx=None):
    """Loss and gradients of one global batch, single-process or sharded."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params)
    if ctx is None:
        loss = module(data.batch(idx))["loss"]
        opt.zero_grad()
        loss.backward()
        value = float(loss.detach())
    else:
        value = _sharded_step(module, data, idx, params, opt, ctx)
    return value, {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _run_all(ctx=None) -> dict:
    """First-step loss and gradients, then a short training run, per scenario: the loss history
    and what the trained encoder computes on the data (for SSL: Adam turns the float noise of
    directions the loss cannot see, such as a bias before Barlow Twins' batch normalisation or a
    softmax-shift of attention gates, into full-size steps, so raw weights differ there without
    changing the model) and, for the supervised model, the weights themselves."""
    train_data, val_data = _data()
    out: dict = {}
    for name, factory, config in _scenarios():
        module = factory()
        idx = np.arange(config.batch_size)
        loss, grads = _first_step(module, train_data, idx, ctx)
        out[f"{name}/first_loss"] = torch.tensor(loss)
        out.update({f"{name}/grad/{k}": v for k, v in grads.items()})
        module = factory()
        result = train(module, train_data, config, val_data=val_data, progress=False)
        encoder = module.model.encoder if isinstance(module, SupervisedTask) else module.encoder
        with torch.no_grad():
            out[f"{name}/embedding"] = encoder(train_data.batch(np.arange(len(train_data))))
        if name == "supervised":
            out.update({f"{name}/final/{k}": v.clone() for k, v in module.state_dict().items()})
        out[f"{name}/train_loss"] = torch.tensor([r["train_loss"] for r in result.history])
        out[f"{name}/val_score"] = torch.tensor([r["val_score"] for r in result.history])
    return out


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    forms = _formulas(120, seed=3)
    corpus_file = Corpus(parse_formulas(forms), forms, {"sources": ["test"], "hash": "t"}).save(
        folder / "corpus.npz"
    )
    y = np.random.default_rng(0).normal(size=len(forms))
    csv = folder / "data.csv"
    csv.write_text(
        "formula,target\n" + "".join(f"{f},{v}\n" for f, v in zip(forms, y, strict=True))
    )
    return corpus_file, csv


FINETUNE_ARGS = ["--epochs", "2", "--batch-size", "24", "--out-hidden", "16,8", *TINY_FLAGS]


def _worker(folder: Path) -> None:
    """One rank: every scenario, then a pretraining run and a `finetune --data` CLI run."""
    from pretroost import distributed
    from pretroost.cli import main
    from pretroost.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(1)
    _deterministic_views()
    ctx = distributed.init_from_env()
    assert ctx.world_size == WORLD
    if not ctx.is_main:  # any write from another rank fails the run
        import pretroost.finetune
        import pretroost.pretrain
        import pretroost.train
        import pretroost.utils

        def refuse(*args, **kwargs):
            raise AssertionError(f"rank {ctx.rank} tried to write {args[:1]}")

        for mod, name in [(pretroost.pretrain, "save_artefact"), (pretroost.finetune, "save_artefact"),
                          (pretroost.train, "atomic_path"), (pretroost.utils, "atomic_write_json")]:  # fmt: skip
            setattr(mod, name, refuse)
    results = _run_all(ctx)
    if ctx.is_main:
        torch.save(results, folder / "dist.pt")
    corpus = Corpus.load(folder / "corpus.npz")
    config = PretrainConfig(
        encoder=TINY, train=TrainConfig(epochs=1, batch_size=32),
        ssl=SSLConfig(trunk_hidden=(16,), trunk_out=16, proj_dim=24),
    )  # fmt: skip
    pretrain(corpus, config, folder / "pretrained", checkpoint=folder / "pretrained.ckpt")
    code = main(["-q", "finetune", "--data", str(folder / "data.csv"), "--out",
                 str(folder / "finetuned"), *FINETUNE_ARGS])  # fmt: skip
    (folder / f"rank{ctx.rank}.json").write_text(json.dumps({"code": code}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dist")
    _write_inputs(folder)
    env = {
        **os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": str(WORLD), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(folder)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(WORLD)
    ]
    logs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        logs.append(out)
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed:\n{logs[r][-3000:]}"
    return folder


def test_two_processes_match_one_process_with_the_global_batch(two_ranks, monkeypatch) -> None:
    _deterministic_views(monkeypatch)
    dist_out = torch.load(two_ranks / "dist.pt", weights_only=True)
    ref = _run_all()
    assert set(dist_out) == set(ref)
    grad_scale = {
        name: max(float(v.abs().max()) for k, v in ref.items() if k.startswith(f"{name}/grad/"))
        for name, _, _ in _scenarios()
    }
    for key, value in ref.items():
        assert torch.isfinite(value).all(), key
        # shards are padded differently from the global batch and their gradients are summed in
        # another order: equal up to float rounding, judged against the scale of the quantity
        # (all of a step's gradients: some, e.g. of a bias before a batch norm, are 0 but for noise)
        name, kind = key.split("/")[:2]
        scale = grad_scale[name] if kind == "grad" else float(value.abs().max())
        # after training steps the rounding has compounded: looser for what the encoder computes
        tol = 5e-4 if kind == "embedding" else 1e-4
        torch.testing.assert_close(dist_out[key], value, rtol=tol, atol=tol * scale + 1e-7)


def test_rank_zero_alone_writes_and_finetune_matches_one_process(two_ranks, tmp_path) -> None:
    from safetensors.torch import load_file

    from pretroost.cli import main

    assert json.loads((two_ranks / "rank0.json").read_text())["code"] == 0
    assert json.loads((two_ranks / "rank1.json").read_text())["code"] == 0
    assert (two_ranks / "pretrained" / "model.safetensors").is_file()
    assert (two_ranks / "pretrained.ckpt").is_file()
    assert sorted(p.name for p in two_ranks.iterdir() if p.name.startswith(".")) == []
    # finetuning has no random augmentation: 2 ranks == 1 process, weights and metrics
    out = tmp_path / "single"
    assert main(["-q", "finetune", "--data", str(two_ranks / "data.csv"), "--out", str(out),
                 *FINETUNE_ARGS]) == 0  # fmt: skip
    a, b = (
        load_file(out / "model.safetensors"),
        load_file(two_ranks / "finetuned" / "model.safetensors"),
    )
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=2e-6, msg=k)
    m1 = json.loads((out / "metrics.json").read_text())["scores"]
    m2 = json.loads((two_ranks / "finetuned" / "metrics.json").read_text())["scores"]
    assert m1.keys() == m2.keys()
    for k in m1:
        assert m1[k] == pytest.approx(m2[k], rel=1e-4, abs=1e-6)


def test_sharding_and_gather_helpers() -> None:
    from pretroost import distributed

    ctx = distributed.DistContext(rank=1, world_size=3)
    mine, sizes = distributed.shard(np.arange(10), ctx)
    assert sizes == [4, 3, 3] and mine.tolist() == [4, 5, 6]
    x = torch.ones(3, 2)
    assert distributed.gather_for_loss(x)[0] is x  # no-op outside a sharded step
    assert not distributed.context().enabled


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
