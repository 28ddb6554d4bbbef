"""Static int8 post-training quantization (:class:`Int8Static`).

Steps: fold BatchNorm -> wrap targeted Linear/Conv layers in :class:`QuantModule` -> plan
fusions on the fx graph (ReLU into the layer, shared scales across ReLU/max-pool/flatten) ->
observe activations on calibration data -> freeze scales. The result simulates the integer
arithmetic in torch; ``torchslim.export`` writes it as a QDQ ONNX graph with these scales.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant.api import quantize
    >>> from torchslim.quant.configs import Int8Static
    >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    >>> calib = [torch.randn(32, 8) for _ in range(4)]
    >>> q = quantize(net, Int8Static(calibration_samples=128), calibration=calib)
    >>> x = torch.randn(5, 8)
    >>> (q(x) - net(x)).abs().max().item() < 0.1
    True
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.fold import fold_batchnorm
from torchslim.quant.calibrate import (
    QUANTIZABLE,
    calibrate,
    cpu_has_vnni,
    plan_fusions,
    wrap_avg_pools,
    wrap_layers,
)
from torchslim.quant.configs import Int8Static
from torchslim.quant.fake_quant import quant_modules
from torchslim.quant.gate import apply_gate, static_variants
from torchslim.quant.report import QuantReport, attach_report
from torchslim.quant.smooth import correct_bias, smooth_layers


def prepare_static(model: nn.Module, config: Int8Static) -> tuple[nn.Module, list[str], str]:
    """Fold, wrap and plan (no data yet); returns (model, wrapped names, fusion note)."""
    model = fold_batchnorm(model, inplace=True)
    reduce_range = (not cpu_has_vnni()) if config.reduce_range is None else config.reduce_range
    names = wrap_layers(model, config.target, QUANTIZABLE, mode="static", reduce_range=reduce_range,
                        observer=config.observer)
    wrap_avg_pools(model, observer=config.observer)
    if not config.per_channel:
        for _, m in quant_modules(model):
            m.w_scale.fill_(float(m.w_scale.max()))
    return model, names, plan_fusions(model)


@register_handler(Int8Static)
def quantize_static(model: nn.Module, config: Int8Static, *, calibration: Any = None, gate: str | None = None,
                    example_inputs: Any = None, threads: int = 1, gate_groups: bool = True, **options: Any) -> nn.Module:
    """Handler of :class:`Int8Static` (called by ``quantize``). ``gate="latency"`` (needs
    ``example_inputs``) times float, static int8 and its variants that are as accurate on the
    calibration data (per-tensor weights, dynamic Linear layers) in ONNX Runtime at ``threads``
    threads, keeps the fastest, then (``gate_groups``) puts each layer group back in float where
    that is faster; see :mod:`torchslim.quant.gate`."""
    float_model = copy.deepcopy(model) if gate is not None or config.bias_correction else model
    model, names, note = prepare_static(model, config)
    notes = [note]
    if config.smooth is not None:
        notes.append(smooth_layers(model, calibration, config.calibration_samples, config.smooth, config.smooth_target))
    used = calibrate(model, calibration, config.calibration_samples)
    if config.bias_correction:
        reference = fold_batchnorm(float_model)  # same layer names as the quantized model
        notes.append(correct_bias(model, reference, calibration, config.calibration_samples))
    notes.append(f"calibrated on {used} samples")
    attach_report(model, QuantReport(config=config.type_key, layers=names, notes=notes))
    if gate is None:
        return model
    return apply_gate(model, float_model, gate, example_inputs, threads, groups=gate_groups, variants=static_variants(model),
                      guard_data=calibration, guard_samples=config.calibration_samples)
