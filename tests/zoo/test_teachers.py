"""Teachers train for real (into the session's private cache) and reach their documented
accuracy; cached teachers load bit-identically; a corrupt cache file is retrained."""

from __future__ import annotations

import dataclasses
import json
import time
from types import SimpleNamespace

import pytest
import torch

from torchslim import data, train, zoo
from torchslim.measure.accuracy import evaluate
from torchslim.zoo.teacher import cache_key

SLOW = {"resnet-mnist", "mobilenet-mnist", "transformer-mnist"}  # ~25-60 s each on 2 cores


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in zoo.names()]
)
def test_teacher_reaches_documented_accuracy(name: str) -> None:
    entry = zoo.info(name)
    model = zoo.teacher(name, progress=False)
    assert not model.training
    accuracy = evaluate(model, data.load(entry.dataset).test)
    assert accuracy >= entry.documented_accuracy, f"{name}: {accuracy:.2%} < {entry.documented_accuracy:.2%}"
    record = zoo.teacher_record(name)
    assert record is not None and record["test_accuracy"] == pytest.approx(accuracy)
    assert record["train_seconds"] > 0 and record["recipe"] == entry.recipe.to_dict()
    sidecar = json.loads(zoo.teacher_path(name).with_suffix(".json").read_text())
    assert sidecar["test_accuracy"] == record["test_accuracy"]


def test_cached_teacher_loads_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "lenet300-mnist"
    first = zoo.teacher(name, progress=False)  # trained here or by the test above

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached teacher must not be retrained")

    monkeypatch.setattr(train, "fit", no_training)
    start = time.perf_counter()
    second = zoo.teacher(name, progress=False)
    assert time.perf_counter() - start < 2.0
    assert second is not first and not second.training
    x = zoo.example_inputs(name, batch_size=8)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))


def _stub_fit(calls: list[int]):  # noqa: ANN202 - a fit that "trains" instantly
    def fit(model: torch.nn.Module, *args: object, **kwargs: object) -> SimpleNamespace:
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * len(calls))
        return SimpleNamespace(model=model, history=[], best_val=None)

    return fit


def _garble_data(path) -> None:  # noqa: ANN001
    raw = bytearray(path.read_bytes())
    raw[-200:-100] = bytes(100)  # tensor bytes: parses, but the checksum no longer matches
    path.write_bytes(bytes(raw))


def _truncate(path) -> None:  # noqa: ANN001
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble_header(path) -> None:  # noqa: ANN001
    path.write_bytes(b"\xff" * 64 + path.read_bytes()[64:])


NOT_LEARNING = "ignore:teacher mlp-mnist1d reached.*below its documented"  # the stub does not learn


@pytest.mark.filterwarnings(NOT_LEARNING)
@pytest.mark.parametrize("corrupt", [_garble_data, _truncate, _garble_header])
def test_corrupt_cache_is_retrained(corrupt, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path))
    calls: list[int] = []
    monkeypatch.setattr(train, "fit", _stub_fit(calls))
    name = "mlp-mnist1d"
    zoo.teacher(name, progress=False)
    path = zoo.teacher_path(name)
    corrupt(path)
    with pytest.warns(UserWarning, match="unusable"):
        retrained = zoo.teacher(name, progress=False)
    assert len(calls) == 2
    loaded = zoo.teacher(name, progress=False)  # the rewritten file is whole again
    assert len(calls) == 2
    for a, b in zip(retrained.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.filterwarnings(NOT_LEARNING)
def test_retrain_flag_and_cache_key(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path))
    calls: list[int] = []
    monkeypatch.setattr(train, "fit", _stub_fit(calls))
    zoo.teacher("mlp-mnist1d", progress=False)
    zoo.teacher("mlp-mnist1d", retrain=True, progress=False)
    assert len(calls) == 2
    entry = zoo.info("mlp-mnist1d")
    other = dataclasses.replace(entry, recipe=dataclasses.replace(entry.recipe, epochs=1))
    assert cache_key(other) != cache_key(entry)  # a changed recipe never loads a stale teacher
    assert zoo.teacher_path("mlp-mnist1d").parent == tmp_path / "zoo"
