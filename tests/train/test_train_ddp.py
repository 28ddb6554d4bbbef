"""fit under torchrun: 2 processes (gloo, CPU) run the unchanged training call; rank 0's
checkpoint loads, both ranks end equal, and the run equals one process with the global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from torchslim.train import fit, load_checkpoint
from torchslim.train.checkpoint import check_state_matches

SCRIPT = Path(__file__).with_name("ddp_script.py")
sys.path.insert(0, str(SCRIPT.parent))
import ddp_script  # noqa: E402 - the script's model and data, shared with the check below


@pytest.fixture(scope="module")
def torchrun_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_rank0_checkpoint_loads_and_only_rank0_writes(torchrun_out: tuple[Path, str]) -> None:
    out, stdout = torchrun_out
    ck = load_checkpoint(out / "ckpt" / "checkpoint.pt")
    assert ck["epoch"] == ddp_script.EPOCHS
    net = ddp_script.model()
    check_state_matches(net, ck["model"])
    net.load_state_dict(ck["model"])
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["checkpoint.pt"]  # no temp files left
    assert stdout.count(f"epoch 1/{ddp_script.EPOCHS}") == 1  # one rank prints
    final = torch.load(out / "rank0.pt", weights_only=True)["fit"]
    assert all(torch.equal(final[k], ck["model"][k]) for k in final)


def test_ranks_share_the_data_and_end_equal(torchrun_out: tuple[Path, str]) -> None:
    out, _ = torchrun_out
    infos = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    n_batches = 256 // ddp_script.BATCH
    assert [i["world"] for i in infos] == [2, 2]
    assert [i["steps_per_epoch"] for i in infos] == [n_batches // 2] * 2  # each rank: half the data
    losses = [[h["train_loss"] for h in i["history"]] for i in infos]
    assert losses[0] == losses[1]  # the epoch loss is reduced over ranks, so both report the same
    assert infos[0]["distill_batches"] == [n_batches, 64 // ddp_script.BATCH]  # before sharding
    w = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("fit", "distill", "teacher"):
        assert all(torch.allclose(w[0][part][k], w[1][part][k], atol=1e-6) for k in w[0][part]), part
    teacher = ddp_script.model(seed=1, hidden=32).state_dict()
    assert all(torch.equal(w[0]["teacher"][k], teacher[k]) for k in teacher)  # distillation left it alone


def test_two_ranks_equal_one_process_with_the_global_batch(torchrun_out: tuple[Path, str]) -> None:
    """DistributedSampler hands rank r the indices perm[r::2]; one process with batch 2B over
    the same permutation sees the same samples per step, and DDP averages the gradients."""
    out, _ = torchrun_out
    torch.set_num_threads(1)
    x, y = ddp_script.problem()
    ds = TensorDataset(x, y)
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=3)
    loader = DataLoader(ds, batch_size=2 * ddp_script.BATCH, sampler=sampler)
    net = ddp_script.model()
    fit(net, loader, epochs=ddp_script.EPOCHS, lr=1e-2, seed=3, progress=False)
    ddp = torch.load(out / "rank0.pt", weights_only=True)["fit"]
    single = net.state_dict()
    assert all(torch.allclose(single[k], ddp[k], atol=1e-5) for k in single)
