"""Validation-only strategy selection (``pretroost select``, ``bench --select``) on a synthetic
results folder whose test scores disagree with the validation scores on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pretroost.cli import main
from pretroost.evaluation.matbench import select_strategy, selection_label
from pretroost.metrics import score
from pretroost.results import (
    append_benchmark_rows,
    prediction_path,
    read_benchmark_rows,
    rebuild_results,
    strategy_dir,
    strategy_folder,
    validation_path,
)

TASK = "matbench_steels"
#: per fold: (A's validation score, B's validation score); A wins folds 0, 2 and 4 (4: a tie)
VAL = {0: (0.2, 0.3), 1: (0.5, 0.1), 2: (0.1, 0.4), 3: (0.6, 0.2), 4: (0.3, 0.3)}


def _write_cell(res, strategy, fold, frame, test_error, best_val, seconds) -> None:
    """A finished cell: predictions off the targets by ``test_error``, record, benchmark rows."""
    with_error = frame.assign(prediction=frame["target"] + test_error)
    path = prediction_path(res, strategy, TASK, fold)
    path.parent.mkdir(parents=True, exist_ok=True)
    with_error[["id", "prediction"]].to_csv(path, index=False)
    if best_val is not None:
        record = {"best_val": best_val, "val_metric": "normalised_mae", "n_val": 20,
                  "best_epoch": 3, "n_members": 1}  # fmt: skip
        validation_path(res, strategy, TASK, fold).write_text(json.dumps(record))
    scores = score("regression", frame["target"].to_numpy(), with_error["prediction"].to_numpy())
    append_benchmark_rows(res / "benchmark.jsonl", [
        {"strategy": strategy, "task": TASK, "fold": fold, "seed": 0, "metric": m,
         "value": v, "n_train": 250, "epochs": 10, "seconds": seconds, "git_sha": "x",
         "machine": "m"}
        for m, v in scores.items()
    ])  # fmt: skip


@pytest.fixture
def results(tmp_path, data_cache, monkeypatch):
    from pretroost.data.matbench import load_folds, load_task

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    res = tmp_path / "results"
    targets = load_task(TASK)["target"]
    for k, (test_ids, (val_a, val_b)) in enumerate(
        zip([t for _, t in load_folds(TASK)], VAL.values(), strict=True)
    ):
        frame = pd.DataFrame({"id": test_ids, "target": targets.loc[test_ids].to_numpy()})
        # the test errors rank the candidates the other way round on every fold
        err_a, err_b = (50.0, 10.0) if val_a <= val_b else (10.0, 50.0)
        _write_cell(res, "A", k, frame, err_a, val_a, seconds=100.0)
        _write_cell(res, "B", k, frame, err_b, val_b, seconds=30.0)
    for s in ("A", "B"):
        rebuild_results(res, s)
    return res


def test_pick_follows_validation_never_test(results) -> None:
    rows = select_strategy(results, TASK, ["A", "B"])
    label = selection_label(["A", "B"])
    assert label == "select(A|B)"
    # the folder writes "|" as ",", so that the results tree checks out on every file system
    assert not (results / label).exists()
    record = json.loads((results / "select(A,B)" / "selection" / f"{TASK}.json").read_text())
    picks = {e["fold"]: e["pick"] for e in record["folds"]}
    assert picks == {0: "A", 1: "B", 2: "A", 3: "B", 4: "A"}  # fold 4: a tie, the first listed
    assert record["folds"][1]["scores"] == {"A": 0.5, "B": 0.1}
    # the selection's rows are the picked cells' scores (worse than either candidate's best on
    # test, by construction), costed as both candidates' training
    all_rows = read_benchmark_rows(results / "benchmark.jsonl")
    mae = {(r["strategy"], r["fold"]): r["value"] for r in all_rows if r["metric"] == "mae"}
    for k, pick in picks.items():
        assert mae[(label, k)] == mae[(pick, k)] == pytest.approx(50.0)
    assert {r["seconds"] for r in rows} == {130.0} and {r["strategy"] for r in rows} == {label}
    assert set(all_rows[-1]) == set(all_rows[0])  # the same schema (append validated them)
    csv = pd.read_csv(prediction_path(results, label, TASK, 1))
    assert csv.equals(pd.read_csv(prediction_path(results, "B", TASK, 1)))
    assert json.loads(validation_path(results, label, TASK, 1).read_text())["selected"] == "B"
    assert (results / "select(A,B)" / "results.json.gz").is_file()
    # again: nothing changed, nothing appended; a user-given name
    assert select_strategy(results, TASK, ["A", "B"]) == []
    named = select_strategy(results, TASK, ["B", "A"], label="tuned")
    assert {r["fold"] for r in named} == set(range(5))
    picks_ba = json.loads((results / "tuned" / "selection" / f"{TASK}.json").read_text())["folds"]
    assert picks_ba[4]["pick"] == "B"  # ties go to the first listed


def test_cells_without_validation_scores_are_named(results) -> None:
    validation_path(results, "B", TASK, 3).unlink()
    with pytest.raises(
        ValueError, match=r"no validation score.*B/predictions/matbench_steels/fold_3\.json"
    ):
        select_strategy(results, TASK, ["A", "B"])
    with pytest.raises(ValueError, match="one of its candidates"):
        select_strategy(results, TASK, ["A", "B"], label="A")
    with pytest.raises(ValueError, match="distinct"):
        select_strategy(results, TASK, ["A", "A"])
    with pytest.raises(ValueError, match="cannot name a folder"):
        select_strategy(results, TASK, ["A", "B"], label="a/b")
    with pytest.raises(ValueError, match="no fold has predictions"):
        select_strategy(results, TASK, ["A", "C"])


def test_scores_of_different_kinds_are_not_compared(results) -> None:
    """A tree cell's inner-CV MAE (MPa) and a finetuned cell's normalised MAE are not one scale."""
    path = validation_path(results, "B", TASK, 2)
    path.write_text(json.dumps({**json.loads(path.read_text()), "val_metric": "inner_cv_mae"}))
    with pytest.raises(ValueError, match=r"not comparable.*inner_cv_mae, normalised_mae"):
        select_strategy(results, TASK, ["A", "B"])


def test_select_command(results) -> None:
    argv = ["-q", "select", "--results-dir", str(results), "--tasks", "steels", "--candidates",
            "B", "A", "--label", "best"]  # fmt: skip
    assert main(argv) == 0
    rows = [r for r in read_benchmark_rows(results / "benchmark.jsonl") if r["strategy"] == "best"]
    assert sorted({r["fold"] for r in rows}) == [0, 1, 2, 3, 4]
    validation_path(results, "A", TASK, 0).unlink()
    assert main([*argv, "--label", "other"]) == 1  # an error message, not a traceback


def test_bench_select_candidates_must_be_bench_strategies(tmp_path) -> None:
    from pretroost.experiment.bench import run_bench

    with pytest.raises(ValueError, match="not among this run's strategies"):
        run_bench("smoke", strategies=["scratch"], select=["scratch", "ssl"], results_dir=tmp_path)
    assert not (tmp_path / "benchmark.jsonl").exists()  # checked before anything ran


@pytest.mark.parametrize(
    ("strategy", "folder"),
    [("dft+trunk", "dft+trunk"), ("select(a|b+trunk)", "select(a,b+trunk)"), ("x y", "x y")],
)
def test_strategy_folder_is_portable(strategy: str, folder: str) -> None:
    assert strategy_folder(strategy) == folder
    assert strategy_dir("r", strategy) == Path("r") / folder


@pytest.mark.parametrize(
    "strategy", ["a:b", "a/b", "a\\b", "a?", "a*", '"a"', "<a>", "a\tb", "..", ""]
)
def test_strategy_folder_refuses_unportable_names(strategy: str) -> None:
    with pytest.raises(ValueError, match="cannot name a folder"):
        strategy_folder(strategy)
