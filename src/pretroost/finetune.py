"""Supervised training of a Roost property model: from scratch or from a pretrained encoder.

Regression targets are standardised (the normaliser is saved with the model) and trained with L1 or
Roost's robust L1 (learned aleatoric log-std); binary classification with cross-entropy on one
logit, optionally class-weighted (``class_weight="balanced"``), and a decision threshold that is 0.5
or chosen on the validation split (``threshold="val_balanced_accuracy"``: Matbench's classification
score is a balanced accuracy of thresholded labels, see :mod:`pretroost.metrics`). Model selection
uses a validation split drawn from the training data only. The settings,
:class:`~pretroost.configs.FinetuneConfig`, live in :mod:`pretroost.configs`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretroost.artefacts import ArtefactError, load_artefact, load_encoder_weights, save_artefact
from pretroost.configs import (
    CLASS_WEIGHTS,
    LOSSES,
    THRESHOLD_RULES,
    VAL_METRIC_CHOICES,
    VAL_METRICS,
    ClassWeight,
    FinetuneConfig,
    LossName,
    TaskType,
    ThresholdRule,
    ValMetric,
)
from pretroost.data.batching import CompositionBatch, CompositionDataset, check_elements
from pretroost.data.composition import CompositionArray
from pretroost.losses import RobustL1Loss
from pretroost.metrics import CLF_THRESHOLD, balanced_accuracy_threshold, probability_rocauc
from pretroost.models.roost import ModelConfig, RoostConfig, RoostModel
from pretroost.pretrained import resolve
from pretroost.recipes import SMALL_ROWS
from pretroost.train import TrainResult, train
from pretroost.utils import git_sha, machine_description, seed_everything

__all__ = [
    "CLASS_WEIGHTS",
    "LOSSES",
    "THRESHOLD_RULES",
    "VAL_METRICS",
    "VAL_METRIC_CHOICES",
    "ClassWeight",
    "FinetuneConfig",
    "FittedModel",
    "LossName",
    "Normaliser",
    "SupervisedTask",
    "ThresholdRule",
    "ValMetric",
    "balanced_pos_weight",
    "fit",
    "init_elem_embedding",
    "init_source",
    "validate_targets",
    "validation_score",
    "validation_split",
]

log = logging.getLogger(__name__)


def validation_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(val_index, train_index)``, sorted: the validation rows :func:`fit` holds out of ``n``
    training rows. They depend on ``n``, ``val_fraction`` and ``seed`` alone, so every model trained
    on the same rows with the same seed (any initialisation, variant or ensemble member 0) is
    selected on the same rows, with the same target normaliser. Fewer than 10 rows: none."""
    n_val = int(round(val_fraction * n)) if n >= 10 else 0
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_val]), np.sort(perm[n_val:])


def validation_score(
    task_type: TaskType,
    y: np.ndarray,
    pred: np.ndarray,
    *,
    normaliser: Normaliser | None = None,
    pos_weight: np.ndarray | None = None,
    metric: str | None = None,
) -> float:
    """The score :func:`fit` selects epochs by, named ``metric`` (``info["val_metric"]``; None:
    ``VAL_METRICS[task_type]``), from predictions in target units: regression ``pred`` (n, T)
    means, scored as the MAE of ``(pred - y) / normaliser.std``; classification ``pred`` (n, T)
    probabilities, scored as the mean cross-entropy with the positive term weighted by
    ``pos_weight`` (T,) (None: 1), or for ``"1-rocauc"`` as one minus the ROC-AUC of the
    probabilities (averaged over targets). ``y``: (n, T). For a model ``fit`` trained this equals
    its ``info["best_val"]`` up to float32 rounding; for an ensemble it is the same score of the
    combined prediction."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(y.shape)
    if not len(y):
        raise ValueError("no validation rows to score")
    metric = VAL_METRICS[task_type] if metric is None else metric
    if metric == "normalised_mae" and task_type == "regression":
        std = np.asarray(normaliser.std if normaliser is not None else 1.0, dtype=np.float64)
        return float(np.mean(np.abs(pred - y) / std))
    if metric == "1-rocauc" and task_type == "classification":
        auc = [probability_rocauc(y[:, t], pred[:, t]) for t in range(y.shape[1])]
        if np.isnan(auc).any():
            raise ValueError("1-rocauc needs both classes in the validation rows")
        return 1.0 - float(np.mean(auc))
    if metric != "val_loss" or task_type != "classification":
        raise ValueError(f"validation metric {metric!r} does not fit a {task_type} task")
    eps = np.finfo(np.float64).tiny
    weight = np.ones(y.shape[1]) if pos_weight is None else np.asarray(pos_weight, np.float64)
    loss = -(
        weight * y * np.log(np.maximum(pred, eps)) + (1 - y) * np.log(np.maximum(1 - pred, eps))
    )
    return float(loss.mean())


@dataclass(frozen=True)
class Normaliser:
    """Standardises regression targets: ``(y - mean) / std``, per target."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @classmethod
    def fit(cls, y: np.ndarray) -> Normaliser:
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        std = y.std(axis=0)
        std[std == 0] = 1.0
        return cls(tuple(map(float, y.mean(axis=0))), tuple(map(float, std)))

    def norm(self, y: Tensor) -> Tensor:
        return (y - y.new_tensor(self.mean)) / y.new_tensor(self.std)

    def denorm(self, y: Tensor) -> Tensor:
        return y * y.new_tensor(self.std) + y.new_tensor(self.mean)

    def to_json(self) -> str:
        return json.dumps({"mean": list(self.mean), "std": list(self.std)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Normaliser:
        d = json.loads(text)
        return cls(tuple(d["mean"]), tuple(d["std"]))


class SupervisedTask(nn.Module):
    """A :class:`RoostModel` with its loss: ``forward(batch) -> {"loss", "pred"}``.

    The batch carries targets under ``"y"`` (B, T), already normalised for regression.
    ``pred`` is (B, T): normalised means, or logits for classification. ``pos_weight`` (T,)
    multiplies the positive term of the cross-entropy (``torch`` BCE-with-logits semantics):
    ``-[w y log s(x) + (1 - y) log(1 - s(x))]``; None: 1.
    """

    pos_weight: Tensor | None

    def __init__(
        self, model: RoostModel, loss: LossName, *, pos_weight: Tensor | None = None
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
        if (loss == "robust") != model.config.robust:
            raise ValueError("loss 'robust' needs a model with robust=True and vice versa")
        if pos_weight is not None and loss != "bce":
            raise ValueError("pos_weight needs the 'bce' loss")
        self.model = model
        self.loss_name = loss
        self.robust_l1 = RobustL1Loss()
        # not persistent: state-dict keys stay those of the model (and of older checkpoints)
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def split(self, out: Tensor) -> tuple[Tensor, Tensor | None]:
        t = self.model.config.n_targets
        return (out[:, :t], out[:, t:]) if self.model.config.robust else (out, None)

    def forward(self, batch: CompositionBatch) -> dict[str, Tensor]:
        pred, log_std = self.split(self.model(batch))
        y = batch.targets["y"]
        if self.loss_name == "robust":
            assert log_std is not None
            loss = self.robust_l1(pred, log_std, y)
        elif self.loss_name == "l1":
            loss = F.l1_loss(pred.float(), y)
        else:
            loss = F.binary_cross_entropy_with_logits(pred.float(), y, pos_weight=self.pos_weight)
        return {"loss": loss, "pred": pred}


def balanced_pos_weight(y: np.ndarray) -> np.ndarray:
    """(T,) ``n_neg / n_pos`` per target column of 0/1 labels ``y`` (n, T): the positive-class
    weight that gives both classes the same total weight in the cross-entropy ("balanced" class
    weights, King & Zeng, Political Analysis 9, 137, 2001). Raises if a column lacks a class."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n_pos = y.sum(axis=0)
    n_neg = len(y) - n_pos
    if (n_pos == 0).any() or (n_neg == 0).any():
        raise ValueError("class_weight='balanced' needs both classes in the training part")
    return n_neg / n_pos


def validate_targets(y: np.ndarray, task_type: TaskType, *, source: str = "targets") -> np.ndarray:
    """Float targets (n, T); raises ValueError naming the first bad row (non-numeric, NaN/inf, or a
    classification label outside {0, 1})."""
    arr = np.asarray(y)
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        for i, v in enumerate(np.ravel(y)):
            try:
                float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{source}: row {i}: target {v!r} is not a number") from None
        raise
    arr = arr.reshape(len(arr), -1)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source}: row {i}: target {arr[i].tolist()} is not finite")
    if task_type == "classification":
        off = ~np.isin(arr, (0.0, 1.0)).all(axis=1)
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise ValueError(
                f"{source}: row {i}: classification target {arr[i].tolist()} not in {{0, 1}}"
            )
    return arr


@dataclass
class FittedModel:
    """A trained model with what is needed to use it on new formulas. ``threshold``: the
    classification decision threshold (label = probability > threshold)."""

    model: RoostModel
    task_type: TaskType
    normaliser: Normaliser | None
    loss: LossName
    result: TrainResult | None = None
    info: dict = field(default_factory=dict)
    threshold: float = CLF_THRESHOLD

    @torch.no_grad()
    def predict_dataset(
        self, data: CompositionDataset, batch_size: int = 1024
    ) -> dict[str, np.ndarray]:
        """``{"mean": (n, T)}`` in target units plus ``"std"`` (aleatoric, robust models) or
        ``{"prob": (n, T)}`` for classification; rows in dataset order."""
        self.model.eval()
        n, t = len(data), self.model.config.n_targets
        mean = np.zeros((n, t))
        std = np.full((n, t), np.nan)
        for idx in data.batch_indices(batch_size):
            out = self.model(data.batch(idx))
            if self.task_type == "classification":
                mean[idx] = torch.sigmoid(out).numpy()
                continue
            pred, log_std = out[:, :t], (out[:, t:] if self.model.config.robust else None)
            assert self.normaliser is not None
            mean[idx] = self.normaliser.denorm(pred).numpy()
            if log_std is not None:
                std[idx] = (torch.exp(log_std) * log_std.new_tensor(self.normaliser.std)).numpy()
        if self.task_type == "classification":
            return {"prob": mean}
        return {"mean": mean, "std": std}

    def save(self, out: str | Path, *, card_extra: str = "") -> Path:
        config: dict[str, Any] = {
            "kind": "finetuned",
            "task_type": self.task_type,
            "loss": self.loss,
            "model": self.model.config.to_dict(),
            "info": self.info,
        }
        if self.task_type == "classification":
            config["threshold"] = float(self.threshold)
        extra = {"normaliser.json": self.normaliser.to_json()} if self.normaliser else {}
        card = _model_card(self, card_extra)
        return save_artefact(out, self.model, config, card=card, extra_files=extra)

    @classmethod
    def load(cls, path: str | Path) -> FittedModel:
        art = load_artefact(path)
        if art.config.get("kind") != "finetuned":
            raise ValueError(f"{path}: not a finetuned model (kind={art.config.get('kind')!r})")
        norm_file = Path(path) / "normaliser.json"
        try:  # config.json is data: anything malformed is an ArtefactError, never a traceback
            model = RoostModel(ModelConfig.from_dict(art.config["model"]))
            model.load_state_dict(art.state_dict)
            normaliser = (
                Normaliser.from_json(norm_file.read_text()) if norm_file.is_file() else None
            )
            task_type, loss, info = art.config["task_type"], art.config["loss"], art.config["info"]
            # artefacts written before thresholds were saved used 0.5
            threshold = float(art.config.get("threshold", CLF_THRESHOLD))
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold {threshold} is not in [0, 1]")
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtefactError(
                f"{path}: not a valid finetuned model ({type(exc).__name__}: {exc})"
            ) from None
        model.eval()
        return cls(model, task_type, normaliser, loss, info=info, threshold=threshold)


def _model_card(fitted: FittedModel, extra: str) -> str:
    info = fitted.info
    lines = [
        f"# pretroost Roost model: {info.get('name', 'model')}",
        "",
        f"- task type: {fitted.task_type}; loss: {fitted.loss}",
        *(
            [f"- decision threshold: probability > {fitted.threshold:.4g}"]
            if fitted.task_type == "classification"
            else []
        ),
        f"- initialisation: {info.get('init', 'scratch')}",
        *(
            [f"- trunk input: material vector and {fitted.model.config.descriptors} descriptors"]
            if fitted.model.config.descriptors != "none"
            else []
        ),
        *(
            [f"- amount encoding: {fitted.model.encoder.config.amount_encoding}"]
            if fitted.model.encoder.config.amount_encoding != "none"
            else []
        ),
        f"- training rows: {info.get('n_train')}, validation rows: {info.get('n_val')}",
        f"- epochs run: {info.get('epochs_run')} (best epoch {info.get('best_epoch')})",
        f"- validation score (lower is better): {info.get('best_val')}",
        f"- wall time: {info.get('seconds', 0):.1f} s on {info.get('machine')}",
        f"- git SHA: {info.get('git_sha')}",
        "",
        "Roost: Goodall & Lee, Nat. Commun. 11, 6280 (2020). Load with `pretroost.load(DIR)`.",
        "",
    ]
    return "\n".join(lines) + extra


def init_source(init: str | Path) -> tuple[RoostConfig, dict[str, Tensor], str]:
    """The encoder config, tensors and kind of a folder that ``--init`` may name.

    A pretrained encoder (``pretroost pretrain --out``) keeps its encoder config under
    ``"encoder"``; a finetuned model under ``"model"]["encoder"]``; an ensemble lends its first
    member (tensors renamed from ``members.0.*``). Anything else is an :class:`ArtefactError`.
    """
    art = load_artefact(resolve(init))
    kind = art.config.get("kind")
    state = dict(art.state_dict)
    try:
        if kind == "pretrained":
            enc_cfg = art.config["encoder"]
        elif kind == "finetuned":
            enc_cfg = art.config["model"]["encoder"]
        elif kind == "ensemble":
            enc_cfg = art.config["members"][0]["model"]["encoder"]
            prefix = "members.0."
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            log.info("%s: an ensemble; starting from the encoder of its member 0", init)
        else:
            raise ArtefactError(
                f"{init}: a folder of kind {kind!r} has no encoder to start from; --init takes "
                "a pretrained encoder (pretroost pretrain --out), a finetuned model or an ensemble"
            )
        enc = RoostConfig.from_dict(enc_cfg)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ArtefactError):
            raise
        raise ArtefactError(
            f"{init}: no valid encoder config in this {kind} model's config.json "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return enc, state, str(kind)


def init_elem_embedding(config: FinetuneConfig) -> str:
    """The element table the model will use: the ``--init`` folder's own, else the config's."""
    if config.init == "scratch":
        return config.encoder.elem_embedding
    return init_source(config.init)[0].elem_embedding


def build_model(
    task_type: TaskType, n_targets: int, config: FinetuneConfig
) -> tuple[RoostModel, dict | None]:
    """A fresh model, with the pretrained encoder loaded when ``config.init`` is a folder (a
    pretrained encoder, a finetuned model or an ensemble: :func:`init_source`)."""
    enc = config.encoder
    state: dict[str, Tensor] | None = None
    kind = "scratch"
    if config.init != "scratch":
        enc, state, kind = init_source(config.init)
    wanted = config.amount_encoding
    if wanted is not None and wanted != enc.amount_encoding:
        if enc.amount_encoding != "none" and config.init != "scratch":
            raise ValueError(
                f"amount_encoding {wanted!r}: the encoder of {config.init} was trained with "
                f"{enc.amount_encoding!r} and cannot drop it"
            )
        enc = replace(enc, amount_encoding=wanted)
    loss = config.loss_for(task_type)
    model = RoostModel(
        ModelConfig(
            encoder=enc,
            task_type=task_type,
            n_targets=n_targets,
            robust=loss == "robust",
            trunk_hidden=config.trunk_hidden,
            out_hidden=config.out_hidden,
            descriptors=config.descriptors,
        )
    )
    report = None
    if state is not None:
        prefixes: tuple[str, ...] = ("encoder.",)
        if config.init_trunk:
            prefixes += ("trunk.",)
            if kind == "pretrained":
                state.update(_pretrained_trunk(state))
            state.update(_widen_trunk_input(state, model))
        state.update(_zero_amount_embedding(state, model))
        report = load_encoder_weights(
            model, state, prefixes=prefixes, allow_partial=config.allow_partial,
            source=config.init,
        )  # fmt: skip
    return model, report


def _pretrained_trunk(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The trunk of the first objective head in a pretrained artefact, renamed ``trunk.*``."""
    heads = sorted(
        {k.split(".")[1] for k in state if k.startswith("parts.") and ".head.trunk." in k}
    )
    if not heads:
        raise ValueError("--init-trunk: the pretrained artefact has no objective trunk")
    prefix = f"parts.{heads[0]}.head.trunk."
    log.info("initialising the trunk from %s*", prefix)
    return {"trunk." + k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _widen_trunk_input(state: dict[str, Tensor], model: RoostModel) -> dict[str, Tensor]:
    """The trunk's first-layer weights of ``state`` (``trunk.fcs.0.weight`` and its residual
    projection, (width, elem_fea_len)) padded with zero columns for ``model``'s descriptors, so
    that the widened trunk computes the pretrained function; empty where the shapes already fit."""
    own = model.state_dict()
    out: dict[str, Tensor] = {}
    for key in ("trunk.fcs.0.weight", "trunk.res_fcs.0.weight"):
        if key not in state or key not in own:
            continue
        w, want = state[key], own[key].shape
        if w.ndim == 2 and w.shape[0] == want[0] and w.shape[1] < want[1]:
            out[key] = torch.cat([w, w.new_zeros(want[0], want[1] - w.shape[1])], dim=1)
    if out:
        log.info("trunk: zero weights for the %d descriptors", own["trunk.fcs.0.weight"].shape[1]
                 - state["trunk.fcs.0.weight"].shape[1])  # fmt: skip
    return out


def _zero_amount_embedding(state: dict[str, Tensor], model: RoostModel) -> dict[str, Tensor]:
    """Zero weights for ``model``'s amount features where the pretrained ``state`` has none, so
    that the encoder starts as the pretrained function; empty where there is nothing to add."""
    key = "encoder.amount_embedding.weight"
    own = model.state_dict()
    if key not in own or key in state:
        return {}
    log.info("encoder: zero weights for the %d amount features", own[key].shape[1])
    return {key: torch.zeros_like(own[key])}


def _rule_thresholds(
    model: RoostModel,
    task_type: TaskType,
    loss: LossName,
    val_data: CompositionDataset | None,
    y_val: np.ndarray,
) -> dict[str, float]:
    """The decision threshold of every rule in ``THRESHOLD_RULES`` for a trained classifier:
    ``"0.5"`` always; ``"val_balanced_accuracy"`` where the validation split has one target and
    both classes (``y_val``: its targets, shape ``(n_val, n_targets)``). Stored with every cell,
    so that a variant that only moves the threshold (``+valthreshold``) needs no retraining.
    Empty for regression."""
    if task_type != "classification":
        return {}
    thresholds = {"0.5": CLF_THRESHOLD}
    if val_data is None or y_val.shape[1] != 1 or len(np.unique(y_val)) < 2:
        return thresholds
    prob = FittedModel(model, task_type, None, loss).predict_dataset(val_data)["prob"]
    thresholds["val_balanced_accuracy"] = balanced_accuracy_threshold(y_val[:, 0], prob[:, 0])
    return thresholds


def fit(
    comps: CompositionArray,
    y: np.ndarray,
    task_type: TaskType,
    config: FinetuneConfig,
    *,
    val_index: np.ndarray | None = None,
    seed: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    name: str = "model",
    device: str | None = None,
) -> FittedModel:
    """Train one model on ``comps`` -> ``y`` (n, T).

    A validation split of ``config.val_fraction`` is drawn from these rows (or given as
    ``val_index``) for model selection; the rest trains.
    """
    t0 = time.perf_counter()
    seed = config.train.seed if seed is None else seed
    seed_everything(seed)
    y = validate_targets(y, task_type)
    n = len(comps)
    if val_index is None:
        val_index, train_index = validation_split(n, config.val_fraction, seed)
    else:
        val_index = np.asarray(val_index)
        train_index = np.setdiff1d(np.arange(n), val_index)
    model, report = build_model(task_type, y.shape[1], config)
    check_elements(comps, model.config.encoder.elem_embedding)  # a pretrained encoder's own table
    model.fit_descriptor_scaler(comps.subset(train_index))
    normaliser = Normaliser.fit(y[train_index]) if task_type == "regression" else None
    y_t = torch.tensor(y, dtype=torch.float32)
    if normaliser is not None:
        y_t = normaliser.norm(y_t)
    loss = config.loss_for(task_type)
    pos_weight = None
    if task_type == "classification" and config.class_weight == "balanced":
        pos_weight = torch.tensor(balanced_pos_weight(y[train_index]), dtype=torch.float32)
        log.info("%s: class weights: positives x %s", name, pos_weight.tolist())
    elif config.class_weight != "none":
        raise ValueError(f"class_weight {config.class_weight!r} needs a classification task")
    val_metric = config.val_metric_for(task_type)
    if val_metric == "1-rocauc" and (
        not len(val_index) or (y[val_index].min(axis=0) == y[val_index].max(axis=0)).any()
    ):
        raise ValueError(
            f"val_metric {config.val_metric!r} needs both classes of every target in the "
            "validation split"
        )
    if task_type == "classification" and config.threshold != "0.5":
        if not len(val_index):
            raise ValueError(f"threshold {config.threshold!r} needs a validation split")
        if y.shape[1] != 1:
            raise ValueError(
                f"threshold {config.threshold!r} supports one target, got {y.shape[1]}"
            )
    task = SupervisedTask(model, loss, pos_weight=pos_weight)
    train_data = CompositionDataset(comps.subset(train_index), {"y": y_t[train_index]})
    val_data = (
        CompositionDataset(comps.subset(val_index), {"y": y_t[val_index]})
        if len(val_index)
        else None
    )

    def val_score(module: nn.Module, data: CompositionDataset) -> float:
        with torch.inference_mode():  # no autograd bookkeeping at all (values as under no_grad)
            module.eval()
            tot, cnt, probs, ys = 0.0, 0, [], []
            for batch in data.batches(1024):
                out = module(batch)
                if task_type == "regression":  # MAE in normalised units: the headline metric
                    tot += float((out["pred"] - batch.targets["y"]).abs().sum())
                    cnt += batch.targets["y"].numel()
                elif val_metric == "1-rocauc":  # batches come sorted by element count
                    probs.append(torch.sigmoid(out["pred"].float()).numpy())
                    ys.append(batch.targets["y"].numpy())
                else:
                    tot += float(out["loss"]) * len(batch)
                    cnt += len(batch)
            module.train()
            if probs:
                return validation_score(
                    task_type, np.concatenate(ys), np.concatenate(probs), metric=val_metric
                )
            return tot / max(1, cnt)

    train_cfg = replace(config.train, seed=seed, batch_size=config.batch_size_for(len(train_index)))
    if train_cfg.batch_size != config.train.batch_size:
        log.info(
            "%s: %d training rows (< %d): batches of %d", name, len(train_index), SMALL_ROWS,
            train_cfg.batch_size,
        )  # fmt: skip
    result = train(
        task, train_data, train_cfg, val_data=val_data, val_score=val_score,
        checkpoint=checkpoint, resume=resume, progress=progress, description=name, device=device,
    )  # fmt: skip
    model.eval()
    thresholds = _rule_thresholds(model, task_type, loss, val_data, y[val_index])
    threshold = CLF_THRESHOLD
    if task_type == "classification":
        if config.threshold not in thresholds:
            raise ValueError(
                f"threshold {config.threshold!r} needs both classes in the validation split"
            )
        threshold = thresholds[config.threshold]
    if task_type == "classification" and config.threshold != "0.5":
        log.info("%s: decision threshold %.4g (%s)", name, threshold, config.threshold)
    info: dict[str, Any] = {
        "name": name,
        "init": config.init,
        "pretrained_keys": report,
        "finetune": config.to_dict(),
        "seed": seed,
        "n_train": len(train_index),
        "n_val": len(val_index),
        "batch_size": train_cfg.batch_size,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val": result.best_score if val_data is not None else None,
        "val_metric": val_metric,
        "seconds": time.perf_counter() - t0,
        "machine": machine_description(),
        "git_sha": git_sha(),
    }
    if task_type == "classification":
        info["threshold"] = threshold
        info["thresholds"] = thresholds
        info["pos_weight"] = None if pos_weight is None else pos_weight.tolist()
    return FittedModel(model, task_type, normaliser, loss, result, info, threshold)
