"""Run by tests/train/test_train_ddp.py under ``torchrun --nproc_per_node=2`` (gloo, CPU).

Usage: ``torchrun --standalone --nproc_per_node=2 ddp_script.py OUT_DIR``. The script calls
``fit`` exactly as a single-process script would; each rank then writes what the test checks
(its final weights and the samples it saw) beside the rank-0 checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchslim.distill import FeatureKD, distill
from torchslim.train import Callback, TrainContext, fit, rank_and_world

EPOCHS, BATCH = 2, 16


def problem() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)  # (N, F)
    return x, (x @ torch.randn(8, generator=g) > 0).long()


def model(seed: int = 0, hidden: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))


class RecordSteps(Callback):
    """Remembers how many steps per epoch this rank's shard of the data has."""

    steps = 0

    def on_train_begin(self, ctx: TrainContext) -> None:
        self.steps = ctx.steps_per_epoch


def main(out: Path) -> None:
    torch.set_num_threads(1)
    x, y = problem()
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    seen = RecordSteps()
    net = model()
    result = fit(net, loader, epochs=EPOCHS, lr=1e-2, seed=3, checkpoint_dir=out / "ckpt", callbacks=[seen])
    rank, world = rank_and_world()
    teacher = model(seed=1, hidden=32)
    transfer = torch.randn(64, 8, generator=torch.Generator().manual_seed(5))  # unlabelled, sharded too
    student = distill(model(seed=2, hidden=4), teacher, loader, FeatureKD(), epochs=1, lr=1e-2,
                      transfer_data=transfer, progress=False)
    torch.save({"fit": net.state_dict(), "distill": student.state_dict(), "teacher": teacher.state_dict()},
               out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world": world, "steps_per_epoch": seen.steps,
        "history": [r.as_dict() for r in result.history],
        "distill_batches": [student.distill_report.labelled_batches, student.distill_report.transfer_batches],
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
