"""Classification made for Matbench's metric: a decision threshold chosen on validation, saved with
the model and used for scoring; probability ROC AUC beside it; class-weighted cross-entropy."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.finetune import (
    FinetuneConfig,
    FittedModel,
    SupervisedTask,
    balanced_pos_weight,
    fit,
)
from pretroost.metrics import balanced_accuracy_threshold, probability_rocauc, to_labels
from pretroost.models.roost import ModelConfig, RoostModel
from pretroost.train import TrainConfig
from tiny import BINARY_FORMULAS, tiny_encoder, toy_target

TINY = tiny_encoder(width=8, hidden=8)


def _imbalanced(seed: int = 0, n_pos: int = 15, n_neg: int = 85) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of a model that ranks well but is calibrated to the 15 % prior, so
    that few positives pass 0.5."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    p = np.r_[rng.beta(3, 4, n_pos), rng.beta(1, 6, n_neg)]
    return y, p


def test_threshold_is_the_balanced_accuracy_optimum() -> None:
    for seed in range(5):
        y, p = _imbalanced(seed)
        t = balanced_accuracy_threshold(y, p)
        ba = balanced_accuracy_score(y, p > t)
        # brute force over a fine grid and every midpoint: nothing is better
        grid = np.r_[np.linspace(0, 1, 2001), (np.sort(p)[1:] + np.sort(p)[:-1]) / 2]
        labels = p[None, :] > grid[:, None]  # (grid, n)
        tpr, tnr = labels[:, y == 1].mean(axis=1), (~labels[:, y == 0]).mean(axis=1)
        assert ba == pytest.approx(((tpr + tnr) / 2).max(), abs=1e-12)
        assert ba > balanced_accuracy_score(y, p > 0.5)  # 0.5 misses most positives here
        assert t < 0.5
        assert not np.any(p == t)  # a midpoint: no probability sits on the threshold
    # separable data: the threshold lies between the classes
    y = np.array([0, 0, 0, 1, 1])
    t = balanced_accuracy_threshold(y, np.array([0.05, 0.1, 0.2, 0.3, 0.9]))
    assert 0.2 < t < 0.3
    # nothing beats 0.5 -> 0.5 itself
    assert balanced_accuracy_threshold([0, 1], [0.1, 0.9]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        balanced_accuracy_threshold([1, 1], [0.2, 0.7])


def test_probability_rocauc_and_thresholded_labels() -> None:
    y, p = _imbalanced()
    assert probability_rocauc(y, p) == roc_auc_score(y, p)
    assert np.isnan(probability_rocauc([1, 1], [0.2, 0.3]))
    assert (to_labels(p, 0.2) == (p > 0.2)).all()
    assert (to_labels(p) == (p > 0.5)).all()


def _classifier() -> RoostModel:
    torch.manual_seed(0)
    return RoostModel(
        ModelConfig(
            encoder=TINY, task_type="classification", n_targets=1, trunk_hidden=(8,),
            out_hidden=(8, 4),
        )
    )  # fmt: skip


def test_threshold_saved_and_loaded_with_the_model(tmp_path) -> None:
    import pretroost

    fitted = FittedModel(_classifier(), "classification", None, "bce", threshold=0.3125)
    fitted.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["threshold"] == 0.3125
    loaded = FittedModel.load(tmp_path / "m")
    assert loaded.threshold == 0.3125
    # the predictor labels with the model's threshold
    predictor = pretroost.load(tmp_path / "m")
    assert predictor.threshold == 0.3125
    out = predictor.predict(BINARY_FORMULAS)
    expected = (out["probability"] > 0.3125).astype(int)
    assert (out["prediction"].astype(int) == expected).all()
    # an artefact without a threshold (written before) reads as 0.5
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["threshold"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert FittedModel.load(tmp_path / "m").threshold == 0.5


def test_class_weight_changes_the_loss_as_expected() -> None:
    model = _classifier()
    comps = parse_formulas(BINARY_FORMULAS[:12])
    y = torch.tensor([[1.0], [0.0], [0.0], [1.0]] * 3)
    batch = CompositionDataset(comps, {"y": y}).batch(np.arange(12))
    w = 3.0
    plain = SupervisedTask(model, "bce")(batch)
    weighted = SupervisedTask(model, "bce", pos_weight=torch.tensor([w]))(batch)
    logit = weighted["pred"].detach()
    log_p, log_q = F.logsigmoid(logit), F.logsigmoid(-logit)
    manual = -(w * y * log_p + (1 - y) * log_q).mean()
    torch.testing.assert_close(weighted["loss"].detach(), manual)
    # positives' share multiplied by w, negatives' unchanged
    pos_part = -(y * log_p).mean()
    torch.testing.assert_close(
        weighted["loss"].detach() - plain["loss"].detach(), (w - 1) * pos_part
    )
    # "balanced": n_neg / n_pos, which gives both classes the same total weight
    labels = np.array([[1], [0], [0], [0], [1], [0], [0], [0]])
    pw = balanced_pos_weight(labels)
    assert pw.tolist() == [3.0]
    assert pw[0] * labels.sum() == (1 - labels).sum()
    with pytest.raises(ValueError, match="both classes"):
        balanced_pos_weight(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="bce"):
        SupervisedTask(RoostModel(ModelConfig(encoder=TINY)), "robust", pos_weight=torch.ones(1))


def test_config_choices_are_validated() -> None:
    with pytest.raises(ValueError, match=r"0\.5, val_balanced_accuracy"):
        FinetuneConfig(threshold="0.4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="none, balanced"):
        FinetuneConfig(class_weight="auto")  # type: ignore[arg-type]
    assert FinetuneConfig().threshold == "0.5" and FinetuneConfig().class_weight == "none"
    with pytest.raises(ValueError, match="default, rocauc"):
        FinetuneConfig(val_metric="accuracy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="classification"):
        FinetuneConfig(val_metric="rocauc").val_metric_for("regression")
    assert FinetuneConfig().val_metric_for("classification") == "val_loss"


def test_validation_rocauc_score_is_one_minus_sklearns() -> None:
    from pretroost.finetune import validation_score

    y, p = _imbalanced()
    got = validation_score("classification", y[:, None], p[:, None], metric="1-rocauc")
    assert got == pytest.approx(1 - roc_auc_score(y, p), abs=1e-12)
    with pytest.raises(ValueError, match="both classes"):
        validation_score("classification", np.ones((4, 1)), np.full((4, 1), 0.3), metric="1-rocauc")
    with pytest.raises(ValueError, match="regression"):
        validation_score("regression", y[:, None], p[:, None], metric="1-rocauc")


def test_fit_selects_the_epoch_by_validation_rocauc_when_asked() -> None:
    """``val_metric="rocauc"``: the recorded score is 1 - the ROC-AUC of the kept model's
    validation probabilities, and it is the best of the epochs' (a cross-entropy run of the same
    recipe scores its epochs otherwise)."""
    from pretroost.finetune import validation_score

    comps = parse_formulas(BINARY_FORMULAS)
    y = (toy_target(BINARY_FORMULAS) > np.quantile(toy_target(BINARY_FORMULAS), 0.7)).astype(float)
    val_index = np.arange(0, len(y), 3)
    config = FinetuneConfig(
        train=TrainConfig(epochs=6, batch_size=16, lr=3e-3),
        encoder=TINY, trunk_hidden=(8,), out_hidden=(8, 4), val_metric="rocauc",
    )  # fmt: skip
    torch.set_num_threads(1)
    fitted = fit(comps, y, "classification", config, val_index=val_index)
    assert (
        fitted.info["val_metric"] == "1-rocauc"
        and fitted.info["finetune"]["val_metric"] == "rocauc"
    )
    prob = fitted.predict_dataset(CompositionDataset(comps.subset(val_index)))["prob"]
    again = validation_score("classification", y[val_index, None], prob, metric="1-rocauc")
    # the same weights scored again: only float32 rounding of near-equal probabilities could swap
    # a pair of ranks, which moves the ROC-AUC by 1 / (n_pos * n_neg)
    n_pos = int(y[val_index].sum())
    assert fitted.info["best_val"] == pytest.approx(
        again, abs=1 / (n_pos * (len(val_index) - n_pos))
    )
    assert fitted.result is not None
    assert fitted.info["best_val"] == min(row["val_score"] for row in fitted.result.history)
    with pytest.raises(ValueError, match="both classes"):
        fit(comps, np.zeros(len(y)), "classification", config, val_index=val_index)


def test_fit_chooses_threshold_on_validation_and_weights_classes() -> None:
    comps = parse_formulas(BINARY_FORMULAS)
    target = toy_target(BINARY_FORMULAS)
    y = (target > np.quantile(target, 0.75)).astype(float)  # 25 % positives
    val_index = np.arange(0, len(y), 4)
    config = FinetuneConfig(
        train=TrainConfig(epochs=3, batch_size=16, lr=3e-3),
        encoder=TINY, trunk_hidden=(8,), out_hidden=(8, 4),
        threshold="val_balanced_accuracy", class_weight="balanced",
    )  # fmt: skip
    torch.set_num_threads(1)
    fitted = fit(comps, y, "classification", config, val_index=val_index)
    train_index = np.setdiff1d(np.arange(len(y)), val_index)
    n_pos = y[train_index].sum()
    assert fitted.info["pos_weight"] == pytest.approx([(len(train_index) - n_pos) / n_pos])
    prob = fitted.predict_dataset(CompositionDataset(comps.subset(val_index)))["prob"][:, 0]
    assert fitted.threshold == balanced_accuracy_threshold(y[val_index], prob)
    assert fitted.info["threshold"] == fitted.threshold
    # every rule's threshold is recorded; a 0.5 model of the same recipe records the same one
    assert fitted.info["thresholds"] == {"0.5": 0.5, "val_balanced_accuracy": fitted.threshold}
    at_half = fit(comps, y, "classification", replace(config, threshold="0.5"), val_index=val_index)
    assert at_half.threshold == 0.5 and at_half.info["thresholds"] == fitted.info["thresholds"]
    # the default keeps 0.5 and no class weights
    plain = fit(comps, y, "classification", FinetuneConfig(
        train=TrainConfig(epochs=1, batch_size=16), encoder=TINY, trunk_hidden=(8,),
        out_hidden=(8, 4),
    ), val_index=val_index)  # fmt: skip
    assert plain.threshold == 0.5 and plain.info["pos_weight"] is None
    with pytest.raises(ValueError, match="classification"):
        fit(comps, target, "regression", FinetuneConfig(
            train=TrainConfig(epochs=1), encoder=TINY, class_weight="balanced",
        ))  # fmt: skip


def test_matbench_fold_scored_with_the_chosen_threshold(tmp_path, data_cache) -> None:
    from pretroost.cli import main
    from pretroost.data.matbench import load_folds, load_task
    from pretroost.metrics import score

    res = tmp_path / "results"
    argv = [
        "finetune", "--task", "expt_is_metal", "--folds", "0", "--epochs", "1",
        "--results-dir", str(res), "--threshold", "val_balanced_accuracy",
        "--class-weight", "balanced", "--elem-fea-len", "8", "--n-graph", "1", "--heads", "1",
        "--hidden", "8", "--trunk-hidden", "16", "--out-hidden", "8,4", "--threads", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    rows = {
        r["metric"]: r["value"]
        for r in map(json.loads, (res / "benchmark.jsonl").read_text().splitlines())
    }
    assert set(rows) == {"accuracy", "balanced_accuracy", "f1", "rocauc", "rocauc_prob"}
    frame = pd.read_csv(res / "scratch" / "predictions" / "matbench_expt_is_metal" / "fold_0.csv")
    threshold = float(frame["threshold"].iloc[0])
    assert 0.0 <= threshold <= 1.0
    truth = load_task("matbench_expt_is_metal", source="cache")["target"]
    test_ids = load_folds("matbench_expt_is_metal")[0][1]
    y = truth.loc[frame["id"]].to_numpy()
    expected = score("classification", y, frame["prediction"].to_numpy() > threshold)
    for metric, value in expected.items():
        assert rows[metric] == pytest.approx(value, abs=1e-12)
    assert rows["rocauc"] == pytest.approx(rows["balanced_accuracy"], abs=1e-12)
    assert rows["rocauc_prob"] == pytest.approx(roc_auc_score(y, frame["prediction"]), abs=1e-12)
    # the Matbench submission holds the thresholded labels and the same scores
    with gzip.open(res / "scratch" / "results.json.gz", "rt") as fh:
        doc = json.load(fh)
    fold = doc["tasks"]["matbench_expt_is_metal"]["results"]["fold_0"]
    assert set(fold["data"]) == set(map(str, test_ids))
    assert all(isinstance(v, bool) for v in fold["data"].values())
    assert fold["scores"]["rocauc"] == pytest.approx(rows["rocauc"], abs=1e-12)


def test_rethresholded_cells_equal_cells_trained_with_the_rule(tmp_path, data_cache) -> None:
    """A threshold-only variant written from its base's cells (no training) gives the rows,
    labels and Matbench file that training it would: same model, same validation threshold."""
    from pretroost.evaluation.matbench import rethreshold_cells, run_matbench_task
    from pretroost.results import read_benchmark_rows

    config = FinetuneConfig(
        train=TrainConfig(epochs=1, batch_size=128, seed=0), encoder=TINY, trunk_hidden=(16,),
        out_hidden=(8, 4),
    )  # fmt: skip
    torch.set_num_threads(1)
    trained, derived = tmp_path / "trained", tmp_path / "derived"
    kwargs = {"folds": [0], "progress": False}
    run_matbench_task("expt_is_metal", replace(config, threshold="val_balanced_accuracy"),
                      strategy="scratch+valthreshold", results_dir=trained, **kwargs)  # fmt: skip
    run_matbench_task("expt_is_metal", config, strategy="scratch", results_dir=derived, **kwargs)
    task = "matbench_expt_is_metal"
    assert rethreshold_cells(derived, "scratch", "scratch+valthreshold", task,
                             "val_balanced_accuracy") == [0]  # fmt: skip
    csv = "scratch+valthreshold/predictions/matbench_expt_is_metal/fold_0.csv"
    pd.testing.assert_frame_equal(pd.read_csv(derived / csv), pd.read_csv(trained / csv))

    def scores(root):
        rows = read_benchmark_rows(root / "benchmark.jsonl")
        return {r["metric"]: r["value"] for r in rows if r["strategy"] == "scratch+valthreshold"}

    assert scores(derived) == scores(trained)

    def labels(root):
        with gzip.open(root / "scratch+valthreshold" / "results.json.gz", "rt") as fh:
            return json.load(fh)["tasks"][task]["results"]["fold_0"]["data"]

    assert labels(derived) == labels(trained)
    # done cells are left alone; regression tasks have no threshold to move
    assert rethreshold_cells(derived, "scratch", "scratch+valthreshold", task,
                             "val_balanced_accuracy") == []  # fmt: skip
    assert rethreshold_cells(derived, "scratch", "scratch+valthreshold", "matbench_expt_gap",
                             "val_balanced_accuracy") == []  # fmt: skip
