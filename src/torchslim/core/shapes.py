"""Record every module's tensor shapes and integer size attributes, and resize a fresh instance
of the original architecture to such a record. Shared by structured pruning's save/load and the
``.slim`` artifact (both must rebuild a model whose tensors really shrank).

Modules the fresh instance lacks (a quantized wrapper, a low-rank pair, a weight-shared layer)
and parametrizations (pruning masks) are rebuilt through the types registered in
:mod:`torchslim.core.persist`. A record that does not fit the model fails naming the first
module that differs, and never leaves the model half-changed by a type mismatch (the
structure is checked before any tensor is resized).

Example:
    >>> import torch
    >>> small = torch.nn.Linear(3, 1)
    >>> rebuild(torch.nn.Linear(3, 2), record_shapes(small)).out_features
    1
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from torchslim.core.errors import InputError
from torchslim.core.modules import get_module, set_module
from torchslim.core.persist import (
    MODULE_TYPES,
    PLAIN_LAYERS,
    base_type,
    build_plain,
    module_type_of,
    plain_record,
)

FORMAT = "torchslim.pruned/1"
PARAMS = "parametrizations"
DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8,
              torch.int16, torch.int32, torch.int64, torch.bool)
}


def dtype_named(name: str, where: str = "") -> torch.dtype:
    """The torch dtype called ``name`` ("float32", "int8", ...); anything else is an InputError.

    Example:
        >>> dtype_named("int8")
        torch.int8
    """
    if name not in DTYPES:
        raise InputError(f"{where or 'record'}: unsupported dtype {name!r}; known: {', '.join(DTYPES)}")
    return DTYPES[name]


def int_attrs(m: nn.Module) -> dict[str, Any]:
    """The module's public integer (and integer-tuple) attributes: the sizes pruning changes.

    Example:
        >>> int_attrs(torch.nn.Linear(3, 2))
        {'in_features': 3, 'out_features': 2}
    """
    out: dict[str, Any] = {}
    for k, v in vars(m).items():
        if k.startswith("_") or k == "training" or isinstance(v, bool):
            continue
        if isinstance(v, int) or (isinstance(v, tuple) and v and all(isinstance(i, int) and not isinstance(i, bool) for i in v)):
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def structural_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``named_modules()`` without the ``parametrizations`` machinery inside parametrized layers.

    Example:
        >>> list(structural_modules(torch.nn.Sequential(torch.nn.Linear(2, 2))))
        ['', '0']
    """
    return {n: m for n, m in model.named_modules() if PARAMS not in n.split(".")}


def _tensor_entry(m: nn.Module) -> tuple[dict[str, list[int]], dict[str, str]]:
    items = [*m._parameters.items(), *m._buffers.items()]
    if parametrize.is_parametrized(m):
        items += [(k, plist.original) for k, plist in m.parametrizations.items()]
    shapes = {k: list(v.shape) for k, v in items if v is not None}
    dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in items if v is not None and v.dtype != torch.float32}
    return shapes, dtypes


def _params_entry(m: nn.Module, name: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for tensor, plist in m.parametrizations.items():
        out[tensor] = []
        for p in plist:
            mt = module_type_of(p)
            if mt is None:
                raise InputError(f"module {name!r}: its {tensor!r} has a parametrization {type(p).__name__} "
                                 f"that no module type is registered for; it cannot be saved")
            out[tensor].append({"key": mt.key, "record": mt.record(p)})
    return out


def record_shapes(model: nn.Module) -> dict[str, Any]:
    """Every module's parameter/buffer shapes and integer size attributes, plus what the
    registered module types need to rebuild the modules a fresh instance lacks.

    Example:
        >>> record_shapes(torch.nn.Linear(3, 2))["modules"][""]["tensors"]["weight"]
        [2, 3]
    """
    modules: dict[str, Any] = {}
    keyed: set[str] = set()
    for name, m in structural_modules(model).items():
        shapes, dtypes = _tensor_entry(m)
        entry: dict[str, Any] = {"type": base_type(m).__name__}
        attrs = int_attrs(m)
        for k, v in (("tensors", shapes), ("attrs", attrs), ("dtypes", dtypes)):
            if v:  # empty ones are left out: the record travels inside every .slim file
                entry[k] = v
        mt = module_type_of(m)
        if mt is not None and name:
            entry.update(key=mt.key, replaces=mt.replaces(m))
            if rec := mt.record(m):
                entry["record"] = rec
            keyed.add(name)
        elif entry["type"] in PLAIN_LAYERS and name.rpartition(".")[0] in keyed:
            plain = plain_record(m)  # a technique module's child: may have to be built
            if plain != {"bias": True}:  # build_plain's defaults
                entry["plain"] = plain
        if parametrize.is_parametrized(m):
            entry["params"] = _params_entry(m, name)
        modules[name] = entry
    return {"format": FORMAT, "model": type(model).__name__, "modules": modules}


def _mismatch(record: dict[str, Any], model: nn.Module, detail: str) -> InputError:
    return InputError(f"the record was made from another architecture ({record.get('model')} vs "
                      f"{type(model).__name__}): first mismatching module {detail}")


def _describe(entry: dict[str, Any]) -> str:
    return f"{entry['type']} (standing in for a {entry['replaces']})" if entry.get("replaces") else entry["type"]


def _replace_modules(model: nn.Module, record: dict[str, Any]) -> None:
    """Walk the record in order: build the registered modules it holds where the model has the
    plain layer they replace; any other difference is a mismatch at the first module it hits."""
    rec = record["modules"]

    def make_child(name: str) -> nn.Module:
        entry = rec.get(name)
        if entry is None:
            raise _mismatch(record, model, f"{name!r}: a technique module's child the file does not describe")
        if entry.get("key"):
            return _type(name, entry).build(entry.get("record", {}), None, lambda c: make_child(f"{name}.{c}"))
        return build_plain(entry["type"], entry.get("attrs", {}), entry.get("plain", {}), where=name)

    built: list[str] = []
    for name, entry in rec.items():
        if any(name.startswith(f"{b}.") for b in built):
            continue  # made by its parent's builder; checked with the whole tree below
        current = structural_modules(model).get(name)
        if current is None:
            raise _mismatch(record, model, f"{name!r}: the file has a {_describe(entry)}, the model has no such module")
        have = base_type(current).__name__
        if have == entry["type"] or not name:  # the root's class may differ (a subclass): its modules decide
            continue
        if not name or not entry.get("key") or have != entry.get("replaces"):
            raise _mismatch(record, model, f"{name!r}: the file has a {_describe(entry)}, the model has a {have}")
        new = _type(name, entry).build(entry.get("record", {}), current, lambda c, n=name: make_child(f"{n}.{c}"))
        set_module(model, name, new)
        built.append(name)


def _type(name: str, entry: dict[str, Any]) -> Any:
    if entry["key"] not in MODULE_TYPES:
        raise InputError(f"module {name!r}: the file holds a module type {entry['key']!r} that this torchslim "
                         f"does not know (import the package that defines it); known: {MODULE_TYPES.names()}")
    return MODULE_TYPES.get(entry["key"])


def check_structure(model: nn.Module, record: dict[str, Any]) -> None:
    """Raise an InputError naming the first module where ``model`` and ``record`` differ
    (by name or class), in the record's order, then the model's. The root's own class is not
    compared (a subclass of the architecture loads).

    Example:
        >>> check_structure(torch.nn.Linear(3, 2), record_shapes(torch.nn.Linear(5, 5)))  # sizes may differ
    """
    have = structural_modules(model)
    for name, entry in record["modules"].items():
        if name not in have:
            raise _mismatch(record, model, f"{name!r}: the file has a {_describe(entry)}, the model has no such module")
        got = base_type(have[name]).__name__
        if got != entry["type"] and name:
            raise _mismatch(record, model, f"{name!r}: the file has a {_describe(entry)}, the model has a {got}")
    extra = [n for n in have if n not in record["modules"]]
    if extra:
        raise _mismatch(record, model, f"{extra[0]!r}: the model has a {base_type(have[extra[0]]).__name__} "
                                       "that the file does not have")


def _resize(m: nn.Module, name: str, k: str, shape: list[int], dtype: torch.dtype) -> None:
    for store in (m._parameters, m._buffers):
        if k in store and store[k] is not None:
            t = store[k]
            if list(t.shape) != shape or t.dtype != dtype:
                new = torch.empty(shape, dtype=dtype)
                store[k] = nn.Parameter(new, requires_grad=t.requires_grad and dtype.is_floating_point) if isinstance(t, nn.Parameter) else new
            return
    if parametrize.is_parametrized(m, k):
        original = m.parametrizations[k].original
        if list(original.shape) != shape or original.dtype != dtype:
            raise InputError(f"module {name!r}: its parametrized {k!r} has shape {list(original.shape)}, the record "
                             f"{shape}; pass a model without parametrizations")
        return
    raise InputError(f"module {name!r} has no tensor {k!r} recorded in the file")


def _attach_params(m: nn.Module, name: str, params: dict[str, list[dict[str, Any]]]) -> None:
    for tensor, plist in params.items():
        if parametrize.is_parametrized(m, tensor):
            have = [MODULE_TYPES.get(p["key"]).cls for p in plist]
            if [type(p) for p in m.parametrizations[tensor]] != have:
                raise InputError(f"module {name!r}: its {tensor!r} already has other parametrizations than the file's")
            continue
        for p in plist:
            if p["key"] not in MODULE_TYPES:
                raise InputError(f"module {name!r}: unknown parametrization type {p['key']!r}; known: {MODULE_TYPES.names()}")
            built = MODULE_TYPES.get(p["key"]).build({**p.get("record", {}), "tensor": tensor}, m, lambda c: m)
            parametrize.register_parametrization(m, tensor, built)


def rebuild(model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """Resize ``model`` (a fresh instance of the original architecture) in place to ``record``:
    registered technique modules are built where the record has them, tensors get the
    recorded shapes and dtypes (uninitialised; load weights after), attributes the recorded
    values, parametrizations are attached. A structural difference is an InputError naming the
    first mismatching module. (Build into a copy if the model must survive a failure.)

    Example:
        >>> small = torch.nn.Linear(3, 1)
        >>> rebuild(torch.nn.Linear(3, 2), record_shapes(small)).out_features
        1
    """
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("modules"), dict):
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"not a pruned-shape record (format {got!r}, expected {FORMAT!r})")
    _replace_modules(model, record)
    check_structure(model, record)
    for name, entry in record["modules"].items():
        m = get_module(model, name)
        dtypes = entry.get("dtypes", {})
        for k, shape in entry.get("tensors", {}).items():
            _resize(m, name, k, shape, dtype_named(dtypes.get(k, "float32"), f"module {name!r}"))
        for k, v in entry.get("attrs", {}).items():
            setattr(m, k, tuple(v) if isinstance(v, list) else v)
        if entry.get("params"):
            _attach_params(m, name, entry["params"])
    return model
