"""The torchslim command: help everywhere, real measurements, clear errors with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from torchslim.cli import main


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["measure", "--help"], ["zoo", "--help"], ["data", "--help"],
                                  ["run", "--help"], ["validate", "--help"], ["auto", "--help"], ["report", "--help"]])
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


TINY_RECIPE = """\
name: cli
model: {zoo: lenet300-mnist}
data: {name: mnist_5k, train_samples: 128, val_samples: 100, test_samples: 100}
measure: {runtime: torch, latency_seconds: 0}
stages:
  - {type: magnitude_prune, sparsity: 0.5}
  - {type: int8_dynamic}
output: {onnx: false, slim: false, report: [json, html]}
"""


def test_validate_refuses_a_broken_recipe_with_key_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(TINY_RECIPE.replace("sparsity: 0.5", "sparsity: 0.5, sparsty: 0.2"))
    assert main(["validate", str(path)]) == 2
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "broken.yaml:6: stages[0].sparsty: unknown key" in out
    path.write_text(TINY_RECIPE)
    assert main(["validate", str(path), "--set", "stages.0.sparsity=0.7"]) == 0
    assert "valid - 2 stage(s): magnitude_prune, int8_dynamic" in " ".join(capsys.readouterr().out.split())


def test_run_then_report_again(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--set", "stages.0.sparsity=0.3"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert [s["status"] for s in result["stages"]] == ["kept", "kept"]
    assert result["recipe"]["stages"][0]["sparsity"] == 0.3
    assert (out / "report.html").is_file()
    assert main(["report", str(out / "result.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").is_file() and (tmp_path / "again" / "report.md").is_file()
    assert main(["run", str(path), "--set", "stages=oops"]) == 2
    assert main(["auto", "--model", "zoo:lenet300-mnist", "--prune-levels", "half"]) == 2
    assert "--prune-levels" in capsys.readouterr().out
