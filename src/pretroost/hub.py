"""Loading any model folder by its kind, Hugging Face's auto classes style.

``config.json``'s ``"kind"`` picks the loader in :data:`LOADERS` (kind -> ``"module:attr"``),
imported only when a folder of that kind is loaded: this module imports none of the product
modules it serves, so they may import it (a hurdle loads its parts through :func:`load`). Names of
shipped encoders are resolved here, once (:func:`pretroost.pretrained.resolve`), never in the
readers below.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from pretroost.artefacts import read_config
from pretroost.errors import ArtefactError
from pretroost.pretrained import resolve
from pretroost.protocols import ModelPredictor

__all__ = ["LOADERS", "from_pretrained", "load", "loader"]

log = logging.getLogger(__name__)

#: kind (``config.json``'s ``"kind"``) -> ``"module:attr"`` of a callable(folder) -> predictor
LOADERS: dict[str, str] = {
    "finetuned": "pretroost.predict:Predictor.load",
    "ensemble": "pretroost.predict:Predictor.load",
    "pretrained": "pretroost.predict:Predictor.load",
    "trees": "pretroost.trees:TreesPredictor.load",
    "hurdle": "pretroost.hurdle:HurdlePredictor.load",
    "blend": "pretroost.blend:BlendPredictor.load",
    "ready": "pretroost.ready:ReadyPredictor.load",
}


def loader(kind: Any) -> Any:
    """The loader of ``kind`` (imported now); ValueError listing the kinds for an unknown one."""
    spec = LOADERS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise ArtefactError(f"unknown artefact kind {kind!r}; valid: {', '.join(LOADERS)}")
    module, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load(path: str | os.PathLike[str]) -> ModelPredictor:
    """Load a model folder (finetuned model, ensemble, pretrained encoder, trees model, hurdle, blend) or a
    shipped encoder by name as a predictor (:class:`~pretroost.predict.Predictor`,
    :class:`~pretroost.trees.TreesPredictor`, :class:`~pretroost.hurdle.HurdlePredictor` or
    :class:`~pretroost.blend.BlendPredictor`).
    Raises :class:`~pretroost.errors.ArtefactError` (a ``ValueError``) for a folder that is not
    one of these."""
    root = resolve(path)
    if root.is_dir() and not (root / "config.json").exists():
        inner = sorted(p.parent.name for p in root.glob("*/config.json"))
        if inner:
            raise ArtefactError(
                f"{root}: not a model folder, but it holds model folders ({', '.join(inner[:5])}"
                f"{', ...' if len(inner) > 5 else ''}): load one of them"
            )
    if not root.is_dir():
        raise ArtefactError(f"{root}: not a model folder (expected config.json)")
    kind = read_config(root).get("kind")
    model: ModelPredictor = loader(kind)(root)
    log.debug("loaded %s model from %s", kind, root)
    return model


from_pretrained = load
