"""The depth-pruning config: which whole blocks to remove, by which criterion, how many.

Example:
    >>> from torchslim.prune.depth.config import BlockPrune
    >>> BlockPrune(blocks=2).to_dict()["importance"]
    'output'
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from torchslim.core.config import Config

BLOCK_IMPORTANCES = ("output", "random")


class BlockPrune(Config):
    """Remove whole residual branches (``x + f(x) -> x``; in a block with a projection shortcut
    either side may go), found from the dependency graph, so their ops disappear with their MACs:
    what per-op overhead (torch eager at batch 1, small models) needs.

    - ``blocks``: how many to remove; or ``target_macs``: remove until the MACs are at most
      this fraction of the original (the last removal may overshoot: blocks are coarse).
    - ``overshoot``: with ``target_macs``, ``False`` never removes a block whose removal takes
      the MACs below the target: it stops when every candidate left would, so channel pruning
      (``StructuredPrune(target_macs=...)``) can close the rest of the gap exactly.
    - ``importance``: ``output`` (the relative change of the model's output on ``data=``
      batches, or on ``example_inputs``, when the branch is dropped; re-measured after every
      removal) | ``random``.
    - ``runtime``: ``"torch"`` | ``"onnxruntime"``: rank candidates by importance per measured
      latency saved on that runtime (``threads`` threads, batch as in ``example_inputs``).
    - ``layers``: also consider shape-preserving modules that are not residual (a stride-1
      depthwise conv + BN + activation, a whole block whose input and output shapes agree):
      they are replaced by the identity. Off by default: that removes a computation with no
      bypass around it, which fine-tuning has to make up for.
    - ``ignore``: target patterns (names, ``re:``, ``type:``) of modules never removed, nor
      rewritten (for a residual branch: its owner module).
    - ``batches``: how many ``data`` batches the output criterion reads.

    Example:
        >>> try:
        ...     BlockPrune()
        ... except ValueError as e:
        ...     print("give blocks or target_macs" in str(e))
        True
    """

    blocks: int | None = None
    target_macs: float | None = None
    importance: str = "output"
    runtime: Literal["torch", "onnxruntime"] | None = None
    threads: int = 1
    overshoot: bool = True
    layers: bool = False
    ignore: tuple[str, ...] = ()
    batches: int = 4
    seed: int = 0

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"blocks (how many to remove) must be >= 1, got {v}")
        return v

    @field_validator("target_macs")
    @classmethod
    def _fraction(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise ValueError(f"target_macs is the fraction of MACs to keep, in (0, 1]; got {v}")
        return v

    @field_validator("importance")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in BLOCK_IMPORTANCES:
            raise ValueError(f"unknown block importance {v!r}; known: {', '.join(BLOCK_IMPORTANCES)}")
        return v

    @field_validator("threads", "batches")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"threads and batches must be >= 1, got {v}")
        return v

    @field_validator("ignore", mode="before")
    @classmethod
    def _tuple(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_target(self) -> BlockPrune:
        if (self.blocks is None) == (self.target_macs is None):
            raise ValueError("give blocks or target_macs (how much depth to remove), exactly one of them")
        if not self.overshoot and self.target_macs is None:
            raise ValueError("overshoot=False needs target_macs (the MACs floor it must not cross)")
        return self
