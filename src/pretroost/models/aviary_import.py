"""Import the weights of an aviary-models ``Roost`` (aviary-models >= 1.1) into a
:class:`~pretroost.models.roost.RoostModel`: used by the reference test
(``tests/test_roost_reference.py``) and to reuse checkpoints trained with aviary.

aviary keeps one ``SimpleNetwork`` per attention head (``...pooling.{h}.gate_nn.fcs.{k}``,
``...fc_out``) and a scalar power per head; we stack the heads of each MLP into one tensor
(:class:`~pretroost.models.roost.MultiHeadMLP`) and the powers into one vector.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pretroost.models.roost import MultiHeadMLP, RoostModel, WeightedSoftAttention

__all__ = ["from_aviary_state_dict"]


def _stack_heads(
    sd: dict[str, Tensor], prefix: str, n_heads: int, net: str, mlp: MultiHeadMLP
) -> dict[str, Tensor]:
    """Stack the per-head ``SimpleNetwork`` tensors of an aviary checkpoint into our layout."""
    out = {}
    n_layers = len(mlp.weights)
    for k in range(n_layers):
        name = f"fcs.{k}" if k < n_layers - 1 else "fc_out"
        for kind, dest in (("weight", "weights"), ("bias", "biases")):
            out[f"{dest}.{k}"] = torch.stack(
                [sd[f"{prefix}.{h}.{net}.{name}.{kind}"] for h in range(n_heads)]
            )
    return out


def _attention(
    sd: dict[str, Tensor], prefix: str, ours: str, layer: WeightedSoftAttention
) -> dict[str, Tensor]:
    """Our state-dict entries ``{ours}.{gate,msg,power}...`` of one aviary attention block."""
    heads = layer.power.shape[0]
    out = {}
    for net, mlp, ours_net in (("gate_nn", layer.gate, "gate"), ("message_nn", layer.msg, "msg")):
        for k, v in _stack_heads(sd, prefix, heads, net, mlp).items():
            out[f"{ours}.{ours_net}.{k}"] = v
    out[f"{ours}.power"] = torch.cat([sd[f"{prefix}.{h}.pow"] for h in range(heads)])
    return out


def from_aviary_state_dict(model: RoostModel, sd: dict[str, Tensor]) -> None:
    """Load the weights of an ``aviary`` ``Roost`` (aviary-models >= 1.1, one regression target)
    into ``model``, which must have the same hyperparameters (``load_state_dict(strict=True)``)."""
    enc = model.encoder
    ours: dict[str, Tensor] = {"encoder.element_table": enc.element_table.clone()}
    ref_table = sd["elem_embedding.weight"]
    ours["encoder.element_table"][: ref_table.shape[0]] = ref_table
    for kind in ("weight", "bias"):
        ours[f"encoder.embedding.{kind}"] = sd[f"material_nn.embedding.{kind}"]
    for i, layer in enumerate(enc.graphs):
        pre = f"material_nn.graphs.{i}.pooling"
        ours.update(_attention(sd, pre, f"encoder.graphs.{i}", layer))  # type: ignore[arg-type]
    ours.update(_attention(sd, "material_nn.cry_pool", "encoder.pool", enc.pool))
    for key, value in sd.items():
        if key.startswith("trunk_nn."):
            ours["trunk." + key.removeprefix("trunk_nn.")] = value
        elif key.startswith("output_nns.0."):
            ours["head." + key.removeprefix("output_nns.0.")] = value
    model.load_state_dict(ours, strict=True)
