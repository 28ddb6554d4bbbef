"""Dynamic int8 quantization of Linear layers (:class:`Int8Dynamic`): weights int8 per output
channel, activations quantized per tensor on the fly from their own range. No calibration.
In ONNX it is one ``DynamicQuantizeMatMul`` per layer.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant.api import quantize
    >>> from torchslim.quant.configs import Int8Dynamic
    >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    >>> q = quantize(net, Int8Dynamic())
    >>> x = torch.randn(5, 8)
    >>> (q(x) - net(x)).abs().max().item() < 0.1
    True
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from torchslim.core.config import register_handler
from torchslim.quant.calibrate import cpu_has_vnni, wrap_layers
from torchslim.quant.configs import Int8Dynamic
from torchslim.quant.fake_quant import quant_modules
from torchslim.quant.gate import apply_gate, per_tensor_variant
from torchslim.quant.report import QuantReport, attach_report
from torchslim.quant.smooth import smooth_layers


@register_handler(Int8Dynamic)
def quantize_dynamic(model: nn.Module, config: Int8Dynamic, *, calibration: Any = None, gate: str | None = None,
                     example_inputs: Any = None, threads: int = 1, gate_groups: bool = True, **_: Any) -> nn.Module:
    """Handler of :class:`Int8Dynamic` (called by ``quantize``); ``calibration`` is used by
    ``smooth`` and by the latency gate's accuracy guard; ``gate="latency"`` as for
    :class:`Int8Static`: float against dynamic int8 and, given calibration data, its per-tensor
    variant when that is as accurate on it."""
    float_model = copy.deepcopy(model).eval() if gate is not None else model
    reduce_range = (not cpu_has_vnni()) if config.reduce_range is None else config.reduce_range
    names = wrap_layers(model.eval(), config.target, (nn.Linear,), mode="dynamic", reduce_range=reduce_range)
    if not config.per_channel:
        for _, m in quant_modules(model):
            m.w_scale.fill_(float(m.w_scale.max()))
    notes = [f"weights int{7 if reduce_range else 8} (reduce_range={reduce_range}, per_channel={config.per_channel})"]
    if config.smooth is not None:
        notes.append(smooth_layers(model, calibration, config.calibration_samples, config.smooth, config.smooth_target))
    attach_report(model, QuantReport(config=config.type_key, layers=names, notes=notes))
    if gate is None:
        return model
    variants = {}
    if calibration is not None:  # the accuracy guard needs data: without it only float and int8 are timed
        per_tensor = per_tensor_variant(model, mode="dynamic")
        variants = {"int8 per-tensor": per_tensor} if per_tensor is not None else {}
    return apply_gate(model, float_model, gate, example_inputs, threads, groups=gate_groups, variants=variants,
                      guard_data=calibration, guard_samples=config.calibration_samples)
