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

from typing import Any, Literal

from pydantic import ValidationError, ValidationInfo, field_validator, model_validator

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

    ``rank_selection="rule"`` (default) picks each layer's rank on its own: ``rank`` if given,
    else from ``param_ratio`` (or ``macs_ratio``, the same for one layer: the pair keeps at most
    that fraction of the layer's weights), else the smallest rank whose singular values keep
    ``energy`` of the squared Frobenius norm.

    ``rank_selection="sensitivity"`` measures, layer by layer, the metric change at each
    candidate rank (``candidates``: fractions of the layer's weights the pair may keep) on data
    passed to :func:`~torchslim.arch.factorize` (``data=``, never in the config), then allocates
    ranks so that the selected layers together keep at most ``param_ratio`` of their weights
    (or ``macs_ratio`` of their MACs) with the least summed loss; a layer may also stay whole.

    ``method="svd"`` (default) truncates the SVD of the weight; ``method="whitened"`` truncates
    the SVD of the weight times the Cholesky factor of its inputs' covariance, measured on
    ``calibration=`` data given to :func:`~torchslim.arch.factorize`: the pair then keeps what
    matters on real inputs (see :mod:`torchslim.arch.whiten`), and ``energy`` is measured on
    that whitened spectrum.

    A layer is replaced only if the pair saves more than ``min_saving`` (a fraction) of its
    weights, hence also of its MACs.

    Example:
        >>> from torchslim.arch.configs import LowRank
        >>> LowRank(rank=8, target={"include": ["type:Linear"]}).rank
        8
        >>> LowRank(rank_selection="sensitivity", param_ratio=0.3).candidates[:3]
        (0.02, 0.04, 0.06)
    """

    energy: float = 0.95
    rank: int | None = None
    param_ratio: float | None = None
    macs_ratio: float | None = None
    rank_selection: Literal["rule", "sensitivity"] = "rule"
    method: Literal["svd", "whitened"] = "svd"
    candidates: tuple[float, ...] = (0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)
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

    @field_validator("param_ratio", "macs_ratio")
    @classmethod
    def _ratio(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise ValueError(f"{info.field_name} must be in (0, 1], got {v}")
        return v

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0.0 < f < 1.0 for f in v):
            raise ValueError(f"candidates must be a non-empty list of fractions in (0, 1), got {list(v)}")
        return tuple(sorted(set(v)))

    @field_validator("min_saving")
    @classmethod
    def _saving(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"min_saving must be in [0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _selection(self) -> LowRank:
        if self.param_ratio is not None and self.macs_ratio is not None:
            raise ValueError("give param_ratio or macs_ratio, not both")
        if self.rank_selection == "sensitivity":
            if self.rank is not None:
                raise ValueError("rank_selection='sensitivity' chooses the ranks; do not also give rank")
            if self.param_ratio is None and self.macs_ratio is None:
                raise ValueError("rank_selection='sensitivity' needs a target: param_ratio or macs_ratio")
        return self


class DepthwiseSeparable(_ArchConfig):
    """Replace standard k x k Conv2d layers (groups=1, k > 1) by depthwise k x k + pointwise 1x1,
    initialised from a rank-1 SVD of each input channel's slice of the original kernel.

    Example:
        >>> from torchslim.arch.configs import DepthwiseSeparable
        >>> DepthwiseSeparable(target={"exclude": ["stem"]}).target.exclude
        ('stem',)
    """

    target: Target = Target()
