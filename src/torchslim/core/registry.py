"""One registry type for every family of named things (configs, handlers, zoo models, data).

Example:
    >>> from torchslim.core.registry import Registry
    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... def square(x: float) -> float:
    ...     return x * x
    >>> shapes.get("square")(3.0)
    9.0
    >>> shapes.get("circle")
    Traceback (most recent call last):
    ...
    torchslim.core.errors.UnknownNameError: unknown shape 'circle'; known: square
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from torchslim.core.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object map that refuses duplicates and lists known names on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name`."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        """Register `obj` under `name`; a name can be registered once."""
        if name in self._items and self._items[name] is not obj:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """The object registered under `name`, or an UnknownNameError listing the known names."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._items)) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
