"""CHGNet as a structure teacher.

CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031, 2023) is a universal interatomic potential trained
on the Materials Project trajectories (MPtrj). Its ``crystal_fea`` — the 64-d average of the final
atom features (after the readout layer norm; CHGNet 0.3.0 reads out energies per atom, so this
average is the crystal vector its API exposes) — is the embedding here.

The weights (CHGNet 0.3.0) ship inside the ``chgnet`` wheel, so nothing is downloaded. We read the
checkpoint ourselves with ``torch.load(weights_only=True)`` (``CHGNet.load`` unpickles it with
``weights_only=False``) and build the model with ``CHGNet.from_dict``, the same arguments
``CHGNet.load("0.3.0")`` uses. ``chgnet`` is imported lazily so pretroost imports without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pymatgen.core import Structure

from pretroost.data.structures import StructureError
from pretroost.data.teachers.base import (
    StructureTeacher,
    WeightsNotFoundError,
    file_sha256,
    progress_bar,
)

__all__ = ["CHGNET_CHECKPOINTS", "CHGNetTeacher"]

log = logging.getLogger(__name__)

#: model name -> checkpoint path inside the installed ``chgnet`` package
CHGNET_CHECKPOINTS: dict[str, str] = {
    "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
}


def _import_chgnet() -> Any:
    try:
        import chgnet
        from chgnet.model import CHGNet
    except ImportError as exc:
        raise ImportError(
            "the CHGNet teacher needs the chgnet package: pip install 'pretroost[teachers]'"
        ) from exc
    return chgnet, CHGNet


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
        if model_name not in CHGNET_CHECKPOINTS:
            raise ValueError(
                f"unknown CHGNet model {model_name!r}; valid: {sorted(CHGNET_CHECKPOINTS)}"
            )
        chgnet, CHGNet = _import_chgnet()
        path = Path(chgnet.__file__).parent / CHGNET_CHECKPOINTS[model_name]
        if not path.is_file():
            raise WeightsNotFoundError(
                f"CHGNet {model_name} weights not found at {path} (they ship in the chgnet wheel: "
                "reinstall with pip install --force-reinstall 'pretroost[teachers]')"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not (isinstance(state, dict) and isinstance(state.get("model"), dict)):
            raise ValueError(f"{path}: not a CHGNet checkpoint (no 'model' entry)")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # CHGNet.__init__ prints its size
            model = CHGNet.from_dict(state["model"], mlp_out_bias=False, version=model_name)
        if printed.getvalue().strip():
            log.debug("%s", printed.getvalue().strip())
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
