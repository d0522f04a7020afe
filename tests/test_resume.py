"""Faults: a run killed with SIGKILL mid-training resumes from its last checkpoint to the very same
weights as an uninterrupted run (CPU, same seed), for pretraining and for `finetune --data`; the
same seed twice gives identical weights and metrics; a checkpoint of other settings is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Element
from safetensors.torch import load_file

from pretroost.cli import main
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.corpus import Corpus
from pretroost.finetune import SupervisedTask
from pretroost.models.roost import ModelConfig, RoostModel
from pretroost.train import TrainConfig, load_checkpoint, train
from tiny import TINY_ENCODER

# light elements with feature vectors: Z 1-34 without the noble gases and Sc (30 symbols)
ELEMENTS = [
    e.symbol for e in map(Element.from_Z, range(1, 35)) if not e.is_noble_gas and e.symbol != "Sc"
]
TINY = ["--elem-fea-len", "16", "--n-graph", "1", "--heads", "1", "--hidden", "16",
        "--trunk-hidden", "16", "--threads", "1", "--seed", "3"]  # fmt: skip
EPOCHS = 12


def _formulas(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        els = rng.choice(ELEMENTS, int(rng.integers(1, 6)), replace=False)
        out.add("".join(f"{e}{int(rng.integers(1, 6))}" for e in els))
    return sorted(out)


def _pretrain_args(folder: Path) -> list[str]:
    return ["pretrain", "--corpus", str(folder / "corpus.npz"), "--epochs", str(EPOCHS),
            "--batch-size", "64", "--lr", "1e-3", "--trunk-out", "16", "--proj-dim", "24",
            "--mask-both", "--amount-noise", "0.1", *TINY]  # fmt: skip


def _finetune_args(folder: Path) -> list[str]:
    return ["finetune", "--data", str(folder / "data.csv"), "--epochs", str(EPOCHS),
            "--batch-size", "32", "--lr", "1e-3", "--out-hidden", "16,8", *TINY]  # fmt: skip


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pretroost.cli", "-q", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _kill_after_first_checkpoint(procs: dict[Path, subprocess.Popen], timeout: float = 120) -> None:
    """SIGKILL each process shortly after its first checkpoint appears (mid-run: many epochs left)."""
    t0 = time.monotonic()
    pending = dict(procs)
    while pending:
        for ckpt, proc in list(pending.items()):
            if ckpt.is_file():
                time.sleep(0.05)  # into the next epoch
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                del pending[ckpt]
            elif proc.poll() is not None:
                raise AssertionError(f"ended before a checkpoint: {proc.stdout.read()}")  # type: ignore[union-attr]
        if time.monotonic() - t0 > timeout:
            for proc in pending.values():
                proc.kill()
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """A pretraining and a finetuning subprocess, each killed with SIGKILL mid-training."""
    folder = tmp_path_factory.mktemp("killed")
    forms = _formulas(800)
    Corpus(parse_formulas(forms), forms, {"sources": ["test"], "hash": "t"}).save(
        folder / "corpus.npz"
    )
    y = np.random.default_rng(0).normal(size=240)
    (folder / "data.csv").write_text(
        "formula,target\n" + "".join(f"{f},{v}\n" for f, v in zip(forms[:240], y, strict=True))
    )
    procs = {
        folder / "pre.ckpt": _cli([*_pretrain_args(folder), "--out", str(folder / "pre")]),
        folder / "ft.ckpt" / "split0.pt": _cli(
            [*_finetune_args(folder), "--out", str(folder / "ft")]
        ),
    }
    _kill_after_first_checkpoint(procs)
    for ckpt, proc in procs.items():
        assert proc.returncode == -signal.SIGKILL
        assert load_checkpoint(ckpt)["epoch"] < EPOCHS - 1, "killed mid-run"
    assert not (folder / "pre").exists() and not (folder / "ft").exists(), "nothing released"
    return folder


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


def test_pretrain_killed_then_resumed_equals_uninterrupted(killed: Path, capsys) -> None:
    args = _pretrain_args(killed)
    epoch = load_checkpoint(killed / "pre.ckpt")["epoch"]
    assert main([*args, "--out", str(killed / "pre"), "--resume"]) == 0
    assert f"at epoch {epoch + 1}" in capsys.readouterr().err, "continued, not restarted"
    assert main([*args, "--out", str(killed / "pre_ref")]) == 0
    _assert_same_weights(killed / "pre", killed / "pre_ref")
    h1 = json.loads((killed / "pre" / "config.json").read_text())["history"]
    h2 = json.loads((killed / "pre_ref" / "config.json").read_text())["history"]
    assert len(h1) == len(h2) == EPOCHS
    assert [(r["train_loss"], r.get("val_score")) for r in h1] == [
        (r["train_loss"], r.get("val_score")) for r in h2
    ]


def test_finetune_killed_then_resumed_equals_uninterrupted_and_reruns_are_identical(
    killed: Path, capsys
) -> None:
    args = _finetune_args(killed)
    epoch = load_checkpoint(killed / "ft.ckpt" / "split0.pt")["epoch"]
    assert main([*args, "--out", str(killed / "ft"), "--resume"]) == 0
    assert f"at epoch {epoch + 1}" in capsys.readouterr().err, "continued, not restarted"
    assert not (killed / "ft.ckpt").exists(), "default checkpoints are removed when done"
    assert main([*args, "--out", str(killed / "ft_ref")]) == 0
    assert main([*args, "--out", str(killed / "ft_ref2")]) == 0  # same seed, run twice
    metrics = [
        json.loads((killed / d / "metrics.json").read_text()) for d in ("ft", "ft_ref", "ft_ref2")
    ]
    assert metrics[0] == metrics[1] == metrics[2]
    _assert_same_weights(killed / "ft", killed / "ft_ref")
    _assert_same_weights(killed / "ft_ref", killed / "ft_ref2")


# ------------------------------------------------------------------------- train() in-process


def _task_and_data(n: int = 64):
    torch.manual_seed(0)
    model = RoostModel(ModelConfig(encoder=TINY_ENCODER, trunk_hidden=(16,), out_hidden=(16, 8)))
    comps = parse_formulas(_formulas(n, seed=5))
    y = np.random.default_rng(2).normal(size=(n, 1)).astype(np.float32)
    return SupervisedTask(model, "robust"), CompositionDataset(comps, {"y": y})


def test_checkpoint_of_other_settings_or_data_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    task, data = _task_and_data()
    train(task, data, TrainConfig(epochs=1, batch_size=16), checkpoint=ckpt, progress=False)
    task, data = _task_and_data()
    with pytest.raises(ValueError, match=r"different training settings.*lr"):
        train(
            task, data, TrainConfig(epochs=1, batch_size=16, lr=1e-2), checkpoint=ckpt, resume=True
        )
    task, other = _task_and_data(n=48)
    with pytest.raises(ValueError, match="different training data"):
        train(task, other, TrainConfig(epochs=1, batch_size=16), checkpoint=ckpt, resume=True)


def test_resume_after_early_stop_trains_no_further(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    config = TrainConfig(epochs=30, batch_size=16, lr=3e-2, patience=0)
    task, data = _task_and_data()
    val = CompositionDataset(data.comps.subset(np.arange(8)), {"y": data.targets["y"][:8]})
    first = train(task, data, config, val_data=val, checkpoint=ckpt, progress=False)
    assert first.epochs_run < 30 and load_checkpoint(ckpt)["stopped"]
    weights = {k: v.clone() for k, v in task.state_dict().items()}
    task, _ = _task_and_data()
    again = train(task, data, config, val_data=val, checkpoint=ckpt, resume=True, progress=False)
    assert again.epochs_run == first.epochs_run and again.history == first.history
    assert all(torch.equal(v, task.state_dict()[k]) for k, v in weights.items())


def test_damaged_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    task, data = _task_and_data()
    train(task, data, TrainConfig(epochs=1, batch_size=16), checkpoint=ckpt, progress=False)
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ValueError, match="unreadable or truncated"):
        train(task, data, TrainConfig(epochs=1, batch_size=16), checkpoint=ckpt, resume=True)
