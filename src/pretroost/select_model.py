"""``pretroost fit``: choose a model for the user's own rows by k-fold cross-validation.

What this project learned on Matbench becomes a rule applied to the user's data: the candidates
are the models the project recommends (README and ``docs/use.md``), every one is scored on the
same ``k`` folds of the training rows only, and the choice follows a rule stated in advance
(:data:`RULE`). Per-fold selection on a small validation split was measured to fail
(``docs/findings.md``, ``select``), so the choice is made on k-fold out-of-fold predictions.

Candidates (:data:`CANDIDATES`):

- ``trees``: :func:`pretroost.trees.fit_trees` (extra trees, random forest, gradient boosting on
  element fractions and fractions + Magpie, chosen by its own inner cross-validation);
- ``trees+pbe``: the same on ``fractions+magpie+pbe`` (a PBE band-gap teacher's prediction as a
  feature); a default candidate only where the target is a band gap (:func:`is_band_gap`);
- ``dft+trunk``: Roost finetuned from the shipped ``dft-oqmd`` encoder and its trunk
  (``finetune --init dft-oqmd --init-trunk``) with a named recipe (:mod:`pretroost.recipes`);
- ``blend``: the mean of the best Roost candidate's and the best trees candidate's predictions
  (scored from their out-of-fold predictions: no training of its own);
- ``hurdle``: the best other regressor with its predictions set to 0 where a tree classifier of
  ``target == 0`` says P > 0.5 (:mod:`pretroost.hurdle`); a default candidate only where the
  target has exact zeros (:func:`has_zero_mass`). Its classifier is trained per fold; the
  regressor's out-of-fold predictions are reused.

The chosen candidate is refitted on all training rows and saved as one model folder that
:func:`pretroost.load` and ``pretroost predict --model`` read, with ``fit_report.json`` and a
model-card section giving the cross-validated error as the expected error.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from pretroost.artefacts import check_out_path, check_replaceable, register_files, remove_written
from pretroost.blend import save_blend
from pretroost.configs import CANDIDATES, ROOST_INIT, RULE, FitConfig
from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import CompositionArray
from pretroost.data.tables import check_training_frame, read_training_table
from pretroost.finetune import FinetuneConfig, init_elem_embedding
from pretroost.finetune import fit as fit_roost
from pretroost.folds import holdout_split, kfold_splits
from pretroost.hub import load
from pretroost.hurdle import apply_hurdle, fit_zero_classifier, save_hurdle
from pretroost.metrics import CLF_THRESHOLD, probability_rocauc, user_scores
from pretroost.trees import TreesConfig, fit_trees, save_trees
from pretroost.utils import atomic_write_json, git_sha, machine_description

__all__ = [
    "CANDIDATES",
    "ROOST_INIT",
    "RULE",
    "CandidateScores",
    "FitConfig",
    "FitResult",
    "choose",
    "default_candidates",
    "estimate_seconds",
    "fit",
    "has_zero_mass",
    "hurdle_regressor",
    "is_band_gap",
]

log = logging.getLogger(__name__)

#: the Roost candidates (trained with the recipe) and the trees candidates
ROOST_CANDIDATES: tuple[str, ...] = ("dft+trunk",)
TREES_CANDIDATES: tuple[str, ...] = ("trees", "trees+pbe")
#: a target has a point mass at 0 (hurdle candidate) when at least this share of rows is 0
ZERO_SHARE = 0.10
#: k-fold cross-validation needs at least this many rows per fold (Roost's validation split
#: needs 10 training rows; fewer held-out rows make a fold's score mostly noise)
MIN_ROWS_PER_FOLD = 10


# ------------------------------------------------------------------------------ the rules


def is_band_gap(target_col: str, band_gap: bool | None = None) -> bool:
    """Whether ``trees+pbe`` is a default candidate: ``band_gap`` if given, else whether the
    target column's name contains ``gap`` (any case)."""
    return "gap" in target_col.lower() if band_gap is None else band_gap


def has_zero_mass(y: np.ndarray, task_type: str) -> bool:
    """Whether ``hurdle`` is a default candidate: a regression target with no negative value and
    at least :data:`ZERO_SHARE` of its rows exactly 0."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return (
        task_type == "regression" and len(y) > 0 and bool((y >= 0).all())
        and float((y == 0).mean()) >= ZERO_SHARE
    )  # fmt: skip


def default_candidates(
    target_col: str, y: np.ndarray, task_type: str, *, band_gap: bool | None = None
) -> list[str]:
    """The candidates :func:`fit` scores unless told: ``trees``, ``dft+trunk``, ``blend``;
    ``trees+pbe`` where the target is a band gap (:func:`is_band_gap`); ``hurdle`` where it has
    exact zeros (:func:`has_zero_mass`)."""
    out = ["trees"]
    if is_band_gap(target_col, band_gap):
        out.append("trees+pbe")
    out += ["dft+trunk", "blend"]
    if has_zero_mass(y, task_type):
        out.append("hurdle")
    return out


def _check_candidates(candidates: Sequence[str], y: np.ndarray, task_type: str) -> None:
    names = set(candidates)
    if "blend" in names and not (names & set(ROOST_CANDIDATES) and names & set(TREES_CANDIDATES)):
        raise ValueError(
            "candidate 'blend' needs a Roost candidate (dft+trunk) and a trees candidate "
            "(trees, trees+pbe) beside it"
        )
    if "hurdle" in names:
        if task_type != "regression":
            raise ValueError("candidate 'hurdle' is for regression targets")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if (y < 0).any() or not (y == 0).any():
            raise ValueError(
                "candidate 'hurdle' needs targets >= 0 with exact zeros among them "
                f"(got min {y.min():.4g}, {int((y == 0).sum())} zeros in {len(y)} rows)"
            )
        if len(names) == 1:
            raise ValueError("candidate 'hurdle' needs a regressor candidate beside it")


def _rank(name: str, hurdle_base: str | None) -> float:
    if name == "hurdle":
        return CANDIDATES.index(hurdle_base or "blend") + 0.5
    return float(CANDIDATES.index(name))


def hurdle_regressor(errors: dict[str, np.ndarray]) -> str:
    """The regressor a hurdle wraps: the candidate with the lowest mean CV error (ties: the
    simpler), among ``errors`` (candidate -> (k,) per-fold errors; the hurdle not among them)."""
    return min(errors, key=lambda c: (float(np.mean(errors[c])), _rank(c, None)))


def choose(errors: dict[str, np.ndarray], hurdle_base: str | None = None) -> tuple[str, str, str]:
    """Apply :data:`RULE` to ``errors`` (candidate -> (k,) per-fold errors, lower is better, on
    the same folds). Returns ``(chosen, lowest, reason)``."""
    means = {c: float(np.mean(e)) for c, e in errors.items()}
    finite = {c: e for c, e in errors.items() if np.isfinite(means[c])}
    if not finite:
        raise ValueError(f"no candidate has a finite CV error: {means}")
    for c in set(errors) - set(finite):
        log.warning("fit: %s has a non-finite CV error (%s): not eligible", c, means[c])
    lowest = min(finite, key=lambda c: (means[c], _rank(c, hurdle_base)))
    eligible = []
    for c, e in finite.items():
        d = np.asarray(e) - np.asarray(errors[lowest])
        se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
        if float(d.mean()) <= se:
            eligible.append(c)
    chosen = min(eligible, key=lambda c: (_rank(c, hurdle_base), means[c]))
    if chosen == lowest:
        reason = f"{chosen} has the lowest mean CV error ({means[chosen]:.4g})"
        simpler = [c for c in finite if _rank(c, hurdle_base) < _rank(chosen, hurdle_base)]
        if simpler:
            reason += "; no simpler candidate is within one standard error of it"
    else:
        reason = (
            f"{lowest} has the lowest mean CV error ({means[lowest]:.4g}), but {chosen} "
            f"({means[chosen]:.4g}) is simpler and within one standard error of the paired "
            "per-fold differences"
        )
    return chosen, lowest, reason


# ------------------------------------------------------------------------------ cost

#: Roost's seconds per epoch on one CPU thread: intercept + per training row. From the converged
#: bench's ``dft+trunk`` cells (results/converged/benchmark.jsonl, seed 0, ``--threads 1``, 300
#: epochs): expt_gap 437-675 s per fold on 3315 training rows, steels 106-139 s on 224 rows,
#: phonons 214-289 s on 911 rows; this fits them within about 30 %.
ROOST_SECONDS_PER_EPOCH = (0.25, 4.5e-4)
#: one ``fit_trees`` call (6 candidates x 5 inner folds, 500 trees), seconds per training row on
#: one thread: the same bench's ``trees`` cells took 0.04-0.16 s per row (regression the upper end)
TREES_SECONDS_PER_ROW = 0.1
#: the PBE teacher's one-off fit per process (docs/use.md: 47-48 s)
TEACHER_SECONDS = 50.0


def estimate_seconds(candidate: str, n_train: int, config: FitConfig) -> float:
    """A rough single-thread estimate of one training of ``candidate`` on ``n_train`` rows
    (blend and hurdle: 0, their members are counted; the hurdle's classifier is counted as one
    ``trees`` fit)."""
    if candidate in ROOST_CANDIDATES:
        train = config.roost_config().train
        a, b = ROOST_SECONDS_PER_EPOCH
        return train.epochs * (a + b * 0.9 * n_train)  # 10 % of the rows validate
    if candidate in TREES_CANDIDATES:
        tc = config.trees_config(candidate)
        share = len(tc.candidates()) / 6 * tc.n_estimators / 500 * (tc.inner_folds + 1) / 6
        return TREES_SECONDS_PER_ROW * n_train * share
    return 0.0


# ------------------------------------------------------------------------------ results


@dataclass
class CandidateScores:
    """One candidate's cross-validation: per-fold errors (lower is better), their mean and sd,
    the paired per-fold differences from the chosen candidate (their mean and standard error),
    and the training seconds spent on it over the folds."""

    name: str
    fold_errors: list[float]
    mean: float
    sd: float
    diff_vs_chosen: list[float] = field(default_factory=list)
    diff_mean: float = 0.0
    diff_se: float = 0.0
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitResult:
    """What :func:`fit` returns: the chosen candidate, the saved folder and its loaded model,
    every candidate's :class:`CandidateScores`, the rule and why it chose, the test scores
    (None without test data) and the whole report (``fit_report.json``)."""

    chosen: str
    path: Path
    model: Any
    candidates: dict[str, CandidateScores]
    metric: str
    rule: str
    reason: str
    test_scores: dict[str, float] | None
    report: dict[str, Any]

    def table(self) -> str:
        """The candidates' CV errors as printed by ``pretroost fit``: mean ± sd over the folds,
        the paired per-fold differences from the chosen candidate (their mean ± standard error,
        then each fold's), the training seconds over the folds."""
        k = len(next(iter(self.candidates.values())).fold_errors)
        rows = [("candidate", f"CV {self.metric} (mean ± sd, {k} folds)",
                 f"- {self.chosen} (mean ± SE)", "per fold", "train s")]  # fmt: skip
        for c in self.candidates.values():
            chosen = c.name == self.chosen
            rows.append((
                c.name, f"{c.mean:.4g} ± {c.sd:.2g}",
                "chosen" if chosen else f"{c.diff_mean:+.3g} ± {c.diff_se:.2g}",
                "" if chosen else " ".join(f"{d:+.3g}" for d in c.diff_vs_chosen),
                f"{c.seconds:.0f}",
            ))  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join(
            "  ".join(cell.ljust(w) if i in (0, 3) else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(r, widths, strict=True))).rstrip()
            for r in rows
        )  # fmt: skip


# ------------------------------------------------------------------------------ training


class _Trained:
    """One trained candidate: its predictions (values, or the probability of class 1) and how
    it saves."""

    def __init__(self, name: str, model: Any, config: TreesConfig | None = None):
        self.name, self.model, self.trees_config = name, model, config

    def predict(self, comps: CompositionArray) -> np.ndarray:
        if self.trees_config is not None:
            return np.asarray(self.model.predict(comps), dtype=np.float64)
        pred = self.model.predict_dataset(CompositionDataset(comps))
        return np.asarray(pred["prob" if "prob" in pred else "mean"][:, 0], dtype=np.float64)

    def save(self, out: Path, *, data: str, n_train: int, target: str, id_col: str | None) -> Path:
        """Save as a model folder recording the data, its target column and id column."""
        if self.trees_config is not None:
            return save_trees(self.model, out, config=self.trees_config, data=data,
                              n_train=n_train, target=target, id_col=id_col)  # fmt: skip
        self.model.info.update(source=data, target=target, id_col=id_col)
        return Path(self.model.save(out))


def _train(
    name: str,
    comps: CompositionArray,
    y: np.ndarray,
    task_type: str,
    config: FitConfig,
    *,
    label: str,
    progress: bool | None,
) -> _Trained:
    if name in TREES_CANDIDATES:
        tc = config.trees_config(name)
        return _Trained(name, fit_trees(comps, y, task_type, tc), tc)
    if name in ROOST_CANDIDATES:
        fc = config.roost_config()
        fitted = fit_roost(
            comps, y.reshape(-1, 1), task_type, fc, seed=config.seed, progress=progress,  # type: ignore[arg-type]
            name=label, device=config.device,
        )  # fmt: skip
        return _Trained(name, fitted)
    raise ValueError(
        f"{name!r} is not trained on its own; valid: {ROOST_CANDIDATES + TREES_CANDIDATES}"
    )


def _train_predict(
    name: str, comps: CompositionArray, y: np.ndarray, held_out: CompositionArray,
    task_type: str, config: FitConfig, label: str, progress: bool | None,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """Train ``name`` on ``comps``/``y`` and predict ``held_out``: the predictions and the
    seconds it took (module level: it also runs in worker processes)."""
    t0 = time.perf_counter()
    model = _train(name, comps, y, task_type, config, label=label, progress=progress)
    return model.predict(held_out), time.perf_counter() - t0


def _worker_init(level: int) -> None:
    """A cross-validation worker: one torch thread (the jobs are the parallelism), pretroost's
    log at ``level`` (warnings and errors reach standard error)."""
    torch.set_num_threads(1)
    logging.getLogger("pretroost").setLevel(level)


def _out_of_fold(
    units: list[tuple[str, int]], folds: list[tuple[np.ndarray, np.ndarray]],
    comps: CompositionArray, y: np.ndarray, task_type: str, config: FitConfig,
    progress: bool | None,
) -> Iterator[tuple[str, int, np.ndarray, float]]:  # fmt: skip
    """Each unit (candidate, fold index) trained on the fold's training rows and its held-out
    predictions: ``(candidate, fold, predictions, seconds)``, in order with ``config.jobs`` 1,
    else as ``config.jobs`` worker processes finish them (longest units submitted first)."""
    k = len(folds)
    if config.jobs == 1:
        for name, i in units:
            tr, va = folds[i]
            pred, secs = _train_predict(
                name, comps.subset(tr), y[tr], comps.subset(va), task_type, config,
                f"{name} fold {i + 1}/{k}", progress,
            )  # fmt: skip
            yield name, i, pred, secs
        return
    n = len(folds[0][0])
    order = sorted(units, key=lambda u: -estimate_seconds(u[0], n, config))
    pool = ProcessPoolExecutor(
        max_workers=min(config.jobs, len(units)), mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init, initargs=(max(logging.WARNING, log.getEffectiveLevel()),),
    )  # fmt: skip
    try:
        futures = {
            pool.submit(
                _train_predict, name, comps.subset(folds[i][0]), y[folds[i][0]],
                comps.subset(folds[i][1]), task_type, config, f"{name} fold {i + 1}/{k}", False,
            ): (name, i)
            for name, i in order
        }  # fmt: skip
        for future in as_completed(futures):
            name, i = futures[future]
            pred, secs = future.result()
            yield name, i, pred, secs
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _fold_error(task_type: str, y: np.ndarray, pred: np.ndarray) -> float:
    if task_type == "classification":
        return 1.0 - probability_rocauc(y, pred)
    return float(np.mean(np.abs(pred - y)))


def _folds(y: np.ndarray, task_type: str, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, held-out)`` row positions of ``k`` folds, the same for every candidate."""
    n = len(y)
    if n < k * MIN_ROWS_PER_FOLD:
        raise ValueError(
            f"{n} training rows are too few for {k}-fold cross-validation: it needs at least "
            f"{k * MIN_ROWS_PER_FOLD} ({MIN_ROWS_PER_FOLD} per fold); lower --folds or add rows"
        )
    if task_type == "classification":
        from sklearn.model_selection import StratifiedKFold

        counts = np.bincount(y.astype(int), minlength=2)
        if counts.min() < k:
            raise ValueError(
                f"{k}-fold cross-validation needs at least {k} rows of each class, got "
                f"{counts.tolist()} (class 0, class 1)"
            )
        skf = StratifiedKFold(k, shuffle=True, random_state=seed)
        return [(tr, va) for tr, va in skf.split(np.zeros(n), y.astype(int))]
    return [(s.train, s.test) for s in kfold_splits(n, k, seed)]


def _read(
    data: pd.DataFrame | str | Path, source: str, *, formula_col: str, target_col: str,
    id_col: str | None, task_type: str, elem_embedding: str | None,
) -> tuple[np.ndarray, CompositionArray, np.ndarray]:  # fmt: skip
    """The formulas (as given), compositions and (n,) targets of ``data``, every row checked."""
    kw = dict(formula_col=formula_col, target_col=target_col, id_col=id_col,
              task_type=task_type, elem_embedding=elem_embedding)  # fmt: skip
    if isinstance(data, pd.DataFrame):
        frame = data.reset_index(drop=True)
        comps, y = check_training_frame(frame, source, **kw)  # type: ignore[arg-type]
    else:
        frame, comps, y = read_training_table(data, **kw)  # type: ignore[arg-type]
    return frame[formula_col].to_numpy(dtype=object), comps, y[:, 0]


def _publish(staged: Path, out: Path, overwrite: bool) -> None:
    """Move the finished folder ``staged`` onto ``out``; an existing ``out`` is replaced only
    with ``overwrite`` and only if it holds nothing pretroost did not write
    (:func:`~pretroost.artefacts.check_replaceable`), its files then removed one by one."""
    if not out.exists():
        os.replace(staged, out)
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    check_replaceable(out)
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out, old)
    os.replace(staged, out)
    remove_written(old)


def _cost_text(trained: list[str], candidates: list[str], n: int, k: int, config: FitConfig) -> str:
    """The expected cost of :func:`fit`, in words (:func:`estimate_seconds`)."""
    n_fold = int(round(n * (k - 1) / k))
    parts, total = [], 0.0
    for c in trained + (["hurdle"] if "hurdle" in candidates else []):
        each = estimate_seconds("trees" if c == "hurdle" else c, n_fold, config)
        what = "zero classifiers" if c == "hurdle" else f"{c} trainings"
        if c in ROOST_CANDIDATES:
            train = config.roost_config().train
            what += f" ({config.recipe} recipe, {train.epochs} epochs)"
        parts.append(f"{k} {what} of about {each / 60:.1f} min each")
        total += k * each
    if "trees+pbe" in trained:
        total += TEACHER_SECONDS
    refit = max(estimate_seconds(c, n, config) for c in trained)  # the dearest, at most
    text = (
        "; ".join(parts) + f"; then the refit on all rows (at most about {refit / 60:.1f} min): "
        f"about {(total + refit) / 60:.0f} min in all"
    )
    if config.jobs > 1:
        longest = max(estimate_seconds(c, n_fold, config) for c in trained)
        wall = max(total / min(config.jobs, k * len(trained)), longest) + refit
        text += f"; with {config.jobs} jobs at once, about {wall / 60:.0f} min of wall time"
    return text


def _score_test(model: Any, formulas: np.ndarray, y: np.ndarray, task_type: str) -> dict[str, Any]:
    """The saved ``model``'s scores on test rows (:func:`~pretroost.metrics.user_scores`:
    classification scores its labels at the model's threshold and the ROC-AUC of its
    probabilities) and the notes on what was left out."""
    frame = model.predict(list(formulas))
    column = "probability" if task_type == "classification" else "prediction"
    threshold = float(getattr(model, "threshold", CLF_THRESHOLD))
    scores, notes = user_scores(
        task_type, y, frame[column].to_numpy(dtype=np.float64), threshold=threshold
    )
    return {"scores": scores, "notes": notes}


def _card_section(result: dict[str, Any]) -> str:
    chosen = result["chosen"]
    c = result["candidates"][chosen]
    k = len(c["fold_errors"])
    lines = [
        "",
        "## Chosen by `pretroost fit`",
        "",
        f"- Expected error: cross-validated {result['metric']} {c['mean']:.4g} "
        f"(± {c['sd']:.2g} sd over {k} folds of the {result['n_train']} training rows).",
        f"- Candidates (mean CV {result['metric']}): "
        + ", ".join(f"{n} {v['mean']:.4g}" for n, v in result["candidates"].items()) + ".",
        f"- Why: {result['reason']}.",
        f"- Rule: {result['rule']}",
        f"- Recipe {result['config']['recipe']!r}, seed {result['config']['seed']}; every fold "
        "score is in `fit_report.json`.",
    ]  # fmt: skip
    if result.get("test"):
        t = result["test"]
        lines.append(f"- Test ({t['source']}, {t['n_test']} rows): "
                     + ", ".join(f"{m} {v:.4g}" for m, v in t["scores"].items()) + ".")  # fmt: skip
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ fit


def fit(
    data: pd.DataFrame | str | Path,
    *,
    target_col: str = "target",
    out: str | Path,
    formula_col: str = "formula",
    id_col: str | None = None,
    task_type: str = "regression",
    test_data: pd.DataFrame | str | Path | None = None,
    test_fraction: float = 0.0,
    config: FitConfig | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    **overrides: Any,
) -> FitResult:
    """Choose a model for ``data`` (a CSV path or a DataFrame with ``formula_col`` and
    ``target_col``) by k-fold cross-validation on its training rows, refit the choice on all of
    them and save it to ``out`` (module docstring; :data:`RULE`).

    Test rows: ``test_data`` (same columns), or a random ``test_fraction`` of ``data`` (seeded by
    ``config.seed``) held out before anything is chosen; 0: none, every row trains. ``config``
    (:class:`FitConfig`) or its fields as keyword ``overrides``
    (``fit(df, target_col="gap", out="m", recipe="quick", folds=3)``). ``progress``: a bar over
    candidates x folds (None: when standard error is a terminal; otherwise one log line per
    step). Raises ``ValueError`` for unknown candidates, missing columns, bad rows and too few
    rows for the folds; ``FileExistsError`` for an existing ``out`` without ``overwrite``.
    """
    t_start = time.perf_counter()
    if task_type not in ("regression", "classification"):
        raise ValueError(f"unknown task_type {task_type!r}; valid: regression, classification")
    config = replace(config, **overrides) if config is not None else FitConfig(**overrides)
    out = check_out_path(out)
    if out.exists():  # refused before anything trains
        if not overwrite and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(
                f"{out} exists; pass --overwrite to replace it, or choose another --out"
            )
        check_replaceable(out)
    source = "data frame" if isinstance(data, pd.DataFrame) else str(data)
    wants_roost = config.candidates is None or bool(set(config.candidates) & set(ROOST_CANDIDATES))
    elem = init_elem_embedding(FinetuneConfig(init=ROOST_INIT)) if wants_roost else None
    read = dict(formula_col=formula_col, target_col=target_col, id_col=id_col,
                task_type=task_type, elem_embedding=elem)  # fmt: skip
    formulas, comps, y = _read(data, source, **read)  # type: ignore[arg-type]
    test: tuple[np.ndarray, np.ndarray, str] | None = None
    if test_data is not None:
        if test_fraction:
            raise ValueError("give test_data or test_fraction, not both")
        tsrc = "test data frame" if isinstance(test_data, pd.DataFrame) else str(test_data)
        test_formulas, _, ty = _read(test_data, tsrc, **read)  # type: ignore[arg-type]
        test = (test_formulas, ty, tsrc)
    elif test_fraction:
        split = holdout_split(len(y), test_fraction, config.seed)[0]
        test = (formulas[split.test], y[split.test],
                f"a random {test_fraction:g} of {source} (seed {config.seed})")  # fmt: skip
        comps, y = comps.subset(split.train), y[split.train]
        log.info("%s: held out %d rows as test (test_fraction %g, seed %d); choosing on the "
                 "other %d", source, len(split.test), test_fraction, config.seed, len(y))  # fmt: skip
    candidates = (
        list(config.candidates)
        if config.candidates is not None
        else default_candidates(target_col, y, task_type, band_gap=config.band_gap)
    )
    _check_candidates(candidates, y, task_type)
    folds = _folds(y, task_type, config.folds, config.seed)
    k = len(folds)
    trained_names = [c for c in CANDIDATES if c in candidates and c not in ("blend", "hurdle")]
    if not trained_names:
        raise ValueError("give at least one of trees, trees+pbe, dft+trunk among the candidates")
    metric = "1-rocauc" if task_type == "classification" else "mae"

    # ------------------------------------------------------------------ the expected cost
    log.info("fit: %d training rows, %d-fold CV, candidates %s", len(y), k, ", ".join(candidates))
    log.info("fit: expected cost on one CPU thread (rough, from speeds measured on a 2-core "
             "machine; more threads or a GPU are faster): %s", _cost_text(trained_names, candidates, len(y), k, config))  # fmt: skip

    # ------------------------------------------------------------------ out-of-fold predictions
    steps = len(trained_names) * k + (k if "hurdle" in candidates else 0)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=steps, desc="fit", unit="step", disable=not show)
    oof = {c: np.full(len(y), np.nan) for c in trained_names}
    seconds = dict.fromkeys(candidates, 0.0)

    def step_done(name: str, i: int, err: float, secs: float) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{name} fold {i + 1}/{k}: {metric} {err:.4g}")
        (log.debug if show else log.info)(
            "fit: %s fold %d/%d: %s %.4g (%.1f s, %.0f s so far)",
            name, i + 1, k, metric, err, secs, time.perf_counter() - t_start,
        )  # fmt: skip

    try:
        units = [(name, i) for name in trained_names for i in range(k)]
        for name, i, pred, secs in _out_of_fold(units, folds, comps, y, task_type, config,
                                                progress):  # fmt: skip
            va = folds[i][1]
            oof[name][va] = pred
            seconds[name] += secs
            step_done(name, i, _fold_error(task_type, y[va], pred), secs)
        errors = {
            c: np.array([_fold_error(task_type, y[va], oof[c][va]) for _, va in folds])
            for c in trained_names
        }
        detail = dict.fromkeys(candidates, "")
        blend_members: list[str] = []
        if "blend" in candidates:
            roost = min(
                (c for c in trained_names if c in ROOST_CANDIDATES), key=lambda c: errors[c].mean()
            )
            trees = min(
                (c for c in trained_names if c in TREES_CANDIDATES), key=lambda c: errors[c].mean()
            )
            blend_members = [roost, trees]
            oof["blend"] = (oof[roost] + oof[trees]) / 2
            errors["blend"] = np.array(
                [_fold_error(task_type, y[va], oof["blend"][va]) for _, va in folds]
            )
            detail["blend"] = f"mean of {roost} and {trees}"
        hurdle_base = None
        if "hurdle" in candidates:
            hurdle_base = hurdle_regressor(errors)
            p_zero = np.full(len(y), np.nan)
            for i, (tr, va) in enumerate(folds):
                t0 = time.perf_counter()
                clf = fit_zero_classifier(comps.subset(tr), y[tr], config.trees_config())
                p_zero[va] = clf.predict(comps.subset(va))
                secs = time.perf_counter() - t0
                seconds["hurdle"] += secs
                err = _fold_error(task_type, y[va], apply_hurdle(oof[hurdle_base][va], p_zero[va]))
                step_done("hurdle", i, err, secs)
            oof["hurdle"] = apply_hurdle(oof[hurdle_base], p_zero)
            errors["hurdle"] = np.array(
                [_fold_error(task_type, y[va], oof["hurdle"][va]) for _, va in folds]
            )
            detail["hurdle"] = f"hurdle over {hurdle_base}"
    finally:
        bar.close()
    errors = {c: errors[c] for c in candidates}  # in the order given
    chosen, lowest, reason = choose(errors, hurdle_base)
    scores: dict[str, CandidateScores] = {}
    for c, e in errors.items():
        d = e - errors[chosen]
        scores[c] = CandidateScores(
            c, e.tolist(), float(e.mean()), float(e.std(ddof=1)), d.tolist(), float(d.mean()),
            float(d.std(ddof=1) / math.sqrt(k)), seconds[c], detail[c],
        )  # fmt: skip
    log.info("fit: chose %s: %s", chosen, reason)

    # ------------------------------------------------------------------ refit and save
    t_refit = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.fit.", dir=out.parent))
    report: dict[str, Any] = {
        "data": source, "target_col": target_col, "formula_col": formula_col,
        "task_type": task_type, "n_train": len(y), "folds": k, "metric": metric,
        "rule": RULE, "config": config.to_dict(), "candidates_considered": candidates,
        "band_gap_rule": is_band_gap(target_col, config.band_gap),
        "zero_share": float((y == 0).mean()) if task_type == "regression" else None,
        "chosen": chosen, "lowest": lowest, "reason": reason,
        "candidates": {c: s.to_dict() for c, s in scores.items()},
        "fold_sizes": [len(va) for _, va in folds],
        "git_sha": git_sha(), "machine": machine_description(),
    }  # fmt: skip
    try:
        final = staging / "model"
        data_label = f"{source} ({target_col})"
        regressor = (hurdle_base or "") if chosen == "hurdle" else chosen
        needed = blend_members if regressor == "blend" else [regressor]
        saved: dict[str, Path] = {}
        for name in needed:
            log.info("fit: refitting %s on all %d training rows", name, len(y))
            model = _train(name, comps, y, task_type, config, label=f"{name} (all rows)",
                           progress=progress)  # fmt: skip
            saved[name] = model.save(staging / "parts" / name, data=data_label, n_train=len(y),
                                     target=target_col, id_col=id_col)  # fmt: skip
        if regressor == "blend":
            saved["blend"] = save_blend(
                staging / "parts" / "blend", [saved[n] for n in blend_members], data=data_label,
                n_train=len(y), target=target_col, id_col=id_col,
            )  # fmt: skip
        if chosen == "hurdle":
            log.info("fit: refitting the zero classifier on all %d training rows", len(y))
            classifier = fit_zero_classifier(comps, y, config.trees_config())
            save_hurdle(
                final, regressor=saved[regressor], classifier=classifier,
                config=config.trees_config(), data=data_label, n_train=len(y), target=target_col,
                id_col=id_col,
            )  # fmt: skip
        else:
            shutil.move(str(saved[regressor]), final)
        report["times"] = {
            "cv_seconds": round(t_refit - t_start, 2),
            "refit_seconds": round(time.perf_counter() - t_refit, 2),
        }
        test_report = None
        if test is not None:
            test_report = _score_test(load(final), test[0], test[1], task_type)
            test_report |= {"source": test[2], "n_test": len(test[1])}
            report["test"] = test_report
            log.info("fit: %s on the test rows: %s", chosen,
                     ", ".join(f"{m}={v:.4f}" for m, v in test_report["scores"].items()))  # fmt: skip
        report["times"]["total_seconds"] = round(time.perf_counter() - t_start, 2)
        with (final / "README.md").open("a") as f:
            f.write(_card_section(report))
        atomic_write_json(final / "fit_report.json", report)
        umask = os.umask(0)
        os.umask(umask)
        (final / "fit_report.json").chmod(0o666 & ~umask)  # as the folder's other files
        register_files(final, ["fit_report.json"])
        _publish(final, out, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FitResult(
        chosen, out, load(out), scores, metric, RULE, reason,
        report["test"]["scores"] if test is not None else None, report,
    )  # fmt: skip
