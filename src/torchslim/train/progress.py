"""What the loop prints: a transient rich bar per epoch (terminals only) and one line per epoch.

The bar shows steps, samples/s, ETA and the running loss, and disappears when the epoch
ends; the epoch line stays. Off a terminal (logs, CI) only the epoch lines are printed.
Only the main process prints.

Example:
    >>> from torchslim.train.progress import Reporter
    >>> with Reporter(enabled=False, description="train", epochs=1) as r:
    ...     r.start_epoch(1, total_steps=10)
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from torchslim.train.context import EpochRecord
from torchslim.train.dist import is_main_process


class Reporter:
    """Progress bar and epoch lines for one ``fit`` call; a no-op when disabled."""

    def __init__(self, *, enabled: bool, description: str, epochs: int, console: Console | None = None) -> None:
        self.enabled = enabled and is_main_process()
        self.description = description
        self.epochs = epochs
        self.console = (console or Console()) if self.enabled else None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._samples = 0
        self._loss_sum = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Reporter:
        if self.console is not None and self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>8.0f} samples/s"),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
                refresh_per_second=4,
            )
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def note(self, message: str) -> None:
        """Print one plain line (e.g. where a run resumed)."""
        if self.console is not None:
            self.console.print(f"{self.description}: {message}", markup=False, highlight=False, soft_wrap=True)

    def start_epoch(self, epoch: int, total_steps: int | None) -> None:
        """Begin the bar for ``epoch`` (1-based) of ``total_steps`` steps (None if unknown)."""
        self._samples, self._loss_sum, self._t0 = 0, 0.0, time.perf_counter()
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(
                f"{self.description} {epoch}/{self.epochs}", total=total_steps, rate=0.0, loss=float("nan")
            )

    def advance(self, samples: int, loss: float) -> None:
        """One step done: ``samples`` in the batch, its mean total loss."""
        self._samples += samples
        self._loss_sum += loss * samples
        if self._progress is not None and self._task is not None:
            elapsed = max(time.perf_counter() - self._t0, 1e-9)
            self._progress.update(
                self._task, advance=1, rate=self._samples / elapsed, loss=self._loss_sum / max(self._samples, 1)
            )

    def end_epoch(self, record: EpochRecord) -> None:
        """Close the epoch's bar and print its one-line summary."""
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        if self.console is None:
            return
        val = "" if record.val_metric is None else f"  val {record.val_metric:.4f}"
        self.console.print(
            f"{self.description} epoch {record.epoch}/{self.epochs}  loss {record.train_loss:.4f}{val}"
            f"  lr {record.lr:.2e}  {record.seconds:.1f} s  {record.samples_per_s:,.0f} samples/s",
            markup=False,
            highlight=False,
            soft_wrap=True,  # one line per epoch in logs, however narrow the console
        )
