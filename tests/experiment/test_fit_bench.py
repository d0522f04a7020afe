"""pretroost.experiment.fit_bench: ``pretroost fit`` on an official training fold, scored on
its test fold and written as a bench cell."""

from __future__ import annotations

import json

from pretroost.cli import main
from pretroost.results import prediction_path, read_benchmark_rows, validation_path


def test_fit_bench_writes_a_cell_with_the_choice(tmp_path, data_cache, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    argv = ["fit-bench", "--tasks", "steels", "--official-folds", "0", "--candidates", "trees",
            "--folds", "3", "--n-estimators", "5", "--inner-folds", "2", "--recipe", "quick",
            "--results-dir", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "fit-quick matbench_steels fold 0: mae" in capsys.readouterr().out
    record = json.loads(
        validation_path(tmp_path / "results", "fit-quick", "matbench_steels", 0).read_text()
    )
    assert record["selected"] == "trees" and list(record["cv"]) == ["trees"]
    assert len(record["cv"]["trees"]["fold_errors"]) == 3
    assert prediction_path(tmp_path / "results", "fit-quick", "matbench_steels", 0).is_file()
    rows = read_benchmark_rows(tmp_path / "results" / "benchmark.jsonl")
    assert {r["metric"] for r in rows} == {"mae", "rmse", "mape", "max_error"}
    assert (
        tmp_path / "runs" / "fit-quick" / "matbench_steels" / "fold_0" / "fit_report.json"
    ).is_file()
    assert main(argv) == 0 and capsys.readouterr().out == ""  # done: resumed, nothing rerun
