"""The one training loop: fine-tuning after pruning, quantization-aware training, distillation.

Per epoch: reseed from ``(seed, epoch)`` -> for each batch: forward, task loss (+ extra loss),
backward, optional gradient clipping, optimizer step, per-step schedule step, ``on_step_end``
-> validation -> ``on_epoch_end`` -> checkpoint. See :func:`fit`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.inputs import batch_of, first_tensor
from torchslim.measure.accuracy import BatchMetric, evaluate
from torchslim.train.checkpoint import (
    callback_states,
    check_run_config,
    check_state_matches,
    checkpoint_path,
    load_callback_states,
    load_checkpoint,
    save_checkpoint,
)
from torchslim.train.context import EpochRecord, LossContext, TrainContext, TrainResult
from torchslim.train.dist import (
    all_reduce_sum,
    forward_module,
    join_from_env,
    local_device,
    rank_and_world,
    shard,
)
from torchslim.train.optim import check_optimizer, check_schedule, make_optimizer, make_scheduler
from torchslim.train.progress import Reporter
from torchslim.train.rng import (
    epoch_seed,
    get_rng_state,
    seed_everything,
    seed_loader,
    set_rng_state,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ExtraLoss = Callable[[LossContext], torch.Tensor]


def fit(
    model: nn.Module,
    train_data: Iterable[Any],
    *,
    epochs: int,
    val_data: Iterable[Any] | None = None,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    loss_fn: LossFn | None = None,
    extra_loss: ExtraLoss | None = None,
    metric: BatchMetric | None = None,
    callbacks: Sequence[Any] = (),
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    seed: int = 0,
    progress: bool = True,
    max_grad_norm: float | None = None,
    description: str = "train",
    keep_best: bool = False,
    steps_per_epoch: int | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train_data`` for ``epochs`` epochs and return a TrainResult.

    Data items are ``(x, y)``, ``((x1, x2, ...), y)`` or, for unlabelled transfer data, just
    ``x``. Batches go to the device of the model's parameters. Model outputs may be a tensor, a
    tuple (element 0 is used) or have ``.logits``.

    - Loss: ``loss_fn(outputs, targets)`` (default cross-entropy) plus ``extra_loss(ctx)`` with a
      :class:`LossContext`. Batches without targets need ``extra_loss`` and no ``loss_fn``: their
      loss is ``extra_loss`` alone (distillation on a transfer set). An ``extra_loss`` with a
      ``task_weight`` attribute scales the task loss by it (``teacher_loss`` keeps ``1 - alpha``).
    - ``optimizer``: ``adam`` | ``adamw`` | ``sgd`` (``momentum`` is SGD's); ``schedule``:
      ``cosine`` | ``constant`` | ``step`` | ``onecycle``, stepped every batch, after
      ``warmup_steps`` of linear warmup (see :mod:`torchslim.train.optim`).
    - ``val_data``: after each epoch ``measure.accuracy.evaluate(model, val_data, metric)``
      (default top-1; higher is better). ``keep_best`` restores the best-validated weights at the
      end (validation runs before ``on_epoch_end``, so weights a callback changes at epoch end,
      e.g. pruning, are not what gets kept).
    - ``callbacks``: objects with any of ``on_train_begin``/``on_step_end``/``on_epoch_end``/
      ``on_train_end``, each given a :class:`TrainContext` (set ``ctx.stop = True`` to stop after
      the epoch).
    - ``checkpoint_dir``: ``checkpoint.pt`` is written there atomically after every epoch; with
      ``resume`` an existing one is loaded (``weights_only=True``) and training continues after
      its epoch. A resumed run ends with the same weights as an uninterrupted one.
    - ``seed``: torch, ``random`` and NumPy are reseeded from ``(seed, epoch)`` at each epoch
      start, together with the DataLoader's ``generator``: same seed, same data, same initial
      weights -> identical weights.
    - ``progress``: a transient rich bar (on a terminal) and one line per epoch; False is silent.
    - ``steps_per_epoch``: needed only when ``len(train_data)`` is undefined (streaming data).
    - Under ``torchrun`` (``WORLD_SIZE`` > 1) the same call trains with DistributedDataParallel,
      each rank on its shard of ``train_data``; only rank 0 checkpoints and prints
      (see :mod:`torchslim.train.dist`).

    Example:
        >>> import torch
        >>> from torchslim.train import fit
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(256, 2); y = (x[:, 0] > 0).long()
        >>> data = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
        >>> result = fit(torch.nn.Linear(2, 2), data, epochs=10, val_data=data, lr=0.05,
        ...              progress=False)
        >>> result.best_val > 0.9
        True
    """
    _check_arguments(epochs=epochs, lr=lr, weight_decay=weight_decay, momentum=momentum, seed=seed,
                     warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, keep_best=keep_best,
                     val_data=val_data, callbacks=callbacks, optimizer=optimizer, schedule=schedule)
    callbacks = list(callbacks)
    device = _device_of(model)
    _steps_per_epoch(train_data, steps_per_epoch)  # bad data fails before any process group is joined
    distributed = join_from_env(model)
    rank = rank_and_world()[0]
    if distributed:
        device = local_device(model)
        model.to(device)  # a GPU model goes to this rank's GPU
        train_data = shard(train_data, seed)
    spe = _steps_per_epoch(train_data, steps_per_epoch)

    seed_everything(seed)
    opt = make_optimizer(model, optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum)
    sched = make_scheduler(opt, schedule, total_steps=epochs * spe, warmup_steps=warmup_steps)
    config = {
        "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
        "momentum": momentum if optimizer == "sgd" else None, "schedule": schedule,
        "warmup_steps": warmup_steps, "keep_best": keep_best, "epochs": epochs,
        "steps_per_epoch": spe, "seed": seed,
    }
    ctx = TrainContext(model=model, optimizer=opt, scheduler=sched, epochs=epochs, steps_per_epoch=spe)
    best_val: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from: int | None = None
    path = checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None

    if path is not None and resume and path.exists():
        ck = load_checkpoint(path)
        check_state_matches(model, ck["model"], source=f"checkpoint {str(path)!r}")
        check_run_config(ck["config"], config, path)
        model.load_state_dict(ck["model"])
        try:
            opt.load_state_dict(ck["optimizer"])
        except (ValueError, KeyError) as e:
            raise ConfigError(f"checkpoint {str(path)!r}: optimizer state does not fit this model: {e}") from e
        sched.load_state_dict(ck["scheduler"])
        ctx.history = [EpochRecord.from_dict(d) for d in ck["history"]]
        best_val, best_epoch = ck["best_val"], ck["best_epoch"]
        best_state = ck.get("best_model") if keep_best else None
        ctx.global_step, ctx.stop = ck["global_step"], ck.get("stopped", False)
        resumed_from = ck["epoch"]
        set_rng_state(ck["rng"])
        load_callback_states(callbacks, ck.get("callbacks"))
    ctx.start_epoch = (resumed_from or 0) + 1

    was_training = model.training
    forward = forward_module(model, distributed, device)  # DDP broadcasts rank 0's weights
    try:
        with Reporter(enabled=progress, description=description, epochs=epochs) as reporter:
            if resumed_from is not None:
                reporter.note(f"resumed from {path} after epoch {resumed_from}")
            _call(callbacks, "on_train_begin", ctx)
            for epoch in range(ctx.start_epoch, epochs + 1):
                if ctx.stop:
                    break
                t0 = time.perf_counter()
                seed_everything(epoch_seed(seed, epoch, rank))
                seed_loader(train_data, seed, epoch, rank)
                ctx.epoch, ctx.record = epoch, None
                reporter.start_epoch(epoch, spe)
                loss_sum, n_samples, last_lr = _train_one_epoch(
                    model, train_data, opt, sched, ctx, callbacks, reporter, device,
                    forward=forward, loss_fn=loss_fn, extra_loss=extra_loss, max_grad_norm=max_grad_norm,
                )
                loss_sum, n_samples = all_reduce_sum([loss_sum, n_samples], device)
                train_seconds = time.perf_counter() - t0
                val = None
                if val_data is not None:
                    val = evaluate(model, _on_device(val_data, device), metric)
                record = EpochRecord(
                    epoch=epoch, train_loss=loss_sum / n_samples, val_metric=val, lr=last_lr,
                    seconds=time.perf_counter() - t0, samples_per_s=n_samples / max(train_seconds, 1e-9),
                )
                ctx.history.append(record)
                if val is not None and (best_val is None or val > best_val):
                    best_val, best_epoch = val, epoch
                    if keep_best:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                ctx.record = record
                _call(callbacks, "on_epoch_end", ctx)
                reporter.end_epoch(record)
                if path is not None:
                    save_checkpoint(path, {
                        "epoch": epoch, "global_step": ctx.global_step, "stopped": ctx.stop,
                        "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "history": [r.as_dict() for r in ctx.history],
                        "best_val": best_val, "best_epoch": best_epoch,
                        "best_model": best_state if keep_best else None, "rng": get_rng_state(),
                        "config": config, "callbacks": callback_states(callbacks),
                    })
            if keep_best and best_state is not None:
                model.load_state_dict(best_state)
            _call(callbacks, "on_train_end", ctx)
    finally:
        model.train(was_training)
    return TrainResult(model=model, history=list(ctx.history), best_val=best_val,
                       best_epoch=best_epoch, resumed_from=resumed_from)


def _train_one_epoch(
    model: nn.Module,
    train_data: Iterable[Any],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    ctx: TrainContext,
    callbacks: list[Any],
    reporter: Reporter,
    device: torch.device,
    *,
    forward: Callable[..., Any],
    loss_fn: LossFn | None,
    extra_loss: ExtraLoss | None,
    max_grad_norm: float | None,
) -> tuple[float, int, float]:
    """One pass over the data; returns (sum of per-sample losses, samples, last lr used)."""
    model.train()
    loss_sum, n_samples, last_lr = 0.0, 0, float(opt.param_groups[0]["lr"])
    for step, item in enumerate(train_data):
        inputs, targets = batch_of(item)
        inputs = tuple(t.to(device) for t in inputs)
        targets = targets.to(device) if isinstance(targets, torch.Tensor) else targets
        raw = forward(*inputs)
        lctx = LossContext(model=model, inputs=inputs, outputs=first_tensor(raw), targets=targets,
                           epoch=ctx.epoch, step=step, raw_outputs=raw, global_step=ctx.global_step)
        loss = _total_loss(lctx, loss_fn, extra_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_grad_norm)
        last_lr = float(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ConfigError(
                f"the training loss became {value} at epoch {ctx.epoch}, step {step}: lower lr, "
                "set max_grad_norm, or check the data and loss"
            )
        batch = int(inputs[0].shape[0]) if inputs[0].dim() > 0 else 1
        loss_sum, n_samples = loss_sum + value * batch, n_samples + batch
        ctx.step, ctx.global_step, ctx.loss = step, ctx.global_step + 1, value
        reporter.advance(batch, value)
        _call(callbacks, "on_step_end", ctx)
    if n_samples == 0:
        raise ConfigError(f"train_data yielded no batches in epoch {ctx.epoch}")
    return loss_sum, n_samples, last_lr


def _total_loss(ctx: LossContext, loss_fn: LossFn | None, extra_loss: ExtraLoss | None) -> torch.Tensor:
    """Task loss (when there are targets) plus the extra term; fills ``ctx.task_loss``."""
    if ctx.targets is None:
        if extra_loss is None:
            raise ConfigError(
                "a training batch has no targets (items are just x): give (x, y) items, or pass "
                "extra_loss= (e.g. a distillation loss) to train on unlabelled data"
            )
        if loss_fn is not None:
            raise ConfigError("loss_fn needs targets, but a training batch has none; use extra_loss alone")
        loss = _check_loss(extra_loss(ctx), "extra_loss")
    else:
        ctx.task_loss = _check_loss((loss_fn or F.cross_entropy)(ctx.outputs, ctx.targets), "loss_fn")
        if extra_loss is None:
            loss = ctx.task_loss
        else:
            weight = float(getattr(extra_loss, "task_weight", 1.0))
            task = ctx.task_loss if weight == 1.0 else weight * ctx.task_loss
            loss = task + _check_loss(extra_loss(ctx), "extra_loss")
    if not loss.requires_grad:
        raise ConfigError("the training loss does not depend on any trainable parameter")
    return loss


def _check_loss(value: Any, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"{name} must return a scalar tensor, got {shape}")
    return value.reshape(())


def _call(callbacks: list[Any], hook: str, ctx: TrainContext) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if callable(fn):
            fn(ctx)


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    raise ConfigError(f"{type(model).__name__} has no parameters to train")


def _to_device(item: Any, device: torch.device) -> Any:
    if isinstance(item, torch.Tensor):
        return item.to(device)
    if isinstance(item, (tuple, list)):
        return type(item)(_to_device(v, device) for v in item)
    return item


def _on_device(data: Iterable[Any], device: torch.device) -> Iterable[Any]:
    if device.type == "cpu":
        return data
    return (_to_device(item, device) for item in data)


def _steps_per_epoch(train_data: Iterable[Any], steps_per_epoch: int | None) -> int:
    if isinstance(train_data, Iterator):
        raise ConfigError(
            "train_data is a one-shot iterator (e.g. a generator); pass something that can be "
            "iterated once per epoch: a DataLoader or a list of batches"
        )
    if steps_per_epoch is not None:
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}")
        return steps_per_epoch
    try:
        n = len(train_data)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(
            f"len(train_data) is undefined for {type(train_data).__name__}; pass steps_per_epoch= "
            "so the learning-rate schedule knows the run's length"
        ) from None
    if n == 0:
        raise ConfigError("train_data is empty: it has no batches")
    return n


def _check_arguments(
    *, epochs: Any, lr: float, weight_decay: float, momentum: float, seed: Any, warmup_steps: Any,
    max_grad_norm: float | None, keep_best: bool, val_data: Any, callbacks: Any, optimizer: str,
    schedule: str,
) -> None:
    check_optimizer(optimizer)
    check_schedule(schedule)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ConfigError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if max_grad_norm is not None and not (isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0):
        raise ConfigError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
    if keep_best and val_data is None:
        raise ConfigError("keep_best=True needs val_data to tell which epoch was best")
    if not isinstance(callbacks, (list, tuple)):
        raise ConfigError(f"callbacks must be a list or tuple of callback objects, got {type(callbacks).__name__}")
