"""The depth-pruning config: which whole blocks to remove, by which criterion, how many.

Example:
    >>> from torchslim.prune.depth.config import BlockPrune
    >>> BlockPrune(blocks=2).to_dict()["importance"]
    'output'
"""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationInfo, field_validator, model_validator

from torchslim.core.config import Config

BLOCK_IMPORTANCES = ("output", "random")


class BlockPrune(Config):
    """Remove whole residual branches (``x + f(x) -> x``; in a block with a projection shortcut
    either side may go), found from the dependency graph, so their ops disappear with their MACs:
    what per-op overhead (torch eager at batch 1, small models) needs.

    - ``blocks``: how many to remove; or ``target_macs``: remove until the MACs are at most
      this fraction of the original (the last removal may overshoot: blocks are coarse); or
      ``target_latency`` (with ``runtime``): remove until the latency measured on that runtime
      is at most this fraction of the original's, timed beside it in every round: the target
      for small models whose time is per-op overhead, where MACs say little.
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
    target_latency: float | None = None
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

    @field_validator("target_macs", "target_latency")
    @classmethod
    def _fraction(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            what = "MACs" if info.field_name == "target_macs" else "latency"
            raise ValueError(f"{info.field_name} is the fraction of the {what} to keep, in (0, 1]; got {v}")
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
        given = [k for k in ("blocks", "target_macs", "target_latency") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give blocks or target_macs or target_latency (how much depth to remove), exactly one of "
                             f"them; got {', '.join(given) or 'none'}")
        if self.target_latency is not None and self.runtime is None:
            raise ValueError("target_latency needs runtime='torch' or 'onnxruntime' (where to measure it)")
        if not self.overshoot and self.target_macs is None:
            raise ValueError("overshoot=False needs target_macs (the MACs floor it must not cross)")
        return self
