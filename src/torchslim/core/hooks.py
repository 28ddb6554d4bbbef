"""Feature hooks: capture what named submodules compute during a forward pass.

A *feature path* is a module's qualified name (``"layer2.0.conv1"``, as in
``named_modules()``); it captures that module's output. ``"name:input"`` captures the first
positional input of the module instead (e.g. ``"fc3:input"`` is the penultimate representation
of a classifier that ends in ``fc3``). A path that names no module fails with the nearest names.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.core.hooks import FeatureHooks
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> with FeatureHooks(net, ["1", "2:input"]) as hooks:
    ...     _ = net(torch.zeros(3, 4))
    ...     [tuple(hooks.features[p].shape) for p in ("1", "2:input")]
    [(3, 8), (3, 8)]
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn

from torchslim.core.errors import InputError, UnknownNameError
from torchslim.core.inputs import first_tensor

INPUT_SUFFIX = ":input"


class UnknownModuleError(UnknownNameError):
    """A feature path names no submodule; the message lists the nearest module names."""

    def __init__(self, path: str, known: list[str], where: str = "model") -> None:
        near = difflib.get_close_matches(path, known, n=5, cutoff=0.3) or known[:10]
        self.kind, self.name, self.known = "module", path, sorted(known)
        Exception.__init__(
            self, f"{where} has no module {path!r}; nearest names: {', '.join(near) or '(the model has no submodules)'}"
        )


def split_path(path: str) -> tuple[str, bool]:
    """``"fc3:input"`` -> ``("fc3", True)``; ``"fc3"`` -> ``("fc3", False)``."""
    if path.endswith(INPUT_SUFFIX):
        return path[: -len(INPUT_SUFFIX)], True
    return path, False


def resolve(model: nn.Module, path: str, where: str = "model") -> nn.Module:
    """The submodule a feature path names, or :class:`UnknownModuleError` with near names.

    Example:
        >>> from torch import nn
        >>> try:
        ...     resolve(nn.Sequential(nn.Linear(2, 2)), "fc1", where="student")
        ... except UnknownNameError as e:
        ...     print(e)
        student has no module 'fc1'; nearest names: 0
    """
    name, _ = split_path(path)
    modules = dict(model.named_modules())
    if name not in modules:
        raise UnknownModuleError(path, [n for n in modules if n], where)
    return modules[name]


def last_linear(model: nn.Module) -> str:
    """The name of the model's last ``nn.Linear`` in registration order (its classifier), or
    an UnknownModuleError when it has none."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise UnknownModuleError("type:Linear", [n for n, _ in model.named_modules() if n], type(model).__name__)
    return names[-1]


class FeatureHooks:
    """Forward hooks on the modules named by ``paths``; after each forward of ``model``,
    ``features[path]`` holds the captured tensor (with its autograd graph, so a loss on it
    trains the model). Remove the hooks with :meth:`remove` or by leaving the ``with`` block.

    A module that runs more than once per forward keeps its last call's tensor.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str], where: str = "model") -> None:
        self.paths = list(paths)
        self.where = where
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []
        for path in self.paths:
            module = resolve(model, path, where)
            _, want_input = split_path(path)
            if want_input:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(path)))
            else:
                self._handles.append(module.register_forward_hook(self._hook(path)))

    def _hook(self, path: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.features[path] = first_tensor(output)

        return hook

    def _pre_hook(self, path: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            self.features[path] = first_tensor(args)

        return hook

    def clear(self) -> None:
        """Forget the captured tensors (they hold autograd graphs)."""
        self.features.clear()

    def take(self) -> list[torch.Tensor]:
        """The captured tensors in ``paths`` order, then cleared. A path whose module did not
        run in the last forward pass is an InputError naming it."""
        missing = [p for p in self.paths if p not in self.features]
        if missing:
            raise InputError(
                f"{self.where}: the modules of feature paths {missing} did not run in the last forward pass"
            )
        out = [self.features[p] for p in self.paths]
        self.clear()
        return out

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.clear()

    def __enter__(self) -> FeatureHooks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
