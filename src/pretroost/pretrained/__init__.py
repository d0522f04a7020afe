"""Pretrained Roost encoders and ready property models shipped inside the package, usable
offline right after install (the ready models: :mod:`pretroost.ready`, ``pretroost ready list``).

Each is a release folder ``pretrained/<name>/`` (``config.json``, ``model.safetensors``, model card
``README.md`` with the exact command that made it, and ``reference.json``: the embeddings of a few
formulas recorded when it was made, which the test suite checks). Use a name wherever a model
folder is accepted: ``pretroost.load("fingerprint-oqmd")``, ``pretroost finetune --init
fingerprint-oqmd``. ``pretroost ship RUN_DIR --name NAME`` makes one from a pretraining run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["REFERENCE_FORMULAS", "resolve", "ship", "shipped"]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
#: formulas whose embeddings are recorded with each shipped encoder (1 to 12 elements)
REFERENCE_FORMULAS = (
    "Fe2O3", "GaN", "NaCl", "Si", "LiFePO4", "CuSO4H10O5", "Ba0.5Sr0.5Co0.8Fe0.2O3",
    "Fe0.62C0.001Mn0.001Si0.001Cr0.1Ni0.19Mo0.02V0.001Nb0.001Co0.05Al0.003Ti0.02",
)  # fmt: skip
StorageDtype = Literal["fp32", "bf16", "fp16"]
DTYPES = ("fp32", "bf16", "fp16")
SHIPPED_KINDS = ("pretrained", "ready")


def shipped(kind: str | None = None) -> dict[str, Path]:
    """Name -> folder of every model shipped with this installation: the pretrained encoders
    (``kind="pretrained"``) and the ready property models (``kind="ready"``,
    :mod:`pretroost.ready`); ``None``: all."""
    if kind not in (None, *SHIPPED_KINDS):
        raise ValueError(f"unknown shipped kind {kind!r}; valid: {', '.join(SHIPPED_KINDS)}")
    out = {}
    for p in sorted(ROOT.glob("*/config.json")):
        if kind is None or json.loads(p.read_text()).get("kind") == kind:
            out[p.parent.name] = p.parent
    return out


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when it exists, else the shipped model of that name, else ``path`` (the
    caller's own error then names it, and the shipped names)."""
    p = Path(path)
    if p.exists():
        return p
    return shipped().get(str(path), p)


def ship(
    src: str | os.PathLike[str],
    name: str,
    *,
    dtype: StorageDtype = "fp32",
    command: str = "",
    pretrained_by: str = "",
    root: str | os.PathLike[str] = ROOT,
    overwrite: bool = False,
) -> Path:
    """Copy the pretrained artefact ``src`` into ``<root>/<name>/`` as a shipped encoder.

    The weights are stored as ``dtype`` (floating tensors only; loading casts them back to
    float32), the model card (written anew from ``config.json``) gains the shipping command (and
    ``pretrained_by``, the command that pretrained ``src``), and ``reference.json`` records the
    embeddings of :data:`REFERENCE_FORMULAS` computed from the *stored* weights.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from pretroost.io import register_files, remove_written
    from pretroost.predict import load
    from pretroost.pretrain import encoder_card

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid encoder name {name!r}")
    src, out = Path(src), Path(root) / name
    config = json.loads((src / "config.json").read_text())
    if config.get("kind") != "pretrained":
        raise ValueError(f"{src}: not a pretrained encoder (kind={config.get('kind')!r})")
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists: pass overwrite=True (--overwrite) to replace it")
        remove_written(out)  # only what pretroost wrote there; refused if it holds anything else
    out.mkdir(parents=True)
    cast = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    state = {
        k: (v.to(cast) if v.is_floating_point() else v).contiguous()
        for k, v in load_file(str(src / "model.safetensors")).items()
    }
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.pop("history", None)  # per-epoch log: in the run folder, not in the package
    config["shipped"] = {"name": name, "storage_dtype": dtype, "command": command,
                         "pretrained_by": pretrained_by}  # fmt: skip
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    card = encoder_card(config)  # anew: the run's own README may predate today's citations
    card += (
        f"\n## Shipped as `{name}`\n\n"
        + (f"Pretrained with:\n\n```bash\n{pretrained_by}\n```\n\n" if pretrained_by else "")
        + f"Weights stored as {dtype} "
        f"({(out / 'model.safetensors').stat().st_size / 2**20:.1f} MiB); loading casts them to "
        "float32. Made with:\n\n```bash\n" + (command or "(python API)") + "\n```\n\n"
        "{deviation}"
        f'Use it: `pretroost.load("{name}")`, `pretroost finetune --init {name} [--init-trunk]`.\n'
    )
    embedding = load(out).embed(list(REFERENCE_FORMULAS), errors="raise")
    original = load(src).embed(list(REFERENCE_FORMULAS), errors="raise")
    deviation = float(np.abs(embedding - original).max() / np.abs(original).max())
    reference = {"formulas": list(REFERENCE_FORMULAS), "embedding": embedding.tolist(),
                 "max_deviation_vs_fp32_weights": deviation, "torch": torch.__version__}  # fmt: skip
    (out / "reference.json").write_text(json.dumps(reference) + "\n")
    note = (
        f"Embeddings of the {len(REFERENCE_FORMULAS)} reference formulas (`reference.json`) differ "
        f"from those of the float32 weights by at most {deviation:.2g} of their largest value.\n\n"
    )
    (out / "README.md").write_text(card.replace("{deviation}", note))
    register_files(out, ["model.safetensors", "config.json", "reference.json", "README.md"])
    log.info("shipped %s as %s (%s)", src, out, dtype)
    return out
