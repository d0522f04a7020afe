"""A tiny Roost learns: it fits a composition target on formulas it never saw and separates two
classes. The target is a fraction-weighted sum of an element property (Pauling
electronegativity), which Roost's weighted pooling can represent exactly, so a working model gets
close to it within seconds; a broken one (no gradient, shuffled targets, wrong weights) cannot
reach the thresholds: predicting the mean gives R² = 0 and AUC = 0.5."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pymatgen.core import Element
from sklearn.metrics import r2_score, roc_auc_score

from pretroost import RoostClassifier, RoostRegressor
from pretroost.data.composition import parse_formulas
from tiny import capture_logs

ELEMENTS = ["Li", "Na", "K", "Mg", "Ca", "Sr", "Al", "Ga", "Ti", "Fe",
            "Cu", "Zn", "Si", "Sn", "N", "P", "O", "S", "Cl", "F"]  # fmt: skip
TINY = dict(
    elem_fea_len=16, n_graph=1, elem_heads=1, elem_gate=(32,), elem_msg=(32,), cry_heads=1,
    cry_gate=(32,), cry_msg=(32,), trunk_hidden=(32,), out_hidden=(32, 16),
    epochs=30, batch_size=32, lr=3e-3, schedule="cosine", seed=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray]:
    """400 distinct binary/ternary formulas and their fraction-weighted electronegativity."""
    rng = np.random.default_rng(0)
    forms: set[str] = set()
    while len(forms) < 400:
        els = rng.choice(ELEMENTS, rng.integers(2, 4), replace=False)
        forms.add("".join(f"{e}{rng.integers(1, 5)}" for e in els))
    formulas = sorted(forms)
    rng.shuffle(formulas)
    comps = parse_formulas(formulas)
    chi = {Element(e).Z: Element(e).X for e in ELEMENTS}
    y = np.array([sum(f * chi[z] for z, f in zip(*comps[i], strict=True)) for i in range(400)])
    return formulas, y


def test_regressor_fits_a_composition_target_on_held_out_formulas(data) -> None:
    formulas, y = data
    est = RoostRegressor(robust=False, **TINY).fit(formulas[:320], y[:320])
    r2 = r2_score(y[320:], est.predict(formulas[320:]))
    assert r2 > 0.9, r2


def test_classifier_separates_two_classes_on_held_out_formulas(data) -> None:
    formulas, y = data
    labels = np.where(y > np.median(y), "high", "low")
    est = RoostClassifier(**TINY).fit(formulas[:320], labels[:320])
    prob = est.predict_proba(formulas[320:])[:, list(est.classes_).index("high")]
    auc = roc_auc_score(labels[320:] == "high", prob)
    accuracy = float(np.mean(est.predict(formulas[320:]) == labels[320:]))
    assert auc > 0.9 and accuracy > 0.8, (auc, accuracy)


def test_training_logs_one_line_per_epoch_without_a_terminal(data, caplog, monkeypatch) -> None:
    """No TTY (pytest captures stderr): the start and every epoch are logged at INFO."""
    capture_logs("pretroost.train", caplog, monkeypatch)
    formulas, y = data
    with caplog.at_level(logging.INFO, logger="pretroost.train"):
        RoostRegressor(**{**TINY, "epochs": 3}, progress=None).fit(formulas[:64], y[:64])
    lines = [r.getMessage() for r in caplog.records if r.name == "pretroost.train"]
    assert "3 epochs x 2 steps of 32 compositions" in lines[0], lines
    epochs = [x for x in lines if " epoch " in x]
    assert len(epochs) == 3, lines
    for k, line in enumerate(epochs, start=1):
        assert f"epoch {k}/3: train loss " in line and ", val " in line
        assert line.endswith("compositions/s") and " s, " in line
