"""Supervised pretraining on labelled DFT data: regress the OQMD band gap, formation enthalpy,
energy per atom and volume per atom of each corpus composition (multi-task; not one of Huang et
al.'s three strategies, but the supervised-pretraining baseline their SSL/FL/MML compete with,
e.g. the transfer learning of Jha et al., Nat. Commun. 10, 5316, 2019).

Labels come from :meth:`pretroost.data.corpus.Corpus.dft_labels`: the leak-free corpus (every
Matbench composition removed) joined with the OQMD files by reduced composition, duplicates
averaged, NaN where a property is unknown. With ``properties`` from the ``all`` label set
(:data:`pretroost.data.dft_labels.LABEL_SETS`) the labels of Matbench's DFT tasks (mp_e_form,
mp_gap, mp_is_metal) join too, on the corpus of ``pretroost corpus build --labels all``
(:mod:`pretroost.data.dft_corpus`). Each property is standardised with the statistics of the
training part of the corpus (kept as buffers and written to the artefact's config).

Loss: a masked smooth L1 (Huber) on the standardised targets (:class:`MaskedSmoothL1Loss`),
averaged over the labels present; a missing label contributes nothing. Band gaps have a large
mass at exactly 0 (metals) and a long tail, and OQMD's energies carry outliers: an L1-type tail
keeps those from dominating the gradient (a squared loss would), while the quadratic core keeps
the gradient small near the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from pretroost.artefacts import load_artefact
from pretroost.configs import DFTConfig
from pretroost.data.batching import CompositionDataset
from pretroost.errors import ArtefactError
from pretroost.losses import MaskedSmoothL1Loss
from pretroost.models.roost import RoostEncoder, encoder_from_artefact
from pretroost.objectives.base import ProjectionHead, RegressionObjective
from pretroost.pretrained import resolve

if TYPE_CHECKING:
    from pretroost.data.composition import CompositionArray
    from pretroost.data.corpus import Corpus

__all__ = ["DFTConfig", "DFTHead", "DFTObjective", "load_dft_head", "predict_dft"]


class DFTObjective(RegressionObjective):
    """``forward(batch) -> {"loss", "pred"}``; reads ``dft`` (B, P), NaN for missing labels, and
    ``dft_mask`` (B,), True where at least one label is present. ``pred`` is (B, P) in
    standardised units."""

    name = "dft"
    reference = (
        "supervised pretraining on DFT labels, not one of Huang et al.'s strategies; cf. the "
        "transfer learning of Jha et al., Nat. Commun. 10, 5316 (2019)"
    )
    Config = DFTConfig
    config: DFTConfig
    target_key = "dft"
    target_keys = ("dft", "dft_mask")
    #: 2 x smooth L1 with beta = 1 is r^2 near the target: the scale of the standardised MSE of
    #: the other regression objectives (fingerprint, structure), which have weight 1
    default_weight: ClassVar[float] = 2.0

    def __init__(
        self,
        encoder: RoostEncoder | None,
        config: DFTConfig,
        *,
        in_dim: int,
        target_dim: int | None = None,
    ) -> None:
        super().__init__(encoder, config, in_dim=in_dim, target_dim=target_dim)
        self.loss_fn = MaskedSmoothL1Loss(config.beta)

    @classmethod
    def prepare_targets(cls, corpus: Corpus, config: Any) -> dict[str, np.ndarray]:
        labels = corpus.dft_labels(
            config.properties,
            oqmd_dir=Path(config.oqmd_dir) if config.oqmd_dir else None,
            limit=config.limit,
        )
        return {"dft": labels, "dft_mask": np.isfinite(labels).any(axis=1)}


def load_dft_head(artefact: str | Path = "dft-oqmd") -> DFTHead:
    """The encoder and ``dft`` head of a DFT-pretrained artefact (a folder or a shipped encoder's
    name), in eval mode, with the head's standardisation. Raises ``ArtefactError`` for an
    artefact without a ``dft`` head."""
    art = load_artefact(resolve(artefact))
    cfg = (art.config.get("objectives") or {}).get("dft")
    prefix = "parts.dft."
    if not isinstance(cfg, dict) or f"{prefix}target_mean" not in art.state_dict:
        raise ArtefactError(f"{art.path}: no dft head (pretrain with --objective dft)")
    props = list(cfg["properties"])
    encoder = encoder_from_artefact(art)
    head = ProjectionHead(encoder.out_dim, len(props), cfg["trunk_hidden"], cfg["trunk_out"])
    head.load_state_dict(
        {k.removeprefix(prefix + "head."): v.float() for k, v in art.state_dict.items()
         if k.startswith(prefix + "head.")}
    )  # fmt: skip
    head.eval()
    mean = art.state_dict[f"{prefix}target_mean"].double().numpy()
    std = art.state_dict[f"{prefix}target_std"].double().numpy()
    return DFTHead(encoder, head, mean, std, props)


@dataclass(frozen=True)
class DFTHead:
    """A DFT-pretrained encoder with its ``dft`` head (:func:`load_dft_head`)."""

    encoder: RoostEncoder
    head: ProjectionHead
    mean: np.ndarray
    std: np.ndarray
    properties: list[str]

    def predict(self, comps: CompositionArray, *, batch_size: int = 1024) -> np.ndarray:
        """(n, P) float64 predictions for ``comps`` in the labels' units."""
        out = np.zeros((len(comps), len(self.properties)))
        data = CompositionDataset(comps)
        with torch.no_grad():
            for idx in data.batch_indices(batch_size):
                out[idx] = self.head(self.encoder(data.batch(idx))).double().numpy()
        return out * self.std + self.mean


def predict_dft(
    comps: CompositionArray, artefact: str | Path = "dft-oqmd", *, batch_size: int = 1024
) -> tuple[np.ndarray, list[str]]:
    """What a DFT-pretrained artefact (encoder + its ``dft`` head) predicts for ``comps``:
    (n, P) float64 in the labels' units (the head's standardisation undone), and the P property
    names (OQMD's, e.g. ``Bandgap`` in eV). ``artefact``: a folder or a shipped encoder's name.

    The shipped ``dft-oqmd`` was pretrained on a corpus with every Matbench composition removed,
    so for a Matbench composition these are predictions, not looked-up labels.
    """
    model = load_dft_head(artefact)
    return model.predict(comps, batch_size=batch_size), model.properties
