"""Build one candidate of the search: a plan (prune level, low-rank ratio, int8 or mixed
precision) applied to the original model, with distillation from the original as recovery.

Example:
    >>> from torchslim.recipe.candidates import Plan
    >>> Plan(prune=0.5, quant="int8").label, Plan(prune=0.5, quant="int8").techniques
    ('prune 0.50 + int8', ('prune', 'int8'))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from torch import nn

from torchslim.arch import LowRank, factorize
from torchslim.core.targets import Target
from torchslim.prune import StructuredPrune, prune
from torchslim.quant import Int8Static, mixed_precision, quantize
from torchslim.recipe.sensitivity import Row, prune_only, tiers
from torchslim.recipe.stages import StageContext, recover

TIER_WEIGHT = (1.3, 1.0, 0.6)  # robust, middle, fragile groups: prune harder where it hurts less
MAX_GROUP_SPARSITY = 0.85


@dataclass(frozen=True)
class Plan:
    """What to do: ``prune`` level (0: none), ``low_rank`` weight ratio (None: none), and
    ``quant``: ``fp32``, ``int8``, ``mixed`` (int8 with the most sensitive layers float, for
    accuracy) or ``int8-gated`` (int8 with each layer kept float where that is faster on ONNX
    Runtime, measured layer by layer)."""

    prune: float = 0.0
    low_rank: float | None = None
    quant: str = "fp32"

    @property
    def techniques(self) -> tuple[str, ...]:
        """The techniques the plan uses, in the order applied."""
        out = []
        if self.prune:
            out.append("prune")
        if self.low_rank is not None:
            out.append("low_rank")
        if self.quant != "fp32":
            out.append("int8")
        return tuple(out)

    @property
    def label(self) -> str:
        """e.g. ``prune 0.50 + low-rank 0.50 + int8``."""
        parts = []
        if self.prune:
            parts.append(f"prune {self.prune:.2f}")
        if self.low_rank is not None:
            parts.append(f"low-rank {self.low_rank:.2f}")
        if self.quant != "fp32":
            parts.append(self.quant)
        return " + ".join(parts) or "fp32"

    @property
    def trained_part(self) -> Plan:
        """The part that needs recovery training (everything but quantization)."""
        return Plan(prune=self.prune, low_rank=self.low_rank)


def tiered_prune(model: nn.Module, level: float, groups: dict[str, list[str]], rows: list[Row],
                 example_inputs: Any, round_to: int | None = 8) -> nn.Module:
    """Structured pruning at ``level`` with per-group ratios from sensitivity: robust groups
    lose ``1.3 x level`` of their channels, middle ones ``level``, fragile ones ``0.6 x level``;
    kept widths are multiples of ``round_to`` (ONNX Runtime's CPU kernels block channels by 8
    or 16: odd widths can make a pruned model *slower*)."""
    tier = tiers(rows)
    out = model
    for t, weight in enumerate(TIER_WEIGHT):
        chosen = [g for g in groups if tier.get(g, 2) == t]
        ratio = min(MAX_GROUP_SPARSITY, level * weight)
        if not chosen or ratio <= 0:
            continue
        config = StructuredPrune(sparsity=ratio, ignore=prune_only(groups, chosen), round_to=round_to)
        out = prune(out, config, example_inputs=example_inputs)
    return out


def low_rank_layers(rows: list[Row], budget_pt: float) -> list[str]:
    """Layers worth factorizing: those whose drop alone stays within half the budget."""
    return [r["layer"] for r in rows if r["drop_pt"] is not None and r["drop_pt"] <= budget_pt / 2]


@dataclass
class Builder:
    """Builds plans on one workload, caching the recovered (trained) part of each plan."""

    original: nn.Module
    ctx: StageContext
    groups: dict[str, list[str]]
    sens: dict[str, list[Row]]
    budget_pt: float
    epochs: int
    lr: float

    def __post_init__(self) -> None:
        self._trained: dict[Plan, nn.Module] = {}

    def trained(self, plan: Plan) -> nn.Module:
        """The original with ``plan``'s prune / low-rank part applied and recovered."""
        key = plan.trained_part
        if key in self._trained:
            return self._trained[key]
        model = copy.deepcopy(self.original)
        if key.prune:
            model = tiered_prune(model, key.prune, self.groups, self.sens.get("prune", []), self.ctx.example_inputs)
        if key.low_rank is not None:
            layers = low_rank_layers(self.sens.get("low_rank", []), self.budget_pt)
            if layers:
                model = factorize(model, LowRank(param_ratio=key.low_rank, target=Target(include=tuple(layers))))
        if key.prune or key.low_rank is not None:
            model = recover(model, self.ctx, epochs=self.epochs, lr=self.lr, teacher=True, description=key.label)
        self._trained[key] = model.eval()
        return self._trained[key]

    def build(self, plan: Plan) -> nn.Module:
        """The candidate model of ``plan`` (a new model; cached trained parts are not changed)."""
        model = self.trained(plan)
        if plan.quant == "int8":
            return quantize(model, Int8Static(), calibration=self.ctx.train).eval()
        if plan.quant == "int8-gated":
            return quantize(model, Int8Static(), calibration=self.ctx.train, gate="latency",
                            example_inputs=self.ctx.example_inputs, threads=self.ctx.threads).eval()
        if plan.quant == "mixed":
            out, _ = mixed_precision(model, Int8Static(), calibration=self.ctx.train, eval_data=self.ctx.val,
                                     budget=self.budget_pt / 100, metric=self.ctx.metric)
            return out.eval()
        return copy.deepcopy(model)
