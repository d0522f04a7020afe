"""Output folders never destroy data: manifests, --overwrite only over what pretroost wrote,
``--out .`` refused, folders of older versions recognised (pretroost.artefacts)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from pretroost.artefacts import (
    MANIFEST,
    check_out_path,
    check_replaceable,
    register_files,
    remove_written,
    save_artefact,
    write_folder,
)
from pretroost.cli import main
from test_user_data import FLAGS, _csv
from tiny import BINARY_FORMULAS


def _artefact(out: Path, **kw) -> Path:
    return save_artefact(out, torch.nn.Linear(2, 1), {"kind": "test"}, card="card\n", **kw)


def test_every_written_folder_lists_its_files(tmp_path: Path) -> None:
    out = _artefact(tmp_path / "m", extra_files={"normaliser.json": "{}"})
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert listed == sorted(["README.md", "config.json", "model.safetensors", "normaliser.json"])
    assert (out / "config.json").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_overwrite_replaces_only_a_folder_of_pretroost_files(tmp_path: Path) -> None:
    out = _artefact(tmp_path / "m")
    _artefact(out)  # ours alone: replaced
    (out / "notes.txt").write_text("mine")
    (out / "runs").mkdir()
    (out / "runs" / "a.csv").write_text("x")
    with pytest.raises(FileExistsError, match=r"notes\.txt, runs/") as exc:
        _artefact(out)
    assert "runs/a.csv" not in str(exc.value)  # the folder is named, not each file in it
    assert (out / "notes.txt").read_text() == "mine" and (out / "runs" / "a.csv").is_file()
    assert (out / "model.safetensors").is_file()  # the refused write changed nothing


def test_error_names_ten_files_then_a_count(tmp_path: Path) -> None:
    out = _artefact(tmp_path / "m")
    for i in range(13):
        (out / f"f{i:02d}.txt").write_text("")
    with pytest.raises(FileExistsError, match=r"f09\.txt and 3 more"):
        check_replaceable(out)


def test_out_is_never_the_current_directory_or_above(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for bad in (".", "..", "/", str(tmp_path), "sub/.."):
        with pytest.raises(ValueError, match="must name a new or pretroost-written folder"):
            check_out_path(bad)
    assert check_out_path("models/gap") == Path("models/gap")
    with pytest.raises(ValueError, match="current directory"):
        _artefact(Path("."))


def test_folders_of_older_versions(tmp_path: Path) -> None:
    """No manifest: replaced only when recognisably a pretroost artefact."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"format_version": 1, "kind": "finetuned"}))
    for name in ("model.safetensors", "README.md", "normaliser.json", "metrics.json"):
        (old / name).write_text("x")
    _artefact(old)
    assert (old / MANIFEST).is_file() and not (old / "normaliser.json").exists()
    assert not list(tmp_path.glob(".old*"))  # the replaced folder's files are gone, and it too
    # an old folder with anything else, or no versioned config.json, is refused
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    (plain / "model.safetensors").write_text("x")
    with pytest.raises(FileExistsError, match=r"config\.json, model\.safetensors"):
        _artefact(plain)
    (old / MANIFEST).unlink()
    (old / "data.csv").write_text("formula,target\n")
    with pytest.raises(FileExistsError, match=r"data\.csv"):
        _artefact(old)
    # an old k-fold folder: fold_<i> artefacts and metrics.json
    kfold = tmp_path / "k"
    for i in range(2):
        (kfold / f"fold_{i}").mkdir(parents=True)
        (kfold / f"fold_{i}" / "config.json").write_text('{"format_version": 1}')
    (kfold / "metrics.json").write_text("{}")
    remove_written(kfold)
    assert not kfold.exists()


def test_register_files_and_remove_written(tmp_path: Path) -> None:
    out = tmp_path / "k"
    _artefact(out / "fold_0")
    (out / "metrics.json").write_text("{}")
    register_files(out, ["fold_0", "metrics.json"])
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert "fold_0/model.safetensors" in listed and "metrics.json" in listed
    (out / "fold_0" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"fold_0/mine\.txt"):
        remove_written(out)
    (out / "fold_0" / "mine.txt").unlink()
    remove_written(out)
    assert not out.exists()


def test_a_file_is_not_replaced_by_a_folder(tmp_path: Path) -> None:
    (tmp_path / "m").write_text("mine")
    with pytest.raises(FileExistsError, match="not a folder"):
        write_folder(tmp_path / "m", {}, card="", fill=lambda f: None)
    assert (tmp_path / "m").read_text() == "mine"


# ------------------------------------------------------------------------------ the command line


def test_training_csv_inside_out_survives(tmp_path: Path, capsys) -> None:
    """``finetune --data sandbox/train.csv --out sandbox --overwrite`` used to delete the CSV."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    data = _csv(sandbox / "train.csv", BINARY_FORMULAS[:24])
    (sandbox / "other.txt").write_text("unrelated")
    text = data.read_text()
    args = ["finetune", "--data", str(data), "--out", str(sandbox), "--overwrite", *FLAGS]
    assert main(args) == 1
    assert "would hold the input" in capsys.readouterr().err
    assert data.read_text() == text and (sandbox / "other.txt").read_text() == "unrelated"


def test_unrelated_file_survives_and_is_named(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "in.csv", BINARY_FORMULAS[:24])
    out = tmp_path / "m"
    args = ["finetune", "--data", str(data), "--out", str(out), *FLAGS]
    assert main(args) == 0
    assert "metrics.json" in json.loads((out / MANIFEST).read_text())["files"]
    assert main([*args, "--overwrite"]) == 0  # ours alone (metrics.json included): replaced
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == 1
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.safetensors").is_file()
    # k-fold output: one folder per fold and metrics.json, all in the manifest
    kfold = [*args, "--split", "kfold", "--k", "2", "--overwrite"]
    (out / "notes.txt").unlink()
    assert main(kfold) == 0 and main(kfold) == 0
    assert not (out / "model.safetensors").exists() and (out / "fold_1" / "config.json").is_file()


def test_out_dot_is_refused_clearly(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    _csv(tmp_path / "in.csv", BINARY_FORMULAS[:24])
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["finetune", "--data", "in.csv", "--out", ".", "--overwrite", *FLAGS]) == 1
    err = capsys.readouterr().err
    assert "must name a new or pretroost-written folder" in err and "PosixPath" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "keep.txt"]


def test_checkpoints_removed_but_not_your_files(tmp_path: Path) -> None:
    data = _csv(tmp_path / "in.csv", BINARY_FORMULAS[:24])
    ckpt = tmp_path / "m.ckpt"  # the default checkpoint folder of --out m
    ckpt.mkdir()
    (ckpt / "mine.txt").write_text("keep")
    assert main(["finetune", "--data", str(data), "--out", str(tmp_path / "m"), *FLAGS]) == 0
    assert sorted(p.name for p in ckpt.iterdir()) == ["mine.txt"]
