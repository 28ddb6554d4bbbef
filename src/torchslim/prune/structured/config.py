"""The structured-pruning config: what to remove, by which criterion, how much.

Example:
    >>> from torchslim.prune.structured.config import StructuredPrune
    >>> StructuredPrune(sparsity=0.5, importance="l1").to_dict()["importance"]
    'l1'
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from torchslim.core.config import Config

IMPORTANCES = ("l1", "l2", "taylor", "bn_scale", "random")


class StructuredPrune(Config):
    """Remove whole channels, neurons and attention heads so tensors really shrink.

    - ``sparsity``: fraction of each group's units to remove (``scope="layer"``) or of all
      units (``scope="global"``), in [0, 1).
    - ``importance``: ``l1`` | ``l2`` | ``taylor`` (needs ``data=`` batches) | ``bn_scale`` | ``random``.
    - ``target_macs`` / ``target_params``: fraction of the original MACs / parameters to keep,
      in (0, 1]; the sparsity is then searched until the measured count meets the target.
    - ``round_to``: kept channel counts become multiples of it (e.g. 8).
    - ``ignore``: target patterns (names, ``re:``, ``type:``) whose output width is kept; the
      classifier is always kept because model outputs never change shape.
    - ``heads``: remove whole attention heads (False: leave attention blocks as they are).
    - ``max_sparsity``: no group loses more than this fraction (global scope and searches).

    Example:
        >>> try:
        ...     StructuredPrune(sparsity=1.0)
        ... except ValueError as e:
        ...     print("sparsity must be in [0, 1)" in str(e))
        True
    """

    sparsity: float = 0.5
    importance: str = "l2"
    scope: Literal["layer", "global"] = "layer"
    target_macs: float | None = None
    target_params: float | None = None
    round_to: int | None = None
    ignore: tuple[str, ...] = ()
    heads: bool = True
    max_sparsity: float = 0.9
    seed: int = 0

    @field_validator("sparsity")
    @classmethod
    def _ratio(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {v}")
        return v

    @field_validator("max_sparsity")
    @classmethod
    def _max_ratio(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError(f"max_sparsity must be in (0, 1), got {v}")
        return v

    @field_validator("importance")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in IMPORTANCES:
            raise ValueError(f"unknown importance {v!r}; known: {', '.join(IMPORTANCES)}")
        return v

    @field_validator("target_macs", "target_params")
    @classmethod
    def _fraction(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise ValueError(f"a MACs/params target is the fraction to keep, in (0, 1]; got {v}")
        return v

    @field_validator("round_to")
    @classmethod
    def _round(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"round_to must be >= 1, got {v}")
        return v

    @field_validator("ignore", mode="before")
    @classmethod
    def _tuple(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_target(self) -> StructuredPrune:
        if self.target_macs is not None and self.target_params is not None:
            raise ValueError("give target_macs or target_params, not both")
        return self
