"""Leaderboard references (pretroost.experiment.leaderboard): fold scores and paired comparisons."""

from __future__ import annotations

import pytest

from pretroost.experiment.leaderboard import LEADERBOARD, against_leaderboard, entries


def test_fold_scores_give_the_printed_means() -> None:
    """Five folds per entry whose mean is the page's mean to its printed four decimals."""
    for task, board in LEADERBOARD.items():
        for entry in entries(task):
            assert entry.folds is not None and len(entry.folds) == 5, (task, entry.algorithm)
            # both are rounded to 1e-4: their mean can differ from the printed mean by 1e-4
            assert sum(entry.folds) / 5 == pytest.approx(entry.mean, abs=1.01e-4)
        assert board.modnet is None or board.modnet in entries(task)


def test_against_leaderboard_is_paired_and_knows_which_way_is_better() -> None:
    modnet = LEADERBOARD["matbench_steels"].modnet
    assert modnet is not None and modnet.folds is not None
    ours = {k: v - 5.0 for k, v in enumerate(modnet.folds)}  # 5 MPa better on every fold
    ours[4] += 10.0  # ...but 5 MPa worse on fold 4
    (row,) = [
        r
        for r in against_leaderboard("matbench_steels", ours)
        if r["algorithm"] == modnet.algorithm
    ]
    assert (row["better"], row["n"]) == (4, 5)
    assert row["mean_diff"] == pytest.approx(-3.0)
    assert row["ours"] - row["theirs"] == pytest.approx(-3.0)
    glass = LEADERBOARD["matbench_glass"].rf_scm_magpie
    assert glass is not None and glass.folds is not None
    higher = {k: v + 0.01 for k, v in enumerate(glass.folds)}  # ROC-AUC: higher is better
    rows = {r["algorithm"]: r for r in against_leaderboard("matbench_glass", higher)}
    assert rows["RF-SCM/Magpie"]["better"] == 5
    assert against_leaderboard("matbench_mp_gap", {0: 0.1}) == []  # not on the board
