"""The public verb ``quantize``: looks up the handler registered for the config's type.

Example:
    >>> import torchslim as slim  # doctest: +SKIP
    >>> q = slim.quantize(model, slim.Int8Static(), calibration=loader)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from torchslim.core.config import Config, handler_for


def quantize(model: nn.Module, config: Config, *, calibration: Any = None, inplace: bool = False, **options: Any) -> nn.Module:
    """Quantize ``model`` as ``config`` says and return a torch model that simulates the
    quantized arithmetic (a copy unless ``inplace``); export it with ``torchslim.export``.

    ``calibration`` is a DataLoader or any iterable of example inputs: a tensor, a tuple of
    tensors such as ``(input_ids, attention_mask)``, or ``(inputs, targets)`` batches.
    """
    target = model if inplace else copy.deepcopy(model)
    return handler_for(config, "quantize")(target, config, calibration=calibration, **options)
