"""Accuracy helpers for hard layers: SmoothQuant scale migration and bias correction.

- :func:`smooth_layers` (SmoothQuant, Xiao et al. 2023): a Linear whose input has a few huge
  channels (transformers) quantizes badly with one activation scale per tensor. Per input
  channel ``j`` the activation is divided by ``s_j = max|X_j|^a / max|W_:,j|^(1-a)`` and the
  weight column multiplied by it, which leaves the float product unchanged and moves the
  difficulty from activations to weights. Layers reading the same tensor (q, k, v) share one
  ``s``. In ONNX the division is one ``Mul`` per shared input, before the quantizer.
- :func:`correct_bias` (Nagel et al. 2019, empirical form): rounding the weights shifts each
  output channel's mean by ``E[(W - W_q) x]``; measured on calibration data and added back into
  the bias. It helps most where weights are coarse (per-tensor scales, depthwise convs, few bits).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant.api import quantize
    >>> from torchslim.quant.configs import Int8Dynamic
    >>> net = nn.Sequential(nn.Linear(8, 4)).eval()
    >>> x = torch.randn(64, 8); x[:, 0] *= 50   # one outlier channel
    >>> q = quantize(net, Int8Dynamic(smooth=0.5), calibration=[x])
    >>> bool(q[0].smooth_inv[0] < q[0].smooth_inv[1:].min())
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from torchslim.core.targets import Target, select
from torchslim.quant.calibrate import calibration_batches
from torchslim.quant.fake_quant import QuantModule, quant_modules, weight_scale


def _collect(model: nn.Module, layers: dict[str, QuantModule], calibration: Iterable[Any], samples: int
             ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Per-input-channel max |x| of each layer, and for each layer the first layer that read the
    very same input tensor (siblings share a smoothing scale)."""
    amax: dict[str, torch.Tensor] = {}
    first_reader: dict[str, str] = {}
    seen: dict[int, tuple[torch.Tensor, str]] = {}

    def hook(name: str) -> Any:
        def pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]  # the very object: siblings receive the same one
            a = x.detach().abs().reshape(-1, x.shape[-1]).amax(0)  # (C_in,)
            amax[name] = torch.maximum(amax[name], a) if name in amax else a
            owner = seen.get(id(x))
            if owner is not None and owner[0] is x:
                first_reader.setdefault(name, owner[1])
            else:
                seen[id(x)] = (x, name)
        return pre

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        with torch.no_grad():
            for inputs in calibration_batches(calibration, samples):
                seen.clear()
                model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return amax, first_reader


@torch.no_grad()
def smooth_layers(model: nn.Module, calibration: Iterable[Any], samples: int, alpha: float,
                  target: Target | None = None) -> str:
    """Apply SmoothQuant to the (targeted) Linear :class:`QuantModule` layers of ``model`` in
    place, before calibration; returns a note of what was smoothed."""
    chosen = {n for n, _ in select(model, target, kinds=(QuantModule,))} if target is not None else None
    layers = {n: m for n, m in quant_modules(model) if m.kind == "Linear" and (chosen is None or n in chosen)}
    if not layers:
        return "smoothquant: no Linear layer to smooth"
    amax, first = _collect(model, layers, calibration, samples)
    groups: dict[str, list[str]] = {}
    for name in layers:
        if name in amax:
            groups.setdefault(first.get(name, name), []).append(name)
    for key, names in groups.items():
        w_max = torch.stack([layers[n].module.weight.abs().amax(0) for n in names]).amax(0)  # (C_in,)
        s = amax[key].clamp_min(1e-5).pow(alpha) / w_max.clamp_min(1e-5).pow(1 - alpha)
        s = torch.where(torch.isfinite(s) & (s > 0), s, torch.ones_like(s)).clamp(1e-2, 1e2)  # (C_in,)
        for n in names:
            m = layers[n]
            m.module.weight.mul_(s)  # (C_out, C_in) * (C_in,)
            m.w_scale.copy_(weight_scale(m.module.weight, m.w_qmax))
            m.smooth_inv = (1.0 / s).to(m.module.weight.dtype)
            m.smooth_key = key
    return f"smoothquant alpha={alpha}: {sum(map(len, groups.values()))} Linear layer(s) in {len(groups)} group(s)"


def _channel_mean(y: torch.Tensor, linear: bool) -> tuple[torch.Tensor, int]:
    if linear:  # (..., C_out)
        flat = y.reshape(-1, y.shape[-1])
        return flat.sum(0).double(), flat.shape[0]
    flat = y.transpose(0, 1).reshape(y.shape[1], -1)  # (C_out, B * spatial)
    return flat.sum(1).double(), flat.shape[1]


def _mean_output(model: nn.Module, layer: nn.Module, batches: list[tuple[torch.Tensor, ...]], linear: bool,
                 quantized: QuantModule | None = None) -> torch.Tensor:
    """Per-channel mean of ``layer``'s output (before any activation) over ``batches``; for a
    :class:`QuantModule` the integer layer's pre-activation output is recomputed from its input."""
    acc: list[Any] = [0, 0]

    def record(y: torch.Tensor) -> None:
        s, c = _channel_mean(y.detach(), linear)
        acc[0], acc[1] = acc[0] + s, acc[1] + c

    if quantized is not None:
        m = quantized
        handle = m.register_forward_pre_hook(lambda _m, args: record(m._op(m.quant_input(args[0]), m.quant_weight(), m.module.bias)))
    else:
        handle = layer.register_forward_hook(lambda _m, _args, out: record(out))
    try:
        for inputs in batches:
            model(*inputs)
    finally:
        handle.remove()
    return acc[0] / max(acc[1], 1)


@torch.no_grad()
def correct_bias(model: nn.Module, float_model: nn.Module, calibration: Iterable[Any], samples: int) -> str:
    """Empirical bias correction of a calibrated model, in place, one layer at a time in order:
    the mean per output channel of the float layer's output (in ``float_model``, BatchNorm folded
    alike, same layer names) minus the quantized layer's is added to its bias, so each layer
    also absorbs the shift that reaches it from the layers before."""
    batches = list(calibration_batches(calibration, samples))
    float_layers = dict(float_model.named_modules())
    float_model.eval()
    done = 0
    for name, m in quant_modules(model):
        ref_layer = float_layers.get(name)
        if ref_layer is None or isinstance(ref_layer, QuantModule):
            continue
        linear = m.kind == "Linear"
        delta = _mean_output(float_model, ref_layer, batches, linear) - _mean_output(model, m, batches, linear, m)
        delta = delta.to(m.module.weight.dtype)  # (C_out,)
        if m.module.bias is None:
            m.module.bias = nn.Parameter(delta)
        else:
            m.module.bias.add_(delta)
        done += 1
    return f"bias correction on {done} layer(s)"
