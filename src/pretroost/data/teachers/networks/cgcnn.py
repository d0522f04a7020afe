"""The CGCNN network of the Crystal Twins structure teacher (the data side — crystal graphs, the
teacher, its cache — is :mod:`pretroost.data.teachers.cgcnn`).

CGCNN (Xie & Grossman, Phys. Rev. Lett. 120, 145301, 2018) turns a crystal into a graph whose nodes
are the atoms of the unit cell and whose edges join each atom to its ``M`` nearest neighbours
(periodic images included) within a cutoff radius; edges carry the distance expanded on Gaussians.
Gated convolutions (their Eq. 5) update the atom vectors, and their mean is the crystal vector.

Crystal Twins (Magar, Wang & Barati Farimani, npj Comput. Mater. 8, 231, 2022) pretrained this
encoder self-supervised with a Barlow Twins or a SimSiam loss. The module and parameter names below
are laid out so that their ``model.pth`` files load with ``load_state_dict(strict=True)``:

``embedding`` (92 -> 64), ``convs.{0,1,2}.{fc_full, bn1, bn2}``, ``conv_to_fc`` (64 -> h) and the
projection head ``fc_head`` = Linear(h, h), Softplus, Linear(h, 256); h = 128 (Barlow) or 256
(SimSiam).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["CGCNNConfig", "CGCNNConv", "CGCNNEncoder", "config_from_state_dict"]


@dataclass(frozen=True)
class CGCNNConfig:
    """Sizes of the encoder and of its crystal graphs (defaults: Crystal Twins Barlow).

    Attributes:
        orig_atom_fea_len: length of the per-element input vectors (``atom_init.json``: 92).
        atom_fea_len: atom vector width inside the convolutions.
        n_conv: number of gated graph convolutions.
        h_fea_len: width of the pooled crystal vector after ``conv_to_fc``.
        embed_dim: width of the projection head's output.
        radius: neighbour cutoff (Å).
        max_num_nbr: neighbours kept per atom (M).
        dmin: first Gaussian centre (Å).
        step: spacing of the Gaussian centres (Å).
        var: Gaussian width (Å); ``None`` means ``step``, as in CGCNN.
    """

    orig_atom_fea_len: int = 92
    atom_fea_len: int = 64
    n_conv: int = 3
    h_fea_len: int = 128
    embed_dim: int = 256
    radius: float = 8.0
    max_num_nbr: int = 12
    dmin: float = 0.0
    step: float = 0.2
    var: float | None = None

    @property
    def centres(self) -> np.ndarray:
        """(K,) Gaussian centres dmin, dmin + step, ..., radius (K = 41 by default)."""
        n = round((self.radius - self.dmin) / self.step) + 1
        return self.dmin + self.step * np.arange(n, dtype=np.float64)

    @property
    def nbr_fea_len(self) -> int:
        return len(self.centres)

    @property
    def width(self) -> float:
        return self.step if self.var is None else self.var


class CGCNNConv(nn.Module):
    """CGCNN's gated graph convolution (Xie & Grossman 2018, Eq. 5), with batch norm.

    For atom i and its neighbours j (edge feature u_ij), z_ij = [v_i, v_j, u_ij] and
    v_i <- softplus(v_i + BN(sum_j sigmoid(z_ij W_f + b_f) * softplus(z_ij W_s + b_s))),
    where ``fc_full`` holds [W_f | W_s] and ``bn1`` normalises z W before the gate.
    """

    def __init__(self, atom_fea_len: int, nbr_fea_len: int) -> None:
        super().__init__()
        self.atom_fea_len = atom_fea_len
        self.fc_full = nn.Linear(2 * atom_fea_len + nbr_fea_len, 2 * atom_fea_len)
        self.bn1 = nn.BatchNorm1d(2 * atom_fea_len)
        self.bn2 = nn.BatchNorm1d(atom_fea_len)

    def forward(
        self, atom: torch.Tensor, nbr_fea: torch.Tensor, nbr_idx: torch.Tensor
    ) -> torch.Tensor:
        """atom (N, A), nbr_fea (N, M, K), nbr_idx (N, M) -> (N, A)."""
        n, m = nbr_idx.shape
        a = self.atom_fea_len
        z = torch.cat([atom.unsqueeze(1).expand(n, m, a), atom[nbr_idx], nbr_fea], dim=2)
        gated = self.bn1(self.fc_full(z).reshape(n * m, 2 * a)).reshape(n, m, 2 * a)
        gate, core = gated.chunk(2, dim=2)
        message = (torch.sigmoid(gate) * nn.functional.softplus(core)).sum(dim=1)
        return nn.functional.softplus(atom + self.bn2(message))


class CGCNNEncoder(nn.Module):
    """CGCNN encoder with the Crystal Twins projection head (parameter names match their files)."""

    centres: torch.Tensor  # (K,) Gaussian centres, a non-persistent buffer

    def __init__(self, config: CGCNNConfig = CGCNNConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Linear(c.orig_atom_fea_len, c.atom_fea_len)
        self.convs = nn.ModuleList(
            [CGCNNConv(c.atom_fea_len, c.nbr_fea_len) for _ in range(c.n_conv)]
        )
        self.conv_to_fc = nn.Linear(c.atom_fea_len, c.h_fea_len)
        self.fc_head = nn.Sequential(
            nn.Linear(c.h_fea_len, c.h_fea_len), nn.Softplus(), nn.Linear(c.h_fea_len, c.embed_dim)
        )
        centres = torch.as_tensor(c.centres, dtype=torch.float32)
        self.register_buffer("centres", centres, persistent=False)  # not in the state dict

    def expand_distances(self, dist: torch.Tensor) -> torch.Tensor:
        """(N, M) distances -> (N, M, K) Gaussian features exp(-(d - mu_k)^2 / var^2)."""
        return torch.exp(-((dist.unsqueeze(-1) - self.centres) ** 2) / self.config.width**2)

    def forward(
        self,
        atom_fea: torch.Tensor,
        nbr_dist: torch.Tensor,
        nbr_idx: torch.Tensor,
        owner: torch.Tensor,
        n_crystals: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of crystals.

        Args:
            atom_fea: (N, orig_atom_fea_len) atom input features.
            nbr_dist: (N, M) neighbour distances (Å).
            nbr_idx: (N, M) neighbour indices into the batch.
            owner: (N,) crystal index of each atom, in [0, n_crystals).
            n_crystals: B.

        Returns:
            ``(pooled (B, h_fea_len), head (B, embed_dim))``.
        """
        nbr_fea = self.expand_distances(nbr_dist)
        atom = self.embedding(atom_fea)
        for conv in self.convs:
            atom = conv(atom, nbr_fea, nbr_idx)
        sums = atom.new_zeros(n_crystals, atom.shape[1]).index_add_(0, owner, atom)
        counts = torch.bincount(owner, minlength=n_crystals).clamp_min(1).to(atom.dtype)
        mean = sums / counts.unsqueeze(1)
        pooled = nn.functional.softplus(self.conv_to_fc(nn.functional.softplus(mean)))
        return pooled, self.fc_head(pooled)


def config_from_state_dict(state: dict[str, torch.Tensor], base: CGCNNConfig) -> CGCNNConfig:
    """Read the layer sizes off a checkpoint (graph settings stay those of ``base``).

    Raises:
        ValueError: the checkpoint is not a CGCNN with a projection head, or its edge-feature
            width does not match ``base``'s Gaussian expansion.
    """
    need = ["embedding.weight", "conv_to_fc.weight", "fc_head.0.weight", "fc_head.2.weight"]
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"not a Crystal Twins CGCNN checkpoint: missing {missing}")
    atom_fea_len, orig = state["embedding.weight"].shape
    n_conv = len({k.split(".")[1] for k in state if k.startswith("convs.")})
    full_in = state["convs.0.fc_full.weight"].shape[1]
    nbr_fea_len = full_in - 2 * atom_fea_len
    if nbr_fea_len != base.nbr_fea_len:
        raise ValueError(
            f"checkpoint edge features are {nbr_fea_len}-d but the Gaussian expansion "
            f"(dmin {base.dmin}, step {base.step}, radius {base.radius}) gives {base.nbr_fea_len}"
        )
    return CGCNNConfig(
        orig_atom_fea_len=int(orig),
        atom_fea_len=int(atom_fea_len),
        n_conv=n_conv,
        h_fea_len=int(state["conv_to_fc.weight"].shape[0]),
        embed_dim=int(state["fc_head.2.weight"].shape[0]),
        radius=base.radius,
        max_num_nbr=base.max_num_nbr,
        dmin=base.dmin,
        step=base.step,
        var=base.var,
    )
