"""Scores of your own data named for what they are (pretroost.metrics.user_scores); Matbench's
own ``rocauc`` (a balanced accuracy of labels) stays in Matbench-format results only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from pretroost.cli import main
from pretroost.metrics import score, user_scores
from test_user_data import FLAGS
from tiny import BINARY_FORMULAS


def test_classification_reports_the_rocauc_of_the_probabilities() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    prob = np.array([0.1, 0.6, 0.4, 0.8, 0.9, 0.3])
    scores, notes = user_scores("classification", y, prob)
    assert set(scores) == {"accuracy", "balanced_accuracy", "f1", "rocauc_prob"} and not notes
    assert scores["rocauc_prob"] == pytest.approx(roc_auc_score(y, prob))
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, prob > 0.5))
    assert scores["rocauc_prob"] != scores["balanced_accuracy"]  # what Matbench's rocauc equals
    at = user_scores("classification", y, prob, threshold=0.35)[0]
    assert at["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, prob > 0.35))
    one, notes = user_scores("classification", [1, 1], [0.2, 0.9])
    assert math.isnan(one["rocauc_prob"]) and "one class" in notes[0]


def test_no_mape_where_a_target_is_zero() -> None:
    scores, notes = user_scores("regression", [1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    assert scores["mape"] == pytest.approx((0.5 + 0 + 0.25) / 3) and not notes
    scores, notes = user_scores("regression", [0.0, 2.0, 4.0], [0.5, 2.0, 3.0])
    assert "mape" not in scores and "1 of 3 test targets are 0" in notes[0]
    assert scores["mae"] == pytest.approx(0.5)
    assert "mape" in score("regression", [0.0, 2.0], [0.5, 1.0])  # Matbench's masked one stays


def _csv(path: Path, targets) -> Path:
    rows = BINARY_FORMULAS[: len(targets)]
    path.write_text(
        "formula,target\n" + "".join(f"{f},{t}\n" for f, t in zip(rows, targets, strict=True))
    )
    return path


def test_finetune_data_reports_named_scores(tmp_path: Path, capsys) -> None:
    labels = [i % 2 for i in range(40)]
    clf = _csv(tmp_path / "clf.csv", labels)
    argv = ["finetune", "--data", str(clf), "--task-type", "classification", *FLAGS]
    assert main([*argv, "--out", str(tmp_path / "c")]) == 0
    scores = json.loads((tmp_path / "c" / "metrics.json").read_text())["scores"]
    assert set(scores) == {"accuracy", "balanced_accuracy", "f1", "rocauc_prob"}
    reg = _csv(tmp_path / "reg.csv", [0.0 if i % 4 == 0 else 1.0 + i for i in range(40)])
    assert main(["finetune", "--data", str(reg), "--out", str(tmp_path / "r"), *FLAGS]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "mape" not in metrics["scores"] and "mape left out" in metrics["notes"][0]
    capsys.readouterr()
