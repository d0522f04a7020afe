"""The fused-kernel Roost path equals the dense reference path (outputs and gradients), on random
batches with 1 to 14 elements per composition, with padding, input masks and several threads;
and the speed benchmark runs end to end on a tiny sample.

Tolerances follow from the arithmetic, not from one machine: both float32 paths are compared with
the reference path run in float64, and the fast path's error may be a small multiple of the float32
reference path's own error (plus a floor of float32 rounding over the longest sums). Kernels built
with ``-march=native`` sum in a CPU-dependent order, so fast - reference differences vary by CPU;
their distance from the exact result does not.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.elements import element_table
from pretroost.finetune import SupervisedTask
from pretroost.models import kernels, roost
from pretroost.models.kernels import roost_kernels
from pretroost.models.roost import ModelConfig, RoostConfig, RoostEncoder, RoostModel, set_impl

needs_kernels = pytest.mark.skipif(
    roost_kernels() is None, reason="fused Roost kernels unavailable (no compiler, or disabled)"
)

STEEL = (
    "Fe0.620C0.000953Mn0.000521Si0.00102Cr0.000110Ni0.192Mo0.0176V0.000112Nb0.0000616"
    "Co0.146Al0.00318Ti0.0185"
)


def _random_formulas(n: int, rng: np.random.Generator, sizes=(1, 14)) -> list[str]:
    from pymatgen.core import Element

    _, known = element_table("matscholar200")
    symbols = [Element.from_Z(z).symbol for z in np.flatnonzero(known) if z <= 94]
    out = []
    for k in rng.integers(sizes[0], sizes[1] + 1, size=n):
        els = rng.choice(symbols, size=k, replace=False)
        amounts = rng.uniform(0.01, 4.0, size=k).round(3) + 0.001
        out.append("".join(f"{e}{a}" for e, a in zip(els, amounts, strict=True)))
    return out


def _pair(config: ModelConfig | None = None, seed: int = 0) -> tuple[RoostModel, RoostModel]:
    torch.manual_seed(seed)
    ref = RoostModel(config or ModelConfig(robust=True), impl="reference")
    fast = set_impl(copy.deepcopy(ref), "fast")
    return ref, fast


def _run(model: RoostModel, batch, input_mask=None) -> tuple[torch.Tensor, dict]:
    """Outputs and parameter gradients of a loss touching the material vector, the property
    outputs and the node features (as pretraining objectives do)."""
    model.zero_grad(set_to_none=True)
    enc = model.encoder
    x, w, mask = enc.node_features(batch, input_mask)
    vec = enc.pool(x, w, mask, fast=enc.impl == "fast")
    out = model.head(torch.relu(model.trunk(vec)))
    node_term = (x * mask.unsqueeze(-1)).sin().sum()
    (out.square().sum() + vec.cos().sum() + node_term).backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}
    return torch.cat([out.detach(), vec.detach()], dim=1), grads


EPS32 = torch.finfo(torch.float32).eps
#: how much further from float64 the fast path may be than the float32 reference path: both sum
#: the same terms in different orders, so their errors are alike in size, not in sign
RATIO = 4.0


def _sum_length(model: RoostModel, batch) -> int:
    """Terms in the longest sum of a forward + backward: parameter gradients of a message layer
    sum over all (i, j) pairs of the batch; the widest layer sums over its inputs."""
    n = batch.mask.sum(dim=1).double()
    widths = [p.shape[-1] for p in model.parameters()]
    return max(int((n * n).sum()), *widths)


def _float64_run(model: RoostModel, batch, input_mask=None) -> tuple[torch.Tensor, dict]:
    """Outputs and gradients of the reference path on a float64 copy of model and batch."""
    exact = set_impl(copy.deepcopy(model).double(), "reference")
    batch64 = copy.copy(batch)
    batch64.weights = batch.weights.double()
    return _run(exact, batch64, input_mask)  # type: ignore[arg-type]


def _assert_near_float64(name: str, ours, ref, exact, n_terms: int) -> None:
    """Both float32 paths, ``ours`` (fast) and ``ref``, within RATIO x the reference path's error
    of ``exact`` (float64) plus a floor eps·sqrt(n)·max|exact| (the typical rounding of an n-term
    sum of values the size of the result)."""
    scale = float(exact.abs().max())
    err_ref = float((ref.double() - exact).abs().max())
    err = float((ours.double() - exact).abs().max())
    # a check of the yardstick, not a tolerance: a wrong float64 copy is off by O(1)
    assert err_ref <= 0.01 * scale, f"{name}: float64 run disagrees ({err_ref:.2e} of {scale:.2e})"
    bound = RATIO * err_ref + EPS32 * math.sqrt(n_terms) * scale
    for path, e in (("reference", err_ref), ("fast", err)):
        assert e <= bound, (
            f"{name}: {path} error {e:.2e} vs float64 exceeds {RATIO} x reference error "
            f"{err_ref:.2e} + floor (max |value| {scale:.2e})"
        )


def _assert_zero_gradient(name: str, grad, weights_grad64, n_terms: int, fast: bool) -> None:
    """``gate.biases.1``: a shift of all logits of a softmax, exact gradient 0. The fused kernels
    return exactly 0; torch ops return rounding noise of the n-term sum of the logit gradients,
    whose size is bounded via the gate output weights' gradient (those terms times O(1)
    activations)."""
    if fast:
        assert torch.all(grad == 0), name
    else:
        noise = EPS32 * n_terms * float(weights_grad64.abs().max())
        assert float(grad.abs().max()) <= noise, name


def _assert_fast_equals_reference(
    ref: RoostModel, fast: RoostModel, batch, input_mask=None, *, threads: int | None = None
) -> None:
    """Outputs and gradients of the fast path as close to float64 as the float32 reference
    path's (see the module docstring); the fast side optionally run with ``threads`` threads."""
    out64, g64 = _float64_run(ref, batch, input_mask)
    out_ref, g_ref = _run(ref, batch, input_mask)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        out_fast, g_fast = _run(fast, batch, input_mask)
    finally:
        torch.set_num_threads(before)
    n = _sum_length(ref, batch)
    _assert_near_float64("outputs", out_fast, out_ref, out64, n)
    assert g_ref.keys() == g_fast.keys() == g64.keys()
    for name, g in g64.items():
        if name.endswith("gate.biases.1"):
            w64, graphs = g64[name.replace("biases", "weights")], ".graphs." in name
            _assert_zero_gradient(name, g_ref[name], w64, n, fast=False)
            _assert_zero_gradient(name, g_fast[name], w64, n, fast=graphs)
            continue
        _assert_near_float64(name, g_fast[name], g_ref[name], g, n)


@needs_kernels
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_equals_reference_random_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    formulas = [*_random_formulas(30, rng), "Fe", "O2", STEEL]
    ds = CompositionDataset(parse_formulas(formulas))
    assert int(ds.n_elements.min()) == 1 and int(ds.n_elements.max()) >= 13
    batch = ds.batch(np.arange(len(formulas)))  # unsorted: N=1 rows padded to N=14
    ref, fast = _pair(seed=seed)
    assert fast.encoder.uses_fast_path() and not ref.encoder.uses_fast_path()
    _assert_fast_equals_reference(ref, fast, batch)


@needs_kernels
def test_fast_equals_reference_single_element_and_bucketed() -> None:
    ref, fast = _pair(seed=3)
    for formulas in (["Fe", "Cu", "O2"], [STEEL, STEEL.replace("Fe0.620", "Fe0.5")]):
        ds = CompositionDataset(parse_formulas(formulas))
        batch = ds.batch(np.arange(len(formulas)))
        _assert_fast_equals_reference(ref, fast, batch)


@needs_kernels
def test_fast_equals_reference_with_input_mask() -> None:
    rng = np.random.default_rng(7)
    formulas = _random_formulas(20, rng, sizes=(2, 8))
    ds = CompositionDataset(parse_formulas(formulas))
    batch = ds.batch(np.arange(len(formulas)))
    input_mask = torch.from_numpy(rng.random(batch.mask.shape) < 0.3) & batch.mask
    ref, fast = _pair(seed=4)
    _assert_fast_equals_reference(ref, fast, batch, input_mask)


@needs_kernels
def test_fast_equals_reference_two_threads() -> None:
    """Per-thread gradient accumulators in the backward kernel."""
    rng = np.random.default_rng(11)
    formulas = _random_formulas(64, rng, sizes=(2, 6))
    ds = CompositionDataset(parse_formulas(formulas))
    batch = ds.batch(np.arange(len(formulas)))
    ref, fast = _pair(seed=5)
    _assert_fast_equals_reference(ref, fast, batch, threads=2)


@needs_kernels
def test_inference_mode_and_training_step_match() -> None:
    formulas = ["Fe2O3", "NaCl", "LiFePO4", "Cu2ZnSnS4", STEEL, "H2O"]
    ds = CompositionDataset(parse_formulas(formulas), {"y": np.arange(6.0).reshape(-1, 1)})
    batch = ds.batch(np.arange(len(formulas)))
    ref, fast = _pair(seed=6)
    exact = set_impl(copy.deepcopy(ref).double(), "reference")
    batch64 = copy.copy(batch)
    batch64.weights = batch.weights.double()
    with torch.inference_mode():
        out64 = exact(batch64)
        _assert_near_float64("outputs", fast(batch), ref(batch), out64, _sum_length(ref, batch))
    # one AdamW step on each: the weights stay equal
    tasks = [SupervisedTask(m, "robust") for m in (ref, fast)]
    for task in tasks:
        opt = torch.optim.AdamW(task.parameters(), lr=1e-3)
        task(batch)["loss"].backward()
        opt.step()
    for (name, a), b in zip(ref.named_parameters(), fast.parameters(), strict=True):
        if name.endswith("gate.biases.1") and ".graphs." in name:
            continue  # its gradient is float noise in the reference, exactly 0 here
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


@needs_kernels
def test_bf16_autocast_close_to_fp32() -> None:
    rng = np.random.default_rng(2)
    formulas = _random_formulas(40, rng, sizes=(1, 10))
    ds = CompositionDataset(parse_formulas(formulas))
    batch = ds.batch(np.arange(len(formulas)))
    _, fast = _pair(seed=8)
    with torch.no_grad():
        full = fast.encoder(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = fast.encoder(batch)
    assert ((half.float() - full).abs().max() / full.abs().max()).item() < 0.05
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast.encoder(batch).float().square().sum().backward()
    grads = [p.grad for p in fast.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_impl_selection() -> None:
    deep = RoostConfig(elem_gate=(64, 32), elem_msg=(64,), cry_gate=(32,), cry_msg=(32,))
    enc = RoostEncoder(deep)  # two hidden layers in the gate: only the reference path applies
    assert not enc.uses_fast_path()
    enc.impl = "fast"
    with pytest.raises(RuntimeError, match="unavailable"):
        enc.uses_fast_path()
    with pytest.raises(ValueError, match="unknown impl"):
        RoostEncoder(impl="nope")  # type: ignore[arg-type]
    ds = CompositionDataset(parse_formulas(["Fe2O3", "NaCl"]))
    enc.impl = "auto"
    assert enc(ds.batch(np.arange(2))).shape == (2, deep.elem_fea_len)


def test_softmax_guard_agrees() -> None:
    """The fast pooling and the reference share the softmax denominator guard."""
    assert kernels.EPS == roost.EPS


_KEY_SNIPPET = "from pretroost.models.kernels import kernel_key, kernel_build_dir; " + (
    "print(kernel_key(), kernel_build_dir().name)"
)


def test_kernel_build_key_ignores_cwd_and_environment(tmp_path) -> None:
    """The build key (hence the build directory) depends on the C++ source, flags, torch version
    and CPU only: a process started elsewhere, with another PATH and unrelated variables, reuses
    the same build instead of recompiling."""
    here = f"{kernels.kernel_key()} {kernels.kernel_build_dir().name}"
    env = {k: v for k, v in os.environ.items() if k != "PRETROOST_KERNEL_MARCH"}
    env.update(
        PATH="/usr/bin:/bin",
        PYTHONPATH=os.pathsep.join(sys.path),
        SOME_UNRELATED_VARIABLE="1",
        PRETROOST_ROOST_KERNELS="0",
    )
    out = subprocess.run(
        [sys.executable, "-c", _KEY_SNIPPET],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if "PRETROOST_KERNEL_MARCH" not in os.environ:
        assert out.stdout.split() == here.split()
    assert kernels.kernel_key() == kernels.kernel_key()
    assert kernels.kernel_build_dir().name.endswith(kernels.kernel_key())


def test_kernel_build_key_follows_flags(monkeypatch) -> None:
    monkeypatch.delenv("PRETROOST_KERNEL_MARCH", raising=False)
    native = kernels.kernel_key()
    monkeypatch.setenv("PRETROOST_KERNEL_MARCH", "x86-64-v3")
    assert kernels.kernel_key() != native and "-march=x86-64-v3" in kernels.kernel_flags()
    monkeypatch.setenv("PRETROOST_KERNEL_MARCH", "native; rm -rf /")
    with pytest.raises(ValueError, match="PRETROOST_KERNEL_MARCH"):
        kernels.kernel_flags()


@needs_kernels
def test_kernel_build_is_announced(tmp_path, monkeypatch, caplog) -> None:
    """A build that runs says so at INFO; a finished build is reused silently, without ninja."""
    import logging

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    calls = []

    def fake_load(name, sources, build_directory, **kw):
        calls.append(name)
        so = Path(build_directory) / f"{name}.so"
        so.write_bytes(Path(roost_kernels().__file__).read_bytes())  # type: ignore[union-attr]
        return roost_kernels()

    monkeypatch.setattr("torch.utils.cpp_extension.load", fake_load)
    with caplog.at_level(logging.INFO, logger="pretroost.models.kernels"):
        kernels._load_or_build()
    assert len(calls) == 1 and "compiling the Roost CPU kernels" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pretroost.models.kernels"):
        module = kernels._load_or_build()
    assert len(calls) == 1 and "compiling" not in caplog.text
    assert hasattr(module, "pair_attention_forward")
