"""Surgery of depth pruning: a module whose residual branch is removed, and a layer replaced by
the identity. Both are registered module types, so a depth-pruned model saves and reloads
(``save_pruned`` / ``load_pruned``, the ``.slim`` artifact) from a fresh instance of the
original architecture without pickle: the file records which branch went, and the rewrite is
replayed on the fresh module.

:class:`DroppedBranch` traces the owner module with ``torch.fx``, removes the branch's nodes,
replaces the add by its other operand and compiles the edited graph into its own forward, so
the removed ops are really gone (no zeros are added at run time). It keeps the owner's children
that the edited graph still calls, under the same names (the state-dict keys do not change).

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.f, self.act = nn.Linear(4, 4), nn.ReLU()
    ...     def forward(self, x):
    ...         return self.act(x + self.f(x))
    >>> block = Block()
    >>> add, operand = find_add(block, {"f.weight", "f.bias"})
    >>> small = DroppedBranch(block, add, operand)
    >>> x = torch.randn(2, 4)
    >>> torch.equal(small(x), torch.relu(x)), [n for n, _ in small.named_children()]
    (True, ['act'])
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn

from torchslim.core.errors import InputError
from torchslim.core.graph_blocks import exclusive_branch
from torchslim.core.persist import ModuleType, register_module_type

FX_ADDS = (operator.add, operator.iadd, torch.add)


def _adds(graph: fx.Graph) -> list[fx.Node]:
    return [n for n in graph.nodes
            if ((n.op == "call_function" and n.target in FX_ADDS) or (n.op == "call_method" and n.target in ("add", "add_")))
            and "alpha" not in n.kwargs and len(n.args) == 2]


def _branch_params(root: nn.Module, branch: list[fx.Node], graph: fx.Graph) -> set[str]:
    """Parameters the branch's nodes use and no other node does."""
    def params_of(n: fx.Node) -> set[str]:
        if n.op == "call_module":
            return {f"{n.target}.{p}" for p, _ in root.get_submodule(str(n.target)).named_parameters()}
        if n.op == "get_attr" and isinstance(_get(root, str(n.target)), nn.Parameter):
            return {str(n.target)}
        return set()

    inside = set(branch)
    used = set().union(*(params_of(n) for n in branch)) if branch else set()
    outside = set().union(*(params_of(n) for n in graph.nodes if n not in inside))
    return used - outside


def _get(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj


def trace(module: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace`` of ``module``, with the reason in an InputError if it fails."""
    try:
        return fx.symbolic_trace(module)
    except Exception as e:  # noqa: BLE001 - reported to the caller
        raise InputError(f"torch.fx cannot trace {type(module).__name__}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''}") from None


def find_add(module: nn.Module, params: set[str]) -> tuple[int, int]:
    """(index of the add among the module's adds in its fx graph, operand) of the residual branch
    that uses exactly ``params`` (names relative to ``module``).

    Example:
        >>> import torch
        >>> class R(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.f = torch.nn.Linear(2, 2)
        ...     def forward(self, x):
        ...         return self.f(x) + x
        >>> find_add(R(), {"f.weight", "f.bias"})
        (0, 0)
    """
    gm = trace(module)
    for i, add in enumerate(_adds(gm.graph)):
        for operand in (0, 1):
            branch = exclusive_branch(add, operand)
            if branch and _branch_params(gm, branch, gm.graph) == params:
                return i, operand
    raise InputError(f"no add in {type(module).__name__}'s fx graph has a branch using exactly {sorted(params)}")


class DroppedBranch(nn.Module):
    """``original`` with the residual branch ``operand`` of its ``add``-th add removed (the add
    returns its other operand). ``replaces`` names the original class."""

    def __init__(self, original: nn.Module, add: int, operand: int) -> None:
        super().__init__()
        gm = trace(original)
        graph = gm.graph
        adds = _adds(graph)
        if not 0 <= add < len(adds) or operand not in (0, 1):
            raise InputError(f"{type(original).__name__} has {len(adds)} residual add(s); cannot drop branch "
                             f"{operand} of add {add}")
        node = adds[add]
        branch = exclusive_branch(node, operand)
        if not branch:
            raise InputError(f"operand {operand} of add {add} in {type(original).__name__} is not a branch of its own")
        node.replace_all_uses_with(node.args[1 - operand])
        graph.erase_node(node)
        for n in reversed(branch):
            graph.erase_node(n)
        graph.lint()
        used = {str(n.target).split(".")[0] for n in graph.nodes if n.op in ("call_module", "get_attr")}
        for name, child in original.named_children():
            if name in used:
                self.add_module(name, child)
        for name in sorted(used - set(self._modules)):  # the owner's own tensors, fx's tensor constants
            value = getattr(original, name, None)
            value = getattr(gm, name) if value is None else value
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            elif isinstance(value, torch.Tensor):
                self.register_buffer(name, value)
            else:
                setattr(self, name, value)
        self.replaces = type(original).__name__
        self.add_index, self.operand = add, operand
        code = graph.python_code(root_module="self")
        namespace = dict(code.globals)
        exec(compile(code.src, f"<torchslim DroppedBranch of {self.replaces}>", "exec"), namespace)  # noqa: S102 - our own generated code
        self._code = code.src
        self._forward = namespace["forward"]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._forward(self, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"replaces={self.replaces}, dropped operand {self.operand} of add {self.add_index}"


class SkippedLayer(nn.Module):
    """The identity, standing in for a removed shape-preserving layer (``replaces`` names its class).

    Example:
        >>> import torch
        >>> SkippedLayer("Sequential")(torch.ones(2)).tolist()
        [1.0, 1.0]
    """

    def __init__(self, replaces: str) -> None:
        super().__init__()
        self.replaces = replaces

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"replaces={self.replaces}"


def _build_dropped(rec: dict[str, Any], original: nn.Module | None, make_child: Any) -> nn.Module:
    if original is None:
        raise InputError("a DroppedBranch is rebuilt from the module it replaced, and the model has none there")
    return DroppedBranch(original, int(rec["add"]), int(rec["operand"]))


register_module_type(ModuleType(
    key="dropped_branch", cls=DroppedBranch, replaces=lambda m: m.replaces,
    record=lambda m: {"add": m.add_index, "operand": m.operand}, build=_build_dropped))
register_module_type(ModuleType(
    key="skipped_layer", cls=SkippedLayer, replaces=lambda m: m.replaces,
    record=lambda m: {"replaces": m.replaces}, build=lambda rec, original, make_child: SkippedLayer(str(rec["replaces"]))))
