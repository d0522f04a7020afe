"""The CHGNet network of the CHGNet structure teacher (the teacher itself — embedding, cache
fingerprint — is :mod:`pretroost.data.teachers.chgnet`).

CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031, 2023) is a universal interatomic potential trained
on the Materials Project trajectories (MPtrj). The weights (CHGNet 0.3.0) ship inside the ``chgnet``
wheel, so nothing is downloaded. We read the checkpoint ourselves with
``torch.load(weights_only=True)`` (``CHGNet.load`` unpickles it with ``weights_only=False``) and
build the model with ``CHGNet.from_dict``, the same arguments ``CHGNet.load("0.3.0")`` uses.
``chgnet`` is imported lazily so pretroost imports without it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import torch

from pretroost.errors import WeightsNotFoundError

__all__ = ["CHGNET_CHECKPOINTS", "import_chgnet", "load_chgnet"]

log = logging.getLogger(__name__)

#: model name -> checkpoint path inside the installed ``chgnet`` package
CHGNET_CHECKPOINTS: dict[str, str] = {
    "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
}


def import_chgnet() -> Any:
    """``(chgnet module, CHGNet class)``; ImportError saying how to install it."""
    try:
        import chgnet
        from chgnet.model import CHGNet
    except ImportError as exc:
        raise ImportError(
            "the CHGNet teacher needs the chgnet package: pip install 'pretroost[teachers]'"
        ) from exc
    return chgnet, CHGNet


def load_chgnet(model_name: str = "0.3.0") -> tuple[Any, Path]:
    """The pretrained CHGNet ``model_name`` shipped in the wheel (a ``chgnet.model.CHGNet``, an
    ``nn.Module``, on CPU) and the path of its checkpoint.

    Raises:
        ImportError: ``chgnet`` is not installed (says how to install it).
        ValueError: unknown ``model_name``; a file that is not a CHGNet checkpoint.
        WeightsNotFoundError: the installed wheel lacks the checkpoint.
    """
    if model_name not in CHGNET_CHECKPOINTS:
        raise ValueError(
            f"unknown CHGNet model {model_name!r}; valid: {sorted(CHGNET_CHECKPOINTS)}"
        )
    chgnet, CHGNet = import_chgnet()
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
    return model, path
