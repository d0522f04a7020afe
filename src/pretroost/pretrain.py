"""Pretraining a Roost encoder on unlabeled compositions with one or more objectives, and writing
the release artefact that finetuning loads (``pretroost finetune --init DIR``). The settings,
:class:`~pretroost.configs.PretrainConfig`, live in :mod:`pretroost.configs`."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretroost import distributed
from pretroost.artefacts import save_artefact
from pretroost.configs import AUTOCASTS, BALANCES, LR_SCALINGS, PretrainConfig
from pretroost.data.batching import CompositionDataset, check_elements
from pretroost.data.corpus import Corpus
from pretroost.models.roost import RoostEncoder
from pretroost.objectives import OBJECTIVES, CombinedObjective, parse_objective
from pretroost.objectives.base import RegressionObjective
from pretroost.train import TrainConfig, train
from pretroost.utils import git_sha, machine_description, native_bf16, seed_everything

__all__ = [
    "AUTOCASTS",
    "BALANCES",
    "LR_SCALINGS",
    "PretrainConfig",
    "encoder_card",
    "held_out_count",
    "loss_terms",
    "pretrain",
    "resolved_train",
]

log = logging.getLogger(__name__)


def resolved_train(
    config: PretrainConfig, device: str | torch.device = "cpu"
) -> tuple[TrainConfig, dict[str, Any]]:
    """The optimisation settings a pretraining run uses on ``device``: ``config.train`` with the
    learning rate scaled by ``config.lr_scaling`` and the precision set by ``config.autocast``;
    and a record of both decisions (with the BF16 evidence) for the artefact's config."""
    t = config.train
    ratio = t.batch_size / config.lr_reference_batch
    power = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}[config.lr_scaling]
    lr = t.lr * ratio**power
    precision = t.precision
    note: dict[str, Any] = {
        "lr_scaling": config.lr_scaling,
        "lr_given": t.lr,
        "lr_used": lr,
        "autocast": config.autocast,
    }
    if config.autocast == "native_bf16":
        native, reason = native_bf16(device)
        precision = "bf16" if native else t.precision
        note["bf16_native"], note["bf16_reason"] = native, reason
    note["precision_used"] = precision
    return replace(t, lr=lr, precision=precision), note


def encoder_card(config: dict) -> str:
    """The model card (markdown) of a pretrained encoder, from its ``config.json``."""
    c = config
    corpus = c["corpus"]
    return "\n".join(
        [
            f"# pretroost pretrained Roost encoder: `{c['objective']}`",
            "",
            f"- objective(s): {c['objective']} (weights {c['weights']}); "
            + "; ".join(dict.fromkeys(OBJECTIVES[n].reference for n in c["weights"])),
            f"- corpus: {corpus.get('size')} compositions (hash {corpus.get('hash')}; sources "
            f"{corpus.get('sources')}; Matbench tasks excluded: {len(corpus.get('excluded_tasks', []))})",
            f"- rows with a teacher target: {c.get('n_with_structure', 'n/a')}",
            *(
                [f"- each loss term's share of the total, start -> end: {c['loss_shares']}"]
                if len(c.get("weights", {})) > 1
                else []
            ),
            *(
                [f"- rows with a DFT label, per property: {c['n_with_dft_label']}"]
                if c.get("n_with_dft_label")
                else []
            ),
            f"- epochs: {c['epochs_run']} (best {c['best_epoch']}), batch {c['train']['batch_size']}, "
            f"lr {c['train']['lr']}",
            f"- final train loss {c['final_train_loss']:.5g}; best held-out loss {c['best_val_loss']:.5g}",
            f"- wall time {c['seconds']:.0f} s on {c['machine']}",
            f"- git SHA {c['git_sha']}",
            "",
            "Load the encoder into a property model with `pretroost finetune --init <this folder>`.",
            "",
        ]
    )


@torch.no_grad()
def loss_terms(
    module: CombinedObjective, data: CompositionDataset, *, batch_size: int, n_batches: int = 4
) -> dict[str, float]:
    """Each objective's unweighted loss, averaged over the first ``n_batches`` batches of
    ``data`` (fixed order; training-mode statistics, as the losses are trained)."""
    was_training = module.training
    module.train()
    sums: dict[str, float] = dict.fromkeys(module.names, 0.0)
    seen = 0
    for batch in data.batches(batch_size):
        out = module(batch)
        for n in module.names:
            sums[n] += float(out[f"loss_{n}"])
        seen += 1
        if seen >= n_batches:
            break
    module.train(was_training)
    return {n: v / max(1, seen) for n, v in sums.items()}


def _shares(module: CombinedObjective, terms: dict[str, float]) -> dict[str, float]:
    """Each weighted term's share of the total loss."""
    weighted = {n: module.weights[n] * v for n, v in terms.items()}
    total = sum(weighted.values())
    return {n: (v / total if total else float("nan")) for n, v in weighted.items()}


def _target_scalers(module: CombinedObjective, config: PretrainConfig) -> dict[str, dict]:
    """Per regression objective, the target standardisation fitted on the training part of the
    corpus (also in the weights as buffers), so that the artefact's config describes it."""
    out: dict[str, dict] = {}
    for name, part in module.parts.items():
        if isinstance(part, RegressionObjective):
            out[name] = {
                "mean": part.target_mean.tolist(),
                "std": part.target_std.tolist(),
            }
            if name == "dft":
                out[name]["properties"] = list(config.dft.properties)
    return out


def _remove_stale_temporaries(checkpoint: Path) -> None:
    """Delete the temporaries of atomic writes of ``checkpoint`` that a killed run left beside it
    (``.<name>.*.tmp``, :func:`pretroost.utils.atomic_path`'s names): files of this run only."""
    for tmp in checkpoint.parent.glob(f".{checkpoint.name}.*.tmp"):
        log.info("removing %s, left by an interrupted checkpoint write", tmp)
        tmp.unlink()


def held_out_count(n: int, val_fraction: float) -> int:
    """How many of a corpus' ``n`` compositions :func:`pretrain` holds out to monitor the loss:
    ``val_fraction`` of them, none below 100 compositions or where that would be a single one."""
    n_val = int(round(val_fraction * n)) if n >= 100 else 0
    return n_val if n_val >= 2 else 0  # a 1-row set has no batch statistics to score


def pretrain(
    corpus: Corpus,
    config: PretrainConfig,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    device: str | None = None,
) -> Path:
    """Pretrain an encoder on ``corpus`` and write the artefact folder ``out``."""
    t0 = time.perf_counter()
    train_config, train_note = resolved_train(config, distributed.context(device).device)
    if train_note["lr_used"] != config.train.lr or train_config.precision != config.train.precision:
        log.info("pretraining settings resolved: %s", train_note)
    seed_everything(config.train.seed)
    names = parse_objective(config.objective)
    check_elements(corpus.comps, config.encoder.elem_embedding)
    rng = np.random.default_rng(config.train.seed)
    if config.max_compositions is not None and config.max_compositions < len(corpus):
        corpus = corpus.subset(
            np.sort(rng.choice(len(corpus), config.max_compositions, replace=False))
        )
    sub_configs: dict[str, Any] = {
        "ssl": config.ssl,
        "fingerprint": config.fingerprint,
        "structure": config.structure,
        "dft": config.dft,
    }
    targets: dict[str, np.ndarray] = {}
    for n in names:
        log.info("preparing %s targets for %d compositions", n, len(corpus))
        targets.update(OBJECTIVES[n].prepare_targets(corpus, sub_configs[n]))
    n_struct = None
    if "structure_mask" in targets:
        n_struct = int(targets["structure_mask"].sum())
        if names == ["structure"]:  # alone, only compositions with a structure carry signal
            keep = np.flatnonzero(targets["structure_mask"])
            corpus = corpus.subset(keep)
            targets = {k: v[keep] for k, v in targets.items()}
        if n_struct == 0:
            raise ValueError("no corpus composition has a structure: check the structure files")
    n_dft = None
    if "dft_mask" in targets:
        n_dft = {
            p: int(np.isfinite(targets["dft"][:, j]).sum())
            for j, p in enumerate(config.dft.properties)
        }
        if names == ["dft"]:  # alone, only labelled compositions carry signal
            keep = np.flatnonzero(targets["dft_mask"])
            corpus = corpus.subset(keep)
            targets = {k: v[keep] for k, v in targets.items()}
        if not targets["dft_mask"].any():
            raise ValueError("no corpus composition has a DFT label: check the OQMD label files")
        empty = [p for p, k in n_dft.items() if k == 0]
        if empty:
            raise ValueError(
                f"no corpus composition has a {', '.join(empty)} label: Matbench's DFT labels "
                "need the corpus of `pretroost corpus build --labels all` (the OQMD corpus "
                "excludes their compositions)"
            )
    target_dims = {
        n: targets[OBJECTIVES[n].target_keys[0]].shape[1]
        for n in names
        if OBJECTIVES[n].target_keys
    }
    encoder = RoostEncoder(config.encoder)
    module = CombinedObjective(
        encoder, names, configs=sub_configs, weights=dict(config.weights), target_dims=target_dims
    )
    perm = rng.permutation(len(corpus))
    n_val = held_out_count(len(corpus), config.val_fraction)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    for part in module.parts.values():
        if isinstance(part, RegressionObjective):
            part.set_scaler(targets[part.target_key][train_idx])
    data = CompositionDataset(corpus.comps, targets)
    train_data = CompositionDataset(
        corpus.comps.subset(train_idx), {k: v[train_idx] for k, v in targets.items()}
    )
    val_data = (
        CompositionDataset(
            corpus.comps.subset(val_idx), {k: v[val_idx] for k, v in targets.items()}
        )
        if n_val
        else None
    )
    del data
    batch = min(config.train.batch_size, 256)
    torch.manual_seed(config.train.seed)
    start_terms = loss_terms(module, train_data, batch_size=batch)
    if len(names) > 1 and not config.weights and config.balance == "initial":
        module.weights = {n: 1.0 / max(start_terms[n], 1e-12) for n in module.names}
        log.info(
            "balanced loss weights from the initial losses %s: %s", start_terms, module.weights
        )
    shares = {"start": _shares(module, start_terms)}
    log.info("pretraining %s on %d compositions (%d held out)", module.spec, len(train_idx), n_val)
    if resume and checkpoint is not None:
        _remove_stale_temporaries(Path(checkpoint))
    result = train(
        module, train_data, train_config, val_data=val_data, checkpoint=checkpoint,
        resume=resume, progress=progress, description=f"pretrain {module.spec}", device=device,
    )  # fmt: skip
    history = result.history
    if len(names) > 1:
        torch.manual_seed(config.train.seed)
        shares["end"] = _shares(
            module, loss_terms(module, val_data or train_data, batch_size=batch)
        )
        log.info("loss shares (start -> end): %s -> %s", shares["start"], shares["end"])
    art_config = {
        "kind": "pretrained",
        "objective": module.spec,
        "encoder": config.encoder.to_dict(),
        "objectives": {n: asdict(sub_configs[n]) for n in names},
        "weights": module.weights,
        "loss_shares": shares,
        "target_dims": target_dims,
        "pretrain": config.to_dict(),
        "train": train_config.to_dict(),
        "train_resolved": train_note,
        "corpus": {k: v for k, v in corpus.info.items() if k != "exclusion_report"},
        "exclusion_report": corpus.info.get("exclusion_report", {}),
        "n_with_structure": n_struct,
        "n_with_dft_label": n_dft,
        "target_scalers": _target_scalers(module, config),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "final_train_loss": history[-1]["train_loss"] if history else float("nan"),
        "best_val_loss": result.best_score if val_data is not None else float("nan"),
        "history": history,
        "seconds": time.perf_counter() - t0,
        "machine": machine_description(),
        "git_sha": git_sha(),
    }
    if not distributed.context().is_main:  # data parallel: rank 0 alone writes
        return Path(out)
    return save_artefact(out, module, art_config, card=encoder_card(art_config))
