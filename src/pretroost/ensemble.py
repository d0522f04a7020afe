"""Deep ensembles of Roost models (Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017).

``N`` members are trained with :func:`pretroost.finetune.fit` from different seeds (initial weights
and batch order). Each member needs a validation split for model selection; ``split`` chooses:

- ``"different"`` (default): each member draws its own validation split from its own seed, so every
  row trains most members (a little bagging on top of the seed diversity);
- ``"same"``: all members share one split (drawn with the first seed), so they differ only by seed,
  and the held-out rows are never seen by any member.

Prediction (regression) combines the members as a uniform mixture:

- ``mean`` = mean of the member means;
- ``std_epistemic`` = population std (ddof 0) of the member means;
- ``std_aleatoric`` = root mean square of the members' predicted stds (robust loss only; NaN else);
- ``std`` = ``sqrt(std_aleatoric**2 + std_epistemic**2)``: the std of the mixture. Members trained
  without the robust loss have no aleatoric part, and ``std`` is then the epistemic part alone.

Classification: ``prob`` = mean of the member probabilities, ``std_epistemic`` = their std.

An ensemble is saved as ONE artefact folder: ``config.json`` with ``"kind": "ensemble"`` and one entry
per member (model config, loss, normaliser, training info), and one ``model.safetensors`` holding
member ``k``'s tensors under the prefix ``members.{k}.``. Each member keeps its own normaliser (its
training rows, hence its target mean/std, depend on its validation split).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from torch import nn

from pretroost.artefacts import Artefact, ArtefactError, load_artefact, save_artefact
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import CompositionArray
from pretroost.finetune import (
    VAL_METRICS,
    FinetuneConfig,
    FittedModel,
    Normaliser,
    fit,
    validate_targets,
    validation_score,
    validation_split,
)
from pretroost.metrics import CLF_THRESHOLD
from pretroost.models.roost import ModelConfig, RoostModel, TaskType
from pretroost.utils import git_sha, machine_description

__all__ = [
    "ENSEMBLE_SPLITS",
    "Ensemble",
    "EnsembleSplit",
    "combine_predictions",
    "fit_ensemble",
    "uncertainty_scores",
]

log = logging.getLogger(__name__)

EnsembleSplit = Literal["different", "same"]
ENSEMBLE_SPLITS: tuple[str, ...] = ("different", "same")
KIND = "ensemble"


def combine_predictions(
    outputs: Sequence[dict[str, np.ndarray]], task_type: TaskType
) -> dict[str, np.ndarray]:
    """Combine members' :meth:`FittedModel.predict_dataset` outputs (see the module docstring).

    Returns ``{"mean", "std", "std_aleatoric", "std_epistemic"}`` for regression or
    ``{"prob", "std_epistemic"}`` for classification, each (n, T).
    """
    if not outputs:
        raise ValueError("no member outputs to combine")
    if task_type == "classification":
        probs = np.stack([o["prob"] for o in outputs])
        return {"prob": probs.mean(axis=0), "std_epistemic": probs.std(axis=0)}
    means = np.stack([o["mean"] for o in outputs])  # (M, n, T)
    stds = np.stack([o["std"] for o in outputs])
    mean = means.mean(axis=0)
    epistemic = means.std(axis=0)
    if np.isnan(stds).all():
        aleatoric = np.full_like(mean, np.nan)
        total = epistemic
    else:
        aleatoric = np.sqrt(np.mean(stds**2, axis=0))
        total = np.sqrt(aleatoric**2 + epistemic**2)
    return {"mean": mean, "std": total, "std_aleatoric": aleatoric, "std_epistemic": epistemic}


def uncertainty_scores(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """How well predicted stds describe the errors of a regression (1-D arrays).

    ``coverage_1sigma``/``coverage_2sigma``: share of rows with ``|y - mean| <= k std`` (0.683 and
    0.954 if the errors were Gaussian with that std); ``mean_std``; ``spearman_abs_error_std``: rank
    correlation of ``|y - mean|`` and ``std`` (> 0: the std ranks the errors);
    ``nll_gaussian``: mean Gaussian negative log-likelihood.
    """
    from scipy.stats import spearmanr

    y_true, mean, std = (np.asarray(a, dtype=np.float64).ravel() for a in (y_true, mean, std))
    ok = np.isfinite(std) & (std > 0)
    if not ok.any():
        return {}
    err = np.abs(y_true[ok] - mean[ok])
    s = std[ok]
    varied = ok.sum() > 2 and np.ptp(err) > 0 and np.ptp(s) > 0
    rho = float(spearmanr(err, s).statistic) if varied else float("nan")
    nll = 0.5 * np.log(2 * np.pi * s**2) + 0.5 * (err / s) ** 2
    return {
        "coverage_1sigma": float(np.mean(err <= s)),
        "coverage_2sigma": float(np.mean(err <= 2 * s)),
        "mean_std": float(np.mean(s)),
        "spearman_abs_error_std": float(rho),
        "nll_gaussian": float(np.mean(nll)),
    }


@dataclass
class Ensemble:
    """Trained members plus what is needed to use and describe them.

    Duck-compatible with :class:`FittedModel` where the CLI and benchmark use it: ``task_type``,
    ``info``, ``predict_dataset`` (``"mean"``/``"std"`` or ``"prob"`` keys) and ``save``.
    """

    members: list[FittedModel]
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        types = {m.task_type for m in self.members}
        if len(types) != 1:
            raise ValueError(f"members mix task types: {sorted(types)}")

    @property
    def task_type(self) -> TaskType:
        return self.members[0].task_type

    @property
    def loss(self) -> str:
        return self.members[0].loss

    @property
    def threshold(self) -> float:
        """The classification decision threshold: an ensemble labels its mean probability at 0.5."""
        return CLF_THRESHOLD

    def __len__(self) -> int:
        return len(self.members)

    def predict_dataset(
        self, data: CompositionDataset, batch_size: int = 1024
    ) -> dict[str, np.ndarray]:
        """Combined predictions for ``data`` in dataset order (keys: see :func:`combine_predictions`)."""
        outputs = [m.predict_dataset(data, batch_size) for m in self.members]
        return combine_predictions(outputs, self.task_type)

    def save(self, out: str | Path, *, card_extra: str = "") -> Path:
        """Write one artefact folder (``"kind": "ensemble"``); see the module docstring."""
        members = []
        for m in self.members:
            norm = m.normaliser
            members.append(
                {
                    "model": m.model.config.to_dict(),
                    "loss": m.loss,
                    "normaliser": (
                        {"mean": list(norm.mean), "std": list(norm.std)} if norm else None
                    ),
                    "info": m.info,
                }
            )
        config = {
            "kind": KIND,
            "task_type": self.task_type,
            "n_members": len(self.members),
            "members": members,
            "info": self.info,
        }
        holder = nn.Module()
        holder.members = nn.ModuleList(m.model for m in self.members)
        return save_artefact(out, holder, config, card=_card(self, card_extra))

    @classmethod
    def load(cls, path: str | Path) -> Ensemble:
        return cls.from_artefact(load_artefact(path))

    @classmethod
    def from_artefact(cls, art: Artefact) -> Ensemble:
        cfg = art.config
        if cfg.get("kind") != KIND:
            raise ArtefactError(f"{art.path}: not an ensemble (kind={cfg.get('kind')!r})")
        entries = cfg.get("members")
        if not isinstance(entries, list) or not entries:
            raise ArtefactError(f"{art.path}: config.json lists no ensemble members")
        members = []
        for k, entry in enumerate(entries):
            prefix = f"members.{k}."
            state = {
                key[len(prefix) :]: v for key, v in art.state_dict.items() if key.startswith(prefix)
            }
            if not state:
                raise ArtefactError(f"{art.path}: no tensors for member {k} (prefix {prefix!r})")
            model = RoostModel(ModelConfig.from_dict(entry["model"]))
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise ArtefactError(f"{art.path}: member {k}: weights do not fit ({exc})") from None
            model.eval()
            norm = entry.get("normaliser")
            normaliser = Normaliser(tuple(norm["mean"]), tuple(norm["std"])) if norm else None
            members.append(
                FittedModel(
                    model, cfg["task_type"], normaliser, entry["loss"], info=entry.get("info", {})
                )
            )
        extra = {k for k in art.state_dict if not k.startswith("members.")}
        if extra:
            log.warning("%s: ignoring %d tensors outside members.*", art.path, len(extra))
        return cls(members, info=cfg.get("info", {}))


def _card(ens: Ensemble, extra: str) -> str:
    info = ens.info
    rows = [
        f"| {k} | {m.info.get('seed')} | {m.info.get('n_train')} | {m.info.get('n_val')} | "
        f"{m.info.get('best_epoch')} | {m.info.get('best_val')} |"
        for k, m in enumerate(ens.members)
    ]
    lines = [
        f"# pretroost Roost deep ensemble: {info.get('name', 'ensemble')}",
        "",
        f"- {len(ens)} members; task type: {ens.task_type}; loss: {ens.loss}",
        f"- initialisation: {info.get('init', 'scratch')}",
        f"- validation splits: {info.get('split')}",
        f"- wall time: {info.get('seconds', 0):.1f} s on {info.get('machine')}",
        f"- git SHA: {info.get('git_sha')}",
        "",
        "| member | seed | training rows | validation rows | best epoch | validation score |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Prediction: mean over members; epistemic std = std of member means; aleatoric std = RMS",
        "of member stds; total = sqrt of the sum of squares (Lakshminarayanan et al. 2017).",
        "Roost: Goodall & Lee, Nat. Commun. 11, 6280 (2020). Load with `pretroost.load(DIR)`.",
        "",
    ]
    return "\n".join(lines) + extra


def fit_ensemble(
    comps: CompositionArray,
    y: np.ndarray,
    task_type: TaskType,
    config: FinetuneConfig,
    n_members: int = 5,
    *,
    split: EnsembleSplit = "different",
    seeds: Sequence[int] | None = None,
    val_index: np.ndarray | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    name: str = "ensemble",
    device: str | None = None,
) -> Ensemble:
    """Train a deep ensemble of ``n_members`` models (each exactly as :func:`fit` trains one).

    Args:
        comps, y, task_type, config: as for :func:`~pretroost.finetune.fit`.
        n_members: ensemble size (>= 1).
        split: ``"different"`` (each member its own validation split) or ``"same"`` (one shared
            split); ignored when ``val_index`` is given (then all members use it).
        seeds: one seed per member; default ``config.train.seed + k``.
        checkpoint_dir: per-member resumable checkpoints ``member_{k}.pt`` in this folder.
        resume: continue from those checkpoints.
        progress: progress bars (default: when stderr is a terminal).
        name: recorded in the model card and training logs.
        device: where each member trains (see :func:`~pretroost.train.train`); members come
            back on the CPU.
    """
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    if split not in ENSEMBLE_SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(ENSEMBLE_SPLITS)}")
    base = config.train.seed
    seeds = [base + k for k in range(n_members)] if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n_members:
        raise ValueError(f"{len(seeds)} seeds given for {n_members} members")
    if task_type == "classification" and config.threshold != "0.5":
        raise ValueError(
            f"threshold {config.threshold!r} is for single models; an ensemble labels its mean "
            "probability at 0.5 (use threshold '0.5')"
        )
    split_given = val_index is not None
    if val_index is None and split == "same":  # member 0's own split (as fit() draws it)
        val_index = validation_split(len(comps), config.val_fraction, seeds[0])[0]
    t0 = time.perf_counter()
    members = []
    for k, seed in enumerate(seeds):
        ckpt = Path(checkpoint_dir) / f"member_{k}.pt" if checkpoint_dir is not None else None
        member = fit(
            comps, y, task_type, config, val_index=val_index, seed=seed, checkpoint=ckpt,
            resume=resume, progress=progress, name=f"{name}/member{k}", device=device,
        )  # fmt: skip
        log.info(
            "%s: member %d/%d (seed %d) done: best epoch %s, validation score %s",
            name, k + 1, n_members, seed, member.info["best_epoch"], member.info["best_val"],
        )  # fmt: skip
        members.append(member)
    info = {
        "name": name,
        "init": config.init,
        "n_members": n_members,
        "split": "given" if split_given else split,
        "seeds": seeds,
        "finetune": config.to_dict(),
        "seconds": time.perf_counter() - t0,
        "machine": machine_description(),
        "git_sha": git_sha(),
        **_shared_validation(members, comps, y, task_type, val_index),
    }
    return Ensemble(members, info)


def _shared_validation(
    members: Sequence[FittedModel],
    comps: CompositionArray,
    y: np.ndarray,
    task_type: TaskType,
    val_index: np.ndarray | None,
) -> dict:
    """The ensemble's own model-selection score on the validation rows all its members share
    (``best_val``, ``val_metric``, ``n_val``: the score :func:`~pretroost.finetune.fit` selects by,
    of the combined prediction, so it compares with single models selected on those rows); with
    per-member splits there are no such rows and ``best_val`` is None."""
    metric = members[0].info.get("val_metric", VAL_METRICS[task_type])
    out: dict = {"val_metric": metric, "best_val": None, "n_val": 0}
    if val_index is None or not len(val_index):
        return out
    val_index = np.asarray(val_index)
    pred = Ensemble(list(members)).predict_dataset(CompositionDataset(comps.subset(val_index)))
    y_val = validate_targets(y, task_type)[val_index]
    first = members[0]
    pos_weight = first.info.get("pos_weight")
    out["best_val"] = validation_score(
        task_type, y_val, pred["prob" if task_type == "classification" else "mean"],
        normaliser=first.normaliser, pos_weight=None if pos_weight is None else np.asarray(pos_weight),
        metric=metric,
    )  # fmt: skip
    out["n_val"] = len(val_index)
    return out
