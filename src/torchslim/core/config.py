"""The config base: small validated data objects that round-trip through JSON and YAML.

Every concrete subclass registers itself under its snake_case type key (``KD`` -> ``kd``,
``Int8Static`` -> ``int8_static``), and the public verbs find the handler registered for
the config's type.

Example:
    >>> from torchslim.core.config import Config, config_from_dict
    >>> class Scale(Config):
    ...     factor: float = 2.0
    >>> Scale(factor=3.0).to_dict()
    {'type': 'scale', 'factor': 3.0}
    >>> config_from_dict({"type": "scale", "factor": 4.0})
    Scale(factor=4.0)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from torchslim.core.errors import ConfigError, UnknownNameError
from torchslim.core.registry import Registry

CONFIGS: Registry[type[Config]] = Registry("config type")
_HANDLERS: dict[type, Callable[..., Any]] = {}


def snake_case(name: str) -> str:
    """``Int8Static`` -> ``int8_static``; ``NMPrune`` -> ``nm_prune``; ``KD`` -> ``kd``."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


class Config(BaseModel):
    """Base of every technique config: frozen, unknown fields refused, no callables inside.

    Subclass with ``abstract=True`` for an intermediate base that must not be registered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=False)
    type_key: ClassVar[str] = "config"

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not abstract:
            cls.type_key = snake_case(cls.__name__)
            CONFIGS.add(cls.type_key, cls)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with the type key first; JSON- and YAML-safe."""
        return {"type": self.type_key, **self.model_dump(mode="json")}

    def to_yaml(self) -> str:
        """YAML text that :func:`config_from_yaml` reads back to an equal config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def config_from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """Build the registered config named by ``data["type"]``; errors name the key at fault."""
    if not isinstance(data, dict) or "type" not in data:
        raise ConfigError(f"{where}: expected a mapping with a 'type' key, got {data!r}")
    fields = dict(data)
    cls = CONFIGS.get(str(fields.pop("type")))
    try:
        return cls.model_validate(fields)
    except ValidationError as e:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid {cls.type_key}: {problems}") from None


def config_from_yaml(text: str, where: str = "config") -> Config:
    """Parse YAML safely (no tags, no code) and build the config it names."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML for torchslim (no tags allowed): {e}") from None
    return config_from_dict(data, where=where)


def register_handler(config_type: type[Config]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the function that applies configs of ``config_type``."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        _HANDLERS[config_type] = fn
        return fn

    return add


def handler_for(config: Config, verb: str) -> Callable[..., Any]:
    """The handler registered for ``type(config)`` (or its nearest base)."""
    for cls in type(config).__mro__:
        if cls in _HANDLERS:
            return _HANDLERS[cls]
    known = [c.type_key for c in _HANDLERS if isinstance(c, type)]
    raise UnknownNameError(f"config for {verb}()", config.type_key, known)
