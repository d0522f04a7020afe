"""The Crystal Twins CGCNN encoder as a structure teacher: crystal graphs, checkpoint loading and
embedding. The network (CGCNN, Xie & Grossman 2018, with the Crystal Twins projection head; Magar,
Wang & Barati Farimani 2022, pretrained on ~428k CIFs) is :mod:`pretroost.data.teachers.networks.cgcnn`.

Graph conventions (those of Crystal Twins' data pipeline, itself CGCNN's): neighbours within 8 Å
(``Structure.get_neighbor_list``; periodic images of the atom itself count, the atom itself does
not), sorted by distance, the nearest 12 kept; an atom with fewer than 12 is padded with neighbour
index 0 (the first atom of its crystal) at distance ``radius + 1`` = 9 Å, whose Gaussian expansion
is ~1e-11, i.e. a zero edge feature (the padded message itself is not zero: it still sees atom 0's
vector, exactly as in the original). Distances are expanded as ``exp(-(d - mu_k)^2 / var^2)`` with
``mu_k = 0, 0.2, ..., 8.0`` (41 centres) and ``var = step = 0.2`` (CGCNN's ``GaussianDistance``
default, which Crystal Twins' config leaves unset). Equidistant neighbours at the 12th place are
chosen by (distance rounded to 1e-8 Å, neighbour atomic number, neighbour index), which makes the
graph independent of site order and of supercells; the original's order among exact ties was
arbitrary.

Which layer is the teacher embedding: the encoder computes, per crystal,
``pooled = softplus(conv_to_fc(softplus(mean_atoms)))`` (h-d) and ``head = fc_head(pooled)``
(256-d). ``layer="head"`` (the default) returns the 256-d head output: that is the space in which the
Barlow Twins / SimSiam objective was optimised (Barlow Twins drives the batch-standardised
cross-correlation of its dimensions to the identity, so the 256 dimensions are decorrelated and
informative), it is the same width for both variants, and it is the checkpoints' "256-d output"
that the MML setup regresses. ``layer="pooled"`` returns the pre-head h-d vector, which is what Crystal Twins
fine-tunes from (their fine-tuning model drops ``fc_head``); contrastive-learning practice often
finds it the better general-purpose feature, so the probe reports both (on matbench_phonons they
score alike: ridge R² 0.60 head, 0.61 pooled). Note the head output is
not batch-normalised (the loss normalises it), so a student regressing it should standardise each
target dimension.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pymatgen.core import Structure

from pretroost.data.structures import StructureError
from pretroost.data.teachers.base import (
    StructureTeacher,
    file_sha256,
    load_state_dict_file,
    progress_bar,
)
from pretroost.data.teachers.networks.cgcnn import CGCNNConfig, CGCNNEncoder, config_from_state_dict
from pretroost.errors import WeightsNotFoundError
from pretroost.paths import SHARED_ENV, shared_data_dir

__all__ = [
    "VARIANTS",
    "CGCNNConfig",
    "CGCNNEncoder",
    "CrystalGraph",
    "CrystalTwinsTeacher",
    "build_graph",
    "collate_graphs",
    "load_atom_init",
]

log = logging.getLogger(__name__)

#: bump when graph building or the forward pass changes, so cached embeddings are recomputed.
GRAPH_VERSION = 1

Variant = Literal["barlow", "simsiam"]
Layer = Literal["head", "pooled"]

#: variant -> (folder under ``teachers/crystal_twins``, h_fea_len)
VARIANTS: dict[str, tuple[str, int]] = {
    "barlow": ("CGCNNBarlow", 128),
    "simsiam": ("CGCNNSimSiam", 256),
}
LAYERS = ("head", "pooled")


# ---------------------------------------------------------------------------------------------
# graphs


@dataclass(frozen=True)
class CrystalGraph:
    """One crystal's CGCNN graph (n atoms, M neighbours each).

    Attributes:
        atom_fea: (n, orig_atom_fea_len) float32 per-atom input features.
        nbr_dist: (n, M) float32 neighbour distances (Å); padding is ``radius + 1``.
        nbr_idx: (n, M) int64 neighbour atom indices within the crystal; padding is 0.
    """

    atom_fea: np.ndarray
    nbr_dist: np.ndarray
    nbr_idx: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.atom_fea)


def load_atom_init(path: str | os.PathLike[str]) -> np.ndarray:
    """Read CGCNN's ``atom_init.json`` (``{"Z": [features]}``).

    Returns:
        (max_Z + 1, F) float32 table, row ``Z`` the features of element ``Z``; rows of elements
        the file lacks are NaN.
    """
    with open(path) as f:
        raw = json.load(f)
    feats = {int(k): np.asarray(v, dtype=np.float32) for k, v in raw.items()}
    dims = {v.shape for v in feats.values()}
    if len(dims) != 1:
        raise ValueError(f"{path}: atom feature vectors have differing shapes {sorted(dims)}")
    (dim,) = dims.pop()
    table = np.full((max(feats) + 1, dim), np.nan, dtype=np.float32)
    for z, v in feats.items():
        table[z] = v
    return table


def build_graph(structure: Structure, atom_table: np.ndarray, config: CGCNNConfig) -> CrystalGraph:
    """Build the CGCNN graph of one ordered structure (conventions in the module docstring).

    Args:
        structure: n sites, each a single element (no partial occupancy).
        atom_table: (max_Z + 1, F) per-element features from :func:`load_atom_init`.
        config: radius, M and friends.

    Raises:
        StructureError: disordered sites, or an element ``atom_table`` lacks.
    """
    if not structure.is_ordered:
        raise StructureError("CGCNN needs an ordered structure (it has partially occupied sites)")
    z = np.fromiter((site.specie.Z for site in structure), dtype=np.int64, count=len(structure))
    if z.max() >= len(atom_table) or np.isnan(atom_table[z]).any():
        missing = sorted(
            {int(a) for a in z if a >= len(atom_table) or np.isnan(atom_table[a]).any()}
        )
        raise StructureError(f"no CGCNN atom features for atomic number(s) {missing}")
    n, m = len(structure), config.max_num_nbr
    centre, point, _, dist = structure.get_neighbor_list(config.radius)
    centre = centre.astype(np.int64)
    point = point.astype(np.int64)
    # sort by (centre, distance, neighbour Z, neighbour index); np.lexsort's last key is primary
    order = np.lexsort((point, z[point], np.round(dist, 8), centre))
    centre, point, dist = centre[order], point[order], dist[order]
    counts = np.bincount(centre, minlength=n)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(centre)) - starts[centre]
    keep = rank < m
    nbr_idx = np.zeros((n, m), dtype=np.int64)
    nbr_dist = np.full((n, m), config.radius + 1.0, dtype=np.float32)
    nbr_idx[centre[keep], rank[keep]] = point[keep]
    nbr_dist[centre[keep], rank[keep]] = dist[keep]
    short = int((counts < m).sum())
    if short:
        log.debug(
            "%s: %d of %d atoms have fewer than %d neighbours within %.1f Å (padded)",
            structure.composition.reduced_formula,
            short,
            n,
            m,
            config.radius,
        )
    return CrystalGraph(atom_table[z].astype(np.float32), nbr_dist, nbr_idx)


def collate_graphs(
    graphs: Sequence[CrystalGraph],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack graphs into one disconnected batch graph.

    Returns:
        ``(atom_fea (N, F) float32, nbr_dist (N, M) float32, nbr_idx (N, M) int64 — indices into
        the batch, owner (N,) int64 — crystal index of each atom)``, N = total atoms.
    """
    sizes = np.array([g.n_atoms for g in graphs], dtype=np.int64)
    base = np.cumsum(sizes) - sizes
    atom_fea = np.concatenate([g.atom_fea for g in graphs])
    nbr_dist = np.concatenate([g.nbr_dist for g in graphs])
    nbr_idx = np.concatenate([g.nbr_idx + b for g, b in zip(graphs, base, strict=True)])
    owner = np.repeat(np.arange(len(graphs), dtype=np.int64), sizes)
    return (
        torch.from_numpy(atom_fea),
        torch.from_numpy(nbr_dist),
        torch.from_numpy(nbr_idx),
        torch.from_numpy(owner),
    )


def _check_run_config(path: Path, config: CGCNNConfig) -> None:
    """Compare with the training run's ``config.yaml`` beside the weights, when there is one."""
    try:
        import yaml
    except ImportError:  # optional: the check is a safeguard, not needed to run
        return
    with open(path) as f:
        run = yaml.safe_load(f) or {}
    model, data = run.get("model", {}), run.get("dataset", {})
    expected = {
        "model.atom_fea_len": (model.get("atom_fea_len"), config.atom_fea_len),
        "model.h_fea_len": (model.get("h_fea_len"), config.h_fea_len),
        "model.n_conv": (model.get("n_conv"), config.n_conv),
        "dataset.max_num_nbr": (data.get("max_num_nbr"), config.max_num_nbr),
        "dataset.radius": (data.get("radius"), config.radius),
        "dataset.dmin": (data.get("dmin"), config.dmin),
        "dataset.step": (data.get("step"), config.step),
        "loss.embed_size": (run.get("loss", {}).get("embed_size"), config.embed_dim),
    }
    bad = {k: v for k, v in expected.items() if v[0] is not None and float(v[0]) != float(v[1])}
    if bad:
        raise ValueError(f"{path} disagrees with the encoder settings (file, ours): {bad}")


def _default_dir() -> Path | None:
    root = shared_data_dir()
    return None if root is None else root / "teachers" / "crystal_twins"


class CrystalTwinsTeacher(StructureTeacher):
    """The Crystal Twins CGCNN encoder as a structure teacher (or the same net randomly initialised).

    Args:
        weights: the ``model.pth`` state dict; ``None`` looks in the shared data folder
            (``$PRETROOST_SHARED_DATA/teachers/crystal_twins/<CGCNNBarlow|CGCNNSimSiam>/model.pth``);
            ``"random"`` builds an untrained encoder (PyTorch's default init, seeded by ``seed``)
            with the variant's sizes — the control for the linear probe.
        variant: ``"barlow"`` (h = 128) or ``"simsiam"`` (h = 256).
        layer: ``"head"`` (256-d projection output, default) or ``"pooled"`` (pre-head h-d);
            see the module docstring for why.
        seed: seed of the random initialisation (``weights="random"`` only).
        atom_init: CGCNN's ``atom_init.json``; ``None`` looks beside the weights' folder, then in
            the shared data folder.
        device: torch device to run on.

    Raises:
        ValueError: unknown ``variant`` or ``layer``; a checkpoint that does not fit the encoder.
        WeightsNotFoundError: the weights or ``atom_init.json`` are not where we looked.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        variant: Variant = "barlow",
        *,
        layer: Layer = "head",
        seed: int = 0,
        atom_init: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(
                f"unknown Crystal Twins variant {variant!r}; valid: {sorted(VARIANTS)}"
            )
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; valid: {list(LAYERS)}")
        folder, h = VARIANTS[variant]
        base = CGCNNConfig(h_fea_len=h)
        self.variant, self.layer, self.device = variant, layer, torch.device(device)
        random_init = isinstance(weights, str) and weights == "random"

        if random_init:
            self.weights_path: Path | None = None
            config = base
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                encoder = CGCNNEncoder(config)
            weights_id = f"random-init-seed{seed}"
            self.name = f"cgcnn-random{seed}-{variant}-{layer}"
        else:
            path = self._resolve_weights(weights, folder)
            state = load_state_dict_file(path)
            config = config_from_state_dict(state, base)
            if (path.parent / "config.yaml").is_file():
                _check_run_config(path.parent / "config.yaml", config)
            encoder = CGCNNEncoder(config)
            encoder.load_state_dict(state, strict=True)
            self.weights_path = path
            weights_id = file_sha256(path)
            self.name = f"crystal-twins-{variant}-{layer}"

        atom_path = self._resolve_atom_init(atom_init)
        self.atom_table = load_atom_init(atom_path)
        if self.atom_table.shape[1] != config.orig_atom_fea_len:
            raise ValueError(
                f"{atom_path}: {self.atom_table.shape[1]}-d atom features, the encoder expects "
                f"{config.orig_atom_fea_len}"
            )
        self.config = config
        self.encoder = encoder.to(self.device).eval()
        self.dim = config.embed_dim if layer == "head" else config.h_fea_len
        payload = json.dumps(
            [weights_id, file_sha256(atom_path), asdict(config), layer, GRAPH_VERSION],
            sort_keys=True,
        )
        self._fingerprint = hashlib.sha256(payload.encode()).hexdigest()[:16]

    @staticmethod
    def _resolve_weights(weights: str | os.PathLike[str] | None, folder: str) -> Path:
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsNotFoundError(f"Crystal Twins weights not found: {path}")
            return path
        root = _default_dir()
        if root is None:
            raise WeightsNotFoundError(
                "Crystal Twins weights not found: no shared data folder (looked for "
                f"${SHARED_ENV} and ../shared/data). Set {SHARED_ENV} to the folder holding "
                f"teachers/crystal_twins/{folder}/model.pth, or pass weights=PATH."
            )
        path = root / folder / "model.pth"
        if not path.is_file():
            raise WeightsNotFoundError(
                f"Crystal Twins weights not found at {path}. Set {SHARED_ENV} to the folder "
                f"holding teachers/crystal_twins/{folder}/model.pth, or pass weights=PATH."
            )
        return path

    def _resolve_atom_init(self, atom_init: str | os.PathLike[str] | None) -> Path:
        if atom_init is not None:
            path = Path(atom_init).expanduser()
            if not path.is_file():
                raise WeightsNotFoundError(f"CGCNN atom features not found: {path}")
            return path
        candidates = []
        if self.weights_path is not None:
            candidates.append(self.weights_path.parent.parent / "atom_init.json")
        root = _default_dir()
        if root is not None:
            candidates.append(root / "atom_init.json")
        for c in candidates:
            if c.is_file():
                return c
        raise WeightsNotFoundError(
            f"CGCNN atom_init.json not found (looked in {[str(c) for c in candidates]}). Set "
            f"{SHARED_ENV} to the folder holding teachers/crystal_twins/atom_init.json, or pass "
            "atom_init=PATH."
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def graph(self, structure: Structure) -> CrystalGraph:
        """The CGCNN graph of one structure."""
        return build_graph(structure, self.atom_table, self.config)

    def embed(
        self, structures: Sequence[Structure], *, batch_size: int = 64, progress: bool = True
    ) -> np.ndarray:
        """Embed structures with the frozen encoder (eval mode: batch norm uses its running
        statistics, so a crystal's vector does not depend on its batch).

        Returns:
            (n, dim) float32.

        Raises:
            StructureError: a structure the encoder cannot take (its row is named).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out = np.empty((len(structures), self.dim), dtype=np.float32)
        bar = progress_bar(len(structures), self.name, progress)
        with contextlib.closing(bar), torch.inference_mode():
            for lo in range(0, len(structures), batch_size):
                chunk = structures[lo : lo + batch_size]
                graphs = []
                for i, s in enumerate(chunk):
                    try:
                        graphs.append(self.graph(s))
                    except StructureError as err:
                        raise StructureError(err.reason, row=lo + i) from None
                atom_fea, nbr_dist, nbr_idx, owner = collate_graphs(graphs)
                pooled, head = self.encoder(
                    atom_fea.to(self.device),
                    nbr_dist.to(self.device),
                    nbr_idx.to(self.device),
                    owner.to(self.device),
                    len(graphs),
                )
                vec = head if self.layer == "head" else pooled
                out[lo : lo + len(graphs)] = vec.float().cpu().numpy()
                bar.update(len(graphs))
        return out
