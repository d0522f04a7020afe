"""Tree ensembles on composition features: the reference a formula-only model must beat.

Not Roost: scikit-learn's extremely randomised trees (Geurts et al., Mach. Learn. 63, 3, 2006),
random forests (Breiman, Mach. Learn. 45, 5, 2001) and histogram gradient boosting on the
composition's element fractions, alone or with its 144 Magpie attributes (Ward et al., npj Comput.
Mater. 2, 16028, 2016). Random forests on Magpie attributes are Matbench's "RF-SCM/Magpie"
baseline; here the model and features are chosen per official fold by cross-validation on that
fold's training rows only (:func:`fit_trees`), and :func:`pretroost.evaluation.trees.run_trees_task`
writes the cells in the bench's format (:mod:`pretroost.results`), so reports, ensembles and blends
read them like any strategy's. The settings, :class:`~pretroost.configs.TreesConfig`, live in
:mod:`pretroost.configs`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zipfile import ZIP_DEFLATED

import numpy as np
import pandas as pd
import sklearn
import skops.io

from pretroost import __version__
from pretroost.artefacts import load_skops, read_config, write_folder
from pretroost.configs import FEATURE_SETS, TREE_MODELS, FeatureSet, TreeModel, TreesConfig
from pretroost.configs import TREE_THRESHOLD_RULES as THRESHOLD_RULES
from pretroost.configs import TreeThresholdRule as ThresholdRule
from pretroost.data import pbe_gap
from pretroost.data.composition import MAX_Z, CompositionArray
from pretroost.data.descriptors import descriptor_matrix
from pretroost.errors import ArtefactError
from pretroost.metrics import CLF_THRESHOLD, balanced_accuracy_threshold, score, to_labels
from pretroost.predict import as_formula_list, parse_for_model
from pretroost.utils import git_sha

__all__ = [
    "FEATURE_SETS",
    "THRESHOLD_RULES",
    "TREE_MODELS",
    "FeatureSet",
    "FittedTrees",
    "ThresholdRule",
    "TreeModel",
    "TreesConfig",
    "TreesPredictor",
    "composition_features",
    "fit_trees",
    "load_trees",
    "save_trees",
    "tree_estimator",
]

log = logging.getLogger(__name__)


def _check(name: str, values: Sequence[str], valid: Sequence[str]) -> None:
    bad = [v for v in values if v not in valid]
    if bad or not values:
        raise ValueError(f"unknown {name} {bad or '(none given)'}; valid: {', '.join(valid)}")


def composition_features(comps: CompositionArray, name: str, *, teacher: Any = None) -> np.ndarray:
    """(n, d) float64 features of ``comps``: ``"fractions"`` (d = ``MAX_Z`` = 103: the fraction
    of element Z in column Z - 1, :meth:`CompositionArray.dense`), ``"magpie"`` (d = 144,
    :func:`~pretroost.data.fingerprint.magpie_fingerprint`), both side by side, or both and a
    last column ``"pbe"``, a PBE band-gap teacher's prediction
    (:func:`~pretroost.data.pbe_gap.pbe_gap_feature`: Materials Project gaps, the experimental
    tasks' compositions removed; ``teacher``: the teacher to use, e.g. a saved model's own copy,
    default the data cache's, :func:`~pretroost.data.pbe_gap.teacher`)."""
    _check("feature set", [name], FEATURE_SETS)
    return descriptor_matrix(name.split("+"), comps, pbe_model=teacher)


def tree_estimator(model: str, task_type: str, config: TreesConfig) -> Any:
    """An unfitted scikit-learn estimator of ``model`` for ``task_type`` with ``config``'s trees,
    caps and seed (what :func:`fit_trees`, the ready models and ``trees-size`` fit)."""
    from sklearn import ensemble

    clf = task_type == "classification"
    kw: dict[str, Any] = {"random_state": config.seed}
    if model == "gradientboosting":
        cls = (
            ensemble.HistGradientBoostingClassifier
            if clf
            else ensemble.HistGradientBoostingRegressor
        )
        return cls(max_iter=config.iterations, learning_rate=0.05, **kw)
    kw.update(
        n_estimators=config.n_estimators, n_jobs=config.n_jobs,
        min_samples_leaf=config.min_samples_leaf, max_leaf_nodes=config.max_leaf_nodes,
    )  # fmt: skip
    if model == "extratrees":
        return (ensemble.ExtraTreesClassifier if clf else ensemble.ExtraTreesRegressor)(**kw)
    return (ensemble.RandomForestClassifier if clf else ensemble.RandomForestRegressor)(**kw)


def _predict(estimator: Any, x: np.ndarray, task_type: str) -> np.ndarray:
    """(n,) predictions: values, or the probability of class 1."""
    if task_type == "classification":
        return estimator.predict_proba(x)[:, list(estimator.classes_).index(1)]
    return estimator.predict(x)


def _inner_score(task_type: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Lower is better: MAE, or minus the balanced accuracy of labels at 0.5."""
    if task_type == "classification":
        return -score(task_type, y, to_labels(pred, CLF_THRESHOLD))["balanced_accuracy"]
    return float(np.mean(np.abs(pred - y)))


@dataclass
class FittedTrees:
    """The chosen candidate, refitted on every training row, and the inner scores of all.

    ``threshold``: the decision threshold for labels ``p > threshold`` (classification; 0.5 unless
    chosen on the inner folds); ``thresholds``: every candidate's, where chosen. ``teacher``: for
    ``+pbe`` features, the PBE gap teacher the features were made with (kept with a saved model),
    and ``teacher_info`` what it is made of (:func:`~pretroost.data.pbe_gap.teacher_info`).
    """

    estimator: Any
    model: str
    features: str
    task_type: str
    inner_scores: dict[str, float] = field(default_factory=dict)
    threshold: float = CLF_THRESHOLD
    thresholds: dict[str, float] = field(default_factory=dict)
    teacher: Any = None
    teacher_info: dict[str, Any] = field(default_factory=dict)

    def features_of(self, comps: CompositionArray) -> np.ndarray:
        """(n, d) features of ``comps`` as the estimator reads them (with this model's teacher)."""
        return composition_features(comps, self.features, teacher=self.teacher)

    def predict(self, comps: CompositionArray) -> np.ndarray:
        """(n,) predictions for ``comps``: values, or the probability of class 1."""
        return _predict(self.estimator, self.features_of(comps), self.task_type)

    def predict_std(self, comps: CompositionArray) -> np.ndarray:
        """(n,) standard deviation of a forest's trees' predictions for ``comps`` (regression):
        how much the trees disagree, a rough epistemic uncertainty (not calibrated); NaN for
        gradient boosting, whose trees are summed rather than averaged, and for classification."""
        trees = getattr(self.estimator, "estimators_", None)
        if self.task_type != "regression" or trees is None:
            return np.full(len(comps), np.nan)
        x = self.features_of(comps)
        return np.stack([t.predict(x) for t in trees]).std(axis=0)


def fit_trees(
    comps: CompositionArray,
    y: np.ndarray,
    task_type: str,
    config: TreesConfig | None = None,
    *,
    progress: bool | None = None,
) -> FittedTrees:
    """Choose among ``config``'s candidates by cross-validation on (``comps``, ``y``), the
    training rows (``y``: (n,); 0/1 for classification), and refit the best on all of them.

    ``inner_scores``: candidate ``"<model>/<features>"`` -> its inner score, lower is better: the
    mean over inner folds of the MAE or of minus the balanced accuracy at 0.5; with
    ``config.threshold == "validation"``, minus the balanced accuracy of the pooled out-of-fold
    probabilities at the candidate's best threshold. Folds are stratified for classification.

    ``progress``: a bar over candidates × inner folds (None: when standard error is a terminal);
    without one, a log line per candidate with its inner score and time.
    """
    from sklearn.model_selection import KFold, StratifiedKFold
    from tqdm.auto import tqdm

    config = config or TreesConfig()
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != len(comps):
        raise ValueError(f"{len(comps)} compositions but {len(y)} targets")
    clf = task_type == "classification"
    if config.threshold != "fixed" and not clf:
        raise ValueError(
            f"threshold rule {config.threshold!r} needs a classification task, not {task_type!r}"
        )
    target = y.astype(int) if clf else y
    splitter = (StratifiedKFold if clf else KFold)(
        config.inner_folds, shuffle=True, random_state=config.seed
    )
    folds = list(splitter.split(np.zeros(len(y)), target))
    features = {name: composition_features(comps, name) for name in config.features}
    choose_threshold = clf and config.threshold == "validation"
    scores: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    candidates = config.candidates()
    show_bar = sys.stderr.isatty() if progress is None else progress
    what = "balanced accuracy" if clf else "MAE"
    if not show_bar:
        log.info(
            "trees: %d candidate(s) x %d inner folds on %d rows",
            len(candidates), len(folds), len(y),
        )  # fmt: skip
    bar = tqdm(
        total=len(candidates) * len(folds), desc="trees", unit="fit", disable=not show_bar,
        leave=False,
    )  # fmt: skip
    for i, (model, feats) in enumerate(candidates):
        name, x = f"{model}/{feats}", features[feats]
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        oof = np.empty(len(y))  # each row predicted by the model not trained on it
        for tr, va in folds:
            est = tree_estimator(model, task_type, config).fit(x[tr], target[tr])
            oof[va] = _predict(est, x[va], task_type)
            bar.update()
        if choose_threshold:
            thresholds[name] = balanced_accuracy_threshold(target, oof)
            labels = to_labels(oof, thresholds[name])
            scores[name] = -score(task_type, y, labels)["balanced_accuracy"]
        else:
            scores[name] = float(
                np.mean([_inner_score(task_type, y[va], oof[va]) for _, va in folds])
            )
        if not show_bar:
            log.info(
                "trees %d/%d %s: inner %s %.4g (%.0f s)", i + 1, len(candidates), name, what,
                -scores[name] if clf else scores[name], time.perf_counter() - t0,
            )  # fmt: skip
    bar.close()
    best = min(scores, key=scores.__getitem__)
    model, feats = best.split("/", 1)
    log.info("trees: %s chosen; refitting it on all %d rows", best, len(y))
    est = tree_estimator(model, task_type, config).fit(features[feats], target)
    threshold = thresholds.get(best, CLF_THRESHOLD)
    fitted = FittedTrees(est, model, feats, task_type, scores, threshold, thresholds)
    if feats.endswith("+pbe"):  # the teacher its features came from, to keep with the model
        fitted.teacher, fitted.teacher_info = pbe_gap.teacher(), pbe_gap.teacher_info()
    return fitted


# ------------------------------------------------------------------------------ saved models

#: the file of a saved model's own PBE gap teacher (``+pbe`` features)
TEACHER_FILE = "pbe_teacher.skops"


def save_trees(
    fitted: FittedTrees,
    out: str | Path,
    *,
    config: TreesConfig,
    data: str,
    n_train: int,
    target: str | None = None,
    id_col: str | None = None,
    test: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``fitted`` as a model folder: ``config.json`` (``"kind": "trees"``, the chosen
    candidate, its threshold, every candidate's inner score, ``config``), ``model.skops`` (the
    estimator in skops' format: arrays and JSON, no pickle) and a ``README.md`` model card saying
    what it was trained on (``data``, ``n_train`` rows; ``target``: the name of its target,
    which ``pretroost hurdle --regressor`` checks). ``id_col``: the training data's id
    column, which ``pretroost predict`` carries into its output when the input has it;
    ``test``: how it was tested (``{"data": where, "n_test": rows, "seed": ..., "scores":
    {metric: value}}``), kept as ``config.json``'s ``test`` and on the card. With ``+pbe`` features the PBE gap
    teacher goes into the folder too (``pbe_teacher.skops``, what it is made of in
    ``config.json``'s ``pbe_teacher``), so that loading reads nothing from the data cache and
    fits nothing."""
    best = f"{fitted.model}/{fitted.features}"
    meta = {
        "kind": "trees", "task_type": fitted.task_type, "model": fitted.model,
        "features": fitted.features, "threshold": fitted.threshold,
        "inner_scores": fitted.inner_scores, "candidate_thresholds": fitted.thresholds,
        "trees_config": config.to_dict(), "data": data, "n_train": n_train, "target": target,
        "id_col": id_col,
        "test": test,
        "git_sha": git_sha(), "pretroost_version": __version__,
        "sklearn_version": sklearn.__version__,
    }  # fmt: skip
    pbe = fitted.features.endswith("+pbe")
    if pbe:
        if fitted.teacher is None:
            raise ValueError(f"{best} has +pbe features but no teacher to save with it")
        meta["pbe_teacher"] = {"file": TEACHER_FILE, **fitted.teacher_info}
    clf = fitted.task_type == "classification"
    what, value = ("balanced accuracy", -fitted.inner_scores[best]) if clf else (
        "MAE", fitted.inner_scores[best])  # fmt: skip
    size = (
        f"{config.iterations} boosting iterations (learning rate 0.05)"
        if fitted.model == "gradientboosting"
        else f"{config.n_estimators} trees (min_samples_leaf {config.min_samples_leaf}, "
        f"max_leaf_nodes {config.max_leaf_nodes})"
    )
    card = "\n".join([
        f"# pretroost trees: {fitted.model} on {fitted.features}",
        "",
        f"A {fitted.task_type} model on composition features (`pretroost.trees`), not Roost.",
        f"- Data: {data} ({n_train} rows, every one used for the final fit)"
        + (f"; target `{target}`." if target else "."),
        *([f"- Test: {test['data']} ({test['n_test']} rows): "
           + ", ".join(f"{k} {v:.4g}" for k, v in test["scores"].items()) + "."]
          if test and test.get("n_test") else []),
        f"- Chosen by {config.inner_folds}-fold cross-validation on those rows among "
        f"{len(fitted.inner_scores)} candidate(s); inner {what} of the chosen one: {value:.4g}.",
        *([f"- Decision threshold: {fitted.threshold:.4g} (labels `p > threshold`)."]
          if clf else []),
        *([f"- Its last feature is a PBE band-gap teacher's prediction (`pretroost.data.pbe_gap`, "
           f"fitted on Matbench's mp_gap), kept in `{TEACHER_FILE}` (config.json's `pbe_teacher`)."]
          if pbe else []),
        f"- {size}, seed {config.seed}; scikit-learn {sklearn.__version__}; "
        f"pretroost {__version__} ({meta['git_sha']}).",
        "",
        "Load with `pretroost.load(folder)` or `pretroost predict --model folder formulas.csv`.",
        "",
    ])  # fmt: skip

    def fill(folder: Path) -> None:
        # deflated: a forest's node arrays shrink some 5-fold (results/trees_size.md)
        skops.io.dump(fitted.estimator, folder / "model.skops", compression=ZIP_DEFLATED)
        if pbe:
            skops.io.dump(fitted.teacher, folder / TEACHER_FILE, compression=ZIP_DEFLATED)

    return write_folder(out, meta, card=card, fill=fill, overwrite=overwrite)


def load_trees(path: str | Path) -> tuple[FittedTrees, dict[str, Any]]:
    """Read a folder written by :func:`save_trees`: the model and its ``config.json``.

    The estimator (and a ``+pbe`` model's own teacher) are rebuilt by skops only from
    scikit-learn and numpy types; a file naming any other type is refused
    (:class:`~pretroost.errors.ArtefactError`), so loading never runs code from the file. A
    ``+pbe`` folder saved without its teacher (before it was kept there) uses the data cache's,
    with a warning."""
    path = Path(path)
    meta = read_config(path)
    if meta.get("kind") != "trees":
        raise ArtefactError(f"{path}: not a trees model (kind {meta.get('kind')!r})")
    estimator = load_skops(path / "model.skops")
    teacher = None
    if str(meta["features"]).endswith("+pbe"):
        if "pbe_teacher" in meta:
            teacher = load_skops(path / TEACHER_FILE)  # a fixed name, not a path from the file
        else:
            log.warning(
                "%s: no PBE gap teacher in the folder (saved before pretroost kept it there); "
                "using the data cache's (pretroost.data.pbe_gap)", path,
            )  # fmt: skip
    fitted = FittedTrees(
        estimator, meta["model"], meta["features"], meta["task_type"],
        dict(meta.get("inner_scores", {})), float(meta.get("threshold", CLF_THRESHOLD)),
        dict(meta.get("candidate_thresholds", {})), teacher, dict(meta.get("pbe_teacher", {})),
    )  # fmt: skip
    return fitted, meta


class TreesPredictor:
    """A saved trees model behind :func:`pretroost.load`'s interface: :meth:`predict` takes
    formulas and returns the same columns as a single Roost model's."""

    kind = "trees"

    def __init__(self, fitted: FittedTrees, meta: dict[str, Any], path: Path | None = None):
        self.fitted, self.meta, self.path = fitted, meta, path

    @classmethod
    def load(cls, path: str | Path) -> TreesPredictor:
        fitted, meta = load_trees(path)
        return cls(fitted, meta, Path(path))

    def __repr__(self) -> str:
        return (
            f"TreesPredictor({self.fitted.model}/{self.fitted.features}, "
            f"task_type={self.task_type!r}, path={str(self.path)!r})"
        )

    @property
    def id_col(self) -> str | None:
        """The id column of the data the model was trained on (None if it had none)."""
        return self.meta.get("id_col")

    @property
    def task_type(self) -> str:
        return self.fitted.task_type

    @property
    def threshold(self) -> float:
        return self.fitted.threshold

    @property
    def columns(self) -> list[str]:
        return ["prediction", "probability" if self.task_type == "classification" else "std"]

    def predict(
        self,
        formulas: object,
        *,
        errors: Literal["coerce", "raise"] = "coerce",
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """One row per input, in input order: ``formula``, ``prediction`` (classification: the
        label ``probability > threshold``), ``probability`` or ``std`` (a forest's spread over its
        trees, :meth:`FittedTrees.predict_std`; NaN for gradient boosting), ``error``. ``batch_size`` and ``progress`` are accepted for the
        Roost predictor's signature and unused."""
        del batch_size, progress
        values, index = as_formula_list(formulas)
        known = np.zeros(MAX_Z + 1, dtype=bool)
        known[1:] = True
        parsed = parse_for_model(values, known, elem_embedding="element-fraction", errors=errors)
        out = np.full(len(values), np.nan)
        if len(parsed.comps):
            out[parsed.good] = self.fitted.predict(parsed.comps)
        frame: dict[str, object] = {"formula": values}
        if self.task_type == "classification":
            label = pd.array(
                np.where(parsed.good, out > self.threshold, False).astype(int), "Int64"
            )
            label[~parsed.good] = pd.NA
            frame |= {"prediction": label, "probability": out}
        else:
            std = np.full(len(values), np.nan)
            if len(parsed.comps):
                std[parsed.good] = self.fitted.predict_std(parsed.comps)
            frame |= {"prediction": out, "std": std}
        frame["error"] = parsed.errors
        return pd.DataFrame(frame, index=index)

    def embed(self, *args: object, **kwargs: object) -> np.ndarray:
        raise ValueError(
            f"{self.path}: a trees model has no encoder to embed formulas with; use a Roost model"
        )

    embed_frame = embed
