"""``pretroost fit``: the command chooses, prints every candidate and saves a model that
``pretroost predict`` reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pretroost.cli import main
from tiny import BINARY_FORMULAS, capture_logs, toy_target

TINY = ["--folds", "3", "--n-estimators", "10", "--inner-folds", "2", "--recipe", "quick",
        "--epochs", "1", "--no-progress"]  # fmt: skip


def test_fit_prints_the_candidates_and_predict_reads_the_choice(tmp_path, capsys) -> None:
    t = toy_target(BINARY_FORMULAS)
    data = tmp_path / "gaps.csv"
    pd.DataFrame({"formula": BINARY_FORMULAS, "y": np.maximum(t - np.median(t), 0)}).to_csv(
        data, index=False
    )
    out = tmp_path / "model"
    code = main(["fit", "--data", str(data), "--target-col", "y", "--candidates", "trees",
                 "hurdle", "--test-fraction", "0.2", "--out", str(out), *TINY])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].startswith("trees") and "hurdle" in printed
    assert "chosen:" in printed and "rule:" in printed and "test:" in printed
    report = json.loads((out / "fit_report.json").read_text())
    assert report["candidates_considered"] == ["trees", "hurdle"]
    formulas = tmp_path / "formulas.csv"
    formulas.write_text("formula\nNaCl\nFe2O3\n")
    assert main(["predict", "--model", str(out), str(formulas)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("formula,prediction") and len(lines) == 3
    # an existing model folder is refused without --overwrite, before anything trains
    again = ["fit", "--data", str(data), "--target-col", "y", "--candidates", "trees",
             "--out", str(out), *TINY]  # fmt: skip
    assert main(again) == 1
    assert main([*again, "--overwrite"]) == 0


def test_fit_refuses_an_unknown_candidate_naming_the_valid_ones(
    tmp_path, caplog, monkeypatch
) -> None:
    capture_logs("pretroost.cli", caplog, monkeypatch)
    data = tmp_path / "d.csv"
    pd.DataFrame({"formula": BINARY_FORMULAS, "y": toy_target(BINARY_FORMULAS)}).to_csv(data)
    code = main(["fit", "--data", str(data), "--target-col", "y", "--candidates", "roost",
                 "--out", str(tmp_path / "m")])  # fmt: skip
    assert code == 1
    assert "unknown candidate(s) ['roost']; valid: trees, trees+pbe" in caplog.text
