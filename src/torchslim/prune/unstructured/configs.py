"""The unstructured pruning configs: small validated objects that round-trip through YAML.

Which layers: ``target`` (default: every ``nn.Linear`` and ``nn.Conv1d/2d/3d``) minus
``ignore`` (patterns as in :class:`torchslim.core.targets.Target`: names, ``re:``, ``type:``).
The classifier is pruned too by default, as in Han et al. (2015) and ``torch.nn.utils.prune``:
unstructured zeros do not change any shape. Keep it dense with ``ignore=["fc3"]`` (its name).

Example:
    >>> from torchslim.prune.unstructured.configs import MagnitudePrune
    >>> MagnitudePrune(sparsity=0.9, scope="layer", ignore=["fc3"]).to_dict()["ignore"]
    ['fc3']
"""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationInfo, field_validator, model_validator
from torch import nn

from torchslim.core.config import Config
from torchslim.core.errors import ConfigError
from torchslim.core.targets import Target, check_names_exist, select

PRUNABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
Scope = Literal["global", "layer"]


def _check_fraction(name: str, v: float) -> float:
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {v}")
    return v


class _UnstructuredBase(Config, abstract=True):
    """Fields every unstructured config shares: which layers it acts on."""

    target: Target = Target()
    ignore: tuple[str, ...] = ()

    @field_validator("ignore", mode="before")
    @classmethod
    def _ignore_as_tuple(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v


class MagnitudePrune(_UnstructuredBase):
    """Remove the ``sparsity`` fraction of weights with the smallest ``|w|``, per layer or
    pooled over all targeted layers (``scope="global"``: layers with small weights lose more).

    Example:
        >>> import torch
        >>> from torchslim.prune.api import prune
        >>> from torchslim.prune.unstructured import MagnitudePrune, layer_sparsity
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> small = prune(net, MagnitudePrune(sparsity=0.5, scope="layer"))
        >>> layer_sparsity(small)
        {'0': 0.5, '2': 0.5}
    """

    sparsity: float = 0.9
    scope: Scope = "global"

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float) -> float:
        return _check_fraction("sparsity", v)


class RandomPrune(_UnstructuredBase):
    """The baseline: remove a random ``sparsity`` fraction of weights (``seed`` fixes which).

    Example:
        >>> import torch
        >>> from torchslim.prune.api import prune
        >>> from torchslim.prune.unstructured import RandomPrune, layer_sparsity
        >>> small = prune(torch.nn.Sequential(torch.nn.Linear(10, 10)), RandomPrune(sparsity=0.3))
        >>> round(layer_sparsity(small)["0"], 6)
        0.3
    """

    sparsity: float = 0.5
    scope: Scope = "layer"
    seed: int = 0

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float) -> float:
        return _check_fraction("sparsity", v)


class NMPrune(_UnstructuredBase):
    """Keep exactly ``n`` of every ``m`` consecutive input weights (largest ``|w|``): the 2:4
    pattern sparse tensor cores run (CUDA only; on CPU it is plain 50% sparsity). Every
    targeted layer needs ``in_features % m == 0`` (input channels for convolutions).

    Example:
        >>> import torch
        >>> from torchslim.prune.api import prune
        >>> from torchslim.prune.unstructured import NMPrune, layer_sparsity
        >>> small = prune(torch.nn.Sequential(torch.nn.Linear(8, 4)), NMPrune(n=2, m=4))
        >>> layer_sparsity(small)
        {'0': 0.5}
    """

    n: int = 2
    m: int = 4

    @model_validator(mode="after")
    def _n_m(self) -> NMPrune:
        if self.m < 1 or not 0 < self.n <= self.m:
            raise ValueError(f"N:M pruning needs 0 < n <= m, got n={self.n}, m={self.m}")
        return self


class GradualPrune(_UnstructuredBase):
    """Zhu & Gupta (2017): magnitude pruning whose sparsity follows a cubic ramp during training,
    ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3``, updated every ``frequency``
    optimizer steps from the end of epoch ``start_epoch`` (0 = the first step) to the end of
    epoch ``end_epoch``; masks stay fixed between updates. See :class:`GradualPruner`.

    Example:
        >>> GradualPrune(final_sparsity=0.9, end_epoch=4, frequency=20).initial_sparsity
        0.0
    """

    final_sparsity: float = 0.9
    initial_sparsity: float = 0.0
    start_epoch: int = 0
    end_epoch: int = 1
    frequency: int = 100
    scope: Scope = "global"

    @field_validator("final_sparsity", "initial_sparsity")
    @classmethod
    def _fractions(cls, v: float, info: ValidationInfo) -> float:
        return _check_fraction(str(info.field_name), v)

    @model_validator(mode="after")
    def _schedule(self) -> GradualPrune:
        if self.start_epoch < 0 or self.end_epoch <= self.start_epoch:
            raise ValueError(f"need 0 <= start_epoch < end_epoch, got start_epoch={self.start_epoch}, "
                             f"end_epoch={self.end_epoch}")
        if self.frequency < 1:
            raise ValueError(f"frequency (optimizer steps between mask updates) must be >= 1, got {self.frequency}")
        if self.initial_sparsity > self.final_sparsity:
            raise ValueError(f"initial_sparsity {self.initial_sparsity} is above final_sparsity {self.final_sparsity}")
        return self


class LotteryTicket(_UnstructuredBase):
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020):
    train ``rewind_epoch`` epochs and save the weights; then ``rounds`` times: train, remove
    ``sparsity_per_round`` of the remaining weights, reset the survivors to the saved weights.
    Final sparsity ``1 - (1 - sparsity_per_round) ** rounds``; the ticket is then trained once
    more. Needs ``train_data`` and ``epochs`` (per round) as options of ``prune``.

    Example:
        >>> round(LotteryTicket(rounds=3, sparsity_per_round=0.5).final_sparsity, 3)
        0.875
    """

    rounds: int = 3
    sparsity_per_round: float = 0.5
    rewind_epoch: int = 0
    scope: Scope = "global"

    @field_validator("sparsity_per_round")
    @classmethod
    def _per_round(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError(f"sparsity_per_round must be in (0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _counts(self) -> LotteryTicket:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.rewind_epoch < 0:
            raise ValueError(f"rewind_epoch must be >= 0, got {self.rewind_epoch}")
        return self

    @property
    def final_sparsity(self) -> float:
        """Sparsity after all rounds."""
        return 1.0 - (1.0 - self.sparsity_per_round) ** self.rounds


def prunable_layers(model: nn.Module, config: _UnstructuredBase) -> dict[str, nn.Module]:
    """Qualified name -> layer for every Linear/Conv layer the config's ``target`` includes and
    neither its ``target.exclude`` nor ``ignore`` excludes; a clear error if none is left or a
    pattern names no module. A model that is itself one layer (``nn.Linear``) is that layer,
    named ``""``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> list(prunable_layers(net, MagnitudePrune(ignore=["2"])))
        ['0']
    """
    target = Target(include=config.target.include, exclude=(*config.target.exclude, *config.ignore))
    where = f"{type(config).__name__} target"
    check_names_exist(model, target, where=where)
    if isinstance(model, PRUNABLE):
        return {"": model}
    layers = {n: m for n, m in select(model, target, kinds=PRUNABLE) if "parametrizations" not in n.split(".")}
    if not layers:
        available = [n for n, m in model.named_modules() if n and isinstance(m, PRUNABLE)]
        raise ConfigError(
            f"{where} (include={list(target.include)}, exclude={list(target.exclude)}) matches no "
            f"prunable layer (Linear, Conv1d/2d/3d) of {type(model).__name__}; its prunable layers "
            f"are {available[:20]}"
        )
    return layers
