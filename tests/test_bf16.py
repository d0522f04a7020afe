"""bf16 on a CPU without native BF16: detected from the CPU flags, warned about in training, and
left out of the speed benchmark with the reason recorded (monkeypatched flags: any machine)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from pretroost import utils
from tiny import capture_logs


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, True),
        ({"avx2", "amx_bf16", "amx_tile"}, True),
        ({"fp", "asimd", "bf16"}, True),  # aarch64 "Features"
        ({"avx2", "avx512f", "avx512bw"}, False),  # AVX-512 alone is not BF16
        (set(), False),  # flags unreadable (not Linux)
    ],
)
def test_native_bf16_from_cpu_flags(monkeypatch, flags, native) -> None:
    monkeypatch.setattr(utils, "cpu_flags", lambda: flags)
    ok, reason = utils.native_bf16("cpu")
    assert ok is native
    assert torch.backends.cpu.get_cpu_capability() in reason
    if not native:
        assert "no native BF16" in reason
    assert utils.native_bf16("cuda") == (True, "cuda device")  # no CUDA call needed


def test_cpu_flags_reads_proc_cpuinfo(tmp_path, monkeypatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    real = utils.Path
    monkeypatch.setattr(utils, "Path", lambda p: info if p == "/proc/cpuinfo" else real(p))
    assert utils.cpu_flags() == {"fpu", "avx2", "avx512_bf16"}


def _tiny_task():
    from pretroost.data.batching import CompositionDataset
    from pretroost.data.composition import parse_formulas
    from pretroost.finetune import SupervisedTask
    from pretroost.models.roost import ModelConfig, RoostModel
    from tiny import BINARY_FORMULAS, TINY_ENCODER

    model = RoostModel(ModelConfig(encoder=TINY_ENCODER, trunk_hidden=(8,), out_hidden=(8, 4)))
    y = torch.zeros(16, 1)
    data = CompositionDataset(parse_formulas(BINARY_FORMULAS[:16]), {"y": y})
    return SupervisedTask(model, "robust"), data


@pytest.mark.parametrize("native", [False, True])
def test_training_warns_when_bf16_is_emulated(monkeypatch, caplog, native) -> None:
    from pretroost import train as train_mod

    capture_logs("pretroost.train", caplog, monkeypatch)
    monkeypatch.setattr(train_mod, "native_bf16", lambda d: (native, "test CPU"))
    task, data = _tiny_task()
    config = train_mod.TrainConfig(epochs=1, batch_size=8, precision="bf16")
    with caplog.at_level(logging.WARNING, logger="pretroost.train"):
        train_mod.train(task, data, config, progress=False)
    warned = [r for r in caplog.records if "many times slower" in r.getMessage()]
    assert len(warned) == (0 if native else 1)
    if warned:
        assert "test CPU" in warned[0].getMessage() and warned[0].levelname == "WARNING"


def test_speed_skips_bf16_without_native_bf16(tmp_path, monkeypatch) -> None:
    from pretroost.cli import main
    from pretroost.experiment import speed

    monkeypatch.setattr(speed, "native_bf16", lambda d: (False, "no native BF16 (test)"))
    out = tmp_path / "speed.json"
    argv = ["--quick", "--n", "64", "--threads", "1", "--batch-sizes", "64", "--rounds", "1"]
    argv += ["--no-tune-malloc", "--out", str(out), "--only", "machine,train,flops"]
    assert main(["speed", *argv]) == 0
    report = json.loads(out.read_text())
    assert report["bf16"] == {"native": False, "reason": "no native BF16 (test)"}
    m = report["measurements"]
    assert m["machine"]["bf16_gflops"] is None and "test" in m["machine"]["bf16_skipped"]
    train = m["train"]
    assert "ours_bf16" not in train["train_batch_128"] and "test" in train["ours_bf16_skipped"]
    assert train["train_batch_128"]["ours"]["per_s"] > 0
    assert "ours_bf16" not in m["flops"]["train_utilisation_batch_128"]
    assert np.isfinite(m["flops"]["train_utilisation_batch_128"]["ours"]["gflops"])
