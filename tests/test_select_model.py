"""pretroost.select_model (``pretroost fit``) and pretroost.blend: the candidates, the rule, the
saved choice."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import pretroost
from pretroost import select_model
from pretroost.blend import BlendPredictor, save_blend
from pretroost.data.composition import parse_formulas
from pretroost.hurdle import HurdlePredictor
from pretroost.select_model import (
    CANDIDATES,
    FitConfig,
    choose,
    default_candidates,
    has_zero_mass,
    is_band_gap,
)
from pretroost.trees import TreesConfig, fit_trees, save_trees
from tiny import BINARY_FORMULAS, toy_target

#: trees small enough for seconds, Roost for one epoch: a trial of the machinery, not a model
TINY = dict(recipe="quick", epochs=1, folds=3, n_estimators=10, inner_folds=2)


def zero_frame() -> pd.DataFrame:
    """80 rows whose target is 0 on about half of them (a band gap's point mass at 0)."""
    t = toy_target(BINARY_FORMULAS)
    return pd.DataFrame({"formula": BINARY_FORMULAS, "y": np.maximum(t - np.median(t), 0.0)})


def test_default_candidates_follow_the_stated_rules() -> None:
    y = zero_frame()["y"].to_numpy()
    assert default_candidates("y", y + 1.0, "regression") == ["trees", "dft+trunk", "blend"]
    assert default_candidates("y", y, "regression")[-1] == "hurdle"
    assert "trees+pbe" in default_candidates("band_gap_eV", y + 1.0, "regression")
    assert "trees+pbe" not in default_candidates("Gap", y, "regression", band_gap=False)
    assert is_band_gap("expt_GAP") and not is_band_gap("target") and is_band_gap("x", True)
    # the hurdle needs >= 10 % exact zeros and no negative value
    few = np.r_[np.zeros(9), np.ones(91)]
    assert not has_zero_mass(few, "regression")
    assert has_zero_mass(np.r_[np.zeros(10), np.ones(90)], "regression")
    assert not has_zero_mass(np.r_[np.zeros(50), -np.ones(50)], "regression")
    assert not has_zero_mass(np.r_[np.zeros(50), np.ones(50)], "classification")


def test_the_rule_prefers_the_simpler_candidate_within_one_standard_error() -> None:
    trees = np.array([0.50, 0.52, 0.48, 0.51, 0.49])
    close = {"trees": trees, "dft+trunk": trees - np.array([0.02, -0.01, 0.03, -0.02, 0.01])}
    chosen, lowest, reason = choose(close)
    assert (chosen, lowest) == ("trees", "dft+trunk") and "simpler" in reason
    clear = {"trees": trees, "dft+trunk": trees - 0.05 + np.array([0, 0.001, 0, 0.002, 0])}
    assert choose(clear)[0] == "dft+trunk"
    # a hurdle ranks just after the regressor it wraps: simpler than a blend
    tie = {"blend": trees, "hurdle": trees.copy()}
    assert choose(tie, hurdle_base="trees")[0] == "hurdle"
    assert choose(tie, hurdle_base="blend")[0] == "blend"
    # a candidate whose error is not finite (a diverged training) is never chosen
    assert choose({"trees": trees, "dft+trunk": trees - np.r_[np.nan, 0, 0, 0, 0]})[0] == "trees"


def test_refusals(tmp_path) -> None:
    frame = zero_frame()
    with pytest.raises(ValueError, match="valid: trees, trees\\+pbe, dft\\+trunk, blend, hurdle"):
        FitConfig(candidates=("trees", "crabnet"))
    with pytest.raises(ValueError, match="missing column"):
        pretroost.fit(frame, target_col="gap", out=tmp_path / "m", candidates=("trees",))
    with pytest.raises(ValueError, match="too few for 5-fold"):
        pretroost.fit(frame.head(40), target_col="y", out=tmp_path / "m", candidates=("trees",))
    with pytest.raises(ValueError, match="exact zeros"):
        pretroost.fit(frame.assign(y=frame["y"] + 1), target_col="y", out=tmp_path / "m",
                      candidates=("trees", "hurdle"))  # fmt: skip
    with pytest.raises(ValueError, match="needs a Roost candidate"):
        pretroost.fit(frame, target_col="y", out=tmp_path / "m", candidates=("trees", "blend"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        pretroost.fit(frame, target_col="y", out=tmp_path / "taken", candidates=("trees",))
    with pytest.raises(FileExistsError, match="did not write there"):
        pretroost.fit(frame, target_col="y", out=tmp_path / "taken", candidates=("trees",),
                      overwrite=True)  # fmt: skip


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The default candidates on 64 rows with zeros (16 held out as test), tiny settings, with
    the choice forced to the deepest folder there is: a hurdle over the blend of Roost and
    trees (the rule itself is tested above)."""
    out = tmp_path_factory.mktemp("fit") / "model"
    rule = select_model.choose

    def forced(errors, hurdle_base=None):
        return "hurdle", rule(errors, hurdle_base)[1], "forced by the test"

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(select_model, "choose", forced)
        mp.setattr(select_model, "hurdle_regressor", lambda errors: "blend")
        result = pretroost.fit(zero_frame(), target_col="y", out=out, test_fraction=0.2,
                               progress=False, **TINY)  # fmt: skip
    return result


def test_fit_scores_every_default_candidate_on_the_same_folds_and_saves_the_choice(
    fitted,
) -> None:
    assert list(fitted.candidates) == ["trees", "dft+trunk", "blend", "hurdle"]
    for c in fitted.candidates.values():
        assert len(c.fold_errors) == 3 and np.isfinite(c.fold_errors).all()
        assert np.isclose(c.mean, np.mean(c.fold_errors))
    chosen = fitted.candidates[fitted.chosen]
    assert chosen.diff_mean == 0.0 and chosen.diff_vs_chosen == [0.0, 0.0, 0.0]
    assert fitted.candidates["blend"].detail == "mean of dft+trunk and trees"
    assert fitted.candidates["hurdle"].detail == "hurdle over blend"
    report = json.loads((fitted.path / "fit_report.json").read_text())
    modes = {p.name: p.stat().st_mode & 0o777 for p in fitted.path.iterdir() if p.is_file()}
    assert modes["fit_report.json"] == modes["config.json"]
    assert report["chosen"] == fitted.chosen and set(report["candidates"]) == set(fitted.candidates)
    assert report["n_train"] == 64 and report["test"]["n_test"] == 16
    assert set(report["times"]) == {"cv_seconds", "refit_seconds", "total_seconds"}
    assert set(fitted.test_scores) == {"mae", "rmse", "max_error"}  # no mape: zeros in the test
    assert report["test"]["notes"][0].startswith("mape left out")
    card = (fitted.path / "README.md").read_text()
    assert "## Chosen by `pretroost fit`" in card and "Expected error" in card
    assert fitted.table().count("\n") == 4 and "chosen" in fitted.table()


def test_the_saved_choice_predicts_like_any_model(fitted) -> None:
    model = pretroost.load(fitted.path)
    assert isinstance(model, HurdlePredictor) and isinstance(model.regressor, BlendPredictor)
    assert [m.kind for m in model.regressor.members] == ["finetuned", "trees"]
    pred = model.predict(["NaCl", "Fe2O3", "not a formula"])
    assert np.isfinite(pred["prediction"].iloc[:2]).all()
    assert pred["error"].iloc[2] is not None and pred["error"].iloc[:2].isna().all()
    assert not list(fitted.path.parent.glob(".model.*"))  # no staging folder left behind


def test_a_target_without_zeros_gets_no_hurdle_and_a_forced_list_is_kept(tmp_path) -> None:
    frame = zero_frame().assign(y=lambda d: d["y"] + 1.0)
    result = pretroost.fit(frame, target_col="y", out=tmp_path / "m", candidates=("trees",),
                           progress=False, **TINY)  # fmt: skip
    assert list(result.candidates) == ["trees"] and result.chosen == "trees"
    assert "hurdle" not in default_candidates("y", frame["y"].to_numpy(), "regression")
    assert result.model.kind == "trees"


def test_a_saved_blend_predicts_the_mean_of_its_members(tmp_path) -> None:
    comps = parse_formulas(BINARY_FORMULAS)
    y = toy_target(BINARY_FORMULAS)
    paths = []
    for i, model in enumerate(("randomforest", "extratrees")):
        config = TreesConfig(models=(model,), features=("fractions",), n_estimators=5,
                             inner_folds=2)  # fmt: skip
        fitted = fit_trees(comps, y, "regression", config)
        paths.append(save_trees(fitted, tmp_path / f"t{i}", config=config, data="toy", n_train=80))
    out = save_blend(tmp_path / "blend", paths, data="toy", n_train=80)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["member_0", "member_1"]
    blend = pretroost.load(out)
    assert isinstance(blend, BlendPredictor) and blend.task_type == "regression"
    formulas = ["NaCl", "MgO", "bad!"]
    members = [pretroost.load(p).predict(formulas)["prediction"].to_numpy() for p in paths]
    pred = blend.predict(formulas)
    np.testing.assert_allclose(pred["prediction"].iloc[:2], np.mean(members, axis=0)[:2])
    assert pred["prediction"].isna().iloc[2] and pred["error"].iloc[2]
    assert list(pred.columns) == ["formula", *blend.columns, "error"]
    with pytest.raises(ValueError, match="2 to 16 members"):
        save_blend(tmp_path / "one", paths[:1], data="toy", n_train=80)


def test_candidates_are_listed_in_order_of_simplicity() -> None:
    assert CANDIDATES == ("trees", "trees+pbe", "dft+trunk", "blend", "hurdle")


def test_classification_is_scored_by_the_roc_auc_of_probabilities(tmp_path) -> None:
    t = toy_target(BINARY_FORMULAS)
    frame = pd.DataFrame({"formula": BINARY_FORMULAS, "label": (t > np.median(t)).astype(int)})
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    result = pretroost.fit(frame.iloc[:64], target_col="label", out=tmp_path / "m",
                           task_type="classification", test_data=frame.iloc[64:],
                           candidates=("trees",), progress=False, **TINY)  # fmt: skip
    assert result.metric == "1-rocauc" and 0 <= result.candidates["trees"].mean <= 1
    assert {"rocauc_prob", "balanced_accuracy"} <= set(result.test_scores)
    assert "probability" in result.model.predict(["NaCl"]).columns
    rare = frame.assign(label=0)
    rare.loc[:1, "label"] = 1
    with pytest.raises(ValueError, match="at least 3 rows of each class"):
        pretroost.fit(rare, target_col="label", out=tmp_path / "r", task_type="classification",
                      candidates=("trees",), **TINY)  # fmt: skip
    with pytest.raises(ValueError, match="for regression targets"):
        pretroost.fit(frame, target_col="label", out=tmp_path / "h", task_type="classification",
                      candidates=("trees", "hurdle"), **TINY)  # fmt: skip


def test_parallel_jobs_give_the_sequential_fold_errors(tmp_path) -> None:
    # each job trains on one thread: the sequential run on one thread computes the same
    frame = zero_frame().assign(y=lambda d: d["y"] + 1.0)
    kw = dict(target_col="y", candidates=("trees", "dft+trunk"), progress=False, **TINY)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = pretroost.fit(frame, out=tmp_path / "one", **kw)
    finally:
        torch.set_num_threads(threads)
    two = pretroost.fit(frame, out=tmp_path / "two", jobs=2, **kw)
    for name in ("trees", "dft+trunk"):
        assert two.candidates[name].fold_errors == one.candidates[name].fold_errors
    assert two.chosen == one.chosen and two.report["config"]["jobs"] == 2
    with pytest.raises(ValueError, match="jobs"):
        FitConfig(jobs=0)
    with pytest.raises(ValueError, match="CPU processes"):
        FitConfig(jobs=2, device="cuda")
