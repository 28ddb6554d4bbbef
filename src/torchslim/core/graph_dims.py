"""Tied dimensions: a union-find over channel index spaces, with repeats and concatenation.

Every tensor dimension in a captured graph gets a :data:`Layout`: a list of segments
``(comp, k, n)``: ``n`` consecutive indices whose index ``i`` is index ``i // k`` of the
component ``comp``. Most dimensions are one segment with ``k = 1``; ``flatten`` of
``(C, H, W)`` gives ``[(c, H*W, C*H*W)]``; ``cat`` of two tensors gives two segments; a split of
``H*hd`` channels into ``(H, hd)`` makes the channel component a repeat (``k = hd``) of a coarser
head component. Tying two components says "index i of one is index i of the other" (or
``i // k`` when one is a repeat of the other). A pinned component must keep its size.

Example:
    >>> dims = DimUnion()
    >>> a, b = dims.new(8), dims.new(8)
    >>> dims.tie_layouts([(a, 1, 8)], [(b, 1, 8)], "add")
    >>> dims.find(a)[0] == dims.find(b)[0]
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

Segment = tuple[int, int, int]  # (component, repeat k, number of indices n)
Layout = list[Segment]


@dataclass
class CompInfo:
    """What is known about a root component: pinned reasons and the modules that split it into heads."""

    pinned: list[str] = field(default_factory=list)
    head_splits: list[tuple[str, int]] = field(default_factory=list)  # (module name, head_dim)


class DimUnion:
    """Union-find over index spaces: ``find(c) -> (root, k)`` with index ``i`` of ``c`` being
    index ``i // k`` of ``root``."""

    def __init__(self) -> None:
        self.parent: dict[int, tuple[int, int]] = {}
        self.size: dict[int, int] = {}
        self.info: dict[int, CompInfo] = {}
        self.untouched: set[int] = set()  # parameter dims not tied to anything yet

    def new(self, size: int) -> int:
        """A fresh component of ``size`` indices."""
        c = len(self.size)
        self.size[c] = int(size)
        self.info[c] = CompInfo()
        return c

    def fresh(self, size: int) -> Layout:
        """A layout of one fresh component."""
        return [(self.new(size), 1, int(size))]

    def find(self, c: int) -> tuple[int, int]:
        """(root, k): index i of ``c`` is index ``i // k`` of ``root``."""
        k = 1
        path = []
        while c in self.parent:
            p, kp = self.parent[c]
            path.append((c, k))
            k *= kp
            c = p
        for node, k_before in path:  # path compression: node -> root with k / k_before
            self.parent[node] = (c, k // k_before)
        return c, k

    def pin(self, c: int, reason: str) -> None:
        """Pin the component of ``c``: its size must not change."""
        root, _ = self.find(c)
        if reason not in self.info[root].pinned:
            self.info[root].pinned.append(reason)

    def pin_layout(self, layout: Layout, reason: str) -> None:
        """Pin every component in ``layout``."""
        for c, _, _ in layout:
            self.pin(c, reason)

    def is_pinned(self, c: int) -> bool:
        """True if the component of ``c`` is pinned."""
        return bool(self.info[self.find(c)[0]].pinned)

    def bind(self, lays: list[Layout], i: int, layout: Layout, reason: str) -> None:
        """Tie ``lays[i]`` (a parameter dim) to ``layout``; an untouched parameter dim simply
        takes the layout, so it can follow concatenated channels."""
        mine = lays[i]
        if len(mine) == 1 and mine[0][0] in self.untouched and len(layout) > 1:
            self.untouched.discard(mine[0][0])
            lays[i] = list(layout)
        else:
            self.tie_layouts(mine, layout, reason)

    def _attach(self, child: int, parent: int, k: int) -> None:
        self.untouched.discard(child)
        self.untouched.discard(parent)
        self.parent[child] = (parent, k)
        info, pinfo = self.info[child], self.info[parent]
        pinfo.pinned += [r for r in info.pinned if r not in pinfo.pinned]
        pinfo.head_splits += info.head_splits

    def tie_scaled(self, a: int, b: int, k: int, reason: str) -> None:
        """Index ``i`` of component ``a`` is index ``i // k`` of component ``b``."""
        ra, ka = self.find(a)
        rb, kb = self.find(b)
        kb *= k  # i of a -> ra i//ka ; i of a -> rb i//kb
        if ra == rb:
            if ka != kb:
                self.pin(ra, f"{reason}: inconsistent channel mapping")
            return
        if ka == kb:
            self._attach(rb, ra, 1)
        elif kb % ka == 0:  # rb is coarser: ra index j -> rb j // (kb/ka)
            self._attach(ra, rb, kb // ka)
        elif ka % kb == 0:
            self._attach(rb, ra, ka // kb)
        else:
            self.pin(ra, f"{reason}: incompatible channel blocks")
            self.pin(rb, f"{reason}: incompatible channel blocks")

    def tie_layouts(self, x: Layout, y: Layout, reason: str) -> None:
        """Tie two dimensions of equal size index by index."""
        if sum(n for *_, n in x) != sum(n for *_, n in y):
            self.pin_layout(x, f"{reason}: size mismatch")
            self.pin_layout(y, f"{reason}: size mismatch")
            return
        if [n for *_, n in x] != [n for *_, n in y]:
            self.pin_layout(x + y, f"{reason}: concatenated channels that do not line up")
            return
        for (ca, ka, _), (cb, kb, _) in zip(x, y, strict=True):
            if ka == kb:
                self.tie_scaled(ca, cb, 1, reason)
            elif ka == 1:
                self.tie_scaled(ca, cb, kb, reason)
            elif kb == 1:
                self.tie_scaled(cb, ca, ka, reason)
            elif kb % ka == 0:  # index i -> ca i//ka, cb i//kb = (i//ka)//(kb/ka)
                self.tie_scaled(ca, cb, kb // ka, reason)
            elif ka % kb == 0:
                self.tie_scaled(cb, ca, ka // kb, reason)
            else:
                self.pin_layout([(ca, ka, 0), (cb, kb, 0)], f"{reason}: incompatible channel blocks")

    def coarsen(self, layout: Layout, inner: int, module: str, reason: str) -> Layout | None:
        """The layout of the leading dim when a dim of ``layout`` is split into ``(n / inner, inner)``,
        or None (the dim is pinned) when that cannot be expressed."""
        if len(layout) != 1:
            self.pin_layout(layout, f"{reason}: split of concatenated channels")
            return None
        c, k, n = layout[0]
        if inner % k == 0:
            coarse = self.new(n // inner)
            self.tie_scaled(c, coarse, inner // k, reason)
            if inner > 1:
                root, _ = self.find(coarse)
                self.info[root].head_splits.append((module, inner))
            return [(coarse, 1, n // inner)]
        if k % inner == 0:
            return [(c, k // inner, n // inner)]
        self.pin(c, f"{reason}: split does not follow channel blocks")
        return None


def repeat(layout: Layout, times: int) -> Layout:
    """The layout of a dim merged with ``times`` inner indices per index (flatten)."""
    return [(c, k * times, n * times) for c, k, n in layout]
