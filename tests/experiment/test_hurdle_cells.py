"""The hurdle (pretroost.experiment.hurdle): zeros where a classifier of target == 0 says so."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pretroost.experiment.blend import parse_part
from pretroost.experiment.hurdle import write_hurdle, zero_probabilities
from pretroost.trees import TreesConfig

TINY = TreesConfig(
    models=("randomforest",), features=("fractions",), n_estimators=10, inner_folds=2
)


def _part(tmp_path, task: str, offset: float, seeds=(0, 1)) -> None:
    """Cells of strategy "a" on fold 0: the target + ``offset`` (two seeds: their mean)."""
    from pretroost.data.matbench import load_folds, load_task
    from pretroost.results import prediction_path

    target = load_task(task)["target"]
    test = load_folds(task)[0][1]
    for seed in seeds:
        path = prediction_path(tmp_path, "a", task, 0, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": test, "prediction": target.loc[test].to_numpy() + offset}).to_csv(
            path, index=False
        )
        row = {"strategy": "a", "task": task, "fold": 0, "seed": seed, "metric": "mae",
               "value": offset, "n_train": 3000, "epochs": 300, "seconds": 60.0,
               "git_sha": "x", "machine": "m"}  # fmt: skip
        with (tmp_path / "benchmark.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def test_hurdle_sets_likely_zeros_to_zero_and_caches_its_classifier(
    tmp_path, data_cache, monkeypatch
) -> None:
    """A part off every target by +0.3 eV: where the classifier (fitted on the training fold)
    says "zero", the hurdle predicts 0, which is exact for every true metal; it learns something
    (MAE below the part's 0.3). A second hurdle reuses the cached classifier."""
    from pretroost.data.matbench import load_task
    from pretroost.results import prediction_path, validation_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    task = "matbench_expt_gap"
    _part(tmp_path, task, 0.3)
    rows = write_hurdle(tmp_path, parse_part("a"), [task], folds=[0], config=TINY)
    (mae,) = [r for r in rows if r["metric"] == "mae"]
    assert mae["strategy"] == "hurdle(a)" and mae["value"] < 0.3
    assert mae["seconds"] > 120.0  # the two seeds' training plus the classifier's fit
    frame = pd.read_csv(prediction_path(tmp_path, "hurdle(a)", task, 0))
    truth = load_task(task)["target"].loc[frame["id"]].to_numpy()
    zeroed = frame["p_zero"] > 0.5
    assert (frame.loc[zeroed, "prediction"] == 0).all()
    np.testing.assert_allclose(frame.loc[~zeroed, "prediction"], truth[~zeroed] + 0.3)
    np.testing.assert_allclose(frame["before"], truth + 0.3)
    assert np.mean(zeroed == (truth == 0)) > 0.7  # the classifier learns something
    record = json.loads(validation_path(tmp_path, "hurdle(a)", task, 0).read_text())
    assert record["hurdle_of"] == {"strategy": "a", "seeds": [0, 1]}
    assert record["n_set_to_zero"] == int(zeroed.sum())
    assert (tmp_path / "hurdle(a)" / "results.json.gz").is_file()

    def refit(*args, **kwargs):
        raise AssertionError("the cached classifier should have been reused")

    monkeypatch.setattr("pretroost.experiment.hurdle.fit_zero_classifier", refit)
    again = write_hurdle(tmp_path, parse_part("a@0"), [task], folds=[0], config=TINY)
    assert {r["strategy"] for r in again} == {"hurdle(a@0)"}
    assert write_hurdle(tmp_path, parse_part("a"), [task], folds=[0], config=TINY) == []  # done


def test_hurdle_refuses_tasks_without_a_point_mass_at_zero(data_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    with pytest.raises(ValueError, match="exact zeros"):
        zero_probabilities(tmp_path, "matbench_steels", 0, TINY)
    with pytest.raises(ValueError, match="regression task"):
        zero_probabilities(tmp_path, "matbench_expt_is_metal", 0, TINY)


def test_hurdle_command(tmp_path, data_cache, monkeypatch, capsys) -> None:
    from pretroost.cli import main

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    _part(tmp_path, "matbench_expt_gap", 0.2, seeds=(0,))
    argv = ["hurdle", "a", "--tasks", "expt_gap", "--results-dir", str(tmp_path), "--folds", "0",
            "--models", "randomforest", "--features", "fractions", "--n-estimators", "10",
            "--inner-folds", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "hurdle(a) matbench_expt_gap fold 0: mae" in capsys.readouterr().out


def test_report_says_what_a_hurdle_is() -> None:
    from pretroost.experiment.report import _strategy_note

    note = _strategy_note("hurdle(dft+trunk@0-9)")
    assert "`dft+trunk@0-9`" in note and "set to 0" in note and "PBE" not in note
    note = _strategy_note("hurdle+pbe(blend(a|b))")
    assert "`blend(a|b)`" in note and "PBE gap teacher" in note
    assert "PBE band-gap teacher" in _strategy_note("trees+pbe")


def test_hurdle_command_names_only_one_hurdle(tmp_path) -> None:
    from pretroost.cli import main

    argv = [
        "hurdle",
        "a",
        "b",
        "--name",
        "x",
        "--tasks",
        "expt_gap",
        "--results-dir",
        str(tmp_path),
    ]
    assert main(argv) == 1
    assert main(["hurdle", "--results-dir", str(tmp_path)]) == 1  # neither mode's arguments
