"""Ready property models: trained on a whole Matbench task, shipped in the package, loaded by name.

``pretroost predict --model expt-gap formulas.csv`` or ``pretroost.load("expt-gap")`` needs no
data, no training and no network. Each model is one :class:`ReadyRecipe` of :data:`RECIPES` (a
recipe whose official 5-fold score is on record in ``results/converged``, in the form that fits
the package's size budget), built on every row of its Matbench task by ``pretroost ready build
NAME`` into a folder ``pretrained/NAME/`` (``"kind": "ready"``) holding:

- ``model.skops``: the fitted estimators in skops' format (arrays and JSON, no pickle), the PBE
  band-gap teacher among them where the features need it (nothing is refitted at load);
- ``domain.json`` and ``training.csv.gz``: the training compositions and their values, for the
  domain check (:class:`~pretroost.domain.DomainIndex`: nearest training compositions,
  ``in_domain``, ``domain_reason``);
- ``config.json`` (recipe, uncertainty scale, threshold, training facts, the shipped form's
  5-fold score and calibration from ``results/ready``), ``README.md`` (model card) and
  ``reference.json`` (predictions for a few formulas recorded at build, checked by the tests).

Uncertainty (``std``): for a forest the spread of its trees' predictions times a factor fitted
on out-of-fold predictions of the training rows (inner cross-validation,
:func:`pretroost.uncertainty.fit_scale`), so that about 68 % of those rows fall within ±1
``std``; for the band-gap hurdle the standard deviation of the mixture "0 with probability
``p_metal``, else Normal(regressor mean, regressor std)" (:func:`pretroost.uncertainty.mixture_std`).
Classifiers give the probability itself.

``oqmd-dft`` is different: no training, the heads of the shipped ``dft-oqmd`` encoder (OQMD DFT
labels; its folder holds only a config pointing at ``dft-oqmd``'s weights).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pretroost.artefacts import ArtefactError, load_skops, read_config
from pretroost.data.composition import MAX_Z, CompositionArray
from pretroost.domain import DomainIndex
from pretroost.hurdle import ZERO_PROBABILITY
from pretroost.metrics import CLF_THRESHOLD, balanced_accuracy_threshold
from pretroost.objectives.dft import load_dft_head
from pretroost.predict import as_formula_list, known_elements, parse_for_model
from pretroost.pretrained import shipped
from pretroost.trees import TREE_MODELS, TreesConfig, composition_features, tree_estimator
from pretroost.uncertainty import fit_scale, mixture_std

__all__ = [
    "DFT_COLUMNS",
    "RECIPES",
    "FittedReady",
    "ReadyPredictor",
    "ReadyRecipe",
    "fit_ready",
    "get_recipe",
    "predict_ready",
]

log = logging.getLogger(__name__)

ReadyKind = Literal["trees", "hurdle", "dft"]
READY_KINDS: tuple[str, ...] = ("trees", "hurdle", "dft")
#: oqmd-dft's output columns: OQMD property -> (column, unit)
DFT_COLUMNS: dict[str, tuple[str, str]] = {
    "Formation_Enthalpy": ("formation_enthalpy_dft", "eV/atom"),
    "Bandgap": ("band_gap_dft", "eV"),
    "Energy_per_atom": ("energy_per_atom_dft", "eV/atom"),
    "Volume_per_atom": ("volume_per_atom_dft", "Å³/atom"),
}


@dataclass(frozen=True, kw_only=True)
class ReadyRecipe:
    """One ready model: what it predicts, the estimator(s) and how they are fitted.

    ``model``/``features``/``n_estimators``/``min_samples_leaf``: the fixed candidate (a tree
    model of :mod:`pretroost.trees`; ``min_samples_leaf`` applies to forests, a size cap);
    ``threshold``: ``"validation"`` picks the decision threshold on the inner folds' out-of-fold
    probabilities of the training rows (balanced accuracy), ``"fixed"`` keeps 0.5.
    ``quantity``: what it predicts, in words. ``zero_*``: the hurdle's classifier of
    ``target == 0``. ``labels``: class names (0, 1).
    ``recorded``: the recorded strategy and score this recipe comes from; ``why``: the reason.
    """

    name: str
    kind: ReadyKind
    task: str = ""
    quantity: str
    unit: str = ""
    model: str = ""
    features: str = ""
    n_estimators: int = 500
    min_samples_leaf: int = 1
    threshold: Literal["fixed", "validation"] = "fixed"
    zero_model: str = ""
    zero_features: str = ""
    zero_n_estimators: int = 500
    labels: tuple[str, str] = ("0", "1")
    inner_folds: int = 5
    seed: int = 0
    recorded: str = ""
    why: str = ""

    def __post_init__(self) -> None:
        if self.kind not in READY_KINDS:
            raise ValueError(f"unknown ready kind {self.kind!r}; valid: {', '.join(READY_KINDS)}")
        for m in (self.model, self.zero_model):
            if m and m not in TREE_MODELS:
                raise ValueError(f"unknown tree model {m!r}; valid: {', '.join(TREE_MODELS)}")

    @property
    def task_type(self) -> str:
        return "classification" if self.kind == "trees" and self.unit == "" else "regression"

    @property
    def uses_teacher(self) -> bool:
        return self.features.endswith("+pbe") or self.zero_features.endswith("+pbe")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReadyRecipe:
        """The recipe :meth:`to_dict` wrote (a model folder's ``config.json``)."""
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items()}  # fmt: skip
        return cls(**values)


RECIPES: dict[str, ReadyRecipe] = {
    r.name: r
    for r in (
        ReadyRecipe(
            name="expt-gap", kind="hurdle", task="matbench_expt_gap",
            quantity="experimental band gap", unit="eV",
            model="extratrees", features="fractions+magpie+pbe", n_estimators=100,
            min_samples_leaf=3, zero_model="gradientboosting",
            zero_features="fractions+magpie+pbe",
            labels=("non-metal", "metal"),
            recorded="hurdle(trees+pbe), MAE 0.2991 eV (results/converged)",
            why="the best recorded tree-based recipe on expt_gap (5/5 folds better than "
            "hurdle(trees); 0.011 eV below the ten Roost models under the hurdle, 0.3096 eV, which "
            "need 10 x 26 min of training: a lead within the chance gain of picking among many "
            "strategies, so not shown to be better); its inner CV chose extratrees on fractions+Magpie+PBE on every fold, "
            "and for the zero classifier gradient boosting on the same features; 100 trees with at "
            "least 3 rows per leaf instead of 500 fully grown ones (7.5 MB per 100) to fit 10 MB",
        ),
        ReadyRecipe(
            name="expt-is-metal", kind="trees", task="matbench_expt_is_metal",
            quantity="metal (experimental band gap = 0)",
            model="gradientboosting", features="fractions+magpie+pbe", n_estimators=500,
            labels=("non-metal", "metal"),
            recorded="trees+pbe, ROC-AUC 0.9315 (results/converged)",
            why="the best recorded recipe on expt_is_metal (above every Roost strategy and "
            "blend); its inner CV chose gradient boosting on fractions+Magpie+PBE on every fold",
        ),
        ReadyRecipe(
            name="glass", kind="trees", task="matbench_glass",
            quantity="glass forming (metallic glass by melt spinning)",
            model="randomforest", features="fractions+magpie", n_estimators=200,
            threshold="validation", labels=("no glass", "glass"),
            recorded="trees+valthreshold, ROC-AUC 0.8805 (results/converged)",
            why="the best recorded recipe on glass (above every Roost strategy and blend); its "
            "inner CV chose a random forest on fractions+Magpie in 13 of 15 cells (gradient "
            "boosting in 2); 200 trees instead of 500 to fit 10 MB",
        ),
        ReadyRecipe(
            name="steels-yield", kind="trees", task="matbench_steels",
            quantity="yield strength of steels", unit="MPa",
            model="extratrees", features="fractions", n_estimators=500,
            recorded="trees, MAE 79.51 MPa (results/converged)",
            why="the best recorded recipe on steels (below every Roost strategy and blend); its "
            "inner CV chose extratrees on fractions in all 15 cells, so the fixed candidate is "
            "the recorded recipe",
        ),
        ReadyRecipe(
            name="oqmd-dft", kind="dft", quantity="OQMD DFT properties (not experiment)",
            recorded="the dft head of the shipped dft-oqmd encoder",
            why="the shipped dft-oqmd encoder already predicts them; nothing trained",
        ),
    )
}  # fmt: skip


def get_recipe(name: str) -> ReadyRecipe:
    if name not in RECIPES:
        raise ValueError(f"unknown ready model {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]


# ------------------------------------------------------------------------------- uncertainty


def _positive(std: np.ndarray) -> np.ndarray:
    """``std`` with exact zeros (every tree agrees) raised to the smallest positive float, which
    :mod:`pretroost.uncertainty` requires; as a limit it changes nothing (a row is then covered
    exactly when its error is 0)."""
    return np.maximum(std, np.finfo(np.float64).tiny)


# ----------------------------------------------------------------------------------- fitting


def _features(comps: CompositionArray, name: str, teacher: Any) -> np.ndarray:
    """:func:`~pretroost.trees.composition_features` with the PBE teacher given (the model's
    own copy), never the data cache's."""
    if name.endswith("+pbe") and teacher is None:
        raise ValueError(f"feature set {name!r} needs the PBE teacher")
    return composition_features(comps, name, teacher=teacher)


def _make(model: str, task_type: str, n_estimators: int, min_samples_leaf: int, seed: int) -> Any:
    """The estimator :mod:`pretroost.trees` builds for ``model`` (``min_samples_leaf``: forests
    only, :class:`~pretroost.trees.TreesConfig`'s cap)."""
    config = TreesConfig(models=(model,), n_estimators=n_estimators, seed=seed,
                         min_samples_leaf=min_samples_leaf)  # fmt: skip
    return tree_estimator(model, task_type, config)


def _tree_mean_std(est: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    per_tree = np.stack([t.predict(x) for t in est.estimators_])
    return per_tree.mean(axis=0), per_tree.std(axis=0)


def _proba(est: Any, x: np.ndarray) -> np.ndarray:
    return est.predict_proba(x)[:, list(est.classes_).index(1)]


@dataclass
class FittedReady:
    """A recipe's estimators fitted on training rows: ``estimators`` (``"model"``, and for the
    hurdle ``"zero_classifier"``; ``"teacher"`` where the features need it), the uncertainty
    ``scale`` (regression), the decision ``threshold`` (classification), and ``inner``: what the
    inner cross-validation of the training rows gave (out-of-fold scores)."""

    recipe: ReadyRecipe
    estimators: dict[str, Any]
    scale: float = 1.0
    threshold: float = CLF_THRESHOLD
    inner: dict[str, float] | None = None


def fit_ready(
    recipe: ReadyRecipe, comps: CompositionArray, y: np.ndarray, *, teacher: Any = None
) -> FittedReady:
    """Fit ``recipe`` on (``comps``, ``y``), the training rows; only these rows are read. The
    scale (regression) or the threshold (``"validation"`` rule) come from ``inner_folds``-fold
    out-of-fold predictions of these rows; the final estimators are fitted on all of them."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if recipe.kind == "dft":
        raise ValueError("oqmd-dft is not fitted: it is the dft-oqmd encoder's head")
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != len(comps):
        raise ValueError(f"{len(comps)} compositions but {len(y)} targets")
    if recipe.uses_teacher and teacher is None:
        raise ValueError(f"{recipe.name}: its features need the PBE teacher")
    x = _features(comps, recipe.features, teacher)
    tt = recipe.task_type
    estimators: dict[str, Any] = {"teacher": teacher} if recipe.uses_teacher else {}
    inner: dict[str, float] = {}
    scale, threshold = 1.0, CLF_THRESHOLD

    def make() -> Any:
        return _make(recipe.model, tt, recipe.n_estimators, recipe.min_samples_leaf, recipe.seed)

    if tt == "regression":
        folds = KFold(recipe.inner_folds, shuffle=True, random_state=recipe.seed).split(x)
        mean, std = np.empty(len(y)), np.empty(len(y))
        for tr, va in folds:
            mean[va], std[va] = _tree_mean_std(make().fit(x[tr], y[tr]), x[va])
        scale = fit_scale(y, mean, _positive(std))
        inner = {"mae": float(np.mean(np.abs(mean - y))), "raw_coverage_1sigma":
                 float(np.mean(np.abs(y - mean) <= std))}  # fmt: skip
    elif recipe.threshold == "validation":
        target = y.astype(int)
        folds = StratifiedKFold(recipe.inner_folds, shuffle=True, random_state=recipe.seed).split(
            x, target
        )
        prob = np.empty(len(y))
        for tr, va in folds:
            prob[va] = _proba(make().fit(x[tr], target[tr]), x[va])
        threshold = balanced_accuracy_threshold(target, prob)
        inner = {"threshold": threshold}
    estimators["model"] = make().fit(x, y.astype(int) if tt == "classification" else y)
    if recipe.kind == "hurdle":
        xz = _features(comps, recipe.zero_features, teacher)
        zero = _make(recipe.zero_model, "classification", recipe.zero_n_estimators, 1, recipe.seed)
        estimators["zero_classifier"] = zero.fit(xz, (y == 0).astype(int))
    log.info("%s: fitted on %d rows (scale %.3g, threshold %.3g)", recipe.name, len(y), scale,
             threshold)  # fmt: skip
    return FittedReady(recipe, estimators, scale, threshold, inner)


def predict_ready(fitted: FittedReady, comps: CompositionArray) -> dict[str, np.ndarray]:
    """(n,) arrays for ``comps``: regression ``prediction`` and ``std`` (the hurdle adds
    ``p_metal``, i.e. P(target = 0)); classification ``probability`` and ``prediction`` (0/1)."""
    r, est = fitted.recipe, fitted.estimators
    teacher = est.get("teacher")
    x = _features(comps, r.features, teacher)
    if r.task_type == "classification":
        prob = _proba(est["model"], x)
        return {"probability": prob, "prediction": (prob > fitted.threshold).astype(np.int64)}
    mean, spread = _tree_mean_std(est["model"], x)
    std = fitted.scale * spread
    if r.kind != "hurdle":
        return {"prediction": mean, "std": std}
    mean = np.maximum(mean, 0.0)  # a gap is never negative
    p = _proba(est["zero_classifier"], _features(comps, r.zero_features, teacher))
    return {
        "prediction": np.where(p > ZERO_PROBABILITY, 0.0, mean),
        "std": mixture_std(p, mean, _positive(std)),
        "p_metal": p,
    }


# ---------------------------------------------------------------------------------- predictor


#: nearest training compositions listed per row
DOMAIN_K = 3


def _spread(values: list, good: np.ndarray) -> list:
    """``values`` of the good rows placed at their rows, ``None`` at the bad ones."""
    it = iter(values)
    return [next(it) if g else None for g in good]


class ReadyPredictor:
    """A ready model behind :func:`pretroost.load`'s interface: :meth:`predict` takes formulas
    and returns one row per input, bad rows kept with their ``error``."""

    kind = "ready"

    def __init__(
        self,
        recipe: ReadyRecipe,
        meta: dict[str, Any],
        *,
        fitted: FittedReady | None = None,
        domain: DomainIndex | None = None,
        dft: Any = None,
        path: Path | None = None,
    ) -> None:
        self.recipe, self.meta, self.fitted, self.domain = recipe, meta, fitted, domain
        self.dft, self.path = dft, path

    @classmethod
    def load(cls, path: str | Path) -> ReadyPredictor:

        root = Path(path)
        meta = read_config(root)
        if meta.get("kind") != "ready":
            raise ArtefactError(f"{root}: not a ready model (kind {meta.get('kind')!r})")
        return cls.load_parts(ReadyRecipe.from_dict(meta["recipe"]), meta, root)

    @classmethod
    def load_parts(cls, recipe: ReadyRecipe, meta: dict[str, Any], root: Path) -> ReadyPredictor:
        """The model of folder ``root`` with its config ``meta`` already read."""

        if recipe.kind == "dft":
            weights = meta["weights"]  # a shipped encoder's name, never a path
            if weights not in shipped():
                raise ArtefactError(f"{root}: its weights {weights!r} are not shipped here")
            return cls(recipe, meta, dft=load_dft_head(weights), path=root)
        estimators = load_skops(root / "model.skops")
        fitted = FittedReady(recipe, estimators, float(meta["scale"]), float(meta["threshold"]))
        return cls(recipe, meta, fitted=fitted, domain=DomainIndex.load(root), path=root)

    def __repr__(self) -> str:
        return f"ReadyPredictor({self.recipe.name!r}, path={str(self.path)!r})"

    @property
    def task_type(self) -> str:
        return self.recipe.task_type

    @property
    def threshold(self) -> float:
        return self.fitted.threshold if self.fitted is not None else CLF_THRESHOLD

    @property
    def columns(self) -> list[str]:
        r = self.recipe
        if r.kind == "dft":
            return [c for c, _ in DFT_COLUMNS.values()]
        if r.kind == "hurdle":
            return ["prediction", "std", "p_metal", "label"]
        if r.task_type == "classification":
            return ["prediction", "probability", "label"]
        return ["prediction", "std"]

    def predict(
        self,
        formulas: object,
        *,
        errors: Literal["coerce", "raise"] = "coerce",
        batch_size: int = 1024,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """One row per input, in input order: ``formula``, :attr:`columns`, then ``in_domain``,
        ``domain_reason``, ``nearest`` and ``error`` (the reason a row could not be used; its
        other columns empty)."""

        del progress
        values, index = as_formula_list(formulas)
        if self.dft is not None:
            known = known_elements(self.dft.encoder)
        else:
            known = np.zeros(MAX_Z + 1, dtype=bool)
            known[1:] = True
        parsed = parse_for_model(values, known, elem_embedding="element", errors=errors)
        good, n = parsed.good, len(values)
        frame: dict[str, object] = {"formula": values}

        def full(a: np.ndarray, dtype: Any = np.float64, fill: Any = np.nan) -> np.ndarray:
            out = np.full(n, fill, dtype=dtype)
            if len(a):
                out[good] = a
            return out

        empty = not len(parsed.comps)
        if self.dft is not None:
            out = (np.zeros((0, len(self.dft.properties))) if empty
                   else self.dft.predict(parsed.comps, batch_size=batch_size))  # fmt: skip
            for j, prop in enumerate(self.dft.properties):
                frame[DFT_COLUMNS[prop][0]] = full(out[:, j])
            dom = {k: _spread(v, good) for k, v in self._dft_domain(parsed.comps).items()}
        else:
            assert self.fitted is not None and self.domain is not None
            res = {} if empty else predict_ready(self.fitted, parsed.comps)
            names = self.recipe.labels
            if "probability" in self.columns or self.recipe.kind == "hurdle":
                p = res.get("p_metal" if self.recipe.kind == "hurdle" else "probability",
                            np.zeros(0))  # fmt: skip
                positive = p > (ZERO_PROBABILITY if self.recipe.kind == "hurdle"
                                else self.threshold)  # fmt: skip
                label = full(np.where(positive, names[1], names[0]).astype(object), object, None)
            for col in self.columns:
                if col == "label":
                    frame[col] = label
                elif col == "prediction" and self.task_type == "classification":
                    lab = pd.array(full(res.get(col, np.zeros(0)), np.float64), "Float64")
                    frame[col] = lab.astype("Int64")
                else:
                    frame[col] = full(res.get(col, np.zeros(0)))
            table = self.domain.check(parsed.comps, DOMAIN_K, good=good)
            # bad rows: no domain verdict, the reason is in ``error``
            dom = {c: [v if g else None for v, g in zip(table[c], good, strict=True)]
                   for c in ("in_domain", "domain_reason", "nearest")}  # fmt: skip
        frame["in_domain"] = pd.array(dom["in_domain"], "boolean")
        frame["domain_reason"] = dom["domain_reason"]
        frame["nearest"] = dom["nearest"]
        frame["error"] = parsed.errors
        return pd.DataFrame(frame, index=index)

    def _dft_domain(self, comps: CompositionArray) -> dict[str, list]:
        """oqmd-dft: elements and sizes seen in the pretraining corpus (the corpus itself is too
        large to ship, so there are no nearest compositions)."""
        from pymatgen.core import Element

        seen = np.zeros(MAX_Z + 1, dtype=bool)
        seen[self.meta["domain"]["elements"]] = True
        most = int(self.meta["domain"]["max_elements"])
        out: dict[str, list] = {"in_domain": [], "domain_reason": [], "nearest": []}
        for i in range(len(comps)):
            z, _ = comps[i]
            why = []
            rare = [Element.from_Z(int(a)).symbol for a in z if not seen[a]]
            if rare:
                why.append(f"element(s) {', '.join(rare)} rare or absent in the OQMD corpus")
            if len(z) > most:
                why.append(f"{len(z)} elements; the corpus has at most {most}")
            out["in_domain"].append(not why)
            out["domain_reason"].append("; ".join(why))
            out["nearest"].append("")
        return out

    def embed(self, *args: object, **kwargs: object) -> np.ndarray:
        raise ValueError(f"{self.path}: a ready model has no encoder to embed formulas with")

    embed_frame = embed


def command_line(name: str, root: str | None = None) -> str:
    """The command that builds ready model ``name``."""
    return "pretroost ready build " + shlex.join([name] + (["--root", root] if root else []))
