"""``torchslim.save`` / ``torchslim.load``: the ``.slim`` artifact for any model torchslim made.

The file format lives in :mod:`torchslim.export.slim` (which may import only ``core``); this
module adds what needs the layers above it:

- the module types of the techniques, registered with :mod:`torchslim.core.persist` so a fresh
  instance of the original architecture is rebuilt to them: ``QuantModule``/``QuantInput``
  (int8 fake quantization; weights stored as int8 with their scales), ``WeightOnlyLinear``
  (int8/int4 with group scales), ``LowRankLinear``/``LowRankConv``/``DepthwiseSeparableConv``
  (factorized layers) and ``WeightMask`` (pruning masks). ``SharedWeight`` (k-means codebook and
  indices) registers itself in :mod:`torchslim.quant.sharing`;
- zoo names: ``load(path, model="lenet300-mnist")`` builds the fresh instance, and a model whose
  class is a zoo architecture is saved with its zoo name, so ``load(path)`` alone works.

Example:
    >>> import tempfile, pathlib, torch
    >>> import torchslim as slim
    >>> from torchslim import zoo
    >>> from torchslim.recipe.artifact import load, save
    >>> net = slim.quantize(zoo.model("lenet300-mnist"), slim.WeightOnly(bits=4, group_size=64))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "lenet300-int4.slim"
    >>> report = save(net, path)
    >>> back = load(path)                      # the zoo name is in the file
    >>> x = zoo.example_inputs("lenet300-mnist", batch_size=4)
    >>> torch.equal(back(x), net(x)), report.file_bytes < 0.2 * 4 * 266_610
    (True, True)
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from torchslim import zoo
from torchslim.arch.depthwise import DepthwiseSeparableConv
from torchslim.arch.lowrank import LowRankConv, LowRankLinear
from torchslim.core.errors import InputError
from torchslim.core.persist import (
    ModuleType,
    ScaledInt,
    apply_attrs,
    base_type,
    register_module_type,
    simple_attrs,
)
from torchslim.export.slim import SlimReport, load_slim, read_container, save_slim
from torchslim.prune.unstructured.masks import WeightMask
from torchslim.quant.fake_quant import QuantInput, QuantModule
from torchslim.quant.sharing import SharedWeight  # noqa: F401 - registers its module type
from torchslim.quant.weight_only import WeightOnlyLinear


def _inner(original: nn.Module | None, make_child: Any) -> nn.Module:
    return original if original is not None else make_child("module")


def _quant_hints(m: QuantModule) -> dict[str, ScaledInt]:
    if not (m.calibrated or m.mode == "dynamic"):  # calibration passes use the float weight
        return {}
    return {"module.weight": ScaledInt("w_scale", 0, -m.w_qmax, m.w_qmax)}


def _replaces_inner(m: nn.Module) -> str:
    return base_type(m.module).__name__


register_module_type(ModuleType(
    key="quant_module", cls=QuantModule, replaces=_replaces_inner, record=simple_attrs, hints=_quant_hints,
    build=lambda rec, original, make_child: apply_attrs(QuantModule(
        _inner(original, make_child), mode=rec.get("mode", "static"), reduce_range=rec.get("w_qmax") == 63,
        observer=rec.get("observer_kind", "minmax")), rec),
))
register_module_type(ModuleType(
    key="quant_input", cls=QuantInput, replaces=_replaces_inner, record=simple_attrs,
    build=lambda rec, original, make_child: apply_attrs(
        QuantInput(_inner(original, make_child), observer=rec.get("observer_kind", "minmax")), rec),
))


def _weight_only(rec: dict[str, Any], original: nn.Module | None, make_child: Any) -> nn.Module:
    n, k, groups = rec["out_features"], rec["in_features"], rec["groups"]
    bias = torch.zeros(n) if rec["bias"] else None
    return apply_attrs(WeightOnlyLinear(torch.zeros(n, k, dtype=torch.int8), torch.ones(n, groups), bias, rec["bits"]),
                       {"torchslim_precision": rec.get("torchslim_precision", f"int{rec['bits']}")})


register_module_type(ModuleType(
    key="weight_only_linear", cls=WeightOnlyLinear, replaces=lambda m: "Linear",
    record=lambda m: {**simple_attrs(m), "groups": m.scales.shape[1], "bias": m.bias is not None},
    build=_weight_only,
))
register_module_type(ModuleType(
    key="low_rank_linear", cls=LowRankLinear, replaces=lambda m: "Linear",
    record=lambda m: {"in_features": m.in_features, "rank": m.rank, "out_features": m.out_features,
                      "bias": m.second.bias is not None},
    build=lambda rec, original, make_child: LowRankLinear(rec["in_features"], rec["rank"], rec["out_features"], bias=rec["bias"]),
))
register_module_type(ModuleType(
    key="low_rank_conv", cls=LowRankConv, replaces=lambda m: type(m.first).__name__, record=lambda m: {"rank": m.rank},
    build=lambda rec, original, make_child: LowRankConv(make_child("first"), make_child("second"), rec["rank"]),
))
register_module_type(ModuleType(
    key="depthwise_separable_conv", cls=DepthwiseSeparableConv, replaces=lambda m: "Conv2d", record=lambda m: {},
    build=lambda rec, original, make_child: DepthwiseSeparableConv(make_child("depthwise"), make_child("pointwise")),
))
register_module_type(ModuleType(
    key="weight_mask", cls=WeightMask, replaces=lambda m: None, record=lambda m: {},
    build=lambda rec, host, make_child: WeightMask(torch.ones_like(getattr(host, rec.get("tensor", "weight")), dtype=torch.bool)),
))


def zoo_name_of(model: nn.Module) -> str | None:
    """The zoo entry whose architecture is ``model``'s class (None if none is).

    Example:
        >>> from torchslim import zoo
        >>> zoo_name_of(zoo.model("lenet5-mnist"))
        'lenet5-mnist'
    """
    found = [n for n in zoo.names() if zoo.info(n).architecture is type(model)]
    return found[0] if len(found) == 1 else None


def save(model: nn.Module, path: str | os.PathLike[str], *, float16: bool = False, zoo_name: str | None = None) -> SlimReport:
    """Write ``model`` (pruned, quantized, weight-shared, factorized, or plain) to a ``.slim``
    file, atomically; returns the size report (file bytes, per-tensor encodings and bits).

    ``float16=True`` stores float weights as float16 (lossy). ``zoo_name`` (default: found from
    the model's class) lets :func:`load` rebuild without being given a model.

    Example:
        >>> import tempfile, torch
        >>> save(torch.nn.Linear(4, 2), tempfile.mkdtemp() + "/lin.slim").file_bytes > 0
        True
    """
    name = zoo_name if zoo_name is not None else zoo_name_of(model)
    if name is not None:
        zoo.info(name)  # an unknown name fails now, not at load time
    return save_slim(model, path, float16=float16, info={"zoo": name} if name else {})


def load(path: str | os.PathLike[str], model: nn.Module | str | None = None) -> nn.Module:
    """Load a ``.slim`` file into a new model, in eval mode. ``model`` is a fresh instance of
    the original architecture (left untouched), a zoo name, or None for the zoo name saved in
    the file. A bad file raises :class:`~torchslim.export.slim.SlimFileError`; a model that does
    not match raises an InputError naming the first mismatching module.

    Example:
        >>> import tempfile, torch
        >>> p = tempfile.mkdtemp() + "/lin.slim"
        >>> _ = save(torch.nn.Linear(4, 2), p)
        >>> load(p, torch.nn.Linear(4, 2)).out_features
        2
    """
    if model is None:
        manifest, _ = read_container(path)
        name = (manifest.get("info") or {}).get("zoo")
        if not name:
            raise InputError(f"{str(path)!r} does not name a zoo model: pass model= (a fresh instance of its architecture)")
        model = name
    if isinstance(model, str):
        model = zoo.model(model)
    return load_slim(path, model)


__all__ = ["load", "save", "zoo_name_of"]
