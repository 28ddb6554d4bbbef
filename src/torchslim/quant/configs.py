"""Quantization configs: small validated objects; each has a handler registered elsewhere.

Example:
    >>> from torchslim.quant.configs import Int8Static
    >>> Int8Static(observer="percentile").to_dict()["type"]
    'int8_static'
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from torchslim.core.config import Config
from torchslim.core.targets import Target

LINEAR_AND_CONV = Target(include=("type:Linear", "type:Conv1d", "type:Conv2d"))
LINEAR_ONLY = Target(include=("type:Linear",))


class Int8Static(Config):
    """Static int8: BN folded, activations observed on calibration data, scales frozen.

    Weights are symmetric int8 per output channel (``per_channel=False``: one scale per
    tensor); activations per-tensor asymmetric uint8. ``reduce_range`` keeps weights in
    [-63, 63] so ONNX Runtime's u8s8 kernels cannot saturate on CPUs without VNNI; ``None``
    means: on when this CPU lacks VNNI.

    Accuracy helpers: ``smooth`` (SmoothQuant's migration strength alpha in (0, 1), e.g. 0.5) divides
    Linear inputs per channel by ``s`` and multiplies the weights by it (``smooth_target``: names
    or ``re:`` patterns of the Linear layers to smooth; default all); ``bias_correction`` adds
    the mean output shift that weight rounding causes back into each bias.

    Example:
        >>> Int8Static(calibration_samples=256, bias_correction=True).calibration_samples
        256
    """

    observer: Literal["minmax", "percentile", "mse", "entropy"] = "minmax"
    per_channel: bool = True
    calibration_samples: int = Field(default=512, ge=1)
    reduce_range: bool | None = None
    smooth: float | None = Field(default=None, gt=0, lt=1)
    smooth_target: Target = Target()
    bias_correction: bool = False
    target: Target = LINEAR_AND_CONV


class Int8Dynamic(Config):
    """Dynamic int8 for Linear layers: int8 weights per channel, activations quantized on the
    fly per tensor (ONNX Runtime ``DynamicQuantizeMatMul``); ``per_channel=False``: one weight
    scale per layer (ONNX Runtime's default, a little faster there). Convolutions belong in
    :class:`Int8Static` (ORT's dynamic ConvInteger is slower than float). ``smooth`` (SmoothQuant
    alpha, see :class:`Int8Static`) needs calibration data to measure the input channels.

    Example:
        >>> Int8Dynamic().target.include
        ('type:Linear',)
    """

    reduce_range: bool | None = None
    per_channel: bool = True
    smooth: float | None = Field(default=None, gt=0, lt=1)
    smooth_target: Target = Target()
    calibration_samples: int = Field(default=128, ge=1)
    target: Target = LINEAR_ONLY

    @field_validator("target")
    @classmethod
    def _linear_only(cls, t: Target) -> Target:
        if any(p.startswith("type:") and "Conv" in p for p in t.include):
            raise ValueError("Int8Dynamic quantizes Linear layers only; use Int8Static for convolutions")
        return t


class WeightOnly(Config):
    """Weight-only quantization of Linear layers: ``bits`` 8 or 4, groups of ``group_size``
    input columns sharing a scale (``-1``: one per output row), round-to-nearest or GPTQ.

    Example:
        >>> WeightOnly(bits=4, group_size=32, method="gptq").bits
        4
    """

    bits: int = 4
    group_size: int = Field(default=128, ge=-1)
    method: Literal["rtn", "gptq"] = "rtn"
    symmetric: bool = True
    damp: float = Field(default=0.01, gt=0, le=1)
    calibration_samples: int = Field(default=128, ge=1)
    target: Target = LINEAR_ONLY

    @field_validator("bits")
    @classmethod
    def _bits(cls, b: int) -> int:
        if b not in (4, 8):
            raise ValueError(f"WeightOnly supports bits 4 or 8, got {b}")
        return b

    @field_validator("group_size")
    @classmethod
    def _group(cls, g: int) -> int:
        if g == 0:
            raise ValueError("group_size must be -1 (per row) or >= 1")
        return g


class QAT(Config):
    """Quantization-aware training: fake quantization with learnable (LSQ) scales trained with
    the straight-through estimator through :func:`torchslim.train.fit`.

    ``bits`` applies to weights; activations use ``act_bits``. With a ``teacher=`` model given to
    ``quantize``, each batch trains on ``(1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)``
    (``T = temperature``; :func:`torchslim.train.kd.teacher_loss`, the loss distillation uses).

    Example:
        >>> QAT(bits=4, epochs=1).epochs
        1
    """

    bits: int = 8
    act_bits: int = 8
    epochs: int = Field(default=1, ge=1)
    lr: float = Field(default=1e-4, gt=0)
    calibration_samples: int = Field(default=256, ge=1)
    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=0.5, ge=0, le=1)
    target: Target = LINEAR_AND_CONV

    @field_validator("bits", "act_bits")
    @classmethod
    def _bits(cls, b: int) -> int:
        if not 2 <= b <= 8:
            raise ValueError(f"QAT bit widths must be between 2 and 8, got {b}")
        return b
