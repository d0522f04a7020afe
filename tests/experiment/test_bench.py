"""The bench command end to end on the smoke preset: pretrain, finetune, resume, report."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pretroost.cli import main
from pretroost.experiment.bench import PRESETS, run_bench


def test_budget_recipe_depends_only_on_training_set_size() -> None:
    budget = PRESETS["budget"]
    big = budget.finetune_for(3315)  # expt_gap: 40 epochs of batch 128 would be 1,040 steps
    assert big.batch_size == 128 and big.epochs == math.ceil(1200 / 26)
    steels = budget.finetune_for(224)
    assert steels.batch_size == 32 and steels.epochs == math.ceil(1200 / 7)
    assert budget.finetune_for(50_000).epochs == budget.finetune.epochs
    assert budget.finetune_for(3).epochs == budget.max_epochs
    assert steels.lr == big.lr == budget.finetune.lr


@pytest.mark.slow
def test_bench_pretrain_only(tmp_path, data_cache, monkeypatch) -> None:
    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    res, runs = tmp_path / "results", tmp_path / "runs"
    argv = [
        "-q", "bench", "--preset", "smoke", "--strategies", "scratch", "ssl", "ssl+strong_views",
        "ssl+strong_views+trunk", "--pretrain-only", "--threads", "1", "--results-dir", str(res),
        "--runs-dir", str(runs),
    ]  # fmt: skip
    assert main(argv) == 0
    plain = json.loads((runs / "ssl" / "config.json").read_text())["objectives"]["ssl"]
    strong = json.loads((runs / "ssl_strong_views" / "config.json").read_text())["objectives"][
        "ssl"
    ]
    assert not plain["mask_both"] and strong["mask_both"] and strong["amount_noise"] > 0
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == ["ssl", "ssl_strong_views"]
    assert not res.exists()  # nothing finetuned


@pytest.mark.slow
def test_bench_smoke_runs_resumes_and_reports(tmp_path, data_cache, monkeypatch) -> None:
    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    res, runs = tmp_path / "results", tmp_path / "runs"
    # the smoke preset pretrains on 300 compositions of the leak-free corpus (built if missing)
    argv = [
        "-q", "bench", "--preset", "smoke", "--strategies", "scratch", "fingerprint",
        "fingerprint+trunk", "scratch+ens5", "--select", "scratch", "fingerprint",
        "--results-dir", str(res), "--runs-dir", str(runs),
    ]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (res / "benchmark.jsonl").read_text().splitlines()]
    label = "select(scratch|fingerprint)"
    assert {r["strategy"] for r in rows} == {
        "scratch", "fingerprint", "fingerprint+trunk", "scratch+ens5", label
    }  # fmt: skip
    # every cell records its validation score; all strategies were selected on the same rows
    from pretroost.results import validation_path

    records = {
        s: json.loads(validation_path(res, s, "matbench_steels", 0).read_text())
        for s in ("scratch", "fingerprint", "scratch+ens5")
    }
    assert len({r["n_val"] for r in records.values()}) == 1 and records["scratch"]["n_val"] > 0
    assert {r["val_metric"] for r in records.values()} == {"normalised_mae"}
    ens = records["scratch+ens5"]
    assert ens["n_members"] == 5 and len(ens["member_scores"]) == 5
    assert ens["member_best_val"][0] == pytest.approx(records["scratch"]["best_val"], rel=1e-4)
    choice = json.loads(
        (res / "select(scratch,fingerprint)" / "selection" / "matbench_steels.json").read_text()
    )
    (fold0,) = choice["folds"]
    assert fold0["pick"] == min(("scratch", "fingerprint"), key=lambda s: records[s]["best_val"])
    mae = {r["strategy"]: r["value"] for r in rows if r["metric"] == "mae" and r["fold"] == 0}
    assert mae[label] == mae[fold0["pick"]]
    assert not (runs / "fingerprint_trunk").exists()  # the variant reuses fingerprint's encoder
    assert (runs / "fingerprint" / "model.safetensors").is_file()
    report = (res / "README.md").read_text()
    assert "matbench_steels" in report and "fingerprint" in report
    assert "Linear probe" in report and "## Overview" in report
    # the overview has one row per strategy (it grows downwards as variants are added)
    overview = report.split("## Overview", 1)[1].split("\n## ", 1)[0]
    assert "| strategy | steels (mae) | time (min) |" in overview
    assert {line.split(" | ")[0] for line in overview.splitlines() if line.startswith("| ")} == {
        "| strategy", "| scratch", "| fingerprint", "| fingerprint+trunk", "| scratch+ens5",
        "| select(scratch\\|fingerprint)",  # a "|" in a table cell is escaped
    }  # fmt: skip
    assert "## Deep ensembles: N = 1 vs N = 5" in report and "| scratch+ens5 |" in report
    assert "whichever of `scratch`, `fingerprint` scored best on the validation split" in report
    probe = json.loads((res / "encoder_probe.json").read_text())["matbench_steels"]
    assert set(probe) == {"scratch (untrained)", "fingerprint"}
    assert (res / "scratch" / "results.json.gz").is_file()
    # a preset's caveat heads its report (the smoke preset has none; budget is not converged)
    from pretroost.experiment.presets import PRESETS
    from pretroost.experiment.report import write_report

    assert PRESETS["budget"].caveat and PRESETS["budget"].caveat not in report
    assert PRESETS["budget"].caveat in write_report(res, preset="budget").read_text()
    # resuming redoes nothing: same rows; the report drops parity plots of strategies no longer best
    stale = res / "plots" / "matbench_steels_ssl_parity.png"
    stale.write_bytes(b"")
    shutil.rmtree(runs / "fingerprint")  # nor pretrains again what no unfinished cell needs
    assert main(argv) == 0
    assert not (runs / "fingerprint").exists()
    assert not stale.exists() and list((res / "plots").glob("matbench_steels_*_parity.png"))
    again = (res / "benchmark.jsonl").read_text().splitlines()
    assert len(again) == len(rows)
    # weights are not committed: once runs/ is gone the report still lists the encoder (recorded
    # under pretrain/) and keeps its linear probe
    assert (res / "pretrain" / "fingerprint" / "config.json").is_file()
    shutil.rmtree(runs)
    report = write_report(res, runs_dir=runs).read_text()
    assert "| fingerprint | fingerprint |" in report and "## Linear probe" in report
    assert json.loads((res / "encoder_probe.json").read_text())["matbench_steels"] == probe


def test_bench_writes_threshold_variants_from_their_base_without_training(
    tmp_path, data_cache, monkeypatch
) -> None:
    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    res = tmp_path / "results"
    run_bench(
        "smoke", strategies=["scratch", "scratch+valthreshold"], tasks=["expt_is_metal"],
        data_efficiency=False, results_dir=res, runs_dir=tmp_path / "runs", progress=False,
    )  # fmt: skip
    from pretroost.results import prediction_path, validation_path

    task = "matbench_expt_is_metal"
    record = json.loads(validation_path(res, "scratch+valthreshold", task, 0).read_text())
    assert (
        record["derived_from"] == "scratch" and record["threshold_rule"] == "val_balanced_accuracy"
    )
    base, variant = (
        pd.read_csv(prediction_path(res, s, task, 0)) for s in ("scratch", "scratch+valthreshold")
    )
    assert (variant["prediction"] == base["prediction"]).all()
    threshold = record["thresholds"]["val_balanced_accuracy"]
    # the threshold is a float32 probability: the CSV holds its shortest float32 text
    assert (
        "threshold" not in variant
        or (variant["threshold"].astype(np.float32) == np.float32(threshold)).all()
    )


def test_bench_runs_classification_only_variants_on_classification_tasks_only(
    tmp_path, data_cache, monkeypatch, caplog
) -> None:
    """``scratch+classweight`` trains on expt_is_metal and is skipped, with a warning, on steels
    (class weights have no meaning for regression)."""
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    res = tmp_path / "results"
    with caplog.at_level(logging.WARNING, logger="pretroost.experiment.bench"):
        run_bench(
            "smoke", strategies=["scratch+classweight"], tasks=["expt_is_metal", "steels"],
            data_efficiency=False, results_dir=res, runs_dir=tmp_path / "runs", progress=False,
        )  # fmt: skip
    assert prediction_path(res, "scratch+classweight", "matbench_expt_is_metal", 0).is_file()
    assert not prediction_path(res, "scratch+classweight", "matbench_steels", 0).exists()
    assert "classification-only variant" in caplog.text


def test_bench_seeds_override_the_presets_and_reuse_seed_zero(
    tmp_path, data_cache, monkeypatch
) -> None:
    """``seeds`` runs every listed seed per fold on every task; the seed-0 cell already on disk is
    kept, not retrained (its file is untouched)."""
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    res, task = tmp_path / "results", "matbench_steels"
    kw = dict(strategies=["scratch"], data_efficiency=False, results_dir=res, progress=False)
    run_bench("smoke", **kw)
    first = prediction_path(res, "scratch", task, 0, 0)
    stamp = first.stat().st_mtime_ns
    assert not prediction_path(res, "scratch", task, 0, 1).exists()  # smoke: seed 0 only
    run_bench("smoke", seeds=[0, 1], **kw)
    assert prediction_path(res, "scratch", task, 0, 1).is_file()
    assert first.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="distinct non-negative"):
        run_bench("smoke", seeds=[1, 1], **kw)


def test_bench_rejects_unknown_strategy_listing_valid_ones(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"fingerprint\+trunk"):
        run_bench("smoke", strategies=["scratch+trunk"], results_dir=tmp_path)
    with pytest.raises(ValueError, match="valid: 0, 1, 2, 3, 4"):
        run_bench("smoke", strategies=["scratch"], data_efficiency_folds=[5], results_dir=tmp_path)


def _fake_encoder(plan, base: str, variants: tuple[str, ...] = ()) -> Path:
    """A runs-directory folder whose config.json records what ``base`` with ``variants`` needs
    under ``plan``'s preset (no weights), its corpus a tiny one put in ``plan``'s corpus cache."""
    from pretroost.data.composition import parse_formulas
    from pretroost.data.corpus import Corpus
    from pretroost.experiment.bench import pretrain_config
    from pretroost.experiment.strategies import pretrain_corpus, pretrain_folder
    from tiny import BINARY_FORMULAS

    corpus = Corpus(parse_formulas(BINARY_FORMULAS), list(BINARY_FORMULAS))
    corpus.info["hash"] = corpus.content_hash
    plan.corpora[pretrain_corpus(base, variants)] = corpus
    config = pretrain_config(plan.preset, base, variants, len(corpus))
    folder = plan.runs_dir / pretrain_folder(base, variants)
    folder.mkdir(parents=True)
    record = {"kind": "pretrained", "pretrain": config.to_dict(), "corpus": dict(corpus.info)}
    (folder / "config.json").write_text(json.dumps(record))
    return folder


def test_strategy_names_parse_into_base_and_variants(tmp_path) -> None:
    from pretroost.experiment.bench import BenchPlan, _start, parse_strategy
    from pretroost.finetune import FinetuneConfig

    assert parse_strategy("ssl+fingerprint+structure+trunk") == (
        "ssl+fingerprint+structure",
        (),
        ("trunk",),
    )
    assert parse_strategy("ssl+strong_views+encoder_lr0.1") == (
        "ssl",
        ("strong_views",),
        ("encoder_lr0.1",),
    )
    from pretroost.experiment.strategies import strategy_members

    assert parse_strategy("scratch+ens5") == ("scratch", (), ("ens5",))
    assert parse_strategy("scratch+valthreshold") == ("scratch", (), ("valthreshold",))
    from pretroost.experiment.strategies import FINETUNE_VARIANTS

    tuned = FINETUNE_VARIANTS["valthreshold"].apply(FinetuneConfig())
    assert tuned.threshold == "val_balanced_accuracy"
    assert strategy_members("fingerprint+trunk+ens5") == 5 and strategy_members("ssl") == 1
    for bad in ("scratch+trunk", "scratch+ens5+trunk", "ssl+fingerprint", "fingerprint+trunc"):
        with pytest.raises(ValueError, match="unknown strategy"):
            parse_strategy(bad)
    with pytest.raises(ValueError, match="ssl objective"):
        parse_strategy("fingerprint+strong_views")
    # a finetuning variant reuses its base's artefact and changes one thing in the recipe
    runs = tmp_path / "runs"
    plan = BenchPlan(PRESETS["smoke"], (), (), tmp_path / "results", runs)
    _fake_encoder(plan, "fingerprint")
    base = FinetuneConfig()
    plain = _start(plan, "fingerprint", progress=False)(base)
    slow = _start(plan, "fingerprint+encoder_lr0.1+trunk", progress=False)(base)
    assert plain.init == slow.init == str(runs / "fingerprint") and not plain.init_trunk
    assert slow.init_trunk and slow.train.encoder_lr_scale == 0.1
    assert slow.train.epochs == base.train.epochs and slow.train.lr == base.train.lr
    assert _start(plan, "scratch", progress=False)(base) == base
    assert _start(plan, "scratch+ens5", progress=False)(base) == base  # members: the runner's
    # the report's legend: the base's meaning, then each variant's change, from the registries
    from pretroost.experiment.report import _strategy_note

    note = _strategy_note("ssl+strong_views+trunk")
    assert "stronger views" in note and "--init-trunk" in note
    assert _strategy_note("fingerprint+trunk").startswith("encoder pretrained to regress")
    assert _strategy_note("my own run") == "see COMMANDS.md"
    assert _strategy_note("select(pretrained)") == "see COMMANDS.md"  # a --select-label


def test_linear_probe_scores_informative_features_higher() -> None:
    from pretroost.experiment.encoder_probe import linear_probe

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    y = X @ rng.normal(size=8)
    noise = rng.normal(size=(300, 8)).astype(np.float32)
    r2 = linear_probe(y, {"signal": X, "noise": noise}, "matbench_steels")
    assert r2["signal"] > 0.99 and r2["noise"] < 0.1
    auc = linear_probe((y > 0).astype(float), {"signal": X, "noise": noise}, "matbench_glass")
    assert auc["signal"] > 0.95 and auc["noise"] < 0.7


def test_report_orders_strategies_bases_first_then_variants() -> None:
    from pretroost.experiment.strategies import strategy_order

    labels = ["structure+trunk", "ssl+fingerprint+structure+trunk", "fingerprint", "scratch",
              "ssl+fingerprint+structure", "ssl", "fingerprint+trunk", "structure", "other"]  # fmt: skip
    assert sorted(labels, key=strategy_order) == [
        "scratch", "ssl", "fingerprint", "structure", "ssl+fingerprint+structure",
        "fingerprint+trunk", "structure+trunk", "ssl+fingerprint+structure+trunk", "other",
    ]  # fmt: skip


def test_report_quotes_modnet_once_when_it_leads() -> None:
    from pretroost.experiment.report import _leaderboard_lines

    rows = [line for line in _leaderboard_lines("matbench_dielectric") if line.startswith("|")]
    assert len([r for r in rows if "MODNet" in r and "v0.1.10" not in r]) == 1
    assert len([r for r in rows if "MODNet (v0.1.10)" in r]) == 1  # the earlier version, once


def test_report_replaces_only_the_marked_readme_block(tmp_path) -> None:
    from pretroost.experiment.report import OVERVIEW_MARKERS, replace_block

    start, end = OVERVIEW_MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"# intro\n{start}\n| old |\n{end}\nafter\n")
    replace_block(readme, ["| new |", "|---|"])
    assert readme.read_text() == f"# intro\n{start}\n| new |\n|---|\n{end}\nafter\n"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="overview"):
        replace_block(readme, ["| new |"])


def test_data_efficiency_curves_average_only_folds_every_strategy_ran(tmp_path) -> None:
    from pretroost.experiment.report import _data_efficiency

    def rows(values: dict[tuple[str, int], float]) -> list[dict]:
        return [
            {"strategy": s, "task": "matbench_steels", "fold": k, "metric": "mae", "value": v,
             "n_train": 10, "epochs": 1, "seconds": 1.0, "git_sha": "x", "machine": "m"}
            for (s, k), v in values.items()
        ]  # fmt: skip

    main_rows = rows({("scratch", 0): 10.0, ("scratch", 1): 20.0, ("ssl", 0): 8.0, ("ssl", 1): 9.0})
    half = tmp_path / "data_efficiency" / "fraction_0.5"
    half.mkdir(parents=True)
    # an interrupted run: fold 1 finished for scratch but not for ssl
    half_rows = rows({("scratch", 0): 30.0, ("scratch", 1): 50.0, ("ssl", 0): 25.0})
    (half / "benchmark.jsonl").write_text("\n".join(json.dumps(r) for r in half_rows) + "\n")
    curve = _data_efficiency(tmp_path, main_rows)["matbench_steels"]
    assert curve["folds"] == [0]
    assert curve["strategies"] == {"scratch": [30.0, 10.0], "ssl": [25.0, 8.0]}
    assert curve["std"] == {"scratch": [0.0, 0.0], "ssl": [0.0, 0.0]}  # one fold: no spread
    # with both folds complete, the spread over folds comes along with the mean
    half_rows += rows({("ssl", 1): 35.0})
    (half / "benchmark.jsonl").write_text("\n".join(json.dumps(r) for r in half_rows) + "\n")
    curve = _data_efficiency(tmp_path, main_rows)["matbench_steels"]
    assert curve["strategies"]["ssl"] == [30.0, 8.5] and curve["std"]["ssl"] == [5.0, 0.5]
    from pretroost.experiment.plots import plot_data_efficiency

    (png,) = plot_data_efficiency(tmp_path, {"matbench_steels": curve})
    assert png.is_file() and png.stat().st_size > 0


def test_seed_ensemble_averages_the_seeds_predictions(tmp_path, data_cache, monkeypatch) -> None:
    """Two seeds off the target by +e and -e: each alone has MAE e, their mean is exact."""
    from pretroost.data.matbench import load_task
    from pretroost.experiment.prediction_averages import seed_ensembles
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    target = load_task("matbench_steels")["target"].iloc[:40]
    folds = {0: target.iloc[:20], 1: target.iloc[20:]}
    for fold, y in folds.items():
        for seed, sign in ((0, 1.0), (1, -1.0)):
            path = prediction_path(tmp_path, "scratch", "matbench_steels", fold, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"prediction": y + sign * 7.0}).rename_axis("id").to_csv(path)
    cell = {"seeds": {0: [7.0, 7.0], 1: [7.0, 7.0]}, "folds": {0: 7.0, 1: 7.0}, "mean": 7.0}
    ens = seed_ensembles(tmp_path, {"matbench_steels": {"scratch": cell}})
    got = ens["matbench_steels"]["scratch"]
    assert got["n"] == 2 and got["single"] == 7.0
    assert got["folds"] == pytest.approx({0: 0.0, 1: 0.0}, abs=1e-9)
    # a strategy with a missing seed file is left out, not scored on fewer seeds
    prediction_path(tmp_path, "scratch", "matbench_steels", 1, 1).unlink()
    assert seed_ensembles(tmp_path, {"matbench_steels": {"scratch": cell}}) == {}


def test_seed_ensemble_size_curve_averages_every_subset_of_the_seeds(
    tmp_path, data_cache, monkeypatch
) -> None:
    """Three seeds off the target by +e, -e and 0: one model scores (e + e + 0) / 3 on average,
    two (0 + e/2 + e/2) / 3, three 0; seeds 0 and 1 alone already average to the target."""
    from pretroost.data.matbench import load_task
    from pretroost.experiment.prediction_averages import seed_ensembles
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    y = load_task("matbench_steels")["target"].iloc[:20]
    for seed, shift in enumerate((6.0, -6.0, 0.0)):
        path = prediction_path(tmp_path, "scratch", "matbench_steels", 0, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"prediction": y + shift}).rename_axis("id").to_csv(path)
    cell = {"seeds": {0: [6.0, 6.0, 0.0]}, "folds": {0: 4.0}, "mean": 4.0, "seconds": 360.0}
    got = seed_ensembles(tmp_path, {"matbench_steels": {"scratch": cell}})["matbench_steels"]
    got = got["scratch"]
    assert got["by_size"] == pytest.approx({1: 4.0, 2: 2.0, 3: 0.0}, abs=1e-9)
    assert got["by_size"][1] == pytest.approx(got["single"])
    assert got["first_seeds"][1] == pytest.approx({0: 6.0}) and got["first_seeds"][2][0] < 1e-9
    assert got["minutes_per_model"] == pytest.approx(2.0)  # 360 s over 3 models of one fold


def test_seed_ensemble_table_compares_with_scratch_at_the_same_ensemble_size() -> None:
    """dft+trunk ran 5 seeds, scratch 3: the row compares dft+trunk's first 3 seeds' ensemble
    with scratch's 3, not its 5 (which would flatter it), and says so."""
    from pretroost.experiment.report import _seed_ensemble_lines

    def cell(n: int, by_n: dict[int, float], slope: float) -> dict:
        first = {k: {f: v + slope * k * (f - 2) for f in range(5)} for k, v in by_n.items()}
        return {"n": n, "folds": first[n], "single_folds": first[1], "single": by_n[1],
                "mean": by_n[n], "seed_sd": 0.01, "by_size": by_n, "first_seeds": first,
                "minutes_per_model": 2.0}  # fmt: skip

    lines = _seed_ensemble_lines(
        {
            "matbench_expt_gap": {
                "scratch": cell(3, {1: 0.40, 2: 0.38, 3: 0.37}, 0.012),
                "dft+trunk": cell(5, {1: 0.36, 2: 0.35, 3: 0.34, 4: 0.335, 5: 0.33}, 0.01),
            }
        }
    )
    (row,) = [line for line in lines if "| dft+trunk |" in line]
    assert "| 0.36 → 0.35 → 0.34 → 0.335 → 0.33 |" in row and "| 2.0 → 10.0 |" in row
    cells = [c.strip() for c in row.strip(" |").split(" | ")]
    assert cells[-2].startswith("-0.03 (") and cells[-2].endswith(", 3 seeds each")
    # vs MODNet · vs Darwin: folds better (p paired t; p corrected)
    assert re.fullmatch(r"\d/5 \(\S+; \S+\) · \d/5 \(\S+; \S+\)", cells[-1])


def test_strategy_ensemble_pools_every_complete_strategy(tmp_path, data_cache, monkeypatch) -> None:
    """scratch off by +e, ssl by -e on every fold: their ensemble is exact; a strategy missing a
    fold is not a member."""
    from pretroost.data.matbench import load_task
    from pretroost.experiment.prediction_averages import strategy_ensembles
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    target = load_task("matbench_steels")["target"].iloc[:50]
    table: dict[str, dict] = {"matbench_steels": {}}
    for strategy, shift, folds in (("scratch", 7.0, 5), ("ssl", -7.0, 5), ("dft", 100.0, 4)):
        for fold in range(folds):
            path = prediction_path(tmp_path, strategy, "matbench_steels", fold)
            path.parent.mkdir(parents=True, exist_ok=True)
            y = target.iloc[10 * fold : 10 * fold + 10]
            pd.DataFrame({"prediction": y + shift * (1 + fold / 10)}).rename_axis("id").to_csv(path)
        mae = {k: abs(shift) * (1 + k / 10) for k in range(folds)}
        table["matbench_steels"][strategy] = {
            "seeds": {k: [v] for k, v in mae.items()},
            "folds": mae,
            "mean": float(np.mean(list(mae.values()))),
        }
    ens = strategy_ensembles(tmp_path, table)["matbench_steels"]
    assert ens["members"] == ["scratch", "ssl"]
    assert ens["mean"] == pytest.approx(0.0, abs=1e-9)
    assert ens["vs_scratch"]["mean_diff"] == pytest.approx(-7.0 * 1.2)


def test_strategy_ensemble_averages_probabilities_on_classification(
    tmp_path, data_cache, monkeypatch
) -> None:
    """Two members each right on a different half of the rows, the wrong half at 0.6 / 0.4 and the
    right half at 0.9 / 0.1: alone each scores balanced accuracy ~0.5, their mean probability is
    right on every row (rocauc 1). The ``+valthreshold`` cell, the same model re-thresholded, is
    not a member."""
    from pretroost.data.matbench import load_task
    from pretroost.experiment.prediction_averages import strategy_ensembles
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    task = "matbench_expt_is_metal"
    y = load_task(task)["target"].astype(bool)
    rows = pd.concat([y[y].iloc[:20], y[~y].iloc[:20]])
    table: dict[str, dict] = {task: {}}
    for strategy, good in (("scratch", 0), ("ssl", 1), ("scratch+valthreshold", 0)):
        for fold in range(3):
            right = np.arange(len(rows)) % 2 == good
            p = np.where(rows.to_numpy(), np.where(right, 0.9, 0.4), np.where(right, 0.1, 0.6))
            path = prediction_path(tmp_path, strategy, task, fold)
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"prediction": p}, index=rows.index).rename_axis("id").to_csv(path)
        table[task][strategy] = {
            "seeds": {k: [0.5] for k in range(3)},
            "folds": dict.fromkeys(range(3), 0.5),
            "mean": 0.5,
        }
    ens = strategy_ensembles(tmp_path, table)[task]
    assert ens["members"] == ["scratch", "ssl"] and ens["metric"] == "rocauc"
    assert ens["mean"] == pytest.approx(1.0)
    assert ens["vs_scratch"]["mean_diff"] == pytest.approx(0.5)


def test_seed_ensemble_of_a_valthreshold_strategy_uses_the_seeds_mean_threshold(
    tmp_path, data_cache, monkeypatch
) -> None:
    """Two seeds of ``scratch+valthreshold`` whose validation splits put the threshold at 0.7
    and 0.8, positives at probability 0.8 and negatives at 0.7: at the seeds' mean threshold,
    0.75, every row is labelled right (rocauc 1); the base strategy's files (no threshold column)
    are labelled at 0.5, where every row is positive (rocauc 0.5)."""
    from pretroost.data.matbench import load_task
    from pretroost.experiment.prediction_averages import seed_ensembles
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    task = "matbench_expt_is_metal"
    y = load_task(task)["target"].astype(bool)
    rows = pd.concat([y[y].iloc[:10], y[~y].iloc[:10]])
    prob = np.where(rows.to_numpy(), 0.8, 0.7)
    table: dict[str, dict] = {task: {}}
    for strategy, thresholds in (("scratch", (None, None)), ("scratch+valthreshold", (0.7, 0.8))):
        for seed, t in enumerate(thresholds):
            frame = pd.DataFrame({"prediction": prob}, index=rows.index).rename_axis("id")
            if t is not None:
                frame["threshold"] = t
            path = prediction_path(tmp_path, strategy, task, 0, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path)
        table[task][strategy] = {"seeds": {0: [0.5, 0.5]}, "folds": {0: 0.5}, "mean": 0.5}
    ens = seed_ensembles(tmp_path, table)[task]
    assert ens["scratch"]["folds"][0] == pytest.approx(0.5)  # all positive at 0.5
    assert ens["scratch+valthreshold"]["folds"][0] == pytest.approx(1.0)  # right at 0.75


def test_seed_ensembles_are_written_as_a_valid_matbench_submission(
    tmp_path, data_cache, monkeypatch
) -> None:
    """Two seeds off the target by +e and -e on every official steels fold: the submission file
    of their seed ensemble scores MAE 0 on every fold, and matbench accepts it."""
    import gzip
    import json

    from pretroost.data.matbench import load_folds, load_task
    from pretroost.experiment.prediction_averages import (
        seed_ensemble_results_path,
        seed_ensembles,
        write_seed_ensemble_results,
    )
    from pretroost.results import prediction_path

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    task = "matbench_steels"
    target = load_task(task)["target"]
    for fold, (_, test) in enumerate(load_folds(task)):
        for seed, sign in ((0, 1.0), (1, -1.0)):
            path = prediction_path(tmp_path, "dft+trunk", task, fold, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            y = target.loc[test]
            pd.DataFrame({"prediction": y + sign * 7.0}).rename_axis("id").to_csv(path)
    cell = {
        "seeds": {k: [7.0, 7.0] for k in range(5)},
        "folds": dict.fromkeys(range(5), 7.0),
        "mean": 7.0,
    }
    ens = seed_ensembles(tmp_path, {task: {"dft+trunk": cell}})
    assert write_seed_ensemble_results(tmp_path, ens) == [
        seed_ensemble_results_path(tmp_path, "dft+trunk")
    ]
    with gzip.open(seed_ensemble_results_path(tmp_path, "dft+trunk"), "rt") as fh:
        doc = json.load(fh)
    scores = doc["user_metadata"]["summary"][task]["scores"]["mae"]
    assert scores["max"] == pytest.approx(0.0, abs=1e-9)
    assert doc["user_metadata"]["info"]["seed_ensemble"] == {task: 2}
    bench = pytest.importorskip("matbench.bench")
    assert bench.MatbenchBenchmark.from_dict(doc).is_valid


def test_seed_ensemble_table_compares_a_threshold_rule_with_scratch_at_the_same_rule() -> None:
    """dft+trunk against scratch's ensemble, dft+trunk+valthreshold against
    scratch+valthreshold's, scratch+valthreshold against scratch's."""
    from pretroost.experiment.report import _seed_ensemble_lines

    def cell(score: float) -> dict:
        folds = {k: score + 0.01 * k * score for k in range(5)}  # paired differences vary
        return {"n": 3, "folds": folds, "single_folds": folds, "single": score, "mean": score,
                "seed_sd": 0.01, "by_size": {1: score, 2: score, 3: score},
                "first_seeds": dict.fromkeys((1, 2, 3), folds), "minutes_per_model": 1.0}  # fmt: skip

    names = ("scratch", "scratch+valthreshold", "dft+trunk", "dft+trunk+valthreshold")
    scores = (0.80, 0.83, 0.84, 0.86)
    lines = _seed_ensemble_lines(
        {"matbench_glass": dict(zip(names, map(cell, scores), strict=True))}
    )
    rows = {line.split(" | ")[1]: line for line in lines if line.startswith("| matbench_glass")}
    vs_base = {k: v.split(" | ")[-2] for k, v in rows.items()}  # the last column: vs MODNet
    assert vs_base["scratch+valthreshold"].startswith("+0.030")  # vs scratch
    assert vs_base["dft+trunk"].startswith("+0.040")  # vs scratch
    assert vs_base["dft+trunk+valthreshold"].startswith("+0.030")
    assert vs_base["dft+trunk+valthreshold"].endswith("vs scratch+valthreshold")


def test_report_gives_probability_rocauc_beside_matbench_rocauc() -> None:
    """rocauc_prob rows make their own paired table; +valthreshold cells (same probabilities as
    their base model) are left out of it."""
    from pretroost.experiment.report import _probability_lines
    from pretroost.experiment.scores import headline_table

    rows = [
        {
            "strategy": s,
            "task": "matbench_glass",
            "fold": k,
            "seed": 0,
            "metric": m,
            "value": v + 0.01 * k,
            "seconds": 1.0,
            "epochs": 1,
            "n_train": 10,
        }
        for k in range(3)
        for s, v in (("scratch", 0.9), ("ssl", 0.95), ("ssl+valthreshold", 0.95))
        for m in ("rocauc", "rocauc_prob")
    ]
    table = headline_table(rows, "rocauc_prob")["matbench_glass"]
    assert table["ssl"]["metric"] == "rocauc_prob"
    assert table["ssl"]["mean"] == pytest.approx(0.96)
    lines = _probability_lines(table)
    assert not any("valthreshold" in line for line in lines)
    (ssl,) = [line for line in lines if line.startswith("| ssl ")]
    assert "+0.05" in ssl and ssl.endswith("| 3/3 |")
    assert all(line.count("|") == 6 for line in lines if line.startswith("| "))


def test_only_threshold_variants_repeat_their_base_model() -> None:
    from pretroost.experiment.strategies import repeats_base_model, threshold_base

    assert repeats_base_model("scratch+valthreshold")
    assert repeats_base_model("fingerprint+trunk+valthreshold")  # = fingerprint+trunk's model
    assert not repeats_base_model("scratch") and not repeats_base_model("dft+trunk")
    assert not repeats_base_model("select(scratch|ssl)")
    assert threshold_base("fingerprint+trunk+valthreshold") == (
        "fingerprint+trunk", "val_balanced_accuracy"
    )  # fmt: skip
    assert threshold_base("scratch+valthreshold") == ("scratch", "val_balanced_accuracy")
    assert threshold_base("dft+trunk") is None


def test_classweight_is_a_classification_only_variant_of_any_base() -> None:
    from pretroost.experiment.strategies import classification_only, repeats_base_model

    assert classification_only("scratch+classweight")
    assert classification_only("dft+trunk+classweight")
    assert not classification_only("dft+trunk") and not classification_only("scratch+valthreshold")
    assert not repeats_base_model("scratch+classweight")  # its own model: trained, not relabelled
    assert classification_only("dft+trunk+valauc+valthreshold")
    assert not repeats_base_model("dft+trunk+valauc")


def test_best_strategy_and_folds_better_follow_the_metric_direction() -> None:
    from pretroost.experiment.scores import best_strategy, folds_better

    cells = {"scratch": {"mean": 0.5}, "ssl": {"mean": 0.4}}
    assert best_strategy("matbench_steels", cells) == "ssl"  # MAE: lower is better
    assert best_strategy("matbench_glass", cells) == "scratch"  # ROC-AUC: higher is better
    a, b = {0: 1.0, 1: 3.0, 2: 2.0}, {0: 2.0, 1: 2.0, 2: 2.0, 3: 0.0}
    assert folds_better(a, b, lower_better=True) == (1, 3)  # ties are not wins; fold 3 not shared
    assert folds_better(a, b, lower_better=False) == (1, 3)


def test_report_explains_the_tree_strategies() -> None:
    from pretroost.experiment.report import _strategy_note

    assert "not Roost" in _strategy_note("trees")
    note = _strategy_note("trees+valthreshold")
    assert "not Roost" in note and "out-of-fold probabilities" in note


FIXTURES = Path(__file__).parent / "fixtures"
#: the content hash of the dft-all corpus (`pretroost corpus build --labels all`) that the encoder of
#: fixtures/dft-all-e10.config.json was pretrained on, as that config records it
DFT_ALL_HASH = "5ae62292ff7fc557"


def test_a_pretrain_encoder_with_the_same_settings_passes_the_reuse_check() -> None:
    """The config.json of `pretroost pretrain --objective dft --dft-labels all --corpus
    <dft-all corpus> --epochs 10 --batch-size 256 --lr 3e-4 --autocast native_bf16` (copied,
    weights left out) is `dft+labels_all+bf16` under the converged preset, and nothing else."""
    from pretroost.experiment.bench import check_pretrained, pretrain_config

    record = json.loads((FIXTURES / "dft-all-e10.config.json").read_text())
    assert record["corpus"]["size"] == 381_502 and record["corpus"]["hash"] == DFT_ALL_HASH
    converged = PRESETS["converged"]

    def check(*variants: str, corpus: str = DFT_ALL_HASH) -> list[str]:
        return check_pretrained(
            record, pretrain_config(converged, "dft", variants, 381_502), corpus
        )

    assert check("labels_all", "bf16") == []
    assert check("labels_all", "e30", "bf16") == ["pretrain.train.epochs: 10, expected 30"]
    assert check("labels_all", "f25", "bf16") == ["pretrain.max_compositions: None, expected 95376"]
    assert check("labels_all") == ["pretrain.autocast: 'native_bf16', expected 'off'"]
    (labels,) = check("bf16", corpus="46ca941095769fb1")[:1]
    assert labels.startswith("pretrain.dft.properties: [")
    assert check("labels_all", "bf16", corpus="46ca941095769fb1") == [
        f"corpus hash: {DFT_ALL_HASH!r}, expected '46ca941095769fb1'"
    ]
    budget = pretrain_config(PRESETS["budget"], "dft", ("labels_all", "bf16"), 381_502)
    assert check_pretrained(record, budget, DFT_ALL_HASH) == [
        "pretrain.train.epochs: 10, expected 3"
    ]
    assert check_pretrained({"kind": "model"}, budget, DFT_ALL_HASH) == [
        "kind: 'model', expected 'pretrained'"
    ]


def test_settings_an_encoder_predates_count_as_their_defaults() -> None:
    """The shipped dft-oqmd encoder, pretrained by `bench --preset converged --strategies dft`
    before the autocast, lr_scaling and amount_encoding settings existed, still passes as `dft`;
    a setting the record lacks passes only where the strategy needs its default."""
    from pretroost.experiment.bench import check_pretrained, pretrain_config
    from pretroost.pretrained import ROOT

    record = json.loads((ROOT / "dft-oqmd" / "config.json").read_text())
    assert "autocast" not in record["pretrain"]
    corpus = record["corpus"]["hash"]
    converged = PRESETS["converged"]
    assert check_pretrained(record, pretrain_config(converged, "dft", (), 300_639), corpus) == []
    bf16 = pretrain_config(converged, "dft", ("bf16",), 300_639)
    assert check_pretrained(record, bf16, corpus) == [
        "pretrain.autocast: not recorded (so 'off'), expected 'native_bf16'"
    ]


def test_bench_reuses_a_matching_encoder_folder_and_refuses_another(tmp_path) -> None:
    from pretroost.errors import ArtefactError
    from pretroost.experiment.bench import BenchPlan, _pretrained

    plan = BenchPlan(PRESETS["smoke"], (), (), tmp_path / "results", tmp_path / "runs")
    folder = _fake_encoder(plan, "dft", ("labels_all", "e30"))
    assert folder.name == "dft_labels_all_e30"
    assert _pretrained(plan, "dft", ("labels_all", "e30"), progress=False) == folder
    record = json.loads((folder / "config.json").read_text())
    record["pretrain"]["train"]["epochs"] = 10
    (folder / "config.json").write_text(json.dumps(record))
    with pytest.raises(
        ArtefactError, match=r"train\.epochs: 10, expected 30.*Move the folder away"
    ):
        _pretrained(plan, "dft", ("labels_all", "e30"), progress=False)
    assert not (folder / "model.safetensors").exists()  # refused, not pretrained over


def test_bench_takes_a_copied_pretrain_encoder_as_its_own(
    tmp_path, data_cache, monkeypatch
) -> None:
    """The copied config.json of the scaling study's dft-all-e10 in the folder bench expects for
    `dft+labels_all+bf16` under the converged preset: bench reuses it (against the dft-all corpus
    of the data cache) instead of pretraining."""
    from pretroost.data.dft_corpus import dft_corpus_path
    from pretroost.experiment.bench import BenchPlan, _pretrained

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    if not dft_corpus_path("all").is_file():
        pytest.skip("no dft-all corpus in the data cache: `pretroost corpus build --labels all`")
    plan = BenchPlan(PRESETS["converged"], (), (), tmp_path / "results", tmp_path / "runs")
    folder = plan.runs_dir / "dft_labels_all_bf16"
    folder.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "dft-all-e10.config.json", folder / "config.json")
    assert _pretrained(plan, "dft", ("labels_all", "bf16"), progress=False) == folder
    assert plan.corpora["dft-all"].info["hash"] == DFT_ALL_HASH


@pytest.mark.slow
def test_bench_smoke_pretrains_on_the_dft_corpus_of_labels_all(
    tmp_path, data_cache, monkeypatch
) -> None:
    """`dft+labels_all+trunk` on the smoke preset, with a data cache whose OQMD files are cut to
    1,000 rows and no DFT corpus: bench builds the dft-all corpus there (here from those rows and
    the first 1,000 of each Matbench DFT task), pretrains on 300 of its compositions with the
    seven labels, finetunes and reports; run again, it reuses the encoder; a folder of other
    settings is refused."""
    import pretroost.experiment.bench as bench
    from pretroost.data.dft_corpus import build_dft_corpus, dft_corpus_path
    from pretroost.data.dft_labels import label_set
    from pretroost.errors import ArtefactError

    cache = tmp_path / "cache"
    (cache / "oqmd").mkdir(parents=True)
    (cache / "matbench").symlink_to(data_cache / "matbench")
    for f in sorted((data_cache / "oqmd").glob("OQMD_*.csv")):
        pd.read_csv(f, nrows=1000).to_csv(cache / "oqmd" / f.name, index=False)
    monkeypatch.setenv("PRETROOST_CACHE", str(cache))
    built: list[str] = []

    def tiny_build(labels: str):
        built.append(labels)
        return build_dft_corpus(labels, cache=cache, limit=1000)

    monkeypatch.setattr(bench, "build_dft_corpus", tiny_build)
    res, runs = tmp_path / "results", tmp_path / "runs"
    strategy = "dft+labels_all+trunk"
    kw = dict(tasks=["steels"], data_efficiency=False, results_dir=res, runs_dir=runs)
    run_bench("smoke", strategies=[strategy], progress=False, **kw)
    assert built == ["all"] and dft_corpus_path("all").is_file()
    folder = runs / "dft_labels_all"
    config = json.loads((folder / "config.json").read_text())
    assert config["objectives"]["dft"]["properties"] == list(label_set("all"))
    assert config["corpus"]["labels"] == "all" and config["corpus"]["size"] == 300
    assert config["n_with_dft_label"]["mp_e_form"] > 0
    rows = [json.loads(line) for line in (res / "benchmark.jsonl").read_text().splitlines()]
    assert {r["strategy"] for r in rows} == {strategy}
    report = (res / "README.md").read_text()
    assert f"`{strategy}`: encoder pretrained to regress four OQMD DFT labels" in report
    assert "seven DFT labels" in report
    # again: the folder matches, so nothing is built or pretrained
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    run_bench("smoke", strategies=[strategy], pretrain_only=True, progress=False, **kw)
    assert built == ["all"] and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    config["pretrain"]["max_compositions"] = 150
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtefactError, match="max_compositions: 150, expected 300"):
        run_bench("smoke", strategies=[strategy], pretrain_only=True, progress=False, **kw)
