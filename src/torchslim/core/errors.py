"""The exceptions torchslim raises: each names what was wrong and where."""

from __future__ import annotations


class TorchslimError(Exception):
    """Base class of every error torchslim raises on purpose."""


class ConfigError(TorchslimError, ValueError):
    """A config, recipe key or argument has a value torchslim cannot use."""


class UnknownNameError(TorchslimError, KeyError):
    """A name (config type, zoo model, data set, runtime) is not registered.

    The message lists the known names, so a typo is easy to fix.
    """

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class InputError(TorchslimError, ValueError):
    """Example inputs or data do not fit the model (wrong shape, dtype, count)."""


class MissingPackageError(TorchslimError, ImportError):
    """An optional package that a feature needs is not installed."""

    def __init__(self, package: str, needed_for: str, extra: str | None = None) -> None:
        hint = f"pip install 'torchslim[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{needed_for} needs the package {package!r}, which is not installed: {hint}")
        self.package = package
