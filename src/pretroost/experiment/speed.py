"""Throughput benchmark: our Roost against aviary-models' reference Roost, in one process.

``pretroost speed [--quick] [--n 20000] [--threads T] [--out results/speed.json]``

Every comparison runs both sides in the same process, on the same data and thread count,
interleaved (round r runs side A then B, round r+1 B then A) after a warm-up, and reports medians
over rounds of wall-clock throughput (CPU-time throughput alongside: the machine may be shared,
and CPU time is less sensitive to our threads being descheduled). Measurements:

* ``machine``: fp32 / bf16 matmul peak (a large square matmul, GFLOP/s).
* ``train``: Roost training throughput (compositions/s over whole epochs), ours (fused kernels,
  fp32; also bf16 autocast and the dense reference path) vs ``aviary.roost.model.Roost`` fed by
  ``aviary.roost.data.CompositionData`` / ``collate_batch``: same hyperparameters, robust L1
  loss, AdamW (lr 3e-4, weight decay 1e-6), batch 128; then a batch-size sweep for each side.
* ``inference``: warm inference throughput (eval, ``torch.inference_mode``), batch-size sweep.
* ``steels``: the same on matbench_steels (12-14 elements per formula: N² pairs).
* ``flops``: model FLOPs per composition (``FlopCounterMode`` for matmuls, plus the fused pair
  kernels counted analytically) and FLOP utilisation = FLOPs x throughput / measured peak.
* ``ready``: load + predict 1,000 formulas with each shipped ready model, one thread.
* ``fingerprint``: Magpie fingerprints, :func:`pretroost.data.fingerprint.magpie_fingerprint` vs
  matminer (``Stoichiometry``, ``ElementProperty`` magpie, ``ValenceOrbital``, ``IonProperty``).

Other measurements plug in through :func:`register_measurement` (e.g. teacher throughput, SSL
epoch timing): a function ``(SpeedContext) -> dict`` whose result lands in the JSON under its name
and, if it returns ``"table"`` rows, in the printed table.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formula, parse_formulas
from pretroost.data.fingerprint import magpie_fingerprint
from pretroost.data.structures import read_structures
from pretroost.data.teachers import WeightsNotFoundError, get_teacher
from pretroost.finetune import SupervisedTask
from pretroost.hub import load
from pretroost.models.kernels import roost_kernels
from pretroost.models.roost import ModelConfig, RoostModel
from pretroost.paths import cache_dir, shared_data_dir
from pretroost.pretrained import shipped
from pretroost.utils import (
    TUNE_MALLOC_ENV,
    atomic_write_json,
    git_sha,
    machine_description,
    native_bf16,
    tune_malloc,
)

if TYPE_CHECKING:
    from pretroost.models.roost import MessageLayer

__all__ = [
    "MEASUREMENTS",
    "SpeedContext",
    "main",
    "register_measurement",
]

log = logging.getLogger("pretroost.speed")

Measurement = Callable[["SpeedContext"], dict]

#: name -> measurement function, run in this order (``--only`` selects a subset).
MEASUREMENTS: dict[str, Measurement] = {}


def register_measurement(name: str) -> Callable[[Measurement], Measurement]:
    """Decorator adding ``fn(ctx) -> dict`` to :data:`MEASUREMENTS` under ``name``.

    The returned dict is stored in ``speed.json`` under ``measurements[name]``; an optional
    ``"table"`` entry (a list of ``[label, value]`` rows) is printed by :func:`main`.
    """

    def deco(fn: Measurement) -> Measurement:
        MEASUREMENTS[name] = fn
        return fn

    return deco


# ----------------------------------------------------------------------------------------------
# context and timing helpers
# ----------------------------------------------------------------------------------------------


@dataclass
class SpeedContext:
    """What measurements share: options, data and results of earlier measurements."""

    n: int = 20_000
    quick: bool = False
    threads: int = 1
    rounds: int = 3
    batch_sizes: tuple[int, ...] = (128, 256, 512, 1024)
    fingerprint_n: int = 1000
    steels_n: int | None = None
    seed: int = 0
    fused_adamw: bool = True
    #: a commit to time this code against (measurements that compare code versions)
    baseline: str | None = None
    #: bf16 measurements run only where the CPU has native BF16 (else emulated, many times slower:
    #: minutes of measuring something nobody should use); the reason lands in the JSON
    bf16_native: bool = True
    bf16_reason: str = ""
    formulas: list[str] = field(default_factory=list)
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steels: list[str] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def min_seconds(self) -> float:
        """Shortest timed unit (repeat small epochs until it is reached)."""
        return 0.1 if self.quick else 2.0


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def _timed(fn: Callable[[], int], min_seconds: float) -> tuple[float, float]:
    """Run ``fn`` (returning compositions processed) until ``min_seconds`` of wall time pass;
    -> (compositions/s wall, compositions/s CPU time of this process)."""
    n, w0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        n += fn()
        wall = time.perf_counter() - w0
        if wall >= min_seconds:
            break
    cpu = max(time.process_time() - c0, 1e-9)
    return n / wall, n / cpu


def _interleaved(
    sides: dict[str, Callable[[], int]], rounds: int, min_seconds: float, warmup: bool = True
) -> dict[str, dict]:
    """Time each side ``rounds`` times, interleaved and with alternating order."""
    names = list(sides)
    if warmup:
        for name in names:
            sides[name]()
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            w, c = _timed(sides[name], min_seconds)
            wall[name].append(w)
            cpu[name].append(c)
            log.debug("round %d %s: %.0f/s wall, %.0f/s cpu", r, name, w, c)
    return {
        k: {
            "per_s": _median(wall[k]),
            "per_s_cpu": _median(cpu[k]),
            "rounds_per_s": [round(x, 1) for x in wall[k]],
            "rounds_per_s_cpu": [round(x, 1) for x in cpu[k]],
        }
        for k in names
    }


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


@contextlib.contextmanager
def _autocast(bf16: bool) -> Iterator[None]:
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield


# ----------------------------------------------------------------------------------------------
# contestants
# ----------------------------------------------------------------------------------------------


class _Ours:
    """Our RoostModel + robust L1 + AdamW, fed by CompositionDataset (as ``pretroost.train``)."""

    def __init__(self, ctx: SpeedContext, formulas: list[str], targets: np.ndarray, **kw) -> None:

        impl = kw.get("impl", "auto")
        self.bf16 = bool(kw.get("bf16", False))
        torch.manual_seed(ctx.seed)
        y = np.asarray(targets, dtype=np.float32).reshape(-1, 1)
        self.data = CompositionDataset(parse_formulas(formulas), {"y": y})
        self.task = SupervisedTask(RoostModel(ModelConfig(robust=True), impl=impl), "robust")
        self.opt = torch.optim.AdamW(
            self.task.parameters(), lr=3e-4, weight_decay=1e-6, fused=ctx.fused_adamw
        )
        self.rng = np.random.default_rng(ctx.seed)

    def train_epoch(self, batch_size: int) -> int:
        self.task.train()
        for idx in self.data.batch_indices(batch_size, shuffle=True, generator=self.rng):
            with _autocast(self.bf16):
                loss = self.task(self.data.batch(idx))["loss"]
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return len(self.data)

    def infer(self, batch_size: int) -> int:
        self.task.eval()
        with torch.inference_mode(), _autocast(self.bf16):
            for batch in self.data.batches(batch_size):
                self.task.model(batch)
        return len(self.data)

    def train_step_flops(self, idx: np.ndarray) -> float:
        """FLOPs of one training step (forward + backward) on the rows ``idx``."""
        from torch.utils.flop_counter import FlopCounterMode

        self.task.train()
        batch = self.data.batch(idx)
        with FlopCounterMode(display=False) as fc:
            self.task(batch)["loss"].backward()
        self.task.zero_grad(set_to_none=True)
        enc = self.task.model.encoder
        extra = 0.0
        if enc.uses_fast_path():  # the fused pair kernels are invisible to FlopCounterMode
            n = batch.mask.sum(dim=1).double()
            pairs = float((n * n).sum())
            for layer in cast("Iterable[MessageLayer]", enc.graphs):
                H, Dg, Dm = layer.power.shape[0], layer.gate.dims[1], layer.msg.dims[1]
                extra += pairs * H * 6 * (Dg + Dm)  # forward 2(Dg+Dm), backward 4(Dg+Dm)
        return float(fc.get_total_flops()) + extra


class _Aviary:
    """aviary-models' Roost with its own dataset / collate function, robust L1, AdamW."""

    def __init__(self, ctx: SpeedContext, formulas: list[str], targets: np.ndarray) -> None:
        import pandas as pd
        from aviary.losses import robust_l1_loss
        from aviary.roost.data import CompositionData, collate_batch
        from aviary.roost.model import Roost

        torch.manual_seed(ctx.seed)
        df = pd.DataFrame(
            {"material_id": range(len(formulas)), "composition": formulas, "target": targets}
        )
        self.data = CompositionData(df, task_dict={"target": "regression"})
        self.collate = collate_batch
        self.loss_fn = robust_l1_loss
        self.model = Roost(
            robust=True,
            n_targets=[1],
            elem_embedding="matscholar200",
            task_dict={"target": "regression"},
        )
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=3e-4, weight_decay=1e-6, fused=ctx.fused_adamw
        )
        self.rng = np.random.default_rng(ctx.seed)
        self.n = len(formulas)

    def _batches(self, batch_size: int, order: np.ndarray) -> Iterator[tuple]:
        for s in range(0, self.n, batch_size):
            yield self.collate([self.data[int(i)] for i in order[s : s + batch_size]])

    def train_epoch(self, batch_size: int) -> int:
        self.model.train()
        for inputs, targets, *_ in self._batches(batch_size, self.rng.permutation(self.n)):
            out = self.model(*inputs)[0]
            loss = self.loss_fn(out[:, :1], out[:, 1:], targets[0])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return self.n

    def infer(self, batch_size: int) -> int:
        self.model.eval()
        with torch.inference_mode():
            for inputs, *_ in self._batches(batch_size, np.arange(self.n)):
                self.model(*inputs)
        return self.n

    def train_step_flops(self, idx: np.ndarray) -> float:
        from torch.utils.flop_counter import FlopCounterMode

        self.model.train()
        inputs, targets, *_ = self.collate([self.data[int(i)] for i in idx])
        with FlopCounterMode(display=False) as fc:
            out = self.model(*inputs)[0]
            self.loss_fn(out[:, :1], out[:, 1:], targets[0]).backward()
        self.model.zero_grad(set_to_none=True)
        return float(fc.get_total_flops())


def _contestants(ctx: SpeedContext, key: str, formulas: list[str], targets: np.ndarray) -> dict:
    """Build (once per data set) ours fp32 / bf16 / reference and aviary's model."""
    if key not in ctx._cache:
        t0 = time.perf_counter()
        fast = roost_kernels() is not None
        build_s = time.perf_counter() - t0
        sides: dict[str, _Ours | _Aviary] = {"ours": _Ours(ctx, formulas, targets)}
        if ctx.bf16_native:
            sides["ours_bf16"] = _Ours(ctx, formulas, targets, bf16=True)
        sides["ours_reference"] = _Ours(ctx, formulas, targets, impl="reference")
        sides["aviary"] = _Aviary(ctx, formulas, targets)
        ctx._cache[key] = sides
        ctx._cache.setdefault("kernels", {"available": fast, "load_or_build_s": build_s})
    return ctx._cache[key]


# ----------------------------------------------------------------------------------------------
# measurements
# ----------------------------------------------------------------------------------------------


def _matmul_gflops(dtype: torch.dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    return 2.0 * n**3 / min(ts) / 1e9


@register_measurement("machine")
def measure_machine(ctx: SpeedContext) -> dict:
    """Best-of-``reps`` large square matmul (fp32, bf16): the peak we compare FLOP rates with."""
    n, reps = (1024, 3) if ctx.quick else (2048, 7)
    fp32 = _matmul_gflops(torch.float32, n, reps)
    out: dict[str, Any] = {"matmul_size": n, "fp32_gflops": fp32}
    out["table"] = [["fp32 matmul peak", f"{fp32:.0f} GFLOP/s"]]
    if ctx.bf16_native:
        out["bf16_gflops"] = bf16 = _matmul_gflops(torch.bfloat16, n, reps)
        out["table"].append(["bf16 matmul peak", f"{bf16:.0f} GFLOP/s"])
    else:
        out["bf16_gflops"] = None
        out["bf16_skipped"] = ctx.bf16_reason
        out["table"].append(["bf16", f"skipped: {ctx.bf16_reason}"])
    return out


def _train_and_infer(ctx: SpeedContext, key: str, formulas: list[str], targets: np.ndarray) -> dict:
    sides = _contestants(ctx, key, formulas, targets)
    out: dict[str, Any] = {"n_compositions": len(formulas)}
    if "ours_bf16" not in sides:
        out["ours_bf16_skipped"] = ctx.bf16_reason
    ours = [k for k in ("ours", "ours_bf16", "ours_reference") if k in sides]
    swept = [k for k in ("ours", "ours_bf16", "aviary") if k in sides]  # batch-size sweeps
    swept_ours = [k for k in swept if k != "aviary"]
    bs0 = 128
    # training at batch 128: all our variants against aviary
    train = _interleaved(
        {
            name: cast("Callable[[], int]", lambda s=s: s.train_epoch(bs0))
            for name, s in sides.items()
        },
        ctx.rounds,
        ctx.min_seconds,
    )
    out["train_batch_128"] = train
    rows = [[f"train b{bs0} {name}", _fmt(train[name])] for name in sides]
    for name in ours:
        sp = _ratio(train[name]["per_s"], train["aviary"]["per_s"])
        sp_cpu = _ratio(train[name]["per_s_cpu"], train["aviary"]["per_s_cpu"])
        out[f"train_speedup_{name}"] = sp
        out[f"train_speedup_{name}_cpu"] = sp_cpu
        rows.append([f"train speed-up {name} / aviary", f"{sp:.2f}x  (cpu time {sp_cpu:.2f}x)"])
    # batch-size sweeps (fewer rounds; the sides that matter)
    sweep_rounds = max(1, ctx.rounds - 1)
    for what, fn_name in (("train", "train_epoch"), ("inference", "infer")):
        per_bs: dict[str, dict] = {}
        for bs in ctx.batch_sizes:
            if what == "train" and bs == bs0:
                per_bs[str(bs)] = {k: train[k] for k in swept}
                continue
            per_bs[str(bs)] = _interleaved(
                {
                    name: cast(
                        "Callable[[], int]", lambda s=sides[name], b=bs, f=fn_name: getattr(s, f)(b)
                    )
                    for name in swept
                },
                sweep_rounds,
                ctx.min_seconds,
                warmup=what == "inference" and bs == ctx.batch_sizes[0],
            )
        out[f"{what}_by_batch_size"] = per_bs
        best = {}
        for name in swept:
            bs_best = max(per_bs, key=lambda b: per_bs[b][name]["per_s"])
            best[name] = {"batch_size": int(bs_best), **per_bs[bs_best][name]}
        out[f"{what}_best"] = best
        for name in swept_ours:
            out[f"{what}_best_speedup_{name}"] = _ratio(
                best[name]["per_s"], best["aviary"]["per_s"]
            )
        if what == "inference":
            b = str(bs0) if str(bs0) in per_bs else next(iter(per_bs))
            for name in swept_ours:
                out[f"inference_speedup_{name}_b{b}"] = _ratio(
                    per_bs[b][name]["per_s"], per_bs[b]["aviary"]["per_s"]
                )
                rows.append(
                    [
                        f"inference b{b} speed-up {name} / aviary",
                        f"{out[f'inference_speedup_{name}_b{b}']:.2f}x "
                        f"({per_bs[b][name]['per_s']:.0f} vs {per_bs[b]['aviary']['per_s']:.0f}/s)",
                    ]
                )
        for name in swept:
            rows.append(
                [
                    f"{what} best {name}",
                    f"{best[name]['per_s']:.0f}/s at batch {best[name]['batch_size']}",
                ]
            )
        for name in swept_ours:
            rows.append(
                [
                    f"{what} best speed-up {name} / aviary",
                    f"{out[f'{what}_best_speedup_{name}']:.2f}x",
                ]
            )
    out["table"] = rows
    return out


def _fmt(r: dict) -> str:
    return f"{r['per_s']:.0f}/s (cpu time {r['per_s_cpu']:.0f}/s)"


@register_measurement("train")
def measure_oqmd(ctx: SpeedContext) -> dict:
    """Training and inference throughput on the OQMD sample (see the module docstring)."""
    res = _train_and_infer(ctx, "oqmd", ctx.formulas, ctx.targets)
    res["data"] = "OQMD_Bandgap_train.csv sample"
    return res


@register_measurement("steels")
def measure_steels(ctx: SpeedContext) -> dict:
    """The same on matbench_steels: 12-14 distinct elements per formula."""
    if not ctx.steels:
        return {"skipped": "matbench_steels.csv not in the data cache"}
    saved = ctx.batch_sizes
    ctx.batch_sizes = (128,) if ctx.quick else (128, 256)
    try:
        res = _train_and_infer(ctx, "steels", ctx.steels, np.zeros(len(ctx.steels)))
    finally:
        ctx.batch_sizes = saved
    res["data"] = "matbench_steels.csv"
    res["mean_elements"] = float(np.mean([_n_elements(f) for f in ctx.steels]))
    res["table"] = [[f"steels: {k}", v] for k, v in res["table"]]
    return res


def _n_elements(formula: str) -> int:

    return len(parse_formula(formula)[0])


@register_measurement("flops")
def measure_flops(ctx: SpeedContext) -> dict:
    """Training FLOPs per composition (batches of 128 of the OQMD sample) and utilisation of the
    measured matmul peak at the measured training throughput."""
    sides = _contestants(ctx, "oqmd", ctx.formulas, ctx.targets)
    ours, aviary = sides["ours"], sides["aviary"]
    rng = np.random.default_rng(ctx.seed)
    batches = ours.data.batch_indices(128, shuffle=True, generator=rng)[: 2 if ctx.quick else 8]
    n = sum(len(b) for b in batches)
    flops = {
        "ours": sum(ours.train_step_flops(b) for b in batches) / n,
        "ours_reference": sum(sides["ours_reference"].train_step_flops(b) for b in batches) / n,
        "aviary": sum(aviary.train_step_flops(b) for b in batches) / n,
    }
    out: dict[str, Any] = {"train_flops_per_composition": flops}
    machine = ctx.results.get("machine") or measure_machine(ctx)
    train = ctx.results.get("train", {}).get("train_batch_128")
    rows = [[f"train FLOP/composition {k}", f"{v / 1e6:.1f} MFLOP"] for k, v in flops.items()]
    if train:
        util = {}
        for name, peak_key in (
            ("ours", "fp32_gflops"),
            ("ours_bf16", "bf16_gflops"),
            ("ours_reference", "fp32_gflops"),
            ("aviary", "fp32_gflops"),
        ):
            if name not in train or machine.get(peak_key) is None:
                continue  # bf16 skipped on a CPU without native BF16
            f = flops["ours" if name == "ours_bf16" else name]
            gflops = f * train[name]["per_s"] / 1e9
            util[name] = {"gflops": gflops, "utilisation": gflops / machine[peak_key]}
            rows.append(
                [
                    f"train FLOP rate {name}",
                    f"{gflops:.1f} GFLOP/s = {100 * util[name]['utilisation']:.0f}% of "
                    f"{peak_key.split('_')[0]} peak",
                ]
            )
        out["train_utilisation_batch_128"] = util
    out["note"] = (
        "matmul FLOPs from torch.utils.flop_counter.FlopCounterMode; our fused pair kernels added "
        "as 2 FLOP per multiply-add of the dense formulation (forward 2(Dg+Dm), backward 4(Dg+Dm) "
        "per pair and head); elementwise work is not counted for either side"
    )
    out["table"] = rows
    return out


@register_measurement("fingerprint")
def measure_fingerprint(ctx: SpeedContext) -> dict:
    """Magpie fingerprints from formula strings: ours (parse + vectorised featurisation) vs
    matminer's four featurisers on pymatgen Compositions; plus the largest deviation."""
    from matminer.featurizers.composition import (
        ElementProperty,
        IonProperty,
        Stoichiometry,
        ValenceOrbital,
    )
    from pymatgen.core import Composition

    formulas = ctx.formulas[: ctx.fingerprint_n]
    magpie_fingerprint(parse_formulas(formulas[:10]))  # load element tables
    feats = [
        Stoichiometry(),
        ElementProperty.from_preset("magpie"),
        ValenceOrbital(props=["frac"]),
        IonProperty(fast=True),
    ]
    ours_t, ours_feat_t = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        comps = parse_formulas(formulas)
        t1 = time.perf_counter()
        ours = magpie_fingerprint(comps)
        t2 = time.perf_counter()
        ours_t.append(t2 - t0)
        ours_feat_t.append(t2 - t1)
    t0 = time.perf_counter()
    pmg = [Composition(f) for f in formulas]
    t1 = time.perf_counter()
    with _quiet_warnings():
        ref = np.array([[v for f in feats for v in f.featurize(c)] for c in pmg], dtype=float)
    t2 = time.perf_counter()
    ref = np.delete(ref, -3, axis=1)  # IonProperty's "compound possible" flag: not reproduced
    scaled = np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))
    n = len(formulas)
    out: dict[str, Any] = {
        "n_compositions": n,
        "ours_per_s": n / _median(ours_t),
        "ours_featurise_only_per_s": n / _median(ours_feat_t),
        "matminer_per_s": n / (t2 - t0),
        "matminer_featurise_only_per_s": n / (t2 - t1),
        "max_abs_diff": float(np.nanmax(np.abs(ours - ref))),
        "max_scaled_diff": float(np.nanmax(scaled)),
        "nan_mismatch": int((np.isnan(ours) != np.isnan(ref)).sum()),
    }
    out["speedup"] = _ratio(out["ours_per_s"], out["matminer_per_s"])
    out["table"] = [
        ["fingerprint ours (parse + featurise)", f"{out['ours_per_s']:.0f}/s"],
        ["fingerprint matminer (parse + featurise)", f"{out['matminer_per_s']:.0f}/s"],
        ["fingerprint speed-up", f"{out['speedup']:.0f}x"],
        [
            "fingerprint max deviation",
            f"{out['max_abs_diff']:.2e} abs, {out['max_scaled_diff']:.2e} scaled, "
            f"{out['nan_mismatch']} NaN mismatches",
        ],
    ]
    return out


@register_measurement("ssl_epoch")
def measure_ssl_epoch(ctx: SpeedContext) -> dict:
    """One SSL (Barlow Twins) pretraining epoch on the leak-free corpus, in a fresh process
    (``pretroost pretrain --objective ssl --epochs 1``): epoch wall time and the process's peak RSS.

    Needs the corpus built (``pretroost corpus build``); ``--quick`` uses 3,000 compositions.
    """
    import json
    import resource
    import subprocess
    import tempfile

    corpus = cache_dir() / "corpus" / "oqmd-leakfree.npz"
    if not corpus.is_file():
        return {"skipped": f"no corpus at {corpus}: run `pretroost corpus build`", "table": []}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-c", "import sys; from pretroost.cli import main; sys.exit(main())",
            "-q", "pretrain", "--objective", "ssl", "--epochs", "1", "--corpus", str(corpus),
            "--threads", str(ctx.threads), "--out", str(Path(tmp) / "ssl"),
        ]  # fmt: skip
        if ctx.quick:
            cmd += ["--max-compositions", "3000"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        config = json.loads((Path(tmp) / "ssl" / "config.json").read_text())
    epoch = config["history"][0]
    n = int(config["corpus"].get("size", 0)) or None
    out = {
        "compositions": n,
        "epoch_seconds": epoch["epoch_seconds"],
        "process_seconds": wall,
        "peak_rss_gb": peak_kb / 2**20,
        "peak_rss_exact": peak_kb > before,  # else an earlier child had the larger peak
        "train_loss": epoch["train_loss"],
    }
    out["table"] = [
        ["SSL epoch, leak-free corpus", f"{epoch['epoch_seconds']:.0f} s ({n} compositions, "
         f"process {wall:.0f} s incl. start-up and corpus load)"],
        ["SSL pretraining peak RSS", f"{peak_kb / 2**20:.2f} GB"],
    ]  # fmt: skip
    return out


@register_measurement("teachers")
def measure_teachers(ctx: SpeedContext) -> dict:
    """Structure-teacher throughput (structures/s, uncached) on perov_5 structures from the shared
    data folder: the Crystal Twins CGCNN and CHGNet (skipped where weights or package are missing)."""

    rel = Path("structures/cdvae/perov_5/val.csv")
    root = shared_data_dir()
    if root is None or not (root / rel).is_file():
        return {"skipped": "no structure set (set PRETROOST_SHARED_DATA)", "table": []}
    n = 64 if ctx.quick else 500
    structures = [s for _, s in read_structures(root / rel, progress=False)[:n]]
    out: dict[str, Any] = {"structures": len(structures), "source": str(rel)}
    table = []
    for name in ("crystal-twins", "chgnet"):
        try:
            teacher = get_teacher(name)
        except (WeightsNotFoundError, ImportError) as exc:
            out[name] = {"skipped": str(exc)}
            continue
        teacher.embed(structures[:8], progress=False)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        teacher.embed(structures, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = {"per_s": len(structures) / wall, "per_cpu_s": len(structures) / cpu}
        table.append([f"teacher {name}", f"{len(structures) / wall:.0f} structures/s"])
    out["table"] = table
    return out


@register_measurement("ready")
def measure_ready(ctx: SpeedContext) -> dict:
    """Each shipped ready property model (:mod:`pretroost.ready`): seconds to load it by name and
    predict 1,000 OQMD formulas (domain check included) in a fresh state, on one thread
    (torch and the OpenMP pools of scikit-learn limited to 1); the budget is 10 s."""
    from threadpoolctl import threadpool_limits

    formulas = ctx.formulas[:1000]
    out: dict[str, Any] = {"n_formulas": len(formulas), "budget_s": 10.0}
    table = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            for name in shipped("ready"):
                t0 = time.perf_counter()
                model = load(name)
                t1 = time.perf_counter()
                model.predict(formulas)
                t2 = time.perf_counter()
                out[name] = {"load_s": t1 - t0, "predict_s": t2 - t1, "total_s": t2 - t0}
                table.append([f"ready {name}: load + predict {len(formulas)}",
                              f"{t2 - t0:.2f} s (load {t1 - t0:.2f} s)"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    out["table"] = table
    return out


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def _load_data(ctx: SpeedContext, n: int) -> None:
    import pandas as pd

    root = cache_dir()
    path = root / "oqmd" / "OQMD_Bandgap_train.csv"
    df = pd.read_csv(path)
    df = df[df["formula"].notna()]
    rows = np.random.default_rng(ctx.seed).choice(len(df), size=min(n, len(df)), replace=False)
    sample = df.iloc[np.sort(rows)]
    ctx.formulas = sample["formula"].astype(str).tolist()
    ctx.targets = sample["target"].to_numpy(dtype=np.float64)
    steels = root / "matbench" / "matbench_steels.csv"
    if steels.is_file():
        ctx.steels = pd.read_csv(steels)["formula"].astype(str).tolist()[: ctx.steels_n]


def main(args: argparse.Namespace) -> int:
    """Run the selected measurements (``pretroost speed``'s options), print a table, write the
    JSON atomically; returns 0."""
    quick = bool(args.quick)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.no_tune_malloc:  # also for train(), which tunes it itself, here and in subprocesses
        os.environ[TUNE_MALLOC_ENV] = "0"
    malloc_tuned = tune_malloc()
    ctx = SpeedContext(
        n=args.n if args.n is not None else (1500 if quick else 20_000),
        quick=quick,
        threads=torch.get_num_threads(),
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        batch_sizes=tuple(int(b) for b in args.batch_sizes.split(","))
        if args.batch_sizes
        else ((128, 512) if quick else (128, 256, 512, 1024)),
        fingerprint_n=200 if quick else 1000,
        steels_n=64 if quick else None,
        seed=args.seed,
        fused_adamw=not args.foreach_adamw,
        baseline=args.baseline,
    )
    ctx.bf16_native, ctx.bf16_reason = native_bf16("cpu")
    if not ctx.bf16_native:
        log.info("speed: skipping the bf16 measurements: %s", ctx.bf16_reason)
    selected = list(MEASUREMENTS) if args.only is None else args.only.split(",")
    unknown = [s for s in selected if s not in MEASUREMENTS]
    if unknown:
        raise SystemExit(f"unknown measurement(s) {unknown}; known: {list(MEASUREMENTS)}")
    _load_data(ctx, ctx.n)
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    for name in selected:
        log.info("speed: measuring %s", name)
        t0 = time.perf_counter()
        ctx.results[name] = MEASUREMENTS[name](ctx)
        ctx.results[name]["seconds"] = time.perf_counter() - t0
    load_end = os.getloadavg()
    report = {
        "machine": machine_description(),
        "git_sha": git_sha(),
        "threads": ctx.threads,
        "cpu_count": os.cpu_count(),
        "load_average_start": list(load_start),
        "load_average_end": list(load_end),
        "malloc_tuned": malloc_tuned,
        "fused_adamw": ctx.fused_adamw,
        "quick": quick,
        "n_compositions": len(ctx.formulas),
        "rounds": ctx.rounds,
        "kernels": ctx._cache.get("kernels"),
        "bf16": {"native": ctx.bf16_native, "reason": ctx.bf16_reason},
        "seconds": time.perf_counter() - t_start,
        "measurements": ctx.results,
    }
    if args.merge and args.out.is_file():
        import json

        old = json.loads(args.out.read_text())
        run = {k: report[k] for k in ("git_sha", "threads", "load_average_start", "seconds")}
        for name in selected:  # each merged measurement records the run that made it
            ctx.results[name]["run"] = run
        report = {**old, "measurements": {**old.get("measurements", {}), **ctx.results}}
    atomic_write_json(args.out, _jsonable(report))
    _print_table(report)
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _print_table(report: dict) -> None:
    lines = [
        f"machine: {report['machine']}",
        f"git {report['git_sha']} | threads {report['threads']} | load avg "
        f"{report['load_average_start'][0]:.2f} -> {report['load_average_end'][0]:.2f} | "
        f"malloc tuned {report['malloc_tuned']} | AdamW {'fused' if report['fused_adamw'] else 'foreach'}"
        f" | {report['n_compositions']} OQMD compositions, {report['rounds']} rounds",
    ]
    rows = [r for m in report["measurements"].values() for r in m.get("table", [])]
    width = max((len(str(r[0])) for r in rows), default=10)
    lines += [f"{r[0]!s:<{width}}  {r[1]}" for r in rows]
    sys.stdout.write("\n".join(lines) + "\n")
