"""Recipes and pipelines: a YAML recipe (:class:`Recipe`), the runner (:func:`run`), the
accuracy-aware search (:func:`auto`) and the default demo job. The report formats plug in
from :mod:`torchslim.report` (``import torchslim`` registers them).

Example:
    >>> from torchslim.recipe import Recipe
    >>> r = Recipe.from_yaml("model: {zoo: lenet5-mnist}\\nstages: [{type: int8_static}]")
    >>> r.stages[0].type
    'int8_static'
"""

from torchslim.recipe import deep_compression  # noqa: F401 - registers the deep_compression stage
from torchslim.recipe.auto_result import AutoResult, Candidate
from torchslim.recipe.demo import DEFAULT_RECIPE, run_demo
from torchslim.recipe.result import REPORT_WRITERS, RunResult, StageRecord, register_report_writer
from torchslim.recipe.runner import run
from torchslim.recipe.schema import Recipe, load_recipe
from torchslim.recipe.search import auto
from torchslim.recipe.stages import (
    FAMILIES,
    Finetune,
    Stage,
    StageContext,
    register_family,
    stage_types,
)
from torchslim.recipe.yamlio import RecipeError

__all__ = [
    "AutoResult", "Candidate", "auto", "DEFAULT_RECIPE", "FAMILIES", "Finetune", "REPORT_WRITERS", "Recipe", "RecipeError", "RunResult", "Stage",
    "StageContext", "StageRecord", "load_recipe", "register_family", "register_report_writer", "run", "run_demo",
    "stage_types",
]
