"""pretroost.hurdle: zeros where a classifier of target == 0 says P > 0.5; the saved model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pretroost
from pretroost.data.composition import parse_formulas
from pretroost.finetune import FinetuneConfig, fit
from pretroost.hurdle import HurdlePredictor, apply_hurdle, fit_zero_classifier, save_hurdle
from pretroost.train import TrainConfig
from pretroost.trees import TreesConfig
from tiny import BINARY_FORMULAS, TINY_ENCODER, toy_target

TINY_TREES = TreesConfig(models=("randomforest",), features=("fractions",), n_estimators=10,
                         inner_folds=2)  # fmt: skip


def gaps(formulas: list[str]) -> np.ndarray:
    """The toy target shifted down and cut at 0: about half the rows exactly 0."""
    t = toy_target(formulas)
    return np.maximum(t - np.median(t), 0.0)


def test_apply_hurdle_zeros_where_a_zero_is_more_likely_than_not() -> None:
    values = np.array([0.4, 1.2, 2.0, 0.1, 0.7])
    p_zero = np.array([0.9, 0.5, 0.2, 0.51, np.nan])
    np.testing.assert_array_equal(apply_hurdle(values, p_zero), [0.0, 1.2, 2.0, 0.0, 0.7])
    with pytest.raises(ValueError, match="probabilities"):
        apply_hurdle(values, p_zero[:3])


def test_a_zero_classifier_needs_exact_zeros_and_no_negatives() -> None:
    comps = parse_formulas(BINARY_FORMULAS)
    with pytest.raises(ValueError, match="exact zeros"):
        fit_zero_classifier(comps, toy_target(BINARY_FORMULAS) + 1.0, TINY_TREES)
    with pytest.raises(ValueError, match="exact zeros"):
        fit_zero_classifier(comps, gaps(BINARY_FORMULAS) - 0.1, TINY_TREES)


@pytest.fixture(scope="module")
def hurdle_folder(tmp_path_factory):
    """A tiny Roost regressor and a zero classifier on the same rows, saved as one folder."""
    y = gaps(BINARY_FORMULAS)
    comps = parse_formulas(BINARY_FORMULAS)
    config = FinetuneConfig(
        train=TrainConfig(epochs=2, batch_size=16), encoder=TINY_ENCODER,
        trunk_hidden=(32,), out_hidden=(16, 8),
    )  # fmt: skip
    root = tmp_path_factory.mktemp("hurdle")
    model = fit(comps, y, "regression", config)
    model.info["target"] = "gap"  # as finetune --data --target-col gap records it
    regressor = model.save(root / "reg")
    classifier = fit_zero_classifier(comps, y, TINY_TREES)
    out = save_hurdle(root / "gap_hurdle", regressor=regressor, classifier=classifier,
                      config=TINY_TREES, data="toy", n_train=len(y), target="gap")  # fmt: skip
    return out, regressor


def test_saved_hurdle_predicts_the_regressor_or_zero(hurdle_folder) -> None:
    out, regressor = hurdle_folder
    model = pretroost.load(out)
    assert isinstance(model, HurdlePredictor) and model.task_type == "regression"
    assert (out / "README.md").read_text().startswith("# pretroost hurdle")
    batch = [*BINARY_FORMULAS[:6], "Xx", "RfO2"]
    df = model.predict(batch)
    assert list(df.columns) == ["formula", "prediction", "std", "p_zero", "error"]
    plain = pretroost.load(regressor).predict(batch)
    good = df["error"].isna().to_numpy()
    assert good.tolist() == [True] * 6 + [False, False]  # bad rows reported, never dropped
    assert df.loc[~good, ["prediction", "p_zero"]].isna().all().all()
    zeroed = df["p_zero"].to_numpy() > 0.5
    assert (df.loc[zeroed, "prediction"] == 0).all()
    np.testing.assert_array_equal(
        df.loc[good & ~zeroed, "prediction"], plain.loc[good & ~zeroed, "prediction"]
    )
    np.testing.assert_array_equal(df["std"], plain["std"])
    # the classifier learns the toy zeros well enough on its own training rows
    p = model.predict(BINARY_FORMULAS)["p_zero"].to_numpy()
    assert np.mean((p > 0.5) == (gaps(BINARY_FORMULAS) == 0)) > 0.8


def test_hurdle_command_saves_a_model_that_predict_reads(hurdle_folder, tmp_path) -> None:
    from pretroost.cli import main

    _, regressor = hurdle_folder
    data = tmp_path / "gaps.csv"
    pd.DataFrame({"formula": BINARY_FORMULAS, "gap": gaps(BINARY_FORMULAS)}).to_csv(
        data, index=False
    )
    out = tmp_path / "model"
    argv = ["hurdle", "--data", str(data), "--target-col", "gap", "--regressor", str(regressor),
            "--out", str(out), "--models", "randomforest", "--features", "fractions",
            "--n-estimators", "10", "--inner-folds", "2"]  # fmt: skip
    assert main(argv) == 0
    queries = tmp_path / "q.csv"
    queries.write_text("formula\nNaCl\nFe2O3\n")
    pred = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out), str(queries), "-o", str(pred)]) == 0
    frame = pd.read_csv(pred)
    assert "p_zero" in frame.columns and len(frame) == 2
    assert main(["hurdle", "--data", str(data), "--target-col", "gap", "--out", str(out)]) == 1


def test_a_regressor_of_another_target_is_refused(hurdle_folder, tmp_path) -> None:
    """A regressor trained on another target is refused naming both; one with no recorded target
    is refused unless --allow-unknown-target; nothing is written either way."""
    import json
    import shutil

    from pretroost.cli import main
    from pretroost.trees import fit_trees, save_trees

    _, regressor = hurdle_folder
    data = tmp_path / "gaps.csv"
    pd.DataFrame({"formula": BINARY_FORMULAS, "gap": gaps(BINARY_FORMULAS)}).to_csv(
        data, index=False
    )
    comps = parse_formulas(BINARY_FORMULAS)
    steels = save_trees(
        fit_trees(comps, np.arange(len(comps), dtype=float), "regression", TINY_TREES),
        tmp_path / "steels", config=TINY_TREES, data="steels", n_train=len(comps),
        target="yield strength",
    )  # fmt: skip
    classifier = fit_zero_classifier(comps, gaps(BINARY_FORMULAS), TINY_TREES)
    kw = {"classifier": classifier, "config": TINY_TREES, "data": "toy", "n_train": len(comps)}
    with pytest.raises(ValueError, match=r"trained on target 'yield strength'.*target 'gap'"):
        save_hurdle(tmp_path / "h", regressor=steels, target="gap", **kw)
    unknown = tmp_path / "unknown"
    shutil.copytree(regressor, unknown)
    config = json.loads((unknown / "config.json").read_text())
    del config["info"]["target"]
    (unknown / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"records no target name.*--allow-unknown-target"):
        save_hurdle(tmp_path / "h", regressor=unknown, target="gap", **kw)
    assert not (tmp_path / "h").exists()
    save_hurdle(tmp_path / "h", regressor=unknown, target="gap", allow_unknown_target=True, **kw)
    argv = ["hurdle", "--data", str(data), "--target-col", "gap", "--out", str(tmp_path / "c"),
            "--models", "randomforest", "--features", "fractions", "--n-estimators", "5",
            "--inner-folds", "2", "--regressor"]  # fmt: skip
    assert main([*argv, str(steels)]) == 1
    assert main([*argv, str(unknown)]) == 1
    assert not (tmp_path / "c").exists()
    assert main([*argv, str(unknown), "--allow-unknown-target"]) == 0
    assert json.loads((tmp_path / "c" / "config.json").read_text())["target"] == "gap"
