"""The torchslim command: help everywhere, real measurements, clear errors with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from torchslim.cli import main


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["measure", "--help"], ["zoo", "--help"], ["data", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: torchslim" in capsys.readouterr().out


def test_lists(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "lenet5-mnist" in out and "resnet-mnist" in out
    assert main(["data", "list"]) == 0
    assert "mnist_5k" in capsys.readouterr().out


def test_measure_factory_model_on_both_runtimes(tmp_path, capsys):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    out_json = tmp_path / "m.json"
    code = main(["measure", "--model", "torch.nn:Sequential", "--input-shape", "2,3,4"])
    assert code == 0  # an empty Sequential is the identity: still measurable
    code = main([
        "measure", "--model", "tests.test_cli:small_model", "--weights", str(tmp_path / "w.safetensors"),
        "--input-shape", "1,3,4", "--runtime", "both", "--json", str(out_json),
    ])
    assert code == 0
    result = json.loads(out_json.read_text())
    assert set(result) == {"torch", "onnxruntime"}
    assert result["torch"]["macs"] == 12 * 5
    assert result["onnxruntime"]["params_total"] == 12 * 5 + 5


def small_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))


def test_errors_exit_2_with_a_message(capsys):
    assert main(["measure", "--model", "zoo:lenet6-mnist"]) == 2
    assert "unknown" in capsys.readouterr().out
    assert main(["measure", "--model", "torch.nn:Identity"]) == 2
    assert "--input-shape is required" in capsys.readouterr().out
    assert main(["measure", "--model", "tests.test_cli:small_model", "--input-shape", "1,9,9"]) == 2
    assert "failed on example inputs" in capsys.readouterr().out
