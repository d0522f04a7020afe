"""The bench command end to end on the smoke preset: pretrain, finetune, resume, report."""

from __future__ import annotations

import json

import pytest

from pretroost.cli import main


@pytest.mark.slow
def test_bench_smoke_runs_resumes_and_reports(tmp_path, data_cache, monkeypatch) -> None:
    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    res, runs = tmp_path / "results", tmp_path / "runs"
    # the smoke preset pretrains on 300 compositions of the leak-free corpus (built if missing)
    argv = [
        "-q", "bench", "--preset", "smoke", "--strategies", "scratch", "fingerprint",
        "--results-dir", str(res), "--runs-dir", str(runs),
    ]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (res / "benchmark.jsonl").read_text().splitlines()]
    assert {r["strategy"] for r in rows} == {"scratch", "fingerprint"}
    assert (runs / "fingerprint" / "model.safetensors").is_file()
    report = (res / "README.md").read_text()
    assert "matbench_steels" in report and "fingerprint" in report
    assert (res / "scratch" / "results.json.gz").is_file()
    # resuming redoes nothing: same rows
    assert main(argv) == 0
    again = (res / "benchmark.jsonl").read_text().splitlines()
    assert len(again) == len(rows)
