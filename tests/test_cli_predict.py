"""`pretroost predict`, `embed` and `ensemble`, run in-process through ``pretroost.cli.main``.

Models are tiny and built with the library (``fit`` + ``save``) in fixtures: the CLI's training
commands use the paper's (large) default sizes.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from torch import nn

from pretroost.artefacts import save_artefact
from pretroost.cli import main
from pretroost.data.composition import parse_formulas
from pretroost.ensemble import fit_ensemble
from pretroost.finetune import FinetuneConfig, fit
from pretroost.models.roost import RoostEncoder
from pretroost.train import TrainConfig
from tiny import BINARY_FORMULAS, TINY_ENCODER, toy_target

FORMULAS = BINARY_FORMULAS
COMPS = parse_formulas(FORMULAS)
Y = toy_target(FORMULAS)
CONFIG = FinetuneConfig(
    train=TrainConfig(epochs=2, batch_size=16), encoder=TINY_ENCODER,
    trunk_hidden=(32,), out_hidden=(16, 8),
)  # fmt: skip
INPUT = "id,formula,note\n007,Fe2O3,a\n002,Xx,b\n003,,c\n004,NaCl,d\n005,RfO2,e\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli_models")
    reg = fit(COMPS, Y, "regression", CONFIG).save(root / "reg")
    ens = fit_ensemble(COMPS, Y, "regression", CONFIG, 2, progress=False).save(root / "ens")
    clf = fit(COMPS, (np.median(Y) < Y).astype(float), "classification", CONFIG)
    holder = nn.Module()
    holder.encoder = RoostEncoder(TINY_ENCODER)
    ssl = save_artefact(
        root / "ssl", holder, {"kind": "pretrained", "encoder": TINY_ENCODER.to_dict()}, card=""
    )
    return {"reg": reg, "ens": ens, "clf": clf.save(root / "clf"), "ssl": ssl}


@pytest.fixture()
def input_csv(tmp_path) -> Path:
    path = tmp_path / "formulas.csv"
    path.write_text(INPUT)
    return path


def read_out(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str})


def test_predict_csv_keeps_order_ids_and_reports_bad_rows(models, input_csv, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(models["reg"]), str(input_csv), "-o", str(out)]) == 0
    df = read_out(out)
    assert list(df.columns) == ["id", "formula", "prediction", "std", "error"]
    assert df["id"].tolist() == ["007", "002", "003", "004", "005"]  # order and leading zeros
    assert df["prediction"].notna().tolist() == [True, False, False, True, False]
    assert "not a chemical element" in df.loc[1, "error"]
    assert "missing value" in df.loc[2, "error"]
    assert "no matscholar200 feature vector" in df.loc[4, "error"]
    err = capsys.readouterr().err
    assert "row 1 (line 3): formula 'Xx'" in err and "row 4 (line 6)" in err
    assert "2 rows done, 3 failed" in err


def test_predict_ensemble_and_classifier_columns(models, input_csv, capsys):
    assert main(["predict", "--model", str(models["ens"]), str(input_csv)]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"id": str})
    assert list(df.columns) == [
        "id", "formula", "prediction", "std", "std_aleatoric", "std_epistemic", "error",
    ]  # fmt: skip
    assert (df.loc[[0, 3], "std_epistemic"] > 0).all()
    assert main(["predict", "--model", str(models["clf"]), str(input_csv), "--id-col", "note"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(df.columns) == ["note", "formula", "prediction", "probability", "error"]
    assert df["note"].tolist() == list("abcde")


def test_predict_stdin_lines_to_stdout(models, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("NaCl\nnot-a-formula\nFe2O3\n\n"))
    assert main(["predict", "--model", str(models["reg"]), "-"]) == 0
    captured = capsys.readouterr()
    df = pd.read_csv(io.StringIO(captured.out))
    assert df["formula"].tolist() == ["NaCl", "not-a-formula", "Fe2O3"]
    assert df["prediction"].isna().tolist() == [False, True, False]
    assert "<stdin>: row 1 (line 2)" in captured.err


def test_predict_stdin_csv_and_parquet_output(models, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("comp,id\nNaCl,x\nKCl,y\n"))
    out = tmp_path / "p.parquet"
    args = ["predict", "--model", str(models["reg"]), "-", "--formula-col", "comp", "-o", str(out)]
    assert main(args) == 0
    df = pd.read_parquet(out)
    assert list(df.columns)[:3] == ["id", "comp", "prediction"] and df["id"].tolist() == ["x", "y"]


def test_predict_exit_codes(models, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("formula\nXx\n\n")
    assert main(["predict", "--model", str(models["reg"]), str(bad)]) == 1
    out = capsys.readouterr()
    assert "Xx" in out.out and "no row could be used" in out.err
    other = tmp_path / "other.csv"
    other.write_text("composition,target\nNaCl,1\n")
    assert main(["predict", "--model", str(models["reg"]), str(other)]) == 1
    assert "--formula-col" in capsys.readouterr().err
    assert main(["predict", "--model", str(models["reg"]), str(tmp_path / "none.csv")]) == 1
    assert main(["predict", "--model", str(tmp_path), str(other)]) == 1  # not a model folder
    good = tmp_path / "good.csv"
    good.write_text("formula\nNaCl\n")
    assert main(["predict", "--model", str(models["reg"]), str(good), "--id-col", "id"]) == 1
    assert "no id column 'id'" in capsys.readouterr().err
    assert main(["predict", "--model", str(models["reg"]), str(good), "-o", "x.xlsx"]) == 1
    assert main(["predict", "--model", str(models["ssl"]), str(good)]) == 1
    assert f"pretroost embed --model {models['ssl']}" in capsys.readouterr().err


def test_embed_parquet_and_csv(models, input_csv, tmp_path):
    out = tmp_path / "emb.parquet"
    assert main(["embed", "--model", str(models["reg"]), str(input_csv), "-o", str(out)]) == 0
    df = pd.read_parquet(out)
    assert df.shape == (5, 2 + 16 + 1)
    assert list(df.columns) == ["id", "formula", *[f"emb_{j}" for j in range(16)], "error"]
    emb = df.filter(like="emb_").to_numpy()
    assert np.isfinite(emb[[0, 3]]).all() and np.isnan(emb[[1, 2, 4]]).all()
    out_csv = tmp_path / "emb.csv"
    assert main(["embed", "--model", str(models["ssl"]), str(input_csv), "-o", str(out_csv)]) == 0
    assert pd.read_csv(out_csv).shape == (5, 19)
    args = ["embed", "--model", str(models["ens"]), str(input_csv), "--member", "1", "-o"]
    assert main([*args, str(tmp_path / "m1.parquet")]) == 0
    assert main([*args[:-3], "--member", "5", "-o", str(tmp_path / "m5.parquet")]) == 1


@pytest.mark.parametrize("command", ["predict", "embed", "ensemble"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert f"example:\n  pretroost {command}" in text
    if command != "ensemble":
        assert "Exit status: 0 if at least one row" in text


def test_ensemble_command(tmp_path, capsys):
    data = tmp_path / "train.csv"
    pd.DataFrame({"formula": FORMULAS, "gap": Y}).to_csv(data, index=False)
    out = tmp_path / "ens"
    args = ["ensemble", "--data", str(data), "--target-col", "gap", "--n", "2", "--epochs", "1"]
    args += ["--elem-fea-len", "8", "--n-graph", "1", "--heads", "1", "--hidden", "8"]
    args += ["--trunk-hidden", "16", "--out-hidden", "8,8"]
    assert main([*args, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_test"] == 16 and len(summary["member_mae"]) == 2
    assert {"mae", "coverage_1sigma", "spearman_abs_error_std"} <= summary["scores"].keys()
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "ensemble" and config["n_members"] == 2
    assert config["members"][1]["model"]["encoder"]["elem_fea_len"] == 8
    assert (out / "metrics.json").is_file()
    assert main(["predict", "--model", str(out), "-o", str(tmp_path / "p.csv"), str(data)]) == 0
    assert "std_epistemic" in pd.read_csv(tmp_path / "p.csv").columns
    assert main([*args, "--out", str(out), "--test-fraction", "1.5"]) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("formula,gap\nNaCl,1\nOgF2,2\n")
    assert main([*args[:2], str(bad), *args[3:], "--out", str(tmp_path / "never")]) == 1
    assert "row 1" in capsys.readouterr().err and not (tmp_path / "never").exists()
