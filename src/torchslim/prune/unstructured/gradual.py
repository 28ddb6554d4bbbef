"""When to prune: Zhu & Gupta's gradual magnitude pruning as a ``torchslim.train.fit`` callback.

``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))**3`` for ``t0 <= t <= t0 + n * dt``,
where ``t`` counts optimizer steps (``TrainContext.global_step``), ``t0`` is the end of epoch
``start_epoch`` and ``t0 + n * dt`` the end of epoch ``end_epoch``. Masks are recomputed from
``|w|`` every ``dt = frequency`` steps (and at the last step of the ramp, so the final sparsity
is reached exactly) and stay fixed in between; a pruned weight never comes back.

Checkpoint-safe: masks are buffers in the model's ``state_dict`` (saved with each epoch's
checkpoint), and the callback's own ``state_dict`` records the last update, so a resumed run
ends with the same weights as an uninterrupted one.

Example:
    >>> import torch
    >>> from torchslim.train import fit
    >>> from torchslim.prune.unstructured import GradualPrune, GradualPruner, layer_sparsity
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> data = [(torch.randn(16, 8), torch.randint(0, 2, (16,))) for _ in range(4)]
    >>> pruner = GradualPruner(net, GradualPrune(final_sparsity=0.75, end_epoch=2, frequency=2))
    >>> _ = fit(net, data, epochs=3, callbacks=[pruner], progress=False)
    >>> pruner.sparsity, sorted(set(layer_sparsity(net).values())) != []
    (0.75, True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.errors import ConfigError
from torchslim.prune.unstructured.configs import GradualPrune, prunable_layers
from torchslim.prune.unstructured.criteria import magnitude_scores, sparsity_masks
from torchslim.prune.unstructured.masks import attach_mask, get_mask, original_weight
from torchslim.prune.unstructured.oneshot import finetune
from torchslim.train import Callback, TrainContext


def cubic_sparsity(step: int, *, initial: float, final: float, start_step: int, end_step: int) -> float:
    """Zhu & Gupta's target sparsity at optimizer step ``step`` (clamped outside the ramp).

    Example:
        >>> round(cubic_sparsity(50, initial=0.0, final=0.8, start_step=0, end_step=100), 6)
        0.7
        >>> cubic_sparsity(500, initial=0.0, final=0.8, start_step=0, end_step=100)
        0.8
    """
    if end_step <= start_step:
        raise ConfigError(f"cubic_sparsity: end_step {end_step} must be after start_step {start_step}")
    progress = min(max((step - start_step) / (end_step - start_step), 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


def _clear_optimizer_state(optimizer: Any, param: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero momentum-like state of pruned weights, so Adam/SGD momentum cannot move them."""
    state = getattr(optimizer, "state", {}).get(param, {})
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == param.shape:
            value.mul_(mask)


class GradualPruner(Callback):
    """The gradual-pruning callback for ``torchslim.train.fit``: attaches all-ones masks to the
    targeted layers when created (so the optimizer and checkpoints see the final structure),
    then follows :func:`cubic_sparsity`. Create it *before* ``fit``, pass it in ``callbacks``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4))
        >>> p = GradualPruner(net, GradualPrune(final_sparsity=0.5, end_epoch=1))
        >>> p.sparsity, p.state_dict()
        (0.0, {'sparsity': 0.0, 'last_update': -1})
    """

    def __init__(self, model: nn.Module, config: GradualPrune) -> None:
        self.config = config
        self.layers = prunable_layers(model, config)
        for module in self.layers.values():
            if get_mask(module) is None:
                attach_mask(module, torch.ones_like(module.weight, dtype=torch.bool))
        self.sparsity = 0.0
        self.last_update = -1

    def steps(self, steps_per_epoch: int) -> tuple[int, int]:
        """(t0, t_end): the optimizer steps where the ramp starts and ends."""
        return self.config.start_epoch * steps_per_epoch, self.config.end_epoch * steps_per_epoch

    def target(self, step: int, steps_per_epoch: int) -> float:
        """The scheduled sparsity at ``step``: 0 before the ramp, ``s_t`` on it, ``s_f`` after.

        Example:
            >>> import torch
            >>> p = GradualPruner(torch.nn.Linear(2, 2), GradualPrune(final_sparsity=0.8, end_epoch=2))
            >>> round(p.target(10, steps_per_epoch=10), 6)
            0.7
        """
        t0, t_end = self.steps(steps_per_epoch)
        if step < t0:
            return 0.0
        c = self.config
        return cubic_sparsity(step, initial=c.initial_sparsity, final=c.final_sparsity, start_step=t0, end_step=t_end)

    def due(self, step: int, steps_per_epoch: int) -> bool:
        """True at the steps where masks are updated: ``t0 + k * frequency`` and ``t_end``."""
        t0, t_end = self.steps(steps_per_epoch)
        on_ramp = t0 <= step <= t_end and ((step - t0) % self.config.frequency == 0 or step == t_end)
        return on_ramp and step != self.last_update

    def apply(self, sparsity: float, optimizer: Any = None) -> None:
        """Recompute the masks at ``sparsity`` from ``|w|`` (in place) and zero the pruned weights
        and their optimizer state."""
        scores = {n: magnitude_scores(m) for n, m in self.layers.items()}
        masks = sparsity_masks(scores, sparsity, self.config.scope)
        for name, module in self.layers.items():
            attach_mask(module, masks[name])
            if optimizer is not None:
                _clear_optimizer_state(optimizer, original_weight(module), masks[name])
        self.sparsity = sparsity

    def _maybe_update(self, ctx: TrainContext) -> None:
        if self.due(ctx.global_step, ctx.steps_per_epoch):
            self.apply(self.target(ctx.global_step, ctx.steps_per_epoch), ctx.optimizer)
            self.last_update = ctx.global_step

    def on_train_begin(self, ctx: TrainContext) -> None:
        _, t_end = self.steps(ctx.steps_per_epoch)
        if ctx.total_steps < t_end:
            raise ConfigError(
                f"GradualPrune ends its ramp at epoch {self.config.end_epoch}, but training runs "
                f"{ctx.epochs} epochs: the final sparsity would never be reached; train at least "
                f"{self.config.end_epoch} epochs (a few more to recover accuracy)"
            )
        self._maybe_update(ctx)

    def on_step_end(self, ctx: TrainContext) -> None:
        self._maybe_update(ctx)

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers for the training checkpoint (masks are in the model's state_dict)."""
        return {"sparsity": self.sparsity, "last_update": self.last_update}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.sparsity, self.last_update = float(state["sparsity"]), int(state["last_update"])


def gradual_callback(model: nn.Module, config: GradualPrune) -> GradualPruner:
    """A :class:`GradualPruner` for ``model`` (masks attached now), to pass to ``fit``.

    Example:
        >>> import torch
        >>> cb = gradual_callback(torch.nn.Linear(4, 4), GradualPrune(final_sparsity=0.5, end_epoch=2))
        >>> type(cb).__name__
        'GradualPruner'
    """
    return GradualPruner(model, config)


@register_handler(GradualPrune)
def _prune_gradual(model: nn.Module, config: GradualPrune, *, example_inputs: Any = None, **options: Any) -> nn.Module:
    if options.get("train_data") is None or options.get("epochs") is None:
        raise ConfigError(
            "prune(GradualPrune) prunes during training: pass train_data= and epochs= "
            f"(at least end_epoch={config.end_epoch}), e.g. prune(model, cfg, train_data=loader, epochs=10)"
        )
    return finetune(model, options, "prune(GradualPrune)", extra_callbacks=[GradualPruner(model, config)])
