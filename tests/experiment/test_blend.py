"""Declared blends (pretroost.experiment.blend): part syntax, weighted means, thresholds, files."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from pretroost.experiment.blend import blend_label, parse_part, write_blend


def test_parse_part_reads_seeds_and_weights() -> None:
    p = parse_part("dft+trunk@0-4=5")
    assert (p.strategy, p.seeds, p.weight) == ("dft+trunk", (0, 1, 2, 3, 4), 5.0)
    assert parse_part("trees").seeds is None and parse_part("trees").weight == 1.0
    assert parse_part("a@0,2").seeds == (0, 2)
    assert blend_label([parse_part("a@0-1"), parse_part("trees")]) == "blend(a@0-1|trees)"
    nested = parse_part("blend(a@0-4=5|b@0-2=3)=2")
    assert (nested.strategy, nested.seeds, nested.weight) == ("blend(a@0-4=5|b@0-2=3)", None, 2.0)
    for bad in ("a@x", "a@3-1", "a=0", "@0", "a@0=x"):
        with pytest.raises(ValueError):
            parse_part(bad)


def _cells(tmp_path, strategy, task, offset, seeds=(0,), threshold=None, seconds=10.0):
    from pretroost.data.matbench import load_folds, load_task
    from pretroost.results import prediction_path

    target = load_task(task)["target"]
    rows = []
    for fold, (_, test) in enumerate(load_folds(task)):
        for seed in seeds:
            path = prediction_path(tmp_path, strategy, task, fold, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame({"id": test, "prediction": target.loc[test].to_numpy() + offset})
            if threshold is not None:
                frame["threshold"] = threshold
            frame.to_csv(path, index=False)
            rows.append(
                {"strategy": strategy, "task": task, "fold": fold, "seed": seed,
                 "metric": "mae" if threshold is None else "rocauc", "value": abs(offset),
                 "n_train": 249, "epochs": 3, "seconds": seconds, "git_sha": "x", "machine": "m"}
            )  # fmt: skip
    with (tmp_path / "benchmark.jsonl").open("a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)


def test_blend_is_the_weighted_mean_of_the_parts_and_a_valid_submission(
    tmp_path, data_cache, monkeypatch
) -> None:
    """Parts off the target by +7 (two seeds) and -7: equal weights are exact; weights 3:1 leave
    3.5. The blend's rows carry the parts' training time; its file passes matbench's check."""
    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    task = "matbench_steels"
    _cells(tmp_path, "a", task, +7.0, seeds=(0, 1))
    _cells(tmp_path, "trees", task, -7.0)
    rows = write_blend(tmp_path, [parse_part("a"), parse_part("trees")], [task])
    mae = {r["fold"]: r["value"] for r in rows if r["metric"] == "mae"}
    assert mae == pytest.approx(dict.fromkeys(range(5), 0.0), abs=1e-9)
    assert {r["seconds"] for r in rows} == {30.0}  # two seeds of a and one of trees
    rows = write_blend(tmp_path, [parse_part("a=3"), parse_part("trees")], [task], name="w")
    assert {round(r["value"], 9) for r in rows if r["metric"] == "mae"} == {3.5}
    # resumed: the cells exist
    assert write_blend(tmp_path, [parse_part("a=3"), parse_part("trees")], [task], name="w") == []
    with gzip.open(tmp_path / "blend(a,trees)" / "results.json.gz", "rt") as fh:
        doc = json.load(fh)
    bench = pytest.importorskip("matbench.bench")
    assert bench.MatbenchBenchmark.from_dict(doc).is_valid


def test_blend_labels_at_the_weighted_mean_of_the_parts_thresholds(
    tmp_path, data_cache, monkeypatch
) -> None:
    from pretroost.results import prediction_path, validation_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    task = "matbench_expt_is_metal"
    _cells(tmp_path, "a+valthreshold", task, 0.0, threshold=0.3)
    _cells(tmp_path, "b", task, 0.0)
    write_blend(tmp_path, [parse_part("a+valthreshold"), parse_part("b")], [task], folds=[0])
    name = "blend(a+valthreshold|b)"
    frame = pd.read_csv(prediction_path(tmp_path, name, task, 0))
    assert frame["threshold"].unique().tolist() == [pytest.approx(0.4)]
    record = json.loads(validation_path(tmp_path, name, task, 0).read_text())
    assert [p["strategy"] for p in record["blend_of"]] == ["a+valthreshold", "b"]
    assert record["n_members"] == 2


def test_pooled_ensembles_leave_out_reference_models_and_blends() -> None:
    from pretroost.experiment.prediction_averages import _complete

    cell = {"seeds": {k: [1.0] for k in range(5)}, "folds": dict.fromkeys(range(5), 1.0)}
    cells = {s: cell for s in ("scratch", "dft+trunk", "trees", "blend(dft+trunk|trees)")}
    assert set(_complete(cells)) == {"scratch", "dft+trunk"}


def test_report_says_what_trees_and_blends_are() -> None:
    from pretroost.experiment.report import _strategy_note

    assert "not Roost" in _strategy_note("trees")
    assert "`dft+trunk`, `trees`" in _strategy_note("blend(dft+trunk|trees)")
    assert "`blend(a@0-4=5|b)`, `trees`" in _strategy_note("blend(blend(a@0-4=5|b)|trees)")
