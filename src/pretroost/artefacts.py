"""Release artefacts, Hugging Face style: a folder with ``config.json``, ``model.safetensors`` (no
pickle, ever), ``normaliser.json`` where there is a target scale, and a ``README.md`` model card.
(The tree reference models of :mod:`pretroost.trees` keep their scikit-learn estimator in
``model.skops`` instead, skops' pickle-free format, in a folder written the same way.)

Folders are written to a temporary sibling and renamed into place, so a crash never leaves half an
artefact; loading checks the format version and that every file is present and readable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from pretroost.errors import ArtefactError

__all__ = [
    "FORMAT_VERSION",
    "ArtefactError",
    "load_artefact",
    "load_encoder_weights",
    "read_config",
    "save_artefact",
    "write_folder",
]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass
class Artefact:
    """A loaded model folder: its ``config.json`` dict, tensors, and the folder."""

    config: dict[str, Any]
    state_dict: dict[str, Tensor]
    path: Path


def write_folder(
    out: str | os.PathLike[str],
    config: dict[str, Any],
    *,
    card: str,
    fill: Callable[[Path], None],
    extra_files: dict[str, str] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a release folder atomically: ``fill(folder)`` writes the weights, then
    ``config.json`` (``config`` with ``format_version`` added), ``README.md`` (``card``) and
    ``extra_files`` (name -> text) are added; the folder replaces ``out`` (if ``overwrite``) only
    once complete."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        full = {"format_version": FORMAT_VERSION, **config}
        (tmp / "config.json").write_text(json.dumps(full, indent=2) + "\n")
        (tmp / "README.md").write_text(card)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
        for f in tmp.iterdir():
            f.chmod(0o666 & ~umask)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s", out)
    return out


def save_artefact(
    out: str | os.PathLike[str],
    module: nn.Module,
    config: dict[str, Any],
    *,
    card: str,
    extra_files: dict[str, str] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``module``'s weights and ``config`` as a release folder, atomically.

    Args:
        out: destination folder (replaced if it exists and ``overwrite``).
        module: its ``state_dict`` goes to ``model.safetensors`` (tensors made contiguous).
        config: JSON-serialisable; ``format_version`` is added.
        card: the model card text (``README.md``).
        extra_files: more text files (name -> content), e.g. ``normaliser.json``.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}

    def fill(folder: Path) -> None:
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})

    return write_folder(
        out, config, card=card, fill=fill, extra_files=extra_files, overwrite=overwrite
    )


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A release folder's ``config.json``, its ``format_version`` checked;
    :class:`ArtefactError` if missing, not JSON or newer than this pretroost."""
    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        raise ArtefactError(f"{path}: config.json is missing")
    try:
        config = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise ArtefactError(f"{cfg_file}: not valid JSON ({exc})") from None
    version = config.get("format_version")
    if not isinstance(version, int):
        raise ArtefactError(f"{cfg_file}: no integer format_version")
    if version > FORMAT_VERSION:
        raise ArtefactError(
            f"{cfg_file}: format_version {version} is newer than this pretroost understands "
            f"({FORMAT_VERSION}); upgrade pretroost"
        )
    return config


def load_artefact(path: str | os.PathLike[str]) -> Artefact:
    """Read a release folder; :class:`ArtefactError` says what is wrong with a bad one. A low-level
    reader: it takes a folder, never a shipped name (callers resolve names first with
    :func:`pretroost.pretrained.resolve`)."""
    path = Path(path)
    if not path.is_dir():
        raise ArtefactError(
            f"{path}: not a model folder (expected config.json + model.safetensors)"
        )
    config, weights = read_config(path), path / "model.safetensors"
    if not weights.is_file():
        raise ArtefactError(f"{path}: model.safetensors is missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtefactError(f"{weights}: unreadable or truncated ({exc})") from None
    return Artefact(config=config, state_dict=state, path=path)


def load_encoder_weights(
    model: nn.Module,
    state: dict[str, Tensor],
    *,
    prefixes: tuple[str, ...] = ("encoder.",),
    allow_partial: bool = False,
    source: str | os.PathLike[str] | None = None,
) -> dict[str, list[str]]:
    """Copy the tensors under ``prefixes`` from a pretrained ``state`` into ``model``.

    Shape mismatches are refused (:class:`ArtefactError`). So is a partial load: ``missing`` keys
    (model keys under the prefixes that the state lacks) or ``unexpected`` keys (state keys under
    the prefixes the model lacks) raise :class:`ArtefactError` naming them, unless
    ``allow_partial`` (then they are logged as warnings, missing tensors keep their initial
    values). A pretrained model that silently trains as scratch would be a wrong experiment.

    Returns:
        ``{"missing": [...], "unexpected": [...]}`` (empty lists for a complete load).
    """
    where = f"{source}: " if source is not None else ""
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k.startswith(prefixes)}
    wanted = {k for k in own if k.startswith(prefixes)}
    missing = sorted(wanted - take.keys())
    unexpected = sorted(take.keys() - wanted)
    bad = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in take.items()
        if k in own and v.shape != own[k].shape
    ]
    if bad:
        raise ArtefactError(f"{where}pretrained weights do not fit this model: " + "; ".join(bad))
    if (missing or unexpected) and not allow_partial:
        parts = [f"missing keys {missing}"] if missing else []
        parts += [f"unexpected keys {unexpected}"] if unexpected else []
        raise ArtefactError(
            f"{where}the pretrained weights ({', '.join(prefixes)}) do not load completely: "
            f"{'; '.join(parts)}. Pass --allow-partial (FinetuneConfig.allow_partial) to load "
            "them anyway, leaving missing tensors at their initial values"
        )
    with torch.no_grad():
        for k, v in take.items():
            if k in own:
                own[k].copy_(v)
    if missing:
        log.warning("%smissing keys (left at their initial values): %s", where, missing)
    if unexpected:
        log.warning("%sunexpected keys (ignored): %s", where, unexpected)
    log.info("loaded %d pretrained tensors (%s)", len(take) - len(unexpected), ", ".join(prefixes))
    return {"missing": missing, "unexpected": unexpected}
