"""The report lists cells recorded from a modified package."""

from __future__ import annotations

from pretroost.experiment.report import modified_tree_lines


def test_modified_tree_lines() -> None:
    row = {"strategy": "scratch", "task": "matbench_steels", "fold": 1, "git_sha": "abc"}
    assert modified_tree_lines([row]) == []
    lines = modified_tree_lines([row, {**row, "fold": 2, "git_sha": "abc+dirty"}])
    assert "## Cells recorded from a modified tree" in lines
    assert "| scratch | matbench_steels | 2 |" in lines
