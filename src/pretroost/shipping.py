"""Shipping a pretrained encoder inside the package (``pretroost ship``): the folder under
``pretrained/<name>/`` that :func:`pretroost.pretrained.resolve` then finds by name."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pretroost.artefacts import register_files, remove_written
from pretroost.hub import load
from pretroost.pretrain import encoder_card
from pretroost.pretrained import REFERENCE_FORMULAS, ROOT

__all__ = ["DTYPES", "StorageDtype", "ship"]

log = logging.getLogger(__name__)

StorageDtype = Literal["fp32", "bf16", "fp16"]
DTYPES = ("fp32", "bf16", "fp16")


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
