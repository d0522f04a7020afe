"""The models the page offers: shipped property models and folders named on the command line.

Each model loads on first use and is then shared by every request (:meth:`ModelRegistry.get` is
safe to call from many threads: one load per model, however many requests ask at once). Shipped
folders whose config says they are encoders without a property head (``"kind": "pretrained"``)
are not offered; a folder named on the command line is loaded at once, and refused if it cannot
predict.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pretroost
import pretroost.pretrained

__all__ = ["ModelEntry", "ModelRegistry", "UnknownModelError", "card_title"]

log = logging.getLogger(__name__)

#: config kinds of folders that hold an encoder only: they embed, they do not predict
ENCODER_KINDS = ("pretrained",)


class UnknownModelError(ValueError):
    """A model name the page does not offer; the message lists those it does."""


@dataclass(frozen=True)
class ModelEntry:
    """One model on offer: its name in the chooser, what :func:`pretroost.load` is given, the
    first heading of its model card (``README.md``) and the unit of its target (``config.json``'s
    ``"unit"``), each '' where the folder has none."""

    name: str
    source: str
    title: str
    unit: str = ""

    @classmethod
    def of_folder(cls, name: str, source: str, folder: Path) -> ModelEntry:
        unit = _config(folder).get("unit")
        return cls(name, source, card_title(folder), unit if isinstance(unit, str) else "")


def card_title(folder: Path) -> str:
    """The first ``# `` heading of ``folder/README.md`` ('' if none)."""
    card = folder / "README.md"
    if card.is_file():
        for line in card.read_text(errors="replace").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return ""


def _config(folder: Path) -> dict[str, Any]:
    """``folder/config.json`` ({} where it is missing or not a JSON object)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _check_predicts(predictor: Any, source: str) -> Any:
    if getattr(predictor, "task_type", None) is None:
        raise ValueError(
            f"{source}: an encoder without a property head predicts nothing; serve a finetuned "
            "model, an ensemble, a trees or a hurdle model folder"
        )
    return predictor


class ModelRegistry:
    """Name -> model, loaded once on first use (thread-safe) and shared.

    Args:
        entries: the models on offer, the default first.
        loader: what loads a model from an entry's ``source`` (:func:`pretroost.load`).
        loaded: models already loaded, by name.
    """

    def __init__(
        self,
        entries: Sequence[ModelEntry],
        *,
        loader: Callable[[str], Any] | None = None,
        loaded: dict[str, Any] | None = None,
    ):
        if not entries:
            raise ValueError(
                "no model can predict: pass a model folder with --model (a finetuned model, "
                "an ensemble, a trees or a hurdle model)"
            )
        self._entries = {e.name: e for e in entries}
        self._loader = loader if loader is not None else pretroost.load
        self._loaded: dict[str, Any] = dict(loaded or {})
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was loaded (once per model)

    @classmethod
    def from_sources(
        cls,
        models: Sequence[str] = (),
        *,
        shipped: bool = True,
        loader: Callable[[str], Any] | None = None,
    ) -> ModelRegistry:
        """The models named on the command line (shipped names or folders, loaded now, in
        order, the first being the default), then (``shipped``) every other shipped model that
        predicts."""
        load = loader if loader is not None else pretroost.load
        ready = pretroost.pretrained.shipped()
        entries: list[ModelEntry] = []
        loaded: dict[str, Any] = {}
        names: set[str] = set()
        for source in models:
            folder = Path(source)
            if source in ready and not folder.exists():
                name, folder = source, ready[source]
            else:
                if not folder.is_dir():
                    raise FileNotFoundError(
                        f"{source}: no such model folder; shipped models: "
                        + (", ".join(ready) or "(none)")
                    )
                name = folder.resolve().name
                if name in names or name in ready:
                    name = str(folder)
            if name in names:
                continue
            loaded[name] = _check_predicts(load(str(folder)), source)
            entries.append(ModelEntry.of_folder(name, str(folder), folder))
            names.add(name)
        for name, folder in ready.items() if shipped else ():
            if name in names:
                continue
            if _config(folder).get("kind") in ENCODER_KINDS:
                log.debug("%s: an encoder without a property head, not offered", name)
                continue
            entries.append(ModelEntry.of_folder(name, name, folder))
            names.add(name)
        return cls(entries, loader=load, loaded=loaded)

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    @property
    def default(self) -> str:
        return next(iter(self._entries))

    def entry(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModelError(
                f"unknown model {name!r}; valid: {', '.join(self._entries)}"
            ) from None

    def get(self, name: str) -> Any:
        """The model called ``name``, loading it on first use (one load, whatever the threads)."""
        entry = self.entry(name)
        with self._lock:
            model = self._loaded.get(name)
            if model is not None:
                return model
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            with self._lock:
                model = self._loaded.get(name)
            if model is None:
                log.info("loading model %s (%s)", name, entry.source)
                model = _check_predicts(self._loader(entry.source), entry.source)
                with self._lock:
                    self._loaded[name] = model
                    self.loads += 1
            return model
