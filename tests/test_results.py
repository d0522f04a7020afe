"""Matbench results files (checked with matbench itself) and benchmark-row files."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pretroost.data.matbench import TASKS, load_folds, load_task
from pretroost.results import (
    BENCHMARK_ROW_KEYS,
    append_benchmark_rows,
    matbench_hash,
    read_benchmark_rows,
    write_matbench_results,
)

HYPER = {"lr": 1e-3, "layers": [3, 4], "name": "roost"}
META = {"model": "roost", "pretraining": {"corpus": "oqmd", "epochs": 5}}


def _noisy_predictions(cache: Path, n_folds: int = 5) -> dict[str, list[pd.Series]]:
    rng = np.random.default_rng(42)
    out: dict[str, list[pd.Series]] = {"matbench_steels": [], "matbench_expt_is_metal": []}
    steels = load_task("steels", source="cache", cache=cache)["target"]
    metal = load_task("expt_is_metal", source="cache", cache=cache)["target"]
    for _, test in load_folds("steels", cache=cache)[:n_folds]:
        y = steels.loc[test]
        out["matbench_steels"].append((y + rng.normal(scale=80.0, size=len(y))).iloc[::-1])
    for k, (_, test) in enumerate(load_folds("expt_is_metal", cache=cache)[:n_folds]):
        y = metal.loc[test]
        prob = np.clip(0.6 * y + rng.uniform(0.0, 0.5, size=len(y)), 0.0, 1.0)
        # folds alternate between probabilities and hard labels: both are valid submissions
        out["matbench_expt_is_metal"].append(prob if k % 2 == 0 else prob > 0.5)
    return out


def _read(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def written(data_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("mb") / "results.json.gz"
    doc = write_matbench_results(
        path,
        _noisy_predictions(data_cache),
        user_metadata=META,
        authors="A. Person",
        algorithm_description="Roost, pretrained",
        info={"notes": "test"},
        hyperparameters=HYPER,
        cache=data_cache,
    )
    return path, doc


def test_schema_and_hash(written: tuple[Path, dict]) -> None:
    path, doc = written
    on_disk = _read(path)
    assert on_disk == doc
    assert list(on_disk) == [
        "@module", "@class", "version", "tasks", "user_metadata", "benchmark_name", "datestamp",
        "hash",
    ]  # fmt: skip
    assert on_disk["hash"] == matbench_hash(on_disk)
    steels = on_disk["tasks"]["matbench_steels"]
    assert list(steels) == ["@class", "@module", "benchmark_name", "dataset_name", "results"]
    assert list(steels["results"]) == [f"fold_{k}" for k in range(5)]
    fold = steels["results"]["fold_0"]
    assert list(fold) == ["data", "parameters", "scores", "uncertainty"]
    assert fold["parameters"] == {"layers": [3, 4], "lr": 1e-3, "name": "roost"}
    assert list(fold["data"]) == sorted(fold["data"])
    metal = on_disk["tasks"]["matbench_expt_is_metal"]["results"]
    assert isinstance(next(iter(metal["fold_0"]["data"].values())), float)
    assert isinstance(next(iter(metal["fold_1"]["data"].values())), bool)
    summary = on_disk["user_metadata"]["summary"]["matbench_steels"]
    assert summary["folds"] == [0, 1, 2, 3, 4]
    maes = [steels["results"][f"fold_{k}"]["scores"]["mae"] for k in range(5)]
    assert summary["scores"]["mae"]["mean"] == pytest.approx(np.mean(maes), rel=1e-15)


def test_hash_reproduces_official_submission(shared_data: Path) -> None:
    official = _read(
        shared_data / "fixtures/matbench_v0.1_automatminer_expressv2020.results.json.gz"
    )
    assert matbench_hash(official) == official["hash"]


def test_matbench_loads_and_rescores_identically(
    written: tuple[Path, dict], data_cache: Path
) -> None:
    bench = pytest.importorskip("matbench.bench")
    path, doc = written
    loaded = bench.MatbenchBenchmark.from_dict(_read(path))  # validates every task and the hash
    assert loaded.is_recorded and loaded.is_valid
    for name, task_scores in loaded.scores.items():
        for metric, stats in task_scores.items():
            ours = doc["user_metadata"]["summary"][name]["scores"][metric]
            assert {k: float(v) for k, v in stats.items()} == ours

    # matbench records the same predictions itself, scoring with its own functions
    mb = bench.MatbenchBenchmark(subset=list(doc["tasks"]))
    for name, mb_task in mb.tasks_map.items():
        task = TASKS[name]
        data = load_task(name, source="cache", cache=data_cache)
        truth = (
            data["target"].astype(bool) if task.task_type == "classification" else data["target"]
        )
        mb_task.df = pd.DataFrame(
            {task.input_type: data["formula"], task.target: truth}, index=data.index
        )
        for k, (_, test) in enumerate(load_folds(name, cache=data_cache)):
            preds = doc["tasks"][name]["results"][f"fold_{k}"]["data"]
            mb_task.record(k, [preds[i] for i in test], params=HYPER)
    mb.add_metadata(doc["user_metadata"])
    theirs = json.loads(json.dumps(mb.as_dict()))
    assert theirs["tasks"] == doc["tasks"]
    assert theirs["user_metadata"] == doc["user_metadata"]
    assert set(theirs) == set(doc)
    assert theirs["benchmark_name"] == doc["benchmark_name"]
    assert theirs["version"] == doc["version"]


def test_partial_folds_written_but_not_a_valid_submission(data_cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "partial.json.gz"
    doc = write_matbench_results(path, _noisy_predictions(data_cache, n_folds=2), cache=data_cache)
    assert list(doc["tasks"]["matbench_steels"]["results"]) == ["fold_0", "fold_1"]
    assert doc["user_metadata"]["summary"]["matbench_steels"]["folds"] == [0, 1]
    bench = pytest.importorskip("matbench.bench")
    with pytest.raises(ValueError, match="unless all folds recorded"):
        bench.MatbenchBenchmark.from_dict(_read(path))


def test_partial_folds_warn_unless_expected(
    data_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    preds = _noisy_predictions(data_cache, n_folds=2)

    def levels(**kwargs: Any) -> set[int]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pretroost.results"):
            write_matbench_results(tmp_path / "x.json.gz", preds, cache=data_cache, **kwargs)
        return {r.levelno for r in caplog.records if "will not validate" in r.getMessage()}

    assert levels() == {logging.WARNING}
    assert levels(partial=True) == {logging.INFO}


def test_bad_predictions_are_refused(data_cache: Path, tmp_path: Path) -> None:
    (_, test), *_ = load_folds("steels", cache=data_cache)
    good = pd.Series(1000.0, index=test)
    with pytest.raises(ValueError, match="not the test ids of any official fold"):
        write_matbench_results(
            tmp_path / "x.json.gz", {"steels": [good.iloc[1:]]}, cache=data_cache
        )
    with pytest.raises(ValueError, match="fold 0 given twice"):
        write_matbench_results(tmp_path / "x.json.gz", {"steels": [good, good]}, cache=data_cache)
    (_, mtest), *_ = load_folds("expt_is_metal", cache=data_cache)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_matbench_results(
            tmp_path / "x.json.gz", {"expt_is_metal": [pd.Series(1.5, index=mtest)]},
            cache=data_cache,
        )  # fmt: skip
    with pytest.raises(ValueError, match="unknown Matbench task"):
        write_matbench_results(tmp_path / "x.json.gz", {"steal": [good]}, cache=data_cache)
    assert not (tmp_path / "x.json.gz").exists()


# ----------------------------------------------------------------------------- benchmark rows


def _row(**kw: Any) -> dict[str, Any]:
    row = {
        "strategy": "scratch",
        "task": "matbench_steels",
        "fold": 0,
        "metric": "mae",
        "value": np.float64(101.5),
        "n_train": 249,
        "epochs": 10,
        "seconds": 3.2,
        "git_sha": "abc",
        "machine": "cpu",
    }
    row.update(kw)
    return row


def test_benchmark_rows_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bench.jsonl"
    assert read_benchmark_rows(path) == []
    append_benchmark_rows(path, [_row(), _row(fold=1)])
    append_benchmark_rows(path, [_row(fold=2, value=3)])
    append_benchmark_rows(path, [])
    rows = read_benchmark_rows(path)
    assert [r["fold"] for r in rows] == [0, 1, 2]
    assert rows[0]["value"] == 101.5 and isinstance(rows[2]["value"], float)
    assert all(list(r) == list(BENCHMARK_ROW_KEYS) for r in rows)
    assert [p.name for p in path.parent.iterdir() if not p.name.startswith(".")] == ["bench.jsonl"]


def test_benchmark_rows_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "bench.jsonl"
    bad = _row()
    del bad["seconds"]
    with pytest.raises(ValueError, match="missing keys \\['seconds'\\]"):
        append_benchmark_rows(path, [_row(), bad])
    with pytest.raises(ValueError, match="unexpected keys \\['extra'\\]"):
        append_benchmark_rows(path, [_row(extra=1)])
    with pytest.raises(ValueError, match="'fold' must be an int"):
        append_benchmark_rows(path, [_row(fold="0")])
    assert not path.exists()  # nothing written when any row is bad
    path.write_text("not json\n")
    with pytest.raises(ValueError, match=r"bench\.jsonl:1"):
        read_benchmark_rows(path)


def test_machine_description_names_the_cpu_model_where_linux_lists_it() -> None:
    """Rows name the CPU's family and model: CPUs sold under one name need not agree bit for bit."""

    from pretroost.utils import machine_description

    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    desc = machine_description()
    assert " cores | " in desc and desc.endswith("threads)")
    if "model name" in text and "cpu family" in text:
        assert "(family " in desc
