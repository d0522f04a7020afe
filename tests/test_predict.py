"""pretroost.predict: loading artefacts, predictions in input order with row errors, embeddings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pretroost
from pretroost.artefacts import ArtefactError, save_artefact
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import FormulaError, parse_formulas
from pretroost.finetune import FinetuneConfig, FittedModel, fit
from pretroost.hub import load
from pretroost.models.roost import RoostEncoder
from pretroost.predict import Predictor, as_formula_list, read_formula_input, write_table
from pretroost.train import TrainConfig
from tiny import BINARY_FORMULAS, TINY_ENCODER

FORMULAS = BINARY_FORMULAS


def tiny_config(**kw) -> FinetuneConfig:
    return FinetuneConfig(
        train=TrainConfig(epochs=2, batch_size=16), encoder=TINY_ENCODER,
        trunk_hidden=(32,), out_hidden=(16, 8), **kw,
    )  # fmt: skip


def targets(formulas: list[str]) -> np.ndarray:
    comps = parse_formulas(formulas)
    return np.array([comps[i][1][0] * 3 + comps[i][0][-1] / 20 for i in range(len(comps))])


@pytest.fixture(scope="module")
def regression(tmp_path_factory) -> tuple[FittedModel, Path]:
    fitted = fit(parse_formulas(FORMULAS), targets(FORMULAS), "regression", tiny_config())
    return fitted, fitted.save(tmp_path_factory.mktemp("models") / "reg")


@pytest.fixture(scope="module")
def classification(tmp_path_factory) -> tuple[FittedModel, Path]:
    y = (targets(FORMULAS) > np.median(targets(FORMULAS))).astype(float)
    fitted = fit(parse_formulas(FORMULAS), y, "classification", tiny_config())
    return fitted, fitted.save(tmp_path_factory.mktemp("models") / "clf")


class _Pretrained(nn.Module):
    def __init__(self, encoder: RoostEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, 3)  # an objective head: ignored by embed


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[RoostEncoder, Path]:
    torch.manual_seed(3)
    encoder = RoostEncoder(TINY_ENCODER).eval()
    out = tmp_path_factory.mktemp("models") / "ssl"
    config = {"kind": "pretrained", "objective": "ssl", "encoder": TINY_ENCODER.to_dict()}
    save_artefact(out, _Pretrained(encoder), config, card="# test encoder\n")
    return encoder, out


BATCH = ["Fe2O3", "Xx", "NaCl", "", "RfO2", None, "LiO", "Fe2O3"]
BAD = {1: "not a chemical element", 3: "missing value", 4: "no matscholar200", 5: "missing value"}


def test_predict_keeps_order_and_reports_bad_rows(regression):
    fitted, path = regression
    model = pretroost.load(path)
    assert model.kind == "finetuned" and model.task_type == "regression"
    df = model.predict(BATCH)
    assert list(df.columns) == ["formula", "prediction", "std", "error"]
    assert df["formula"].tolist() == BATCH
    good = [i for i in range(len(BATCH)) if i not in BAD]
    for i, reason in BAD.items():
        assert np.isnan(df.loc[i, "prediction"]) and np.isnan(df.loc[i, "std"])
        assert reason in df.loc[i, "error"]
    assert df.loc[good, "error"].isna().all()
    ref = fitted.predict_dataset(CompositionDataset(parse_formulas([BATCH[i] for i in good])))
    np.testing.assert_allclose(df.loc[good, "prediction"], ref["mean"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(df.loc[good, "std"], ref["std"][:, 0], rtol=1e-6)
    assert df.loc[0, "prediction"] == df.loc[7, "prediction"]  # duplicates: same answer


def test_predict_errors_raise_names_the_row(regression):
    model = pretroost.from_pretrained(regression[1])
    with pytest.raises(FormulaError, match="row 1") as info:
        model.predict(BATCH, errors="raise")
    assert info.value.row == 1 and info.value.formula == "Xx"
    with pytest.raises(ValueError, match="valid: coerce, raise"):
        model.predict(BATCH, errors="ignore")


def test_predict_input_types(regression):
    model = load(regression[1])
    series = pd.Series(["NaCl", "Fe2O3"], index=["a", "b"])
    by_series = model.predict(series)
    assert by_series.index.tolist() == ["a", "b"]
    by_list = model.predict(["NaCl", "Fe2O3"])
    np.testing.assert_array_equal(by_series["prediction"], by_list["prediction"])
    for other in (
        np.array([["NaCl"], ["Fe2O3"]]),
        pd.DataFrame({"f": ["NaCl", "Fe2O3"]}),
        (f for f in ["NaCl", "Fe2O3"]),
    ):
        np.testing.assert_array_equal(model.predict(other)["prediction"], by_list["prediction"])
    assert len(model.predict("NaCl")) == 1
    with pytest.raises(ValueError, match="one column"):
        model.predict(pd.DataFrame({"a": ["NaCl"], "b": ["KCl"]}))
    with pytest.raises(ValueError, match="single string"):
        as_formula_list("NaCl", allow_str=False)


def test_predict_all_bad_and_empty(regression):
    model = load(regression[1])
    df = model.predict(["Xx", ""])
    assert df["prediction"].isna().all() and df["error"].notna().all()
    assert len(model.predict([])) == 0


def test_classification_columns(classification):
    _, path = classification
    model = load(path)
    df = model.predict(["NaCl", "Xx", "Fe2O3"])
    assert list(df.columns) == ["formula", "prediction", "probability", "error"]
    assert str(df["prediction"].dtype) == "Int64" and df["prediction"].isna().tolist() == [
        False, True, False,
    ]  # fmt: skip
    p = df["probability"].to_numpy()
    assert np.isnan(p[1]) and ((p[[0, 2]] >= 0) & (p[[0, 2]] <= 1)).all()
    assert (df.loc[[0, 2], "prediction"].to_numpy() == (p[[0, 2]] > 0.5)).all()


def test_embed_finetuned(regression):
    fitted, path = regression
    model = load(path)
    emb = model.embed(["NaCl", "Xx", "Fe2O3"])
    assert emb.shape == (3, 16) and emb.dtype == np.float32 and model.embedding_dim == 16
    assert np.isnan(emb[1]).all() and np.isfinite(emb[[0, 2]]).all()
    data = CompositionDataset(parse_formulas(["NaCl", "Fe2O3"]))
    with torch.no_grad():
        ref = fitted.model.embed(data.batch(np.arange(2))).numpy()
    np.testing.assert_allclose(emb[[0, 2]], ref, rtol=1e-5, atol=1e-6)
    frame = model.embed_frame(["NaCl", "Xx"])
    assert list(frame.columns) == ["formula", *[f"emb_{j}" for j in range(16)], "error"]
    with pytest.raises(FormulaError):
        model.embed(["Xx"], errors="raise")


def test_pretrained_encoder_embeds_but_does_not_predict(pretrained):
    encoder, path = pretrained
    model = load(path)
    assert model.kind == "pretrained" and model.task_type is None
    emb = model.embed(["NaCl", "Fe2O3", "bad!"])
    data = CompositionDataset(parse_formulas(["NaCl", "Fe2O3"]))
    with torch.no_grad():
        ref = encoder(data.batch(np.arange(2))).numpy()
    np.testing.assert_allclose(emb[:2], ref, rtol=1e-5, atol=1e-6)
    assert np.isnan(emb[2]).all()
    with pytest.raises(ValueError, match="embed"):
        model.predict(["NaCl"])


def test_unknown_kind_lists_valid_kinds(tmp_path):
    save_artefact(tmp_path / "x", nn.Linear(2, 2), {"kind": "mystery"}, card="")
    with pytest.raises(ArtefactError, match="valid: finetuned, ensemble, pretrained"):
        load(tmp_path / "x")
    with pytest.raises(ArtefactError, match="not a model folder"):
        load(tmp_path / "missing")
    with pytest.raises(ArtefactError, match=r"holds model folders \(x\): load one"):
        load(tmp_path)  # e.g. the parent of finetune --split kfold's fold_k folders


def test_predictor_wraps_in_memory_model(regression):
    fitted, path = regression
    a = Predictor(fitted).predict(["NaCl"])
    b = load(path).predict(["NaCl"])
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(TypeError):
        Predictor("not a model")  # type: ignore[arg-type]


def test_read_formula_input_and_write_table(tmp_path):
    (tmp_path / "a.csv").write_text("id,formula\n007,NaCl\n8,\n")
    df = read_formula_input(tmp_path / "a.csv")
    assert df["id"].tolist() == ["007", "8"] and df["formula"].tolist() == ["NaCl", ""]
    assert df.attrs["line_offset"] == 2
    (tmp_path / "b.txt").write_text("NaCl\n\nFe2O3\n\n")
    df = read_formula_input(tmp_path / "b.txt")
    assert df["formula"].tolist() == ["NaCl", "", "Fe2O3"] and df.attrs["line_offset"] == 1
    (tmp_path / "c.csv").write_text("composition,x\nNaCl,1\n")
    with pytest.raises(ValueError, match="--formula-col"):
        read_formula_input(tmp_path / "c.csv")
    with pytest.raises(ValueError, match=r"valid: \.csv, \.parquet"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "out.xlsx")


def test_import_pretroost_is_light():
    code = (
        "import sys, pretroost; assert 'torch' not in sys.modules, 'torch imported';"
        "assert 'load' in dir(pretroost) and 'RoostRegressor' in pretroost.__all__"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert pretroost.load is load
    with pytest.raises(AttributeError):
        _ = pretroost.no_such_thing
