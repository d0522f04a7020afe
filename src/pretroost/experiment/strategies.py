"""The names of the experiment's strategies and their variants (shared by ``bench`` and ``report``).

A strategy is a base (``scratch`` or a pretraining objective such as ``ssl``) optionally followed
by variant suffixes, each one declared change: finetuning variants (``FINETUNE_VARIANTS``) reuse the
base's encoder; pretraining variants (``PRETRAIN_VARIANTS``) pretrain an encoder of their own.
Finetuning variants that make sense without a pretrained encoder (``Variant.scratch``, e.g.
``+ens5``: a deep ensemble of 5) also apply to ``scratch``.

A name lists its pretraining variants in the order of ``PRETRAIN_VARIANTS`` (one name per
encoder), each changing a different setting (``Variant.setting``): ``dft+labels_all+e30+bf16+trunk`` pretrains
the ``dft`` objective on the seven labels of the ``dft-all`` corpus (``+labels_all``), for 30
epochs (``+e30``) under bfloat16 autocast (``+bf16``), the rest as the preset pretrains, and
finetunes with the pretrained trunk (``+trunk``). The corpus is part of the name too
(:func:`pretrain_corpus`: the base's, or the one a variant declares, ``Variant.corpus``).

Each encoder lives in ``<runs-dir>/<folder>`` (:func:`pretrain_folder`, e.g.
``dft_labels_all_e30_bf16``); ``bench`` pretrains it there when a cell first needs it and reuses a
folder already there only if its ``config.json`` records the same pretraining settings and the
same corpus (content hash); any other folder is refused with the differences listed
(:func:`pretroost.experiment.bench.check_pretrained`). So an encoder that ``pretroost pretrain``
trained with identical settings can stand in for bench's own: copy its folder (weights, config and
manifest) to that name, e.g. for the converged preset (pretraining: 10 epochs, batch 256, lr 3e-4,
cosine, whole corpus)::

    pretroost pretrain --objective dft --dft-labels all --corpus <cache>/corpus/dft-all-leakfree.npz \\
        --epochs 10 --batch-size 256 --lr 3e-4 --autocast native_bf16 --out runs/scale/dft-all-e10
    cp -r runs/scale/dft-all-e10 runs/converged/dft_labels_all_bf16
    pretroost bench --preset converged --strategies dft+labels_all+bf16+trunk ...

and the test-fold run finetunes it without pretraining again. Likewise ``+f25`` is
``--max-compositions 95376`` on that corpus (25 % of its 381,502 compositions, rounded up) and
``+e30`` is ``--epochs 30``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from pretroost.data.dft_labels import label_set
from pretroost.finetune import FinetuneConfig
from pretroost.pretrain import PretrainConfig

__all__ = [
    "CORPORA",
    "EXTRA_STRATEGIES",
    "FINETUNE_VARIANTS",
    "PRETRAIN_VARIANTS",
    "STRATEGIES",
    "Variant",
    "classification_only",
    "is_strategy",
    "parse_strategy",
    "pretrain_corpus",
    "pretrain_folder",
    "scratch_counterpart",
    "strategy_members",
    "strategy_order",
    "threshold_base",
]

STRATEGIES = ("scratch", "ssl", "fingerprint", "structure", "ssl+fingerprint+structure")
#: pretrained strategies beyond the paper's, run only when named (``--strategies dft ...``):
#: supervised pretraining on the OQMD DFT labels of the same leak-free corpus, alone or with FL
EXTRA_STRATEGIES = ("dft", "dft+fingerprint")

C = TypeVar("C")


@dataclass(frozen=True, kw_only=True)
class Variant(Generic[C]):
    """One declared change to a pretrained strategy, named ``<strategy>+<variant>``.

    Attributes:
        note: what changes (the report's legend); for a pretraining change, how its encoder is
            pretrained, completing "its own encoder, pretrained ...".
        apply: the change, on a ``FinetuneConfig`` or a ``PretrainConfig``.
        objective: for a pretraining change, the objective it applies to.
        members: a finetuning change that trains a deep ensemble of this many members per cell
            (through the fold runner: ``run_splits(n_members=...)``); 1: one model.
        scratch: the change also applies to ``scratch`` (it needs no pretrained encoder).
        threshold_only: the change moves only the decision threshold, so the cell's model and
            probabilities are its base strategy's (ensembles and probability tables skip it).
        classification_only: the change has no meaning for regression; ``bench`` skips the
            strategy on regression tasks.
        setting: for a pretraining change, the setting it changes (``"epochs"``, ...): a
            strategy changes each setting once (and names each variant once).
        corpus: for a pretraining change, the corpus it pretrains on instead of the base's (a
            name of :data:`CORPORA`).
        corpus_fraction: for a pretraining change, pretrain on this share of the compositions the
            preset pretrains on (the corpus, or the preset's ``max_compositions`` of it), rounded
            up: ``PretrainConfig.max_compositions``, a seeded random subset.
    """

    note: str
    apply: Callable[[C], C]
    objective: str | None = None
    members: int = 1
    scratch: bool = False
    threshold_only: bool = False
    classification_only: bool = False
    setting: str = ""
    corpus: str | None = None
    corpus_fraction: float | None = None


#: the same pretrained encoder, one change to the finetuning recipe
FINETUNE_VARIANTS: dict[str, Variant[FinetuneConfig]] = {
    "trunk": Variant(
        note="the property model's trunk also starts from the pretraining head's trunk "
        "(`--init-trunk`; for the combination, the fingerprint head's)",
        apply=lambda c: replace(c, init_trunk=True),
    ),
    "encoder_lr0.1": Variant(
        note="the encoder trains at a tenth of the output network's learning rate "
        "(`--encoder-lr-scale 0.1`)",
        apply=lambda c: replace(c, train=replace(c.train, encoder_lr_scale=0.1)),
    ),
    "frozen_warmup20": Variant(
        note="the encoder is frozen for the first 20 finetuning epochs",
        apply=lambda c: replace(c, train=replace(c.train, freeze_encoder_epochs=20)),
    ),
    "ens5": Variant(
        note="a deep ensemble of 5 models per fold, trained with seeds s, s+1, ..., s+4 on the "
        "same training and validation rows (member 0 is the single model), predicting their mean "
        "(Lakshminarayanan et al. 2017)",
        apply=lambda c: c,
        members=5,
        scratch=True,
    ),
    "valthreshold": Variant(
        note="classification: labels at the probability threshold that maximises balanced "
        "accuracy on the training fold's validation split (`--threshold val_balanced_accuracy`), "
        "not at 0.5, with the base strategy's model (relabelled, not retrained, where the base "
        "cell's validation record holds that threshold); regression: no change",
        apply=lambda c: replace(c, threshold="val_balanced_accuracy"),
        scratch=True,
        threshold_only=True,
    ),
    "classweight": Variant(
        note="classification: the cross-entropy weights positives by n_negative / n_positive of "
        "the training part (`--class-weight balanced`), so both classes weigh alike in training "
        "and in the validation loss that picks the epoch; labels at 0.5",
        apply=lambda c: replace(c, class_weight="balanced"),
        scratch=True,
        classification_only=True,
    ),
    "valauc": Variant(
        note="classification: the finetuning epoch is the one with the highest ROC-AUC of the "
        "validation split's probabilities (`--val-metric rocauc`), not the lowest cross-entropy, "
        "which rises once the model is over-confident while its ranking may still improve",
        apply=lambda c: replace(c, val_metric="rocauc"),
        scratch=True,
        classification_only=True,
    ),
    "magpie": Variant(
        note="the trunk also reads the composition's 144 Magpie attributes (clipped to their "
        "range in the training rows, then standardised on them) beside the material vector "
        "(`--descriptors magpie`); with +trunk, the pretrained trunk gets zero weights for them "
        "at the start",
        apply=lambda c: replace(c, descriptors="magpie"),
        scratch=True,
    ),
    "fractions": Variant(
        note="the trunk also reads the composition's 103 element fractions (clipped to their "
        "range in the training rows, then standardised on them) beside the material vector "
        "(`--descriptors fractions`), so that minor elements, which amount-weighted attention "
        "pooling reads faintly, reach the head in full; with +trunk, zero weights at the start",
        apply=lambda c: replace(c, descriptors="fractions"),
        scratch=True,
    ),
    "pbe": Variant(
        note="the trunk also reads one number, a PBE band gap predicted by a teacher fitted on "
        "Matbench mp_gap's compositions minus every composition of the experimental tasks "
        "(standardised on the training rows; `--descriptors pbe`); with +trunk, zero weights "
        "at the start",
        apply=lambda c: replace(c, descriptors="pbe"),
        scratch=True,
    ),
    "fourier": Variant(
        note="the encoder also reads Fourier features of each element's amount (sines and "
        "cosines at 6 octaves, linear and log scale) through a learned map added to the element "
        "embedding (`--amount-encoding fourier`); a pretrained encoder gets zero weights for "
        "them at the start",
        apply=lambda c: replace(c, amount_encoding="fourier"),
        scratch=True,
    ),
}
#: the corpora the pretrained strategies pretrain on, by name (:func:`pretrain_corpus`); ``bench``
#: loads each from the data cache, building it there first if missing, or builds it in memory
CORPORA: dict[str, str] = {
    "oqmd": "OQMD's compositions minus every Matbench task's (`pretroost corpus build`, "
    "<cache>/corpus/oqmd-leakfree.npz)",
    "structures": "the structure sets' compositions minus every Matbench task's but "
    "matbench_perovskites' (built in memory)",
    "oqmd+structures": "OQMD's and the structure sets' compositions minus every Matbench task's "
    "but matbench_perovskites' (built in memory)",
    "dft-all": "OQMD's compositions and those of matbench_mp_e_form, mp_gap and mp_is_metal, "
    "minus every composition of the evaluation and confirmation tasks (same reduced composition, "
    "or every fraction within 1e-3; `pretroost corpus build --labels all`, "
    "<cache>/corpus/dft-all-leakfree.npz)",
}


def _epochs(n: int) -> Variant[PretrainConfig]:
    return Variant(
        note=f"for {n} epochs instead of the preset's (converged: 10), the cosine schedule "
        f"spanning them (`--epochs {n}`)",
        apply=lambda c: replace(c, train=replace(c.train, epochs=n)),
        objective="dft",
        setting="epochs",
    )


def _fraction(share: float) -> Variant[PretrainConfig]:
    return Variant(
        note=f"on a seeded random {share * 100:g} % of the compositions (rounded up; "
        "`--max-compositions`): as many epochs, fewer steps",
        apply=lambda c: c,
        objective="dft",
        setting="corpus fraction",
        corpus_fraction=share,
    )


#: an encoder of its own, pretrained with one change (the order in which a name lists them)
PRETRAIN_VARIANTS: dict[str, Variant[PretrainConfig]] = {
    "strong_views": Variant(
        note="with Barlow Twins on stronger views (both views masked, amounts jittered by a "
        "log-normal factor of width 0.2)",
        apply=lambda c: replace(c, ssl=replace(c.ssl, mask_both=True, amount_noise=0.2)),
        objective="ssl",
        setting="ssl views",
    ),
    "labels_all": Variant(
        note="on seven DFT labels instead of four: OQMD's and those "
        "of matbench_mp_e_form, mp_gap and mp_is_metal (each the mean per reduced composition; "
        "`--dft-labels all`), on the corpus that holds them: OQMD's compositions and those three "
        "tasks', minus every composition of the evaluation and confirmation tasks, also within "
        "1e-3 of their fractions (`pretroost corpus build --labels all`)",
        apply=lambda c: replace(c, dft=replace(c.dft, properties=label_set("all"))),
        objective="dft",
        setting="dft labels",
        corpus="dft-all",
    ),
    "e30": _epochs(30),
    "e100": _epochs(100),
    "f25": _fraction(0.25),
    "f50": _fraction(0.5),
    "bf16": Variant(
        note="under bfloat16 autocast where the machine runs it natively (a GPU, or a CPU with "
        "AVX512-BF16/AMX), in fp32 elsewhere, as its config.json records "
        "(`--autocast native_bf16`)",
        apply=lambda c: replace(c, autocast="native_bf16"),
        objective="dft",
        setting="autocast",
    ),
}


def pretrain_corpus(base: str, variants: Sequence[str] = ()) -> str:
    """The corpus (a name of :data:`CORPORA`) that ``base`` with the pretraining ``variants``
    pretrains on: the one a variant declares (:attr:`Variant.corpus`), else the base's (the
    structure sets, with OQMD's compositions unless the base is ``structure`` alone, for a base
    with the structure objective; OQMD's otherwise). Raises ``ValueError`` for variants that
    declare different corpora, or one for a base with the structure objective."""
    declared: dict[str, str] = {}
    for v in variants:
        corpus = PRETRAIN_VARIANTS[v].corpus
        if corpus is not None:
            declared[v] = corpus
    if "structure" in base.split("+"):
        if declared:
            raise ValueError(
                f"{base}: the structure objective pretrains on the structure sets; "
                f"+{', +'.join(declared)} would change the corpus"
            )
        return "structures" if base == "structure" else "oqmd+structures"
    if len(set(declared.values())) > 1:
        raise ValueError(f"{base}: +{', +'.join(declared)} declare different corpora")
    return next(iter(declared.values()), "oqmd")


def pretrain_folder(base: str, variants: Sequence[str] = ()) -> str:
    """The folder name of ``base``'s encoder pretrained with ``variants`` in ``bench``'s runs
    directory: ``dft_labels_all_e30_bf16`` for ``dft+labels_all+e30+bf16`` (and its finetuning
    variants, which reuse it)."""
    return "_".join([base.replace("+", "_"), *variants])


def classification_only(strategy: str) -> bool:
    """Whether ``strategy`` has a finetuning variant that applies to classification tasks only
    (:attr:`Variant.classification_only`). Raises ``ValueError`` for names that do not parse."""
    _, _, post = parse_strategy(strategy)
    return any(FINETUNE_VARIANTS[v].classification_only for v in post)


def scratch_counterpart(strategy: str) -> str:
    """Scratch with ``strategy``'s threshold-only variants: the baseline at the same threshold
    rule (``scratch+valthreshold`` for ``dft+trunk+valthreshold``), ``scratch`` for a strategy
    without one. Raises ``ValueError`` for names that do not parse."""
    _, _, post = parse_strategy(strategy)
    return "+".join(["scratch", *(v for v in post if FINETUNE_VARIANTS[v].threshold_only)])


def repeats_base_model(strategy: str) -> bool:
    """Whether ``strategy`` has a finetuning variant that only re-thresholds (:attr:`Variant.
    threshold_only`): its model and probabilities are those of the same name without that variant.
    False for names that do not parse."""
    try:
        return threshold_base(strategy) is not None
    except ValueError:
        return False


def threshold_base(strategy: str) -> tuple[str, str] | None:
    """``(model strategy, threshold rule)`` of a strategy whose threshold-only variants
    (:attr:`Variant.threshold_only`) are its only difference from ``model strategy``, e.g.
    ``("scratch", "val_balanced_accuracy")`` for ``scratch+valthreshold``; None for a strategy
    without such a variant. Raises ``ValueError`` for names that do not parse."""
    base, _, post = parse_strategy(strategy)
    moved = [v for v in post if FINETUNE_VARIANTS[v].threshold_only]
    if not moved:
        return None
    parts = strategy[len(base) :].split("+")[1:]
    config = FinetuneConfig()
    for v in moved:
        config = FINETUNE_VARIANTS[v].apply(config)
    return "+".join([base, *(p for p in parts if p not in moved)]), config.threshold


def parse_strategy(name: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """``(base, pretraining variants, finetuning variants)`` of a strategy name such as
    ``ssl+strong_views+trunk``; raises ``ValueError`` listing the valid parts."""
    for base in sorted((*STRATEGIES, *EXTRA_STRATEGIES), key=len, reverse=True):
        if name != base and not name.startswith(base + "+"):
            continue
        parts = name[len(base) :].split("+")[1:]
        if any(p not in FINETUNE_VARIANTS and p not in PRETRAIN_VARIANTS for p in parts):
            continue
        if base == "scratch" and not all(
            p in FINETUNE_VARIANTS and FINETUNE_VARIANTS[p].scratch for p in parts
        ):
            break
        for p in parts:
            need = PRETRAIN_VARIANTS[p].objective if p in PRETRAIN_VARIANTS else None
            if need is not None and need not in base.split("+"):
                raise ValueError(
                    f"strategy {name!r}: +{p} changes the {need} objective, "
                    f"which {base!r} does not use"
                )
        pre = tuple(p for p in parts if p in PRETRAIN_VARIANTS)
        _check_pretrain_variants(name, base, pre)
        return base, pre, tuple(p for p in parts if p in FINETUNE_VARIANTS)
    raise ValueError(
        f"unknown strategy {name!r}; valid: {', '.join((*STRATEGIES, *EXTRA_STRATEGIES))}, "
        "or a pretrained one followed "
        f"by variants +{', +'.join([*PRETRAIN_VARIANTS, *FINETUNE_VARIANTS])} "
        "(e.g. fingerprint+trunk), or scratch followed by "
        f"+{', +'.join(v for v, d in FINETUNE_VARIANTS.items() if d.scratch)}"
    )


def _check_pretrain_variants(name: str, base: str, pre: tuple[str, ...]) -> None:
    """ValueError unless ``pre`` lists pretraining variants once each, in the order of
    :data:`PRETRAIN_VARIANTS`, each changing another setting, and declaring one corpus."""
    for v in dict.fromkeys(pre):
        setting = PRETRAIN_VARIANTS[v].setting
        same = [w for w in pre if w == v or (setting and PRETRAIN_VARIANTS[w].setting == setting)]
        if len(same) > 1:
            raise ValueError(
                f"strategy {name!r}: +{', +'.join(same)} each change the {setting or v}; keep one"
            )
    order = sorted(pre, key=list(PRETRAIN_VARIANTS).index)
    if list(pre) != order:
        canonical = "+".join([base, *order])
        raise ValueError(
            f"strategy {name!r}: pretraining variants go in the order of PRETRAIN_VARIANTS "
            f"({', '.join(PRETRAIN_VARIANTS)}), one name per encoder: write {canonical!r} "
            "(then its finetuning variants)"
        )
    try:
        pretrain_corpus(base, pre)
    except ValueError as err:
        raise ValueError(f"strategy {name!r}: {err}") from None


def strategy_members(name: str) -> int:
    """Models per cell of strategy ``name``: its ensemble variant's member count, else 1."""
    _, _, post = parse_strategy(name)
    members = [FINETUNE_VARIANTS[v].members for v in post if FINETUNE_VARIANTS[v].members > 1]
    if len(members) > 1:
        raise ValueError(f"strategy {name!r}: more than one ensemble variant")
    return members[0] if members else 1


def is_strategy(name: str) -> bool:
    """Whether ``name`` is a Roost bench strategy (:func:`parse_strategy` reads it); False for
    ``select(...)``, ``blend(...)`` and reference models such as ``trees``."""
    try:
        parse_strategy(name)
    except ValueError:
        return False
    return True


def strategy_order(strategy: str) -> tuple[bool, int, str]:
    """Sort key: scratch, the bench strategies in their order, then their variants
    (``<strategy>+<variant>``) in the same order, then anything else."""
    bases = (*STRATEGIES, *EXTRA_STRATEGIES)
    try:
        base, pre, post = parse_strategy(strategy)
    except ValueError:
        return (True, len(bases), strategy)
    return (bool(pre or post), bases.index(base), strategy)
