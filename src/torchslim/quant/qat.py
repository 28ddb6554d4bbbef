"""Quantization-aware training (:class:`QAT`): calibrate fake-quant layers, then train weights
and LSQ-style learnable scales (straight-through rounding) with :func:`torchslim.train.fit`;
with ``teacher=`` the loss adds KL divergence to the teacher's temperature-softened logits.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant.api import quantize
    >>> from torchslim.quant.configs import QAT
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(4)]
    >>> q = quantize(net, QAT(bits=4, epochs=1), calibration=data, train_data=data, progress=False)
    >>> q(torch.randn(2, 4)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from typing import Any

from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.errors import ConfigError
from torchslim.core.fold import fold_batchnorm
from torchslim.quant.calibrate import (
    QUANTIZABLE,
    calibrate,
    plan_fusions,
    wrap_avg_pools,
    wrap_layers,
)
from torchslim.quant.configs import QAT
from torchslim.quant.fake_quant import input_quantizers, quant_modules
from torchslim.quant.report import QuantReport, attach_report
from torchslim.train import fit, teacher_loss


def _learnable(module: nn.Module, name: str) -> None:
    value = getattr(module, name).detach().clone()
    del module._buffers[name]
    module.register_parameter(name, nn.Parameter(value))


def prepare_qat(model: nn.Module, config: QAT, calibration: Any) -> nn.Module:
    """Fold BN, wrap layers at ``config.bits``/``act_bits``, calibrate, make scales learnable
    (in place); the result is the harsh post-training model QAT starts from."""
    model = fold_batchnorm(model, inplace=True)
    names = wrap_layers(model, config.target, QUANTIZABLE, mode="static")
    wrap_avg_pools(model)
    for _, qi in input_quantizers(model):
        qi.act_qmax = 2 ** config.act_bits - 1
    for _, m in quant_modules(model):
        m.w_qmax = 2 ** (config.bits - 1) - 1
        m.act_qmax = 2 ** config.act_bits - 1
        m.w_scale.copy_(m.module.weight.detach().abs().reshape(m.w_scale.shape[0], -1).amax(1).clamp_min(1e-8) / m.w_qmax)
    note = plan_fusions(model)
    calibrate(model, calibration, config.calibration_samples)
    for _, m in quant_modules(model):
        for buf in ("w_scale", "in_scale", "out_scale"):
            _learnable(m, buf)
        m.learn_weight_scale = True
    attach_report(model, QuantReport(config=config.type_key, layers=names, notes=[note]))
    return model


@register_handler(QAT)
def quantize_qat(model: nn.Module, config: QAT, *, calibration: Any = None, train_data: Any = None,
                 teacher: nn.Module | None = None, val_data: Any = None, progress: bool = True, **_: Any) -> nn.Module:
    """Handler of :class:`QAT`: needs ``train_data=`` (``(x, y)`` batches); ``calibration``
    defaults to ``train_data``."""
    if train_data is None:
        raise ConfigError("QAT needs train_data= (a DataLoader of (inputs, targets)) to train on")
    model = prepare_qat(model, config, calibration if calibration is not None else train_data)
    extra = teacher_loss(teacher, temperature=config.temperature, alpha=config.alpha) if teacher is not None else None
    fit(model, train_data, epochs=config.epochs, lr=config.lr, extra_loss=extra, val_data=val_data,
        progress=progress, description="qat")
    return model.eval()
