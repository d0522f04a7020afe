"""The saved-forest size benchmark (pretroost.experiment.trees_size), on a tiny grid."""

from __future__ import annotations

import json

import pytest


def test_trees_size_writes_a_table_and_json(tmp_path, data_cache, monkeypatch, capsys) -> None:
    """Every (cap, trees) row is scored against the unpruned forest of the most trees, which
    differs from itself by exactly 0; fewer trees make a smaller file."""
    from pretroost.cli import main

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    out = tmp_path / "size"
    argv = ["trees-size", "--tasks", "matbench_steels", "--min-samples-leaf", "3",
            "--max-leaf-nodes", "16", "--n-estimators", "2", "4", "--inner-folds", "2",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    rows = doc["tasks"]["matbench_steels"]["rows"]
    caps = [(r["min_samples_leaf"], r["max_leaf_nodes"], r["n_estimators"]) for r in rows]
    assert caps == [(1, None, 2), (1, None, 4), (3, None, 2), (3, None, 4), (1, 16, 2), (1, 16, 4)]
    assert rows[1]["delta_error"] == 0.0 and rows[0]["size_bytes"] < rows[1]["size_bytes"]
    assert all(r["size_bytes_deflated"] < r["size_bytes"] for r in rows)
    assert rows[4]["leaves_per_tree"] <= 16
    table = out.with_suffix(".md").read_text()
    assert "pretroost trees-size --tasks matbench_steels" in table
    assert table == capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["trees-size", "--tasks", "matbench_jdft2d"])


def test_boosting_rows_are_iterations_scored_by_roc_auc(tmp_path, data_cache, monkeypatch) -> None:
    """A classification task's gradient boosting: no caps, one row per number of iterations,
    the error 1 - ROC AUC of the inner folds' probabilities, fewer iterations a smaller file."""
    from pretroost.cli import main

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    out = tmp_path / "size"
    argv = ["trees-size", "--tasks", "matbench_glass", "--min-samples-leaf", "3",
            "--n-estimators", "2", "5", "--inner-folds", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    task = json.loads(out.with_suffix(".json").read_text())["tasks"]["matbench_glass"]
    assert (task["model"], task["error"]) == ("gradientboosting", "1 - ROC AUC")
    rows = task["rows"]
    assert [(r["min_samples_leaf"], r["max_leaf_nodes"], r["n_estimators"]) for r in rows] == [
        (1, None, 2), (1, None, 5)]  # fmt: skip
    assert all(0.0 <= r["inner_error"] <= 1.0 for r in rows) and rows[1]["delta_error"] == 0.0
    assert rows[0]["size_bytes"] < rows[1]["size_bytes"] and rows[0]["leaves_per_tree"] is None
    assert "| - | - | 5 | ≤ 31 |" in out.with_suffix(".md").read_text()
