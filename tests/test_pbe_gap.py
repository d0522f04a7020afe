"""The PBE band-gap teacher (pretroost.data.pbe_gap) and the trees' `fractions+magpie+pbe` set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pretroost.data import pbe_gap
from pretroost.data.composition import parse_formulas
from pretroost.trees import composition_features


def test_the_table_averages_per_composition_and_drops_the_experimental_tasks(
    data_cache, monkeypatch
) -> None:
    """Formulas that reduce alike are one row with their mean gap (noble-gas formulas, in no
    Matbench task); a composition of
    matbench_steels (one of the excluded tasks) is left out."""
    from pretroost.data.matbench import load_task

    monkeypatch.setenv("PRETROOST_CACHE", str(data_cache))
    steel = load_task("matbench_steels")["formula"].iloc[0]
    frame = pd.DataFrame(
        {"formula": ["Kr2Ne", "Kr4Ne2", "Ar3He", steel], "target": [4.0, 5.0, 1.7, 0.0]}
    )
    comps, y = pbe_gap.pbe_gap_table(frame=frame)
    assert comps.keys() == parse_formulas(["Kr2Ne", "Ar3He"]).keys()
    np.testing.assert_allclose(y, [4.5, 1.7])
    comps, y = pbe_gap.pbe_gap_table((), frame=frame)  # nothing excluded
    assert len(y) == 3


def test_pbe_feature_set_adds_the_teachers_gap_as_a_last_column(monkeypatch) -> None:
    """The teacher (here a stand-in that reads the first Magpie-side column) gets the same
    fractions + Magpie the trees see; its prediction is one more column."""

    class Teacher:
        def predict(self, x: np.ndarray) -> np.ndarray:
            assert x.shape[1] == 103 + 144
            return x[:, 0] * 10.0

    monkeypatch.setattr(pbe_gap, "_teacher", lambda: Teacher())
    comps = parse_formulas(["H2O", "NaCl"])
    base = composition_features(comps, "fractions+magpie")
    with_pbe = composition_features(comps, "fractions+magpie+pbe")
    assert with_pbe.shape == (2, base.shape[1] + 1)
    np.testing.assert_array_equal(with_pbe[:, :-1], base)
    np.testing.assert_allclose(with_pbe[:, -1], base[:, 0] * 10.0)
    with pytest.raises(ValueError, match="fractions"):
        composition_features(comps, "magpie+pbe")


# ------------------------------------------------------------------ the teacher, fitted once


def _fake_cache(root, monkeypatch, table_rows: int = 60):
    """A data cache holding only the CSVs the teacher's key hashes, and a tiny stand-in table and
    model settings, so that the teacher fits in well under a second."""
    from pretroost.data.matbench import TASKS

    monkeypatch.setenv("PRETROOST_CACHE", str(root))
    (root / "matbench").mkdir(parents=True)
    for name in (pbe_gap.TEACHER_SOURCE, *pbe_gap.TEACHER_EXCLUDES):
        (root / "matbench" / f"{TASKS[name].name}.csv").write_text(f"id,formula,target\n{name}\n")
    rng = np.random.default_rng(0)
    a = rng.uniform(0.1, 1.0, size=table_rows)
    comps = parse_formulas([f"Na{x:.3f}Cl" for x in a])
    fits = []

    def table(*args, **kwargs):
        fits.append(1)
        return comps, 3.0 * a

    monkeypatch.setattr(pbe_gap, "pbe_gap_table", table)
    monkeypatch.setitem(pbe_gap.TEACHER_SETTINGS, "max_iter", 5)
    pbe_gap._cached_teacher.cache_clear()
    return fits


def test_the_teacher_is_fitted_once_and_read_from_the_cache(tmp_path, monkeypatch, caplog) -> None:
    """The first use fits and writes <cache>/pbe_gap/teacher-<key>.skops (saying so); a new
    process (the in-process memo cleared) reads it; a change in the data or the settings makes a
    new key, so a stale teacher is never read."""
    import logging

    fits = _fake_cache(tmp_path, monkeypatch)
    comps = parse_formulas(["NaCl", "Na0.5Cl"])
    with caplog.at_level(logging.INFO, logger="pretroost.data.pbe_gap"):
        first = pbe_gap.pbe_gap_feature(comps)
    assert "fitting the PBE band-gap teacher once" in caplog.text and len(fits) == 1
    key = pbe_gap.teacher_info()["key"]
    cached = pbe_gap.teacher_cache_file(key)
    assert cached.is_file() and cached.parent == tmp_path / "pbe_gap"
    pbe_gap._cached_teacher.cache_clear()
    np.testing.assert_array_equal(pbe_gap.pbe_gap_feature(comps), first)
    assert len(fits) == 1  # read, not refitted
    monkeypatch.setitem(pbe_gap.TEACHER_SETTINGS, "max_iter", 6)
    assert pbe_gap.teacher_info()["key"] != key
    monkeypatch.setitem(pbe_gap.TEACHER_SETTINGS, "max_iter", 5)
    (tmp_path / "matbench" / "matbench_mp_gap.csv").write_text("id,formula,target\nchanged\n")
    info = pbe_gap.teacher_info()
    assert info["key"] != key and set(info["data_sha256"]) == {
        "matbench_mp_gap",
        *pbe_gap.TEACHER_EXCLUDES,
    }
    pbe_gap.teacher()
    assert len(fits) == 2
    pbe_gap._cached_teacher.cache_clear()


def test_a_saved_pbe_model_keeps_its_teacher_and_fits_nothing_at_load(
    tmp_path, monkeypatch
) -> None:
    """The model folder holds the teacher; loaded with the cache emptied and any fit refused, it
    predicts the same."""
    import pretroost
    from pretroost.trees import TEACHER_FILE, TreesConfig, fit_trees, save_trees

    _fake_cache(tmp_path / "cache", monkeypatch)
    rng = np.random.default_rng(1)
    a = rng.uniform(0.1, 1.0, size=40)
    formulas = [f"Na{x:.3f}Cl" for x in a]
    config = TreesConfig(models=("extratrees",), features=("fractions+magpie+pbe",),
                         n_estimators=5, inner_folds=2)  # fmt: skip
    fitted = fit_trees(parse_formulas(formulas[:30]), a[:30], "regression", config)
    folder = save_trees(fitted, tmp_path / "m", config=config, data="salts", n_train=30)
    assert (folder / TEACHER_FILE).is_file()
    meta = __import__("json").loads((folder / "config.json").read_text())
    assert meta["pbe_teacher"]["key"] == pbe_gap.teacher_info()["key"]
    expected = fitted.predict(parse_formulas(formulas[30:]))

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be fitted or read from the cache at load")

    pbe_gap._cached_teacher.cache_clear()
    monkeypatch.setattr(pbe_gap, "_teacher", refuse)
    monkeypatch.setattr(pbe_gap, "fit_teacher", refuse)
    monkeypatch.setenv("PRETROOST_CACHE", str(tmp_path / "empty"))
    out = pretroost.load(folder).predict(formulas[30:])
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected)
