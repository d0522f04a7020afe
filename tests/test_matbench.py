"""Task registry, official ids, task loading, folds and Matbench-identical scoring."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from pretroost.data.matbench import (
    COMPOSITION_TASKS,
    LARGE_TASKS,
    SMALL_STRUCTURE_TASKS,
    TASKS,
    DataNotFetchedError,
    get_task,
    load_folds,
    load_task,
    official_ids,
)
from pretroost.metrics import HEADLINE, METRICS, masked_mape, score

FIXTURE = "fixtures/matbench_v0.1_automatminer_expressv2020.results.json.gz"


@pytest.fixture(scope="module")
def automatminer(shared_data: Path) -> dict[str, Any]:
    with gzip.open(shared_data / FIXTURE, "rt") as fh:
        return json.load(fh)


# ----------------------------------------------------------------------------- registry


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown Matbench task 'steel'") as err:
        get_task("steel")
    for name in TASKS:
        assert name in str(err.value)


def test_get_task_accepts_both_spellings() -> None:
    assert get_task("steels") is get_task("matbench_steels") is TASKS["matbench_steels"]
    task = get_task("log_gvrh")
    assert task.target == "log10(G_VRH)" and task.crabnet_file == "elasticity_log10(G_VRH).csv"
    assert get_task("perovskites").crabnet_file == "castelli.csv"


def test_task_groups_partition_the_registry() -> None:
    groups = [*COMPOSITION_TASKS, *SMALL_STRUCTURE_TASKS, *LARGE_TASKS]
    assert sorted(groups) == sorted(TASKS)
    assert all(TASKS[t].input_type == "composition" for t in COMPOSITION_TASKS)
    assert all(TASKS[t].input_type == "structure" for t in SMALL_STRUCTURE_TASKS + LARGE_TASKS)


def test_official_id_padding() -> None:
    assert official_ids("steels")[:2] == ["mb-steels-001", "mb-steels-002"]
    assert official_ids("steels")[-1] == "mb-steels-312"
    assert official_ids("expt_is_metal")[0] == "mb-expt-is-metal-0001"
    assert official_ids("mp_e_form")[-1] == "mb-mp-e-form-132752"
    assert official_ids("mp_e_form")[0] == "mb-mp-e-form-000001"
    assert official_ids("log_gvrh")[0] == "mb-log-gvrh-00001"
    assert official_ids("jdft2d", 636)[0] == "mb-jdft2d-001"
    # matbench uses floor(math.log(n, 10)) + 1; math.log(1000, 10) is 2.9999999999999996
    assert official_ids("steels", 999)[0] == "mb-steels-001"
    assert official_ids("steels", 1000)[0] == "mb-steels-001"
    assert official_ids("steels", 100)[0] == "mb-steels-001"


def test_registry_matches_fetched_metadata(data_cache: Path) -> None:
    metadata = json.loads((data_cache / "matbench" / "metadata.json").read_text())
    assert set(metadata) == set(TASKS)
    for name, md in metadata.items():
        task = TASKS[name]
        assert (task.target, task.task_type, task.input_type, task.n_samples) == (
            md["target"],
            md["task_type"],
            md["input_type"],
            md["n_samples"],
        )
        assert task.unit == (md["unit"] or "")


# ----------------------------------------------------------------------------- loading


def test_every_task_has_official_ids_and_folds(data_cache: Path) -> None:
    for name, task in TASKS.items():
        df = load_task(name, source="cache", cache=data_cache)
        assert len(df) == task.n_samples
        assert list(df.index) == official_ids(name)
        assert list(df.columns) == ["formula", "target"]
        assert df["target"].dtype == np.float64 and df["formula"].map(type).eq(str).all()
        if task.task_type == "classification":
            assert set(df["target"].unique()) == {0.0, 1.0}
        folds = load_folds(name, cache=data_cache)
        assert len(folds) == 5
        tests = [set(test) for _, test in folds]
        assert set().union(*tests) == set(df.index)
        assert sum(len(t) for t in tests) == task.n_samples
        for train, test in folds:
            assert not set(train) & set(test)
            assert len(train) + len(test) == task.n_samples


def test_phonons_official_json_equals_cache(shared_data: Path, data_cache: Path) -> None:
    ours = load_task("phonons", source="cache", cache=data_cache)
    official = load_task("phonons", source=shared_data / "matbench")
    same_file = load_task("phonons", source=shared_data / "matbench" / "matbench_phonons.json.gz")
    pd.testing.assert_frame_equal(official, same_file)
    assert list(official.index) == list(ours.index)
    np.testing.assert_allclose(official["target"], ours["target"], rtol=1e-12, atol=0)
    for a, b in zip(official["formula"], ours["formula"], strict=True):
        assert Composition(a) == Composition(b)


def test_matminer_route_offline(
    shared_data: Path, data_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """matminer's load_dataset reads a local file whose hash matches its metadata: no download."""
    from matminer.datasets.utils import _load_dataset_dict

    src = shared_data / "matbench" / "matbench_phonons.json.gz"
    expected = _load_dataset_dict()["matbench_phonons"]["hash"]
    if hashlib.sha256(src.read_bytes()).hexdigest() != expected:
        pytest.skip("shared phonons file is not the one this matminer expects (would download)")
    shutil.copy(src, tmp_path / src.name)
    monkeypatch.setenv("MATMINER_DATA", str(tmp_path))
    via_matminer = load_task("phonons", source="matminer")
    pd.testing.assert_frame_equal(via_matminer, load_task("phonons", source=src))
    assert list(via_matminer.index) == list(load_task("phonons", cache=data_cache).index)


def test_auto_prefers_matbench_dir(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRETROOST_MATBENCH_DIR", str(shared_data / "matbench"))
    df = load_task("phonons", cache=tmp_path)  # empty cache: must not be needed
    assert len(df) == 1265
    with pytest.raises(DataNotFetchedError, match="pretroost data fetch"):
        load_task("steels", cache=tmp_path)  # no steels json there: falls back to the cache


def test_missing_cache_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRETROOST_MATBENCH_DIR", raising=False)
    with pytest.raises(DataNotFetchedError, match="pretroost data fetch"):
        load_task("steels", cache=tmp_path)
    with pytest.raises(DataNotFetchedError, match="pretroost data fetch"):
        load_folds("steels", cache=tmp_path)


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="'auto', 'cache', 'matminer'"):
        load_task("steels", source="internet")


def test_folds_are_memoised_copies(data_cache: Path) -> None:
    a = load_folds("steels", cache=data_cache)
    a[0][1].clear()
    b = load_folds("matbench_steels", cache=data_cache)
    assert len(b[0][1]) == 63 and b[0][1][0] == "mb-steels-003"


# ----------------------------------------------------------------------------- scoring


def test_automatminer_scores_reproduced(automatminer: dict[str, Any], data_cache: Path) -> None:
    assert set(automatminer["tasks"]) == set(TASKS)
    for name, task_doc in automatminer["tasks"].items():
        task = TASKS[name]
        targets = load_task(name, source="cache", cache=data_cache)["target"]
        folds = load_folds(name, cache=data_cache)
        for k, (_, test) in enumerate(folds):
            fold = task_doc["results"][f"fold_{k}"]
            assert set(fold["data"]) == set(test)
            preds = np.asarray([fold["data"][i] for i in test])
            ours = score(task.task_type, targets.loc[test].to_numpy(), preds)
            assert set(fold["scores"]) == set(METRICS[task.task_type])
            for metric, recorded in fold["scores"].items():
                assert ours[metric] == pytest.approx(recorded, abs=1e-9, rel=0), (name, k, metric)


def test_scoring_semantics() -> None:
    assert HEADLINE == {"regression": "mae", "classification": "rocauc"}
    # MAPE drops rows with |y_true| <= 1e-5
    assert masked_mape([0.0, 1e-6, 2.0], [5.0, 5.0, 3.0]) == pytest.approx(0.5)
    reg = score("regression", [1.0, 2.0, 4.0], [1.5, 2.0, 1.0])
    assert reg == pytest.approx(
        {
            "mae": 3.5 / 3,
            "rmse": math.sqrt(9.25 / 3),
            "mape": (0.5 + 0 + 0.75) / 3,
            "max_error": 3.0,
        }
    )
    # probabilities are thresholded (p > 0.5) and ROC AUC is computed on those labels
    y = np.array([True, False, True, False])
    p = np.array([0.9, 0.6, 0.5, 0.1])
    clf = score("classification", y, p)
    assert clf["accuracy"] == 0.5
    assert clf["rocauc"] == clf["balanced_accuracy"] == 0.5
    assert score("classification", y.astype(float), p) == clf
    with pytest.raises(ValueError, match="classification"):
        score("ranking", y, p)


def test_scores_equal_matbench_score_array() -> None:
    data_ops = pytest.importorskip("matbench.data_ops")
    rng = np.random.default_rng(0)
    t = rng.normal(size=50)
    t[:3] = 0.0
    p = t + rng.normal(scale=0.3, size=50)
    assert score("regression", t, p) == data_ops.score_array(t, p, "regression")
    truth = [bool(v) for v in rng.integers(0, 2, 60)]
    probs = [float(v) for v in rng.uniform(size=60)]
    labels = [v > 0.3 for v in probs]
    for pred in (probs, labels):
        expected = data_ops.score_array(pd.Series(truth), list(pred), "classification")
        assert score("classification", np.array(truth), np.asarray(pred)) == expected
