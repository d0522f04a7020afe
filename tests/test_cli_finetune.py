"""`pretroost finetune` in-process: Matbench folds and the user-data path (incl. --ensemble)."""

from __future__ import annotations

import json

import pandas as pd

from pretroost.cli import main

TINY = ["--elem-fea-len", "8", "--n-graph", "1", "--heads", "1", "--hidden", "8",
        "--trunk-hidden", "16", "--out-hidden", "8,4"]  # fmt: skip


def test_finetune_user_csv_ensemble(tmp_path) -> None:
    rows = [
        "Fe2O3",
        "NaCl",
        "SiO2",
        "GaN",
        "Al2O3",
        "MgO",
        "ZnO",
        "TiO2",
        "CuO",
        "NiO",
        "LiF",
        "KCl",
    ] * 2
    csv = tmp_path / "data.csv"
    pd.DataFrame({"formula": rows, "target": range(len(rows))}).to_csv(csv, index=False)
    out = tmp_path / "model"
    argv = [
        "finetune",
        "--data",
        str(csv),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--ensemble",
        "2",
        *TINY,
    ]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "ensemble"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["scores"]) >= {"mae", "rmse", "coverage_1sigma"}  # as `ensemble` reports
    assert len(metrics["member_mae"]) == 2
    assert "split0" not in (out / "README.md").read_text()
    assert "# pretroost Roost deep ensemble: model" in (out / "README.md").read_text()


def test_finetune_matbench_fold_writes_results(tmp_path, data_cache) -> None:
    res = tmp_path / "results"
    argv = [
        "finetune",
        "--task",
        "steels",
        "--folds",
        "0",
        "--epochs",
        "1",
        "--results-dir",
        str(res),
        *TINY,
    ]
    assert main(argv) == 0
    rows = [json.loads(x) for x in (res / "benchmark.jsonl").read_text().splitlines()]
    assert {r["metric"] for r in rows} == {"mae", "rmse", "mape", "max_error"}
    assert all(r["strategy"] == "scratch" and r["fold"] == 0 for r in rows)
    assert (res / "scratch" / "predictions" / "matbench_steels" / "fold_0.csv").is_file()
    # resuming skips the finished fold
    assert main(argv) == 0
    assert len((res / "benchmark.jsonl").read_text().splitlines()) == len(rows)
