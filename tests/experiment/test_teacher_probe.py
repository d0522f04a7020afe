"""The teacher probe (``pretroost teacher-probe``): ridge probes of structure embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretroost.experiment.teacher_probe import (
    ridge_probe,
    ridge_probe_folds,
    run_probe,
)


def test_ridge_probe() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.01 * rng.normal(size=200)
    assert ridge_probe(X, y) > 0.99
    assert ridge_probe(rng.normal(size=(200, 5)), y) < 0.1
    assert ridge_probe_folds(X, y).shape == (5,)
    with pytest.raises(ValueError, match="valid"):
        ridge_probe(X, y, scaler="minmax")


@pytest.mark.slow
def test_run_probe_small(shared_data: Path, tmp_path: Path) -> None:
    """End to end on 128 structures (the reported numbers come from the full 1265)."""
    out = tmp_path / "probe.json"
    report = run_probe(n=128, out=out, chgnet=False, random_seeds=(0,))
    saved = json.loads(out.read_text())
    assert saved["n_structures"] == 128 and "machine" in saved
    for r in saved["results"].values():
        assert np.isfinite(r["r2_quantile_scaled"])
    bt = report["barlow_twins_consistency"]
    assert bt["crystal_twins_barlow"] < bt["random_cgcnn"]


@pytest.mark.slow
def test_run_probe_carbon_small(shared_data: Path, tmp_path: Path) -> None:
    """The structure-only dataset (constant composition) loads its CSV target and probes."""
    report = run_probe(dataset="carbon_24", n=128, out=None, chgnet=False, random_seeds=(0,))
    assert report["n_structures"] == 128 and report["target"] == "energy_per_atom"
    # pure carbon: the composition-only reference has a constant feature vector
    assert report["results"]["composition_atom_init_mean"]["r2"] <= 0.0
    with pytest.raises(ValueError, match="valid"):
        run_probe(dataset="nope", out=None)
