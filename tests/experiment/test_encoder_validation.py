"""pretroost.experiment.encoder_validation: the design split reads training rows only; each
official fold given is one replicate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pretroost.cli import build_parser
from pretroost.experiment import encoder_validation as ev
from pretroost.experiment.encoder_validation import design_split, format_table


def test_design_split_partitions_the_training_rows_and_is_seeded() -> None:
    train = np.arange(0, 100, 2)  # the official fold's training rows; odd rows are its test rows
    split = design_split(100, train, seed=3)
    assert set(split.train) | set(split.val) == set(train)
    assert not set(split.train) & set(split.val)
    assert len(split.val) == 10  # 20 % of 50
    again = design_split(100, train, seed=3)
    assert np.array_equal(split.val, again.val) and np.array_equal(split.train, again.train)
    assert not np.array_equal(split.val, design_split(100, train, seed=4).val)
    with pytest.raises(ValueError, match="fraction"):
        design_split(100, train, fraction=1.0)
    with pytest.raises(ValueError, match="outside"):
        design_split(10, train)


def test_table_averages_seeds_per_task_and_encoder() -> None:
    rows = [
        {"task": "t", "metric": "mae", "encoder": e, "fold": 0, "recipe": "converged", "value": v}
        for e, v in [("scratch", 2.0), ("scratch", 4.0), ("dft-oqmd", 1.0)]
    ]
    table = format_table(rows)
    assert "| t | mae | scratch | 0 | converged | 2 | 3 |" in table
    assert "| t | mae | dft-oqmd | 0 | converged | 1 | 1 |" in table


@pytest.mark.parametrize(
    ("extra", "folds"),
    [([], [0]), (["--folds", "0", "1", "2"], [0, 1, 2]), (["--fold", "1"], [1])],
)
def test_cli_takes_several_folds_and_fold_as_their_alias(extra, folds) -> None:
    parser = build_parser(only="encoder-validation")
    args = parser.parse_args(
        ["encoder-validation", "--encoders", "scratch", "--tasks", "t", *extra]
    )
    assert args.folds == folds


def test_every_fold_is_a_replicate_and_a_rerun_resumes(tmp_path, monkeypatch) -> None:
    """No training: the task, its folds and the finetuning are stand-ins."""
    formulas = ["Fe2O3", "NaCl", "GaN", "Si", "MgO", "ZnO", "CuO", "TiO2", "SiC", "AlN"] * 5
    df = pd.DataFrame(
        {"formula": formulas, "target": np.arange(50.0)}, index=[f"id{i}" for i in range(50)]
    )
    folds = [(list(df.index[(np.arange(50) % 5) != k]), list(df.index[k::5])) for k in range(5)]
    fitted: list[tuple[int, tuple[int, ...]]] = []

    def fake_fit(comps, y, task_type, config, *, seed, name):
        fitted.append((int(name.split("/fold")[1].split("/")[0]), tuple(y[:, 0].astype(int))))
        return object()

    monkeypatch.setattr(
        ev, "get_task", lambda name: SimpleNamespace(name=name, task_type="regression")
    )
    monkeypatch.setattr(ev, "load_task", lambda name: df)
    monkeypatch.setattr(ev, "load_folds", lambda name: folds)
    monkeypatch.setattr(ev, "check_source", lambda: None)
    monkeypatch.setattr(ev, "fit", fake_fit)
    monkeypatch.setattr(ev, "_score", lambda task_type, y, model, comps: float(y.mean()))
    out = tmp_path / "ev"
    rows = ev.validate_encoders(["scratch"], ["t"], folds=[0, 2], seeds=[0, 1], out=out)
    assert [(r["fold"], r["seed"]) for r in rows] == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert all(r["n_train"] == 32 and r["n_val"] == 8 for r in rows)  # 80 / 20 % of 40 rows
    assert rows[0]["encoder_config_sha256"] is None
    train_0, train_2 = fitted[0][1], fitted[2][1]
    assert train_0 != train_2  # each fold its own design split
    test_0 = {int(i[2:]) for i in folds[0][1]}
    assert not test_0 & set(train_0)  # the official test fold is never trained on
    again = ev.validate_encoders(["scratch"], ["t"], folds=[0, 1, 2], seeds=[0, 1], out=out)
    assert [(r["fold"], r["seed"]) for r in again] == [(1, 0), (1, 1)]
    lines = (out.with_suffix(".jsonl")).read_text().splitlines()
    assert len(lines) == 6
    assert "| t | mae | scratch | 1 | converged | 2 |" in out.with_suffix(".md").read_text()
    with pytest.raises(ValueError, match=r"no official fold \[7\]; valid: 0, 1, 2, 3, 4"):
        ev.validate_encoders(["scratch"], ["t"], folds=[7], out=out)
