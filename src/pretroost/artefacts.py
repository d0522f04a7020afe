"""Release artefacts, Hugging Face style: a folder with ``config.json``, ``model.safetensors`` (no
pickle, ever), ``normaliser.json`` where there is a target scale, and a ``README.md`` model card.
(The tree reference models of :mod:`pretroost.trees` keep their scikit-learn estimator in
``model.skops`` instead, skops' pickle-free format, in a folder written the same way.)

Folders are written to a temporary sibling and renamed into place, so a crash never leaves half an
artefact; loading checks the format version and that every file is present and readable.

Every folder pretroost writes carries a manifest, ``.pretroost-manifest.json``, listing the files
it wrote there (paths relative to the folder, subfolders' files included). Replacing a folder
(``overwrite``) removes only those files, and is refused, naming them, when the folder holds
anything else: a training CSV or any other file of yours in an ``--out`` folder survives. A folder
written before manifests existed is replaced only when it is recognisably a pretroost artefact
(``config.json`` with a ``format_version``, or ``fold_<i>/`` artefacts and ``metrics.json``, and
otherwise only :data:`LEGACY_FILES`). The current directory, the filesystem root and any folder
above the current directory are never output folders (:func:`check_out_path`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
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
    "LEGACY_FILES",
    "MANIFEST",
    "ArtefactError",
    "check_out_path",
    "check_replaceable",
    "load_artefact",
    "load_encoder_weights",
    "load_skops",
    "read_config",
    "register_files",
    "remove_written",
    "save_artefact",
    "write_folder",
]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
#: the list of files pretroost wrote into a folder (JSON: ``{"files": [relative paths]}``)
MANIFEST = ".pretroost-manifest.json"
#: the files a pretroost folder written before manifests may hold (besides the subfolders of
#: :data:`LEGACY_SUBFOLDERS`); a folder without a manifest holding anything else is not replaced
LEGACY_FILES = frozenset(
    {"config.json", "model.safetensors", "README.md", "normaliser.json", "metrics.json",
     "model.skops", "reference.json"}
)  # fmt: skip
#: subfolders of such a folder: a hurdle's two models
LEGACY_SUBFOLDERS = frozenset({"regressor", "zero_classifier"})
#: how many foreign files an error names before it gives a count
_NAMED = 10


@dataclass
class Artefact:
    """A loaded model folder: its ``config.json`` dict, tensors, and the folder."""

    config: dict[str, Any]
    state_dict: dict[str, Tensor]
    path: Path


def check_out_path(out: str | os.PathLike[str]) -> Path:
    """``out`` as a Path, refused (ValueError) where no output folder may be: a path with an empty
    name (``.``, ``..``, ``/``), the current directory or any folder above it."""
    out = Path(out)
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if not out.name or out.name in (".", "..") or resolved == cwd or resolved in cwd.parents:
        raise ValueError(
            f"{str(out)!r} is the current directory or a folder above it: an output folder (--out) "
            "must name a new or pretroost-written folder, e.g. models/gap"
        )
    return out


def _read_manifest(folder: Path) -> set[str] | None:
    """The files of ``folder``'s manifest (None without one; a manifest that cannot be read
    protects nothing: ArtefactError)."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        if not all(isinstance(f, str) for f in files):
            raise TypeError("not a list of paths")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtefactError(f"{path}: not a pretroost manifest ({exc})") from None
    return set(files)


def _is_versioned(config: Path) -> bool:
    try:
        return config.is_file() and isinstance(
            json.loads(config.read_text()).get("format_version"), int
        )
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return False


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """Relative paths of ``folder``'s files (symbolic links included, never followed) and
    subfolders."""
    files: list[str] = []
    dirs: list[str] = []
    for root, subdirs, names in os.walk(folder):
        here = Path(root).relative_to(folder)
        for d in list(subdirs):
            if (Path(root) / d).is_symlink():  # a link is a file to us: never entered
                subdirs.remove(d)
                names.append(d)
            else:
                dirs.append((here / d).as_posix())
        files += [(here / n).as_posix() for n in names]
    return sorted(files), sorted(dirs)


def _classify(folder: Path) -> tuple[list[str], list[str]]:
    """``(ours, foreign)``: the files of ``folder`` that pretroost wrote (its manifest's, or a
    pre-manifest artefact's known files) and every other entry (``name/`` for a folder whose
    contents are all foreign)."""
    listed = _read_manifest(folder)
    if listed is not None:
        listed.add(MANIFEST)
        files, dirs = _walk(folder)
        ours = [f for f in files if f in listed and not (folder / f).is_symlink()]
        foreign = [f for f in files if f not in set(ours)]
        parents = {p.as_posix() for f in listed for p in Path(f).parents}
        foreign += [f"{d}/" for d in dirs if d not in parents]
        return ours, _outermost(foreign)
    if _is_versioned(folder / "config.json"):
        subfolders: Any = LEGACY_SUBFOLDERS.__contains__
    elif (folder / "metrics.json").is_file() and any(folder.glob("fold_*")):
        subfolders = re.compile(r"fold_\d+").fullmatch  # k-fold: one artefact per fold
    else:
        _, foreign = _walk_top(folder)
        return [], foreign
    ours, foreign = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            foreign.append(entry.name)
        elif entry.is_file() and entry.name in LEGACY_FILES:
            ours.append(entry.name)
        elif entry.is_dir() and subfolders(entry.name) and _is_versioned(entry / "config.json"):
            sub_ours, sub_foreign = _classify(entry)
            ours += [f"{entry.name}/{f}" for f in sub_ours]
            foreign += [f"{entry.name}/{f}" for f in sub_foreign]
        else:
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return ours, foreign


def _walk_top(folder: Path) -> tuple[list[str], list[str]]:
    return [], sorted(e.name + ("/" if e.is_dir() and not e.is_symlink() else "")
                      for e in folder.iterdir())  # fmt: skip


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without those inside a foreign folder already listed (``a/`` hides ``a/b``)."""
    folders = [p for p in paths if p.endswith("/")]
    return sorted(p for p in paths if not any(p != f and p.startswith(f) for f in folders))


def check_replaceable(folder: str | os.PathLike[str]) -> None:
    """Refuse (FileExistsError, naming them) to replace ``folder`` if it holds anything that
    pretroost did not write there: no manifest entry, or, in a folder written before manifests,
    anything but a recognisable pretroost artefact."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir() or folder.is_symlink():
        raise FileExistsError(f"{folder} exists and is not a folder: choose another output folder")
    _, foreign = _classify(folder)
    if foreign:
        named = ", ".join(foreign[:_NAMED])
        more = f" and {len(foreign) - _NAMED} more" if len(foreign) > _NAMED else ""
        raise FileExistsError(
            f"{folder} holds files pretroost did not write there ({named}{more}); refusing to "
            "replace it: move them away or choose another output folder"
        )


def remove_written(folder: str | os.PathLike[str]) -> None:
    """Delete the files pretroost wrote in ``folder`` (:func:`check_replaceable` first: refused if
    it holds anything else) and the folders they leave empty, ``folder`` included."""
    check_replaceable(folder)
    _remove_ours(Path(folder))


def _remove_ours(folder: Path) -> None:
    """Delete ``folder``'s files that pretroost wrote and the folders left empty; anything
    else stays (with the folders holding it)."""
    ours, _ = _classify(folder)
    for rel in ours:
        if rel != MANIFEST:
            (folder / rel).unlink()
    (folder / MANIFEST).unlink(missing_ok=True)  # last: an interrupted removal stays recognisable
    for d in sorted(_walk(folder)[1], key=lambda d: d.count("/"), reverse=True):
        with contextlib.suppress(OSError):  # not empty: it holds something not ours
            (folder / d).rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def register_files(folder: str | os.PathLike[str], names: list[str]) -> None:
    """Add ``names`` (files or subfolders of ``folder``; a subfolder adds every file in it) to
    ``folder``'s manifest, which is created if missing: for outputs written piece by piece (a
    k-fold run's ``fold_<i>/`` models and ``metrics.json``)."""
    folder = Path(folder)
    listed = _read_manifest(folder) or set()
    for name in names:
        path = folder / name
        if path.is_dir():
            listed |= {f"{name}/{f}" for f in _walk(path)[0]}
        elif path.is_file():
            listed.add(name)
        else:
            raise FileNotFoundError(f"{path}: nothing to register")
    _write_manifest(folder, listed)


def _write_manifest(folder: Path, files: set[str]) -> None:
    text = json.dumps({"written_by": "pretroost", "files": sorted(files - {MANIFEST})}, indent=1)
    tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(text + "\n")
    os.replace(tmp, folder / MANIFEST)


def write_folder(
    out: str | os.PathLike[str],
    config: dict[str, Any] | None = None,
    *,
    card: str | None = None,
    fill: Callable[[Path], None],
    extra_files: dict[str, str] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a release folder atomically: ``fill(folder)`` writes the weights, then
    ``config.json`` (``config`` with ``format_version`` added), ``README.md`` (``card``) and
    ``extra_files`` (name -> text) are added (``config`` and ``card`` only where given: a results
    folder writes its own files in ``fill``), and the manifest of every file written; the folder
    replaces ``out`` (if ``overwrite``) only once complete. ``out`` may be replaced only if it
    holds nothing that pretroost did not write (:func:`check_replaceable`, checked before
    ``fill`` runs); the old folder's files are then removed one by one, never the folder
    wholesale."""
    out = check_out_path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists")
        check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        if config is not None:
            full = {"format_version": FORMAT_VERSION, **config}
            (tmp / "config.json").write_text(json.dumps(full, indent=2) + "\n")
        if card is not None:
            (tmp / "README.md").write_text(card)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        _write_manifest(tmp, set(_walk(tmp)[0]))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
        for f in tmp.iterdir():
            if f.is_file():
                f.chmod(0o666 & ~umask)
        if out.exists():
            check_replaceable(out)  # again: it may have changed while ``fill`` ran
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
            os.replace(tmp, out)
            _remove_ours(old)
            if old.exists():
                log.warning("%s: kept, it holds files pretroost did not write", old)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():  # our own temporary folder: nothing else was ever in it
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


#: what a skops file may be rebuilt from: scikit-learn's and numpy's own types only
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.")


def load_skops(file: str | os.PathLike[str]) -> Any:
    """The object in a skops file (``skops.io``: arrays and JSON, no pickle), rebuilt only from
    scikit-learn and numpy types (:data:`SKOPS_TRUSTED_PREFIXES`): a file naming any other type,
    missing or unreadable, is refused (:class:`ArtefactError`), so loading never runs code from
    the file."""
    import skops.io

    file = Path(file)
    if not file.is_file():
        raise ArtefactError(f"{file} is missing")
    try:
        types = skops.io.get_untrusted_types(file=file)
    except Exception as exc:  # a zip that skops cannot read: say so, whatever its error type
        raise ArtefactError(f"{file}: unreadable ({exc})") from None
    foreign = [t for t in types if not t.startswith(SKOPS_TRUSTED_PREFIXES)]
    if foreign:
        raise ArtefactError(f"{file}: refers to types outside scikit-learn/numpy: {foreign}")
    return skops.io.load(file, trusted=types)


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
