"""The settings of every model and run (Roost, training, pretraining, the trees, ``pretroost
fit``): each default written once, here.

Frozen dataclasses, one per thing to configure, read top to bottom:

- :class:`RoostConfig`: the encoder (the paper's Roost by default);
- :class:`ModelConfig`: a property model, the encoder plus its trunk and output head;
- :class:`TrainConfig`: the optimisation, shared by pretraining and finetuning;
- :class:`FinetuneConfig`: a supervised run (its optimisation defaults are the ``converged``
  recipe of :mod:`pretroost.recipes`);
- :class:`SSLConfig`, :class:`FingerprintConfig`, :class:`StructureConfig`, :class:`DFTConfig`:
  the pretraining objectives' heads and losses;
- :class:`PretrainConfig`: a pretraining run, with one of each of the above;
- :class:`TreesConfig`: the tree ensembles' candidates and their choice (:mod:`pretroost.trees`);
- :class:`FitConfig`: how ``pretroost fit`` chooses a model for a table
  (:mod:`pretroost.select_model`).

Each ``Literal`` type lists the valid values of a field; ``__post_init__`` raises a ValueError
naming them when another is given. The modules that use these settings (the model in
:mod:`pretroost.models.roost`, the loops in :mod:`pretroost.train`, :mod:`pretroost.finetune` and
:mod:`pretroost.pretrain`, the objectives in :mod:`pretroost.objectives`, :mod:`pretroost.trees`,
:mod:`pretroost.select_model`) import them from here and re-export them, so
``from pretroost.finetune import FinetuneConfig`` still works.

This module imports nothing heavy (no numpy, torch or scikit-learn): the command line declares
its options from these classes (:mod:`pretroost.cli.config_options`) and the scikit-learn
estimators take their default hyperparameters from them, both without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal, get_args

from pretroost.recipes import DEFAULT_RECIPE, SMALL_ROWS, batch_size_for, get_recipe

__all__ = [
    "ALL_DFT_PROPERTIES",
    "AMOUNT_ENCODINGS",
    "AUTOCASTS",
    "BALANCES",
    "CANDIDATES",
    "CLASS_WEIGHTS",
    "DESCRIPTORS",
    "DFT_PROPERTIES",
    "ELEMENT_FEATURES",
    "FEATURE_SETS",
    "LOSSES",
    "LR_SCALINGS",
    "MATBENCH_DFT_PROPERTIES",
    "OBJECTIVE_NAMES",
    "OQMD_PROPERTIES",
    "PRECISIONS",
    "ROOST_INIT",
    "RULE",
    "SCHEDULES",
    "TASK_TYPES",
    "THRESHOLD_RULES",
    "TREE_MODELS",
    "TREE_THRESHOLD_RULES",
    "VAL_METRICS",
    "VAL_METRIC_CHOICES",
    "AmountEncoding",
    "Autocast",
    "Balance",
    "ClassWeight",
    "DFTConfig",
    "Descriptors",
    "ElementFeatureName",
    "FeatureSet",
    "FinetuneConfig",
    "FingerprintConfig",
    "FitConfig",
    "LossName",
    "LrScaling",
    "ModelConfig",
    "Precision",
    "PretrainConfig",
    "RoostConfig",
    "SSLConfig",
    "Schedule",
    "StructureConfig",
    "TaskType",
    "ThresholdRule",
    "TrainConfig",
    "TreeModel",
    "TreeThresholdRule",
    "TreesConfig",
    "ValMetric",
    "parse_objective",
]


def _check(name: str, value: Any, valid: tuple[Any, ...], also: str = "") -> None:
    """ValueError ``unknown <name> <value>; valid: ...`` unless ``value`` is one of ``valid``."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}{also}")


# ----------------------------------------------------------------------------------- the model

#: the element feature tables an encoder can read (:func:`pretroost.data.elements.element_table`)
ElementFeatureName = Literal["matscholar200", "megnet16", "cgcnn92", "magpie", "onehot"]
ELEMENT_FEATURES: tuple[str, ...] = get_args(ElementFeatureName)
AmountEncoding = Literal["none", "fourier"]
AMOUNT_ENCODINGS: tuple[str, ...] = get_args(AmountEncoding)
TaskType = Literal["regression", "classification"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)
Descriptors = Literal["none", "magpie", "fractions", "pbe"]
DESCRIPTORS: tuple[str, ...] = get_args(Descriptors)


@dataclass(frozen=True, kw_only=True)
class RoostConfig:
    """Hyperparameters of the Roost encoder; defaults are the paper's.

    Attributes:
        elem_embedding: the element feature table the nodes start from
            (:func:`~pretroost.data.elements.element_table`).
        elem_fea_len: width of the node vectors and of the material vector.
        n_graph: message-passing layers.
        elem_heads, elem_gate, elem_msg: attention heads of message passing and the hidden widths
            of their gate and message networks.
        cry_heads, cry_gate, cry_msg: the same for the pooling into the material vector.
        amount_encoding: ``"none"`` (the paper: the amount enters as one number per element and
            as the attention weight) or ``"fourier"`` (also
            :func:`~pretroost.models.roost.amount_features` through a learned linear map).
    """

    elem_embedding: ElementFeatureName = "matscholar200"
    elem_fea_len: int = 64
    n_graph: int = 3
    elem_heads: int = 3
    elem_gate: tuple[int, ...] = (256,)
    elem_msg: tuple[int, ...] = (256,)
    cry_heads: int = 3
    cry_gate: tuple[int, ...] = (256,)
    cry_msg: tuple[int, ...] = (256,)
    amount_encoding: AmountEncoding = "none"

    def __post_init__(self) -> None:
        _check("amount_encoding", self.amount_encoding, AMOUNT_ENCODINGS)
        _check("elem_embedding", self.elem_embedding, ELEMENT_FEATURES)
        for name in ("elem_gate", "elem_msg", "cry_gate", "cry_msg"):
            hidden = tuple(getattr(self, name))
            object.__setattr__(self, name, hidden)
            if not hidden:
                raise ValueError(f"{name} needs at least one hidden layer")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> RoostConfig:
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A Roost property model: encoder, residual trunk and output head.

    Attributes:
        encoder: the Roost encoder.
        task_type: ``"regression"`` or ``"classification"`` (binary: one logit).
        n_targets: regression targets predicted together.
        robust: (regression only; set to False for classification) double the outputs: a mean
            and a log standard deviation per target (Roost's heteroscedastic "robust" L1 loss,
            Kendall & Gal 2017).
        trunk_hidden: widths of the residual trunk on the material vector.
        out_hidden: widths of the output network (the first is the trunk's output).
        descriptors: ``"none"`` (Roost); ``"magpie"``: the trunk reads the 144 Magpie attributes
            of the composition, standardised with the training rows' mean and std, beside the
            material vector; ``"fractions"``: the same with the 103 element fractions (column
            Z - 1: element Z's amount), which attention pooling weighted by amount reads only
            faintly for minor elements; ``"pbe"``: one number, a PBE band gap predicted by a
            teacher fitted on Materials Project gaps (:mod:`pretroost.data.pbe_gap`; fitted once
            per machine and kept in the data cache).
    """

    encoder: RoostConfig = field(default_factory=RoostConfig)
    task_type: TaskType = "regression"
    n_targets: int = 1
    robust: bool = True
    trunk_hidden: tuple[int, ...] = (1024, 512)
    out_hidden: tuple[int, ...] = (256, 128, 64)
    descriptors: Descriptors = "none"

    def __post_init__(self) -> None:
        _check("descriptors", self.descriptors, DESCRIPTORS)
        _check("task_type", self.task_type, TASK_TYPES)
        if self.task_type == "classification" and self.robust:
            object.__setattr__(self, "robust", False)
        object.__setattr__(self, "trunk_hidden", tuple(self.trunk_hidden))
        object.__setattr__(self, "out_hidden", tuple(self.out_hidden))
        if not self.out_hidden:
            raise ValueError("out_hidden needs at least one width (the trunk's output)")

    def to_dict(self) -> dict:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        enc = RoostConfig.from_dict(d.pop("encoder"))
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(encoder=enc, **kwargs)


# ---------------------------------------------------------------------------- the optimisation

Schedule = Literal["constant", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings shared by pretraining and finetuning.

    Attributes:
        epochs: passes over the training set.
        batch_size: compositions per step.
        lr: peak AdamW learning rate; ``encoder_lr_scale`` multiplies it for encoder parameters
            (0 freezes the encoder: a linear-probe-style finetune).
        freeze_encoder_epochs: keep the encoder fixed (learning rate 0) for this many first epochs
            while the freshly initialised head settles, then train everything ("frozen warm-up").
        weight_decay: AdamW weight decay.
        schedule: ``"constant"`` or ``"cosine"`` (to 1 % of ``lr``), after ``warmup_epochs`` of
            linear warm-up.
        grad_clip: max gradient norm, or None.
        patience: stop when the validation score has not improved for this many epochs (None: never).
        seed: seeds batching and augmentation, per epoch.
        bucket: batch compositions of similar element count together (less padding).
        precision: ``"fp32"``, or ``"bf16"`` to run forward passes under bfloat16 autocast (faster
            on CPUs with native BF16 (AVX512-BF16/AMX) and on GPUs; losses are still computed in
            fp32). On a CPU without native BF16 it is emulated, many times slower: training then
            logs a WARNING (and proceeds).
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 3e-4
    encoder_lr_scale: float = 1.0
    freeze_encoder_epochs: int = 0
    weight_decay: float = 1e-6
    schedule: Schedule = "cosine"
    warmup_epochs: int = 0
    grad_clip: float | None = None
    patience: int | None = None
    seed: int = 0
    bucket: bool = True
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        _check("schedule", self.schedule, SCHEDULES)
        _check("precision", self.precision, PRECISIONS)
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.freeze_encoder_epochs < 0:
            raise ValueError(
                "epochs >= 0, batch_size >= 1, lr > 0 and freeze_encoder_epochs >= 0 are required"
            )

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------- finetuning

LossName = Literal["robust", "l1", "bce"]
LOSSES: tuple[str, ...] = get_args(LossName)
ThresholdRule = Literal["0.5", "val_balanced_accuracy"]
THRESHOLD_RULES: tuple[str, ...] = get_args(ThresholdRule)
ClassWeight = Literal["none", "balanced"]
CLASS_WEIGHTS: tuple[str, ...] = get_args(ClassWeight)
#: the model-selection score :func:`~pretroost.finetune.fit` minimises on the validation split
#: (lower is better), by default: regression: MAE of the standardised targets (the headline
#: metric, all targets weighted alike); classification: the training loss (cross-entropy,
#: class-weighted if the loss is)
VAL_METRICS: dict[str, str] = {"regression": "normalised_mae", "classification": "val_loss"}
#: ``FinetuneConfig.val_metric``: ``"default"`` (``VAL_METRICS``), or ``"rocauc"`` (classification:
#: the epoch with the highest ROC-AUC of the validation probabilities, scored ``1-rocauc``)
ValMetric = Literal["default", "rocauc"]
VAL_METRIC_CHOICES: tuple[str, ...] = get_args(ValMetric)


def _recipe_train(name: str) -> TrainConfig:
    return TrainConfig(**get_recipe(name).train_fields())


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """Everything a supervised run needs besides the data.

    Its defaults are the ``converged`` recipe (:mod:`pretroost.recipes`);
    :meth:`from_recipe` builds another.

    Attributes:
        train: optimisation settings (default: the ``converged`` recipe's).
        small_batch_size: training sets under 1,000 rows (``recipes.SMALL_ROWS``, counted after
            the validation split) train with batches of this size instead of
            ``train.batch_size``; None: ``train.batch_size`` always (a batch size chosen by hand).
        encoder: Roost hyperparameters (ignored when ``init`` is a pretrained folder: its encoder
            config is used).
        trunk_hidden, out_hidden: output network widths.
        loss: ``"robust"`` (default for regression), ``"l1"``, or ``"bce"`` (classification).
        val_fraction: share of the training rows held out for model selection.
        init: ``"scratch"`` or a pretrained artefact folder.
        init_trunk: also load the pretrained trunk (when the objective has one of the same shape).
        threshold: classification decision rule: ``"0.5"`` (label = probability > 0.5), or
            ``"val_balanced_accuracy"`` (> the threshold that maximises balanced accuracy on the
            validation split; needs one, with both classes). Saved with the model.
        class_weight: classification loss weighting: ``"none"``, or ``"balanced"`` (positives
            weighted by n_neg / n_pos of the training part,
            :func:`~pretroost.finetune.balanced_pos_weight`).
        val_metric: the validation score that picks the epoch: ``"default"`` (``VAL_METRICS``:
            regression the standardised MAE, classification the cross-entropy), or ``"rocauc"``
            (classification: the highest ROC-AUC of the validation probabilities; needs a
            validation split with both classes). The cross-entropy keeps rising once the model is
            over-confident, which can stop training while its ranking still improves.
        descriptors: ``"none"``, ``"magpie"``, ``"fractions"`` or ``"pbe"``: the trunk also
            reads the composition's standardised Magpie attributes, its element fractions, or a
            teacher's PBE band gap (:class:`ModelConfig`), beside the
            material vector; with ``init_trunk``, the
            pretrained trunk's first layer gets zero weights for them, so training starts from
            the pretrained function.
        amount_encoding: ``None`` (the encoder's own: ``encoder.amount_encoding`` from scratch,
            the artefact's with ``init``), or ``"none"`` / ``"fourier"``
            (:func:`~pretroost.models.roost.amount_features`): a pretrained encoder without the
            Fourier amount features gets them with zero weights, so finetuning starts from the
            pretrained function; one pretrained with them cannot drop them.
        allow_partial: accept a pretrained encoder whose tensors do not match this model's keys
            exactly (missing ones keep their initial values); by default a partial load is an
            error, so that a failed load never trains as scratch.
    """

    train: TrainConfig = field(default_factory=lambda: _recipe_train(DEFAULT_RECIPE))
    small_batch_size: int | None = get_recipe(DEFAULT_RECIPE).small_batch_size
    encoder: RoostConfig = field(default_factory=RoostConfig)
    trunk_hidden: tuple[int, ...] = (1024, 512)
    out_hidden: tuple[int, ...] = (256, 128, 64)
    loss: LossName | None = None
    val_fraction: float = 0.1
    init: str = "scratch"
    init_trunk: bool = False
    threshold: ThresholdRule = "0.5"
    class_weight: ClassWeight = "none"
    val_metric: ValMetric = "default"
    descriptors: Descriptors = "none"
    amount_encoding: AmountEncoding | None = None
    allow_partial: bool = False

    def __post_init__(self) -> None:
        _check("threshold", self.threshold, THRESHOLD_RULES)
        _check("class_weight", self.class_weight, CLASS_WEIGHTS)
        _check("val_metric", self.val_metric, VAL_METRIC_CHOICES)
        _check("descriptors", self.descriptors, DESCRIPTORS)
        if self.amount_encoding is not None:
            _check("amount_encoding", self.amount_encoding, AMOUNT_ENCODINGS,
                   " (or None: the encoder's own)")  # fmt: skip

    @classmethod
    def from_recipe(cls, name: str, **fields: Any) -> FinetuneConfig:
        """The config of recipe ``name`` (:data:`pretroost.recipes.RECIPES`), other fields
        given."""
        recipe = get_recipe(name)
        return cls(train=_recipe_train(name), small_batch_size=recipe.small_batch_size, **fields)

    def batch_size_for(self, n_train: int) -> int:
        """The batch size :func:`~pretroost.finetune.fit` uses for ``n_train`` training rows."""
        return batch_size_for(n_train, self.train.batch_size, self.small_batch_size, SMALL_ROWS)

    def loss_for(self, task_type: TaskType) -> LossName:
        loss = self.loss or ("bce" if task_type == "classification" else "robust")
        if (loss == "bce") != (task_type == "classification"):
            raise ValueError(f"loss {loss!r} does not fit a {task_type} task")
        return loss

    def val_metric_for(self, task_type: TaskType) -> str:
        """The name of the validation score :func:`~pretroost.finetune.fit` selects by
        (``info["val_metric"]``)."""
        if self.val_metric == "default":
            return VAL_METRICS[task_type]
        if task_type != "classification":
            raise ValueError(f"val_metric {self.val_metric!r} needs a classification task")
        return "1-rocauc"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        d["encoder"] = self.encoder.to_dict()
        return d


# ----------------------------------------------------------------------- pretraining objectives

#: the pretraining objectives (:data:`pretroost.objectives.OBJECTIVES` maps each to its class)
OBJECTIVE_NAMES: tuple[str, ...] = ("ssl", "fingerprint", "structure", "dft")


def parse_objective(spec: str) -> list[str]:
    """``"ssl+fingerprint"`` -> ``["ssl", "fingerprint"]`` (validated, order kept, no repeats)."""
    names = [s.strip() for s in spec.split("+") if s.strip()]
    unknown = [n for n in names if n not in OBJECTIVE_NAMES]
    if not names or unknown:
        raise ValueError(
            f"unknown objective {spec!r}; valid: {', '.join(OBJECTIVE_NAMES)} or a "
            "'+'-combination of them"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"objective {spec!r} names a strategy twice")
    return names


#: the DFT properties the cached OQMD files label (``OQMD_<property>_{train,val,test}.csv``,
#: columns ``formula,target``): band gap (eV), formation enthalpy (eV/atom), total energy per atom
#: (eV/atom), volume per atom (Å^3/atom)
OQMD_PROPERTIES: tuple[str, ...] = (
    "Bandgap",
    "Formation_Enthalpy",
    "Energy_per_atom",
    "Volume_per_atom",
)
#: the ``dft`` objective's default labels: OQMD's four
DFT_PROPERTIES: tuple[str, ...] = OQMD_PROPERTIES
#: label name -> the Matbench DFT task it comes from (:mod:`pretroost.data.dft_labels`: mean per
#: reduced composition)
MATBENCH_DFT_PROPERTIES: dict[str, str] = {
    "mp_e_form": "matbench_mp_e_form",
    "mp_gap": "matbench_mp_gap",
    "mp_is_metal": "matbench_mp_is_metal",
    "perovskites": "matbench_perovskites",
}
#: every label the ``dft`` objective can regress: OQMD's four, then Matbench's DFT tasks'
ALL_DFT_PROPERTIES: tuple[str, ...] = (*OQMD_PROPERTIES, *MATBENCH_DFT_PROPERTIES)


@dataclass(frozen=True, kw_only=True)
class SSLConfig:
    """Barlow Twins settings (objective ``ssl``).

    Attributes:
        mask_fraction: share of each composition's elements masked in a view (at least one).
        mask_both: mask view 1 as well (default: view 1 is the plain composition).
        amount_noise: std of a multiplicative log-normal perturbation of the amounts of each view
            (0: off), renormalised to fractions.
        lambd: weight of the off-diagonal (redundancy) term.
        trunk_hidden, trunk_out, proj_dim: head = residual trunk -> ReLU -> Linear(trunk_out, proj_dim).
    """

    mask_fraction: float = 0.1
    mask_both: bool = False
    amount_noise: float = 0.0
    lambd: float = 0.0051
    trunk_hidden: tuple[int, ...] = (1024, 512)
    trunk_out: int = 256
    proj_dim: int = 1024


@dataclass(frozen=True, kw_only=True)
class FingerprintConfig:
    """Settings of the Magpie fingerprint regression (objective ``fingerprint``).

    Attributes:
        trunk_hidden, trunk_out: the head's residual trunk.
    """

    trunk_hidden: tuple[int, ...] = (1024, 512)
    trunk_out: int = 256


@dataclass(frozen=True, kw_only=True)
class StructureConfig:
    """Settings of the structure-embedding regression (objective ``structure``).

    Attributes:
        teacher: the structure encoder whose embeddings are regressed, a name from
            :data:`pretroost.data.teachers.TEACHERS`.
        trunk_hidden, trunk_out: the head's residual trunk.
    """

    teacher: str = "crystal-twins"
    trunk_hidden: tuple[int, ...] = (1024, 512)
    trunk_out: int = 256


@dataclass(frozen=True, kw_only=True)
class DFTConfig:
    """Settings of the ``dft`` objective.

    Attributes:
        properties: the DFT labels regressed (in this order: the head's outputs), from
            :data:`ALL_DFT_PROPERTIES`: OQMD's four (the default) and
            Matbench's DFT tasks' (``mp_e_form``, ``mp_gap``, ``mp_is_metal``, ``perovskites``;
            :data:`pretroost.data.dft_labels.LABEL_SETS` names the usual sets). Each is
            standardised on its own; a composition without a label contributes nothing to it.
        beta: the smooth-L1 transition, in standard deviations of each property (0: plain L1).
        oqmd_dir: folder of the labelled ``OQMD_*.csv`` files (None: the data cache's ``oqmd/``).
        limit: read at most this many rows of each label file (tests; None: all).
        trunk_hidden, trunk_out: the head's residual trunk (the property model's trunk shape, so
            ``finetune --init-trunk`` can load it).
    """

    properties: tuple[str, ...] = DFT_PROPERTIES
    beta: float = 1.0
    oqmd_dir: str | None = None
    limit: int | None = None
    trunk_hidden: tuple[int, ...] = (1024, 512)
    trunk_out: int = 256

    def __post_init__(self) -> None:
        unknown = [p for p in self.properties if p not in ALL_DFT_PROPERTIES]
        if unknown or not self.properties or len(set(self.properties)) != len(self.properties):
            raise ValueError(
                f"dft properties {self.properties!r}: each once, from "
                f"{', '.join(ALL_DFT_PROPERTIES)}"
            )
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


# --------------------------------------------------------------------------------- pretraining

Balance = Literal["none", "initial"]
BALANCES: tuple[str, ...] = get_args(Balance)
LrScaling = Literal["none", "sqrt", "linear"]
LR_SCALINGS: tuple[str, ...] = get_args(LrScaling)
Autocast = Literal["off", "native_bf16"]
AUTOCASTS: tuple[str, ...] = get_args(Autocast)


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """A pretraining run.

    Attributes:
        objective: ``"ssl"``, ``"fingerprint"``, ``"structure"``, ``"dft"`` or a
            ``+``-combination.
        encoder: the Roost encoder to pretrain.
        train: optimisation settings (10 epochs of batches of 256 at lr 1e-4 by default).
        ssl, fingerprint, structure, dft: each objective's settings (used when it is part of
            ``objective``).
        weights: loss weight per objective name (default: each objective's ``default_weight``).
        balance: for a combination without explicit ``weights``: ``"initial"`` (default) divides
            each objective's weight by its loss on a few training batches at initialisation, so
            every term starts at 1 and none dominates (a Barlow Twins loss is ~10³
            times a standardised MSE); ``"none"`` keeps the plain weights. Single objectives
            are never rescaled.
        val_fraction: share of the corpus held out to monitor the loss (and pick the best epoch).
        max_compositions: pretrain on a random subset of this size (None: whole corpus).
        lr_scaling: how ``train.lr`` follows ``train.batch_size``: ``"none"`` (as given),
            ``"sqrt"`` (``lr * sqrt(batch_size / lr_reference_batch)``, the rule for Adam-type
            optimisers; Malladi et al., NeurIPS 2022) or ``"linear"`` (``lr * batch_size /
            lr_reference_batch``; Goyal et al., arXiv:1706.02677).
        lr_reference_batch: the batch size ``train.lr`` is meant for under ``lr_scaling``.
        autocast: ``"native_bf16"``: bfloat16 autocast where the training device runs bf16
            natively (:func:`pretroost.utils.native_bf16`: a GPU, or a CPU listing
            avx512_bf16/amx_bf16), fp32 elsewhere (detected, never assumed; the decision and its
            evidence land in the artefact's config); ``"off"``: ``train.precision`` as given.
    """

    objective: str = "ssl"
    encoder: RoostConfig = field(default_factory=RoostConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=10, batch_size=256, lr=1e-4)
    )
    ssl: SSLConfig = field(default_factory=SSLConfig)
    fingerprint: FingerprintConfig = field(default_factory=FingerprintConfig)
    structure: StructureConfig = field(default_factory=StructureConfig)
    dft: DFTConfig = field(default_factory=DFTConfig)
    weights: tuple[tuple[str, float], ...] = ()
    balance: Balance = "initial"
    val_fraction: float = 0.01
    max_compositions: int | None = None
    lr_scaling: LrScaling = "none"
    lr_reference_batch: int = 256
    autocast: Autocast = "off"

    def __post_init__(self) -> None:
        parse_objective(self.objective)
        _check("balance", self.balance, BALANCES)
        _check("lr_scaling", self.lr_scaling, LR_SCALINGS)
        _check("autocast", self.autocast, AUTOCASTS)
        if self.lr_reference_batch < 1:
            raise ValueError(f"lr_reference_batch must be >= 1, got {self.lr_reference_batch}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoder"] = self.encoder.to_dict()
        d["weights"] = dict(self.weights)
        return d


# ------------------------------------------------------------------------------ tree ensembles

TreeModel = Literal["extratrees", "randomforest", "gradientboosting"]
TREE_MODELS: tuple[str, ...] = get_args(TreeModel)
FeatureSet = Literal["fractions", "magpie", "fractions+magpie", "fractions+magpie+pbe"]
FEATURE_SETS: tuple[str, ...] = get_args(FeatureSet)
#: how a tree classifier labels (``TreesConfig.threshold``; :mod:`pretroost.trees` calls them
#: ``ThresholdRule`` and ``THRESHOLD_RULES``)
TreeThresholdRule = Literal["fixed", "validation"]
TREE_THRESHOLD_RULES: tuple[str, ...] = get_args(TreeThresholdRule)


def _check_each(name: str, values: Sequence[str], valid: tuple[str, ...]) -> None:
    """ValueError ``unknown <name> [...]; valid: ...`` unless ``values`` is a non-empty choice
    from ``valid``."""
    bad = [v for v in values if v not in valid]
    if bad or not values:
        raise ValueError(f"unknown {name} {bad or '(none given)'}; valid: {', '.join(valid)}")


@dataclass(frozen=True, kw_only=True)
class TreesConfig:
    """The candidates (every ``models`` × ``features`` pair) and how one is chosen.

    ``inner_folds``-fold cross-validation on the training rows scores each candidate (MAE;
    classification: Matbench's balanced accuracy of labels at 0.5); the best is refitted on all
    training rows. ``n_estimators`` trees per forest, ``boosting_iterations`` iterations of gradient
    boosting (None: ``n_estimators``, as in every Matbench run); scikit-learn's defaults otherwise.
    ``n_jobs``: the forests' worker threads (None: scikit-learn's default, one).

    ``min_samples_leaf`` and ``max_leaf_nodes`` cap the forests' trees (extra trees, random forest;
    gradient boosting keeps scikit-learn's own, 20 and 31): an unpruned tree has about one leaf per
    training row, so a forest of 500 on 4,000 rows is some 300 MB on disk. The defaults are
    scikit-learn's (unpruned), those of every Matbench run; :meth:`for_saving` gives the
    defaults of a model saved for use (``pretroost trees --out``): 200 trees per forest and 500
    boosting iterations, measured in results/trees_size.md (fewer trees cost a forest nothing
    measurable; fewer iterations cost boosting, whose file is small anyway).

    ``threshold`` (classification only; :func:`fit_trees` refuses another rule on regression):
    ``"fixed"`` labels probabilities at Matbench's 0.5;
    ``"validation"`` pools each candidate's out-of-fold probabilities over the inner folds, takes
    the threshold that maximises their balanced accuracy
    (:func:`~pretroost.metrics.balanced_accuracy_threshold`), scores the candidate by that balanced
    accuracy, and keeps the chosen candidate's threshold for the test fold. Only training rows are
    read either way.
    """

    models: tuple[str, ...] = TREE_MODELS
    features: tuple[str, ...] = ("fractions", "fractions+magpie")
    n_estimators: int = 500
    boosting_iterations: int | None = None
    inner_folds: int = 5
    seed: int = 0
    n_jobs: int | None = None
    threshold: TreeThresholdRule = "fixed"
    min_samples_leaf: int = 1
    max_leaf_nodes: int | None = None

    #: a saved model's defaults (:meth:`for_saving`), chosen in results/trees_size.md: 200 trees
    #: per forest (no measurable inner-CV MAE cost on matbench_steels and matbench_expt_gap fold 0,
    #: 2.5 times smaller) but 500 boosting iterations (200 cost inner-CV ROC AUC on
    #: matbench_expt_is_metal and matbench_glass fold 0, and a boosted model is small); leaf caps
    #: are left to the user (they cost MAE on one of the two regression tasks)
    SAVING: ClassVar[dict[str, Any]] = {"n_estimators": 200, "boosting_iterations": 500}

    @classmethod
    def for_saving(cls, **changes: Any) -> TreesConfig:
        """The config of a model saved for use: :data:`SAVING`'s caps, then ``changes``."""
        return cls(**{**cls.SAVING, **changes})

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "features", tuple(self.features))
        _check_each("tree model", self.models, TREE_MODELS)
        _check_each("feature set", self.features, FEATURE_SETS)
        _check_each("threshold rule", [self.threshold], TREE_THRESHOLD_RULES)
        if self.inner_folds < 2:
            raise ValueError(f"inner_folds must be at least 2, got {self.inner_folds}")
        if self.n_estimators < 1:
            raise ValueError(f"n_estimators must be positive, got {self.n_estimators}")
        if self.boosting_iterations is not None and self.boosting_iterations < 1:
            raise ValueError(
                f"boosting_iterations must be positive or None, got {self.boosting_iterations}"
            )
        if self.min_samples_leaf < 1:
            raise ValueError(f"min_samples_leaf must be positive, got {self.min_samples_leaf}")
        if self.max_leaf_nodes is not None and self.max_leaf_nodes < 2:
            raise ValueError(
                f"max_leaf_nodes must be at least 2 or None, got {self.max_leaf_nodes}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields, tuples as lists; ``boosting_iterations`` only when set, so that a config
        of the earlier fields keeps the digest its cached results are filed under."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if d["boosting_iterations"] is None:
            del d["boosting_iterations"]
        return d

    @property
    def iterations(self) -> int:
        """Gradient boosting's iterations: ``boosting_iterations``, else ``n_estimators``."""
        return self.n_estimators if self.boosting_iterations is None else self.boosting_iterations

    def candidates(self) -> list[tuple[str, str]]:
        """``(model, feature set)`` pairs, models first."""
        return [(m, f) for m in self.models for f in self.features]


# ------------------------------------------------------------------------- choosing a model

#: every candidate :func:`pretroost.select_model.fit` knows, in order of simplicity (the rule
#: prefers the earlier); ``hurdle`` ranks just after the regressor it wraps
CANDIDATES: tuple[str, ...] = ("trees", "trees+pbe", "dft+trunk", "blend", "hurdle")
#: how :func:`pretroost.select_model.fit` chooses among the candidates' cross-validated errors
RULE = (
    "lowest mean cross-validated error over the same k folds (regression: MAE; classification: "
    "1 - ROC-AUC of the probabilities); a simpler candidate is chosen instead when its mean "
    "paired per-fold difference from that lowest one is within one standard error of those "
    "differences (sd / sqrt(k)). Simplicity order: trees, trees+pbe, dft+trunk, blend; a "
    "hurdle ranks just after the regressor it wraps."
)
#: the shipped encoder the Roost candidate starts from (``--init dft-oqmd --init-trunk``)
ROOST_INIT = "dft-oqmd"


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """How :func:`pretroost.select_model.fit` chooses a model for a table.

    Attributes:
        candidates: the candidates to score (:data:`CANDIDATES`); None: the default rule
            (:func:`~pretroost.select_model.default_candidates`).
        folds: k of the k-fold cross-validation on the training rows (the same folds for every
            candidate; stratified by class for classification).
        recipe: the Roost recipe (:data:`pretroost.recipes.RECIPES`).
        epochs: override the recipe's epochs (trials and tests); None: the recipe's.
        seed: the folds, the Roost trainings and the trees.
        band_gap: whether the target is a band gap (adds ``trees+pbe``); None: decided from
            the target column's name (:func:`~pretroost.select_model.is_band_gap`).
        n_estimators, inner_folds, n_jobs: the trees' (:class:`TreesConfig`; ``n_estimators``
            sets both the trees per forest and the boosting iterations); None: those of a trees
            model saved for use (``TreesConfig.for_saving``), in the cross-validation as in the
            refit.
        device: where Roost trains (None: CPU).
        jobs: trainings of the cross-validation run at once, each in a process of its own on
            one CPU thread (1: one after the other, in this process, on torch's threads). The
            results do not depend on it where the sequential run also uses one thread.
    """

    candidates: tuple[str, ...] | None = None
    folds: int = 5
    recipe: str = DEFAULT_RECIPE
    epochs: int | None = None
    seed: int = 0
    band_gap: bool | None = None
    n_estimators: int | None = None
    inner_folds: int | None = None
    n_jobs: int | None = None
    device: str | None = None
    jobs: int = 1

    def __post_init__(self) -> None:
        if self.candidates is not None:
            object.__setattr__(self, "candidates", tuple(self.candidates))
            bad = [c for c in self.candidates if c not in CANDIDATES]
            if bad or not self.candidates:
                raise ValueError(
                    f"unknown candidate(s) {bad or '(none given)'}; valid: {', '.join(CANDIDATES)}"
                )
            if len(set(self.candidates)) != len(self.candidates):
                raise ValueError(f"candidates listed twice: {list(self.candidates)}")
        get_recipe(self.recipe)  # ValueError listing the valid ones
        if self.folds < 2:
            raise ValueError(f"k-fold cross-validation needs folds >= 2, got {self.folds}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")
        if self.jobs > 1 and self.device not in (None, "cpu"):
            raise ValueError(
                f"jobs > 1 trains in CPU processes; with device {self.device!r} give jobs=1"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = None if self.candidates is None else list(self.candidates)
        return d

    def trees_config(self, candidate: str = "trees") -> TreesConfig:
        """The trees candidate's config (``trees+pbe``: the ``fractions+magpie+pbe`` features
        only): a saved model's defaults (:meth:`~pretroost.trees.TreesConfig.for_saving`) with
        this config's trees settings."""
        kw: dict[str, Any] = {"seed": self.seed, "n_jobs": self.n_jobs}
        if candidate == "trees+pbe":
            kw["features"] = ("fractions+magpie+pbe",)
        if self.n_estimators is not None:
            kw["n_estimators"] = kw["boosting_iterations"] = self.n_estimators
        if self.inner_folds is not None:
            kw["inner_folds"] = self.inner_folds
        return TreesConfig.for_saving(**kw)

    def roost_config(self) -> FinetuneConfig:
        """The Roost candidate's finetuning: the recipe (its batch rule applied to the rows each
        training gets), ``epochs`` if given, from the shipped encoder and its trunk."""
        fc = FinetuneConfig.from_recipe(self.recipe, init=ROOST_INIT, init_trunk=True)
        train = replace(fc.train, seed=self.seed, epochs=self.epochs or fc.train.epochs)
        return replace(fc, train=train)
