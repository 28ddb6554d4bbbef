"""Pipeline stages: a stage is any registered config, dispatched to its family's verb.

A recipe stage is ``{type: <registered config name>, ...config fields, ...runner options}``.
The type resolves through core's ``CONFIGS`` registry; the config class's package picks the
family (``torchslim.prune`` -> ``prune``, ``torchslim.quant`` -> ``quantize``, ``torchslim.arch``
-> ``factorize``, ``torchslim.distill`` -> ``distill``, ``torchslim.recipe`` -> the runner's own
stages such as :class:`Finetune`). A newly registered config therefore becomes a stage with no
change here. Keys that are not config fields are the family's runner options (see
:class:`StageOptions` and its subclasses); anything else is refused.

Example:
    >>> from torchslim.recipe.stages import parse_stage
    >>> stage, problems = parse_stage({"type": "structured_prune", "sparsity": 0.5, "guard": False})
    >>> type(stage.config).__name__, stage.options.guard, problems
    ('StructuredPrune', False, [])
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from torchslim.arch import factorize
from torchslim.core.config import CONFIGS, Config, handler_for, register_handler
from torchslim.core.errors import ConfigError, UnknownNameError
from torchslim.core.modules import set_module
from torchslim.core.registry import Registry
from torchslim.core.shapes import rebuild, record_shapes
from torchslim.distill import KD, distill
from torchslim.measure.accuracy import BatchMetric
from torchslim.prune import StructuredPrune, prune
from torchslim.prune.unstructured.masks import MASK_SUFFIX, load_masked_state_dict
from torchslim.quant import QAT, Int8Static, mixed_precision, quantize
from torchslim.quant.fake_quant import quant_modules
from torchslim.quant.qat import prepare_qat
from torchslim.quant.report import report_of
from torchslim.quant.sharing import SharedWeight
from torchslim.recipe.yamlio import Path_, Problem
from torchslim.train import fit


class StageOptions(BaseModel):
    """Runner options every stage takes: ``name`` (a label) and ``guard`` (check the accuracy
    budget after this stage; ``false`` defers the check to the next guarded stage, which then
    rolls back the whole group, e.g. pruning together with the fine-tuning that recovers it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    guard: bool = True


class TrainOptions(StageOptions):
    """Prune and arch stages: ``epochs`` of fine-tuning right after the stage (none by default),
    at ``lr``, distilling from the original model when ``teacher: original``."""

    epochs: int | None = Field(default=None, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    teacher: Literal["original", "none"] = "original"


class QuantOptions(StageOptions):
    """Quant stages: ``gate: latency`` keeps float where int8 is slower on ONNX Runtime;
    ``mixed_precision`` keeps the most sensitive layers float until the recipe's budget holds;
    ``teacher`` is the distillation teacher of QAT; ``epochs`` / ``lr`` fine-tune configs whose
    handler trains (weight sharing's centroids)."""

    gate: Literal["latency"] | None = None
    mixed_precision: bool = False
    teacher: Literal["original", "none"] = "original"
    epochs: int | None = Field(default=None, ge=1)
    lr: float = Field(default=1e-4, gt=0)


class DistillOptions(StageOptions):
    """Distillation stages: ``epochs`` of training from the original model (the teacher)."""

    epochs: int = Field(default=3, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    teacher: Literal["original"] = "original"


@dataclass
class StageContext:
    """What a stage may use besides the model: the original (the teacher), example inputs,
    data, the metric, and a folder for its training checkpoints."""

    original: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    train: Any
    val: Any
    threads: int = 1
    metric: BatchMetric | None = None
    workdir: Path | None = None
    progress: bool = True
    budget: float = 0.01  # the accuracy drop still allowed, as a fraction (for mixed precision)
    notes: list[str] = field(default_factory=list)


Apply = Callable[[nn.Module, Config, Any, StageContext], nn.Module]
Rebuild = Callable[[nn.Module, Config, Any, StageContext, dict[str, Any]], nn.Module]


@dataclass(frozen=True)
class Family:
    """How stages of one package run: ``apply`` does the work; ``rebuild`` recreates the
    *structure* cheaply (no training, no search) so a saved state dict loads into it on resume;
    ``record`` notes what ``rebuild`` needs (JSON) after ``apply``."""

    name: str
    options: type[StageOptions]
    apply: Apply
    rebuild: Rebuild
    record: Callable[[nn.Module], dict[str, Any]] = lambda model: {}


FAMILIES: Registry[Family] = Registry("stage family")


def register_family(package: str, family: Family) -> Family:
    """Make configs defined under ``package`` (a module prefix) into stages run by ``family``."""
    FAMILIES.add(package, family)
    return family


def family_of(cls: type[Config]) -> Family:
    """The family of the longest package prefix of ``cls.__module__``."""
    for prefix in sorted(FAMILIES.names(), key=len, reverse=True):
        if cls.__module__ == prefix or cls.__module__.startswith(prefix + "."):
            return FAMILIES.get(prefix)
    raise ConfigError(f"config type {cls.type_key!r} (from {cls.__module__}) is not a pipeline stage: "
                      f"stages come from {', '.join(FAMILIES.names())}")


@dataclass(frozen=True)
class Stage:
    """One validated stage: its config and its runner options."""

    config: Config
    options: StageOptions

    @property
    def type(self) -> str:
        """The config's registered name."""
        return self.config.type_key

    @property
    def label(self) -> str:
        """The stage's name, or its type."""
        return self.options.name or self.type

    @property
    def family(self) -> Family:
        """The family that runs it."""
        return family_of(type(self.config))

    def to_dict(self) -> dict[str, Any]:
        """``{type, ...fields}`` as written in a recipe (defaults left out); reads back equal."""
        fields = self.config.model_dump(mode="json", exclude_defaults=True)
        return {"type": self.type, **fields, **self.options.model_dump(mode="json", exclude_defaults=True)}


def _problems(e: ValidationError, base: Path_) -> list[Problem]:
    return [Problem((*base, *err["loc"]), err["msg"].removeprefix("Value error, ")) for err in e.errors()]


def parse_stage(raw: Any, base: Path_ = ()) -> tuple[Stage | None, list[Problem]]:
    """Validate one raw stage mapping; ``(stage, [])`` or ``(None, problems)``."""
    if not isinstance(raw, dict) or "type" not in raw:
        return None, [Problem(base, f"a stage is a mapping with a 'type' key, got {raw!r}")]
    try:
        cls = CONFIGS.get(str(raw["type"]))
        fam = family_of(cls)
    except (UnknownNameError, ConfigError) as e:
        return None, [Problem((*base, "type"), str(e))]
    body = {k: v for k, v in raw.items() if k != "type"}
    own = {k: v for k, v in body.items() if k in cls.model_fields}
    opts = {k: v for k, v in body.items() if k not in cls.model_fields}
    unknown = sorted(k for k in opts if k not in fam.options.model_fields)
    if unknown:
        known = sorted({*cls.model_fields, *fam.options.model_fields})
        return None, [Problem((*base, k), f"unknown key for a {cls.type_key} stage; known: {', '.join(known)}")
                      for k in unknown]
    problems: list[Problem] = []
    config = options = None
    try:
        config = cls.model_validate(own)
    except ValidationError as e:
        problems += _problems(e, base)
    except ConfigError as e:  # configs that raise ConfigError themselves (arch)
        problems.append(Problem(base, str(e)))
    try:
        options = fam.options.model_validate(opts)
    except ValidationError as e:
        problems += _problems(e, base)
    if problems or config is None or options is None:
        return None, problems
    return Stage(config, options), []


# --- shared helpers ------------------------------------------------------------------------

def recover(model: nn.Module, ctx: StageContext, *, epochs: int, lr: float, teacher: bool,
            temperature: float = 4.0, alpha: float = 0.9, description: str = "recover") -> nn.Module:
    """Fine-tune ``model`` for ``epochs``: with ``teacher``, distillation from ``ctx.original``
    (:func:`torchslim.distill.distill` with logit :class:`~torchslim.distill.KD`), else plain
    fine-tuning on the labels. Resumes from ``ctx.workdir`` after an interruption."""
    options: dict[str, Any] = {"val_data": ctx.val, "lr": lr, "progress": ctx.progress, "description": description}
    if ctx.metric is not None:
        options["metric"] = ctx.metric
    if ctx.workdir is not None:
        options["checkpoint_dir"] = ctx.workdir / "fit"
    if teacher:
        return distill(model, ctx.original, ctx.train, KD(temperature=temperature, alpha=alpha), epochs=epochs,
                       inplace=True, **options).eval()
    fit(model, ctx.train, epochs=epochs, **options)
    return model.eval()


# --- prune ---------------------------------------------------------------------------------

def _apply_prune(model: nn.Module, config: Config, opts: TrainOptions, ctx: StageContext) -> nn.Module:
    if isinstance(config, StructuredPrune):
        data = ctx.train if config.importance == "taylor" else None
        out = prune(model, config, example_inputs=ctx.example_inputs, **({"data": data} if data else {}))
        if opts.epochs:
            recover(out, ctx, epochs=opts.epochs, lr=opts.lr, teacher=opts.teacher == "original", description=opts.name or "prune")
        return out.eval()
    schedule = getattr(config, "type_key", "") in ("gradual_prune", "lottery_ticket")
    if schedule:  # these prune while training: the handler runs fit itself
        training = {"train_data": ctx.train, "epochs": opts.epochs or 1, "lr": opts.lr, "progress": ctx.progress,
                    "val_data": ctx.val}
        return prune(model, config, example_inputs=ctx.example_inputs, **training).eval()
    out = prune(model, config, example_inputs=ctx.example_inputs)
    if opts.epochs:  # masks are parametrizations: the pruned weights stay zero while training
        recover(out, ctx, epochs=opts.epochs, lr=opts.lr, teacher=opts.teacher == "original", description=opts.name or "prune")
    return out.eval()


def _rebuild_prune(before: nn.Module, config: Config, opts: Any, ctx: StageContext, record: dict[str, Any]) -> nn.Module:
    model = copy.deepcopy(before)
    if "shapes" in record:
        return rebuild(model, record["shapes"])
    return model  # masks are attached by load_state (their keys are in the state dict)


def _record_prune(model: nn.Module) -> dict[str, Any]:
    return {"shapes": record_shapes(model)} if hasattr(model, "slim_prune_report") else {}


# --- quant ---------------------------------------------------------------------------------

def _apply_quant(model: nn.Module, config: Config, opts: QuantOptions, ctx: StageContext) -> nn.Module:
    teacher = ctx.original if opts.teacher == "original" else None
    extra: dict[str, Any] = {}
    if isinstance(config, QAT):
        extra = {"train_data": ctx.train, "val_data": ctx.val, "teacher": teacher, "progress": ctx.progress}
    elif opts.epochs:
        extra = {"train_data": ctx.train, "epochs": opts.epochs, "lr": opts.lr, "val_data": ctx.val, "progress": ctx.progress}
    if opts.mixed_precision:
        out, table = mixed_precision(model, config, calibration=ctx.train, eval_data=ctx.val, budget=max(ctx.budget, 0.0), metric=ctx.metric)
        ctx.notes.append(f"mixed precision: {sum(1 for r in table if r['step'] == 'keep float')} layer(s) kept float")
        return out.eval()
    if opts.gate and not isinstance(config, Int8Static):
        raise ConfigError(f"gate: latency applies to int8_static stages, not {config.type_key}")
    gate = {"gate": opts.gate, "example_inputs": ctx.example_inputs, "threads": ctx.threads} if opts.gate else {}
    out = quantize(model, config, calibration=ctx.train, **gate, **extra).eval()
    report = report_of(out)
    if opts.gate and report is not None:
        ctx.notes += [f"kept float {k}: {v}" for k, v in report.kept_float.items()]
    return out


def _rebuild_quant(before: nn.Module, config: Config, opts: Any, ctx: StageContext, record: dict[str, Any]) -> nn.Module:
    if record.get("float"):
        return copy.deepcopy(before)  # the latency gate kept the float model
    kept = set(record.get("quantized", []))
    one = [ctx.example_inputs]
    model = prepare_qat(copy.deepcopy(before), config, one) if isinstance(config, QAT) else quantize(before, config, calibration=one)
    for name, layer in quant_modules(model):
        if name not in kept:  # mixed precision or the gate put it back in float
            set_module(model, name, layer.module)
    return model


def _record_quant(model: nn.Module) -> dict[str, Any]:
    report = report_of(model)
    gated_float = report is not None and "(model)" in report.kept_float
    return {"quantized": [name for name, _ in quant_modules(model)], "float": gated_float}


# --- arch ----------------------------------------------------------------------------------

def _apply_arch(model: nn.Module, config: Config, opts: TrainOptions, ctx: StageContext) -> nn.Module:
    out = factorize(model, config)
    if opts.epochs:
        recover(out, ctx, epochs=opts.epochs, lr=opts.lr, teacher=opts.teacher == "original", description=opts.name or "arch")
    return out.eval()


def _rebuild_arch(before: nn.Module, config: Config, opts: Any, ctx: StageContext, record: dict[str, Any]) -> nn.Module:
    return factorize(before, config)  # deterministic: the same ranks from the same weights


# --- distill -------------------------------------------------------------------------------

def _apply_distill(model: nn.Module, config: Config, opts: DistillOptions, ctx: StageContext) -> nn.Module:
    options: dict[str, Any] = {"val_data": ctx.val, "lr": opts.lr, "progress": ctx.progress,
                               "description": opts.name or config.type_key}
    if ctx.workdir is not None:
        options["checkpoint_dir"] = ctx.workdir / "fit"
    return distill(model, ctx.original, ctx.train, config, epochs=opts.epochs, inplace=True, **options).eval()


def _same(before: nn.Module, config: Config, opts: Any, ctx: StageContext, record: dict[str, Any]) -> nn.Module:
    return copy.deepcopy(before)


# --- the runner's own stages ---------------------------------------------------------------

class Finetune(Config):
    """Recovery: ``epochs`` of fine-tuning at ``lr``; with ``teacher: original`` the original
    model is distilled in (logit KD at ``temperature``: ``(1 - alpha) * CE + alpha * soft``).

    Example:
        >>> Finetune(epochs=2).to_dict()["teacher"]
        'original'
    """

    epochs: int = Field(default=3, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    teacher: Literal["original", "none"] = "original"
    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=0.9, ge=0, le=1)


@register_handler(Finetune)
def _finetune(model: nn.Module, config: Finetune, *, ctx: StageContext) -> nn.Module:
    return recover(model, ctx, epochs=config.epochs, lr=config.lr, teacher=config.teacher == "original",
                   temperature=config.temperature, alpha=config.alpha, description="finetune")


def _apply_builtin(model: nn.Module, config: Config, opts: StageOptions, ctx: StageContext) -> nn.Module:
    return handler_for(config, "stage")(model, config, ctx=ctx).eval()


def _record_shared(model: nn.Module) -> dict[str, Any]:
    """Where Deep Compression left shared-weight layers, and their codebook and index shapes."""
    return {"shared": {name: {"centroids": len(m.codebook), "indices": list(m.indices.shape),
                              "dtype": str(m.indices.dtype).removeprefix("torch.")}
                       for name, m in model.named_modules() if isinstance(m, SharedWeight)}}


def _rebuild_shared(before: nn.Module, config: Config, opts: Any, ctx: StageContext, record: dict[str, Any]) -> nn.Module:
    """Empty shared-weight wrappers of the recorded shapes (the saved state fills them)."""
    model = copy.deepcopy(before)
    for name, spec in record.get("shared", {}).items():
        indices = torch.zeros(spec["indices"], dtype=getattr(torch, spec["dtype"]))
        set_module(model, name, SharedWeight(model.get_submodule(name), torch.zeros(spec["centroids"]), indices))
    return model


register_family("torchslim.prune", Family("prune", TrainOptions, _apply_prune, _rebuild_prune, _record_prune))
register_family("torchslim.quant", Family("quant", QuantOptions, _apply_quant, _rebuild_quant, _record_quant))
register_family("torchslim.arch", Family("arch", TrainOptions, _apply_arch, _rebuild_arch))
register_family("torchslim.distill", Family("distill", DistillOptions, _apply_distill, _same))
register_family("torchslim.recipe", Family("recipe", StageOptions, _apply_builtin, _same))
register_family("torchslim.recipe.deep_compression",
                Family("deep_compression", StageOptions, _apply_builtin, _rebuild_shared, _record_shared))


def load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load a saved stage state into a rebuilt model (masks attached first); strict."""
    if any(k.endswith(MASK_SUFFIX) for k in state):
        return load_masked_state_dict(model, state, strict=True)
    model.load_state_dict(state, strict=True)
    return model


def stage_types() -> Iterable[str]:
    """Every registered config name that is a stage."""
    for name in CONFIGS.names():
        try:
            family_of(CONFIGS.get(name))
        except ConfigError:
            continue
        yield name
