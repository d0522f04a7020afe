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
and ``RF-SCM/Magpie``. Where the page also lists ``MODNet (v0.1.10)``, its value is given in a
comment next to the entry.
"""

from dataclasses import dataclass

_COMMIT = "741718976b6ffb14b4f0dc7a663c72fc419c5d33"


def _source(task: str) -> str:
    return (
        "materialsproject/matbench docs_src/Leaderboards Per-Task/"
        f"matbench_v0.1_{task}.md @ {_COMMIT}"
    )


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: the algorithm name as printed, and mean ± std of the headline metric."""

    algorithm: str
    mean: float
    std: float | None


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
    source: str


_MODNET = "MODNet (v0.1.12)"
_CRABNET = "CrabNet"
_RF = "RF-SCM/Magpie"

LEADERBOARD: dict[str, TaskBoard] = {
    "matbench_expt_gap": TaskBoard(
        task="matbench_expt_gap",
        metric="mae",
        unit="eV",
        leader=Entry("Darwin", 0.2865, 0.0083),
        modnet=Entry(_MODNET, 0.3327, 0.0239),  # MODNet (v0.1.10): 0.3470 ± 0.0222
        crabnet=Entry(_CRABNET, 0.3463, 0.0088),
        rf_scm_magpie=Entry(_RF, 0.4461, 0.0177),
        source=_source("matbench_expt_gap"),
    ),
    "matbench_expt_is_metal": TaskBoard(
        task="matbench_expt_is_metal",
        metric="rocauc",
        unit="",
        leader=Entry("Darwin", 0.9598, 0.0041),
        modnet=Entry(_MODNET, 0.9161, 0.0072),  # MODNet (v0.1.10): 0.9161 ± 0.0072
        crabnet=None,
        rf_scm_magpie=Entry(_RF, 0.9167, 0.0064),
        source=_source("matbench_expt_is_metal"),
    ),
    "matbench_glass": TaskBoard(
        task="matbench_glass",
        metric="rocauc",
        unit="",
        leader=Entry(_MODNET, 0.9603, 0.0075),
        modnet=Entry(_MODNET, 0.9603, 0.0075),  # MODNet (v0.1.10): 0.8107 ± 0.0212
        crabnet=None,
        rf_scm_magpie=Entry(_RF, 0.8587, 0.0158),
        source=_source("matbench_glass"),
    ),
    "matbench_steels": TaskBoard(
        task="matbench_steels",
        metric="mae",
        unit="MPa",
        leader=Entry("TPOT-Mat", 79.9468, 13.5883),
        modnet=Entry(_MODNET, 87.7627, 12.2188),  # MODNet (v0.1.10): 96.2139 ± 9.8352
        crabnet=Entry(_CRABNET, 107.3160, 18.9057),
        rf_scm_magpie=Entry(_RF, 103.5125, 11.0368),
        source=_source("matbench_steels"),
    ),
    "matbench_jdft2d": TaskBoard(
        task="matbench_jdft2d",
        metric="mae",
        unit="meV/atom",
        leader=Entry(_MODNET, 33.1918, 7.3428),
        modnet=Entry(_MODNET, 33.1918, 7.3428),  # MODNet (v0.1.10): 34.5368 ± 9.4959
        crabnet=Entry(_CRABNET, 45.6104, 12.2491),
        rf_scm_magpie=Entry(_RF, 50.0440, 8.6271),
        source=_source("matbench_jdft2d"),
    ),
    "matbench_phonons": TaskBoard(
        task="matbench_phonons",
        metric="mae",
        unit="cm^-1",
        leader=Entry("MegNet (kgcnn v2.1.0)", 28.7606, 2.5767),
        modnet=Entry(_MODNET, 34.2751, 2.0781),  # MODNet (v0.1.10): 38.7524 ± 1.7732
        crabnet=Entry(_CRABNET, 55.1114, 5.7317),
        rf_scm_magpie=Entry(_RF, 67.6126, 8.9900),
        source=_source("matbench_phonons"),
    ),
    "matbench_dielectric": TaskBoard(
        task="matbench_dielectric",
        metric="mae",
        unit="unitless",
        leader=Entry(_MODNET, 0.2711, 0.0714),
        modnet=Entry(_MODNET, 0.2711, 0.0714),  # MODNet (v0.1.10): 0.2970 ± 0.0720
        crabnet=Entry(_CRABNET, 0.3234, 0.0714),
        rf_scm_magpie=Entry(_RF, 0.4196, 0.0750),
        source=_source("matbench_dielectric"),
    ),
    "matbench_log_gvrh": TaskBoard(
        task="matbench_log_gvrh",
        metric="mae",
        unit="log10(GPa)",
        leader=Entry("coNGN", 0.0670, 0.0006),
        modnet=Entry(_MODNET, 0.0731, 0.0007),  # MODNet (v0.1.10): 0.0731 ± 0.0007
        crabnet=Entry(_CRABNET, 0.1014, 0.0017),
        rf_scm_magpie=Entry(_RF, 0.1040, 0.0016),
        source=_source("matbench_log_gvrh"),
    ),
    "matbench_log_kvrh": TaskBoard(
        task="matbench_log_kvrh",
        metric="mae",
        unit="log10(GPa)",
        leader=Entry("coNGN", 0.0491, 0.0026),
        modnet=Entry(_MODNET, 0.0548, 0.0025),  # MODNet (v0.1.10): 0.0548 ± 0.0025
        crabnet=Entry(_CRABNET, 0.0758, 0.0034),
        rf_scm_magpie=Entry(_RF, 0.0820, 0.0027),
        source=_source("matbench_log_kvrh"),
    ),
    "matbench_perovskites": TaskBoard(
        task="matbench_perovskites",
        metric="mae",
        unit="eV/unit cell",
        leader=Entry("coGN", 0.0269, 0.0008),
        modnet=Entry(_MODNET, 0.0908, 0.0028),  # MODNet (v0.1.10): 0.0908 ± 0.0028
        crabnet=Entry(_CRABNET, 0.4065, 0.0069),
        rf_scm_magpie=Entry(_RF, 0.2355, 0.0034),
        source=_source("matbench_perovskites"),
    ),
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
