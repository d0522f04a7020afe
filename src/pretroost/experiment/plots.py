"""The report's figures: each task's strategies vs scratch with the paired differences, data
efficiency curves, parity plots or ROC curves, and PCA maps of the encoders' material vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretroost.data.matbench import get_task, load_task
from pretroost.experiment.encoder_probe import encoder_embeddings
from pretroost.experiment.leaderboard import references
from pretroost.experiment.scores import lower_is_better, paired_test
from pretroost.experiment.strategies import parse_strategy, strategy_order
from pretroost.results import strategy_dir, strategy_folder
from pretroost.utils import atomic_path

__all__ = [
    "plot_data_efficiency",
    "plot_embedding_map",
    "plot_parity_or_roc",
    "plot_vs_scratch",
    "save_figure",
]


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def _colour(strategy: str) -> str:
    """Grey for scratch, blue for a base strategy, cyan for a variant."""
    if strategy == "scratch":
        return "0.6"
    try:
        _, pre, post = parse_strategy(strategy)
    except ValueError:
        return "tab:blue"
    return "tab:cyan" if pre or post else "tab:blue"


def plot_vs_scratch(results_dir: Path, table: dict[str, dict[str, dict]]) -> list[Path]:
    """Per task: (left) each strategy's score as a horizontal bar (mean over folds) with its
    per-fold points, and vertical reference lines for converged scratch, the published Roost and
    the leaderboard's MODNet / CrabNet / RF-SCM/Magpie; (right) the paired per-fold difference vs
    scratch with its mean and 95 % confidence interval. Base strategies first, variants after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for task, cells in sorted(table.items()):
        base = cells.get("scratch")
        order = sorted(cells, key=strategy_order)
        if base is None or len(order) < 2:
            continue
        order = order[::-1]  # top to bottom as in the tables
        y = np.arange(len(order))
        height = 2.0 + 0.38 * len(order)  # room for the reference legend below the axes
        fig, (ax, bx) = plt.subplots(
            1, 2, figsize=(11, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
        )
        means = [cells[s]["mean"] for s in order]
        colours = [_colour(s) for s in order]
        ax.barh(y, means, color=colours, alpha=0.8)
        for i, s in enumerate(order):
            v = list(cells[s]["folds"].values())
            ax.plot(v, np.full(len(v), i) + np.linspace(-0.2, 0.2, len(v)), "k.", ms=4)
        refs = references(task)
        palette = ["tab:red", "tab:purple", "tab:orange", "tab:green", "tab:brown", "tab:pink"]
        for (label, value), colour in zip(refs.items(), palette, strict=False):
            ax.axvline(value, color=colour, ls="--", lw=1.2, label=f"{label} {value:.4g}")
        lo = min([*means, *refs.values()]) * 0.9
        hi = max([*(max(c["folds"].values()) for c in cells.values()), *refs.values()]) * 1.03
        ax.set_xlim(lo if lower_is_better(task) else max(0.0, lo), hi)
        ax.set_yticks(y, order)
        ax.set_xlabel(f"{base['metric'].upper()}\n(bars: mean over folds; dots: folds)")
        if refs:  # below the axes: inside, it would hide the fold dots
            fig.legend(fontsize=7, loc="lower center", ncol=min(len(refs), 3), frameon=False)
        ax.set_title(task)
        for i, s in enumerate(order):
            if s == "scratch":
                continue
            common = sorted(set(cells[s]["folds"]) & set(base["folds"]))
            d = [cells[s]["folds"][k] - base["folds"][k] for k in common]
            bx.plot(d, np.full(len(d), i), ".", color="k", ms=4)
            test = paired_test(cells[s]["folds"], base["folds"])
            if test is not None:
                lo_ci, hi_ci = test["ci95"]
                bx.errorbar(test["mean_diff"], i, xerr=[[test["mean_diff"] - lo_ci],
                            [hi_ci - test["mean_diff"]]], fmt="o", color="tab:blue", capsize=3)  # fmt: skip
        bx.axvline(0, color="k", lw=0.8)
        better = "lower" if lower_is_better(task) else "higher"
        bx.set_xlabel(
            f"paired difference vs scratch\n(dots: folds; mean, 95 % CI; {better} is better)"
        )
        fig.tight_layout(rect=(0, 0.1 + 0.05 * (len(refs) > 3), 1, 1))
        path = save_figure(fig, results_dir / "plots" / f"{task}_vs_scratch.png")
        paths.append(path)
    return paths


def plot_data_efficiency(results_dir: Path, de: dict[str, dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for task, curves in de.items():
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for s, vals in curves["strategies"].items():
            pts = [
                (f, v, sd or 0.0)
                for f, v, sd in zip(curves["fractions"], vals, curves["std"][s], strict=True)
                if v is not None
            ]
            xs, ys, sds = (np.array(c) for c in zip(*pts, strict=True))
            (line,) = ax.plot(xs, ys, marker="o", label=s)
            ax.fill_between(xs, ys - sds, ys + sds, color=line.get_color(), alpha=0.12, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("share of training fold")
        ax.set_ylabel(curves["metric"].upper())
        folds = ", ".join(map(str, curves["folds"]))
        ax.set_title(f"{task} (folds {folds}; band: ± std over folds)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = save_figure(fig, results_dir / "plots" / f"{task}_data_efficiency.png")
        paths.append(path)
    return paths


def plot_parity_or_roc(results_dir: str | Path, strategy: str, task: str) -> Path | None:
    """Parity plot (regression) or ROC curve (classification) of a strategy's out-of-fold test
    predictions pooled over folds; returns the PNG path (None if no predictions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    results_dir = Path(results_dir)
    files = sorted((strategy_dir(results_dir, strategy) / "predictions" / task).glob("fold_*.csv"))
    if not files:
        return None
    pred = pd.concat([pd.read_csv(f) for f in files]).set_index("id")
    truth = load_task(task)["target"].loc[pred.index]
    meta = get_task(task)
    fig, ax = plt.subplots(figsize=(4, 4))
    if meta.task_type == "regression":
        lo, hi = (
            float(min(truth.min(), pred["prediction"].min())),
            float(max(truth.max(), pred["prediction"].max())),
        )
        ax.scatter(truth, pred["prediction"], s=4, alpha=0.4)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"true {meta.target}")
        ax.set_ylabel("predicted")
        mae = float(np.mean(np.abs(truth.to_numpy() - pred["prediction"].to_numpy())))
        ax.set_title(f"{task}: {strategy} (MAE {mae:.4g})", fontsize=9)
        kind = "parity"
    else:
        from sklearn.metrics import roc_auc_score, roc_curve

        fpr, tpr, _ = roc_curve(truth.to_numpy(), pred["prediction"].to_numpy())
        auc = roc_auc_score(truth.to_numpy(), pred["prediction"].to_numpy())
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{task}: {strategy} (ROC AUC of probabilities {auc:.3f})", fontsize=9)
        kind = "roc"
    fig.tight_layout()
    path = save_figure(
        fig,
        results_dir / "plots" / f"{task}_{strategy_folder(strategy).replace('+', '_')}_{kind}.png",
    )
    return path


def plot_embedding_map(
    encoders: dict[str, str | None],
    task: str,
    out: str | Path,
    *,
    max_points: int = 3000,
    seed: int = 0,
    embeddings: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
) -> Path:
    """PCA maps of encoder material vectors of one task's compositions, one panel per encoder,
    coloured by the target (``embeddings``: the output of :func:`encoder_embeddings`, if at hand)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    y, emb = embeddings or encoder_embeddings(encoders, task, max_points=max_points, seed=seed)
    fig, axes = plt.subplots(1, len(emb), figsize=(3.2 * len(emb), 3.2), squeeze=False)
    for ax, (label, X) in zip(axes[0], emb.items(), strict=True):
        xy = PCA(n_components=2, random_state=seed).fit_transform(X)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, s=3, cmap="viridis")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label=get_task(task).target)
    return save_figure(fig, Path(out))
