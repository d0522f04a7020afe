"""``pretroost bench``: the paper's experiment as one resumable command.

For a preset, every pretrained strategy is pretrained once on the leak-free corpus (when a cell
first needs it: resuming past finished cells pretrains nothing), then every
(strategy, task, fold) cell is finetuned with exactly the scratch recipe (same splits, epochs,
optimiser, schedule and seeds) and scored; data-efficiency curves repeat that on nested fractions
of each training fold. Finished cells are skipped, so an interrupted run continues where it stopped.

A pretrained strategy may carry variant suffixes, each one declared change (the investigation of
when pretraining helps, run by the same command): finetuning variants (``FINETUNE_VARIANTS``, e.g.
``fingerprint+trunk`` also starts the property model's residual trunk from the pretraining head's,
``ssl+encoder_lr0.1`` trains the encoder at a tenth of the learning rate) reuse the base's encoder;
pretraining variants (``PRETRAIN_VARIANTS``, e.g. ``ssl+strong_views``) pretrain an encoder of their
own (its runs-directory folder, :func:`~pretroost.experiment.strategies.pretrain_folder`, is reused
only where its ``config.json`` matches: :func:`check_pretrained`). Everything else is the scratch recipe. ``+ens5`` (also on ``scratch``: ``scratch+ens5``) trains a
deep ensemble of 5 per cell through the same fold runner and scores its mean prediction.
A variant that only moves the decision threshold (``+valthreshold``) is written from its base's
cells where their validation records hold that threshold (:func:`pretroost.evaluation.matbench.
rethreshold_cells`), and trains only where they do not (cells recorded before thresholds were).

``select`` (``--select CAND ...``): after the cells, per task and fold, the candidate strategy with
the best validation score on the training fold is recorded as a strategy of its own
(:func:`pretroost.evaluation.matbench.select_strategy`), as MODNet selects its models per task.

Leakage: SSL and FL pretrain on OQMD minus every Matbench composition. The offline structure sets
(perov_5) are the same materials as matbench_perovskites, so the structure teacher's corpus
excludes every Matbench task *except* perovskites, and structure-based strategies are not evaluated
on perovskites (there is no leak-free structure corpus for it); the report says so.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pretroost.configs import OBJECTIVE_NAMES, parse_objective
from pretroost.data.corpus import Corpus, build_corpus
from pretroost.data.dft_corpus import build_dft_corpus, dft_corpus_path
from pretroost.data.matbench import LARGE_TASKS, TASKS, get_task
from pretroost.errors import ArtefactError
from pretroost.evaluation.matbench import rethreshold_cells, run_matbench_task, select_strategy
from pretroost.experiment.presets import PRESETS, BenchPreset
from pretroost.experiment.report import write_report
from pretroost.experiment.strategies import (
    CORPORA,
    EXTRA_STRATEGIES,
    FINETUNE_VARIANTS,
    PRETRAIN_VARIANTS,
    STRATEGIES,
    Variant,
    classification_only,
    parse_strategy,
    pretrain_corpus,
    pretrain_folder,
    strategy_members,
    threshold_base,
)
from pretroost.finetune import FinetuneConfig
from pretroost.paths import cache_dir, shared_data_dir
from pretroost.pretrain import PretrainConfig, pretrain
from pretroost.results import cell_done

__all__ = [
    "EXTRA_STRATEGIES",
    "FINETUNE_VARIANTS",
    "PRESETS",
    "PRETRAIN_VARIANTS",
    "STRATEGIES",
    "BenchPreset",
    "Variant",
    "check_pretrained",
    "parse_strategy",
    "pretrain_config",
    "run_bench",
]

log = logging.getLogger(__name__)

STRUCTURE_SETS = ("structures/cdvae/perov_5/val.csv", "structures/cdvae/perov_5/test.csv")
#: tasks whose compositions are the structure sets' own materials (no leak-free structure corpus)
STRUCTURE_OVERLAP_TASKS = ("matbench_perovskites",)


@dataclass
class BenchPlan:
    preset: BenchPreset
    strategies: tuple[str, ...]
    tasks: tuple[str, ...]
    results_dir: Path
    runs_dir: Path
    structures: tuple[str, ...] = field(default_factory=tuple)
    #: the pretraining corpora loaded or built so far, by name (:func:`_corpus`)
    corpora: dict[str, Corpus] = field(default_factory=dict)


def _structure_files(explicit: Sequence[str] | None) -> tuple[str, ...]:
    if explicit:
        return tuple(explicit)
    root = shared_data_dir()
    if root is None:
        raise FileNotFoundError(
            "structure strategies need the structure sets: set PRETROOST_SHARED_DATA or pass --structures"
        )
    return tuple(str(root / p) for p in STRUCTURE_SETS)


def _corpus(plan: BenchPlan, name: str) -> Corpus:
    """The pretraining corpus ``name`` (:data:`~pretroost.experiment.strategies.CORPORA`): loaded
    from the data cache (built and saved there first if missing, as ``pretroost corpus build``
    does), or, for the structure sets, built in memory; once per bench run."""
    if name in plan.corpora:
        return plan.corpora[name]
    if name in ("structures", "oqmd+structures"):
        corpus = build_corpus(
            oqmd=name == "oqmd+structures",
            structures=_structure_files(plan.structures),
            exclude=[t for t in TASKS if t not in STRUCTURE_OVERLAP_TASKS],
        )
    elif name in ("oqmd", "dft-all"):
        path = (
            cache_dir() / "corpus" / "oqmd-leakfree.npz"
            if name == "oqmd"
            else dft_corpus_path("all")
        )
        if not path.is_file():
            command = "pretroost corpus build" + (" --labels all" if name == "dft-all" else "")
            log.info("bench: no %s corpus at %s; building it (`%s`)", name, path, command)
            (build_corpus() if name == "oqmd" else build_dft_corpus("all")).save(path)
        corpus = Corpus.load(path)
    else:
        raise ValueError(f"unknown corpus {name!r}; valid: {', '.join(CORPORA)}")
    plan.corpora[name] = corpus
    return corpus


def pretrain_config(
    preset: BenchPreset, base: str, variants: Sequence[str], n_compositions: int
) -> PretrainConfig:
    """The pretraining settings of ``base`` with the pretraining ``variants`` under ``preset``,
    for a corpus of ``n_compositions`` (which a fraction variant takes its share of)."""
    train_cfg = preset.pretrain
    if base == "structure" and preset.structure_epochs is not None:
        train_cfg = replace(train_cfg, epochs=preset.structure_epochs)
    config = PretrainConfig(
        objective=base, train=train_cfg, max_compositions=preset.max_compositions
    )
    available = min(n_compositions, preset.max_compositions or n_compositions)
    for v in variants:
        config = PRETRAIN_VARIANTS[v].apply(config)
        share = PRETRAIN_VARIANTS[v].corpus_fraction
        if share is not None:
            config = replace(config, max_compositions=math.ceil(share * available))
    return config


def _differences(expected: object, recorded: object, default: object, path: str) -> list[str]:
    """Where ``recorded`` (settings read from a ``config.json``) differs from ``expected``; a
    setting the record lacks (it predates the setting) matches only the setting's ``default``."""
    if not isinstance(expected, dict) or not isinstance(recorded, dict):
        return [] if recorded == expected else [f"{path}: {recorded!r}, expected {expected!r}"]
    defaults = default if isinstance(default, dict) else {}
    out = []
    for key, value in expected.items():
        where = f"{path}.{key}"
        if key in recorded:
            out += _differences(value, recorded[key], defaults.get(key), where)
        elif value != defaults.get(key):
            out.append(f"{where}: not recorded (so {defaults.get(key)!r}), expected {value!r}")
    unknown = [key for key in recorded if key not in expected]
    return out + [f"{path}.{key}: {recorded[key]!r}, not a setting now" for key in unknown]


def check_pretrained(config: dict, expected: PretrainConfig, corpus_hash: str) -> list[str]:
    """What differs between a pretrained encoder's ``config.json`` (``config``) and the encoder a
    strategy needs: the pretraining settings ``expected`` (the ``pretrain`` record, the
    settings of objectives it does not train aside; a setting the record predates counts as its
    default, the behaviour before it existed) and the content hash of the corpus (the whole
    corpus', whatever share of it was pretrained on). Empty when they match."""
    if config.get("kind") != "pretrained":
        return [f"kind: {config.get('kind')!r}, expected 'pretrained'"]
    recorded = config.get("pretrain")
    if not isinstance(recorded, dict):
        return ["pretrain: no pretraining settings recorded"]
    unused = set(OBJECTIVE_NAMES) - set(parse_objective(expected.objective))

    def settings(c: PretrainConfig | dict) -> dict:
        d = json.loads(json.dumps(c.to_dict() if isinstance(c, PretrainConfig) else c))
        return {k: v for k, v in d.items() if k not in unused}

    out = _differences(
        settings(expected), settings(recorded),
        settings(PretrainConfig(objective=expected.objective)), "pretrain",
    )  # fmt: skip
    recorded_hash = (config.get("corpus") or {}).get("hash")
    if recorded_hash != corpus_hash:
        out.append(f"corpus hash: {recorded_hash!r}, expected {corpus_hash!r}")
    return out


def _pretrained(
    plan: BenchPlan, strategy: str, variants: tuple[str, ...] = (), *, progress: bool | None
) -> Path:
    """Pretrain ``strategy`` (a base) with the pretraining ``variants`` once, or reuse the folder
    already in the runs directory if its config matches (:func:`check_pretrained`; a folder that
    does not is refused); returns the artefact folder."""
    out = plan.runs_dir / pretrain_folder(strategy, variants)
    corpus_name = pretrain_corpus(strategy, variants)
    corpus = _corpus(plan, corpus_name)
    config = pretrain_config(plan.preset, strategy, variants, len(corpus))
    if (out / "config.json").is_file():
        differences = check_pretrained(
            json.loads((out / "config.json").read_text()), config, corpus.info["hash"]
        )
        if differences:
            name = "+".join([strategy, *variants])
            raise ArtefactError(
                f"{out}: not the encoder {name} needs under the {plan.preset.name} preset on the "
                f"{corpus_name} corpus: " + "; ".join(differences) + ". Move the folder away "
                "(bench then pretrains it again) or point --runs-dir elsewhere"
            )
        log.info("bench: %s already pretrained (%s)", strategy, out)
        return out
    t0 = time.perf_counter()
    pretrain(
        corpus,
        config,
        out,
        checkpoint=out.with_name(out.name + ".ckpt"),
        resume=True,
        progress=progress,
    )
    log.info("bench: pretrained %s in %.0f s", strategy, time.perf_counter() - t0)
    return out


def _start(
    plan: BenchPlan, strategy: str, *, progress: bool | None
) -> Callable[[FinetuneConfig], FinetuneConfig]:
    """What ``strategy`` changes in the scratch recipe: its pretrained encoder (pretrained here,
    on first use, if missing; finetuning variants reuse their base's artefact) and its finetuning
    variants."""
    base, pre, post = parse_strategy(strategy)

    @functools.cache
    def encoder() -> str:
        return str(_pretrained(plan, base, pre, progress=progress))

    def start(c: FinetuneConfig) -> FinetuneConfig:
        if base != "scratch":
            c = replace(c, init=encoder())
        for v in post:
            c = FINETUNE_VARIANTS[v].apply(c)
        return c

    return start


def run_bench(
    preset: str | BenchPreset = "budget",
    *,
    strategies: Sequence[str] = STRATEGIES,
    tasks: Sequence[str] | None = None,
    include_large: bool = False,
    results_dir: str | Path = "results",
    runs_dir: str | Path | None = None,
    structures: Sequence[str] | None = None,
    data_efficiency: bool = True,
    folds: Sequence[int] | None = None,
    data_efficiency_folds: Sequence[int] | None = None,
    pretrain_only: bool = False,
    select: Sequence[str] = (),
    select_label: str | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool | None = None,
) -> Path:
    """Run (or resume) the matrix and write the report; returns the report path (with
    ``pretrain_only``: pretrain the strategies' encoders only and return their folder).

    ``tasks``, ``folds`` and ``data_efficiency_folds`` override the preset's; with ``tasks``, the
    data-efficiency curves are run for the preset's curve tasks among them only. ``select``:
    candidate strategies (among ``strategies``) to choose from per task and fold on validation
    scores after the cells (:func:`~pretroost.evaluation.matbench.select_strategy`, named ``select_label``
    or ``select(<c1>|<c2>|...)``). ``seeds``: finetuning seeds per fold on every task of this run,
    instead of the preset's (e.g. more seeds on one task for a seed ensemble; seed 0 is every
    preset's first, so the cells already run are reused)."""

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    members = {s: strategy_members(s) for s in strategies}
    outside = [c for c in select if c not in strategies]
    if outside:
        raise ValueError(
            f"--select candidates {outside} are not among this run's strategies {list(strategies)}"
        )
    if select and len(set(select)) != len(select):
        raise ValueError(f"--select candidates repeat: {list(select)}")
    if folds is not None or data_efficiency_folds is not None:
        preset = replace(
            preset,
            folds=tuple(folds) if folds is not None else preset.folds,
            data_efficiency_folds=tuple(data_efficiency_folds)
            if data_efficiency_folds is not None
            else preset.data_efficiency_folds,
        )
    bad_folds = [
        k for k in (*preset.folds, *(preset.data_efficiency_folds or ())) if k not in range(5)
    ]
    if bad_folds:
        raise ValueError(f"unknown folds {bad_folds}; valid: 0, 1, 2, 3, 4")
    task_list = tuple(get_task(t).name for t in (tasks or preset.tasks))
    curve_tasks = tuple(t for t in preset.data_efficiency_tasks if tasks is None or t in task_list)
    if include_large:
        task_list += tuple(t for t in LARGE_TASKS if t not in task_list)
    if seeds is not None:
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
        preset = replace(preset, seeds=tuple(seeds), seeds_tasks=task_list)
    results_dir = Path(results_dir)
    plan = BenchPlan(
        preset, tuple(strategies), task_list, results_dir,
        Path(runs_dir) if runs_dir else Path("runs") / preset.name, tuple(structures or ()),
    )  # fmt: skip
    if pretrain_only:
        for s in strategies:
            base, pre, _ = parse_strategy(s)
            if base != "scratch":
                _pretrained(plan, base, pre, progress=progress)
        return plan.runs_dir
    starts = {s: _start(plan, s, progress=progress) for s in strategies}
    cells = [(t, 1.0, results_dir, preset.folds) for t in task_list]
    if data_efficiency:  # a curve's full-data point is a main-matrix cell (done ones are skipped)
        de_folds = preset.data_efficiency_folds or preset.folds
        cells += [
            (
                t,
                f,
                results_dir / "data_efficiency" / f"fraction_{f:g}" if f < 1 else results_dir,
                de_folds,
            )
            for t in curve_tasks
            for f in preset.fractions
        ]
    for task, frac, out_dir, folds in cells:
        # rows the model trains on: 4/5 of the task is a training fold, minus the validation split
        n_train = int(get_task(task).n_samples * 0.8 * frac * (1 - FinetuneConfig().val_fraction))
        # the preset has chosen the batch size for n_train already: no rule of the config's own
        ft = FinetuneConfig(train=preset.finetune_for(n_train), small_batch_size=None)
        for s in strategies:
            if "structure" in s and task in STRUCTURE_OVERLAP_TASKS:
                log.warning("bench: %s on %s skipped (no leak-free structure corpus)", s, task)
                continue
            if classification_only(s) and get_task(task).task_type != "classification":
                log.warning("bench: %s on %s skipped (a classification-only variant)", s, task)
                continue
            rethreshold = threshold_base(s)
            for seed in preset.seeds_for(task) if frac == 1.0 else (0,):
                if rethreshold is not None:  # the same model at another threshold: no training
                    model, rule = rethreshold
                    rethreshold_cells(out_dir, model, s, task, rule, folds=folds, seed=seed)
                if all(cell_done(out_dir, s, task, k, seed) for k in folds):
                    continue  # done: no pretraining needed to resume past it
                run_matbench_task(
                    task, starts[s](ft), strategy=s, folds=folds, seed=seed,
                    results_dir=out_dir, fraction=frac, progress=progress, n_members=members[s],
                )  # fmt: skip
    for task in task_list if select else ():
        skipped = [c for c in select if "structure" in c and task in STRUCTURE_OVERLAP_TASKS]
        if skipped:
            log.warning("bench: no selection on %s (%s not run there)", task, ", ".join(skipped))
            continue
        select_strategy(results_dir, task, select, label=select_label)
    return write_report(results_dir, preset=preset.name, runs_dir=plan.runs_dir)
