"""Hurdle models: exact zeros for a target with a point mass at zero (band gaps of metals).

Under the mean absolute error the best point prediction is the median of the predictive
distribution, and that median is exactly 0 wherever P(target = 0) > 0.5. A regressor fitted to
the mean, or an average of models, sits above 0 there (on matbench_expt_gap, 53 % zeros, a single
Roost model as well). The hurdle, the two-part model of Cragg (*Econometrica* 39, 829, 1971),
adds a classifier of ``target == 0`` and predicts 0 where its probability exceeds 0.5; elsewhere
the regressor's prediction stands. Nothing is tuned: 0.5 is where the median moves to 0.

The classifier is :func:`pretroost.trees.fit_trees` on labels ``target == 0``. A saved hurdle is
a folder holding both models: ``config.json`` (``"kind": "hurdle"``), a model card, the
regressor's folder (any model :func:`pretroost.load` reads) under ``regressor/`` and the
classifier's (a trees folder) under ``zero_classifier/``. The Matbench experiment
(:mod:`pretroost.experiment.hurdle`) applies the same rule to the bench's test predictions.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pretroost import __version__
from pretroost.artefacts import read_config, write_folder
from pretroost.data.composition import CompositionArray
from pretroost.errors import ArtefactError
from pretroost.hub import load
from pretroost.pretrained import resolve
from pretroost.trees import FittedTrees, TreesConfig, TreesPredictor, fit_trees, save_trees
from pretroost.utils import git_sha

__all__ = [
    "ZERO_PROBABILITY",
    "HurdlePredictor",
    "apply_hurdle",
    "check_regressor_target",
    "fit_zero_classifier",
    "recorded_target",
    "save_hurdle",
]

log = logging.getLogger(__name__)

ZERO_PROBABILITY = 0.5  # predict 0 where P(target = 0) exceeds this: where the median is 0


def apply_hurdle(values: np.ndarray, p_zero: np.ndarray) -> np.ndarray:
    """``values`` (n,) with 0 where ``p_zero`` (n,), the probability that the target is exactly
    0, exceeds :data:`ZERO_PROBABILITY` (NaN probabilities leave the value as it is)."""
    values = np.asarray(values, dtype=np.float64)
    p_zero = np.asarray(p_zero, dtype=np.float64)
    if values.shape != p_zero.shape:
        raise ValueError(f"{values.shape} predictions but {p_zero.shape} probabilities")
    return np.where(p_zero > ZERO_PROBABILITY, 0.0, values)


def fit_zero_classifier(
    comps: CompositionArray, y: np.ndarray, config: TreesConfig | None = None
) -> FittedTrees:
    """:func:`~pretroost.trees.fit_trees` on labels ``y == 0`` (``y``: (n,) regression targets).
    Raises ``ValueError`` if ``y`` has negative values or no exact zero: no point mass at a lower
    bound of 0, so a hurdle has no meaning there."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if (y < 0).any() or not (y == 0).any():
        raise ValueError(
            "a hurdle needs targets >= 0 with exact zeros among them "
            f"(got min {np.nanmin(y):.4g}, {int((y == 0).sum())} zeros in {len(y)} rows)"
        )
    return fit_trees(comps, (y == 0).astype(np.float64), "classification", config)


def recorded_target(folder: str | Path) -> str | None:
    """The target a saved model was trained on, as its ``config.json`` records it (``target``
    for trees and hurdles, ``info.target`` for Roost models and ensembles); None if it has none."""
    config = read_config(folder)
    info = config.get("info")
    target = config.get("target") or (info.get("target") if isinstance(info, dict) else None)
    return None if target is None else str(target)


def check_regressor_target(
    regressor: str | Path, target: str | None, *, allow_unknown_target: bool = False
) -> None:
    """Refuse a ``regressor`` folder trained on another target than the hurdle's data (whose
    target is ``target``): the hurdle would zero another property's predictions. A regressor (or
    data) with no recorded target name is refused too, unless ``allow_unknown_target``."""
    trained = recorded_target(regressor)
    if trained is not None and target is not None:
        if trained != target:
            raise ValueError(
                f"{regressor}: the regressor was trained on target {trained!r}, but the hurdle's "
                f"data has target {target!r}; train the regressor on the same target"
            )
        return
    if allow_unknown_target:
        log.warning(
            "%s: target names unknown (regressor %r, data %r); taken as the same (allowed)",
            regressor, trained, target,
        )  # fmt: skip
        return
    missing = "the regressor records no target name" if trained is None else (
        "the hurdle's data has no target name")  # fmt: skip
    raise ValueError(
        f"{regressor}: {missing} (regressor: {trained!r}, data: {target!r}), so it cannot be "
        "checked that both are the same property. Models trained with `finetune --data` or "
        "`trees --data` record their --target-col; for one that does not, pass "
        "--allow-unknown-target (allow_unknown_target=True) if it predicts the data's target"
    )


def save_hurdle(
    out: str | Path,
    *,
    regressor: str | Path,
    classifier: FittedTrees,
    config: TreesConfig,
    data: str,
    n_train: int,
    target: str | None,
    allow_unknown_target: bool = False,
    id_col: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a hurdle folder: a copy of the ``regressor`` model folder (a regression model that
    :func:`pretroost.load` reads; train it on the same rows), ``classifier``
    (:func:`fit_zero_classifier`, saved with :func:`~pretroost.trees.save_trees`), a
    ``config.json`` and a model card naming both and the data (``data``, ``n_train`` rows;
    ``id_col``: its id column, which ``pretroost predict`` carries into its output). ``target``:
    the data's target name; a regressor trained on another target is refused, and one with no
    recorded target unless ``allow_unknown_target`` (:func:`check_regressor_target`)."""
    regressor = resolve(regressor)  # a folder (or a shipped name, refused below: no regressor)
    check_regressor_target(regressor, target, allow_unknown_target=allow_unknown_target)
    reg = load(regressor)
    if reg.task_type != "regression":
        raise ValueError(f"{regressor}: a hurdle's regressor must be a regression model")
    if classifier.task_type != "classification":
        raise ValueError("a hurdle's zero classifier must be a classification model")
    best = f"{classifier.model}/{classifier.features}"
    meta = {
        "kind": "hurdle", "task_type": "regression", "zero_probability": ZERO_PROBABILITY,
        "regressor_source": str(regressor), "data": data, "n_train": n_train, "target": target,
        "id_col": id_col,
        "git_sha": git_sha(), "pretroost_version": __version__,
    }  # fmt: skip
    card = "\n".join([
        "# pretroost hurdle",
        "",
        "A regression model whose prediction is set to 0 where a classifier of `target == 0`",
        f"gives a probability above {ZERO_PROBABILITY} (`pretroost.hurdle`): under the mean",
        "absolute error the median, 0 there, is the best prediction.",
        f"- Regressor: `regressor/` (copied from `{regressor}`; its own card says how it was "
        "trained).",
        f"- Zero classifier: `zero_classifier/`, {best}, trained on {data} ({n_train} rows); "
        f"inner balanced accuracy {-classifier.inner_scores[best]:.4g}.",
        f"- pretroost {__version__} ({meta['git_sha']}).",
        "",
        "Load with `pretroost.load(folder)` or `pretroost predict --model folder formulas.csv`;",
        "the output adds `p_zero`, the classifier's probability; `std` is the regressor's.",
        "",
    ])  # fmt: skip

    def fill(folder: Path) -> None:
        shutil.copytree(regressor, folder / "regressor")
        save_trees(classifier, folder / "zero_classifier", config=config, data=data,
                   n_train=n_train, target=target, id_col=id_col)  # fmt: skip

    return write_folder(out, meta, card=card, fill=fill, overwrite=overwrite)


class HurdlePredictor:
    """A saved hurdle behind :func:`pretroost.load`'s interface: :meth:`predict` returns the
    regressor's columns, its ``prediction`` set to 0 where ``p_zero`` > 0.5, and ``p_zero``."""

    kind = "hurdle"
    task_type = "regression"

    def __init__(self, regressor: Any, classifier: TreesPredictor, path: Path | None = None):
        self.regressor, self.classifier, self.path = regressor, classifier, path

    @classmethod
    def load(cls, path: str | Path) -> HurdlePredictor:
        root = Path(path)
        if read_config(root).get("kind") != "hurdle":
            raise ArtefactError(f"{root}: not a hurdle folder (config.json kind)")
        # fixed subfolder names, never paths read from the folder's config
        regressor = load(root / "regressor")
        classifier = load(root / "zero_classifier")
        if regressor.task_type != "regression" or not isinstance(classifier, TreesPredictor):
            raise ArtefactError(f"{root}: not a regressor and a trees zero classifier")
        return cls(regressor, classifier, root)

    def __repr__(self) -> str:
        return f"HurdlePredictor(regressor={self.regressor!r}, path={str(self.path)!r})"

    @property
    def columns(self) -> list[str]:
        return [*self.regressor.columns, "p_zero"]

    @property
    def id_col(self) -> str | None:
        """The id column of the data the zero classifier was trained on (None if it had none)."""
        return self.classifier.id_col

    def predict(
        self,
        formulas: object,
        *,
        errors: Literal["coerce", "raise"] = "coerce",
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """One row per input, in input order: the regressor's columns (``formula``,
        ``prediction``, ``std``, ..., ``error``) with ``prediction`` set to 0 where the zero
        classifier's probability, added as ``p_zero`` before ``error``, exceeds 0.5."""
        frame = self.regressor.predict(
            formulas, errors=errors, batch_size=batch_size, progress=progress
        )
        p_zero = self.classifier.predict(formulas, errors="coerce")["probability"].to_numpy()
        p_zero = np.where(frame["error"].isna().to_numpy(), p_zero, np.nan)  # bad rows stay NaN
        frame["prediction"] = apply_hurdle(frame["prediction"].to_numpy(), p_zero)
        frame.insert(frame.columns.get_loc("error"), "p_zero", p_zero)
        return frame

    def embed(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """The regressor's material vectors (a Roost regressor's; a trees regressor has none)."""
        return self.regressor.embed(*args, **kwargs)

    def embed_frame(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return self.regressor.embed_frame(*args, **kwargs)
