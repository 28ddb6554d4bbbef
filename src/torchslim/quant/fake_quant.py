"""Fake quantization: float tensors rounded onto an integer grid and back, in torch.

:func:`fake_quantize` is ``(clamp(round(x / s) + zp, qmin, qmax) - zp) * s`` with a
straight-through estimator for the rounding, so gradients reach ``x`` (inside the range) and
``s`` (LSQ: a learnable scale). :class:`QuantModule` wraps a Linear/Conv1d/Conv2d and simulates
what ONNX Runtime runs for it:

- weights: symmetric int8 per output channel (``[-127, 127]``, or ``[-63, 63]`` with
  ``reduce_range`` so u8s8 kernels without VNNI cannot saturate);
- static mode: input and output activations per-tensor asymmetric uint8 with calibrated scales
  (uint8 activations x int8 weights is the u8s8 path MLAS is built around on x86); an optional
  ReLU or ReLU6 that follows the layer is fused before the output quantizer; the bias is int32
  at scale ``s_in * s_w`` as QLinearConv / QGemm hold it; ``act_qmax`` below 255 (QAT with
  fewer activation bits) narrows the grid to ``[0, act_qmax]``;
- dynamic mode: the input is quantized per tensor, uint8, from its own min/max at every call
  (ONNX ``DynamicQuantizeLinear``), the output stays float;
- ``float_compute`` (set by the latency gate on a layer it put back in float while an int8
  layer still reads its output): float input, weights and arithmetic, but the output is still
  quantized onto its calibrated grid, so its integer readers (a residual ``QLinearAdd``, the
  next ``QLinearConv``) keep their kernels in ONNX Runtime.

Example:
    >>> import torch
    >>> from torchslim.quant.fake_quant import fake_quantize
    >>> fake_quantize(torch.tensor([0.26, -1.0, 9.0]), torch.tensor(0.5), 0, -4, 4)
    tensor([ 0.5000, -1.0000,  2.0000])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.quant.observers import Observer, make_observer, qparams

QUANTIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity backward."""
    return (torch.round(x) - x).detach() + x


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | int, qmin: int, qmax: int, axis: int | None = None
) -> torch.Tensor:
    """Quantize-dequantize ``x``; per-channel along ``axis`` when ``scale`` is 1-D.

    Example:
        >>> w = torch.tensor([[1.0, -2.0], [0.1, 0.3]])
        >>> fake_quantize(w, torch.tensor([2 / 127, 0.3 / 127]), 0, -127, 127, axis=0)[0]
        tensor([ 1.0079, -2.0000])
    """
    if axis is not None and scale.dim() == 1:
        shape = [1] * x.dim()
        shape[axis] = -1
        scale = scale.reshape(shape)
        if isinstance(zero_point, torch.Tensor) and zero_point.dim() == 1:
            zero_point = zero_point.reshape(shape)
    q = torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def weight_scale(w: torch.Tensor, qmax: int) -> torch.Tensor:
    """Symmetric per-output-channel scale ``max|w| / qmax``: (C_out,) for w (C_out, ...)."""
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)  # (C_out,)
    return torch.where(amax > 0, amax / qmax, torch.ones_like(amax))


class QuantModule(nn.Module):
    """A quantized Linear/Conv1d/Conv2d in simulation; ``torchslim_precision = "int8"``.

    ``mode`` is ``"static"`` or ``"dynamic"``. Calibration: ``observe()`` attaches observers,
    forward passes feed them, ``freeze()`` turns them into scales.

    Example:
        >>> import torch
        >>> q = QuantModule(torch.nn.Linear(4, 2), mode="dynamic")
        >>> q(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    torchslim_precision = "int8"

    def __init__(self, module: nn.Module, mode: str = "static", reduce_range: bool = False, observer: str = "minmax") -> None:
        super().__init__()
        if not isinstance(module, QUANTIZABLE):
            raise TypeError(f"QuantModule wraps {[c.__name__ for c in QUANTIZABLE]}, got {type(module).__name__}")
        self.module = module
        self.mode = mode
        self.observer_kind = observer
        self.w_qmax = 63 if reduce_range else 127
        self.act_qmax = 255
        self.fused_act: str | None = None  # "relu" or "relu6", applied before the output quantizer
        self.shares_input_with: str | None = None  # name of the layer whose output grid we reuse
        self.same_input_as: str | None = None  # a sibling reading the same tensor: one input scale
        self.quantize_output = mode == "static"
        self.register_buffer("w_scale", weight_scale(module.weight, self.w_qmax))  # (C_out,)
        self.register_buffer("in_scale", torch.tensor(1.0))
        self.register_buffer("in_zp", torch.tensor(0.0))
        self.register_buffer("out_scale", torch.tensor(1.0))
        self.register_buffer("out_zp", torch.tensor(0.0))
        self.in_obs: Observer | None = None
        self.out_obs: Observer | None = None
        self.calibrated = mode == "dynamic"
        self.learn_weight_scale = False
        self.float_compute = False  # float layer, quantized output (see the module docstring)
        self.register_buffer("smooth_inv", None)  # (C_in,) SmoothQuant: x * smooth_inv, weight * smooth
        self.smooth_key: str | None = None  # layers reading one tensor share one smoothing Mul

    @property
    def kind(self) -> str:
        return type(self.module).__name__

    @property
    def fused_relu(self) -> bool:
        """True when a following ReLU (or ReLU6) is fused into this layer."""
        return self.fused_act is not None

    @fused_relu.setter
    def fused_relu(self, on: bool) -> None:
        self.fused_act = "relu" if on else None

    def _act(self, y: torch.Tensor) -> torch.Tensor:
        if self.fused_act == "relu":
            return torch.relu(y)
        if self.fused_act == "relu6":
            return torch.clamp(y, 0.0, 6.0)
        return y

    def observe(self) -> None:
        """Attach fresh observers to the input (unless shared) and output."""
        self.in_obs = None if self.shares_input_with or self.same_input_as else make_observer(self.observer_kind)
        self.out_obs = make_observer(self.observer_kind) if self.quantize_output else None

    def freeze(self) -> None:
        """Turn the observers' ranges into uint8 scales and zero points; drop the observers."""
        if self.in_obs is not None:
            s, zp = self.in_obs.qparams(0, self.act_qmax)
            self.in_scale.fill_(s)
            self.in_zp.fill_(zp)
        if self.out_obs is not None:
            s, zp = self.out_obs.qparams(0, self.act_qmax)
            self.out_scale.fill_(s)
            self.out_zp.fill_(zp)
        self.in_obs = self.out_obs = None
        self.calibrated = True

    def quant_weight(self) -> torch.Tensor:
        """The fake-quantized weight (what the int8 initializer dequantizes to); the float
        weight itself under ``float_compute``."""
        w = self.module.weight
        if self.float_compute:
            return w
        scale = self.w_scale if self.learn_weight_scale else self.w_scale.detach()
        return fake_quantize(w, scale, 0, -self.w_qmax, self.w_qmax, axis=0)

    def int_weight(self) -> torch.Tensor:
        """The int8 weight, same shape as the float one."""
        w = self.module.weight.detach()
        shape = [-1] + [1] * (w.dim() - 1)
        return torch.clamp(torch.round(w / self.w_scale.detach().reshape(shape)), -self.w_qmax, self.w_qmax).to(torch.int8)

    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        m = self.module
        if isinstance(m, nn.Linear):
            return F.linear(x, w, b)
        if isinstance(m, nn.Conv1d):
            return F.conv1d(x, w, b, m.stride, m.padding, m.dilation, m.groups)
        return F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups)

    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the integer kernel sees it: smoothed, then quantized (once calibrated)."""
        if self.smooth_inv is not None:
            x = x * self.smooth_inv
        if self.mode == "dynamic":
            return dynamic_fake_quant(x)
        return fake_quantize(x, self.in_scale, self.in_zp, 0, self.act_qmax) if self.calibrated else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "dynamic":
            return self._op(self.quant_input(x), self.quant_weight(), self.module.bias)
        if self.smooth_inv is not None:
            x = x * self.smooth_inv
        if not self.calibrated:  # calibration pass: float arithmetic, observers watch
            if self.in_obs is not None:
                self.in_obs.update(x)
            y = self._act(self._op(x, self.module.weight, self.module.bias))
            if self.out_obs is not None:
                self.out_obs.update(y)
            return y
        b = self.module.bias
        if self.float_compute:
            y = self._act(self._op(x, self.module.weight, b))
            return fake_quantize(y, self.out_scale, self.out_zp, 0, self.act_qmax) if self.quantize_output else y
        x = fake_quantize(x, self.in_scale, self.in_zp, 0, self.act_qmax)
        if b is not None:  # int32 bias at scale s_in * s_w, as the integer kernels hold it
            bs = (self.in_scale * self.w_scale).detach()  # (C_out,)
            b = round_ste(b / bs) * bs
        y = self._act(self._op(x, self.quant_weight(), b))
        if self.quantize_output:
            y = fake_quantize(y, self.out_scale, self.out_zp, 0, self.act_qmax)
        return y

    def extra_repr(self) -> str:
        return (f"mode={self.mode}{', float_compute' if self.float_compute else ''}, w_qmax={self.w_qmax}, "
                f"act_qmax={self.act_qmax}, fused={self.fused_act}, "
                f"shared_input={self.shares_input_with or self.same_input_as}, quantize_output={self.quantize_output}")


class QuantInput(nn.Module):
    """Quantizes the input of a module without weights (an average pool) onto a calibrated
    uint8 grid, so ONNX Runtime keeps the tensor integer up to it (e.g. a residual add becomes
    ``QLinearAdd``); in ONNX it is ``QuantizeLinear -> DequantizeLinear`` before the module.

    Example:
        >>> import torch
        >>> q = QuantInput(torch.nn.AdaptiveAvgPool2d(1))
        >>> q.observe(); _ = q(torch.rand(2, 3, 4, 4)); q.freeze()
        >>> q(torch.rand(2, 3, 4, 4)).shape
        torch.Size([2, 3, 1, 1])
    """

    def __init__(self, module: nn.Module, observer: str = "minmax") -> None:
        super().__init__()
        self.module = module
        self.mode = "static"
        self.observer_kind = observer
        self.act_qmax = 255
        self.shares_input_with: str | None = None
        self.register_buffer("in_scale", torch.tensor(1.0))
        self.register_buffer("in_zp", torch.tensor(0.0))
        self.in_obs: Observer | None = None
        self.calibrated = False

    def observe(self) -> None:
        """Attach a fresh input observer (unless the scale is shared with the producer)."""
        self.in_obs = None if self.shares_input_with else make_observer(self.observer_kind)

    def freeze(self) -> None:
        """Turn the observed range into the input scale and zero point."""
        if self.in_obs is not None:
            s, zp = self.in_obs.qparams(0, self.act_qmax)
            self.in_scale.fill_(s)
            self.in_zp.fill_(zp)
        self.in_obs = None
        self.calibrated = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.calibrated:
            if self.in_obs is not None:
                self.in_obs.update(x)
            return self.module(x)
        return self.module(fake_quantize(x, self.in_scale, self.in_zp, 0, self.act_qmax))


def dynamic_fake_quant(x: torch.Tensor) -> torch.Tensor:
    """ONNX ``DynamicQuantizeLinear`` in simulation: per-tensor uint8 from x's own range.

    Example:
        >>> dynamic_fake_quant(torch.tensor([0.0, 1.0, 2.55]))
        tensor([0.0000, 1.0000, 2.5500])
    """
    lo, hi = min(float(x.detach().min()), 0.0), max(float(x.detach().max()), 0.0)
    scale, zp = qparams(lo, hi, 0, 255)
    return fake_quantize(x, torch.tensor(scale, dtype=x.dtype), zp, 0, 255)


def input_quantizers(model: nn.Module) -> list[tuple[str, QuantInput]]:
    """The (name, QuantInput) pairs inside ``model``.

    Example:
        >>> input_quantizers(torch.nn.Linear(2, 2))
        []
    """
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantInput)]


def quant_modules(model: nn.Module) -> list[tuple[str, QuantModule]]:
    """The (name, QuantModule) pairs inside ``model``.

    Example:
        >>> quant_modules(torch.nn.Linear(2, 2))
        []
    """
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantModule)]
