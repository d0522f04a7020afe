"""The ``dft`` pretraining objective: labelled view of the corpus, masked loss, tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pretroost.artefacts import load_artefact
from pretroost.data.corpus import DFT_PROPERTIES, build_corpus, oqmd_labels
from pretroost.finetune import FinetuneConfig, build_model
from pretroost.losses import MaskedSmoothL1Loss
from pretroost.objectives import OBJECTIVES, CombinedObjective, DFTConfig
from pretroost.pretrain import PretrainConfig, pretrain
from pretroost.train import TrainConfig
from tiny import ANIONS, CATIONS, tiny_encoder

TINY = tiny_encoder(width=8, hidden=8)
#: 120 binaries AB, A2B, AB2 (enough for the 1 % held-out split to exist at 100+ rows)
FORMULAS = [f"{a}{i}{b}{j}" for a in CATIONS for b in ANIONS for i, j in ((1, 1), (2, 1), (1, 2))]


def write_oqmd(root: Path) -> Path:
    """Tiny ``OQMD_<property>_{train,val}.csv`` files: formula ``i`` misses property ``j`` when
    ``i % 5 == j``, and ``Li2S2`` (= LiS) repeats ``Li1S1`` with another band gap (averaged)."""
    oqmd = root / "oqmd"
    oqmd.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for j, prop in enumerate(DFT_PROPERTIES):
        keep = [f for i, f in enumerate(FORMULAS) if i % 5 != j]
        values = rng.normal(size=len(keep)) * (j + 1) + 3 * j
        if prop == "Bandgap":
            values = np.maximum(values, 0.0)  # a mass at zero, as in OQMD
        half = len(keep) // 2
        df = pd.DataFrame({"formula": keep, "target": values})
        df.iloc[:half].to_csv(oqmd / f"OQMD_{prop}_train.csv", index=False)
        extra = pd.DataFrame({"formula": ["Li2S2"], "target": [10.0]}) if j == 0 else None
        pd.concat([df.iloc[half:], extra]).to_csv(oqmd / f"OQMD_{prop}_val.csv", index=False)
    return oqmd


def test_masked_smooth_l1_ignores_missing_labels_and_is_zero_at_target() -> None:
    torch.manual_seed(0)
    loss = MaskedSmoothL1Loss(beta=1.0)
    target = torch.randn(16, 4) * 3
    target[torch.rand(16, 4) < 0.3] = float("nan")
    row_mask = torch.rand(16) < 0.8
    pred = torch.randn(16, 4, requires_grad=True)
    base = loss(pred, target, row_mask)
    (g_base,) = torch.autograd.grad(base, pred)
    # any value behind a NaN, and any label of a masked-out row, changes nothing
    other = target.clone()
    other[~row_mask] = torch.randn(int((~row_mask).sum()), 4) * 100
    changed = loss(pred, other, row_mask)
    (g_changed,) = torch.autograd.grad(changed, pred)
    assert torch.equal(base, changed) and torch.equal(g_base, g_changed)
    assert not g_base[~torch.isfinite(target)].any() and not g_base[~row_mask].any()
    # average over the labels present: one present label of residual r >= beta gives r - beta / 2
    single = torch.full((2, 4), float("nan"))
    single[1, 2] = 0.0
    assert float(loss(torch.full((2, 4), 5.0), single)) == 4.5
    # zero at the target (NaN entries ignored), positive elsewhere; no labels at all -> 0
    at_target = torch.nan_to_num(target).requires_grad_(True)
    zero = loss(at_target, target, row_mask)
    assert float(zero.detach()) == 0.0
    assert not torch.autograd.grad(zero, at_target)[0].any()
    assert float(base.detach()) > 0
    assert float(loss(pred.detach(), torch.full((16, 4), float("nan")))) == 0.0


def test_oqmd_labels_join_by_reduced_composition(tmp_path) -> None:
    oqmd = write_oqmd(tmp_path)
    table = oqmd_labels(oqmd_dir=oqmd)
    assert list(table.columns) == list(DFT_PROPERTIES)
    assert len(table) == len(FORMULAS)  # Li2S2 reduces to LiS: no row of its own
    corpus = build_corpus(cache=tmp_path, include_matbench=True)
    labels = corpus.dft_labels(oqmd_dir=oqmd)
    assert labels.shape == (len(FORMULAS), len(DFT_PROPERTIES)) and labels.dtype == np.float32
    position = np.array([FORMULAS.index(f) for f in corpus.formulas])  # corpus rows -> FORMULAS
    for j in range(len(DFT_PROPERTIES)):
        missing = position % 5 == j
        assert np.isnan(labels[missing, j]).all() and np.isfinite(labels[~missing, j]).all()
    raw = pd.concat(pd.read_csv(f) for f in sorted(oqmd.glob("OQMD_Bandgap_*.csv")))
    lis = raw.loc[raw["formula"].isin(["Li1S1", "Li2S2"]), "target"]
    assert len(lis) == 2
    row = corpus.formulas.index("Li1S1")
    assert labels[row, 0] == pytest.approx(lis.mean(), rel=1e-6)  # duplicates averaged
    # a subset of the files and a subset of the properties
    few = oqmd_labels(("Volume_per_atom",), oqmd_dir=oqmd, limit=5)
    assert list(few.columns) == ["Volume_per_atom"] and len(few) <= 10
    with pytest.raises(ValueError, match="Bandgap, Formation_Enthalpy"):
        oqmd_labels(("Bandgap", "Magnetism"), oqmd_dir=oqmd)
    with pytest.raises(ValueError, match="each once"):
        DFTConfig(properties=("Bandgap", "Bandgap"))


def test_dft_view_keeps_the_matbench_exclusion(tmp_path, data_cache) -> None:
    from pretroost.data.matbench import load_task

    oqmd = write_oqmd(tmp_path)
    leak = str(load_task("matbench_expt_gap", source="cache")["formula"].iloc[0])
    for prop in DFT_PROPERTIES:  # a Matbench composition with every label
        f = oqmd / f"OQMD_{prop}_train.csv"
        pd.concat([pd.read_csv(f), pd.DataFrame({"formula": [leak], "target": [1.0]})]).to_csv(
            f, index=False
        )
    corpus = build_corpus(cache=tmp_path, exclude=["matbench_expt_gap"], limit=1000)
    assert leak not in corpus.formulas
    assert corpus.info["exclusion_report"]["matbench_expt_gap"]["removed_from_oqmd"] >= 1
    labels = corpus.dft_labels(oqmd_dir=oqmd)
    assert len(labels) == len(corpus)  # a view of the corpus: no row for the excluded one
    n_files = len(list(oqmd.glob("OQMD_*.csv")))
    assert 0 < len(build_corpus(cache=tmp_path, include_matbench=True, limit=10)) <= 10 * n_files


def test_tiny_dft_pretraining_end_to_end(tmp_path) -> None:
    oqmd = write_oqmd(tmp_path)
    corpus = build_corpus(cache=tmp_path, include_matbench=True)
    head = {"trunk_hidden": (16,), "trunk_out": 8}
    config = PretrainConfig(
        objective="dft",
        encoder=TINY,
        train=TrainConfig(epochs=6, batch_size=16, lr=3e-3, seed=0),
        dft=DFTConfig(oqmd_dir=str(oqmd), **head),
    )
    torch.set_num_threads(1)
    out = pretrain(corpus, config, tmp_path / "dft", progress=False)
    art = load_artefact(out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["objective"] == "dft" and cfg["weights"] == {"dft": 2.0}
    assert cfg["target_dims"] == {"dft": 4}
    scaler = cfg["target_scalers"]["dft"]
    assert scaler["properties"] == list(DFT_PROPERTIES)
    # the config describes the scaler in the weights, fitted on labels (means inside their range)
    np.testing.assert_allclose(scaler["mean"], art.state_dict["parts.dft.target_mean"].numpy())
    np.testing.assert_allclose(scaler["std"], art.state_dict["parts.dft.target_std"].numpy())
    labels = corpus.dft_labels(oqmd_dir=oqmd)
    assert (np.nanmin(labels, 0) < scaler["mean"]).all()
    assert (scaler["mean"] < np.nanmax(labels, 0)).all()
    assert all(s > 0 for s in scaler["std"])
    assert cfg["n_with_dft_label"]["Bandgap"] == int(np.isfinite(labels[:, 0]).sum())
    history = cfg["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns something
    # finetuning can start from its encoder and its head's trunk (same shape as the model's)
    model, report = build_model(
        "regression",
        1,
        FinetuneConfig(init=str(out), init_trunk=True, trunk_hidden=(16,), out_hidden=(8, 4)),
    )
    assert report is not None and not report["missing"] and not report["unexpected"]
    for key, value in model.trunk.state_dict().items():
        torch.testing.assert_close(value, art.state_dict[f"parts.dft.head.trunk.{key}"])


def test_dft_combines_with_the_other_objectives() -> None:
    from pretroost.models.roost import RoostEncoder
    from pretroost.objectives import parse_objective

    assert "dft" in OBJECTIVES
    for spec in ("dft+fingerprint", "ssl+dft", "ssl+fingerprint+structure+dft"):
        names = parse_objective(spec)
        obj = CombinedObjective(
            RoostEncoder(TINY),
            names,
            configs={"dft": DFTConfig(trunk_hidden=(16,), trunk_out=8)},
            target_dims={"dft": 4, "fingerprint": 3, "structure": 2},
        )
        assert obj.weights["dft"] == 2.0
        assert all(w == 1.0 for n, w in obj.weights.items() if n != "dft")
    given = CombinedObjective(
        RoostEncoder(TINY), ["ssl", "dft"], weights={"dft": 0.5}, target_dims={"dft": 4}
    )
    assert given.weights == {"ssl": 1.0, "dft": 0.5}


def test_bench_offers_dft_without_changing_the_presets() -> None:
    from pretroost.experiment.bench import STRATEGIES, parse_strategy
    from pretroost.experiment.report import _strategy_note
    from pretroost.experiment.strategies import strategy_order

    assert "dft" not in STRATEGIES  # the default strategy list is unchanged
    assert parse_strategy("dft") == ("dft", (), ())
    assert parse_strategy("dft+fingerprint+trunk") == ("dft+fingerprint", (), ("trunk",))
    assert "DFT labels" in _strategy_note("dft")
    labels = ["dft+trunk", "dft", "scratch", "fingerprint"]
    assert sorted(labels, key=strategy_order) == ["scratch", "fingerprint", "dft", "dft+trunk"]


def test_combination_balances_its_losses_from_their_initial_size(tmp_path) -> None:
    """ssl + dft: a Barlow Twins loss is orders of magnitude larger than a standardised one; the
    default balance divides each weight by its initial loss, so both terms start with equal shares,
    and the shares at start and end are recorded."""
    oqmd = write_oqmd(tmp_path)
    corpus = build_corpus(cache=tmp_path, include_matbench=True)
    head = {"trunk_hidden": (16,), "trunk_out": 8}
    train = TrainConfig(epochs=1, batch_size=16, lr=1e-3, seed=0)
    torch.set_num_threads(1)
    base = {"objective": "ssl+dft", "encoder": TINY, "train": train}
    dft = DFTConfig(oqmd_dir=str(oqmd), **head)
    out = pretrain(corpus, PretrainConfig(**base, dft=dft), tmp_path / "bal", progress=False)
    cfg = json.loads((out / "config.json").read_text())
    start = cfg["loss_shares"]["start"]
    assert start["ssl"] == pytest.approx(0.5, abs=1e-6) and start["dft"] == pytest.approx(
        0.5, abs=1e-6
    )
    assert set(cfg["loss_shares"]["end"]) == {"ssl", "dft"}
    assert cfg["weights"]["ssl"] < 0.1 * cfg["weights"]["dft"]  # the large loss is scaled down
    plain = PretrainConfig(**base, dft=dft, balance="none")
    out = pretrain(corpus, plain, tmp_path / "plain", progress=False)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["loss_shares"]["start"]["ssl"] > 0.9  # unbalanced: SSL dominates
    with pytest.raises(ValueError, match="valid: none, initial"):
        PretrainConfig(objective="ssl+dft", balance="auto")  # type: ignore[arg-type]


def test_predict_dft_gives_each_composition_its_own_prediction() -> None:
    """The shipped dft-oqmd's DFT head through predict_dft: one row per composition in input
    order, in the labels' units (volumes positive), unchanged by batch size and input order; an
    artefact without a dft head is refused."""
    from pretroost.artefacts import ArtefactError
    from pretroost.data.composition import parse_formulas
    from pretroost.objectives.dft import predict_dft

    formulas = ["NaCl", "Fe2O3", "Cu0.5Zr0.5", "GaAs", "Li3PO4"]
    values, props = predict_dft(parse_formulas(formulas))
    assert props == list(DFT_PROPERTIES) and values.shape == (5, 4)
    assert np.isfinite(values).all() and (values[:, props.index("Volume_per_atom")] > 0).all()
    again, _ = predict_dft(parse_formulas(formulas[::-1]), batch_size=2)
    # float32 forward passes over differently padded batches: equal to float32 rounding, scaled
    # by the property's std (volumes ~8 A^3/atom)
    np.testing.assert_allclose(again[::-1], values, rtol=1e-4, atol=1e-3)
    with pytest.raises(ArtefactError, match="no dft head"):
        predict_dft(parse_formulas(formulas), "fingerprint-oqmd")
