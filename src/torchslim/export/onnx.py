"""ONNX export of float models and an ONNX Runtime session that is called like a model.

Example:
    >>> import tempfile, torch
    >>> from torchslim.export.onnx import export_onnx, OrtModel
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    >>> path = export_onnx(model, tempfile.mkdtemp() + "/m.onnx", torch.randn(2, 4))
    >>> ort_model = OrtModel(path, threads=1)
    >>> torch.allclose(ort_model(torch.ones(5, 4)), model(torch.ones(5, 4)), atol=1e-4)
    True
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from torchslim.core.errors import ConfigError, InputError, TorchslimError
from torchslim.core.inputs import as_tuple, run_checked
from torchslim.core.io import atomic_write

DEFAULT_OPSET = 18


class ExportError(TorchslimError, RuntimeError):
    """The model could not be turned into an ONNX graph."""


def _input_names(n: int) -> list[str]:
    return ["input"] if n == 1 else [f"input_{i}" for i in range(n)]


def _traceable_batch(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """torch.export specialises a dimension of size 1; trace a dynamic batch with size 2."""
    if all(t.dim() > 0 and t.shape[0] == 1 for t in inputs):
        return tuple(t.expand(2, *t.shape[1:]).clone() for t in inputs)
    return inputs


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporter prints progress and warns about optional packages: keep the user's log clean."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


# A technique whose models need their own ONNX lowering (quantization: QuantizeLinear /
# DequantizeLinear with its own scales) registers it here; export does not import techniques.
Applies = Callable[[nn.Module], bool]
Lowering = Callable[[nn.Module, Path, tuple[torch.Tensor, ...], int, bool], None]
_LOWERINGS: dict[str, tuple[Applies, Lowering]] = {}


def register_lowering(name: str, applies: Applies, lower: Lowering) -> None:
    """Route models for which ``applies(model)`` is true to ``lower(model, tmp_path, inputs,
    opset, dynamic_batch)``, which writes the ONNX file at ``tmp_path``.

    Example:
        >>> from torchslim.export.onnx import register_lowering, lowering_for
        >>> register_lowering("never", lambda m: False, lambda *a: None)
        >>> lowering_for(torch.nn.Linear(2, 2)) is None
        True
    """
    _LOWERINGS[name] = (applies, lower)


def lowering_for(model: nn.Module) -> Lowering | None:
    """The registered lowering that claims ``model``, or None for the float exporter."""
    for applies, lower in _LOWERINGS.values():
        if applies(model):
            return lower
    return None


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example_inputs: Any,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Write ``model`` (in eval mode) as an ONNX file at ``path`` and return the path.

    A model claimed by a registered lowering (see :func:`register_lowering`, e.g. a quantized
    model) is written by it. Otherwise the graph is captured with ``torch.export`` (the exporter PyTorch maintains); if that
    fails the TorchScript exporter is tried. With ``dynamic_batch`` the first dimension of
    every input and output is symbolic, so any batch size runs. The file is written to a
    temporary name and renamed, so an interrupted export leaves nothing behind.
    """
    inputs = as_tuple(example_inputs)
    if not 7 <= opset <= 23:
        raise ConfigError(f"export: opset must be between 7 and 23, got {opset}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            run_checked(model, inputs)  # wrong shapes fail here with a clear message
        names = _input_names(len(inputs))
        lower = lowering_for(model)
        with atomic_write(path) as tmp:
            if lower is not None:
                lower(model, tmp, inputs, opset, dynamic_batch)
                return Path(path)
            try:
                _export_dynamo(model, tmp, inputs, names, opset, dynamic_batch)
            except Exception as dynamo_error:  # noqa: BLE001 - fall back, then report both
                try:
                    _export_torchscript(model, tmp, inputs, names, opset, dynamic_batch)
                except Exception as ts_error:  # noqa: BLE001
                    raise ExportError(
                        f"could not export {type(model).__name__} to ONNX: torch.export said "
                        f"{str(dynamo_error).splitlines()[0]!r}; the TorchScript exporter said "
                        f"{str(ts_error).splitlines()[0]!r}"
                    ) from dynamo_error
    finally:
        model.train(was_training)
    return Path(path)


def _export_dynamo(
    model: nn.Module, tmp: Path, inputs: tuple[torch.Tensor, ...], names: list[str], opset: int, dynamic: bool
) -> None:
    trace_inputs = _traceable_batch(inputs) if dynamic else inputs
    shapes = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        shapes = tuple({0: batch} if t.dim() > 0 else None for t in trace_inputs)
    with _quiet():
        torch.onnx.export(
            model, trace_inputs, str(tmp), dynamo=True, opset_version=opset, input_names=names,
            dynamic_shapes=shapes, optimize=True, external_data=False, verbose=False,
        )


def _export_torchscript(
    model: nn.Module, tmp: Path, inputs: tuple[torch.Tensor, ...], names: list[str], opset: int, dynamic: bool
) -> None:
    axes = {n: {0: "batch"} for n in names} if dynamic else None
    with _quiet():
        torch.onnx.export(
            model, inputs, str(tmp), dynamo=False, opset_version=opset, input_names=names,
            output_names=["output"], dynamic_axes=axes,
        )


class OrtModel:
    """An ONNX Runtime CPU session called like a torch model: tensors in, tensors out.

    ``threads`` fixes the intra-op thread count (inter-op is 1, execution sequential), so a
    latency measured through it is comparable with torch at the same ``torch.set_num_threads``.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"no ONNX file at {self.path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.threads = threads
        self.options = opts
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def feeds(self, *inputs: torch.Tensor) -> dict[str, np.ndarray]:
        """The session's input dict for torch tensors (checked for count)."""
        if len(inputs) != len(self.input_names):
            raise InputError(f"{self.path.name} takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
        return {n: t.detach().cpu().numpy() for n, t in zip(self.input_names, inputs, strict=True)}

    def run_numpy(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the session on numpy feeds."""
        return self.session.run(None, feeds)

    def prepared(self, *inputs: torch.Tensor) -> Callable[[], object]:
        """A call with no arguments that runs the session on ``inputs``, copied once into
        ONNX Runtime's own tensors and bound to the session (IOBinding): what a latency loop
        should time. ``session.run`` converts a feed dict on every call: on a one-op graph here
        it took 11 us a call against 5 us bound, as long as a small model's own work; a
        deployment that keeps its buffers does not pay that.

        Example:
            >>> import tempfile, torch
            >>> p = export_onnx(torch.nn.Linear(4, 2), tempfile.mkdtemp() + "/m.onnx", torch.zeros(1, 4))
            >>> call = OrtModel(p).prepared(torch.ones(1, 4))
            >>> call()[0].shape()  # ONNX Runtime's OrtValue
            [1, 2]
        """
        binding = self.session.io_binding()
        values = [ort.OrtValue.ortvalue_from_numpy(a.copy()) for a in self.feeds(*inputs).values()]
        for name, value in zip(self.input_names, values, strict=True):
            binding.bind_ortvalue_input(name, value)
        for out in self.session.get_outputs():
            binding.bind_output(out.name, "cpu")

        def call(session: Any = self.session, binding: Any = binding, values: list[Any] = values) -> object:
            session.run_with_iobinding(binding)  # ``values`` keeps the bound inputs alive
            return binding.get_outputs()

        return call

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outs = [torch.from_numpy(np.asarray(o)) for o in self.run_numpy(self.feeds(*inputs))]
        return outs[0] if len(outs) == 1 else tuple(outs)
