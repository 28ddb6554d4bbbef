"""An *estimate* of the energy of one forward pass, from MACs, precision and bytes moved.

Not a measurement: no power meter is read. The model is the one of Horowitz (2014): every
MAC costs one multiply and one add at the layer's precision, every weight is read from DRAM
once per forward pass, and every activation a layer writes is read back once from a small
SRAM. It ranks variants of one model (int8 vs fp32, pruned vs dense); it does not predict
what a given chip draws.

Example:
    >>> from torchslim.measure.energy import estimate_energy
    >>> from torchslim.measure.macs import LayerStat
    >>> fp32 = LayerStat("fc", "Linear", macs=1000, params=1000, output_shape=[1, 1], precision="fp32")
    >>> int8 = LayerStat("fc", "Linear", macs=1000, params=1000, output_shape=[1, 1], precision="int8")
    >>> estimate_energy([int8]).total_uj < estimate_energy([fp32]).total_uj
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torchslim.measure.macs import LayerStat

PJ_PER_OP: dict[str, float] = {
    "fp32_mult": 3.7, "fp32_add": 0.9,
    "fp16_mult": 1.1, "fp16_add": 0.4,
    "int8_mult": 0.2, "int8_add": 0.03,
    "int32_mult": 3.1, "int32_add": 0.1,
    "dram_read_32bit": 640.0,
    "sram_8kb_read_32bit": 5.0,
}
"""Energy per operation in picojoules, 45 nm, 0.9 V.

Source: M. Horowitz, "Computing's energy problem (and what we can do about it)",
IEEE ISSCC 2014, pp. 10-14, doi:10.1109/ISSCC.2014.6757323 (the per-operation table of
its Figure 1.1.9; the same numbers are used by Han et al., "Deep Compression", 2016).
"""

# Cost of one MAC at each precision: multiply + accumulate.
MAC_PJ: dict[str, float] = {
    "fp32": PJ_PER_OP["fp32_mult"] + PJ_PER_OP["fp32_add"],
    "fp16": PJ_PER_OP["fp16_mult"] + PJ_PER_OP["fp16_add"],
    "bf16": PJ_PER_OP["fp16_mult"] + PJ_PER_OP["fp16_add"],  # no bf16 row: charged as fp16
    "int8": PJ_PER_OP["int8_mult"] + PJ_PER_OP["int32_add"],  # int8 product, int32 accumulator
    "int4": PJ_PER_OP["int8_mult"] + PJ_PER_OP["int32_add"],  # no int4 row: charged as int8
}

BITS: dict[str, int] = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "int4": 4}

NOTE = (
    "estimate, not a measurement: Horowitz ISSCC 2014 45 nm per-op energies; MAC = mult + add "
    "at the layer precision (int8: int8 mult + int32 add); weights read once from DRAM "
    "(640 pJ/32 bit), activations once from 8 KB SRAM (5 pJ/32 bit); one forward pass at "
    "the measured batch"
)


@dataclass
class Energy:
    """Estimated energy of one forward pass, in microjoules (see ``note``)."""

    compute_uj: float
    memory_uj: float
    total_uj: float
    note: str = NOTE


def estimate_energy(layers: Iterable[LayerStat], input_numel: int = 0) -> Energy:
    """Energy of one forward pass over ``layers`` (from :func:`~torchslim.measure.macs.count_macs`).

    Compute: ``macs * MAC_PJ[precision]`` per layer. Memory: each layer's own weights
    (``params * bits``) from DRAM, each leaf's output activation (``output_numel * bits``)
    and the model input (``input_numel`` fp32 values) from SRAM.

    Example:
        >>> from torchslim.measure.macs import LayerStat
        >>> e = estimate_energy([LayerStat("fc", "Linear", 10**6, 0, [1], "fp32")])
        >>> round(e.compute_uj, 3)   # 1e6 MACs * 4.6 pJ
        4.6
    """
    layers = list(layers)
    names = {layer.name for layer in layers}
    compute_pj = weights_bits = activation_bits = 0.0
    for layer in layers:
        precision = layer.precision if layer.precision in MAC_PJ else "fp32"
        compute_pj += layer.macs * MAC_PJ[precision]
        weights_bits += layer.params * BITS[precision]
        is_leaf = not any(n.startswith(layer.name + ".") for n in names) if layer.name else len(layers) == 1
        if is_leaf:
            activation_bits += layer.output_numel * BITS[precision]
    activation_bits += input_numel * 32
    memory_pj = weights_bits / 32 * PJ_PER_OP["dram_read_32bit"] + activation_bits / 32 * PJ_PER_OP["sram_8kb_read_32bit"]
    compute_uj, memory_uj = compute_pj * 1e-6, memory_pj * 1e-6
    return Energy(compute_uj=compute_uj, memory_uj=memory_uj, total_uj=compute_uj + memory_uj)
