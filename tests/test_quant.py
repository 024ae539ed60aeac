"""int8 transformers (nanosora.networks.quant): each back end stays close to float32; unknown ones
are refused."""

import copy

import pytest
import torch

from nanosora.networks import quant
from nanosora.networks.dit import DIT_PRESETS, DiT
from tests.helpers import fill_zeros


def inputs(b=2):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(b, 4, 3, 4, 4, generator=g),
        torch.rand(b, generator=g),
        torch.randn(b, 6, 384, generator=g),
        torch.ones(b, 6, dtype=torch.bool),
    )


@pytest.mark.parametrize("backend", quant.BACKENDS)
def test_int8_is_close_to_float32_and_not_equal(backend):
    if backend == "torchao":
        pytest.importorskip("torchao")  # an optional package
    torch.manual_seed(0)
    dit = fill_zeros(DiT(DIT_PRESETS["tiny"]), 0.05).eval()
    x = inputs()
    with torch.no_grad():
        ref = dit(*x)
        q = quant.int8(copy.deepcopy(dit), backend)
        out = q(*x)
    assert not torch.equal(out, ref)  # the linear layers really are int8
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def test_an_unknown_back_end_is_refused_by_name():
    with pytest.raises(ValueError, match="use one of torch.ao, torchao"):
        quant.int8(DiT(DIT_PRESETS["tiny"]), "fp8")
