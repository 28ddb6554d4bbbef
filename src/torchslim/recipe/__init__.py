"""Pipelines over the techniques. For now: the default demo job."""

from torchslim.recipe.demo import run_demo

__all__ = ["run_demo"]
