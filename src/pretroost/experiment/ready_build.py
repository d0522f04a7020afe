"""Build the ready property models (:mod:`pretroost.ready`) into the package.

``pretroost ready build NAME`` fits recipe ``NAME`` on every row of its Matbench task (the PBE
teacher fitted as in :mod:`pretroost.data.pbe_gap` and stored with the model) and writes
``src/pretroost/pretrained/NAME/`` atomically: ``model.skops`` (deflated), ``domain.json`` and
``training.csv.gz`` (:class:`~pretroost.domain.DomainIndex`),
``config.json``, ``reference.json`` (predictions of :data:`~pretroost.pretrained.REFERENCE_FORMULAS`
by the folder as stored) and the model card ``README.md``, which states the shipped form's
5-fold score and calibration from ``results/ready/ready.json`` (``pretroost ready score``).
``oqmd-dft`` stores no weights: its config names the shipped ``dft-oqmd`` encoder.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pretroost.artefacts import load_skops, read_config, write_folder
from pretroost.data.composition import MAX_Z, parse_formulas
from pretroost.data.corpus import Corpus
from pretroost.data.matbench import get_task, load_task
from pretroost.domain import DomainIndex
from pretroost.experiment.ready_scores import DEFAULT_DIR, teacher
from pretroost.paths import cache_dir
from pretroost.pretrained import REFERENCE_FORMULAS, ROOT, shipped
from pretroost.ready import (
    DFT_COLUMNS,
    DOMAIN_K,
    ReadyPredictor,
    ReadyRecipe,
    command_line,
    fit_ready,
    get_recipe,
)
from pretroost.utils import git_sha

__all__ = ["build_ready", "model_card"]

log = logging.getLogger(__name__)

#: weights budget of one ready folder (bytes)
MAX_FOLDER_BYTES = 10 * 2**20
DFT_WEIGHTS = "dft-oqmd"
MATBENCH_CITATION = (
    "Dunn, Wang, Ganose, Dopp & Jain, *Benchmarking materials property prediction methods: the "
    "Matbench test set and Automatminer reference algorithm*, npj Comput. Mater. 6, 138 (2020)"
)


def _evaluation(name: str, results_dir: str | Path) -> dict[str, Any] | None:
    path = Path(results_dir) / "ready.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    if get_recipe(name).kind == "dft":
        return report.get("oqmd_dft_check")
    return report.get("models", {}).get(name)


def _reference(predictor: ReadyPredictor, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Predictions of :data:`REFERENCE_FORMULAS` and ``extra`` (a few training formulas, in
    domain) by ``predictor``, the folder as stored."""
    formulas = [*REFERENCE_FORMULAS, *extra]
    frame = predictor.predict(formulas, errors="raise")
    cols = [c for c in predictor.columns if c != "label"]
    return {
        "formulas": formulas,
        "columns": {c: [None if v is None or v != v else float(v) for v in frame[c]] for c in cols},
        "in_domain": [bool(v) for v in frame["in_domain"]],
    }


def build_ready(
    name: str, *, root: str | Path | None = None, results_dir: str | Path = DEFAULT_DIR
) -> Path:
    """Fit ready model ``name`` on its whole Matbench task and write its folder under ``root``
    (default: the package's ``pretrained/``); returns the folder."""
    recipe = get_recipe(name)
    root = Path(root) if root is not None else ROOT
    out = root / name
    evaluation = _evaluation(name, results_dir)
    command = command_line(name, None if root == ROOT else str(root))
    if recipe.kind == "dft":
        return _build_dft(recipe, out, command, evaluation)
    task = get_task(recipe.task)
    df = load_task(task.name)
    formulas = df["formula"].tolist()
    comps = parse_formulas(formulas, source=task.name)
    y = df["target"].to_numpy(np.float64)
    fitted = fit_ready(recipe, comps, y, teacher=teacher() if recipe.uses_teacher else None)
    domain = DomainIndex.fit(comps, y, formulas)
    seen = np.flatnonzero(domain.seen).tolist()
    config: dict[str, Any] = {
        "kind": "ready", "name": name, "recipe": recipe.to_dict(), "task": task.name,
        "task_type": recipe.task_type, "unit": recipe.unit, "n_train": len(y),
        "scale": fitted.scale,
        "threshold": fitted.threshold, "inner": fitted.inner,
        "domain": {"threshold": domain.threshold, "k": DOMAIN_K, "elements": seen,
                   "max_elements": int(comps.n_elements.max()),
                   "min_elements": int(comps.n_elements.min())},
        "evaluation": evaluation, "command": command, "git_sha": git_sha(),
    }  # fmt: skip

    def fill(folder: Path) -> None:
        import skops.io

        skops.io.dump(fitted.estimators, folder / "model.skops",
                      compression=zipfile.ZIP_DEFLATED, compresslevel=9)  # fmt: skip
        domain.save(folder)
        size = sum(f.stat().st_size for f in folder.iterdir())
        if size > MAX_FOLDER_BYTES:
            raise ValueError(f"{name}: {size / 2**20:.1f} MiB exceeds the 10 MiB folder budget")
        stored = ReadyPredictor.load_parts(recipe, config, folder)
        reference = _reference(stored, formulas[:3])
        (folder / "reference.json").write_text(json.dumps(reference) + "\n")

    card = model_card(recipe, config, train_sizes=comps.n_elements)
    return write_folder(out, config, card=card, fill=fill)


def _build_dft(
    recipe: ReadyRecipe, out: Path, command: str, evaluation: dict[str, Any] | None
) -> Path:
    """oqmd-dft: a config naming the shipped dft-oqmd encoder, the elements and sizes of its
    pretraining corpus (the domain check), reference predictions and the card."""

    source = shipped()[DFT_WEIGHTS]
    corpus_info = read_config(source).get("corpus", {})
    seen, most = _corpus_domain()
    config: dict[str, Any] = {
        "kind": "ready", "name": recipe.name, "recipe": recipe.to_dict(), "weights": DFT_WEIGHTS,
        "task_type": "regression", "corpus": {k: corpus_info.get(k) for k in ("size", "hash")},
        "domain": {"elements": seen, "max_elements": most, "min_compositions_per_element": 50},
        "evaluation": evaluation, "command": command, "git_sha": git_sha(),
    }  # fmt: skip

    def fill(folder: Path) -> None:
        stored = ReadyPredictor.load_parts(recipe, config, folder)
        (folder / "reference.json").write_text(json.dumps(_reference(stored)) + "\n")

    return write_folder(out, config, card=model_card(recipe, config), fill=fill)


def _corpus_domain(min_count: int = 50) -> tuple[list[int], int]:
    """The elements present in at least ``min_count`` compositions of the leak-free OQMD corpus
    that dft-oqmd was pretrained on, and its largest number of elements in one composition."""

    corpus = Corpus.load(cache_dir() / "corpus" / "oqmd-leakfree")
    counts = np.bincount(corpus.comps.z, minlength=MAX_Z + 1)
    return np.flatnonzero(counts >= min_count).tolist(), int(corpus.comps.n_elements.max())


def _dft_check_lines(check: dict[str, Any] | None) -> list[str]:
    if not check:
        return ["- Not yet compared with Materials Project (`pretroost ready score oqmd-dft`)."]
    parts = [
        f"{prop}: MAE {c['mae']:.3g} vs {c['task'].removeprefix('matbench_')} (predicting the "
        f"mean: {c['mae_of_the_mean']:.3g})"
        for prop, c in check.items() if isinstance(c, dict)
    ]  # fmt: skip
    return [
        f"- Checked against Materials Project PBE values on {check['n']} random rows of Matbench "
        "mp_gap and mp_e_form (compositions absent from the pretraining corpus; OQMD's and "
        "MP's settings differ, so this overstates the error against OQMD itself): "
        + "; ".join(parts)
        + " (`results/ready/ready.json`)."
    ]


def _symbols(zs: list[int]) -> str:
    from pymatgen.core import Element

    return " ".join(Element.from_Z(z).symbol for z in zs)


def model_card(
    recipe: ReadyRecipe, config: dict[str, Any], *, train_sizes: np.ndarray | None = None
) -> str:
    """The README.md of a ready model folder."""
    name = recipe.name
    use = [
        "## Use",
        "",
        "```bash",
        f"pretroost predict --model {name} formulas.csv -o predictions.csv",
        "```",
        "",
        f'or `pretroost.load("{name}").predict(["Fe2O3", "NaCl"])`. Offline; nothing is refitted '
        "at load. Bad formulas keep their row, with the reason in `error`.",
        "",
    ]
    if recipe.kind == "dft":
        dom = config["domain"]
        cols = ", ".join(f"`{c}` ({u}, OQMD `{p}`)" for p, (c, u) in DFT_COLUMNS.items())
        return "\n".join([
            f"# {name}: DFT-level (OQMD) estimates from a formula",
            "",
            "**These are estimates of what OQMD's DFT (PBE) calculations would give, not "
            "experimental values.** The encoder and the four-label head of the shipped "
            f"`{DFT_WEIGHTS}` (`pretrained/{DFT_WEIGHTS}/`, whose card says how it was "
            "pretrained); this folder holds no weights of its own, only a config naming them.",
            "",
            f"- Columns: {cols}, then `in_domain`, `domain_reason`, `nearest` (empty: the "
            "pretraining corpus is too large to ship), `error`.",
            f"- Trained on the leak-free OQMD corpus ({config['corpus'].get('size')} "
            "compositions, every Matbench composition removed; Kirklin et al., npj Comput. "
            "Mater. 1, 15010 (2015)); the pretraining objective is `pretroost.objectives.dft`.",
            *_dft_check_lines(config.get("evaluation")),
            "- No uncertainty: one model, no spread to measure.",
            f"- Domain: elements in at least {dom['min_compositions_per_element']} corpus "
            f"compositions ({len(dom['elements'])}: {_symbols(dom['elements'])}); at most "
            f"{dom['max_elements']} elements per formula.",
            "",
            *use,
            "Made with:",
            "",
            "```bash",
            config["command"],
            "```",
            "",
        ])  # fmt: skip
    ev = config.get("evaluation")
    task, n = config["task"], config["n_train"]
    clf = recipe.task_type == "classification"
    dom = config["domain"]
    if ev is None:
        expected = ["- Expected error: not yet scored (run `pretroost ready score " + name + "`)."]
    else:
        folds = ", ".join(f"{v:.4g}" for v in ev["folds"])
        c = ev["calibration"]
        what = "ROC-AUC (Matbench's, of the labels)" if clf else f"MAE ({recipe.unit})"
        expected = [
            f"- Expected error: **{what} {ev['mean']:.4g}**, the mean over "
            + (
                "Matbench's 5 official test folds"
                if len(ev["folds"]) == 5
                else f"{len(ev['folds'])} of Matbench's 5 official test folds (folds "
                f"{', '.join(map(str, ev['fold_ids']))}; the others not scored in time)"
            )
            + f" of this recipe fitted on each training fold (scores: {folds}; "
            f"`results/ready/`); the recorded recipe it comes from: {ev['recorded']}.",
        ]
        if clf:
            expected.append(
                f"- ROC-AUC of the probabilities: {ev['rocauc_prob_mean']:.4g} (mean over folds)."
            )
        if clf:
            expected.append(
                f"- Calibration on those test folds: Brier score {c['brier']:.3f}, expected "
                f"calibration error {c['ece']:.3f} (10 bins); balanced accuracy of the labels "
                f"{c['balanced_accuracy']:.3f}."
            )
        else:
            expected.append(
                f"- Calibration on those test folds: {c['coverage_1sigma']:.1%} of rows within "
                f"±1 `std` and {c['coverage_2sigma']:.1%} within ±2 `std` (a Normal: 68.3 % / "
                f"95.4 %); Spearman correlation of |error| with `std`: "
                f"{c['spearman_abs_error_std']:.2f}."
            )
        if "in_domain" in ev and "out_of_domain" in ev:
            key = "rocauc" if clf else "mae"
            expected.append(
                f"- In domain: {ev['in_domain_fraction']:.1%} of test rows, {key} "
                f"{ev['in_domain'][key]:.4g}; out of domain {ev['out_of_domain'][key]:.4g}."
            )
    r = recipe
    if r.kind == "hurdle":
        model = (
            f"a hurdle (`pretroost.hurdle`): {r.model} ({r.n_estimators} trees, at least "
            f"{r.min_samples_leaf} rows per leaf) on {r.features} regresses the gap; "
            f"{r.zero_model} ({r.zero_n_estimators} iterations) on {r.zero_features} gives "
            "`p_metal`, the probability that the gap is 0; `prediction` is 0 where `p_metal` > "
            "0.5 (the median of the mixture), else the regressor's mean (never negative); `label` "
            "is metal / non-metal by the same rule; `std` is the standard deviation of the "
            "mixture '0 with probability p_metal, else Normal(mean, regressor std)', the "
            f"regressor std being its trees' spread times {config['scale']:.3g}, the factor "
            "that puts 68.3 % of the training rows' out-of-fold errors within ±1 std"
        )
    elif clf:
        model = (
            f"{r.model} ({r.n_estimators} {'iterations' if r.model == 'gradientboosting' else 'trees'}) "
            f"on {r.features}; `probability` of '{r.labels[1]}', `prediction` 1 where it exceeds "
            f"{config['threshold']:.3g} "
            + ("(chosen on out-of-fold probabilities of the training rows, 5-fold, for the best "
               "balanced accuracy)" if r.threshold == "validation" else "(Matbench's 0.5)")
            + f", `label` {r.labels[1]} / {r.labels[0]}"
        )  # fmt: skip
    else:
        model = (
            f"{r.model} ({r.n_estimators} trees) on {r.features}; `prediction` the trees' mean "
            f"({r.unit}), `std` their spread times {config['scale']:.3g}, the factor that puts "
            "68.3 % of the training rows' out-of-fold errors (5-fold) within ±1 std"
        )
    teacher_line = (
        ["- The PBE band-gap teacher (`pretroost.data.pbe_gap`: gradient boosting fitted on "
         "Materials Project PBE gaps of Matbench mp_gap, every composition of the experimental "
         "tasks removed; Jain et al., APL Mater. 1, 011002 (2013)) is stored in `model.skops`."]
        if r.uses_teacher else []
    )  # fmt: skip
    sizes = (
        f"{int(train_sizes.min())}–{int(train_sizes.max())} elements per formula"
        if train_sizes is not None else ""
    )  # fmt: skip
    return "\n".join([
        f"# {name}: {r.quantity}{f' ({r.unit})' if r.unit else ''} from a formula",
        "",
        f"Not Roost: scikit-learn trees on composition features (`pretroost.ready`). The model: "
        f"{model}.",
        "",
        f"- Training data: every row of Matbench v0.1 `{task}` ({n} compositions), {MATBENCH_CITATION}.",
        *teacher_line,
        *expected,
        f"- Why this recipe: {r.why}.",
        f"- Seen in training: {len(dom['elements'])} elements ({_symbols(dom['elements'])}); "
        f"{sizes}.",
        "- Domain check (`in_domain`, `domain_reason`, `nearest`): `nearest` lists the 3 "
        "nearest training compositions with their recorded values and L1 distance between "
        "element fractions (0: same composition, 2: nothing in common); a row is out of domain "
        "with an element never seen in training or a nearest training composition farther "
        f"than {dom['threshold']:.3g} (the 99th percentile of the training rows' distances to "
        "their nearest other training row; `pretroost.domain`).",
        "",
        *use,
        "Made with (fits on the cached Matbench data; `pretroost ready score "
        f"{name}` measures the same recipe on the official folds):",
        "",
        "```bash",
        config["command"],
        "```",
        "",
        f"pretroost {config['git_sha']}.",
        "",
    ])  # fmt: skip


def refresh_card(name: str, *, root: str | Path | None = None,
                 results_dir: str | Path = DEFAULT_DIR) -> Path:  # fmt: skip
    """Rewrite a built folder's ``evaluation`` and card from ``results_dir`` without refitting:
    the stored files are copied as they are."""

    recipe = get_recipe(name)
    folder = (Path(root) if root is not None else ROOT) / name
    config = {k: v for k, v in read_config(folder).items() if k != "format_version"}
    config["evaluation"] = _evaluation(name, results_dir)
    config["unit"] = recipe.unit  # the target's unit (pretroost serve's headers)
    if (folder / "model.skops").is_file():
        load_skops(folder / "model.skops")  # only checked to be readable
    sizes = parse_formulas(_domain_formulas(folder)).n_elements if recipe.kind != "dft" else None

    def fill(tmp: Path) -> None:
        for f in ("model.skops", "domain.json", "training.csv.gz", "reference.json"):
            if (folder / f).is_file():
                shutil.copy2(folder / f, tmp / f)

    return write_folder(folder, config, card=model_card(recipe, config, train_sizes=sizes),
                        fill=fill)  # fmt: skip


def _domain_formulas(folder: Path) -> list[str]:
    import gzip
    import io

    import pandas as pd

    raw = gzip.decompress((folder / "training.csv.gz").read_bytes())
    return pd.read_csv(io.BytesIO(raw), keep_default_na=False)["formula"].astype(str).tolist()
