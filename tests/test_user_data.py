"""Your own data through `finetune --data` / `ensemble`: test splits, --test-data, --overwrite,
strict pretrained loads (--allow-partial), --init from a finetuned model, all bad rows at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pretroost.artefacts import ArtefactError, load_encoder_weights, save_artefact
from pretroost.cli import main
from pretroost.finetune import FinetuneConfig, build_model
from pretroost.models.roost import ModelConfig, RoostEncoder, RoostModel
from tiny import BINARY_FORMULAS, tiny_encoder, toy_target

TINY = tiny_encoder(width=8, hidden=8)
FLAGS = ["--epochs", "1", "--batch-size", "8", "--elem-fea-len", "8", "--n-graph", "1",
         "--heads", "1", "--hidden", "8", "--trunk-hidden", "8", "--out-hidden", "8,4",
         "--threads", "1"]  # fmt: skip


def _csv(path: Path, formulas: list[str]) -> Path:
    y = toy_target(formulas)
    path.write_text(
        "formula,target\n" + "".join(f"{f},{v}\n" for f, v in zip(formulas, y, strict=True))
    )
    return path


def _pretrained(folder: Path, *, drop: str | None = None, extra: bool = False) -> Path:
    torch.manual_seed(0)
    holder = torch.nn.Module()
    holder.encoder = RoostEncoder(TINY)
    if extra:
        holder.encoder.register_buffer("surplus", torch.zeros(2))
    art = save_artefact(folder, holder, {"kind": "pretrained", "encoder": TINY.to_dict()}, card="")
    if drop is not None:  # an artefact with one tensor missing
        from safetensors.torch import load_file, save_file

        state = load_file(art / "model.safetensors")
        del state[drop]
        save_file(state, str(art / "model.safetensors"), metadata={"format": "pt"})
    return art


def test_partial_pretrained_load_is_an_error_unless_allowed(tmp_path: Path, caplog) -> None:
    key = "encoder.embedding.weight"
    model = RoostModel(ModelConfig(encoder=TINY, trunk_hidden=(8,), out_hidden=(8, 4)))
    assert key in model.state_dict(), sorted(model.state_dict())
    full = _pretrained(tmp_path / "full")
    config = FinetuneConfig(encoder=TINY, trunk_hidden=(8,), out_hidden=(8, 4), init=str(full))
    _, report = build_model("regression", 1, config)
    assert report == {"missing": [], "unexpected": []}
    for art in (
        _pretrained(tmp_path / "short", drop=key),
        _pretrained(tmp_path / "long", extra=True),
    ):
        bad = FinetuneConfig(encoder=TINY, trunk_hidden=(8,), out_hidden=(8, 4), init=str(art))
        with pytest.raises(ArtefactError, match=r"do not load completely.*--allow-partial") as info:
            build_model("regression", 1, bad)
        assert (key if art.name == "short" else "encoder.surplus") in str(info.value)
        assert str(art) in str(info.value)
    # allowed: loads what there is and says what is missing
    loose = FinetuneConfig(
        encoder=TINY, trunk_hidden=(8,), out_hidden=(8, 4), init=str(tmp_path / "short"),
        allow_partial=True,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="pretroost.artefacts"):
        _, report = build_model("regression", 1, loose)
    assert report is not None and report["missing"] == [key]
    assert key in caplog.text
    with pytest.raises(ArtefactError):
        load_encoder_weights(model, {})  # nothing at all under encoder.*


def test_cli_refuses_a_partial_init_and_allow_partial_trains(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "in.csv", BINARY_FORMULAS[:24])
    art = _pretrained(tmp_path / "short", drop="encoder.embedding.weight")
    args = ["finetune", "--data", str(data), "--init", str(art), *FLAGS]
    assert main([*args, "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "encoder.embedding.weight" in err and "--allow-partial" in err
    assert not (tmp_path / "m").exists()
    assert main([*args, "--out", str(tmp_path / "m"), "--allow-partial"]) == 0


def test_init_from_a_finetuned_model_and_predict_on_an_encoder(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "in.csv", BINARY_FORMULAS[:24])
    first = tmp_path / "first"
    assert main(["finetune", "--data", str(data), "--out", str(first), *FLAGS]) == 0
    # a finetuned model's encoder (config under model.encoder) is a valid --init
    second = tmp_path / "second"
    args = ["finetune", "--data", str(data), "--init", str(first), "--out", str(second), *FLAGS]
    assert main(args) == 0
    info = json.loads((second / "config.json").read_text())["info"]
    assert info["init"] == str(first) and info["pretrained_keys"]["missing"] == []
    capsys.readouterr()
    # predict on an encoder-only folder names it and points to `embed`
    art = _pretrained(tmp_path / "enc")
    assert main(["predict", "--model", str(art), str(data)]) == 1
    err = capsys.readouterr().err
    assert f"pretroost embed --model {art}" in err


def test_test_data_test_fraction_zero_and_announced_split(tmp_path: Path, capsys) -> None:
    train = _csv(tmp_path / "train.csv", BINARY_FORMULAS[:40])
    test = _csv(tmp_path / "test.csv", BINARY_FORMULAS[40:52])
    base = ["finetune", "--data", str(train), *FLAGS]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "held out 8 rows (20 %) as test" in err
    metrics = json.loads(out)
    assert metrics["n_train"] == 32 and metrics["n_test"] == 8 and "mae" in metrics["scores"]
    # --test-data: every --data row trains, the user's file is scored
    assert main([*base, "--out", str(tmp_path / "b"), "--test-data", str(test)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_train"] == 40 and metrics["n_test"] == 12 and metrics["test"] == str(test)
    # --test-fraction 0: the final model trains on every row; no test score
    assert main([*base, "--out", str(tmp_path / "c"), "--test-fraction", "0"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_train"] == 40 and metrics["n_test"] == 0 and "scores" not in metrics
    info = json.loads((tmp_path / "c" / "config.json").read_text())["info"]
    assert info["n_train"] + info["n_val"] == 40 and info["n_val"] > 0  # validation still used
    # kfold: a mean and std over folds, each fold's model card named after the folder
    assert main([*base, "--out", str(tmp_path / "k"), "--split", "kfold", "--k", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert set(summary["mae"]) == {"mean", "std"}
    assert (
        "# pretroost Roost model: k fold 1" in (tmp_path / "k" / "fold_1" / "README.md").read_text()
    )


def test_out_is_not_overwritten_without_overwrite(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "in.csv", BINARY_FORMULAS[:24])
    out = tmp_path / "m"
    args = ["finetune", "--data", str(data), "--out", str(out), *FLAGS]
    assert main(args) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    assert main([*args, "--overwrite", "--seed", "3"]) == 0
    assert (out / "model.safetensors").read_bytes() != before
    ens = ["ensemble", "--data", str(data), "--out", str(out), "--n", "2", *FLAGS]
    assert main(ens) == 1


def test_all_bad_training_rows_are_reported_at_once(tmp_path: Path, capsys) -> None:
    rows = list(BINARY_FORMULAS[:20])
    rows[3], rows[7] = "Fe2O3)", "Xx2"
    data = _csv(tmp_path / "in.csv", [r if i not in (3, 7) else "NaCl" for i, r in enumerate(rows)])
    lines = data.read_text().splitlines()
    lines[1 + 3] = "Fe2O3),1"
    lines[1 + 7] = "Xx2,2"
    lines[1 + 12] = "NaCl,abc"
    data.write_text("\n".join(lines) + "\n")
    assert main(["finetune", "--data", str(data), "--out", str(tmp_path / "m"), *FLAGS]) == 1
    err = [x for x in capsys.readouterr().err.splitlines() if " ERROR " in x]
    assert len(err) == 1
    for fragment in ("3 bad rows", "row 3 (line 5)", "row 7 (line 9)", "row 12 (line 14)",
                     "'abc' is not a number"):  # fmt: skip
        assert fragment in err[0], err[0]
