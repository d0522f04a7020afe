"""Linear probe of structure teachers: is there property information in their embeddings?

A ridge regression from a frozen embedding to a property, scored by cross-validated R², is the
standard check that pretrained features are informative (a linear probe). Here it guards the
teacher pipeline: the Crystal Twins weights must clearly beat the same CGCNN randomly initialised
on Matbench's ``matbench_phonons`` (Dunn et al., npj Comput. Mater. 6, 138, 2020; target "last
phdos peak", 1265 structures). If they do not, the checkpoint or the graph building is wrong.

Run ``python -m pretroost.data.teachers.probe`` (writes ``results/teacher_probe.json``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pretroost.data.structures import read_structures
from pretroost.data.teachers.base import StructureTeacher
from pretroost.paths import SHARED_ENV, shared_data_dir
from pretroost.utils import atomic_write_json, git_sha, machine_description

__all__ = ["PHONONS_TARGET", "embed_timed", "ridge_probe", "run_probe"]

log = logging.getLogger(__name__)

PHONONS_TARGET = "last phdos peak"
ALPHAS = np.logspace(-3, 5, 17)


def ridge_probe(
    X: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0, alphas: Sequence[float] = ALPHAS
) -> float:
    """Mean R² of a standardised ridge regression under shuffled K-fold cross-validation.

    Each training fold fits a StandardScaler on the features and a RidgeCV (efficient
    leave-one-out choice of the penalty among ``alphas``); R² is measured on the held-out fold.

    Args:
        X: (n, d) features.
        y: (n,) target.
        folds: K.
        seed: shuffling seed of the folds.

    Returns:
        mean R² over the K held-out folds.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (n, d) and y (n,); got {X.shape} and {y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.asarray(alphas)))
    cv = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(model, X, y, cv=cv, scoring="r2")))


def embed_timed(
    teacher: StructureTeacher, structures: Sequence[Structure], *, batch_size: int = 64
) -> tuple[np.ndarray, float]:
    """Embed without caching and time it.

    Returns:
        ``(embeddings (n, dim), structures per second)``.
    """
    t0 = time.perf_counter()
    emb = teacher.embed(structures, batch_size=batch_size, progress=True)
    dt = time.perf_counter() - t0
    return emb, len(structures) / max(dt, 1e-9)


def _atom_init_mean(structures: Sequence[Structure], table: np.ndarray) -> np.ndarray:
    """(n, 92) site-averaged CGCNN element features: a composition-only reference."""
    return np.stack([table[[site.specie.Z for site in s]].mean(axis=0) for s in structures]).astype(
        np.float32
    )


def run_probe(
    path: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str] | None = "results/teacher_probe.json",
    n: int | None = None,
    chgnet: bool = True,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Probe the teachers on matbench_phonons.

    Embeds the structures with the Crystal Twins Barlow teacher (projection head and pre-head
    pooled layer), the same CGCNN randomly initialised (seed ``seed``), the SimSiam variant,
    CHGNet (when ``chgnet`` and the package is installed) and a composition-only reference (mean
    CGCNN element features), then scores each with :func:`ridge_probe`.

    Args:
        path: the ``matbench_phonons.json.gz``; ``None`` uses the shared data folder.
        out: where to write the JSON report (``None``: do not write).
        n: probe only the first n structures (``None``: all 1265).
        chgnet: also probe CHGNet.
        folds, seed: cross-validation settings.

    Returns:
        the report: per teacher its dim, R², structures/s; plus machine, time, git commit.
    """
    from pretroost.data.teachers.cgcnn import CrystalTwinsTeacher

    if path is None:
        root = shared_data_dir()
        if root is None:
            raise FileNotFoundError(
                f"no shared data folder: set {SHARED_ENV} or pass the path of matbench_phonons"
            )
        path = root / "matbench" / "matbench_phonons.json.gz"
    items = read_structures(path)
    from matminer.utils.io import load_dataframe_from_json

    y = load_dataframe_from_json(str(path), pbar=False)[PHONONS_TARGET].to_numpy(np.float64)
    structures = [s for _, s in items]
    if n is not None:
        structures, y = structures[:n], y[:n]
    log.info("probing %d structures from %s", len(structures), path)

    teachers: dict[str, StructureTeacher] = {
        "crystal_twins_barlow_head": CrystalTwinsTeacher(variant="barlow", layer="head"),
        "random_cgcnn_barlow_head": CrystalTwinsTeacher(
            "random", "barlow", layer="head", seed=seed
        ),
        "crystal_twins_barlow_pooled": CrystalTwinsTeacher(variant="barlow", layer="pooled"),
        "random_cgcnn_barlow_pooled": CrystalTwinsTeacher(
            "random", "barlow", layer="pooled", seed=seed
        ),
        "crystal_twins_simsiam_head": CrystalTwinsTeacher(variant="simsiam", layer="head"),
    }
    if chgnet:
        try:
            from pretroost.data.teachers.chgnet import CHGNetTeacher

            teachers["chgnet"] = CHGNetTeacher()
        except ImportError as exc:
            log.warning("skipping CHGNet: %s", exc)

    results: dict[str, Any] = {}
    for key, teacher in teachers.items():
        emb, rate = embed_timed(teacher, structures)
        r2 = ridge_probe(emb, y, folds=folds, seed=seed)
        results[key] = {
            "teacher": teacher.name,
            "fingerprint": teacher.fingerprint,
            "dim": teacher.dim,
            "r2": r2,
            "structures_per_s": rate,
        }
        log.info("%s: R2 %.4f (%d-d, %.1f structures/s)", key, r2, teacher.dim, rate)
    ref = _atom_init_mean(structures, teachers["crystal_twins_barlow_head"].atom_table)
    results["composition_atom_init_mean"] = {
        "teacher": "mean of CGCNN atom_init features (composition only, no structure)",
        "dim": int(ref.shape[1]),
        "r2": ridge_probe(ref, y, folds=folds, seed=seed),
    }
    report = {
        "task": "matbench_phonons",
        "target": PHONONS_TARGET,
        "n_structures": len(structures),
        "probe": f"StandardScaler + RidgeCV(alphas=logspace(-3, 5, 17)), {folds}-fold KFold "
        f"(shuffle, seed {seed}), mean R2",
        "results": results,
        "trained_minus_random_r2": results["crystal_twins_barlow_head"]["r2"]
        - results["random_cgcnn_barlow_head"]["r2"],
        "machine": machine_description(),
        "git": git_sha(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if out is not None:
        atomic_write_json(out, report)
        log.info("wrote %s", out)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pretroost.data.teachers.probe [--n N] [--no-chgnet] [--out PATH]``."""
    from pretroost.utils import setup_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=None, help="matbench_phonons.json.gz")
    parser.add_argument("--out", type=Path, default=Path("results/teacher_probe.json"))
    parser.add_argument("--n", type=int, default=None, help="only the first N structures")
    parser.add_argument("--no-chgnet", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging()
    run_probe(args.path, out=args.out, n=args.n, chgnet=not args.no_chgnet, seed=args.seed)


if __name__ == "__main__":
    main()
