"""Tree reference models (pretroost.trees): features, choices, learning, cells in bench layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pretroost.artefacts import MANIFEST
from pretroost.data.composition import MAX_Z, parse_formulas
from pretroost.trees import TreesConfig, composition_features, fit_trees

TINY = {"n_estimators": 20, "inner_folds": 3}


def _alloys(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Random Fe–Ni–Cr–C alloys; the target is linear in the C and Cr fractions."""
    rng = np.random.default_rng(seed)
    x = rng.dirichlet([4.0, 2.0, 2.0, 1.0], size=n) + 1e-3
    formulas = [f"Fe{a:.4f}Ni{b:.4f}Cr{c:.4f}C{d:.4f}" for a, b, c, d in x]
    return formulas, 1000.0 * x[:, 3] + 200.0 * x[:, 2]


def test_fractions_put_each_element_in_its_column() -> None:
    comps = parse_formulas(["Fe2O3", "NaCl"])
    x = composition_features(comps, "fractions")
    assert x.shape == (2, MAX_Z)
    assert x[0, 26 - 1] == pytest.approx(0.4) and x[0, 8 - 1] == pytest.approx(0.6)
    assert x[1, 11 - 1] == pytest.approx(0.5) and x[1, 17 - 1] == pytest.approx(0.5)
    np.testing.assert_allclose(x.sum(axis=1), 1.0)
    both = composition_features(comps, "fractions+magpie")
    np.testing.assert_array_equal(both[:, :MAX_Z], x)
    assert both.shape[1] == MAX_Z + composition_features(comps, "magpie").shape[1]


def test_unknown_choices_raise_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="extratrees"):
        TreesConfig(models=("xgboost",))
    with pytest.raises(ValueError, match="fractions"):
        TreesConfig(features=("oxidation",))
    with pytest.raises(ValueError, match="fractions"):
        composition_features(parse_formulas(["NaCl"]), "oxidation")


def test_fit_trees_learns_a_regression_and_records_every_candidate() -> None:
    formulas, y = _alloys(160)
    comps = parse_formulas(formulas[:120])
    fitted = fit_trees(comps, y[:120], "regression", TreesConfig(**TINY))
    assert len(fitted.inner_scores) == len(TreesConfig().candidates())
    assert fitted.inner_scores[f"{fitted.model}/{fitted.features}"] == min(
        fitted.inner_scores.values()
    )
    pred = fitted.predict(parse_formulas(formulas[120:]))
    baseline = np.abs(y[120:] - y[:120].mean()).mean()
    assert np.abs(pred - y[120:]).mean() < 0.5 * baseline  # learns something


def test_fit_trees_classifies_with_probabilities_of_class_one() -> None:
    formulas, y = _alloys(160, seed=1)
    labels = (y > np.median(y)).astype(float)
    fitted = fit_trees(
        parse_formulas(formulas[:120]), labels[:120], "classification",
        TreesConfig(models=("randomforest",), features=("fractions",), **TINY),
    )  # fmt: skip
    assert -fitted.inner_scores["randomforest/fractions"] > 0.7  # inner balanced accuracy
    prob = fitted.predict(parse_formulas(formulas[120:]))
    assert ((prob >= 0) & (prob <= 1)).all()
    assert ((prob > 0.5) == (labels[120:] == 1)).mean() > 0.7


def test_validation_threshold_is_chosen_on_out_of_fold_probabilities() -> None:
    """An imbalanced task (about 80 % positive): the rule picks each candidate's threshold from
    its inner folds' probabilities, and scores it there at least as well as at 0.5."""
    from pretroost.metrics import score, to_labels

    formulas, y = _alloys(200, seed=2)
    labels = (y > np.quantile(y, 0.2)).astype(float)
    comps = parse_formulas(formulas[:150])
    kw = {"models": ("randomforest", "extratrees"), "features": ("fractions",), **TINY}
    fixed = fit_trees(comps, labels[:150], "classification", TreesConfig(**kw))
    chosen = fit_trees(
        comps, labels[:150], "classification", TreesConfig(threshold="validation", **kw)
    )
    assert fixed.threshold == 0.5 and fixed.thresholds == {}
    assert set(chosen.thresholds) == set(chosen.inner_scores) == set(fixed.inner_scores)
    best = f"{chosen.model}/{chosen.features}"
    assert chosen.threshold == chosen.thresholds[best] and 0 < chosen.threshold < 1
    assert chosen.inner_scores[best] == min(chosen.inner_scores.values())
    assert -chosen.inner_scores[best] > 0.7  # pooled out-of-fold balanced accuracy
    prob = chosen.predict(parse_formulas(formulas[150:]))
    ba = score("classification", labels[150:], to_labels(prob, chosen.threshold))
    assert ba["balanced_accuracy"] > 0.6  # learns something on held-out rows
    with pytest.raises(ValueError, match="valid: fixed, validation"):
        TreesConfig(threshold="best")  # type: ignore[arg-type]
    formulas, y = _alloys(40)
    with pytest.raises(ValueError, match="needs a classification task"):  # no silent no-op
        fit_trees(parse_formulas(formulas), y, "regression", TreesConfig(threshold="validation"))


def test_trees_command_refuses_a_threshold_on_regression_tasks(tmp_path) -> None:
    """Checked before any fold is fitted, naming the regression tasks."""
    from pretroost.cli import main

    argv = ["trees", "--tasks", "glass", "steels", "--results-dir", str(tmp_path),
            "--threshold", "validation"]  # fmt: skip
    assert main(argv) == 1
    assert not (tmp_path / "benchmark.jsonl").exists()


def test_run_trees_task_writes_a_bench_cell(tmp_path, data_cache, monkeypatch) -> None:
    from pretroost.data.matbench import load_folds
    from pretroost.evaluation.trees import run_trees_task
    from pretroost.results import prediction_path, read_benchmark_rows, validation_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    config = TreesConfig(models=("extratrees",), features=("fractions",), **TINY)
    rows = run_trees_task("steels", config, results_dir=tmp_path, folds=[0])
    assert {r["metric"] for r in rows} >= {"mae", "rmse"} and all(r["epochs"] == 0 for r in rows)
    cell = prediction_path(tmp_path, "trees", "matbench_steels", 0)
    record = json.loads(validation_path(tmp_path, "trees", "matbench_steels", 0).read_text())
    assert record["selected"] == "extratrees/fractions"
    assert list(record["inner_scores"]) == ["extratrees/fractions"]
    assert cell.read_text().splitlines()[0] == "id,prediction"
    assert len(cell.read_text().splitlines()) == 1 + len(load_folds("steels")[0][1])
    assert len(read_benchmark_rows(tmp_path / "benchmark.jsonl")) == len(rows)
    assert run_trees_task("steels", config, results_dir=tmp_path, folds=[0]) == []  # resumed


def test_trees_and_blend_commands(tmp_path, data_cache, monkeypatch, capsys) -> None:
    """`pretroost trees` writes a cell; `pretroost blend` of it with itself reproduces it."""
    from pretroost.cli import main

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    argv = ["trees", "--tasks", "steels", "--results-dir", str(tmp_path), "--folds", "0",
            "--models", "extratrees", "--features", "fractions", "--n-estimators", "5",
            "--inner-folds", "2"]  # fmt: skip
    assert main(argv) == 0
    assert main([*argv[:5], "--strategy", "trees2", *argv[5:]]) == 0
    out = capsys.readouterr().out
    assert "trees matbench_steels fold 0: mae" in out
    tree_mae = float(out.split()[-1])  # the line of trees2, the same model and seed
    assert main(["blend", "trees", "trees2", "--tasks", "steels", "--results-dir", str(tmp_path),
                 "--folds", "0"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip()
    assert line.startswith("blend(trees|trees2) matbench_steels fold 0: mae")
    assert float(line.split()[-1]) == pytest.approx(tree_mae)


def test_trees_command_with_a_validation_threshold(tmp_path, data_cache, monkeypatch) -> None:
    """`--threshold validation` names the cells trees+valthreshold, writes the threshold beside the
    probabilities and scores Matbench's rocauc on labels at it."""
    import pandas as pd

    from pretroost.cli import main
    from pretroost.data.matbench import load_task
    from pretroost.metrics import score, to_labels
    from pretroost.results import prediction_path, read_benchmark_rows, validation_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    argv = ["trees", "--tasks", "glass", "--results-dir", str(tmp_path), "--folds", "0",
            "--models", "extratrees", "--features", "fractions", "--n-estimators", "5",
            "--inner-folds", "2", "--threshold", "validation"]  # fmt: skip
    assert main(argv) == 0
    strategy = "trees+valthreshold"
    record = json.loads(validation_path(tmp_path, strategy, "matbench_glass", 0).read_text())
    frame = pd.read_csv(prediction_path(tmp_path, strategy, "matbench_glass", 0))
    assert record["threshold"] == record["candidate_thresholds"]["extratrees/fractions"]
    assert record["val_metric"] == "inner_cv_minus_balanced_accuracy_at_threshold"
    assert (frame["threshold"] == record["threshold"]).all()
    truth = load_task("glass").loc[frame["id"], "target"].to_numpy()
    expected = score("classification", truth, to_labels(frame["prediction"], record["threshold"]))
    (row,) = [
        r for r in read_benchmark_rows(tmp_path / "benchmark.jsonl") if r["metric"] == "rocauc"
    ]
    assert row["strategy"] == strategy
    assert row["value"] == pytest.approx(expected["rocauc"])


def test_saved_trees_load_and_predict_the_same(tmp_path) -> None:
    """save_trees → pretroost.load gives the same predictions, keeps bad rows, and refuses a
    model file that names a type outside scikit-learn/numpy."""
    import fractions

    import skops.io

    import pretroost
    from pretroost.artefacts import ArtefactError
    from pretroost.trees import TreesPredictor, save_trees

    formulas, y = _alloys(120, seed=3)
    labels = (y > np.quantile(y, 0.3)).astype(float)
    config = TreesConfig(models=("extratrees",), features=("fractions+magpie",),
                         threshold="validation", **TINY)  # fmt: skip
    fitted = fit_trees(parse_formulas(formulas[:90]), labels[:90], "classification", config)
    folder = save_trees(fitted, tmp_path / "m", config=config, data="alloys", n_train=90)
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "model.skops",
        "README.md",
        MANIFEST,
    }
    model = pretroost.load(folder)
    assert isinstance(model, TreesPredictor) and model.threshold == fitted.threshold
    out = model.predict([*formulas[90:], "Xx2O"])
    prob = fitted.predict(parse_formulas(formulas[90:]))
    np.testing.assert_array_equal(out["probability"].to_numpy()[:-1], prob)
    assert (out["prediction"][:-1].astype(int) == (prob > fitted.threshold)).all()
    assert out["error"].iloc[-1] and out["error"].iloc[:-1].isna().all()
    with pytest.raises(ValueError, match="no encoder"):
        model.embed(["Fe"])
    skops.io.dump({"x": fractions.Fraction(1, 3)}, folder / "model.skops")
    with pytest.raises(ArtefactError, match="outside scikit-learn"):
        pretroost.load(folder)


def test_trees_command_saves_a_model_that_predict_reads(tmp_path, capsys) -> None:
    from pretroost.cli import main

    formulas, y = _alloys(60, seed=4)
    data = tmp_path / "alloys.csv"
    data.write_text(
        "formula,ys\n" + "".join(f"{f},{v}\n" for f, v in zip(formulas, y, strict=True))
    )
    out = tmp_path / "model"
    argv = ["trees", "--data", str(data), "--target-col", "ys", "--out", str(out),
            "--models", "extratrees", "--features", "fractions", "--n-estimators", "10",
            "--inner-folds", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "extratrees/fractions" in capsys.readouterr().out
    assert main(argv) != 0  # an existing --out is refused...
    assert main([*argv, "--overwrite"]) == 0  # ...unless asked
    queries = tmp_path / "q.csv"
    queries.write_text("formula\nFe0.7Ni0.1Cr0.15C0.05\n")
    pred = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out), str(queries), "-o", str(pred)]) == 0
    lines = pred.read_text().splitlines()
    assert lines[0].startswith("formula,prediction") and len(lines) == 2


def test_a_forest_reports_the_spread_of_its_trees() -> None:
    formulas, y = _alloys(100, seed=5)
    comps = parse_formulas(formulas[:80])
    kw = {"features": ("fractions",), **TINY}
    forest = fit_trees(comps, y[:80], "regression", TreesConfig(models=("extratrees",), **kw))
    test = parse_formulas(formulas[80:])
    std = forest.predict_std(test)
    per_tree = np.stack([t.predict(test.dense()) for t in forest.estimator.estimators_])
    np.testing.assert_allclose(per_tree.mean(axis=0), forest.predict(test), rtol=1e-10)
    assert std.shape == (20,) and (std >= 0).all() and std.max() > 0
    boost = fit_trees(comps, y[:80], "regression", TreesConfig(models=("gradientboosting",), **kw))
    assert np.isnan(boost.predict_std(test)).all()


def test_caps_reach_the_forests_and_a_saved_model_gets_the_saving_defaults(tmp_path) -> None:
    """min_samples_leaf / max_leaf_nodes go to the forests (not to gradient boosting); `trees
    --out` uses TreesConfig.for_saving's caps unless a flag says otherwise (none: no cap)."""
    from pretroost.cli import main
    from pretroost.trees import tree_estimator

    config = TreesConfig(min_samples_leaf=3, max_leaf_nodes=64, n_estimators=7)
    forest = tree_estimator("randomforest", "regression", config)
    assert (forest.min_samples_leaf, forest.max_leaf_nodes, forest.n_estimators) == (3, 64, 7)
    boost = tree_estimator("gradientboosting", "regression", config)
    assert (boost.min_samples_leaf, boost.max_leaf_nodes) == (20, 31)  # scikit-learn's own
    assert TreesConfig().min_samples_leaf == 1 and TreesConfig().max_leaf_nodes is None
    saving = TreesConfig.for_saving(seed=2)
    assert saving.seed == 2 and all(getattr(saving, k) == v for k, v in TreesConfig.SAVING.items())
    # a saved model: 200 trees per forest, boosting keeps its 500 iterations
    assert tree_estimator("extratrees", "regression", saving).n_estimators == 200
    assert tree_estimator("gradientboosting", "classification", saving).max_iter == 500
    assert tree_estimator("gradientboosting", "regression", config).max_iter == 7  # unset: trees
    assert "boosting_iterations" not in TreesConfig().to_dict()  # earlier configs' digests kept
    with pytest.raises(ValueError, match="boosting_iterations"):
        TreesConfig(boosting_iterations=0)
    with pytest.raises(ValueError, match="max_leaf_nodes"):
        TreesConfig(max_leaf_nodes=1)
    formulas, y = _alloys(40, seed=6)
    data = tmp_path / "alloys.csv"
    data.write_text(
        "formula,ys\n" + "".join(f"{f},{v}\n" for f, v in zip(formulas, y, strict=True))
    )
    base = ["trees", "--data", str(data), "--target-col", "ys", "--models", "extratrees",
            "--features", "fractions", "--inner-folds", "2"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a"), "--n-estimators", "3"]) == 0
    saved = json.loads((tmp_path / "a" / "config.json").read_text())["trees_config"]
    expected = {**TreesConfig.for_saving().to_dict(), "n_estimators": 3}
    assert {k: saved[k] for k in ("n_estimators", "min_samples_leaf", "max_leaf_nodes")} == {
        k: expected[k] for k in ("n_estimators", "min_samples_leaf", "max_leaf_nodes")
    }
    argv = [*base, "--out", str(tmp_path / "b"), "--n-estimators", "3", "--min-samples-leaf",
            "2", "--max-leaf-nodes", "none"]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads((tmp_path / "b" / "config.json").read_text())["trees_config"]
    assert (saved["min_samples_leaf"], saved["max_leaf_nodes"]) == (2, None)
    assert main([*argv[:-1], "lots", "--overwrite"]) == 1


def _write_alloys(path, formulas, y, ids=True) -> None:
    head = "sample,formula,ys\n" if ids else "formula,ys\n"
    rows = [
        (f"s{i}," if ids else "") + f"{f},{v}\n"
        for i, (f, v) in enumerate(zip(formulas, y, strict=True))
    ]
    path.write_text(head + "".join(rows))


def test_trees_data_holds_out_a_test_split_like_finetune(tmp_path, capsys) -> None:
    """--test-fraction holds out the rows finetune --data would (same seed, same split code),
    scores them into metrics.json and the card; --test-data trains on every row and scores that
    file; predict carries the training id column without --id-col."""
    from pretroost.cli import main
    from pretroost.folds import holdout_split

    formulas, y = _alloys(50, seed=7)
    data, extra = tmp_path / "alloys.csv", tmp_path / "extra.csv"
    _write_alloys(data, formulas[:40], y[:40])
    _write_alloys(extra, formulas[40:], y[40:])
    base = ["trees", "--data", str(data), "--target-col", "ys", "--id-col", "sample",
            "--models", "extratrees", "--features", "fractions", "--n-estimators", "5",
            "--inner-folds", "2"]  # fmt: skip
    out = tmp_path / "m"
    assert main([*base, "--out", str(out), "--test-fraction", "0.25", "--seed", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    split = holdout_split(40, 0.25, 3)[0]
    assert (
        (metrics["n_train"], metrics["n_test"]) == (len(split.train), len(split.test)) == (30, 10)
    )
    assert metrics["scores"]["mae"] > 0 and '"mae"' in capsys.readouterr().out
    meta = json.loads((out / "config.json").read_text())
    assert meta["n_train"] == 30 and meta["test"]["n_test"] == 10 and meta["id_col"] == "sample"
    assert "Test: 10 held-out rows (10 rows): mae" in (out / "README.md").read_text()
    out2 = tmp_path / "m2"
    assert main([*base, "--out", str(out2), "--test-data", str(extra)]) == 0
    metrics = json.loads((out2 / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_test"], metrics["test"]) == (40, 10, str(extra))
    pred = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out2), str(extra), "-o", str(pred)]) == 0
    lines = pred.read_text().splitlines()
    assert lines[0].startswith("sample,formula,prediction") and lines[1].startswith("s0,")
    assert main(["trees", "--tasks", "steels", "--test-data", str(extra)]) == 1  # refused


def test_fit_trees_logs_each_candidate_without_a_terminal(caplog) -> None:
    import logging

    formulas, y = _alloys(40, seed=8)
    config = TreesConfig(models=("extratrees", "randomforest"), features=("fractions",), **TINY)
    with caplog.at_level(logging.INFO, logger="pretroost.trees"):
        fit_trees(parse_formulas(formulas), y, "regression", config, progress=False)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "trees: 2 candidate(s) x 3 inner folds on 40 rows"
    assert lines[1].startswith("trees 1/2 extratrees/fractions: inner MAE ")
    assert lines[2].startswith("trees 2/2 randomforest/fractions: inner MAE ")
    assert "refitting it on all 40 rows" in lines[3]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pretroost.trees"):
        fit_trees(parse_formulas(formulas), y, "regression", config, progress=True)
    assert not any("inner MAE" in r.getMessage() for r in caplog.records)  # the bar instead
