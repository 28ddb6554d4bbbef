"""Torch-only foundations shared by every technique: configs, registry, targets, I/O."""

from torchslim.core.config import (
    Config,
    config_from_dict,
    config_from_yaml,
    handler_for,
    register_handler,
)
from torchslim.core.errors import (
    ConfigError,
    InputError,
    MissingPackageError,
    TorchslimError,
    UnknownNameError,
)
from torchslim.core.inputs import as_tuple
from torchslim.core.io import atomic_write, cache_dir
from torchslim.core.modules import get_module, set_module
from torchslim.core.registry import Registry
from torchslim.core.targets import Target, select

__all__ = [
    "Config", "ConfigError", "InputError", "MissingPackageError", "Registry", "Target",
    "TorchslimError", "UnknownNameError", "as_tuple", "atomic_write", "cache_dir",
    "config_from_dict", "config_from_yaml", "get_module", "handler_for", "register_handler",
    "select", "set_module",
]
