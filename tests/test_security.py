"""Security: weights are safetensors + JSON; every torch.load is weights-only, so a crafted pickle
is refused *without running*; configs are data, never evaluated; importing pretroost (and a small
train/predict flow) opens no network connection."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pretroost
from pretroost.artefacts import ArtefactError, load_artefact
from pretroost.cli import main
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.teachers.base import load_state_dict_file
from pretroost.finetune import SupervisedTask
from pretroost.models.roost import ModelConfig, RoostModel
from pretroost.train import TrainConfig, load_checkpoint, train
from tiny import TINY_ENCODER

SRC = Path(pretroost.__file__).parent
TINY = TINY_ENCODER


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"import pathlib; pathlib.Path({self.marker!r}).touch()",))


def _crafted(path: Path, marker: Path, *, torch_format: bool = True) -> Path:
    payload = {"module": _Payload(marker), "optimiser": {}, "result": {}, "epoch": 0}
    if torch_format:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: unpickled without protection, the crafted file does run code."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("torch_format", [True, False])
def test_crafted_checkpoint_is_refused_and_does_not_run(tmp_path: Path, torch_format: bool) -> None:
    marker = tmp_path / "pwned"
    ckpt = _crafted(tmp_path / "evil.pt", marker, torch_format=torch_format)
    with pytest.raises(ValueError, match=r"refused|unreadable"):
        load_checkpoint(ckpt)
    torch.manual_seed(0)
    task = SupervisedTask(
        RoostModel(ModelConfig(encoder=TINY, trunk_hidden=(16,), out_hidden=(16, 8))), "robust"
    )
    data = CompositionDataset(
        parse_formulas(["Fe2O3", "NaCl", "SiO2", "GaN"]), {"y": np.ones((4, 1))}
    )
    with pytest.raises(ValueError, match=r"refused|unreadable"):
        train(task, data, TrainConfig(epochs=1, batch_size=2), checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match=r"refused|not a weights-only"):
        load_state_dict_file(ckpt)  # teacher weights go through the same gate
    assert not marker.exists()


def test_crafted_checkpoint_through_the_cli(tmp_path: Path) -> None:
    from pretroost.data.corpus import Corpus

    forms = ["Fe2O3", "NaCl", "SiO2", "GaN", "LiF", "MgO", "CaTiO3", "ZnS"]
    Corpus(parse_formulas(forms), forms, {"hash": "t"}).save(tmp_path / "c.npz")
    marker = tmp_path / "pwned"
    _crafted(tmp_path / "out.ckpt", marker)
    args = ["pretrain", "--corpus", str(tmp_path / "c.npz"), "--out", str(tmp_path / "out"),
            "--resume", "--epochs", "1", "--elem-fea-len", "8", "--n-graph", "1", "--heads", "1",
            "--hidden", "8", "--trunk-hidden", "8", "--trunk-out", "8", "--proj-dim", "8"]  # fmt: skip
    assert main(args) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_pickle_disguised_as_safetensors_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "kind": "finetuned"}))
    marker = tmp_path / "pwned"
    _crafted(folder / "model.safetensors", marker)
    with pytest.raises(ArtefactError, match="unreadable or truncated"):
        load_artefact(folder)
    (tmp_path / "in.csv").write_text("formula\nFe2O3\n")
    assert main(["predict", "--model", str(folder), str(tmp_path / "in.csv")]) == 1
    assert not marker.exists()


def test_pickle_disguised_as_a_trees_model_is_refused(tmp_path: Path) -> None:
    """A trees folder's model.skops is read by skops with only scikit-learn/numpy types trusted:
    a pickle in its place is refused and never runs."""
    folder = tmp_path / "model"
    folder.mkdir()
    config = {"format_version": 1, "kind": "trees", "model": "extratrees", "features": "fractions",
              "task_type": "regression"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "pwned"
    (folder / "model.skops").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ArtefactError):
        pretroost.load(folder)
    (tmp_path / "in.csv").write_text("formula\nFe2O3\n")
    assert main(["predict", "--model", str(folder), str(tmp_path / "in.csv")]) == 1
    assert not marker.exists()


def test_every_torch_load_is_weights_only_and_nothing_evaluates_text() -> None:
    offenders = []
    for f in SRC.rglob("*.py"):
        text = f.read_text()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{f.name}: {m.group(0)}")
        for pat in (
            r"(?<![\w.])eval\(",
            r"(?<![\w.])exec\(",
            r"pickle\.loads?\(",
            r"yaml\.load\(",
            r"allow_pickle=True",
        ):
            if re.search(pat, text):
                offenders.append(f"{f.name}: {pat}")
    assert offenders == []


def test_config_values_are_data_never_code(tmp_path: Path) -> None:
    """A model folder whose config.json carries code in its fields is refused with a clear error;
    the code never runs."""
    from pretroost.finetune import FittedModel

    torch.manual_seed(0)
    model = RoostModel(ModelConfig(encoder=TINY, trunk_hidden=(16,), out_hidden=(16, 8)))
    FittedModel(model, "regression", None, "robust", info={}).save(tmp_path / "m")
    cfg_file = tmp_path / "m" / "config.json"
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    good = json.loads(cfg_file.read_text())
    (tmp_path / "in.csv").write_text("formula\nFe2O3\n")
    for mutate in (
        lambda c: c["model"]["encoder"].__setitem__("elem_embedding", code),
        lambda c: c["model"].__setitem__(code, 1),
        lambda c: c["model"].__setitem__("n_targets", code),
        lambda c: c.__setitem__("kind", code),
    ):
        cfg = json.loads(json.dumps(good))
        mutate(cfg)
        cfg_file.write_text(json.dumps(cfg))
        assert main(["predict", "--model", str(tmp_path / "m"), str(tmp_path / "in.csv")]) == 1
    assert not marker.exists()


_GUARD = r"""
import importlib, pkgutil, socket, sys

def refuse(*args, **kwargs):
    raise RuntimeError(f"network access attempted: {args[:2]}")

class NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        refuse("socket.socket", args)

socket.socket = NoSocket
socket.create_connection = refuse
socket.getaddrinfo = refuse
import pretroost
names = [m.name for m in pkgutil.walk_packages(pretroost.__path__, "pretroost.")]
for name in names:
    importlib.import_module(name)
# and a small training + prediction flow from the command line
from pretroost.cli import main
folder = sys.argv[1]
rc = main(["-q", "finetune", "--data", folder + "/d.csv", "--out", folder + "/m", "--epochs", "1",
           "--batch-size", "4", "--elem-fea-len", "8", "--n-graph", "1", "--heads", "1",
           "--hidden", "8", "--trunk-hidden", "8", "--out-hidden", "8,4", "--threads", "1"])
assert rc == 0, rc
assert main(["-q", "predict", "--model", folder + "/m", folder + "/d.csv", "-o", folder + "/p.csv"]) == 0
print("imported", len(names), "modules")
"""


def test_no_network_at_import_or_in_a_train_and_predict_run(tmp_path: Path) -> None:
    rows = ["Fe2O3,1", "NaCl,2", "SiO2,3", "GaN,4", "LiF,5", "MgO,6", "ZnS,7", "CaO,8"]
    (tmp_path / "d.csv").write_text("formula,target\n" + "\n".join(rows) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _GUARD, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    n = int(re.search(r"imported (\d+) modules", proc.stdout).group(1))  # type: ignore[union-attr]
    assert n >= 30
