"""How a module type says what it needs to be recorded in a file and rebuilt from it.

A model that is saved and later rebuilt from a fresh instance of its original architecture may
hold modules that the fresh instance lacks: a quantized wrapper where a ``Linear`` was, a
low-rank pair, a weight-shared layer, a pruning mask parametrization. Each such type registers
a :class:`ModuleType` here (from the package that defines it, or from glue code in a layer
that may import both), so that :mod:`torchslim.core.shapes` and the ``.slim`` artifact can
rebuild it without importing any technique:

- ``record(module)``: a JSON-safe dict of what its constructor needs (not tensors: those travel
  in the state dict);
- ``build(record, original, make_child)``: a new module with the right tensor *names* (shapes
  are fixed afterwards from the shape record); ``original`` is the module the fresh model has
  at that place (the ``Linear`` a wrapper replaces) or None; ``make_child(name)`` builds a child
  from the file's record (for containers whose constructor takes its children);
- ``replaces(module)``: the class name of the plain layer it stands in for (``"Linear"``), or
  None for a parametrization;
- ``hints(module)``: optional :class:`ScaledInt` hints: tensors that the module only uses
  through ``clamp(round(t / scale), qmin, qmax) * scale`` and that may therefore be stored as
  integers.

Plain ``Linear``/``Conv1d``/``Conv2d``/``Conv3d`` layers need no registration:
:func:`build_plain` makes them from their recorded attributes.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Twice(nn.Module):
    ...     def __init__(self, inner: nn.Module) -> None:
    ...         super().__init__()
    ...         self.inner = inner
    ...     def forward(self, x): return 2 * self.inner(x)
    >>> mt = register_module_type(ModuleType(
    ...     key="doc_twice", cls=Twice, replaces=lambda m: type(m.inner).__name__,
    ...     record=lambda m: {}, build=lambda rec, original, make_child: Twice(original)))
    >>> module_type_of(Twice(nn.Linear(2, 2))).key
    'doc_twice'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from torchslim.core.errors import InputError
from torchslim.core.registry import Registry

MakeChild = Callable[[str], nn.Module]
PLAIN_LAYERS: dict[str, type[nn.Module]] = {
    "Linear": nn.Linear, "Conv1d": nn.Conv1d, "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d,
}


@dataclass(frozen=True)
class ScaledInt:
    """A float tensor used only as ``clamp(round(t / scale), qmin, qmax) * scale``: ``scale``
    names the module's tensor of scales, one per index of dimension ``axis`` (``None``: a
    single scale)."""

    scale: str
    axis: int | None
    qmin: int
    qmax: int


def _no_hints(module: nn.Module) -> dict[str, ScaledInt]:
    return {}


@dataclass(frozen=True)
class ModuleType:
    """A module type that files may hold; see the module docstring for each callable."""

    key: str
    cls: type[nn.Module]
    replaces: Callable[[nn.Module], str | None]
    record: Callable[[nn.Module], dict[str, Any]]
    build: Callable[[dict[str, Any], nn.Module | None, MakeChild], nn.Module]
    hints: Callable[[nn.Module], dict[str, ScaledInt]] = field(default=_no_hints)


MODULE_TYPES: Registry[ModuleType] = Registry("module type")
_BY_CLASS: dict[type, ModuleType] = {}


def register_module_type(mt: ModuleType) -> ModuleType:
    """Register ``mt`` under ``mt.key`` (the name written in files); returns it.

    Example:
        >>> module_type_of(nn.Linear(2, 2)) is None
        True
    """
    MODULE_TYPES.add(mt.key, mt)
    _BY_CLASS[mt.cls] = mt
    return mt


def base_type(module: nn.Module) -> type[nn.Module]:
    """The module's class before ``torch.nn.utils.parametrize`` swapped it.

    Example:
        >>> base_type(nn.Linear(2, 2)).__name__
        'Linear'
    """
    return parametrize.type_before_parametrizations(module)


def module_type_of(module: nn.Module) -> ModuleType | None:
    """The registered type of ``module`` (exact class, parametrizations looked through), or None.

    Example:
        >>> module_type_of(nn.ReLU()) is None
        True
    """
    return _BY_CLASS.get(base_type(module))


def plain_record(module: nn.Module) -> dict[str, Any]:
    """What :func:`build_plain` needs for a Linear/Conv layer beyond its integer attributes.

    Example:
        >>> plain_record(nn.Conv2d(1, 2, 3, padding="same"))["padding"]
        'same'
    """
    out: dict[str, Any] = {"bias": getattr(module, "bias", None) is not None}
    if isinstance(module, nn.modules.conv._ConvNd):
        out["padding_mode"] = module.padding_mode
        out["padding"] = module.padding if isinstance(module.padding, str) else list(module.padding)
    return out


def build_plain(type_name: str, attrs: dict[str, Any], extra: dict[str, Any], where: str = "") -> nn.Module:
    """A fresh Linear/Conv layer from recorded integer ``attrs`` and :func:`plain_record`'s ``extra``.

    Example:
        >>> conv = nn.Conv2d(3, 8, 5, stride=2)
        >>> from torchslim.core.shapes import int_attrs
        >>> build_plain("Conv2d", int_attrs(conv), plain_record(conv)).stride
        (2, 2)
    """
    cls = PLAIN_LAYERS.get(type_name)
    if cls is None:
        raise InputError(f"module {where!r}: torchslim cannot build a {type_name} from a file; the model "
                         f"passed in must already have it (buildable: {', '.join(PLAIN_LAYERS)})")
    bias = bool(extra.get("bias", True))
    if cls is nn.Linear:
        return nn.Linear(attrs["in_features"], attrs["out_features"], bias=bias)
    padding = extra.get("padding", attrs.get("padding", 0))
    return cls(attrs["in_channels"], attrs["out_channels"], tuple(attrs["kernel_size"]),
               stride=tuple(attrs["stride"]), padding=padding if isinstance(padding, str) else tuple(padding),
               dilation=tuple(attrs["dilation"]), groups=attrs["groups"], bias=bias,
               padding_mode=extra.get("padding_mode", "zeros"))


def simple_attrs(module: nn.Module) -> dict[str, Any]:
    """The module's public instance attributes that are JSON scalars (str, bool, int, float,
    None): the settings a technique module keeps beside its tensors.

    Example:
        >>> simple_attrs(nn.ReLU(inplace=True))
        {'inplace': True}
    """
    return {k: v for k, v in vars(module).items()
            if not k.startswith("_") and k != "training" and (v is None or isinstance(v, (str, bool, int, float)))}


def apply_attrs(module: nn.Module, attrs: dict[str, Any]) -> nn.Module:
    """Set recorded :func:`simple_attrs` on ``module`` (scalars only); returns it.

    Example:
        >>> apply_attrs(nn.ReLU(), {"inplace": True}).inplace
        True
    """
    for k, v in attrs.items():
        if k.startswith("_") or not (v is None or isinstance(v, (str, bool, int, float))):
            raise InputError(f"{type(module).__name__}: refusing to set attribute {k!r} to {v!r} from a file")
        setattr(module, k, v)
    return module
