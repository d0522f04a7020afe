"""pretroost.sklearn: RoostRegressor / RoostClassifier as scikit-learn estimators.

scikit-learn's estimator checks feed numeric feature matrices, and ``check_estimator`` skips an
estimator whose tags say it takes strings (``input_tags.string``, no ``two_d_array``), as for
``CountVectorizer``. We therefore run the checks in two groups:

1. API checks that never fit, on the real estimators (``API_CHECKS``).
2. Every other check of ``parametrize_with_checks`` on a test subclass whose only change is that it
   turns each numeric row into a formula (``"O1" + Li^a Be^b ...``, amounts from the features), so
   that fit/predict semantics (fit returns self, idempotence, pickling, subset/order invariance,
   no overwritten parameters, multi-output, y validation, ...) are exercised through the real code.
   The checks excluded there (run as expected failures) are listed with their reasons in
   ``EXCLUDED``, ``EXCLUDED_REGRESSOR`` and ``EXCLUDED_CLASSIFIER`` below.
"""

from __future__ import annotations

import inspect
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.utils import estimator_checks as ec

import pretroost
from pretroost.data.composition import FormulaError
from pretroost.ensemble import Ensemble
from pretroost.finetune import FittedModel
from pretroost.sklearn import RoostClassifier, RoostRegressor
from tiny import BINARY_FORMULAS, tiny_encoder, toy_target

HAS_NEW_CHECKS = (
    "expected_failed_checks" in inspect.signature(ec.parametrize_with_checks).parameters
)
TINY = dict(
    epochs=1, batch_size=16, elem_fea_len=8, n_graph=1, elem_heads=1, elem_gate=(8,),
    elem_msg=(8,), cry_heads=1, cry_gate=(8,), cry_msg=(8,), trunk_hidden=(16,), out_hidden=(8, 8),
)  # fmt: skip
FORMULAS = BINARY_FORMULAS
Y = toy_target(FORMULAS)
LABELS = np.where(np.median(Y) < Y, "insulator", "metal")

# ------------------------------------------------------------------------- 1. API checks

API_CHECKS = [
    ec.check_estimator_cloneable,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
    ec.check_estimator_repr,
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_mixin_order,
    ec.check_estimators_unfitted,  # predict before fit -> NotFittedError (input never parsed)
]


@pytest.mark.parametrize("estimator", [RoostRegressor(**TINY), RoostClassifier(**TINY)], ids=str)
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_api_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(type(estimator).__name__, estimator)


def test_check_estimator_skips_string_estimators():
    """Why group 2 exists: scikit-learn does not run its suite on string-input estimators."""
    tags = RoostRegressor().__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    with pytest.warns(ec.SkipTestWarning, match="Can't test estimator"):
        ec.check_estimator(RoostRegressor(**TINY))


# ------------------------------------------------------------ 2. numeric-row adaptor checks

_ELEMENTS = ["Li", "Be", "B", "C", "N", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca"]


def _rows_to_formulas(X) -> list[str]:
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(len(X), -1)
    if X.shape[0] == 0:
        raise ValueError("Found array with 0 sample(s) (shape=(0, n)); need at least 1")
    amounts = np.exp(2 * np.tanh(X[:, : len(_ELEMENTS)] / 10))
    return [
        "O1" + "".join(f"{e}{a:.6g}" for e, a in zip(_ELEMENTS, row, strict=False))
        for row in amounts
    ]


class NumericRowsRegressor(RoostRegressor):
    """RoostRegressor reading numeric rows as formulas (test adaptor only)."""

    @staticmethod
    def _formulas(X) -> list[object]:
        return _rows_to_formulas(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string, tags.input_tags.two_d_array = False, True
        return tags


class NumericRowsClassifier(RoostClassifier):
    """RoostClassifier reading numeric rows as formulas (test adaptor only)."""

    @staticmethod
    def _formulas(X) -> list[object]:
        return _rows_to_formulas(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string, tags.input_tags.two_d_array = False, True
        return tags


_NO_FEATURES = "formula input has no feature count (like CountVectorizer): no n_features_in_"
_ONE_D = "a 1-D sequence of formulas is the estimators' native input, not an error"
_ADAPTOR = "tests the adaptor's numeric conversion (NaN/inf, complex, sparse, zero features), "
_ADAPTOR += "not the estimator; bad formulas are tested in test_bad_formulas_raise"
EXCLUDED = {
    "check_n_features_in": _NO_FEATURES,
    "check_n_features_in_after_fitting": _NO_FEATURES,
    "check_fit1d": _ONE_D,
    "check_fit2d_predict1d": _ONE_D,
    "check_estimators_nan_inf": _ADAPTOR,
    "check_estimators_empty_data_messages": _ADAPTOR,
    "check_estimator_sparse_tag": _ADAPTOR,
    "check_estimator_sparse_array": _ADAPTOR,
    "check_estimator_sparse_matrix": _ADAPTOR,
    "check_regressors_train": "needs a converged model (R² > 0.5) on numeric features that the "
    "formula adaptor turns into arbitrary compositions; learning is asserted on a composition "
    "target in test_learning.py",
    "check_classifiers_train": "needs a converged model (accuracy > 0.83) on numeric features "
    "that the formula adaptor turns into arbitrary compositions; learning is asserted on a "
    "composition target in test_learning.py",
}
EXCLUDED_REGRESSOR = {"check_complex_data": _ADAPTOR}
EXCLUDED_CLASSIFIER = {
    "check_methods_subset_invariance": "float32 network: a different batch changes the summation "
    "order in the last float32 ulp; the logit of a float32 sigmoid near 0.5 magnifies that to "
    "~2e-7, above the check's atol=1e-7 (predict and predict_proba agree)",
}


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, RoostClassifier):
        return {**EXCLUDED, **EXCLUDED_CLASSIFIER}
    return {**EXCLUDED, **EXCLUDED_REGRESSOR}


if HAS_NEW_CHECKS:

    @ec.parametrize_with_checks(
        [NumericRowsRegressor(**TINY), NumericRowsClassifier(**TINY)],
        expected_failed_checks=_expected_failures,
    )
    def test_sklearn_checks_on_numeric_rows(estimator, check):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check(estimator)


def test_classifier_subset_invariance_of_labels_and_probabilities():
    est = NumericRowsClassifier(**TINY).fit(
        np.random.default_rng(0).normal(size=(20, 3)), [0, 1] * 10
    )
    X = np.random.default_rng(1).normal(size=(10, 3))
    full = est.predict_proba(X)
    parts = np.vstack([est.predict_proba(X[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(full, parts, atol=1e-6)


# --------------------------------------------------------------------------- functional


def test_cross_val_score_regressor():
    scores = cross_val_score(RoostRegressor(**{**TINY, "epochs": 2}), FORMULAS, Y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_fit_predict_save_load(tmp_path):
    est = RoostRegressor(**TINY)
    assert est.fit(FORMULAS, Y) is est
    assert isinstance(est.model_, FittedModel) and est.n_outputs_ == 1
    assert not hasattr(est, "n_features_in_")
    pred, std = est.predict(["NaCl", "Fe2O3"], return_std=True)
    assert pred.shape == std.shape == (2,) and (std > 0).all()
    np.testing.assert_allclose(pretroost.load(est.model_.save(tmp_path / "m")).predict(
        ["NaCl", "Fe2O3"])["prediction"], pred, rtol=1e-6)  # fmt: skip
    by_frame = est.predict(pd.DataFrame({"formula": ["NaCl", "Fe2O3"]}))
    np.testing.assert_array_equal(by_frame, pred)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(["NaCl", "Fe2O3"]), pred)
    assert isinstance(est.score(FORMULAS, Y), float)


def test_multi_output_and_l1_regressor():
    y2 = np.column_stack([Y, -Y])
    est = RoostRegressor(**TINY, robust=False).fit(FORMULAS, y2)
    mean, std = est.predict(FORMULAS[:3], return_std=True)
    assert est.n_outputs_ == 2 and mean.shape == (3, 2) and np.isnan(std).all()


def test_classifier_with_string_labels():
    est = RoostClassifier(**{**TINY, "epochs": 2}).fit(FORMULAS, LABELS)
    assert est.classes_.tolist() == ["insulator", "metal"]
    proba = est.predict_proba(FORMULAS[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels = est.predict(FORMULAS[:5])
    assert set(labels) <= {"insulator", "metal"}
    assert ((est.decision_function(FORMULAS[:5]) > 0) == (labels == "metal")).all()
    assert 0.0 <= est.score(FORMULAS, LABELS) <= 1.0
    with pytest.raises(ValueError, match="Only binary"):
        RoostClassifier(**TINY).fit(FORMULAS, np.arange(len(FORMULAS)) % 3)


def test_ensemble_estimator():
    est = RoostRegressor(**TINY, n_members=2).fit(FORMULAS, Y)
    assert isinstance(est.model_, Ensemble) and len(est.model_) == 2
    _, std = est.predict(FORMULAS[:4], return_std=True)
    assert (std > 0).all()


def test_clone_and_set_params():
    est = RoostRegressor(**TINY)
    assert est.set_params(epochs=3, seed=5) is est
    assert est.get_params()["epochs"] == 3 and est.epochs == 3
    est.fit(FORMULAS[:20], Y[:20])
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.predict(["NaCl"])
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(no_such_param=1)


def test_bad_formulas_and_inputs_raise():
    with pytest.raises(FormulaError, match="row 1"):
        RoostRegressor(**TINY).fit(["NaCl", "Xx", "KCl"], [1.0, 2.0, 3.0])
    est = RoostRegressor(**TINY).fit(FORMULAS[:12], Y[:12])
    with pytest.raises(FormulaError, match="row 0"):
        est.predict([None, "NaCl"])
    with pytest.raises(ValueError, match="single string"):
        est.predict("NaCl")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        RoostRegressor(**TINY).fit(FORMULAS[:5], Y[:4])
    with pytest.raises(ValueError, match="valid: constant, cosine"):
        RoostRegressor(**TINY, schedule="linear").fit(FORMULAS[:5], Y[:5])
    with pytest.raises(ValueError, match="init must be"):
        RoostRegressor(**TINY, init="no/such/folder").fit(FORMULAS[:5], Y[:5])


def test_init_from_pretrained_encoder(tmp_path):
    import torch
    from torch import nn

    from pretroost.artefacts import save_artefact
    from pretroost.models.roost import RoostEncoder

    cfg = tiny_encoder(width=12, hidden=8)
    holder = nn.Module()
    holder.encoder = RoostEncoder(cfg)
    save_artefact(
        tmp_path / "ssl", holder, {"kind": "pretrained", "encoder": cfg.to_dict()}, card=""
    )
    est = RoostRegressor(**{**TINY, "epochs": 0}, init=str(tmp_path / "ssl")).fit(FORMULAS, Y)
    assert est.model_.model.config.encoder.elem_fea_len == 12  # the artefact's encoder config
    loaded = est.model_.model.encoder.embedding.weight
    torch.testing.assert_close(loaded, holder.encoder.embedding.weight)  # epochs=0: untouched


def test_init_from_a_shipped_encoder_name():
    """``init`` takes a shipped encoder's name like ``pretroost.load`` and ``--init`` do."""
    from pretroost.artefacts import read_config
    from pretroost.pretrained import shipped

    config = read_config(shipped()["dft-oqmd"])
    est = RoostRegressor(**{**TINY, "epochs": 0}, init="dft-oqmd").fit(FORMULAS[:8], Y[:8])
    assert est.model_.model.config.encoder.elem_fea_len == config["encoder"]["elem_fea_len"]


def test_threads_and_device_parameters():
    import torch

    before = torch.get_num_threads()
    est = RoostRegressor(**{**TINY, "epochs": 1}, threads=1, device="cpu")
    assert {"threads", "device"} <= est.get_params().keys()
    seen = []
    real_fit = __import__("pretroost.finetune", fromlist=["fit"]).fit

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), kwargs.get("device")))
        return real_fit(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("pretroost.finetune.fit", spy)
        est.fit(FORMULAS, Y)
    assert seen == [(1, "cpu")]
    assert torch.get_num_threads() == before  # restored
    assert est.predict(FORMULAS[:3]).shape == (3,)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        RoostClassifier(**TINY, threads=0).fit(FORMULAS, LABELS)


@pytest.mark.parametrize("cls", [RoostRegressor, RoostClassifier])
def test_estimator_defaults_are_the_config_dataclasses_defaults(cls) -> None:
    """scikit-learn reads hyperparameters from ``__init__``'s signature; the estimators' defaults
    there are read off the config dataclasses (pretroost.configs), so this holds by construction
    and guards against a literal creeping back: the architecture in RoostConfig, the head, split
    and start in FinetuneConfig, the optimisation in TrainConfig (the recipe's fields default to
    None: the converged recipe, pretroost.recipes)."""
    import dataclasses
    import inspect

    from pretroost.configs import FinetuneConfig, RoostConfig, TrainConfig

    params = {
        name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self"
    }  # fmt: skip
    sources = {
        RoostConfig: RoostConfig(), FinetuneConfig: FinetuneConfig(), TrainConfig: TrainConfig(),
    }  # fmt: skip
    recipe = {"epochs", "batch_size", "lr", "weight_decay", "schedule"}
    checked = set()
    for config_cls, instance in sources.items():
        for f in dataclasses.fields(config_cls):
            if f.name in params and f.name not in recipe:
                value = getattr(instance, f.name)
                value = tuple(value) if isinstance(value, list) else value
                assert params[f.name] == value, (cls.__name__, config_cls.__name__, f.name)
                checked.add(f.name)
    assert all(params[name] is None for name in recipe)
    # the architecture and start are all covered by the configs
    assert {"elem_fea_len", "n_graph", "elem_heads", "elem_gate", "elem_msg", "cry_heads",
            "cry_gate", "cry_msg", "elem_embedding", "trunk_hidden", "out_hidden",
            "val_fraction", "init_trunk", "warmup_epochs", "patience",
            "encoder_lr_scale"} <= checked  # fmt: skip
