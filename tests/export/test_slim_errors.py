"""Bad .slim files give clear errors and never a half-loaded model: flipped bytes, truncation,
a pickle, a newer format version, a mismatched architecture; writes are atomic."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import torchslim as slim
from torchslim import zoo
from torchslim.core.errors import InputError
from torchslim.export.slim import SlimFileError, container
from torchslim.quant.sharing import WeightSharing
from torchslim.recipe.artifact import load, save

L300 = "lenet300-mnist"


@pytest.fixture(scope="module")
def slim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = slim.quantize(slim.prune(zoo.model(L300), slim.MagnitudePrune(sparsity=0.9)), WeightSharing(bits=4))
    path = tmp_path_factory.mktemp("slim") / "m.slim"
    save(model.eval(), path)
    return path


def test_every_flipped_byte_is_detected(slim_file: Path, tmp_path: Path) -> None:
    data = slim_file.read_bytes()
    bad = tmp_path / "bad.slim"
    header = 8 + int.from_bytes(data[:8], "little")
    positions = sorted({*range(0, 16), *range(header - 8, header + 8), *range(16, len(data), max(1, len(data) // 97)), len(data) - 1})
    for i in positions:
        flipped = bytearray(data)
        flipped[i] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        with pytest.raises(SlimFileError):
            load(bad, L300)


def test_truncation_is_detected(slim_file: Path, tmp_path: Path) -> None:
    data = slim_file.read_bytes()
    bad = tmp_path / "short.slim"
    for n in (0, 4, 8, 100, len(data) // 2, len(data) - 1):
        bad.write_bytes(data[:n])
        with pytest.raises(SlimFileError, match="truncated|corrupted"):
            load(bad, L300)
    bad.write_bytes(data + b"\0")
    with pytest.raises(SlimFileError, match="extra bytes"):
        load(bad, L300)


def test_pickle_files_are_refused_without_unpickling(tmp_path: Path) -> None:
    zipped = tmp_path / "state.pt"
    torch.save(zoo.model(L300).state_dict(), zipped)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"weight": [1.0]}, protocol=2))
    for path in (zipped, legacy):
        with pytest.raises(SlimFileError, match="pickle"):
            load(path, L300)


def test_plain_safetensors_is_not_a_slim_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(SlimFileError, match="without a torchslim manifest"):
        load(path, L300)


def _rewrite_manifest(src: Path, dst: Path, edit: dict) -> None:
    manifest, tensors = container.read_container(src)
    container.write_container(dst, {**manifest, **edit}, tensors)


def test_newer_format_version_is_refused(slim_file: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer.slim"
    _rewrite_manifest(slim_file, newer, {"version": container.FORMAT_VERSION + 1, "torchslim": "9.0"})
    with pytest.raises(SlimFileError, match=r"format version 2 .*upgrade torchslim"):
        load(newer, L300)


def test_mismatched_architecture_names_the_first_module(slim_file: Path) -> None:
    fresh = zoo.model("lenet5-mnist")
    with pytest.raises(InputError, match="first mismatching module 'conv1': the model has a Conv2d that the file does not"):
        load(slim_file, fresh)
    with pytest.raises(InputError, match="first mismatching module 'flatten': the file has a Flatten, the model has no"):
        load(slim_file, torch.nn.Sequential())  # no modules at all: the file's first one is missing
    x = zoo.example_inputs("lenet5-mnist", batch_size=1)
    assert fresh(x).shape == (1, 10)  # the model given is untouched


def test_write_is_atomic(slim_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.slim"
    path.write_bytes(slim_file.read_bytes())

    def half_then_fail(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save(zoo.model(L300), path)
    monkeypatch.undo()
    assert path.read_bytes() == slim_file.read_bytes()  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["keep.slim"]  # no temporary left behind
