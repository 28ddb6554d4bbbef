"""Loading a user's model: a factory they name plus weights, never an unpickled object."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from torchslim.core.errors import ConfigError, InputError
from torchslim.zoo.user import load_user_model, load_weights


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - a payload that would run code if unpickled
        return (exec, ("import sys; sys.modules['torchslim'].PWNED = True",))


def test_factory_and_safetensors_weights(tmp_path):
    ref = torch.nn.Linear(3, 2)
    save_file(ref.state_dict(), tmp_path / "w.safetensors")
    model = load_user_model("torch.nn:Identity")
    assert isinstance(model, torch.nn.Identity)
    loaded = load_weights(torch.nn.Linear(3, 2), tmp_path / "w.safetensors")
    assert torch.equal(loaded.weight, ref.weight)


def test_pt_weights_are_loaded_weights_only(tmp_path):
    ref = torch.nn.Linear(3, 2)
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    assert torch.equal(load_weights(torch.nn.Linear(3, 2), tmp_path / "w.pt").bias, ref.bias)
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"weight": _Evil()}))
    with pytest.raises(InputError, match="refused to unpickle"):
        load_weights(torch.nn.Linear(3, 2), tmp_path / "evil.pt")
    import torchslim

    assert not hasattr(torchslim, "PWNED")


def test_mismatches_and_bad_specs_are_named(tmp_path):
    save_file(torch.nn.Linear(3, 2).state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(InputError, match="weight has shape"):
        load_weights(torch.nn.Linear(4, 2), tmp_path / "w.safetensors")
    with pytest.raises(InputError, match="missing"):
        load_weights(torch.nn.Sequential(torch.nn.Linear(3, 2)), tmp_path / "w.safetensors")
    with pytest.raises(ConfigError, match="package.module:factory"):
        load_user_model("no_colon_here")
    with pytest.raises(ConfigError, match="cannot import"):
        load_user_model("not_a_module_xyz:build")
    with pytest.raises(ConfigError, match="no callable 'Nope'"):
        load_user_model("torch.nn:Nope")
    with pytest.raises(InputError, match="not found"):
        load_weights(torch.nn.Linear(3, 2), tmp_path / "missing.safetensors")
