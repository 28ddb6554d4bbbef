"""torch.distributed awareness: :func:`fit` runs unchanged under ``torchrun``.

Under ``torchrun --nproc_per_node=N script.py`` (``WORLD_SIZE`` > 1 in the environment) ``fit``
joins the process group (initialising it, if the script has not, with ``nccl`` for a model on a
GPU and ``gloo`` otherwise), puts a GPU model on its rank's device (``LOCAL_RANK``), wraps the
model in ``DistributedDataParallel`` for the training steps, gives each rank its shard of the
training data (a ``DistributedSampler`` for a DataLoader, every N-th batch for a list) and
sums the epoch's loss over ranks. Only rank 0 writes checkpoints and prints. Each rank keeps
its DataLoader's batch size, so the global batch is N times larger. Every rank validates on
all of ``val_data`` (the weights are the same everywhere, so early stopping and ``keep_best``
agree). A resumed run reads ``checkpoint_dir`` on every rank: put it on a shared file system
when the ranks span machines. There is no scheduler of our own: torchrun (or a cluster's
launcher) starts the processes.

Example:
    >>> from torchslim.train.dist import is_main_process, rank_and_world
    >>> is_main_process(), rank_and_world()  # no process group: one process, the main one
    (True, (0, 1))
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler

from torchslim.core.errors import ConfigError


def is_initialized() -> bool:
    """True when a torch.distributed process group is up."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True without an initialized process group, else True only on rank 0."""
    return not is_initialized() or dist.get_rank() == 0


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` without a process group."""
    if not is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def join_from_env(model: nn.Module) -> bool:
    """Initialise the process group from torchrun's environment when ``WORLD_SIZE`` > 1 and
    none is up yet (backend ``nccl`` for a model on CUDA, else ``gloo``). Returns True when
    training is distributed (world size > 1)."""
    if is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    on_cuda = any(p.is_cuda for p in model.parameters())
    backend = "nccl" if on_cuda and dist.is_nccl_available() else "gloo"
    if on_cuda:
        torch.cuda.set_device(local_device(model))
    dist.init_process_group(backend=backend)
    atexit.register(_destroy)
    return dist.get_world_size() > 1


def _destroy() -> None:
    if is_initialized():
        dist.destroy_process_group()


def local_device(model: nn.Module) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for a model on CUDA, else the model's device."""
    device = next(model.parameters()).device
    if device.type != "cuda":
        return device
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank() if is_initialized() else 0))
    return torch.device("cuda", local % max(1, torch.cuda.device_count()))


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (parameters and buffers are broadcast from rank 0,
    gradients averaged over ranks on each backward)."""
    if isinstance(model, DistributedDataParallel):
        raise ConfigError("pass fit the plain model, not a DistributedDataParallel wrapper: fit wraps it itself")
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ConfigError(
            "the process group uses nccl, but the model is on the CPU: move the model to a GPU "
            "before fit (it is put on this rank's GPU), or initialise the group with backend='gloo'"
        )
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shard(data: Iterable[Any], seed: int) -> Iterable[Any]:
    """This rank's part of the training data.

    - a DataLoader over a map-style dataset: the same loader with a ``DistributedSampler``
      (shuffled with ``seed`` and the epoch if the original shuffled), unless it already has one;
    - a list or tuple of batches: every world-size-th batch from this rank's index, cut so that
      every rank gets the same number;
    - an object with ``map_parts(fn)`` (e.g. :class:`~torchslim.train.mixed.MixedData`): each
      part sharded;
    - an IterableDataset loader or anything else: left as it is (it must shard itself).
    """
    rank, world = rank_and_world()
    if world == 1:
        return data
    if callable(getattr(data, "map_parts", None)):
        return data.map_parts(lambda part: shard(part, seed))
    if isinstance(data, DataLoader):
        return _shard_loader(data, rank, world, seed)
    if isinstance(data, (list, tuple)):
        per_rank = len(data) // world
        if per_rank == 0:
            raise ConfigError(f"train_data has {len(data)} batches, fewer than the {world} ranks")
        return list(data[rank::world][:per_rank])
    warnings.warn(
        f"train_data of type {type(data).__name__} cannot be sharded by torchslim; every rank "
        "trains on what it yields (shard it per rank yourself)", stacklevel=3,
    )
    return data


def _shard_loader(loader: DataLoader, rank: int, world: int, seed: int) -> DataLoader:
    if isinstance(loader.sampler, DistributedSampler) or isinstance(loader.dataset, IterableDataset):
        return loader
    if loader.batch_size is None:
        raise ConfigError(
            "train_data is a DataLoader with a custom batch_sampler, which fit cannot shard over "
            "ranks: give it batch_size= (and shuffle=), or a DistributedSampler of your own"
        )
    sampler = DistributedSampler(
        loader.dataset, num_replicas=world, rank=rank, shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
    )
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        timeout=loader.timeout, worker_init_fn=loader.worker_init_fn, generator=loader.generator,
        prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers,
    )


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum each number over ranks (unchanged without a process group)."""
    if not is_initialized():
        return values
    if dist.get_backend() != "nccl":
        device = torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def forward_module(model: nn.Module, distributed: bool, device: torch.device) -> Callable[..., Any]:
    """What the training step calls: the DDP wrapper when distributed, else the model."""
    return wrap(model, device) if distributed else model
