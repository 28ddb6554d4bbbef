"""One measurement record (:class:`Metrics`) and the verb that fills it (:func:`measure`).

Example:
    >>> import torch
    >>> from torchslim.measure import measure
    >>> m = measure(torch.nn.Linear(16, 4), torch.randn(1, 16), memory=False,
    ...             warmup=1, min_runs=5, min_seconds=0.0)
    >>> m.macs, m.params_total, m.latency.runs >= 5
    (64, 68, True)
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import nn

from torchslim.core.errors import ConfigError, InputError, UnknownNameError
from torchslim.core.inputs import as_tuple, run_checked
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.measure._format import human_bytes, human_count, render
from torchslim.measure.accuracy import BatchMetric, evaluate
from torchslim.measure.energy import Energy, estimate_energy
from torchslim.measure.latency import Latency, check_budget, time_ort, time_torch, torch_threads
from torchslim.measure.macs import LayerStat, count_macs
from torchslim.measure.memory import Memory, probe_onnx, probe_torch
from torchslim.measure.params import count_params, onnx_file_bytes, onnx_params, state_dict_bytes

RUNTIMES = ("torch", "onnxruntime")


@dataclass
class Metrics:
    """What :func:`measure` found for one model on one runtime.

    ``bytes`` is the deployable file (torch: safetensors of the state_dict; onnxruntime: the
    ONNX file); ``macs`` is per forward pass at ``batch_size``; ``energy`` is an estimate.
    """

    name: str
    runtime: str
    threads: int
    batch_size: int
    params_total: int
    params_nonzero: int
    bytes: int
    macs: int
    layers: list[LayerStat] = field(default_factory=list)
    latency: Latency | None = None
    peak_memory: Memory | None = None
    accuracy: float | None = None
    energy: Energy | None = None

    @property
    def sparsity(self) -> float:
        """Fraction of parameters that are exactly zero."""
        return 1.0 - self.params_nonzero / self.params_total if self.params_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (nested records as dicts).

        Example:
            >>> import json, torch
            >>> m = measure(torch.nn.Linear(2, 2), torch.zeros(1, 2), latency=False, memory=False)
            >>> json.loads(json.dumps(m.to_dict()))["macs"]
            4
        """
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """The record back from :meth:`to_dict` output.

        Example:
            >>> import torch
            >>> m = measure(torch.nn.Linear(2, 2), torch.zeros(1, 2), latency=False, memory=False)
            >>> Metrics.from_dict(m.to_dict()) == m
            True
        """
        d = dict(data)
        d["layers"] = [LayerStat(**layer) for layer in d.get("layers", [])]
        for key, kind in (("latency", Latency), ("peak_memory", Memory), ("energy", Energy)):
            if d.get(key) is not None:
                d[key] = kind(**d[key])
        return cls(**d)

    def rows(self) -> list[tuple[str, str]]:
        """(label, formatted value) pairs shown by :meth:`table`."""
        rows = [
            ("runtime", f"{self.runtime}, {self.threads} thread(s), batch {self.batch_size}"),
            ("params", f"{human_count(self.params_total)} ({human_count(self.params_nonzero)} nonzero, "
                       f"sparsity {self.sparsity:.1%})"),
            ("size", human_bytes(self.bytes)),
            ("MACs", human_count(self.macs)),
        ]
        if self.latency is not None:
            lat = self.latency
            rows.append(("latency", f"median {lat.median_ms:.3f} ms, p90 {lat.p90_ms:.3f} ms ({lat.runs} runs)"))
        if self.peak_memory is not None:
            mem = self.peak_memory
            detail = (f"peak {human_bytes(mem.peak_bytes)} - baseline {human_bytes(mem.baseline_bytes)}"
                      if mem.baseline_bytes is not None else mem.note)
            rows.append(("memory", f"{human_bytes(mem.footprint_bytes)} ({detail}; {mem.method})"))
        if self.accuracy is not None:
            rows.append(("accuracy", f"{self.accuracy:.2%}"))
        if self.energy is not None:
            rows.append(("energy (est.)", f"{self.energy.total_uj:.3f} uJ/forward (compute "
                                          f"{self.energy.compute_uj:.3f}, memory {self.energy.memory_uj:.3f})"))
        return rows

    def table(self) -> str:
        """Plain-text table of the record."""
        t = Table(title=self.name, show_header=False)
        t.add_column("metric", style="bold")
        t.add_column("value")
        for label, value in self.rows():
            t.add_row(label, value)
        return render(t)

    def layers_table(self) -> str:
        """Plain-text table of the per-layer MACs, params, output shapes and precision."""
        t = Table(title=f"{self.name}: layers")
        for col in ("layer", "type", "MACs", "% MACs", "params", "output", "precision"):
            t.add_column(col, justify="right" if col in ("MACs", "% MACs", "params") else "left")
        for layer in self.layers:
            share = layer.macs / self.macs if self.macs else 0.0
            shape = "x".join(map(str, layer.output_shape)) if layer.output_shape is not None else "-"
            t.add_row(layer.name or "(model)", layer.type, human_count(layer.macs), f"{share:.1%}",
                      human_count(layer.params), shape, layer.precision)
        return render(t)

    def __str__(self) -> str:
        return self.table()


def _check_args(runtime: str, threads: int) -> None:
    if runtime not in RUNTIMES:
        raise UnknownNameError("runtime", runtime, list(RUNTIMES))
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")


def _onnx_file(model: nn.Module, inputs: tuple[Any, ...], onnx_path: str | os.PathLike[str] | None, tmp: str) -> Path:
    """An existing ``onnx_path`` is used as is (e.g. a QDQ export); else the model is exported
    there (or to a temporary file) with a dynamic batch dimension."""
    if onnx_path is not None and Path(onnx_path).is_file():
        return Path(onnx_path)
    target = Path(onnx_path) if onnx_path is not None else Path(tmp) / "model.onnx"
    return export_onnx(model, target, inputs, dynamic_batch=True)


def measure(
    model: nn.Module,
    example_inputs: Any,
    *,
    data: Iterable[Any] | None = None,
    runtime: str = "torch",
    threads: int = 1,
    metric: BatchMetric | None = None,
    latency: bool = True,
    memory: bool = True,
    warmup: int = 10,
    min_runs: int = 50,
    min_seconds: float = 1.0,
    max_seconds: float = 10.0,
    onnx_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    memory_runs: int = 3,
) -> Metrics:
    """Measure ``model`` at the batch of ``example_inputs`` on ``runtime``.

    - params, nonzero params and file bytes: of the torch model, or of the ONNX file;
    - MACs and per-layer stats: always from the torch graph (the same arithmetic);
    - latency (``latency=True``): timed calls on the runtime with ``threads`` threads;
    - peak memory (``memory=True``): one fresh child process loads and runs the model;
    - accuracy (``data`` given): ``metric`` (default top-1) over ``data``, run on the runtime;
    - energy: an estimate from MACs, precision and bytes (see :mod:`torchslim.measure.energy`).

    With ``runtime="onnxruntime"`` the model is exported to a temporary ONNX file, or to
    ``onnx_path``; an ``onnx_path`` that already exists is used as is.

    Example:
        >>> import torch
        >>> m = measure(torch.nn.Conv2d(3, 8, 3), torch.zeros(1, 3, 8, 8),
        ...             latency=False, memory=False, runtime="onnxruntime")
        >>> m.macs == 8 * 6 * 6 * 3 * 3 * 3, m.runtime
        (True, 'onnxruntime')
    """
    _check_args(runtime, threads)
    if latency:
        check_budget(warmup, min_runs, min_seconds, max_seconds)
    if not isinstance(model, nn.Module):
        raise InputError(f"measure() needs a torch.nn.Module, got {type(model).__name__}")
    inputs = as_tuple(example_inputs)
    batch_size = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    was_training = model.training
    model.eval()
    try:
        with torch_threads(threads), tempfile.TemporaryDirectory(prefix="torchslim-measure-") as tmp:
            with torch.inference_mode():
                run_checked(model, inputs)  # wrong shapes fail here, naming model and shapes
            macs, layers = count_macs(model, inputs)
            result = Metrics(
                name=name or type(model).__name__, runtime=runtime, threads=threads, batch_size=batch_size,
                params_total=0, params_nonzero=0, bytes=0, macs=macs, layers=layers,
                energy=estimate_energy(layers, input_numel=sum(t.numel() for t in inputs)),
            )
            if runtime == "torch":
                result.params_total, result.params_nonzero = count_params(model)
                result.bytes = state_dict_bytes(model)
                if latency:
                    result.latency = time_torch(model, inputs, threads=threads, warmup=warmup, min_runs=min_runs,
                                                min_seconds=min_seconds, max_seconds=max_seconds)
                if memory:
                    result.peak_memory = probe_torch(model, inputs, threads=threads, runs=memory_runs)
                if data is not None:
                    result.accuracy = evaluate(model, data, metric)
            else:
                path = _onnx_file(model, inputs, onnx_path, tmp)
                result.params_total, result.params_nonzero = onnx_params(path)
                result.bytes = onnx_file_bytes(path)
                session = OrtModel(path, threads=threads)
                if latency:
                    result.latency = time_ort(session, inputs, warmup=warmup, min_runs=min_runs,
                                              min_seconds=min_seconds, max_seconds=max_seconds)
                if memory:
                    result.peak_memory = probe_onnx(path, inputs, threads=threads, runs=memory_runs)
                if data is not None:
                    result.accuracy = evaluate(session, data, metric)
    finally:
        model.train(was_training)
    return result

