"""scikit-learn estimators over chemical formulas: :class:`RoostRegressor`, :class:`RoostClassifier`.

``X`` is a sequence of formula strings (list, 1-D array, Series) or a 2-D array / DataFrame with one
column of formulas; ``y`` the targets. They plug into ``cross_val_score``, ``GridSearchCV``,
``clone`` and pipelines::

    from sklearn.model_selection import cross_val_score
    from pretroost import RoostRegressor

    cross_val_score(RoostRegressor(epochs=30, schedule="cosine"), formulas, y, cv=5)

Like scikit-learn's own text estimators (``CountVectorizer``), they take strings, not numeric
features, so ``n_features_in_``/``feature_names_in_`` are not set. Fitted state:

- ``model_``: the trained :class:`~pretroost.finetune.FittedModel` (``n_members=1``) or
  :class:`~pretroost.ensemble.Ensemble` (``n_members>1``); ``model_.save(DIR)`` writes an artefact
  folder that :func:`pretroost.load` reads;
- ``n_outputs_`` (regressor): number of targets;
- ``classes_`` (classifier): the two class labels, ``classes_[1]`` being the positive class.

Bad formulas raise :class:`~pretroost.data.composition.FormulaError` (a ``ValueError``) naming the
row, in ``fit`` and ``predict`` alike: an estimator cannot return NaN rows silently. Use
:meth:`Predictor.predict <pretroost.predict.Predictor.predict>` for row-wise error reporting.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from pretroost.configs import FinetuneConfig, RoostConfig, TaskType

if TYPE_CHECKING:
    from pretroost.ensemble import Ensemble
    from pretroost.finetune import FittedModel

__all__ = ["RoostClassifier", "RoostRegressor"]

log = logging.getLogger(__name__)

#: where the estimators' defaults come from: scikit-learn reads hyperparameters from
#: ``__init__``'s signature (``get_params``, ``clone``), so each is a keyword there whose default
#: is read off the config dataclasses (:mod:`pretroost.configs`): a supervised run's defaults
#: (head, validation split, start), its encoder's (the paper's Roost) and its optimisation's. The
#: recipe's fields (epochs, batch_size, lr, weight_decay, schedule) default to None instead: the
#: converged recipe's values, with its smaller batches for small training sets.
_FINETUNE = FinetuneConfig()
_ENCODER = _FINETUNE.encoder
_TRAIN = _FINETUNE.train


class _RoostEstimator(BaseEstimator):
    """Shared machinery; hyperparameters are documented on :class:`RoostRegressor`."""

    _task_type: ClassVar[TaskType] = "regression"

    def __init__(
        self,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        schedule: str | None = None,
        warmup_epochs: int = _TRAIN.warmup_epochs,
        patience: int | None = _TRAIN.patience,
        encoder_lr_scale: float = _TRAIN.encoder_lr_scale,
        elem_embedding: str = _ENCODER.elem_embedding,
        elem_fea_len: int = _ENCODER.elem_fea_len,
        n_graph: int = _ENCODER.n_graph,
        elem_heads: int = _ENCODER.elem_heads,
        elem_gate: tuple[int, ...] = _ENCODER.elem_gate,
        elem_msg: tuple[int, ...] = _ENCODER.elem_msg,
        cry_heads: int = _ENCODER.cry_heads,
        cry_gate: tuple[int, ...] = _ENCODER.cry_gate,
        cry_msg: tuple[int, ...] = _ENCODER.cry_msg,
        trunk_hidden: tuple[int, ...] = _FINETUNE.trunk_hidden,
        out_hidden: tuple[int, ...] = _FINETUNE.out_hidden,
        init: str = _FINETUNE.init,
        init_trunk: bool = _FINETUNE.init_trunk,
        val_fraction: float = _FINETUNE.val_fraction,
        n_members: int = 1,
        ensemble_split: str = "different",
        seed: int = _TRAIN.seed,
        progress: bool = False,
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.patience = patience
        self.encoder_lr_scale = encoder_lr_scale
        self.elem_embedding = elem_embedding
        self.elem_fea_len = elem_fea_len
        self.n_graph = n_graph
        self.elem_heads = elem_heads
        self.elem_gate = elem_gate
        self.elem_msg = elem_msg
        self.cry_heads = cry_heads
        self.cry_gate = cry_gate
        self.cry_msg = cry_msg
        self.trunk_hidden = trunk_hidden
        self.out_hidden = out_hidden
        self.init = init
        self.init_trunk = init_trunk
        self.val_fraction = val_fraction
        self.n_members = n_members
        self.ensemble_split = ensemble_split
        self.seed = seed
        self.progress = progress
        self.threads = threads
        self.device = device

    # --------------------------------------------------------------------------------- tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # formulas, like CountVectorizer's documents
        tags.input_tags.two_d_array = False  # no numeric feature matrices
        return tags

    # -------------------------------------------------------------------------------- config
    def _loss(self) -> str | None:
        return None

    def _finetune_config(self):
        from pretroost.errors import ArtefactError
        from pretroost.pretrained import resolve

        init = self.init
        if init != "scratch":
            try:
                init = str(resolve(init))  # a folder or a shipped encoder's name
            except ArtefactError as exc:
                raise ValueError(
                    "init must be 'scratch', a pretrained model folder or a shipped encoder's "
                    f"name, got {self.init!r} ({exc})"
                ) from None
            if not Path(init).is_dir():
                raise ValueError(
                    f"init must be 'scratch' or a pretrained model folder, got {self.init!r}"
                )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if int(self.n_members) < 1:
            raise ValueError(f"n_members must be >= 1, got {self.n_members}")
        default = _FINETUNE  # the converged recipe (pretroost.recipes) where None
        recipe = {
            k: v
            for k, v in dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                             weight_decay=self.weight_decay, schedule=self.schedule).items()
            if v is not None
        }  # fmt: skip
        return FinetuneConfig(
            train=replace(
                default.train, **recipe, encoder_lr_scale=self.encoder_lr_scale,
                warmup_epochs=self.warmup_epochs, patience=self.patience, seed=self.seed,
            ),
            # a batch size given by hand is used whatever the training-set size
            small_batch_size=default.small_batch_size if self.batch_size is None else None,
            encoder=RoostConfig(
                elem_embedding=self.elem_embedding, elem_fea_len=self.elem_fea_len,
                n_graph=self.n_graph, elem_heads=self.elem_heads, elem_gate=tuple(self.elem_gate),
                elem_msg=tuple(self.elem_msg), cry_heads=self.cry_heads,
                cry_gate=tuple(self.cry_gate), cry_msg=tuple(self.cry_msg),
            ),
            trunk_hidden=tuple(self.trunk_hidden),
            out_hidden=tuple(self.out_hidden),
            loss=self._loss(),
            val_fraction=self.val_fraction,
            init=init,
            init_trunk=self.init_trunk,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- data
    @staticmethod
    def _formulas(X) -> list[object]:
        from pretroost.predict import as_formula_list

        formulas, _ = as_formula_list(X, allow_str=False)
        if not formulas:
            raise ValueError(
                "Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is required."
            )
        return formulas

    def _train(self, X, y: np.ndarray) -> None:
        from pretroost.data.composition import parse_formulas
        from pretroost.ensemble import fit_ensemble
        from pretroost.finetune import fit

        formulas = self._formulas(X)
        check_consistent_length(formulas, y)
        comps = parse_formulas(formulas, source="X")
        config = self._finetune_config()
        name = type(self).__name__
        model: FittedModel | Ensemble
        with self._threads():
            if int(self.n_members) == 1:
                model = fit(
                    comps, y, self._task_type, config, seed=self.seed, progress=self.progress,
                    name=name, device=self.device,
                )  # fmt: skip
            else:
                model = fit_ensemble(
                    comps, y, self._task_type, config, int(self.n_members),
                    split=self.ensemble_split, progress=self.progress, name=name,  # type: ignore[arg-type]
                    device=self.device,
                )  # fmt: skip
        self.model_ = model

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """torch's CPU thread count set to ``threads`` for the call (restored afterwards)."""
        if self.threads is None:
            yield
            return
        import torch

        if int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        before = torch.get_num_threads()
        torch.set_num_threads(int(self.threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _predict_frame(self, X):
        from pretroost.predict import Predictor

        check_is_fitted(self, "model_")
        formulas = self._formulas(X)
        with self._threads():
            return Predictor(self.model_).predict(formulas, errors="raise", progress=self.progress)


class RoostRegressor(RegressorMixin, _RoostEstimator):
    """Roost regression on formulas (``score``: R²).

    Parameters (stored as given; validated in ``fit``):
        epochs, batch_size, lr, weight_decay, schedule, warmup_epochs, patience,
        encoder_lr_scale: optimisation (:class:`~pretroost.configs.TrainConfig`); None (the
            default of the first five): the converged recipe's (:mod:`pretroost.recipes`: 300
            epochs, constant lr 3e-4, weight decay 1e-6, batches of 128, or 32 under 1,000
            training rows).
        elem_embedding, elem_fea_len, n_graph, elem_heads, elem_gate, elem_msg, cry_heads,
        cry_gate, cry_msg: the Roost encoder (:class:`~pretroost.configs.RoostConfig`);
            ignored when ``init`` is a pretrained folder (its encoder config is used).
        trunk_hidden, out_hidden: output network widths
            (:class:`~pretroost.configs.FinetuneConfig`, as are ``init`` and ``val_fraction``).
        init: ``"scratch"`` or a pretrained artefact folder; ``init_trunk`` also loads its trunk.
        robust: Roost's robust L1 loss with a learned aleatoric std (else plain L1).
        val_fraction: share of the training rows held out for model selection (best epoch).
        n_members: > 1 trains a deep ensemble (:func:`~pretroost.ensemble.fit_ensemble`) with
            ``ensemble_split`` ``"different"`` or ``"same"`` validation splits.
        seed: seeds weights, splits and batch order (member ``k`` of an ensemble uses ``seed+k``).
        progress: show training progress bars (else, without one, a log line per epoch).
        threads: torch CPU threads while fitting and predicting (None: torch's setting).
        device: where to train, e.g. ``"cuda"`` (None: the CPU); the fitted model and
            predictions are on the CPU.
    """

    def __init__(
        self,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        schedule: str | None = None,
        warmup_epochs: int = _TRAIN.warmup_epochs,
        patience: int | None = _TRAIN.patience,
        encoder_lr_scale: float = _TRAIN.encoder_lr_scale,
        elem_embedding: str = _ENCODER.elem_embedding,
        elem_fea_len: int = _ENCODER.elem_fea_len,
        n_graph: int = _ENCODER.n_graph,
        elem_heads: int = _ENCODER.elem_heads,
        elem_gate: tuple[int, ...] = _ENCODER.elem_gate,
        elem_msg: tuple[int, ...] = _ENCODER.elem_msg,
        cry_heads: int = _ENCODER.cry_heads,
        cry_gate: tuple[int, ...] = _ENCODER.cry_gate,
        cry_msg: tuple[int, ...] = _ENCODER.cry_msg,
        trunk_hidden: tuple[int, ...] = _FINETUNE.trunk_hidden,
        out_hidden: tuple[int, ...] = _FINETUNE.out_hidden,
        init: str = _FINETUNE.init,
        init_trunk: bool = _FINETUNE.init_trunk,
        robust: bool = True,
        val_fraction: float = _FINETUNE.val_fraction,
        n_members: int = 1,
        ensemble_split: str = "different",
        seed: int = _TRAIN.seed,
        progress: bool = False,
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            schedule=schedule, warmup_epochs=warmup_epochs, patience=patience,
            encoder_lr_scale=encoder_lr_scale, elem_embedding=elem_embedding,
            elem_fea_len=elem_fea_len, n_graph=n_graph, elem_heads=elem_heads,
            elem_gate=elem_gate, elem_msg=elem_msg, cry_heads=cry_heads, cry_gate=cry_gate,
            cry_msg=cry_msg, trunk_hidden=trunk_hidden, out_hidden=out_hidden, init=init,
            init_trunk=init_trunk, val_fraction=val_fraction, n_members=n_members,
            ensemble_split=ensemble_split, seed=seed, progress=progress, threads=threads,
            device=device,
        )  # fmt: skip
        self.robust = robust

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _loss(self) -> str | None:
        return "robust" if self.robust else "l1"

    def fit(self, X, y) -> RoostRegressor:
        """Train on formulas ``X`` and targets ``y`` (n,) or (n, T); returns ``self``."""
        from pretroost.finetune import validate_targets

        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        y_arr = np.asarray(y)
        if y_arr.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y_arr.shape}")
        y_2d = validate_targets(y_arr, "regression", source="y")
        self._train(X, y_2d)
        self.n_outputs_ = y_2d.shape[1]
        self._y_was_2d = y_arr.ndim == 2
        return self

    def predict(self, X, return_std: bool = False):
        """Predicted means, (n,) (or (n, T) when fitted on 2-D ``y``); with ``return_std`` also
        the predicted std (aleatoric for one robust model, total for an ensemble; NaN when
        neither applies)."""
        df = self._predict_frame(X)
        t = self.n_outputs_
        if t == 1:
            mean, std = df[["prediction"]].to_numpy(), df[["std"]].to_numpy()
        else:
            mean = df[[f"prediction_{j}" for j in range(t)]].to_numpy()
            std = df[[f"std_{j}" for j in range(t)]].to_numpy()
        if not self._y_was_2d:
            mean, std = mean[:, 0], std[:, 0]
        return (mean, std) if return_std else mean


class RoostClassifier(ClassifierMixin, _RoostEstimator):
    """Roost binary classification on formulas (``score``: accuracy).

    Any two labels work (``classes_`` sorted; ``classes_[1]`` is the positive class). Parameters
    as :class:`RoostRegressor`, less ``robust`` (the loss is binary cross-entropy).
    """

    _task_type: ClassVar[TaskType] = "classification"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y) -> RoostClassifier:
        """Train on formulas ``X`` and binary labels ``y``; returns ``self``."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y")
        if y_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {y_type}."
            )
        classes = np.unique(y)
        if len(classes) != 2:
            raise ValueError(
                f"{type(self).__name__} needs 2 classes to learn from; y has 1 class "
                f"({classes.tolist()})"
            )
        self._train(X, (y == classes[1]).astype(np.float64).reshape(-1, 1))
        self.classes_ = classes
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, 2) probabilities of ``classes_[0]`` and ``classes_[1]``."""
        p = self._predict_frame(X)["probability"].to_numpy(dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    def decision_function(self, X) -> np.ndarray:
        """(n,) log-odds of ``classes_[1]`` (for an ensemble: of the mean probability)."""
        p = np.clip(self.predict_proba(X)[:, 1], 1e-7, 1 - 1e-7)
        return np.log(p) - np.log1p(-p)

    def predict(self, X) -> np.ndarray:
        """Labels from ``classes_``: ``classes_[1]`` where its probability exceeds 0.5."""
        positive = self.predict_proba(X)[:, 1] > 0.5
        return self.classes_[positive.astype(int)]
