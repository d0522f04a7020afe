"""Published Matbench v0.1 leaderboard reference values for ten tasks.

Matbench is the benchmark of Dunn, Wang, Ganose, Dopp & Jain, "Benchmarking materials property
prediction methods: the Matbench test set and Automatminer reference algorithm", npj Comput. Mater.
6, 138 (2020), doi:10.1038/s41524-020-00406-3. Its public repository ``materialsproject/matbench``
keeps one leaderboard page per task, ``docs_src/Leaderboards Per-Task/matbench_v0.1_<task>.md``,
which ranks the submitted algorithms by the task's headline metric over the five nested-CV folds:
mean MAE (lower is better) for regression tasks, mean ROC-AUC (higher is better) for the
classification tasks ``matbench_expt_is_metal`` and ``matbench_glass``.

Every value below is copied from the ``mean`` and ``std`` columns of those pages, as printed (four
decimals), from a stored copy of the repository at commit
``741718976b6ffb14b4f0dc7a663c72fc419c5d33``. That is the most complete version of the pages
that the stored copy holds (pages with an embedded plotly.js v2.27.0 figure, listing Darwin,
TPOT-Mat, AutoML-Mat, DeeperGATGNN and gptchem); commit ``bb3eebf475ceac45e257f36c05cec7773b5ebb43``
carries the same tables for ``steels`` and ``perovskites``, and older commits list fewer algorithms.
The pages themselves show no date. Units are the dataset's ``unit`` from the page metadata; the
ROC-AUC tasks have none (``""``).

Per task the record holds the rank-1 algorithm (``leader``), ``MODNet (v0.1.12)``, the plain
``CrabNet`` entry (not the Ax/SAASBO or v1.2.x variants; ``None`` where the page lists no CrabNet)
and ``RF-SCM/Magpie``; ``also`` holds ``MODNet (v0.1.10)``, the same method's earlier submission
(on glass 0.8107 against v0.1.12's 0.9603, the largest gap between the two on any task).

Each entry's ``folds`` are its five official folds' scores, fold 0 first, from the same commit's
per-algorithm pages ``docs_src/Full Benchmark Data/matbench_v0.1_<algorithm>.md`` (section
"Fold scores" of each task, the ``mae`` or ``rocauc`` column, four decimals). Their mean gives
the leaderboard's mean to within 0.0001 (rounding). Matbench's folds are the ones every submission
and ``pretroost bench`` use, so a submission can be compared with ours fold by fold
(:func:`against_leaderboard`) rather than only by means.
"""

from dataclasses import dataclass
from typing import Any

from pretroost.experiment.scores import folds_better, lower_is_better, paired_test

_COMMIT = "741718976b6ffb14b4f0dc7a663c72fc419c5d33"


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: the algorithm name as printed, and mean ± std of the headline metric."""

    algorithm: str
    mean: float
    std: float | None
    folds: tuple[float, ...] | None = None  # the five official folds' scores, fold 0 first


@dataclass(frozen=True)
class TaskBoard:
    """Reference values for one Matbench v0.1 task."""

    task: str  # official name, e.g. "matbench_expt_gap"
    metric: str  # "mae" (regression, lower is better) or "rocauc" (higher is better)
    unit: str  # unit of the metric as the page's metadata gives it; "" for ROC-AUC
    leader: Entry
    modnet: Entry | None
    crabnet: Entry | None
    rf_scm_magpie: Entry | None
    also: tuple[Entry, ...] = ()  # further rows shown for context (MODNet's earlier version)

    @property
    def source(self) -> str:
        """The leaderboard page the means were copied from."""
        return (
            "materialsproject/matbench docs_src/Leaderboards Per-Task/"
            f"matbench_v0.1_{self.task}.md @ {_COMMIT}"
        )


_MODNET = "MODNet (v0.1.12)"
_CRABNET = "CrabNet"
_RF = "RF-SCM/Magpie"
_MODNET_0110 = "MODNet (v0.1.10)"  # the same method's earlier submission


def _board(
    task: str,
    metric: str,
    unit: str,
    *,
    modnet: Entry,
    crabnet: Entry | None,
    rf: Entry,
    also: tuple[Entry, ...],
    leader: Entry | None = None,
) -> TaskBoard:
    """One task's board; ``leader`` defaults to MODNet (where MODNet leads)."""
    return TaskBoard(
        task=task, metric=metric, unit=unit, leader=leader or modnet, modnet=modnet,
        crabnet=crabnet, rf_scm_magpie=rf, also=also,
    )  # fmt: skip


LEADERBOARD: dict[str, TaskBoard] = {
    b.task: b
    for b in (
        _board(
            "matbench_expt_gap",
            "mae",
            "eV",
            leader=Entry("Darwin", 0.2865, 0.0083, folds=(0.2723, 0.2873, 0.2945, 0.2836, 0.2949)),
            modnet=Entry(_MODNET, 0.3327, 0.0239, folds=(0.3121, 0.3388, 0.3763, 0.3121, 0.3241)),
            crabnet=Entry(_CRABNET, 0.3463, 0.0088, folds=(0.3476, 0.3434, 0.3473, 0.3329, 0.3602)),
            rf=Entry(_RF, 0.4461, 0.0177, folds=(0.4360, 0.4387, 0.4812, 0.4345, 0.4400)),
            also=(
                Entry(_MODNET_0110, 0.3470, 0.0222, folds=(0.3272, 0.3594, 0.3845, 0.3259, 0.3382)),
            ),
        ),
        _board(
            "matbench_expt_is_metal",
            "rocauc",
            "",
            leader=Entry("Darwin", 0.9598, 0.0041, folds=(0.9634, 0.9634, 0.9543, 0.9624, 0.9553)),
            modnet=Entry(_MODNET, 0.9161, 0.0072, folds=(0.9269, 0.9136, 0.9177, 0.9177, 0.9045)),
            crabnet=None,
            rf=Entry(_RF, 0.9167, 0.0064, folds=(0.9248, 0.9166, 0.9095, 0.9227, 0.9096)),
            also=(
                Entry(_MODNET_0110, 0.9161, 0.0072, folds=(0.9269, 0.9136, 0.9177, 0.9177, 0.9045)),
            ),
        ),
        _board(
            "matbench_glass",
            "rocauc",
            "",
            modnet=Entry(_MODNET, 0.9603, 0.0075, folds=(0.9743, 0.9618, 0.9539, 0.9545, 0.9570)),
            crabnet=None,
            rf=Entry(_RF, 0.8587, 0.0158, folds=(0.8860, 0.8402, 0.8495, 0.8526, 0.8651)),
            also=(
                Entry(_MODNET_0110, 0.8107, 0.0212, folds=(0.8262, 0.7783, 0.8063, 0.8402, 0.8023)),
            ),
        ),
        _board(
            "matbench_steels",
            "mae",
            "MPa",
            leader=Entry(
                "TPOT-Mat", 79.9468, 13.5883, folds=(105.6363, 66.3154, 78.2786, 77.9677, 71.5361)
            ),
            modnet=Entry(
                _MODNET, 87.7627, 12.2188, folds=(103.5846, 72.3160, 80.5134, 81.6766, 100.7231)
            ),
            crabnet=Entry(
                _CRABNET, 107.3160, 18.9057, folds=(116.2240, 88.0920, 108.1233, 137.4903, 86.6503)
            ),
            rf=Entry(
                _RF, 103.5125, 11.0368, folds=(114.6331, 85.6694, 110.0055, 111.5273, 95.7271)
            ),
            also=(
                Entry(
                    _MODNET_0110,
                    96.2139,
                    9.8352,
                    folds=(112.2905, 81.9908, 99.3739, 93.2877, 94.1265),
                ),
            ),
        ),
        _board(
            "matbench_jdft2d",
            "mae",
            "meV/atom",
            modnet=Entry(
                _MODNET, 33.1918, 7.3428, folds=(25.5515, 30.4506, 45.1925, 26.9801, 37.7845)
            ),
            crabnet=Entry(
                _CRABNET, 45.6104, 12.2491, folds=(36.0753, 45.8800, 67.1110, 31.6798, 47.3058)
            ),
            rf=Entry(_RF, 50.0440, 8.6271, folds=(42.7473, 45.7510, 66.2421, 44.0340, 51.4457)),
            also=(
                Entry(
                    _MODNET_0110,
                    34.5368,
                    9.4959,
                    folds=(27.5769, 27.9722, 51.3402, 26.9141, 38.8806),
                ),
            ),
        ),
        _board(
            "matbench_phonons",
            "mae",
            "cm^-1",
            leader=Entry(
                "MegNet (kgcnn v2.1.0)",
                28.7606,
                2.5767,
                folds=(31.6159, 31.0426, 25.2700, 29.7114, 26.1630),
            ),
            modnet=Entry(
                _MODNET, 34.2751, 2.0781, folds=(34.7662, 36.3582, 36.5373, 32.1725, 31.5413)
            ),
            crabnet=Entry(
                _CRABNET, 55.1114, 5.7317, folds=(60.8044, 58.1439, 60.2413, 47.7603, 48.6072)
            ),
            rf=Entry(_RF, 67.6126, 8.9900, folds=(82.3863, 72.8871, 59.2712, 58.6036, 64.9149)),
            also=(
                Entry(
                    _MODNET_0110,
                    38.7524,
                    1.7732,
                    folds=(40.2218, 41.1190, 38.8526, 37.1039, 36.4648),
                ),
            ),
        ),
        _board(
            "matbench_dielectric",
            "mae",
            "unitless",
            modnet=Entry(_MODNET, 0.2711, 0.0714, folds=(0.1691, 0.2410, 0.3899, 0.2775, 0.2781)),
            crabnet=Entry(_CRABNET, 0.3234, 0.0714, folds=(0.2147, 0.3048, 0.4376, 0.3402, 0.3195)),
            rf=Entry(_RF, 0.4196, 0.0750, folds=(0.3042, 0.4079, 0.5220, 0.3879, 0.4760)),
            also=(
                Entry(_MODNET_0110, 0.2970, 0.0720, folds=(0.1939, 0.2669, 0.4138, 0.2880, 0.3223)),
            ),
        ),
        _board(
            "matbench_log_gvrh",
            "mae",
            "log10(GPa)",
            leader=Entry("coNGN", 0.0670, 0.0006, folds=(0.0662, 0.0678, 0.0663, 0.0674, 0.0672)),
            modnet=Entry(_MODNET, 0.0731, 0.0007, folds=(0.0731, 0.0738, 0.0731, 0.0738, 0.0718)),
            crabnet=Entry(_CRABNET, 0.1014, 0.0017, folds=(0.0994, 0.0994, 0.1020, 0.1034, 0.1031)),
            rf=Entry(_RF, 0.1040, 0.0016, folds=(0.1046, 0.1024, 0.1025, 0.1037, 0.1067)),
            also=(
                Entry(_MODNET_0110, 0.0731, 0.0007, folds=(0.0731, 0.0738, 0.0731, 0.0738, 0.0718)),
            ),
        ),
        _board(
            "matbench_log_kvrh",
            "mae",
            "log10(GPa)",
            leader=Entry("coNGN", 0.0491, 0.0026, folds=(0.0482, 0.0494, 0.0458, 0.0536, 0.0484)),
            modnet=Entry(_MODNET, 0.0548, 0.0025, folds=(0.0536, 0.0559, 0.0510, 0.0585, 0.0549)),
            crabnet=Entry(_CRABNET, 0.0758, 0.0034, folds=(0.0748, 0.0780, 0.0698, 0.0793, 0.0773)),
            rf=Entry(_RF, 0.0820, 0.0027, folds=(0.0809, 0.0808, 0.0783, 0.0863, 0.0836)),
            also=(
                Entry(_MODNET_0110, 0.0548, 0.0025, folds=(0.0536, 0.0559, 0.0510, 0.0585, 0.0549)),
            ),
        ),
        _board(
            "matbench_perovskites",
            "mae",
            "eV/unit cell",
            leader=Entry("coGN", 0.0269, 0.0008, folds=(0.0273, 0.0280, 0.0256, 0.0271, 0.0266)),
            modnet=Entry(_MODNET, 0.0908, 0.0028, folds=(0.0932, 0.0939, 0.0861, 0.0892, 0.0914)),
            crabnet=Entry(_CRABNET, 0.4065, 0.0069, folds=(0.4080, 0.4160, 0.4034, 0.4096, 0.3953)),
            rf=Entry(_RF, 0.2355, 0.0034, folds=(0.2357, 0.2367, 0.2365, 0.2395, 0.2291)),
            also=(
                Entry(_MODNET_0110, 0.0908, 0.0028, folds=(0.0932, 0.0939, 0.0861, 0.0892, 0.0914)),
            ),
        ),
    )
}

#: plain Roost retrained on the official Matbench v0.1 folds (300 epochs, ~10 % of each training
#: fold for validation): Wang, Kauwe, Murdock & Sparks, "Compositionally restricted attention-based
#: network for materials property predictions", npj Comput. Mater. 7, 77 (2021), Table 2. The same
#: table gives CrabNet on its near-official protocol (``PUBLISHED_CRABNET``).
PUBLISHED_ROOST: dict[str, float] = {"matbench_expt_gap": 0.373, "matbench_steels": 155.2}
PUBLISHED_CRABNET: dict[str, float] = {"matbench_expt_gap": 0.338, "matbench_steels": 91.7}
PUBLISHED_SOURCE = "Wang et al., npj Comput. Mater. 7, 77 (2021), Table 2"


def references(task: str) -> dict[str, float]:
    """Reference values of ``task``'s headline metric to draw beside our results: the published
    Roost and CrabNet (where Wang et al. 2021 report them) and the leaderboard's MODNet, CrabNet,
    RF-SCM/Magpie and leader."""
    out: dict[str, float] = {}
    if task in PUBLISHED_ROOST:
        out["Roost (Wang 2021)"] = PUBLISHED_ROOST[task]
    board = LEADERBOARD.get(task)
    if board is not None:
        for label, entry in (
            ("MODNet (LB)", board.modnet), ("CrabNet (LB)", board.crabnet),
            ("RF-SCM/Magpie (LB)", board.rf_scm_magpie),
            (f"{board.leader.algorithm} (LB leader)", board.leader),
        ):  # fmt: skip
            if entry is not None and entry.mean not in out.values():
                out[label] = entry.mean
    return out


def entries(task: str) -> list[Entry]:
    """The distinct entries of ``task``'s board: leader, MODNet, CrabNet, RF-SCM/Magpie, then
    ``also``; empty for a task not on the board."""
    board = LEADERBOARD.get(task)
    if board is None:
        return []
    out: list[Entry] = []
    for entry in (board.leader, board.modnet, board.crabnet, board.rf_scm_magpie, *board.also):
        if entry is not None and entry not in out:
            out.append(entry)
    return out


def against_leaderboard(task: str, ours: dict[int, float]) -> list[dict[str, Any]]:
    """Our per-fold scores ``ours`` (official fold -> headline score) against every entry of
    ``task``'s board that lists fold scores, paired over the common folds.

    One dict per entry: ``algorithm``, ``ours`` and ``theirs`` (means over the common folds),
    ``better`` / ``n`` (on how many of ``n`` folds ours is better: lower MAE, higher ROC-AUC) and
    :func:`~pretroost.experiment.scores.paired_test`'s ``mean_diff`` (ours − theirs), ``ci95``,
    ``p_t``, ``p_corrected``, ``p_wilcoxon`` (absent with fewer than 3 common folds).
    """

    out = []
    for entry in entries(task):
        if entry.folds is None:
            continue
        theirs = dict(enumerate(entry.folds))
        common = sorted(set(ours) & set(theirs))
        if not common:
            continue
        better, n = folds_better(ours, theirs, lower_better=lower_is_better(task))
        row: dict[str, Any] = {
            "algorithm": entry.algorithm,
            "ours": sum(ours[k] for k in common) / len(common),
            "theirs": sum(theirs[k] for k in common) / len(common),
            "better": better,
            "n": n,
        }
        test = paired_test(ours, theirs)
        if test is not None:
            row |= {k: test[k] for k in ("mean_diff", "ci95", "p_t", "p_corrected", "p_wilcoxon")}
        out.append(row)
    return out
