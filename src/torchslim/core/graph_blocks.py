"""Residual branches in the captured graph: ``y = a + b`` where ``a``, ``b`` and ``y`` have the same
shape and one operand's producing subgraph (its *branch*) feeds nothing but the add. Dropping
the branch (``y = b``) keeps every shape and removes its ops, which is what depth pruning
of residual networks does (``x + f(x) -> x``, or, for a block with a projection shortcut,
``f(x) + proj(x) -> proj(x)`` and ``f(x) + proj(x) -> f(x)``).

A branch belongs to its *owner*: the innermost module whose forward holds the add. Every op
of the branch must run inside the owner (so the owner's forward can be rewritten without
touching the rest of the model); a branch that starts outside it, or an add in the model's
own forward, is reported as not removable with the reason.

The same closure (:func:`exclusive_branch`) works on any ``torch.fx`` graph: the exported
ATen graph used here and the module-level graph that the rewrite edits.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.f = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    ...     def forward(self, x):
    ...         return x + self.f(x)
    >>> net = nn.Sequential(nn.Linear(4, 4), Block(), nn.Linear(4, 2))
    >>> found, not_removable = residual_branches(net, (torch.zeros(1, 4),))
    >>> [(b.owner, b.children, b.ops) for b in found], not_removable
    ([('1', ('f',), 3)], {})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from torchslim.core.graph import capture
from torchslim.core.graph_rules import shape_of

ADDS = ("aten.add.Tensor", "aten.add_.Tensor")
REMOVABLE_OPS = ("call_function", "call_module", "call_method", "get_attr")


@dataclass(frozen=True)
class ResidualBranch:
    """One operand of a same-shape add and the ops only it uses.

    ``owner``: the module whose forward holds the add; ``operand``: 0 or 1; ``children``: the
    owner's direct children that the branch runs; ``params``: parameters only the branch
    uses; ``ops``: how many ops go with it; ``add``: the add node's name in the exported graph.
    """

    owner: str
    operand: int
    children: tuple[str, ...]
    params: tuple[str, ...]
    ops: int
    add: str

    def name(self) -> str:
        """``owner[children]``, e.g. ``layer1.0[bn1,bn2,conv1,conv2,relu]``."""
        return f"{self.owner}[{','.join(self.children)}]"


def exclusive_branch(add: fx.Node, operand: int) -> list[fx.Node]:
    """The nodes that only feed ``add.args[operand]`` (it included), in graph order: removing
    them and using the other operand for ``add`` leaves a valid graph. Placeholders (inputs,
    and parameters of exported graphs) never belong to a branch. Empty if the operand is not
    an op, is used elsewhere, or is the other operand too.

    Example:
        >>> import torch
        >>> from torch import fx
        >>> def f(x):
        ...     return x + torch.relu(x * 2)
        >>> g = fx.symbolic_trace(f).graph
        >>> add = [n for n in g.nodes if n.name == "add"][0]
        >>> [n.name for n in exclusive_branch(add, 1)], exclusive_branch(add, 0)
        (['mul', 'relu'], [])
    """
    root = add.args[operand] if len(add.args) > operand else None
    other = add.args[1 - operand] if len(add.args) > 1 - operand else None
    if not isinstance(root, fx.Node) or root is other or root.op not in REMOVABLE_OPS or set(root.users) != {add}:
        return []
    ancestors: set[fx.Node] = set()
    stack = [root]
    while stack:
        n = stack.pop()
        for a in n.all_input_nodes:
            if a not in ancestors:
                ancestors.add(a)
                stack.append(a)
    branch = {root}
    order = {n: i for i, n in enumerate(root.graph.nodes)}
    for n in sorted(ancestors, key=order.__getitem__, reverse=True):  # users before their inputs
        if n.op in REMOVABLE_OPS and n.users and all(u in branch for u in n.users):
            branch.add(n)
    return sorted(branch, key=order.__getitem__)


def _path(node: fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    return list(stack.values())[-1][0] if stack else None


def _under(path: str, owner: str) -> bool:
    return owner == "" or path == owner or path.startswith(owner + ".")


def _child_of(path: str, owner: str) -> str | None:
    rest = path[len(owner) + 1:] if owner else path
    return rest.split(".")[0] if path != owner and rest else None


def residual_branches(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[list[ResidualBranch], dict[str, str]]:
    """Removable residual branches of ``model(*inputs)`` (captured with ``torch.export``), and
    the ones that are not removable: ``name -> reason``. Only branches with parameters count
    (dropping a parameter-free branch saves little and is rarely meant).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
        >>> residual_branches(net, (torch.zeros(1, 2),))
        ([], {})
    """
    ep = capture(model, inputs)
    params = dict(ep.graph_signature.inputs_to_parameters)
    found: list[ResidualBranch] = []
    not_removable: dict[str, str] = {}
    for node in ep.graph.nodes:
        if node.op != "call_function" or str(node.target) not in ADDS or node.kwargs.get("alpha", 1) != 1:
            continue
        shapes = [shape_of(a) for a in node.args[:2]]
        if len(shapes) < 2 or shapes[0] is None or not shapes[0] == shapes[1] == shape_of(node):
            continue  # broadcasting adds (biases, position embeddings) are not residual joins
        owner = _path(node)
        for operand in (0, 1):
            branch = exclusive_branch(node, operand)
            used = sorted({params[a.name] for n in branch for a in n.all_input_nodes if a.name in params
                           and all(u in branch for u in a.users)})
            if not used:
                continue
            paths = [p for p in map(_path, branch) if p is not None]
            children = tuple(sorted({c for p in paths if owner is not None and _under(p, owner)
                                     for c in [_child_of(p, owner)] if c}))
            rb = ResidualBranch(owner or "", operand, children, tuple(used),
                                sum(1 for n in branch if n.op == "call_function" and "getitem" not in str(n.target)),
                                node.name)
            if not owner:
                not_removable[rb.name()] = "the add is in the model's own forward (only adds inside a submodule are rewritten)"
            elif any(not _under(p, owner) for p in paths):
                not_removable[rb.name()] = f"the branch runs ops outside {owner!r}, the module that holds the add"
            else:
                found.append(rb)
    return found, not_removable


def owner_call_inputs(model: nn.Module, owner: str, inputs: tuple[torch.Tensor, ...]) -> Any:
    """The positional arguments ``model(*inputs)`` passes to the submodule ``owner`` (first call).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
        >>> owner_call_inputs(net, "1", (torch.zeros(1, 2),))[0].shape
        torch.Size([1, 3])
    """
    seen: list[Any] = []
    handle = model.get_submodule(owner).register_forward_pre_hook(lambda m, args: seen.append(args) if not seen else None)
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        handle.remove()
    return seen[0] if seen else None
