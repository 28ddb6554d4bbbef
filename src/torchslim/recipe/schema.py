"""The recipe schema: YAML <-> validated pydantic objects, checked before any work starts.

A recipe names the model, the data, the accuracy budget, how to measure, ordered stages and
what to write. Unknown keys are refused; every problem names its key and YAML line; files it
names must exist; the only code imported is a factory the user wrote (``package.module:fn``).

Example:
    >>> from torchslim.recipe.schema import Recipe
    >>> r = Recipe.from_yaml('''
    ... model: {zoo: lenet5-mnist}
    ... budget: {max_accuracy_drop: 1.0}
    ... stages:
    ...   - {type: structured_prune, sparsity: 0.5, guard: false}
    ...   - {type: finetune, epochs: 2}
    ...   - {type: int8_static}
    ... ''')
    >>> [s.type for s in r.stages], r.dataset
    (['structured_prune', 'finetune', 'int8_static'], 'mnist_5k')
    >>> Recipe.from_yaml(r.to_yaml()) == r
    True
"""

from __future__ import annotations

import copy
import importlib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from torchslim import data as data_sets
from torchslim import zoo
from torchslim.core.errors import UnknownNameError
from torchslim.recipe.stages import Stage, parse_stage
from torchslim.recipe.yamlio import Path_, Problem, RecipeError, line_of, load_yaml

BUNDLED_HF = "minilm"  # ``zoo: minilm``: all-MiniLM-L6-v2 from the optional torchslim[minilm] extra


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """Exactly one of: ``zoo`` (a zoo name, or ``minilm``), ``hf`` (a local Hugging Face
    folder), ``factory`` (``package.module:function`` plus ``weights``). ``trained: false``
    takes a zoo model's untrained weights (smoke runs). Example inputs come from the data."""

    zoo: str | None = None
    hf: str | None = None
    factory: str | None = None
    weights: str | None = None
    trained: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in ("zoo", "hf", "factory") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of zoo, hf, factory (got {', '.join(given) or 'none'})")
        if self.weights and not self.factory:
            raise ValueError("weights goes with factory (zoo and hf models bring their own)")
        if self.factory and ":" not in self.factory:
            raise ValueError(f"factory {self.factory!r}: expected 'package.module:function'")
        return self

    @property
    def is_text(self) -> bool:
        """A Hugging Face text encoder (measured by embedding cosine)."""
        return bool(self.hf) or self.zoo == BUNDLED_HF


class DataSpec(_Strict):
    """At most one of ``name`` (a bundled set; default: the zoo model's own), ``factory``
    (``package.module:function`` returning train/val/test loaders) or ``text: sentences`` (a
    bundled set of varied English sentences for text encoders). ``*_samples`` take a fixed
    random subset of a split (smaller runs)."""

    name: str | None = None
    factory: str | None = None
    text: Literal["sentences"] | None = None
    batch_size: int = Field(default=64, ge=1)
    seed: int = 0
    shift: int = Field(default=0, ge=0)
    train_samples: int | None = Field(default=None, ge=1)
    val_samples: int | None = Field(default=None, ge=1)
    test_samples: int | None = Field(default=None, ge=1)
    max_length: int = Field(default=128, ge=4)

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [k for k in ("name", "factory", "text") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give at most one of name, factory, text (got {', '.join(given)})")
        return self


class Budget(_Strict):
    """``max_accuracy_drop`` in points (1.0 = one percentage point of the metric) against the
    original model measured the same way; ``metric``: ``top1`` or ``cosine`` (embeddings)."""

    max_accuracy_drop: float = Field(default=1.0, ge=0)
    metric: Literal["top1", "cosine"] | None = None


class MeasureSpec(_Strict):
    """Where and how each stage is measured (accuracy, size, MACs, latency)."""

    runtime: Literal["onnxruntime", "torch"] = "onnxruntime"
    threads: int = Field(default=1, ge=1)
    batch_size: int = Field(default=1, ge=1)
    latency_seconds: float = Field(default=1.0, ge=0)
    latency_runs: int = Field(default=50, ge=5)
    memory: bool = False


class OutputSpec(_Strict):
    """What the run writes: the final ONNX file, the ``.slim`` artifact (when available) and
    the report formats. ``dir`` defaults to ``out/<recipe name>``."""

    dir: str | None = None
    onnx: bool = True
    slim: bool = True
    report: tuple[Literal["html", "markdown", "json"], ...] = ("html", "markdown", "json")


def dataset_of(model: ModelSpec, data: DataSpec) -> str | None:
    """The bundled data set a model spec and data spec use (None for a factory or text).

    Example:
        >>> dataset_of(ModelSpec(zoo="cnn1d-mnist1d"), DataSpec())
        'mnist1d'
    """
    if data.name or data.factory or data.text:
        return data.name
    if model.zoo and model.zoo in zoo.names():
        return zoo.info(model.zoo).dataset
    return None


def resolve(path: str, base_dir: str | os.PathLike[str] = ".") -> Path:
    """``path`` (``~`` expanded) relative to ``base_dir`` unless absolute."""
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else Path(base_dir) / p


def model_spec(text: str, weights: str | None = None) -> ModelSpec:
    """A model spec from the command line's form: ``zoo:NAME``, ``hf:FOLDER`` or
    ``package.module:function`` (with ``weights``).

    Example:
        >>> model_spec("zoo:resnet-mnist").zoo
        'resnet-mnist'
    """
    kind, _, rest = text.partition(":")
    if kind == "zoo":
        return ModelSpec(zoo=rest)
    if kind == "hf":
        return ModelSpec(hf=rest)
    return ModelSpec(factory=text, weights=weights)


class Recipe(_Strict):
    """A validated recipe; :meth:`from_yaml` / :meth:`load` build it, :meth:`to_yaml` writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    name: str = "recipe"
    description: str = ""
    model: ModelSpec
    data: DataSpec = DataSpec()
    budget: Budget = Budget()
    measure: MeasureSpec = MeasureSpec()
    stages: tuple[Stage, ...] = Field(min_length=1)
    output: OutputSpec = OutputSpec()
    base_dir: str = Field(default=".", exclude=True, repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipe) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @property
    def metric(self) -> str:
        """The metric the budget is on: ``cosine`` for text encoders, else ``top1``."""
        return self.budget.metric or ("cosine" if self.model.is_text else "top1")

    @property
    def dataset(self) -> str | None:
        """The bundled data set used (the zoo model's own unless ``data`` names another)."""
        return dataset_of(self.model, self.data)

    def resolve(self, path: str) -> Path:
        """A path from the recipe, relative to the recipe file's folder."""
        return resolve(path, self.base_dir)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (defaults of sections left out) that :meth:`from_dict` reads back equal."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        for key in ("model", "data", "budget", "measure"):
            section = getattr(self, key).model_dump(mode="json", exclude_defaults=True)
            if section or key == "model":
                out[key] = section
        out["stages"] = [s.to_dict() for s in self.stages]
        output = self.output.model_dump(mode="json", exclude_defaults=True)
        if output:
            out["output"] = output
        return out

    def to_yaml(self) -> str:
        """The recipe as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, raw: Any, *, lines: dict[Path_, int] | None = None, source: str = "recipe",
                  base_dir: str | os.PathLike[str] = ".", check_files: bool = True) -> Recipe:
        """Validate plain data (e.g. from YAML); every problem is collected into one RecipeError."""
        lines = lines or {}
        if not isinstance(raw, dict):
            raise RecipeError(source, [Problem((), f"a recipe is a mapping, got {type(raw).__name__}", 1)])
        problems: list[Problem] = []
        stages: list[Stage] = []
        raw_stages = raw.get("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            problems.append(Problem(("stages",), "a non-empty list of stages is required"))
        else:
            for i, item in enumerate(raw_stages):
                stage, found = parse_stage(item, ("stages", i))
                problems += found
                if stage is not None:
                    stages.append(stage)
        recipe = None
        try:
            recipe = cls.model_validate({**raw, "stages": stages or [None], "base_dir": str(base_dir)})
        except ValidationError as e:
            for err in e.errors():
                if err["loc"][:1] == ("stages",):
                    continue  # reported above, stage by stage
                problems.append(Problem(tuple(err["loc"]), err["msg"].removeprefix("Value error, ")))
        if recipe is not None and check_files and not problems:
            problems += check_references(recipe)
        if problems or recipe is None:
            raise RecipeError(source, [Problem(p.path, p.message, p.line or line_of(lines, p.path)) for p in problems])
        return recipe

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "recipe", base_dir: str | os.PathLike[str] = ".",
                  overrides: dict[str, Any] | None = None, check_files: bool = True) -> Recipe:
        """Parse YAML text safely and validate it; ``overrides`` (dotted keys, e.g.
        ``{"stages.1.epochs": 1}``) are applied to the data first."""
        raw, lines = load_yaml(text, source)
        raw = apply_overrides(raw, overrides or {}, source)
        return cls.from_dict(raw, lines=lines, source=source, base_dir=base_dir, check_files=check_files)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, overrides: dict[str, Any] | None = None) -> Recipe:
        """Read and validate the recipe file at ``path`` (relative paths inside it are
        relative to its folder)."""
        p = Path(path)
        if not p.is_file():
            raise RecipeError(str(p), [Problem((), "recipe file not found")])
        return cls.from_yaml(p.read_text(), source=str(p), base_dir=p.parent, overrides=overrides)


def apply_overrides(raw: Any, overrides: dict[str, Any], source: str = "recipe") -> Any:
    """A copy of ``raw`` with each dotted key set (list items by index: ``stages.0.sparsity``).

    Example:
        >>> apply_overrides({"stages": [{"epochs": 3}]}, {"stages.0.epochs": 1})
        {'stages': [{'epochs': 1}]}
    """
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node, parts = out, key.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(source, [Problem(tuple(parts[:i + 1]), f"override {key!r}: no list item {part}")])
                idx = int(part)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise RecipeError(source, [Problem(tuple(parts[:i]), f"override {key!r}: not a mapping or list")])
    return out


def _check_factory(spec: str, path: Path_) -> list[Problem]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)  # the user's own code, named by them
    except ImportError as e:
        return [Problem(path, f"cannot import {module_name!r}: {e}")]
    if not callable(getattr(module, attr, None)):
        return [Problem(path, f"{module_name} has no callable {attr!r}")]
    return []


def check_references(r: Recipe) -> list[Problem]:
    """What must exist before work starts: zoo and data names, files and folders, factories."""
    problems: list[Problem] = []
    m, d = r.model, r.data
    if m.zoo and m.zoo != BUNDLED_HF and m.zoo not in zoo.names():
        problems.append(Problem(("model", "zoo"), str(UnknownNameError("zoo model", m.zoo, [*zoo.names(), BUNDLED_HF]))))
    if m.hf and not (r.resolve(m.hf) / "config.json").is_file():
        problems.append(Problem(("model", "hf"), f"no Hugging Face model folder (with config.json) at {r.resolve(m.hf)}"))
    if m.factory:
        problems += _check_factory(m.factory, ("model", "factory"))
    if m.weights and not r.resolve(m.weights).is_file():
        problems.append(Problem(("model", "weights"), f"file not found: {r.resolve(m.weights)}"))
    if d.name and d.name not in data_sets.names():
        problems.append(Problem(("data", "name"), str(UnknownNameError("data set", d.name, data_sets.names()))))
    if d.factory:
        problems += _check_factory(d.factory, ("data", "factory"))
    if m.is_text and not d.text and not d.factory:
        problems.append(Problem(("data",), "a text model needs text data: data: {text: sentences} or a factory"))
    if m.factory and not (d.name or d.factory):
        problems.append(Problem(("data",), "a factory model needs data: a bundled name or a factory"))
    if r.dataset and m.zoo and m.zoo in zoo.names():
        entry, spec = zoo.info(m.zoo), data_sets.info(r.dataset)
        if spec.input_shape != entry.input_shape:
            problems.append(Problem(("data", "name"), f"{r.dataset} inputs are {spec.input_shape}; {m.zoo} takes {entry.input_shape}"))
    return problems


def load_recipe(recipe: str | os.PathLike[str] | Recipe, overrides: dict[str, Any] | None = None) -> Recipe:
    """A :class:`Recipe` from a path or an already built recipe (overrides applied)."""
    if isinstance(recipe, Recipe):
        if not overrides:
            return recipe
        return Recipe.from_dict(apply_overrides(recipe.to_dict(), overrides), base_dir=recipe.base_dir)
    return Recipe.load(recipe, overrides=overrides)
