"""Pareto fronts of measured models: higher metric is better, lower cost (latency, bytes) is.

Example:
    >>> from torchslim.recipe.pareto import front, dominates
    >>> pts = {"a": (0.99, 1.0), "b": (0.98, 0.5), "c": (0.97, 0.6), "d": (0.95, 0.2)}
    >>> front(pts)
    ['d', 'b', 'a']
    >>> dominates(pts["b"], pts["c"])
    True
"""

from __future__ import annotations

from collections.abc import Mapping

Point = tuple[float, float]  # (metric, cost)
EPS = 1e-12


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on both axes and better on one."""
    return a[0] >= b[0] - EPS and a[1] <= b[1] + EPS and (a[0] > b[0] + EPS or a[1] < b[1] - EPS)


def front(points: Mapping[str, Point]) -> list[str]:
    """Names of the non-dominated points, cheapest first."""
    keep = [n for n, p in points.items() if not any(dominates(q, p) for m, q in points.items() if m != n)]
    return sorted(keep, key=lambda n: (points[n][1], -points[n][0]))


def covered(by: Mapping[str, Point], points: Mapping[str, Point]) -> dict[str, str | None]:
    """For each of ``points``: a point of ``by`` that dominates it or equals it, else None.

    Example:
        >>> covered({"x": (0.9, 1.0)}, {"y": (0.8, 2.0), "z": (0.95, 0.5)})
        {'y': 'x', 'z': None}
    """
    out: dict[str, str | None] = {}
    for n, p in points.items():
        hit = [m for m, q in by.items() if dominates(q, p) or q == p]
        out[n] = min(hit, key=lambda m: by[m][1]) if hit else None
    return out


def best_within(points: Mapping[str, Point], min_metric: float) -> str | None:
    """The cheapest point whose metric is at least ``min_metric`` (None if none is).

    Example:
        >>> best_within({"a": (0.99, 1.0), "b": (0.9, 0.1)}, 0.95)
        'a'
    """
    ok = [n for n, p in points.items() if p[0] >= min_metric - EPS]
    return min(ok, key=lambda n: (points[n][1], -points[n][0])) if ok else None
