"""Weight-only quantization of Linear layers (:class:`WeightOnly`): int8 or int4 weights in
groups of ``group_size`` input columns, each group with its own symmetric scale; activations
stay float. Rounding is round-to-nearest (``rtn``) or GPTQ (see :mod:`torchslim.quant.gptq`).

Example:
    >>> import torch
    >>> from torchslim.quant.weight_only import rtn_quantize
    >>> q, s = rtn_quantize(torch.tensor([[0.5, -1.0, 0.25, 0.0]]), bits=4, group=2)
    >>> q.tolist(), s.shape
    ([[3, -7, 7, 0]], torch.Size([1, 2]))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.errors import ConfigError
from torchslim.core.modules import get_module, set_module
from torchslim.core.targets import check_names_exist, select
from torchslim.quant.calibrate import calibration_batches
from torchslim.quant.configs import WeightOnly
from torchslim.quant.gptq import gptq_quantize, group_scales, qrange
from torchslim.quant.report import QuantReport, attach_report


def rtn_quantize(w: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Round-to-nearest: (int weights (N, K) int8, scales (N, K // group))."""
    scales = group_scales(w, bits, group)  # (N, G)
    lo, hi = qrange(bits)
    s = scales.repeat_interleave(group, dim=1)  # (N, K)
    return torch.clamp(torch.round(w / s), lo, hi).to(torch.int8), scales


class WeightOnlyLinear(nn.Module):
    """A Linear layer whose weight is stored as ``bits``-bit integers with group scales.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(8, 3)
        >>> q, s = rtn_quantize(lin.weight.detach(), 8, 4)
        >>> WeightOnlyLinear(q, s, lin.bias, bits=8)(torch.randn(2, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.group = q.shape[1] // scales.shape[1]
        self.torchslim_precision = f"int{bits}"
        self.register_buffer("q", q.to(torch.int8))  # (N, K)
        self.register_buffer("scales", scales.float())  # (N, K // group)
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.in_features, self.out_features = q.shape[1], q.shape[0]

    def int_weight(self) -> torch.Tensor:
        """The integer weight (N, K) as int8 (int4 values lie in [-8, 7])."""
        return self.q

    def dequantized(self) -> torch.Tensor:
        """The float weight the integers stand for: (N, K)."""
        return self.q.float() * self.scales.repeat_interleave(self.group, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized(), self.bias)

    def to_float(self) -> nn.Linear:
        """An ``nn.Linear`` holding the dequantized weight."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(self.dequantized())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bits={self.bits}, group={self.group}"


def _group_for(k: int, group_size: int) -> int:
    return k if group_size == -1 or group_size >= k or k % group_size else group_size


@torch.no_grad()
def collect_inputs(model: nn.Module, names: list[str], calibration: Any, samples: int) -> dict[str, torch.Tensor]:
    """``X^T X`` (K, K) of the inputs each named Linear sees on the calibration data (float64)."""
    hess: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []
    for name in names:
        def hook(_m: nn.Module, args: tuple[Any, ...], _out: Any, name: str = name) -> None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()  # (rows, K)
            hess[name] = hess.get(name, 0) + x.T @ x  # (K, K)
            counts[name] = counts.get(name, 0) + x.shape[0]
        hooks.append(get_module(model, name).register_forward_hook(hook))
    try:
        model.eval()
        for inputs in calibration_batches(calibration, samples):
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return {n: hess[n] / counts[n] for n in hess}


@register_handler(WeightOnly)
def quantize_weight_only(model: nn.Module, config: WeightOnly, *, calibration: Any = None, **_: Any) -> nn.Module:
    """Handler of :class:`WeightOnly` (called by ``quantize``); GPTQ needs ``calibration``."""
    check_names_exist(model, config.target)
    names = [n for n, _ in select(model, config.target, kinds=(nn.Linear,))]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no Linear layer selected by {config.target.include} to quantize")
    hessians = collect_inputs(model, names, calibration, config.calibration_samples) if config.method == "gptq" else {}
    report = QuantReport(config=config.type_key, layers=names)
    for name in names:
        lin: nn.Linear = get_module(model, name)  # type: ignore[assignment]
        w = lin.weight.detach().float()  # (N, K)
        group = _group_for(w.shape[1], config.group_size)
        if config.method == "gptq":
            if name not in hessians:
                report.kept_float[name] = "never ran on the calibration data"
                continue
            q, s = gptq_quantize(w, hessians[name], config.bits, group, config.damp)
        else:
            q, s = rtn_quantize(w, config.bits, group)
        set_module(model, name, WeightOnlyLinear(q, s, lin.bias, config.bits))
    attach_report(model, report)
    return model
