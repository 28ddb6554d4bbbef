"""Configs of the efficient-architecture verbs: :class:`LowRank` and :class:`DepthwiseSeparable`.

Both are applied by :func:`torchslim.arch.factorize` (dispatch on the config's type);
:func:`torchslim.arch.replace_depthwise` is a shortcut for the second.

Example:
    >>> from torchslim.arch.configs import LowRank
    >>> LowRank(energy=0.9).to_dict()["energy"]
    0.9
    >>> LowRank(energy=1.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    torchslim.core.errors.ConfigError: invalid low_rank: energy: ...
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError, field_validator

from torchslim.core.config import Config
from torchslim.core.errors import ConfigError
from torchslim.core.targets import Target


class _ArchConfig(Config, abstract=True):
    """Validation problems raise :class:`ConfigError` naming the field, also when built directly."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise ConfigError(f"invalid {type(self).type_key}: {problems}") from None


class LowRank(_ArchConfig):
    """Replace Linear and Conv1d/Conv2d (groups=1) layers by a truncated-SVD pair of layers.

    Rank per layer: ``rank`` if given, else from ``param_ratio`` (the factorized pair keeps at
    most that fraction of the layer's weights), else the smallest rank whose singular values keep
    ``energy`` of the squared Frobenius norm. A layer is replaced only if the pair saves more
    than ``min_saving`` (a fraction) of its weights, hence also of its MACs.

    Example:
        >>> from torchslim.arch.configs import LowRank
        >>> LowRank(rank=8, target={"include": ["type:Linear"]}).rank
        8
    """

    energy: float = 0.95
    rank: int | None = None
    param_ratio: float | None = None
    target: Target = Target()
    min_saving: float = 0.0

    @field_validator("energy")
    @classmethod
    def _energy(cls, v: float) -> float:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"energy must be in (0, 1], got {v}")
        return v

    @field_validator("rank")
    @classmethod
    def _rank(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"rank must be at least 1, got {v}")
        return v

    @field_validator("param_ratio")
    @classmethod
    def _ratio(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise ValueError(f"param_ratio must be in (0, 1], got {v}")
        return v

    @field_validator("min_saving")
    @classmethod
    def _saving(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"min_saving must be in [0, 1), got {v}")
        return v


class DepthwiseSeparable(_ArchConfig):
    """Replace standard k x k Conv2d layers (groups=1, k > 1) by depthwise k x k + pointwise 1x1,
    initialised from a rank-1 SVD of each input channel's slice of the original kernel.

    Example:
        >>> from torchslim.arch.configs import DepthwiseSeparable
        >>> DepthwiseSeparable(target={"exclude": ["stem"]}).target.exclude
        ('stem',)
    """

    target: Target = Target()
