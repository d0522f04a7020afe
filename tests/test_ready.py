"""Ready property models (pretroost.ready): each shipped one loads by name, offline, and
reproduces the predictions recorded when it was built; bad rows keep their error; the folders fit
the size budget; expt-gap gives no negative gap and a std that is the mixture's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import pretroost
from pretroost.pretrained import ROOT, shipped
from pretroost.ready import RECIPES, ReadyRecipe, fit_ready, get_recipe, predict_ready

READY = sorted(shipped("ready"))
MIB = 2**20
#: float32 unit roundoff: oqmd-dft runs a float32 Roost forward pass; the trees compute in float64
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def models() -> dict:
    return {}


def _load(models: dict, name: str):
    if name not in models:
        models[name] = pretroost.load(name)
    return models[name]


def _skip_unless_shipped(name: str) -> None:
    if name not in shipped("ready"):
        pytest.skip(f"{name} is not built in this checkout (pretroost ready build {name})")


@pytest.mark.parametrize("name", READY or ["<none shipped>"])
def test_ready_model_reproduces_its_reference_predictions(name, models) -> None:
    _skip_unless_shipped(name)
    folder = shipped("ready")[name]
    ref = json.loads((folder / "reference.json").read_text())
    got = _load(models, name).predict(ref["formulas"], errors="raise")
    # float64 trees stored exactly: only summation order may differ; a float32 forward pass:
    # rounding grows with depth (the bound of tests/test_shipped.py is of this size)
    rel = 1e-9 if RECIPES[name].kind != "dft" else 1e4 * EPS32
    for col, want in ref["columns"].items():
        want = np.array(want, dtype=np.float64)
        scale = max(float(np.nanmax(np.abs(want))), 1.0)
        np.testing.assert_allclose(got[col].to_numpy(np.float64), want, rtol=0, atol=rel * scale)
    assert got["in_domain"].tolist() == ref["in_domain"]
    assert list(got.columns[-4:]) == ["in_domain", "domain_reason", "nearest", "error"]


@pytest.mark.parametrize("name", READY or ["<none shipped>"])
def test_bad_rows_keep_their_error(name, models) -> None:
    _skip_unless_shipped(name)
    frame = _load(models, name).predict(pd.Series(["Fe2O3", "not a formula", ""], index=[7, 8, 9]))
    assert list(frame.index) == [7, 8, 9]
    assert frame["error"].iloc[0] is None
    assert frame["error"].iloc[1] and frame["error"].iloc[2]
    assert (
        frame.iloc[1:][[c for c in frame.columns if c not in ("formula", "error")]]
        .isna()
        .all(axis=None)
    )


def test_every_recipe_is_shipped_and_within_the_size_budget() -> None:
    assert set(shipped("ready")) == set(RECIPES)
    total = 0
    for folder in shipped().values():
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        assert size <= 10 * MIB, folder
        total += size
    assert total <= 40 * MIB
    card = (ROOT / "expt-gap" / "README.md").read_text()
    assert "pretroost ready build expt-gap" in card and "Expected error" in card


def test_expt_gap_has_no_negative_gap_and_the_mixture_std(models) -> None:
    from pretroost.data.composition import parse_formulas
    from pretroost.ready import _features, _positive, _tree_mean_std
    from pretroost.uncertainty import mixture_std

    _skip_unless_shipped("expt-gap")
    model = _load(models, "expt-gap")
    formulas = ["Cu", "Fe", "NaCl", "GaN", "Si", "ZnO", "Bi2Te3", "CsPbI3", "TiO2", "Al0.5Ga0.5As"]
    frame = model.predict(formulas, errors="raise")
    gap, std, p = (frame[c].to_numpy(np.float64) for c in ("prediction", "std", "p_metal"))
    assert (gap >= 0).all() and (std >= 0).all()
    assert (gap[p > 0.5] == 0).all()
    assert (frame["label"] == np.where(p > 0.5, "metal", "non-metal")).all()
    fitted = model.fitted
    comps = parse_formulas(formulas)
    x = _features(comps, fitted.recipe.features, fitted.estimators["teacher"])
    mean, spread = _tree_mean_std(fitted.estimators["model"], x)
    want = mixture_std(p, np.maximum(mean, 0), _positive(fitted.scale * spread))
    np.testing.assert_allclose(std, want, rtol=1e-12)
    assert (gap[p <= 0.5] == np.maximum(mean, 0)[p <= 0.5]).all()


def test_fit_ready_on_a_tiny_task() -> None:
    """The recipe kinds fit and predict on a few rows (scale from inner folds, threshold)."""
    from tests.tiny import BINARY_FORMULAS

    from pretroost.data.composition import parse_formulas

    comps = parse_formulas(BINARY_FORMULAS[:40])
    y = np.linspace(0, 3, len(comps))
    y[::3] = 0
    base = get_recipe("steels-yield")
    reg = ReadyRecipe.from_dict({**base.to_dict(), "n_estimators": 10})
    out = predict_ready(fit_ready(reg, comps, y), comps)
    assert out["prediction"].shape == out["std"].shape == (len(comps),)
    hurdle = ReadyRecipe(
        name="t", kind="hurdle", task="matbench_expt_gap", quantity="gap", unit="eV",
        model="extratrees", features="fractions", n_estimators=10, zero_model="randomforest",
        zero_features="fractions", zero_n_estimators=10,
    )  # fmt: skip
    res = predict_ready(fit_ready(hurdle, comps, y), comps)
    assert (res["prediction"] >= 0).all() and ((res["p_metal"] >= 0) & (res["p_metal"] <= 1)).all()
    clf = ReadyRecipe(
        name="c", kind="trees", task="matbench_glass", quantity="glass", model="randomforest",
        features="fractions", n_estimators=10, threshold="validation",
    )  # fmt: skip
    fitted = fit_ready(clf, comps, (y > 1).astype(float))
    assert 0 < fitted.threshold < 1
    with pytest.raises(ValueError, match="unknown ready model"):
        get_recipe("nope")
