"""A saved blend: the mean of two or more models' predictions, as one model folder.

The folder holds ``config.json`` (``"kind": "blend"``, ``n_members``), a model card and each
member's own folder under the fixed names ``member_0``, ``member_1``, ... (any model that
:func:`pretroost.load` reads: a Roost model, a trees model, ...). Regression predicts the mean of
the members' predictions; classification the mean of their probabilities, labelled at the mean of
their decision thresholds (as the Matbench blends of :mod:`pretroost.experiment.blend` do).
The members are equally weighted: nothing is tuned.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pretroost import __version__
from pretroost.artefacts import ArtefactError, read_config, write_folder
from pretroost.hub import load
from pretroost.utils import git_sha

__all__ = ["MAX_MEMBERS", "BlendPredictor", "member_name", "save_blend"]

log = logging.getLogger(__name__)

#: the most members a blend folder may declare (a bound on what ``config.json`` can ask to load)
MAX_MEMBERS = 16


def member_name(i: int) -> str:
    """The fixed subfolder name of member ``i``."""
    return f"member_{i}"


def save_blend(
    out: str | Path,
    members: Sequence[str | Path],
    *,
    data: str,
    n_train: int,
    target: str | None = None,
    id_col: str | None = None,
    card_extra: str = "",
    overwrite: bool = True,
) -> Path:
    """Write a blend folder holding a copy of each model folder in ``members`` (2 to
    :data:`MAX_MEMBERS`, all regression or all classification; train them on the same rows:
    ``data``, ``n_train`` rows, its target column ``target`` and id column ``id_col``, recorded
    for ``pretroost hurdle`` and ``pretroost predict``), a ``config.json`` and a model card
    (``card_extra`` appended)."""
    paths = [Path(m) for m in members]
    if not 2 <= len(paths) <= MAX_MEMBERS:
        raise ValueError(f"a blend needs 2 to {MAX_MEMBERS} members, got {len(paths)}")
    loaded = [load(p) for p in paths]
    types = {m.task_type for m in loaded}
    if len(types) != 1 or None in types:
        raise ValueError(
            f"a blend's members must share one task type, got {sorted(map(str, types))}"
        )
    task_type = types.pop()
    described = [f"{member_name(i)}: {m!r}" for i, m in enumerate(loaded)]
    meta = {
        "kind": "blend", "task_type": task_type, "n_members": len(paths),
        "members": [str(p) for p in paths], "data": data, "n_train": n_train,
        "target": target, "id_col": id_col,
        "git_sha": git_sha(), "pretroost_version": __version__,
    }  # fmt: skip
    card = "\n".join([
        "# pretroost blend",
        "",
        f"The mean of {len(paths)} models' "
        + ("probabilities" if task_type == "classification" else "predictions")
        + f", equally weighted ({task_type}; `pretroost.blend`); each member's own card says "
        "how it was trained.",
        *[f"- `{d}`" for d in described],
        f"- Trained on {data} ({n_train} rows); pretroost {__version__} ({meta['git_sha']}).",
        "",
        "Load with `pretroost.load(folder)` or `pretroost predict --model folder formulas.csv`;",
        "the output adds `std_members`, the spread of the members' predictions.",
        "",
    ]) + card_extra  # fmt: skip

    def fill(folder: Path) -> None:
        for i, p in enumerate(paths):
            shutil.copytree(p, folder / member_name(i))

    return write_folder(out, meta, card=card, fill=fill, overwrite=overwrite)


class BlendPredictor:
    """A saved blend behind :func:`pretroost.load`'s interface."""

    kind = "blend"

    def __init__(
        self,
        members: list[Any],
        task_type: str,
        path: Path | None = None,
        meta: dict[str, Any] | None = None,
    ):
        self.members, self.path, self.meta = members, path, dict(meta or {})
        self._task_type = task_type

    @classmethod
    def load(cls, path: str | Path) -> BlendPredictor:
        root = Path(path)
        meta = read_config(root)
        if meta.get("kind") != "blend":
            raise ArtefactError(f"{root}: not a blend folder (config.json kind)")
        n = meta.get("n_members")
        if not isinstance(n, int) or not 2 <= n <= MAX_MEMBERS:
            raise ArtefactError(f"{root}: n_members must be an integer in 2..{MAX_MEMBERS}")
        # fixed subfolder names, never paths read from the folder's config
        members = [load(root / member_name(i)) for i in range(n)]
        types = {m.task_type for m in members}
        if types != {meta.get("task_type")}:
            raise ArtefactError(f"{root}: members' task types {types} differ from the blend's")
        return cls(members, str(meta["task_type"]), root, meta)

    def __repr__(self) -> str:
        return f"BlendPredictor(members={len(self.members)}, path={str(self.path)!r})"

    @property
    def task_type(self) -> str:
        return self._task_type

    @property
    def id_col(self) -> str | None:
        """The training data's id column (``pretroost predict`` carries it), if recorded."""
        value = self.meta.get("id_col")
        return None if value is None else str(value)

    @property
    def threshold(self) -> float:
        """The classification threshold: the mean of the members' thresholds."""
        return float(np.mean([float(getattr(m, "threshold", 0.5)) for m in self.members]))

    @property
    def columns(self) -> list[str]:
        if self.task_type == "classification":
            return ["prediction", "probability", "std_members"]
        return ["prediction", "std", "std_members"]

    def predict(
        self,
        formulas: object,
        *,
        errors: Literal["coerce", "raise"] = "coerce",
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """One row per input, in input order: ``formula``; ``prediction`` (the members' mean;
        classification: the label ``probability > threshold``); ``std`` (regression: the root
        mean square of the members' own stds, NaN where one has none) or ``probability`` (the
        mean); ``std_members`` (the spread of the members' predictions); ``error`` (the first
        member's reason where a row failed)."""
        frames = [
            m.predict(formulas, errors=errors, batch_size=batch_size, progress=progress)
            for m in self.members
        ]
        first = frames[0]
        bad = np.logical_or.reduce([f["error"].notna().to_numpy() for f in frames])
        value = "probability" if self.task_type == "classification" else "prediction"
        values = np.stack([f[value].to_numpy(dtype=np.float64) for f in frames])
        mean = np.where(bad, np.nan, values.mean(axis=0))
        spread = np.where(bad, np.nan, values.std(axis=0))
        out: dict[str, object] = {"formula": first["formula"]}
        if self.task_type == "classification":
            label = pd.array(np.where(bad, False, mean > self.threshold).astype(int), "Int64")
            label[bad] = pd.NA
            out |= {"prediction": label, "probability": mean}
        else:
            stds = np.stack([f["std"].to_numpy(dtype=np.float64) for f in frames])
            out |= {"prediction": mean, "std": np.sqrt(np.mean(stds**2, axis=0))}
        out["std_members"] = spread
        errors_col = first["error"].copy()
        for f in frames[1:]:  # a row only a later member refused keeps that member's reason
            errors_col = errors_col.where(errors_col.notna(), f["error"])
        out["error"] = errors_col
        return pd.DataFrame(out, index=first.index)

    def _encoded(self) -> Any:
        for m in self.members:
            if getattr(m, "kind", None) not in ("trees", "blend", "hurdle"):
                return m
        raise ValueError(f"{self.path}: no member of this blend has an encoder to embed with")

    def embed(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """The material vectors of the first member with an encoder (a Roost model)."""
        return self._encoded().embed(*args, **kwargs)

    def embed_frame(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return self._encoded().embed_frame(*args, **kwargs)
