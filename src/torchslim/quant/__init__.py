"""Quantization: static and dynamic int8, weight-only int8/int4 (RTN, GPTQ), QAT, SmoothQuant and
bias correction, a measured latency gate, exported as QDQ ONNX that ONNX Runtime runs on integer
kernels.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant import Int8Static, quantize
    >>> net = nn.Sequential(nn.Linear(8, 4)).eval()
    >>> q = quantize(net, Int8Static(), calibration=[torch.randn(32, 8)])
    >>> type(q[0]).__name__
    'QuantModule'
"""

from torchslim.core.fold import fold_batchnorm
from torchslim.quant import dynamic, onnx_qdq, qat, sharing, static, weight_only  # noqa: F401 - register handlers
from torchslim.quant.api import quantize
from torchslim.quant.configs import QAT, Int8Dynamic, Int8Static, WeightOnly
from torchslim.quant.fake_quant import QuantInput, QuantModule, fake_quantize
from torchslim.quant.gate import group_of
from torchslim.quant.mixed import mixed_precision
from torchslim.quant.observers import OBSERVERS, make_observer
from torchslim.quant.onnx_qdq import optimized_op_counts
from torchslim.quant.report import QuantReport, report_of
from torchslim.quant.sharing import SharedWeight, WeightSharing
from torchslim.quant.smooth import correct_bias, smooth_layers

__all__ = [
    "OBSERVERS", "QAT", "Int8Dynamic", "Int8Static", "QuantInput", "QuantModule", "QuantReport", "SharedWeight", "WeightOnly",
    "WeightSharing",
    "correct_bias", "fake_quantize", "fold_batchnorm", "group_of", "make_observer", "mixed_precision",
    "optimized_op_counts", "quantize", "report_of", "smooth_layers",
]
