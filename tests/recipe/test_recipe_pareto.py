"""Pareto fronts and per-layer sensitivity tiers (pure functions)."""

from __future__ import annotations

from torchslim.recipe.pareto import best_within, covered, dominates, front
from torchslim.recipe.sensitivity import prune_only, tiers


def test_front_keeps_exactly_the_non_dominated_points() -> None:
    pts = {"a": (0.99, 1.0), "b": (0.98, 0.5), "c": (0.97, 0.6), "d": (0.95, 0.2), "e": (0.99, 1.0)}
    assert front(pts) == ["d", "b", "a", "e"]  # equal points do not dominate each other
    assert dominates(pts["b"], pts["c"]) and not dominates(pts["a"], pts["e"])
    assert covered({"b": pts["b"]}, {"c": pts["c"], "a": pts["a"]}) == {"c": "b", "a": None}
    assert best_within(pts, 0.98) == "b" and best_within(pts, 0.999) is None


def test_tiers_and_ignore_lists() -> None:
    rows = [{"layer": g, "drop_pt": d} for g, d in (("g1", 5.0), ("g2", 0.1), ("g3", None), ("g4", 1.0))]
    assert tiers(rows) == {"g2": 0, "g4": 0, "g1": 1, "g3": 2}
    groups = {"g1": ["conv1", "bn1"], "g2": ["conv2"], "g3": ["fc"]}
    assert prune_only(groups, ["g2"]) == ("bn1", "conv1", "fc")
