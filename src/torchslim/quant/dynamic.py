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

from typing import Any

from torch import nn

from torchslim.core.config import register_handler
from torchslim.quant.calibrate import cpu_has_vnni, wrap_layers
from torchslim.quant.configs import Int8Dynamic
from torchslim.quant.report import QuantReport, attach_report


@register_handler(Int8Dynamic)
def quantize_dynamic(model: nn.Module, config: Int8Dynamic, *, calibration: Any = None, **_: Any) -> nn.Module:
    """Handler of :class:`Int8Dynamic` (called by ``quantize``); ``calibration`` is not used."""
    reduce_range = (not cpu_has_vnni()) if config.reduce_range is None else config.reduce_range
    names = wrap_layers(model.eval(), config.target, (nn.Linear,), mode="dynamic", reduce_range=reduce_range)
    attach_report(model, QuantReport(config=config.type_key, layers=names,
                                     notes=[f"weights int{7 if reduce_range else 8} (reduce_range={reduce_range})"]))
    return model
