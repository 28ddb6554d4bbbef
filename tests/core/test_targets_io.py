import os

import pytest
import torch
from torch import nn

from torchslim.core.errors import ConfigError, InputError, UnknownNameError
from torchslim.core.inputs import as_tuple, batch_of, run_checked
from torchslim.core.io import atomic_write
from torchslim.core.modules import get_module, leaf_modules, set_module
from torchslim.core.targets import Target, check_names_exist, select


def net():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()),  # "0", "0.0", "0.1"
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16),  # "2"
        nn.Linear(16, 10),  # "3"
    )


def names(model, target, kinds=None):
    return [n for n, _ in select(model, target, kinds)]


def test_target_by_name_includes_descendants():
    assert names(net(), Target(include=["0"])) == ["0", "0.0", "0.1"]


def test_target_by_regex_type_and_exclude():
    m = net()
    assert names(m, Target(include=["type:Linear"])) == ["2", "3"]
    assert names(m, Target(include=["type:torch.nn.Conv2d"])) == ["0.0"]
    assert names(m, Target(include=["re:[23]"], exclude=["3"])) == ["2"]
    assert names(m, Target(), kinds=(nn.Linear, nn.Conv2d)) == ["0.0", "2", "3"]


def test_target_round_trips_and_rejects_bad_regex():
    t = Target(include="re:layer\\d+", exclude=["fc"])
    assert Target.model_validate(t.model_dump()) == t
    with pytest.raises(Exception, match="bad regex"):
        Target(include=["re:(unclosed"])


def test_target_typo_is_reported():
    with pytest.raises(ConfigError, match="no module named 'fc9'"):
        check_names_exist(net(), Target(include=["fc9"]))


def test_get_set_module():
    m = net()
    set_module(m, "0.1", nn.GELU())
    assert isinstance(get_module(m, "0.1"), nn.GELU)
    with pytest.raises(UnknownNameError, match="0.7"):
        get_module(m, "0.7")
    assert [n for n, _ in leaf_modules(m)] == ["0.0", "0.1", "1", "2", "3"]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(p) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_inputs_normalisation_and_errors():
    x = torch.zeros(2, 3)
    assert as_tuple(x) == (x,) and as_tuple([x, x]) == (x, x)
    with pytest.raises(InputError, match="tensor"):
        as_tuple("not a tensor")
    inputs, y = batch_of((x, torch.tensor([0, 1])))
    assert inputs == (x,) and y.tolist() == [0, 1]
    with pytest.raises(InputError, match=r"Sequential failed on example inputs \[\(1, 2, 9, 9\):float32\]"):
        run_checked(net(), (torch.zeros(1, 2, 9, 9),))
