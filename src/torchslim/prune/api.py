"""The public verb ``prune``: looks up the handler registered for the config's type.

Example:
    >>> import torch, torchslim as slim  # doctest: +SKIP
    >>> small = slim.prune(model, slim.MagnitudePrune(sparsity=0.9), example_inputs=x)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from torchslim.core.config import Config, handler_for


def prune(model: nn.Module, config: Config, *, example_inputs: Any = None, inplace: bool = False, **options: Any) -> nn.Module:
    """Prune ``model`` as ``config`` says and return the pruned model (a copy unless ``inplace``).

    ``example_inputs`` (a tensor or a tuple of tensors) is needed by structured pruning to
    capture the graph; ``options`` go to the handler (e.g. ``train_data`` for schedules).
    """
    target = model if inplace else copy.deepcopy(model)
    return handler_for(config, "prune")(target, config, example_inputs=example_inputs, **options)
