"""The structured-pruning config: what to remove, by which criterion, how much.

Example:
    >>> from torchslim.prune.structured.config import StructuredPrune
    >>> StructuredPrune(sparsity=0.5, importance="l1").to_dict()["importance"]
    'l1'
"""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationInfo, field_validator, model_validator

from torchslim.core.config import Config

IMPORTANCES = ("l1", "l2", "taylor", "bn_scale", "random")


class StructuredPrune(Config):
    """Remove whole channels, neurons and attention heads so tensors really shrink.

    - ``sparsity``: fraction of each group's units to remove (``scope="layer"``) or of all
      units (``scope="global"``: heads ranked among heads, channels among channels), in [0, 1).
    - ``importance``: ``l1`` | ``l2`` | ``taylor`` (needs ``data=``: ``(x, y)`` batches, or
      unlabelled ``x`` for encoders) | ``bn_scale`` | ``random``.
    - ``target_macs`` / ``target_params``: fraction of the original MACs / parameters to keep,
      in (0, 1]; the sparsity is then searched until the measured count meets the target.
    - ``round_to``: kept channel counts become multiples of it (e.g. 8, or 16 for ONNX Runtime's
      AVX-512 convolution blocks); attention head counts are not rounded.
    - ``ignore``: target patterns (names, ``re:``, ``type:``) whose output width is kept; the
      classifier is always kept because model outputs never change shape.
    - ``heads``: remove whole attention heads (False: leave attention blocks as they are).
    - ``max_sparsity``: no group loses more than this fraction (global scope and searches).
    - ``runtime``: ``"torch"`` | ``"onnxruntime"`` makes the allocation latency-aware: the
      latency of the whole model is measured on that runtime (batch as in ``example_inputs``,
      ``threads`` threads) with each group at a few candidate counts (``latency_points``,
      multiples of ``round_to`` or 8), and channels go where they buy the most measured time per
      importance lost, until ``target_macs`` and/or ``target_latency`` hold (always a global
      ranking, whatever ``scope``). ``latency_rounds=2`` measures the table a second time around
      the first solution (slower, closer estimate). The report's ``latency`` holds the table,
      the estimate and the measured latency before and after.
    - ``target_latency``: fraction of the unpruned model's measured latency to keep, in (0, 1];
      needs ``runtime``.

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
    runtime: Literal["torch", "onnxruntime"] | None = None
    target_latency: float | None = None
    threads: int = 1
    latency_points: int = 8
    latency_rounds: int = 1

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

    @field_validator("target_macs", "target_params", "target_latency")
    @classmethod
    def _fraction(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise ValueError(f"a MACs/params/latency target is the fraction to keep, in (0, 1]; got {v}")
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

    @field_validator("threads", "latency_points", "latency_rounds")
    @classmethod
    def _counts(cls, v: int, info: ValidationInfo) -> int:
        low = {"threads": 1, "latency_points": 2, "latency_rounds": 1}[info.field_name]
        if v < low:
            raise ValueError(f"{info.field_name} must be >= {low}, got {v}")
        return v

    @model_validator(mode="after")
    def _one_target(self) -> StructuredPrune:
        if self.target_macs is not None and self.target_params is not None:
            raise ValueError("give target_macs or target_params, not both")
        if self.target_latency is not None and self.runtime is None:
            raise ValueError("target_latency needs runtime='torch' or 'onnxruntime' (where to measure it)")
        if self.runtime is not None:
            if self.target_params is not None:
                raise ValueError("latency-aware pruning (runtime=...) meets target_macs and/or target_latency, "
                                 "not target_params")
            if self.target_macs is None and self.target_latency is None:
                raise ValueError("runtime=... needs a target: target_macs and/or target_latency")
        return self
