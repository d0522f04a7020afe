"""The DFT corpus of OQMD + Matbench's DFT tasks: Matbench labels averaged per composition, the
1e-3 near-match exclusion of the evaluation and confirmation tasks, the multi-task labelled view,
and a tiny pretraining on all labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pretroost.data.composition import CompositionArray, parse_formulas
from pretroost.data.corpus import ALL_DFT_PROPERTIES, Corpus
from pretroost.data.dft_corpus import EXCLUDED_TASKS, build_dft_corpus, task_compositions
from pretroost.data.dft_labels import (
    LABEL_SETS,
    NEAR_TOLERANCE,
    label_set,
    matbench_dft_labels,
    near_duplicates,
)
from pretroost.objectives import DFTConfig
from pretroost.pretrain import PretrainConfig, pretrain
from pretroost.train import TrainConfig
from tiny import tiny_encoder

EVALUATION = ("matbench_expt_gap", "matbench_steels", "matbench_glass", "matbench_expt_is_metal",
              "matbench_jdft2d", "matbench_phonons")  # fmt: skip
CONFIRMATION = ("matbench_log_kvrh", "matbench_log_gvrh", "matbench_dielectric")


def test_near_duplicates_match_within_the_tolerance_on_the_same_elements_only() -> None:
    ref = parse_formulas(["FeNi", "Fe0.62Ni0.379C0.001", "NaCl"])
    comps = parse_formulas(
        ["Fe1000Ni1001", "Fe1Ni2", "Fe0.6205Ni0.3785C0.001", "Fe0.62Ni0.38", "Na1Cl1.01", "KCl"]
    )
    assert near_duplicates(comps, ref).tolist() == [True, False, True, False, False, False]
    assert near_duplicates(comps, ref, tol=0.01).tolist() == [True, False, True, False, True, False]


def test_label_sets_and_unknown_names() -> None:
    assert label_set("oqmd4") == ALL_DFT_PROPERTIES[:4]
    assert set(label_set("all")) == set(ALL_DFT_PROPERTIES) - {"perovskites"}
    with pytest.raises(ValueError, match="valid: oqmd4, all, all\\+perovskites"):
        label_set("everything")
    with pytest.raises(ValueError, match="valid: mp_e_form"):
        matbench_dft_labels(("Bandgap",))
    assert DFTConfig(properties=LABEL_SETS["all+perovskites"]).properties[-1] == "perovskites"
    with pytest.raises(ValueError, match="mp_is_metal"):
        DFTConfig(properties=("mp_band_gap",))


def test_matbench_labels_are_the_mean_per_reduced_composition(data_cache) -> None:
    from pretroost.data.matbench import load_task

    table = matbench_dft_labels(("mp_gap", "mp_is_metal"), limit=3000)
    df = load_task("matbench_mp_gap", source="cache").iloc[:3000]
    keys = pd.Series(parse_formulas(df["formula"].tolist()).keys(), index=df.index)
    counts = keys.value_counts()
    key = counts.index[0]  # a composition with several structures (polymorphs, or multiples)
    assert counts.iloc[0] > 1
    expected = df["target"][keys == key].mean()
    assert table.loc[key, "mp_gap"] == pytest.approx(expected)
    metal = table["mp_is_metal"].dropna()
    assert ((metal >= 0) & (metal <= 1)).all() and ((metal > 0) & (metal < 1)).any()


def _fraction_rows(comps: CompositionArray) -> dict[tuple[int, ...], np.ndarray]:
    rows: dict[tuple[int, ...], list[np.ndarray]] = {}
    for i in range(len(comps)):
        z, frac = comps[i]
        rows.setdefault(tuple(z.tolist()), []).append(frac)
    return {k: np.stack(v) for k, v in rows.items()}


@pytest.fixture(scope="module")
def small_corpus(data_cache) -> Corpus:
    """The ``all`` corpus from the first 4,000 rows of each OQMD file and Matbench DFT task."""
    return build_dft_corpus("all", limit=4000)


def test_dft_corpus_holds_no_evaluation_or_confirmation_composition(small_corpus) -> None:
    """Every composition of the six evaluation and three confirmation tasks is out of the corpus,
    checked independently of the builder: for each element set both sides share, every pair's
    largest normalised-fraction difference exceeds 1e-3. The Materials Project tasks' own
    compositions are in (they carry the labels)."""
    assert set(EXCLUDED_TASKS) == set(EVALUATION) | set(CONFIRMATION)
    corpus = small_corpus
    info = corpus.info
    assert info["labels"] == "all" and info["per_source"]["matbench_mp_gap"] > 0
    assert info["removed_total"] > 0 and set(info["exclusion_report"]) == set(EXCLUDED_TASKS)
    ours = _fraction_rows(corpus.comps)
    for name, tc in task_compositions(EXCLUDED_TASKS).items():
        for els, fracs in _fraction_rows(tc).items():
            mine = ours.get(els)
            if mine is not None:
                gap = np.abs(mine[:, None, :] - fracs[None, :, :]).max(axis=2)
                assert gap.min() > NEAR_TOLERANCE, f"{name}: {els} within 1e-3"
    # the multi-task labelled view: OQMD's four and Matbench's three, NaN where unknown
    labels = corpus.dft_labels(LABEL_SETS["all"], limit=4000)
    assert labels.shape == (len(corpus), 7)
    assert np.isfinite(labels).any(axis=1).mean() > 0.9
    assert np.isnan(labels[:, :4]).all(axis=1).any(), "some compositions only Matbench labels"


def test_dft_corpus_saves_and_loads(tmp_path, small_corpus) -> None:
    corpus = small_corpus
    again = Corpus.load(corpus.save(tmp_path / "dft-all-leakfree.npz"))
    assert again.content_hash == corpus.info["hash"] and again.info["labels"] == "all"
    with pytest.raises(ValueError, match="no Matbench labels"):
        build_dft_corpus("oqmd4")


def test_tiny_pretraining_on_all_labels(tmp_path, small_corpus) -> None:
    corpus = small_corpus.subset(np.arange(0, len(small_corpus), len(small_corpus) // 200))
    config = PretrainConfig(
        objective="dft",
        encoder=tiny_encoder(width=8, hidden=8),
        train=TrainConfig(epochs=2, batch_size=32, lr=3e-3, seed=0),
        dft=DFTConfig(properties=LABEL_SETS["all"], trunk_hidden=(16,), trunk_out=8, limit=4000),
    )
    torch.set_num_threads(1)
    out = pretrain(corpus, config, tmp_path / "dft-all", progress=False)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["target_dims"] == {"dft": 7}
    assert cfg["target_scalers"]["dft"]["properties"] == list(LABEL_SETS["all"])
    assert set(cfg["n_with_dft_label"]) == set(LABEL_SETS["all"])
    assert all(np.isfinite(r["train_loss"]) for r in cfg["history"])
    # Matbench labels on a corpus without their compositions: refused, not trained on NaN
    y = corpus.dft_labels(LABEL_SETS["all"], limit=4000)
    oqmd_only = corpus.subset(np.flatnonzero(np.isnan(y[:, 4:]).all(axis=1)))
    with pytest.raises(ValueError, match="no corpus composition has a mp_e_form, mp_gap"):
        pretrain(oqmd_only, config, tmp_path / "refused", progress=False)
