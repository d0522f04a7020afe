"""Strategy names with pretraining variants: parsing, the encoder's folder and corpus, its
pretraining settings under a preset, and the report's legend."""

from __future__ import annotations

import pytest

from pretroost.data.dft_labels import label_set
from pretroost.experiment.bench import pretrain_config
from pretroost.experiment.presets import PRESETS
from pretroost.experiment.report import _strategy_note
from pretroost.experiment.strategies import (
    CORPORA,
    PRETRAIN_VARIANTS,
    is_strategy,
    parse_strategy,
    pretrain_corpus,
    pretrain_folder,
    strategy_order,
)


def test_a_dft_strategy_with_pretraining_variants_parses_and_names_its_encoder() -> None:
    name = "dft+labels_all+e30+bf16+trunk"
    base, pre, post = parse_strategy(name)
    assert (base, pre, post) == ("dft", ("labels_all", "e30", "bf16"), ("trunk",))
    assert pretrain_folder(base, pre) == "dft_labels_all_e30_bf16"
    assert pretrain_folder("dft", ()) == "dft"  # the plain encoder keeps its folder
    assert pretrain_folder("ssl+fingerprint+structure", ()) == "ssl_fingerprint_structure"
    assert parse_strategy("dft+fingerprint+labels_all+f50+trunk") == (
        "dft+fingerprint", ("labels_all", "f50"), ("trunk",)
    )  # fmt: skip
    # a variant of the encoder sorts after the plain strategy
    order = sorted([name, "dft+trunk", "dft", "scratch"], key=strategy_order)
    assert order == ["scratch", "dft", name, "dft+trunk"]


def test_the_corpus_is_the_bases_or_the_one_a_variant_declares() -> None:
    assert pretrain_corpus("dft") == pretrain_corpus("ssl") == "oqmd"
    assert pretrain_corpus("dft", ("labels_all", "e30")) == "dft-all"
    assert pretrain_corpus("dft+fingerprint", ("labels_all",)) == "dft-all"
    assert pretrain_corpus("structure") == "structures"
    assert pretrain_corpus("ssl+fingerprint+structure") == "oqmd+structures"
    declared = {v.corpus for v in PRETRAIN_VARIANTS.values() if v.corpus is not None}
    assert declared <= set(CORPORA)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("dft+e30+labels_all", "write 'dft\\+labels_all\\+e30'"),
        ("dft+bf16+labels_all+trunk", "write 'dft\\+labels_all\\+bf16'"),
        ("dft+e30+e100", "\\+e30, \\+e100 each change the epochs"),
        ("dft+f25+f50", "corpus fraction"),
        ("dft+e30+e30", "\\+e30, \\+e30 each change"),
        ("ssl+e30", "changes the dft objective"),
        ("fingerprint+labels_all", "changes the dft objective"),
    ],
)
def test_pretraining_variants_are_refused_out_of_order_twice_or_on_another_objective(
    name: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_strategy(name)
    assert not is_strategy(name)


def test_pretraining_settings_follow_the_preset_and_each_variant() -> None:
    converged = PRESETS["converged"]
    plain = pretrain_config(converged, "dft", (), 300_639)
    assert plain.objective == "dft" and plain.train == converged.pretrain
    assert plain.autocast == "off" and plain.max_compositions is None
    assert plain.dft.properties == label_set("oqmd4")
    config = pretrain_config(converged, "dft", ("labels_all", "e30", "bf16"), 381_502)
    assert config.dft.properties == label_set("all")
    assert config.train.epochs == 30 and config.autocast == "native_bf16"
    assert (config.train.batch_size, config.train.lr, config.train.schedule) == (
        256, 3e-4, "cosine"
    )  # fmt: skip
    assert config.max_compositions is None
    assert pretrain_config(converged, "dft", ("e100",), 10).train.epochs == 100
    # a share of the corpus, rounded up: the scaling study's --max-compositions 95376 / 190751
    assert pretrain_config(converged, "dft", ("labels_all", "f25"), 381_502).max_compositions == (
        95_376
    )
    assert pretrain_config(converged, "dft", ("f50",), 381_502).max_compositions == 190_751
    # ... of what the preset pretrains on: smoke takes 300 compositions of any corpus
    assert pretrain_config(PRESETS["smoke"], "dft", ("f25",), 5_000).max_compositions == 75


def test_the_legend_gives_the_base_then_each_change() -> None:
    note = _strategy_note("dft+labels_all+e30+bf16+trunk")
    assert note.startswith("encoder pretrained to regress four OQMD DFT labels")
    assert note.count("its own encoder, pretrained ") == 1
    for part in ("seven DFT labels", "--labels all", "for 30 epochs", "bfloat16", "--init-trunk"):
        assert part in note
    assert note.index("seven") < note.index("30 epochs") < note.index("bfloat16")
    assert "25 % of the compositions" in _strategy_note("dft+f25")
