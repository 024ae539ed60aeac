"""int8 weights for the transformer's linear layers, activations quantized on the fly (CPU).

Two back ends do the same arithmetic: torch.ao's eager dynamic quantization (deprecated, but
part of torch) and torchao's `Int8DynamicActivationInt8WeightConfig`, its successor, an extra
package. benchmarks/int8.py measures both side by side on the shipped model: on this
project's CPUs torchao's path came out slower than torch.ao's (closer to float32, but slower
than float32 itself), so torch.ao stays the default until torchao's CPU kernels catch up;
`nanosora.load(int8="torchao")` takes the other.
"""

from __future__ import annotations

import warnings

import torch

BACKENDS = ("torch.ao", "torchao")
DEFAULT = "torch.ao"


def int8(dit: torch.nn.Module, backend: str = DEFAULT) -> torch.nn.Module:
    """The transformer with int8 linear layers; `backend` is one of BACKENDS."""
    if backend not in BACKENDS:
        raise ValueError(f"int8 back end {backend!r} is not known: use one of {', '.join(BACKENDS)}")
    if backend == "torchao":
        try:
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
        except ImportError:
            raise ValueError("the torchao int8 back end needs torchao: pip install torchao") from None
        quantize_(dit, Int8DynamicActivationInt8WeightConfig())
        return dit
    from torch.ao.quantization import quantize_dynamic

    # the deprecation warnings are about torch.ao's eager API itself, not this use of it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        return quantize_dynamic(dit, {torch.nn.Linear}, dtype=torch.qint8)
