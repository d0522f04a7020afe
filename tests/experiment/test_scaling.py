"""pretroost.experiment.scaling: encoders' pretraining and paired design-validation differences."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pretroost.artefacts import MANIFEST
from pretroost.cli import main
from pretroost.experiment.encoder_validation import config_sha256
from pretroost.experiment.scaling import (
    OUTPUTS,
    _verdict_markdown,
    choose_encoder,
    encoder_info,
    format_markdown,
    paired_percent,
    scale_report,
    verdict_on_confirmation,
    verdict_on_test_folds,
    write_scale_report,
)
from pretroost.experiment.stats import corrected_paired_t
from pretroost.experiment.wording import check_equality_claims

SEVEN = ["Bandgap", "Formation_Enthalpy", "Energy_per_atom", "Volume_per_atom", "mp_e_form",
         "mp_gap", "mp_is_metal"]  # fmt: skip


def _encoder(root: Path, name: str, *, properties=SEVEN[:4], size=1000, history=True) -> Path:
    """A fake pretrained folder: its config.json only (nothing here loads weights)."""
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    losses = [0.3, 0.2, 0.15]
    config = {
        "format_version": 1, "kind": "pretrained", "objective": "dft",
        "objectives": {"dft": {"properties": list(properties)}},
        "corpus": {"labels": "all" if len(properties) == 7 else None, "size": size},
        "pretrain": {"val_fraction": 0.01, "max_compositions": None},
        "train": {"epochs": 3, "precision": "bf16"},
        "train_resolved": {"precision_used": "fp32"},
        "epochs_run": 3, "best_epoch": 2, "best_val_loss": 0.15, "seconds": 12.5,
        "git_sha": "0123456789abcdef", "machine": "test",
        "history": [{"epoch": i, "train_loss": 1.0, "lr": 1e-3, "epoch_seconds": 1.0,
                     "val_score": v} for i, v in enumerate(losses)] if history else None,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _row(task, encoder, fold, value, *, seed=0, metric="mae", recipe="converged", **extra):
    return {"task": task, "encoder": encoder, "seed": seed, "fold": fold, "recipe": recipe,
            "init_trunk": encoder != "scratch", "metric": metric, "value": value, "n_train": 8,
            "n_val": 2, "seconds": 1.0, "git_sha": "abc", **extra}  # fmt: skip


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_paired_percent_against_a_hand_computation() -> None:
    enc = {(0, 0): 11.0, (1, 0): 9.0, (2, 0): 12.6, (3, 0): 5.0}  # fold 3: no reference row
    ref = {(0, 0): 10.0, (1, 0): 10.0, (2, 0): 12.0}
    d = paired_percent(enc, ref, lower_better=True)
    assert d is not None
    deltas = [10.0, -10.0, 5.0]  # 100 (11 - 10) / 10, 100 (9 - 10) / 10, 100 (12.6 - 12) / 12
    mean = sum(deltas) / 3
    se = math.sqrt(sum((x - mean) ** 2 for x in deltas) / 2) / math.sqrt(3)
    assert d["n"] == 3
    assert d["mean"] == pytest.approx(mean)
    assert d["se"] == pytest.approx(se)
    assert [p["delta"] for p in d["pairs"]] == pytest.approx(deltas)
    one = paired_percent({(0, 0): 11.0}, ref, lower_better=True)
    assert one is not None and one["n"] == 1 and one["se"] is None
    assert paired_percent({(5, 0): 1.0}, ref, lower_better=True) is None


def test_the_sign_says_worse_for_an_error_and_for_a_score() -> None:
    # a higher MAE is worse (+), a higher ROC AUC is better (-)
    mae = paired_percent({(0, 0): 0.9}, {(0, 0): 0.8}, lower_better=True)
    auc = paired_percent({(0, 0): 0.9}, {(0, 0): 0.8}, lower_better=False)
    assert mae is not None and mae["mean"] == pytest.approx(12.5)
    assert auc is not None and auc["mean"] == pytest.approx(-12.5)


def test_report_pairs_per_fold_and_seed_with_direction_and_missing_rows(tmp_path) -> None:
    ref, big = _encoder(tmp_path, "ref"), _encoder(tmp_path, "big", properties=SEVEN, size=2000)
    new = _encoder(tmp_path, "new", history=False)
    rows = [
        _row("t_mae", "runs/ref", 0, 10.0), _row("t_mae", "runs/ref", 1, 20.0),
        _row("t_mae", "elsewhere/big", 0, 12.0), _row("t_mae", "elsewhere/big", 1, 18.0),
        _row("t_mae", "scratch", 0, 8.0), _row("t_mae", "scratch", 1, 20.0),
        _row("t_mae", "runs/big", 2, 1.0, recipe="quick"),  # another recipe: not read
        _row("t_auc", "ref", 0, 0.8, metric="rocauc_prob"),
        _row("t_auc", "big", 0, 0.9, metric="rocauc_prob"),
        _row("t_mae", "other", 0, 1.0),  # an encoder not asked for
    ]  # fmt: skip
    doc = scale_report([str(big), str(new)], validation=_write_rows(tmp_path / "v.jsonl", rows),
                       reference=str(ref))  # fmt: skip
    assert doc["order"] == ["ref", "big", "new", "scratch"]
    assert doc["not_validated"] == ["new"]
    t = doc["tasks"]["t_mae"]
    assert t["better"] == "lower" and set(t["encoders"]) == {"ref", "big", "scratch"}
    cell = t["encoders"]["big"]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(15.0)
    assert cell["vs_reference"]["mean"] == pytest.approx((20.0 - 10.0) / 2)  # +20 %, -10 %
    assert cell["vs_reference"]["se"] == pytest.approx(15.0)  # sd of (20, -10) / sqrt 2
    assert cell["vs_scratch"]["mean"] == pytest.approx((50.0 - 10.0) / 2)  # +50 %, -10 %
    assert t["encoders"]["ref"]["vs_reference"] is None
    assert t["encoders"]["scratch"]["vs_scratch"] is None
    auc = doc["tasks"]["t_auc"]
    assert auc["better"] == "higher"
    assert auc["encoders"]["big"]["vs_reference"]["mean"] == pytest.approx(-12.5)  # better
    infos = {e["name"]: e for e in doc["encoders"]}
    assert infos["big"]["labels"] == "all" and len(infos["big"]["properties"]) == 7
    assert infos["big"]["training_compositions"] == 2000 - 20  # its own 1 % held out
    assert infos["ref"]["labels"] == "oqmd4" and infos["ref"]["precision"] == "fp32"
    assert infos["ref"]["heldout_end"] == pytest.approx(0.15)
    assert infos["ref"]["history"] == ((1, 0.3), (2, 0.2), (3, 0.15))
    assert infos["new"]["heldout_end"] is None and infos["new"]["best_epoch"] == 3


def test_rows_of_another_folder_of_that_name_are_listed_not_read(tmp_path) -> None:
    ref, big = _encoder(tmp_path, "ref"), _encoder(tmp_path, "big")
    rows = [
        _row("t", "ref", 0, 10.0, encoder_config_sha256=config_sha256(ref)),
        _row("t", "big", 0, 11.0, encoder_config_sha256="0" * 64),
    ]
    doc = scale_report([str(big)], validation=_write_rows(tmp_path / "v.jsonl", rows),
                       reference=str(ref))  # fmt: skip
    assert set(doc["tasks"]["t"]["encoders"]) == {"ref"}
    assert doc["not_validated"] == ["big"]
    assert [r["encoder"] for r in doc["rows_not_read"]] == ["big"]


def test_unknown_encoders_and_clashing_names_raise(tmp_path) -> None:
    rows = _write_rows(tmp_path / "v.jsonl", [])
    with pytest.raises(ValueError, match=r"no-such-encoder.*valid: scratch.*dft-oqmd"):
        scale_report(["no-such-encoder"], validation=rows)
    a, b = _encoder(tmp_path / "a", "enc"), _encoder(tmp_path / "b", "enc")
    with pytest.raises(ValueError, match="two encoders named 'enc'"):
        scale_report([str(a), str(b)], validation=rows, reference=str(a))


def test_a_shipped_name_reads_its_config() -> None:
    info = encoder_info("dft-oqmd")
    assert info.name == "dft-oqmd" and info.labels == "oqmd4" and len(info.properties) == 4
    assert info.precision == "fp32" and info.heldout_end is None and info.heldout_best


def test_cli_writes_the_folder_with_its_manifest_and_refuses_foreign_files(tmp_path) -> None:
    ref, big = _encoder(tmp_path, "ref"), _encoder(tmp_path, "big")
    rows = _write_rows(tmp_path / "v.jsonl", [
        _row("t", "ref", f, 10.0 + f) for f in range(3)] + [
        _row("t", "big", f, 9.0 + 2 * f) for f in range(3)])  # fmt: skip
    out = tmp_path / "report" / "scaling"
    argv = ["scale-report", "--encoders", str(big), "--reference", str(ref), "--validation",
            str(rows), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, MANIFEST])
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == sorted(OUTPUTS)
    md = (out / "scaling.md").read_text()
    check_equality_claims(md)
    assert "exploratory" in md.lower() and "positive means the encoder does worse" in md
    assert "| `big` | 3 |" in md and "(3 pairs)" in md
    assert json.loads((out / "scaling.json").read_text())["tasks"]["t"]["encoders"]["big"]["n"] == 3
    assert main(argv) == 0  # its own folder: replaced
    (out / "mine.txt").write_text("not pretroost's")
    assert main(argv) == 1  # a file pretroost did not write: refused, left in place
    assert (out / "mine.txt").is_file()
    with pytest.raises(FileExistsError, match=r"mine\.txt"):
        write_scale_report([str(big)], validation=rows, reference=str(ref), out=out)


def _choice_doc(tmp_path, values: dict[str, list[float]], *, epochs=None, tasks=("a", "b")):
    """A report of encoders ``values`` (name -> one MAE per (task, replicate), task-major over
    folds 0 and 1), the first the reference; ``epochs``: name -> epochs run (the cost)."""
    folders = {}
    for name in values:
        folder = _encoder(tmp_path, name)
        if epochs and name in epochs:
            config = json.loads((folder / "config.json").read_text())
            config["epochs_run"] = epochs[name]
            (folder / "config.json").write_text(json.dumps(config))
        folders[name] = folder
    rows = [
        _row(task, name, fold, v[i * 2 + fold])
        for name, v in values.items() for i, task in enumerate(tasks) for fold in (0, 1)
    ]  # fmt: skip
    names = list(values)
    return scale_report([str(folders[n]) for n in names[1:]], reference=str(folders[names[0]]),
                        validation=_write_rows(tmp_path / "v.jsonl", rows))  # fmt: skip


def test_choice_by_hand_lowest_ratio_then_cheapest_within_one_se(tmp_path) -> None:
    # reference 10 everywhere; "big" -20 % on both tasks and replicates; "mid" a bit worse than
    # big on replicate 0 and better on 1 (within one SE of it) but cheaper; "bad" +10 %
    values = {
        "ref": [10.0, 10.0, 10.0, 10.0],
        "big": [8.0, 8.0, 8.0, 8.0],
        "mid": [8.6, 7.8, 8.6, 7.8],
        "bad": [11.0, 11.0, 11.0, 11.0],
    }
    doc = _choice_doc(tmp_path, values, epochs={"ref": 3, "big": 30, "mid": 10, "bad": 3})
    choice = choose_encoder(doc, tasks=("a", "b"), replicates=((0, 0), (1, 0)))
    assert choice["complete"] and choice["missing"] == {}
    enc = choice["encoders"]
    assert enc["ref"]["mean_ratio"] == pytest.approx(1.0)
    assert enc["big"]["ratios"] == pytest.approx([0.8, 0.8])
    assert enc["mid"]["ratios"] == pytest.approx([0.86, 0.78])  # mean over tasks per replicate
    d = [0.06, -0.02]  # mid - big per replicate
    se = math.sqrt(sum((x - 0.02) ** 2 for x in d)) / math.sqrt(2)  # sd (n - 1 = 1) / sqrt 2
    assert enc["mid"]["diff"] == pytest.approx(0.02) and enc["mid"]["se"] == pytest.approx(se)
    assert enc["mid"]["within"] and not enc["bad"]["within"] and not enc["ref"]["within"]
    assert enc["mid"]["cost"] == pytest.approx(10 * (1000 - 10))  # epochs x training rows
    assert choice["lowest"] == "big" and choice["chosen"] == "mid"
    assert "cheaper" in choice["reason"]
    assert doc["choice"]["chosen"] is None  # the report's own: the six design tasks, none here
    text = format_markdown({**doc, "choice": choice})
    assert "**Chosen: `mid`**" in text and "| `big` | 0.800 | 0.800 0.800 | lowest |" in text
    check_equality_claims(text)


def test_no_choice_while_a_row_is_missing_and_the_table_is_provisional(tmp_path) -> None:
    doc = _choice_doc(tmp_path, {"ref": [10.0] * 4, "big": [8.0] * 4})
    choice = doc["choice"]  # the declared rule: six design tasks x folds 0-2
    assert not choice["complete"] and choice["chosen"] is None
    assert len(choice["missing"]["big"]) == 6 * 3  # none of its rows is on a design task
    assert choice["encoders"] == {}
    text = format_markdown(doc)
    assert "**No choice yet**" in text and "Chosen:" not in text
    check_equality_claims(text)


def _bench_rows(values: dict[str, dict[str, list[float]]], *, seeds=(0, 1, 2)) -> list[dict]:
    """Benchmark rows: strategy -> task -> per-fold values; every seed gets the fold's value
    plus (seed - 1) * 0.1, so the seeds' mean is the value itself."""
    rows = []
    for strategy, tasks in values.items():
        for task, folds in tasks.items():
            metric = "rocauc" if task == "matbench_glass" else "mae"
            for k, v in enumerate(folds):
                rows += [{"strategy": strategy, "task": task, "fold": k, "seed": s,
                          "metric": metric, "value": v + (s - 1) * 0.1} for s in seeds]  # fmt: skip
    return rows


def test_the_test_fold_verdict_pairs_seed_means_per_fold() -> None:
    scratch = [10.0, 12.0, 11.0, 9.0, 13.0]
    ref = [9.5, 11.0, 10.8, 8.9, 12.0]
    enc = [8.5, 10.5, 9.6, 8.0, 11.5]  # 10-15 % below scratch
    auc = {"enc": [0.91, 0.92, 0.90, 0.93, 0.92], "dft+trunk": [0.9] * 5, "scratch": [0.9] * 5}
    rows = _bench_rows({
        "enc": {"matbench_steels": enc, "matbench_glass": auc["enc"]},
        "dft+trunk": {"matbench_steels": ref, "matbench_glass": auc["dft+trunk"]},
        "scratch": {"matbench_steels": scratch, "matbench_glass": auc["scratch"]},
    })  # fmt: skip
    rows.append({**rows[0], "value": 1e9, "seed": 7})  # another seed: not read
    v = verdict_on_test_folds(rows, "enc", tasks=("matbench_steels", "matbench_glass"))
    assert v["complete"] and v["missing"] == {}
    t = v["tasks"]["matbench_steels"]
    assert t["folds"]["enc"] == pytest.approx(enc) and t["mean"]["scratch"] == pytest.approx(11.0)
    pct = [100 * (e - s) / s for e, s in zip(enc, scratch, strict=True)]
    vs = t["vs_scratch"]
    assert vs["percent"]["mean"] == pytest.approx(np.mean(pct))
    d = np.array(enc) - np.array(scratch)
    expected = corrected_paired_t(d)
    assert vs["p_corrected"] == pytest.approx(expected["p_corrected"])
    assert vs["favours"] and vs["beats"] == (expected["p_corrected"] < 0.05)
    assert t["gain_goal"] is True and v["tasks_10pct_better_than_scratch"] == 1
    clf = v["tasks"]["matbench_glass"]
    assert clf["better"] == "higher" and clf["vs_scratch"]["favours"]
    assert clf["gain_goal"] is False  # +2 % of the score is not 10 %
    assert v["goals"]["four_of_six_10pct"] is False
    assert v["goals"]["expt_gap_at_most_modnet"] is None  # no expt_gap among these tasks
    text = "\n".join(_verdict_markdown(v))
    assert "| matbench_steels (mae) |" in text and "yes |" in text
    check_equality_claims(text)


def test_a_missing_seed_leaves_the_verdict_undecided() -> None:
    rows = _bench_rows({a: {"matbench_expt_gap": [0.33, 0.32, 0.34, 0.33, 0.31]}
                        for a in ("enc", "dft+trunk", "scratch")})  # fmt: skip
    rows = [r for r in rows if not (r["strategy"] == "enc" and r["fold"] == 4 and r["seed"] == 2)]
    v = verdict_on_test_folds(rows, "enc", tasks=("matbench_expt_gap",))
    assert not v["complete"] and v["missing"] == {"matbench_expt_gap": {"enc": [[4, 2]]}}
    assert v["tasks"]["matbench_expt_gap"]["folds"]["enc"][4] is None
    assert v["goals"]["four_of_six_10pct"] is None
    assert v["goals"]["expt_gap_at_most_modnet"] is None
    assert "**Incomplete: no verdict.**" in "\n".join(_verdict_markdown(v))


def test_the_confirmation_needs_two_of_its_three_tasks_and_every_cell() -> None:
    scratch = [0.10, 0.12, 0.11, 0.09, 0.13]
    better = [0.085, 0.105, 0.096, 0.080, 0.115]  # 10-15 % below scratch on every fold
    arms = {
        "enc": {"matbench_log_kvrh": better, "matbench_log_gvrh": better,
                "matbench_dielectric": scratch},
        "dft+trunk": dict.fromkeys(("matbench_log_kvrh", "matbench_log_gvrh",
                                    "matbench_dielectric"), scratch),
        "scratch": dict.fromkeys(("matbench_log_kvrh", "matbench_log_gvrh",
                                  "matbench_dielectric"), scratch),
    }  # fmt: skip
    rows = _bench_rows(arms)
    rows += _bench_rows({"enc": {"matbench_steels": [1.0] * 5}})  # a design task: not read
    v = verdict_on_confirmation(rows, "enc")
    assert v["complete"] and list(v["tasks"]) == ["matbench_log_kvrh", "matbench_log_gvrh",
                                                  "matbench_dielectric"]  # fmt: skip
    assert v["tasks_10pct_better_than_scratch"] == 2
    assert v["goals"] == {"two_of_three_10pct": True}
    text = "\n".join(_verdict_markdown(v))
    assert "## Confirmation: `enc`" in text and "on 2 of the 3 tasks: met." in text
    check_equality_claims(text)
    one_short = [r for r in rows if not (r["task"] == "matbench_log_gvrh" and r["fold"] == 0
                                          and r["strategy"] == "scratch" and r["seed"] == 1)]  # fmt: skip
    v = verdict_on_confirmation(one_short, "enc")
    assert not v["complete"] and v["goals"] == {"two_of_three_10pct": None}
    assert v["missing"] == {"matbench_log_gvrh": {"scratch": [[0, 1]]}}
    assert "**Incomplete: no verdict.**" in "\n".join(_verdict_markdown(v))


def test_cli_adds_both_verdicts_read_from_one_rows_file(tmp_path) -> None:
    ref = _encoder(tmp_path, "ref")
    rows = _write_rows(tmp_path / "v.jsonl", [_row("t", "ref", f, 10.0 + f) for f in range(3)])
    cells = tmp_path / "benchmark.jsonl"
    folds = [0.3, 0.31, 0.32, 0.33, 0.34]
    tasks = ("matbench_expt_gap", "matbench_log_kvrh")
    cells.write_text("".join(json.dumps(r) + "\n" for r in _bench_rows(
        {a: dict.fromkeys(tasks, folds) for a in ("enc", "dft+trunk", "scratch")})))  # fmt: skip
    out = tmp_path / "scaling"
    argv = ["scale-report", "--encoders", str(ref), "--reference", str(ref), "--validation",
            str(rows), "--out", str(out), "--test-strategy", "enc", "--confirm-strategy", "enc",
            "--test-rows", str(cells)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads((out / "scaling.json").read_text())
    assert (
        doc["test_folds"]["kind"] == "test_folds" and doc["confirmation"]["kind"] == "confirmation"
    )
    assert doc["command"].endswith(
        f"--test-strategy enc --confirm-strategy enc --test-rows {cells}"
    )
    md = (out / "scaling.md").read_text()
    assert md.index("## Test folds: `enc`") < md.index("## Confirmation: `enc`")
    assert "**Incomplete: no verdict.**" in md  # only expt_gap and log_kvrh have cells
