"""CHGNet as a structure teacher: its ``crystal_fea`` — the 64-d average of the final atom features
(after the readout layer norm; CHGNet 0.3.0 reads out energies per atom, so this average is the
crystal vector its API exposes) — is the embedding. The network and its loading (Deng et al.,
Nat. Mach. Intell. 5, 1031, 2023; weights shipped in the ``chgnet`` wheel) are
:mod:`pretroost.data.teachers.networks.chgnet`.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from pymatgen.core import Structure

from pretroost.data.structures import StructureError
from pretroost.data.teachers.base import StructureTeacher, file_sha256, progress_bar
from pretroost.data.teachers.networks.chgnet import CHGNET_CHECKPOINTS, import_chgnet, load_chgnet

__all__ = ["CHGNET_CHECKPOINTS", "CHGNetTeacher"]


class CHGNetTeacher(StructureTeacher):
    """CHGNet's 64-d ``crystal_fea`` as a structure embedding.

    Args:
        model_name: the pretrained CHGNet shipped in the wheel (only ``"0.3.0"``).
        device: torch device to run on.

    Raises:
        ImportError: ``chgnet`` is not installed (says how to install it).
        ValueError: unknown ``model_name``.
        WeightsNotFoundError: the installed wheel lacks the checkpoint.
    """

    def __init__(self, model_name: str = "0.3.0", *, device: str | torch.device = "cpu") -> None:
        model, path = load_chgnet(model_name)
        chgnet, _ = import_chgnet()
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model_name = model_name
        self.name = f"chgnet-{model_name}"
        self.dim = int(self.model.atom_embedding.embedding.embedding_dim)
        payload = f"{file_sha256(path)}|{chgnet.__version__}|crystal_fea"
        self._fingerprint = hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def embed(
        self, structures: Sequence[Structure], *, batch_size: int = 16, progress: bool = True
    ) -> np.ndarray:
        """Embed structures with CHGNet (energy-only forward pass: no forces or stresses).

        Returns:
            (n, 64) float32.

        Raises:
            StructureError: a structure CHGNet cannot take, e.g. an atom with no neighbour
                within 6 Å (its row is named).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out = np.empty((len(structures), self.dim), dtype=np.float32)
        converter = self.model.graph_converter
        bar = progress_bar(len(structures), self.name, progress)
        with contextlib.closing(bar):
            for lo in range(0, len(structures), batch_size):
                chunk = structures[lo : lo + batch_size]
                graphs = []
                for i, s in enumerate(chunk):
                    try:
                        graphs.append(converter(s, graph_id=str(lo + i)))
                    except (ValueError, RuntimeError) as exc:
                        raise StructureError(
                            f"CHGNet cannot build its graph ({exc})", row=lo + i
                        ) from None
                with torch.no_grad(), warnings.catch_warnings():
                    # chgnet converts lattice tensors that require grad; harmless here
                    warnings.filterwarnings(
                        "ignore", message="Converting a tensor with requires_grad"
                    )
                    preds = self.model.predict_graph(
                        graphs, task="e", return_crystal_feas=True, batch_size=len(graphs)
                    )
                if isinstance(preds, dict):
                    preds = [preds]
                out[lo : lo + len(graphs)] = np.stack([p["crystal_fea"] for p in preds])
                bar.update(len(graphs))
        return out
