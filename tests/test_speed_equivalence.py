"""The fused-kernel Roost path equals the dense reference path (outputs and gradients), on random
batches with 1 to 14 elements per composition, with padding, input masks and several threads;
and the speed benchmark runs end to end on a tiny sample."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from pretroost.data.batching import CompositionDataset
from pretroost.data.composition import parse_formulas
from pretroost.data.elements import element_table
from pretroost.finetune import SupervisedTask
from pretroost.models.roost import (
    ModelConfig,
    RoostConfig,
    RoostEncoder,
    RoostModel,
    roost_kernels,
    set_impl,
)

pytestmark = pytest.mark.skipif(
    roost_kernels() is None, reason="fused Roost kernels unavailable (no C++ compiler?)"
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


def _assert_grads_close(g_ref: dict, g_fast: dict) -> None:
    assert g_ref.keys() == g_fast.keys()
    for name, a in g_ref.items():
        b = g_fast[name]
        if name.endswith("gate.biases.1") and ".graphs." in name:
            # a shift of all logits of a softmax: exact gradient 0 (reference: float noise)
            assert torch.all(b == 0)
            assert a.abs().max() < 1e-6
            continue
        # fp32 sums in a different order: both paths are about equally far from float64
        # (see test_fast_as_accurate_as_reference_vs_float64)
        scale = a.abs().max().clamp_min(1e-3)
        err = (a - b).abs().max() / scale
        assert err < 1e-4, f"{name}: relative gradient error {err:.2e}"


def _assert_fast_equals_reference(
    ref: RoostModel, fast: RoostModel, batch, input_mask=None, *, threads: int | None = None
) -> None:
    """Outputs within 1e-5 and gradients as close as fp32 summation order allows; the fast side
    optionally run with ``threads`` torch threads."""
    out_ref, g_ref = _run(ref, batch, input_mask)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        out_fast, g_fast = _run(fast, batch, input_mask)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out_fast, out_ref, atol=1e-5, rtol=1e-5)
    _assert_grads_close(g_ref, g_fast)


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


def test_fast_as_accurate_as_reference_vs_float64() -> None:
    """Against the reference path run in float64, the fast path's fp32 error is no larger than
    the fp32 reference path's own (up to a small factor): differences are rounding, not bugs."""
    rng = np.random.default_rng(1)
    formulas = [*_random_formulas(30, rng), "Fe", STEEL]
    ds = CompositionDataset(parse_formulas(formulas))
    batch = ds.batch(np.arange(len(formulas)))
    ref, fast = _pair(seed=1)
    exact = copy.deepcopy(ref).double()
    batch64 = copy.copy(batch)
    batch64.weights = batch.weights.double()
    out64, g64 = _run(exact, batch64)
    (out_ref, g_ref), (out_fast, g_fast) = _run(ref, batch), _run(fast, batch)
    err = lambda a, b: float((a.double() - b).abs().max() / b.abs().max())  # noqa: E731
    assert err(out_fast, out64) <= 2 * err(out_ref, out64) + 1e-7
    for name, g in g64.items():
        if name.endswith("gate.biases.1"):
            continue  # exact gradient 0: relative errors are meaningless
        assert err(g_fast[name], g) <= 2 * err(g_ref[name], g) + 1e-5, name


def test_fast_equals_reference_single_element_and_bucketed() -> None:
    ref, fast = _pair(seed=3)
    for formulas in (["Fe", "Cu", "O2"], [STEEL, STEEL.replace("Fe0.620", "Fe0.5")]):
        ds = CompositionDataset(parse_formulas(formulas))
        batch = ds.batch(np.arange(len(formulas)))
        _assert_fast_equals_reference(ref, fast, batch)


def test_fast_equals_reference_with_input_mask() -> None:
    rng = np.random.default_rng(7)
    formulas = _random_formulas(20, rng, sizes=(2, 8))
    ds = CompositionDataset(parse_formulas(formulas))
    batch = ds.batch(np.arange(len(formulas)))
    input_mask = torch.from_numpy(rng.random(batch.mask.shape) < 0.3) & batch.mask
    ref, fast = _pair(seed=4)
    _assert_fast_equals_reference(ref, fast, batch, input_mask)


def test_fast_equals_reference_two_threads() -> None:
    """Per-thread gradient accumulators in the backward kernel."""
    rng = np.random.default_rng(11)
    formulas = _random_formulas(64, rng, sizes=(2, 6))
    ds = CompositionDataset(parse_formulas(formulas))
    batch = ds.batch(np.arange(len(formulas)))
    ref, fast = _pair(seed=5)
    _assert_fast_equals_reference(ref, fast, batch, threads=2)


def test_inference_mode_and_training_step_match() -> None:
    formulas = ["Fe2O3", "NaCl", "LiFePO4", "Cu2ZnSnS4", STEEL, "H2O"]
    ds = CompositionDataset(parse_formulas(formulas), {"y": np.arange(6.0).reshape(-1, 1)})
    batch = ds.batch(np.arange(len(formulas)))
    ref, fast = _pair(seed=6)
    with torch.inference_mode():
        torch.testing.assert_close(fast(batch), ref(batch), atol=1e-5, rtol=1e-5)
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


def test_speed_main_quick(tmp_path) -> None:
    from pretroost.speed import main

    out = tmp_path / "speed.json"
    argv = ["--quick", "--n", "120", "--threads", "1", "--batch-sizes", "64"]
    argv += [
        "--no-tune-malloc",
        "--out",
        str(out),
        "--only",
        "machine,train,steels,flops,fingerprint",
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["threads"] == 1 and report["n_compositions"] == 120
    m = report["measurements"]
    assert {"machine", "train", "steels", "flops", "fingerprint"} <= set(m)
    assert m["train"]["train_batch_128"]["ours"]["per_s"] > 0
    assert m["fingerprint"]["max_scaled_diff"] < 1e-6
    assert "machine" in report and "git_sha" in report


def test_speed_ssl_epoch_and_teachers_quick(tmp_path, data_cache) -> None:
    """The SSL-epoch measurement (a pretraining subprocess) and teacher throughput run and report."""
    from pretroost.speed import main

    if not (data_cache / "corpus" / "oqmd-leakfree.npz").is_file():
        pytest.skip("no leak-free corpus: run `pretroost corpus build`")
    out = tmp_path / "speed.json"
    argv = ["--quick", "--n", "50", "--threads", "1", "--only", "ssl_epoch,teachers"]
    assert main([*argv, "--no-tune-malloc", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["measurements"]
    assert m["ssl_epoch"]["compositions"] == 3000 and m["ssl_epoch"]["epoch_seconds"] > 0
    assert 0 < m["ssl_epoch"]["peak_rss_gb"] < 24
    if "skipped" not in m["teachers"]:
        assert m["teachers"]["crystal-twins"].get("per_s", 1) > 0


def test_speed_merge_keeps_other_measurements(tmp_path) -> None:
    from pretroost.speed import main

    out = tmp_path / "speed.json"
    base = ["--quick", "--n", "50", "--threads", "1", "--no-tune-malloc", "--out", str(out)]
    assert main([*base, "--only", "machine"]) == 0
    assert main([*base, "--only", "flops", "--merge"]) == 0
    m = json.loads(out.read_text())["measurements"]
    assert {"machine", "flops"} <= set(m) and "run" in m["flops"] and "run" not in m["machine"]


def test_speed_through_the_cli(tmp_path) -> None:
    from pretroost.cli import main

    out = tmp_path / "speed.json"
    assert main(["speed", "--quick", "--threads", "1", "--only", "machine", "--out", str(out)]) == 0
    assert "machine" in json.loads(out.read_text())["measurements"]
