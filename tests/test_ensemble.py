"""pretroost.ensemble: deep ensembles (training, one-folder artefacts, uncertainty arithmetic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

import pretroost
from pretroost.artefacts import ArtefactError
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.ensemble import Ensemble, combine_predictions, fit_ensemble, uncertainty_scores
from pretroost.finetune import FinetuneConfig
from pretroost.train import TrainConfig
from tiny import BINARY_FORMULAS, TINY_ENCODER, toy_target

FORMULAS = BINARY_FORMULAS
COMPS = parse_formulas(FORMULAS)
Y = toy_target(FORMULAS)
NEW = ["NaCl", "Fe2O3", "Xx", "MgO"]


def tiny_config(**kw) -> FinetuneConfig:
    return FinetuneConfig(
        train=TrainConfig(epochs=2, batch_size=16, seed=10), encoder=TINY_ENCODER,
        trunk_hidden=(32,), out_hidden=(16, 8), **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> tuple[Ensemble, Path]:
    ens = fit_ensemble(COMPS, Y, "regression", tiny_config(), 3, progress=False, name="t")
    return ens, ens.save(tmp_path_factory.mktemp("ens") / "ens3")


def test_members_differ_by_seed_and_split(ensemble):
    ens, _ = ensemble
    assert len(ens) == 3 and [m.info["seed"] for m in ens.members] == [10, 11, 12]
    assert ens.info["split"] == "different" and ens.info["seeds"] == [10, 11, 12]
    w = [m.model.head.fc_out.weight.detach().numpy() for m in ens.members]
    assert not np.allclose(w[0], w[1])
    # different validation splits -> different training rows -> different normalisers
    assert len({m.normaliser.mean for m in ens.members}) == 3


def test_same_split_shares_validation_rows():
    ens = fit_ensemble(COMPS, Y, "regression", tiny_config(), 2, split="same", progress=False)
    assert ens.info["split"] == "same"
    assert ens.members[0].normaliser == ens.members[1].normaliser
    assert ens.members[0].info["seed"] != ens.members[1].info["seed"]


def test_save_load_identical_predictions(ensemble):
    ens, path = ensemble
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "ensemble" and config["n_members"] == 3
    assert all(m["normaliser"] is not None for m in config["members"])
    keys = load_file(str(path / "model.safetensors")).keys()
    assert {k.split(".")[1] for k in keys} == {"0", "1", "2"}
    assert all(k.startswith("members.") for k in keys)
    assert "deep ensemble" in (path / "README.md").read_text()

    data = CompositionDataset(parse_formulas(["NaCl", "Fe2O3", "MgO"]))
    before, after = ens.predict_dataset(data), Ensemble.load(path).predict_dataset(data)
    assert before.keys() == after.keys() == {"mean", "std", "std_aleatoric", "std_epistemic"}
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])

    model = pretroost.load(path)
    assert model.kind == "ensemble" and model.n_members == 3
    df = model.predict(NEW)
    assert list(df.columns) == [
        "formula", "prediction", "std", "std_aleatoric", "std_epistemic", "error",
    ]  # fmt: skip
    assert df["error"].notna().tolist() == [False, False, True, False]
    pd.testing.assert_frame_equal(df, model.predict(NEW))  # deterministic


def test_uncertainty_columns_follow_the_members(ensemble):
    ens, path = ensemble
    df = pretroost.load(path).predict(NEW).drop(index=2)
    data = CompositionDataset(parse_formulas(df["formula"].tolist()))
    member = [m.predict_dataset(data) for m in ens.members]
    means = np.stack([o["mean"][:, 0] for o in member])
    stds = np.stack([o["std"][:, 0] for o in member])
    np.testing.assert_allclose(df["prediction"], means.mean(0), rtol=1e-6)
    np.testing.assert_allclose(df["std_epistemic"], means.std(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(df["std_aleatoric"], np.sqrt((stds**2).mean(0)), rtol=1e-6)
    np.testing.assert_allclose(
        df["std"] ** 2, df["std_aleatoric"] ** 2 + df["std_epistemic"] ** 2, rtol=1e-6
    )
    assert (df["std_epistemic"] > 0).all()


def test_combine_predictions_by_hand():
    a = {"mean": np.array([[1.0], [2.0]]), "std": np.array([[3.0], [0.0]])}
    b = {"mean": np.array([[3.0], [2.0]]), "std": np.array([[4.0], [0.0]])}
    out = combine_predictions([a, b], "regression")
    np.testing.assert_allclose(out["mean"][:, 0], [2.0, 2.0])
    np.testing.assert_allclose(out["std_epistemic"][:, 0], [1.0, 0.0])
    np.testing.assert_allclose(out["std_aleatoric"][:, 0], [np.sqrt(12.5), 0.0])
    np.testing.assert_allclose(out["std"][:, 0], [np.sqrt(13.5), 0.0])
    # members without an aleatoric head (l1 loss): total = epistemic
    nan = {"std": np.full((2, 1), np.nan)}
    out = combine_predictions([{**a, **nan}, {**b, **nan}], "regression")
    assert np.isnan(out["std_aleatoric"]).all()
    np.testing.assert_allclose(out["std"], out["std_epistemic"])
    p = combine_predictions(
        [{"prob": np.array([[0.2]])}, {"prob": np.array([[0.6]])}], "classification"
    )
    np.testing.assert_allclose(p["prob"], [[0.4]])
    np.testing.assert_allclose(p["std_epistemic"], [[0.2]])
    with pytest.raises(ValueError):
        combine_predictions([], "regression")


def test_classification_ensemble(tmp_path):
    y = (np.median(Y) < Y).astype(float)
    ens = fit_ensemble(COMPS, y, "classification", tiny_config(), 2, progress=False)
    df = pretroost.load(ens.save(tmp_path / "clf")).predict(NEW)
    assert list(df.columns) == ["formula", "prediction", "probability", "std_epistemic", "error"]
    assert df.loc[[0, 1, 3], "probability"].between(0, 1).all()


def test_l1_members_have_epistemic_std_only(tmp_path):
    ens = fit_ensemble(COMPS, Y, "regression", tiny_config(loss="l1"), 2, progress=False)
    df = pretroost.load(ens.save(tmp_path / "l1")).predict(["NaCl"])
    assert np.isnan(df.loc[0, "std_aleatoric"])
    assert df.loc[0, "std"] == pytest.approx(df.loc[0, "std_epistemic"])


def test_bad_arguments_and_artefacts(tmp_path, ensemble):
    with pytest.raises(ValueError, match="valid: different, same"):
        fit_ensemble(COMPS, Y, "regression", tiny_config(), 2, split="bagging")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_members"):
        fit_ensemble(COMPS, Y, "regression", tiny_config(), 0)
    with pytest.raises(ValueError, match="seeds"):
        fit_ensemble(COMPS, Y, "regression", tiny_config(), 2, seeds=[1])
    ens, _ = ensemble
    single = ens.members[0].save(tmp_path / "single")
    with pytest.raises(ArtefactError, match="not an ensemble"):
        Ensemble.load(single)


def test_uncertainty_scores():
    y, mean, std = np.zeros(4), np.array([0.5, -0.5, 3.0, 0.1]), np.ones(4)
    s = uncertainty_scores(y, mean, std)
    assert s["coverage_1sigma"] == 0.75 and s["coverage_2sigma"] == 0.75
    assert s["mean_std"] == 1.0
    assert uncertainty_scores(y, mean, np.full(4, np.nan)) == {}


@pytest.mark.parametrize("task_type", ["regression", "classification"])
def test_shared_split_ensemble_scores_its_validation_rows_as_fit_does(task_type):
    # one member on the shared split: the ensemble's score of its (one-member) mean prediction is
    # the member's own best validation score; float32 forward passes scored in float64 here vs
    # float32 in fit agree to a few float32 ulps per row, far inside 1e-4 relative
    y = Y if task_type == "regression" else (np.median(Y) < Y).astype(float)
    kw = {"class_weight": "balanced"} if task_type == "classification" else {}
    ens = fit_ensemble(COMPS, y, task_type, tiny_config(**kw), 1, split="same", progress=False)
    member = ens.members[0]
    assert ens.info["n_val"] == member.info["n_val"] == 8
    assert ens.info["val_metric"] == member.info["val_metric"]
    assert ens.info["best_val"] == pytest.approx(member.info["best_val"], rel=1e-4)
    # two members: the score of their combined prediction, on the same rows
    two = fit_ensemble(COMPS, y, task_type, tiny_config(**kw), 2, split="same", progress=False)
    assert two.info["n_val"] == 8 and np.isfinite(two.info["best_val"])


def test_per_member_splits_have_no_shared_validation_score(ensemble):
    ens, _ = ensemble
    assert ens.info["best_val"] is None and ens.info["n_val"] == 0
