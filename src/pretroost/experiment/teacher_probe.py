"""Linear probe of structure teachers: is there property information in their embeddings?

A ridge regression from a frozen embedding to a property, scored by cross-validated R², is the
standard check that pretrained features are informative (a linear probe). Here it is run on
Matbench's ``matbench_phonons`` (Dunn et al., npj Comput. Mater. 6, 138, 2020; target "last phdos
peak", 1265 structures) for the Crystal Twins encoders, the same CGCNN randomly initialised, CHGNet
and a composition-only reference.

What it showed (``results/teacher_probe.json``): on this task the linear probe does *not* separate
trained from random CGCNN weights (Barlow head R² 0.60 vs 0.56-0.64 over three random seeds), and
the composition-only reference (0.67) matches or beats every structure teacher: the highest phonon
peak is set mostly by the light elements present, so a linear read-out of almost any injective
featurisation of the composition does as well. A few structures (e.g. diamond-like carbon) get
extreme SimSiam/Barlow vectors that a linear model extrapolates badly, hence the per-fold values
and the quantile-scaled variant.

A structure-only control, ``--dataset carbon_24`` (2,032 pure-carbon CDVAE structures, energy per
atom; ``results/teacher_probe_carbon24.json``), removes the composition entirely (composition-only
R² = 0.00) — and still does not separate them: trained CGCNN R² 0.88-0.93, random 0.89-0.92,
CHGNet 0.92. A randomly initialised graph network is already a strong geometric featuriser for a
linear read-out (random-feature regression), so a linear probe is no test of the loading.
:func:`barlow_twins_consistency` is: on matbench_phonons (Materials Project crystals, the kind of
data Crystal Twins was pretrained on) the Barlow checkpoint scores its own pretraining objective at
about half the loss of a random encoder (30.7 vs 64.7), and worse with mis-built graphs. On the
far-out-of-distribution pure-carbon cells it does not (113.6 vs 93.3).

Run ``pretroost teacher-probe`` (writes ``results/teacher_probe.json``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from pymatgen.core import Structure
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from pretroost.data.structures import read_structures
from pretroost.data.teachers.base import StructureTeacher
from pretroost.data.teachers.cgcnn import (
    CrystalGraph,
    CrystalTwinsTeacher,
    Layer,
    Variant,
    collate_graphs,
)
from pretroost.data.teachers.chgnet import CHGNetTeacher
from pretroost.paths import SHARED_ENV, shared_data_dir
from pretroost.utils import atomic_write_json, git_sha, machine_description

__all__ = [
    "PHONONS_TARGET",
    "barlow_twins_consistency",
    "embed_timed",
    "ridge_probe",
    "ridge_probe_folds",
    "run_probe",
]

log = logging.getLogger("pretroost.experiment.teacher_probe")

PHONONS_TARGET = "last phdos peak"
ALPHAS = np.logspace(-3, 5, 17)


def ridge_probe_folds(
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    alphas: Sequence[float] | np.ndarray = ALPHAS,
    scaler: str = "standard",
) -> np.ndarray:
    """Per-fold R² of a ridge regression on scaled features under shuffled K-fold CV.

    Each training fold fits the scaler on the features and a RidgeCV (efficient leave-one-out
    choice of the penalty among ``alphas``); R² is measured on the held-out fold.

    Args:
        X: (n, d) features.
        y: (n,) target.
        folds: K.
        seed: shuffling seed of the folds.
        scaler: ``"standard"`` (zero mean, unit variance: the probe) or ``"quantile"`` (each
            feature mapped to a normal by its quantiles: a variant robust to a few extreme
            embeddings, which a linear model otherwise extrapolates wildly).

    Returns:
        (K,) held-out R² of each fold.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (n, d) and y (n,); got {X.shape} and {y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    n_train = len(X) - math.ceil(len(X) / folds)  # the smallest training fold
    scalers: dict[str, Callable[[], Any]] = {
        "standard": StandardScaler,
        "quantile": lambda: QuantileTransformer(
            n_quantiles=min(200, n_train), output_distribution="normal"
        ),
    }
    if scaler not in scalers:
        raise ValueError(f"unknown scaler {scaler!r}; valid: {sorted(scalers)}")
    model = make_pipeline(scalers[scaler](), RidgeCV(alphas=np.asarray(alphas)))
    cv = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return np.asarray(cross_val_score(model, X, y, cv=cv, scoring="r2"), dtype=np.float64)


def ridge_probe(
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    alphas: Sequence[float] | np.ndarray = ALPHAS,
    scaler: str = "standard",
) -> float:
    """Mean R² of RidgeCV on standardised features under shuffled K-fold CV (default 5-fold).

    Arguments as :func:`ridge_probe_folds`; returns the mean of its per-fold R².
    """
    return float(
        np.mean(ridge_probe_folds(X, y, folds=folds, seed=seed, alphas=alphas, scaler=scaler))
    )


def embed_timed(
    teacher: StructureTeacher, structures: Sequence[Structure], *, warmup: int = 8
) -> tuple[np.ndarray, float]:
    """Embed without caching and time it (after a warm-up call on ``warmup`` structures).

    Returns:
        ``(embeddings (n, dim), structures per second)``.
    """
    if warmup:
        teacher.embed(structures[:warmup], progress=False)
    t0 = time.perf_counter()
    emb = teacher.embed(structures, progress=True)
    dt = time.perf_counter() - t0
    return emb, len(structures) / max(dt, 1e-9)


def _atom_init_mean(structures: Sequence[Structure], table: np.ndarray) -> np.ndarray:
    """(n, 92) site-averaged CGCNN element features: a composition-only reference."""
    return np.stack([table[[site.specie.Z for site in s]].mean(axis=0) for s in structures]).astype(
        np.float32
    )


def _augment(graph: CrystalGraph, rng: np.random.Generator, radius: float) -> CrystalGraph:
    """One Crystal Twins pretraining view: zero the input features of floor(10%) (at least one)
    of the atoms and keep a random ceil(90%) of each atom's (at most 12) real neighbours, the other
    slots padded (index 0, distance radius + 1)."""
    atom = graph.atom_fea.copy()
    n = len(graph.nbr_idx)
    atom[rng.choice(n, max(1, int(np.floor(0.1 * n))), replace=False)] = 0.0
    dist = np.full_like(graph.nbr_dist, radius + 1.0)
    idx = np.zeros_like(graph.nbr_idx)
    n_real = (graph.nbr_dist <= radius).sum(axis=1)
    for i in range(n):
        keep = rng.choice(n_real[i], int(np.ceil(0.9 * n_real[i])), replace=False)
        dist[i, : len(keep)] = graph.nbr_dist[i, keep]
        idx[i, : len(keep)] = graph.nbr_idx[i, keep]
    return CrystalGraph(atom, dist, idx)


def _barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> float:
    """Barlow Twins loss (Zbontar et al., ICML 2021) of two (B, D) views, each L2-normalised
    first as Crystal Twins did: sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2, C the
    cross-correlation of the batch-standardised views."""
    z1 = torch.nn.functional.normalize(z1, dim=1)
    z2 = torch.nn.functional.normalize(z2, dim=1)
    z1 = (z1 - z1.mean(0)) / z1.std(0).clamp_min(1e-12)
    z2 = (z2 - z2.mean(0)) / z2.std(0).clamp_min(1e-12)
    c = z1.T @ z2 / len(z1)
    diag = torch.diagonal(c)
    return float(((1 - diag) ** 2).sum() + lambd * ((c**2).sum() - (diag**2).sum()))


def barlow_twins_consistency(
    teacher: CrystalTwinsTeacher,
    structures: Sequence[Structure],
    *,
    batch_size: int = 64,
    seed: int = 0,
    lambd: float = 0.0051,
) -> float:
    """Mean Barlow Twins loss of the encoder's 256-d head on pairs of Crystal Twins-style views.

    This is the objective the Barlow checkpoint was trained to minimise (``lambd`` from its
    ``config.yaml``), so correctly loaded weights fed correctly built graphs score far lower than
    a random encoder, or than the same weights fed wrongly built graphs (a wrong Gaussian width,
    shuffled element features, ...). It checks the loading and the graph building directly,
    whatever a downstream probe says.

    Returns:
        mean loss over batches of ``batch_size`` structures (lower is better).
    """
    rng = np.random.default_rng(seed)
    graphs = [teacher.graph(s) for s in structures]
    losses = []
    with torch.inference_mode():
        for lo in range(0, len(graphs) - batch_size + 1, batch_size):
            chunk = graphs[lo : lo + batch_size]
            views = []
            for _ in range(2):
                batch = collate_graphs([_augment(g, rng, teacher.config.radius) for g in chunk])
                views.append(teacher.encoder(*batch, len(chunk))[1])
            losses.append(_barlow_twins_loss(views[0], views[1], lambd))
    if not losses:
        raise ValueError(f"need at least batch_size={batch_size} structures")
    return float(np.mean(losses))


#: probe datasets: name -> (file under the shared data folder, target column, what it tests)
DATASETS: dict[str, tuple[str, str, str]] = {
    "phonons": ("matbench/matbench_phonons.json.gz", PHONONS_TARGET, "matbench_phonons"),
    # every structure is pure carbon: the composition carries no information, only structure does
    "carbon_24": ("structures/cdvae/carbon_24/val.csv", "energy_per_atom", "carbon_24 (CDVAE val)"),
}


def _load_probe_data(
    dataset: str, path: str | os.PathLike[str] | None
) -> tuple[list[Structure], np.ndarray, str]:
    if dataset not in DATASETS:
        raise ValueError(f"unknown probe dataset {dataset!r}; valid: {sorted(DATASETS)}")
    rel, target, _ = DATASETS[dataset]
    if path is None:
        root = shared_data_dir()
        if root is None:
            raise FileNotFoundError(f"no shared data folder: set {SHARED_ENV} or pass the path")
        path = root / rel
    items = read_structures(path)
    if str(path).endswith(".csv"):
        import pandas as pd

        y = pd.read_csv(path)[target].to_numpy(np.float64)
    else:
        from matminer.utils.io import load_dataframe_from_json

        y = load_dataframe_from_json(str(path), pbar=False)[target].to_numpy(np.float64)
    return [s for _, s in items], y, target


def run_probe(
    path: str | os.PathLike[str] | None = None,
    *,
    dataset: str = "phonons",
    out: str | os.PathLike[str] | None = "results/teacher_probe.json",
    n: int | None = None,
    chgnet: bool = True,
    folds: int = 5,
    seed: int = 0,
    random_seeds: Sequence[int] = (0, 1, 2),
) -> dict[str, Any]:
    """Probe the teachers on matbench_phonons (or ``dataset="carbon_24"``: energies of pure-carbon
    structures, where the composition is constant and only the structure can inform).

    Embeds the structures with the Crystal Twins Barlow and SimSiam encoders (projection head and
    pre-head pooled layer), the same CGCNN randomly initialised (``random_seeds``), CHGNet (when
    ``chgnet`` and the package is installed) and a composition-only reference (mean CGCNN element
    features); scores each with :func:`ridge_probe` (standardised features, plus the
    quantile-scaled variant and per-fold values); and checks the Barlow loading with
    :func:`barlow_twins_consistency` against a random encoder.

    Args:
        path: the dataset file; ``None`` uses the shared data folder.
        dataset: a key of :data:`DATASETS`.
        out: where to write the JSON report (``None``: do not write).
        n: probe only the first n structures (``None``: all 1265).
        chgnet: also probe CHGNet.
        folds, seed: cross-validation settings.
        random_seeds: seeds of the randomly initialised controls.

    Returns:
        the report: per teacher its dim, R², structures/s; plus machine, time, git commit.
    """
    structures, y, target = _load_probe_data(dataset, path)
    if n is not None:
        structures, y = structures[:n], y[:n]
    log.info("probing %d structures of %s", len(structures), DATASETS[dataset][2])

    teachers: dict[str, StructureTeacher] = {}
    variants: tuple[Variant, ...] = ("barlow", "simsiam")
    layers: tuple[Layer, ...] = ("head", "pooled")
    for variant in variants:
        for layer in layers:
            teachers[f"crystal_twins_{variant}_{layer}"] = CrystalTwinsTeacher(
                variant=variant, layer=layer
            )
    for layer in layers:
        for s in random_seeds:
            teachers[f"random_cgcnn_barlow_{layer}_seed{s}"] = CrystalTwinsTeacher(
                "random", "barlow", layer=layer, seed=s
            )
    if chgnet:
        try:
            teachers["chgnet"] = CHGNetTeacher()
        except ImportError as exc:
            log.warning("skipping CHGNet: %s", exc)

    def score(X: np.ndarray) -> dict[str, Any]:
        per_fold = ridge_probe_folds(X, y, folds=folds, seed=seed)
        return {
            "r2": float(np.mean(per_fold)),
            "r2_folds": [round(float(v), 4) for v in per_fold],
            "r2_quantile_scaled": ridge_probe(X, y, folds=folds, seed=seed, scaler="quantile"),
        }

    results: dict[str, Any] = {}
    for key, teacher in teachers.items():
        emb, rate = embed_timed(teacher, structures)
        results[key] = {
            "teacher": teacher.name,
            "fingerprint": teacher.fingerprint,
            "dim": teacher.dim,
            **score(emb),
            "structures_per_s": round(rate, 1),
        }
        log.info(
            "%s: R2 %.4f (quantile-scaled %.4f; %d-d, %.0f structures/s)",
            key,
            results[key]["r2"],
            results[key]["r2_quantile_scaled"],
            teacher.dim,
            rate,
        )
    barlow = cast(CrystalTwinsTeacher, teachers["crystal_twins_barlow_head"])
    results["composition_atom_init_mean"] = {
        "teacher": "mean of CGCNN atom_init features (composition only, no structure)",
        "dim": int(barlow.atom_table.shape[1]),
        **score(_atom_init_mean(structures, barlow.atom_table)),
    }
    n_bt = min(len(structures), 512)
    random_head = cast(
        CrystalTwinsTeacher, teachers[f"random_cgcnn_barlow_head_seed{random_seeds[0]}"]
    )
    consistency = {
        "what": "mean Barlow Twins loss (lambda 0.0051) of the 256-d head on two Crystal Twins-style "
        f"augmented views (mask 10% atoms, drop 10% edges) of the first {n_bt} structures, "
        "batches of 64; lower = closer to the pretraining objective",
        "crystal_twins_barlow": barlow_twins_consistency(barlow, structures[:n_bt], seed=seed),
        "random_cgcnn": barlow_twins_consistency(random_head, structures[:n_bt], seed=seed),
    }
    rnd = [results[f"random_cgcnn_barlow_head_seed{s}"]["r2"] for s in random_seeds]
    report = {
        "task": DATASETS[dataset][2],
        "target": target,
        "n_structures": len(structures),
        "probe": f"StandardScaler + RidgeCV(alphas=logspace(-3, 5, 17)), {folds}-fold KFold "
        f"(shuffle, seed {seed}), mean R2 over folds; r2_quantile_scaled: QuantileTransformer "
        "(normal) instead of StandardScaler",
        "results": results,
        "trained_minus_random_r2_head": results["crystal_twins_barlow_head"]["r2"]
        - float(np.mean(rnd)),
        "barlow_twins_consistency": consistency,
        "machine": machine_description(),
        "git": git_sha(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if out is not None:
        atomic_write_json(out, report)
        log.info("wrote %s", out)
    return report
