"""The ``BlockPrune`` handler: find removable blocks -> trial -> importance -> remove, one block
at a time (importance is measured again after each removal).

Candidates are the residual branches of :func:`torchslim.core.graph_blocks.residual_branches`
and, with ``layers=True``, shape-preserving modules (called once, one tensor in, a tensor of
the same shape out, holding a conv or linear layer; not such a layer alone). Each is removed on a copy first and run
on the example inputs; one whose removal fails or changes an output shape is reported as not
removable, with the reason, and never removed.

Example:
    >>> import torch
    >>> from torch import nn
    >>> import torchslim as slim
    >>> from torchslim.prune.depth import BlockPrune
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.f = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    ...     def forward(self, x):
    ...         return x + self.f(x)
    >>> net = nn.Sequential(Block(), Block(), nn.Linear(8, 2))
    >>> small = slim.prune(net, BlockPrune(blocks=1), example_inputs=torch.randn(4, 8))
    >>> sorted(type(m).__name__ for m in small), small(torch.zeros(3, 8)).shape
    (['Block', 'DroppedBranch', 'Linear'], torch.Size([3, 2]))
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.errors import ConfigError, InputError
from torchslim.core.graph_blocks import residual_branches
from torchslim.core.inputs import as_tuple, batch_of
from torchslim.core.modules import get_module, set_module
from torchslim.core.targets import Target, check_names_exist, select
from torchslim.measure.macs import count_macs
from torchslim.prune.depth.config import BlockPrune
from torchslim.prune.depth.rewrite import DroppedBranch, SkippedLayer, find_add
from torchslim.prune.structured.importance import prediction
from torchslim.prune.structured.latency import time_variants
from torchslim.prune.structured.report import leaves_shape

MAC_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


@dataclass
class Candidate:
    """A removable block: ``kind`` ``"residual"`` (``owner`` loses a branch) or ``"layer"``
    (``owner`` becomes the identity); ``params`` (residual) names the branch's parameters
    relative to the owner."""

    name: str
    kind: str
    owner: str
    params: frozenset[str] = frozenset()

    def apply(self, model: nn.Module) -> None:
        """Remove the block from ``model`` in place."""
        m = get_module(model, self.owner)
        if self.kind == "layer":
            set_module(model, self.owner, SkippedLayer(type(m).__name__))
        else:
            add, operand = find_add(m, set(self.params))
            set_module(model, self.owner, DroppedBranch(m, add, operand).train(m.training))


@dataclass
class BlockReport:
    """``candidates``: name -> {kind, importance, macs (after removal), saving (fraction of the
    latency)} in the last round, ``rounds`` the same for every round (one removal each);
    ``not_removable``: name -> reason; ``removed``: names in the order removed; ``macs``:
    before and after; ``latency``: with ``target_latency``, the measured latency after the last
    removal as a fraction of the original's (timed beside it in that round)."""

    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    rounds: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    not_removable: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    macs: tuple[int, int] | None = None
    latency: float | None = None

    def summary(self) -> str:
        """A few lines a person can read.

        Example:
            >>> BlockReport(removed=["layer1.0[conv1]"]).summary()
            'removable: (none)\\nremoved: layer1.0[conv1]'
        """
        lines = ["removable: " + (", ".join(self.candidates) or "(none)")]
        if self.not_removable:
            lines.append("not removable: " + "; ".join(f"{k}: {v}" for k, v in self.not_removable.items()))
        if self.removed:
            lines.append("removed: " + ", ".join(self.removed))
        if self.macs:
            lines.append(f"MACs: {self.macs[0]:,} -> {self.macs[1]:,}")
        if self.latency is not None:
            lines.append(f"latency: {self.latency:.2f} of the original's")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"candidates": self.candidates, "rounds": self.rounds, "not_removable": self.not_removable,
                "removed": self.removed,
                "macs": list(self.macs) if self.macs else None, "latency": self.latency}


def _ignored(model: nn.Module, patterns: tuple[str, ...]) -> set[str]:
    if not patterns:
        return set()
    check_names_exist(model, Target(include=patterns), where="BlockPrune.ignore")
    names: set[str] = set()
    for p in patterns:
        chosen = select(model, Target(include=(p,)))
        if not chosen:
            raise ConfigError(f"BlockPrune.ignore: pattern {p!r} matches no module of {type(model).__name__}")
        names.update(n for n, _ in chosen)
    return names


def _layer_candidates(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[Candidate]:
    calls: dict[str, list[bool]] = {}

    def hook(name: str) -> Any:
        def fn(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            ok = (not kwargs and len(args) == 1 and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor)
                  and out.shape == args[0].shape)
            calls.setdefault(name, []).append(ok)
        return fn

    mods = [(n, m) for n, m in model.named_modules() if n and not isinstance(m, (DroppedBranch, SkippedLayer, *MAC_LAYERS))
            and any(isinstance(s, MAC_LAYERS) for s in m.modules())]
    handles = [m.register_forward_hook(hook(n), with_kwargs=True) for n, m in mods]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return [Candidate(n, "layer", n) for n, _ in mods if calls.get(n) == [True]]


def candidates(model: nn.Module, inputs: tuple[torch.Tensor, ...], config: BlockPrune) -> tuple[list[Candidate], dict[str, str]]:
    """The blocks ``config`` may remove from ``model`` (not yet tried), and those it may not (with reasons)."""
    found, not_removable = residual_branches(model, inputs)
    ignored = _ignored(model, config.ignore)
    out = []
    for b in found:
        owner = get_module(model, b.owner)
        if isinstance(owner, (DroppedBranch, SkippedLayer)):
            not_removable[b.name()] = f"{b.owner!r} already lost a branch (one per module)"
        elif b.owner in ignored:
            not_removable[b.name()] = "ignored by config"
        else:
            rel = frozenset(p[len(b.owner) + 1:] for p in b.params)
            out.append(Candidate(b.name(), "residual", b.owner, rel))
    if config.layers:
        out += [c for c in _layer_candidates(model, inputs) if c.owner not in ignored]
    return out, not_removable


def _trial(model: nn.Module, c: Candidate, inputs: tuple[torch.Tensor, ...], want: list[tuple[int, ...]]) -> nn.Module | str:
    trial = copy.deepcopy(model)
    try:
        c.apply(trial)
        with torch.no_grad():
            got = leaves_shape(trial(*inputs))
    except Exception as e:  # noqa: BLE001 - the reason is reported
        return f"removing it breaks the model: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    return trial if got == want else f"removing it changes the output shapes {want} -> {got}"


def preflight_blocks(model: nn.Module, example_inputs: Any, config: BlockPrune | None = None) -> BlockReport:
    """What depth pruning could remove from ``model``, without changing it: every candidate is
    removed on a copy and run; the ones that fail or change an output shape are listed with
    the reason.

    Example:
        >>> import torch
        >>> preflight_blocks(torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.zeros(1, 2)).summary()
        'removable: (none)'
    """
    config = config or BlockPrune(blocks=1)
    inputs = as_tuple(example_inputs)
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        want = leaves_shape(model(*inputs))
    cands, not_removable = candidates(model, inputs, config)
    report = BlockReport(not_removable=dict(not_removable))
    for c in cands:
        got = _trial(model, c, inputs, want)
        if isinstance(got, str):
            report.not_removable[c.name] = got
        else:
            report.candidates[c.name] = {"kind": c.kind, "macs": count_macs(got, inputs)[0]}
    return report


def _output_change(ref: list[torch.Tensor], trial: nn.Module, batches: list[tuple[torch.Tensor, ...]]) -> float:
    """Relative squared change of the output: sum ||y' - y||^2 / sum ||y||^2 over the batches."""
    num = den = 0.0
    with torch.no_grad():
        for y, xs in zip(ref, batches, strict=True):
            y2 = prediction(trial(*xs)).float()
            num += float((y2 - y).pow(2).sum())
            den += float(y.pow(2).sum())
    return num / max(den, 1e-12)


def _batches(data: Iterable[Any] | None, inputs: tuple[torch.Tensor, ...], n: int) -> list[tuple[torch.Tensor, ...]]:
    if data is None:
        return [inputs]
    out = []
    for item in data:
        if len(out) >= n:
            break
        out.append(batch_of(item)[0])
    if not out:
        raise InputError("BlockPrune: data= holds no batches")
    return out


@register_handler(BlockPrune)
def block_prune(model: nn.Module, config: BlockPrune, *, example_inputs: Any = None,
                data: Iterable[Any] | None = None, **options: Any) -> nn.Module:
    """Handler of :class:`BlockPrune` (called by ``prune``); the report is left on
    ``model.slim_block_report``."""
    if example_inputs is None:
        raise ConfigError("BlockPrune needs example_inputs= (a tensor or a tuple of tensors) to capture the graph")
    if options:
        raise ConfigError(f"BlockPrune: unknown option(s) {sorted(options)}; known: data")
    inputs = as_tuple(example_inputs)
    was = model.training
    model.eval()
    batches = _batches(data, inputs, config.batches)
    with torch.no_grad():
        want = leaves_shape(model(*inputs))
    m0 = count_macs(model, inputs)[0]
    goal = config.target_macs * m0 if config.target_macs is not None else None
    report = BlockReport()
    gen = torch.Generator().manual_seed(config.seed)
    original = copy.deepcopy(model) if config.target_latency is not None else None
    macs, fraction = m0, 1.0
    while _short_of_goal(config, len(report.removed), macs, goal, fraction):
        cands, not_removable = candidates(model, inputs, config)
        report.not_removable.update(not_removable)
        trials: dict[str, tuple[Candidate, nn.Module]] = {}
        for c in cands:
            got = _trial(model, c, inputs, want)
            if isinstance(got, str):
                report.not_removable[c.name] = got
            else:
                trials[c.name] = (c, got)
        if not trials:
            if not report.removed:
                raise InputError(_nothing_removable(model, report.not_removable, config))
            rest = "; ".join(f"{k}: {v}" for k, v in report.not_removable.items()) or "(none: no residual branch is left)"
            warnings.warn(f"BlockPrune: removed {len(report.removed)} block(s) ({', '.join(report.removed)}), then "
                          f"nothing more was removable ({_goal(config)} not reached); not removable: {rest}",
                          stacklevel=3)
            break
        with torch.no_grad():
            ref = [prediction(model(*xs)).float() for xs in batches]
        report.candidates = {}
        for name, (c, trial) in trials.items():
            imp = _output_change(ref, trial, batches) if config.importance == "output" else float(torch.rand(1, generator=gen))
            report.candidates[name] = {"kind": c.kind, "importance": imp, "macs": count_macs(trial, inputs)[0]}
        if config.runtime is not None:
            reference = {"original": original} if original is not None else {}
            ms = time_variants({"current": model, **reference, **{n: t for n, (_, t) in trials.items()}}, inputs,
                               config.runtime, threads=config.threads)
            for name in trials:
                report.candidates[name]["saving"] = 1 - ms[name] / ms["current"]
                if original is not None:
                    report.candidates[name]["latency"] = ms[name] / ms["original"]
        report.rounds.append(report.candidates)
        allowed = [n for n, c in report.candidates.items() if config.overshoot or goal is None or c["macs"] >= goal]
        if not allowed:
            break  # overshoot=False: every removal left would cross target_macs
        best = min(allowed, key=lambda n: _rank(report.candidates[n], config))
        trials[best][0].apply(model)
        report.removed.append(best)
        macs = report.candidates[best]["macs"]
        fraction = report.candidates[best].get("latency", fraction)
    report.latency = fraction if original is not None else None
    report.macs = (m0, count_macs(model, inputs)[0])
    model.train(was)
    model.slim_block_report = report
    return model


def _short_of_goal(config: BlockPrune, removed: int, macs: int, goal: float | None, fraction: float) -> bool:
    """Whether another block should go: fewer than ``blocks`` removed, MACs above ``goal``, or
    the latency (a fraction of the original's, measured) above ``target_latency``."""
    if config.blocks is not None:
        return removed < config.blocks
    if config.target_macs is not None:
        return goal is not None and macs > goal
    return fraction > float(config.target_latency or 0.0)


def _goal(config: BlockPrune) -> str:
    if config.blocks is not None:
        return f"blocks={config.blocks}"
    return f"target_macs={config.target_macs}" if config.target_macs is not None else f"target_latency={config.target_latency}"


def _nothing_removable(model: nn.Module, not_removable: dict[str, str], config: BlockPrune) -> str:
    """The error when ``model`` has no block ``config`` may remove, with every candidate's reason."""
    looked = "residual branches (x + f(x) inside a submodule)" + (" or shape-preserving layers" if config.layers else "")
    msg = f"BlockPrune: {type(model).__name__} has no removable block ({_goal(config)}); looked for {looked}"
    if not_removable:
        msg += "; not removable: " + "; ".join(f"{k}: {v}" for k, v in not_removable.items())
    elif not config.layers:
        msg += "; layers=True also considers shape-preserving layers (replaced by the identity)"
    return msg


def _rank(c: dict[str, Any], config: BlockPrune) -> float:
    """Lower goes first: the importance, or the importance per latency saved (a candidate that
    saves no time ranks after every one that does)."""
    if config.runtime is None:
        return c["importance"]
    saving = c["saving"]
    return (c["importance"] + 1e-12) / saving if saving > 1e-3 else 1e12 * (1 + c["importance"])
