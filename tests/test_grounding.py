"""Grounding losses (grounding.py): which tokens are each object's words, what the two
losses measure, and that the transformer's attention maps are the attention it computes."""

import dataclasses

import pytest
import torch

from nanosora.networks.dit import DIT_PRESETS, DiT
from nanosora.networks.layout import Layout
from nanosora.training.grounding import (
    Grounding,
    cross_loss,
    grounding_losses,
    object_weight,
    self_loss,
    token_objects,
)
from nanosora.training.objective import check_objective, dit_loss
from nanosora.training.train_dit import DiTTrainConfig
from tests.helpers import FakeCache

LAYOUT_DIT = dataclasses.replace(DIT_PRESETS["tiny"], layout=True)
CAPTION = (
    "A red circle starts at the top left and moves right. "
    "A big blue square starts at the bottom right and stays still. The background is black."
)


@pytest.fixture(scope="module")
def tokenizer():
    from nanosora.networks import text

    return text.load_tokenizer(text.resolve(None))


def test_each_objects_words_are_the_tokens_of_its_own_sentence(tokenizer):
    words = token_objects(tokenizer, [CAPTION], objects=3, length=40, max_tokens=77)
    toks = tokenizer.tokens(CAPTION, 77)

    def of(k):
        return [toks[j] for j in range(len(toks)) if words[0, k, j] > 0]

    assert "red" in of(0) and "circle" in of(0) and "blue" not in of(0)
    assert "blue" in of(1) and "square" in of(1) and "red" not in of(1)
    assert words[0, 2].sum() == 0  # a third object the caption does not have
    assert words[0, :, 0].sum() == 0  # [CLS] belongs to no one
    assert "background" not in of(0) + of(1)
    assert words[0, :, len(toks) :].sum() == 0  # padding


def _two(cov_a, cov_b):
    """A Grounding of two objects on 4 tokens, with words 0 and 1 of 3 text tokens."""
    cov = torch.tensor([[cov_a, cov_b]], dtype=torch.float32)  # (1, 2, 4)
    words = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    return Grounding(cov, words)


def test_the_cross_loss_is_the_share_of_an_objects_words_read_outside_its_box():
    g = _two([1, 1, 0, 0], [0, 0, 1, 1])
    # tokens 0-1 (object 0's box) read word 0, tokens 2-3 read word 1: all inside
    good = torch.tensor([[[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]]])
    swapped = torch.tensor([[[0.0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]]])
    assert cross_loss(good, g) == pytest.approx(0.0)
    assert cross_loss(swapped, g) == pytest.approx(1.0)
    # with no text kept there is nothing to ground
    assert cross_loss(swapped, g.masked(torch.tensor([False]))) == 0


def test_the_self_loss_is_attention_from_one_objects_box_into_anothers():
    g = _two([1, 1, 0, 0], [0, 0, 1, 1])
    within = torch.tensor([[[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]]])
    across = within.flip(-1)  # every token reads the other object's box
    assert self_loss(within, g) == pytest.approx(0.0)
    assert self_loss(across, g) == pytest.approx(1.0)
    # one object alone: no other box to leak into
    alone = _two([1, 1, 0, 0], [0, 0, 0, 0])
    assert self_loss(across, alone) == 0


def test_the_maps_are_the_attention_the_transformer_computes():
    torch.manual_seed(0)
    m = DiT(LAYOUT_DIT).eval()
    for p in m.parameters():  # a trained-looking model: nothing zero
        p.data.normal_(0, 0.2)
    x, t = torch.randn(2, 4, 2, 8, 8), torch.rand(2)
    text, mask = torch.randn(2, 5, 384), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    with torch.no_grad():
        plain = m(x, t, text, mask)
        v, maps = m(x, t, text, mask, maps=True)
    assert torch.allclose(plain, v, atol=1e-5)
    assert len(maps) == LAYOUT_DIT.depth
    n = 2 * 4 * 4
    for s, c in maps:
        assert s.shape == (2, n, n) and c.shape == (2, n, 5)
        assert torch.allclose(s.sum(-1), torch.ones(2, n), atol=1e-5)
        assert c[0, :, 3:].abs().max() == 0  # padding is never read
    # the losses are differentiable through the maps
    g = Grounding(torch.rand(2, 3, n), torch.tensor([[1.0, 0, 0, 0, 0]]).expand(2, 3, 5).clone())
    v, maps = m(x, t, text, mask, maps=True)
    c, s = grounding_losses(maps, g)
    (c + s).backward()
    assert m.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert m.blocks[0].cross.q.weight.grad.abs().sum() > 0


def test_grounding_needs_a_layout_model_and_weights_of_zero_or_more():
    src = FakeCache()
    with pytest.raises(ValueError, match="layouts"):
        check_objective(DiTTrainConfig(ground_self=0.1), src, DIT_PRESETS["tiny"])
    with pytest.raises(ValueError, match="grounding weights"):
        check_objective(DiTTrainConfig(ground_cross=-1.0), src, DIT_PRESETS["tiny"])


def test_the_grounding_terms_add_to_the_flow_loss_and_only_with_words():
    torch.manual_seed(0)
    m = DiT(LAYOUT_DIT)
    for p in m.parameters():
        p.data.normal_(0, 0.2)
    lat = torch.randn(2, 4, 2, 8, 8)
    text, mask = torch.randn(2, 6, 384), torch.ones(2, 6, dtype=torch.bool)
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]).expand(2, 2, 2, 4).clone()
    layout = Layout(torch.randn(2, 2, 384), boxes)
    words = torch.zeros(2, 2, 6)
    words[:, 0, 1], words[:, 1, 2] = 1, 1
    null = torch.zeros(3, 384)
    plain = DiTTrainConfig(text_dropout=0.0)
    grounded = DiTTrainConfig(text_dropout=0.0, ground_cross=1.0, ground_self=1.0)
    base = dit_loss(m, lat, text, mask, null, (0, 0, 0), plain, layout=layout, words=words)
    with_terms = dit_loss(m, lat, text, mask, null, (0, 0, 0), grounded, layout=layout, words=words)
    no_words = dit_loss(m, lat, text, mask, null, (0, 0, 0), grounded, layout=layout)
    assert with_terms > base + 1e-3
    assert torch.allclose(no_words, base)


def test_the_object_weight_is_one_outside_boxes_and_larger_inside_by_coverage():
    # object 0 covers the left half of frame 0 only; object 1 is out of view throughout
    boxes = torch.zeros(1, 2, 2, 4)
    boxes[0, 0, 0] = torch.tensor([0.0, 0.0, 0.5, 1.0])
    w = object_weight(Layout(torch.zeros(1, 2, 384), boxes), (1, 4, 2, 4, 4), 3.0)
    assert w.shape == (1, 1, 2, 4, 4)
    assert torch.all(w[0, 0, 0, :, :2] == 4.0) and torch.all(w[0, 0, 0, :, 2:] == 1.0)
    assert torch.all(w[0, 0, 1] == 1.0)


def test_the_object_weight_moves_the_loss_toward_the_objects_and_needs_a_layout_model():
    torch.manual_seed(0)
    m = DiT(LAYOUT_DIT)
    for p in m.parameters():
        p.data.normal_(0, 0.2)
    lat = torch.randn(2, 4, 2, 8, 8)
    text, mask = torch.randn(2, 6, 384), torch.ones(2, 6, dtype=torch.bool)
    boxes = torch.tensor([0.0, 0.0, 0.5, 0.5]).expand(2, 1, 2, 4).clone()
    layout = Layout(torch.randn(2, 1, 384), boxes)
    null = torch.zeros(3, 384)
    args = (m, lat, text, mask, null, (0, 0, 0))
    plain = dit_loss(*args, DiTTrainConfig(text_dropout=0.0), layout=layout)
    weighted = dit_loss(*args, DiTTrainConfig(text_dropout=0.0, object_weight=1e6), layout=layout)
    # with a huge weight the loss is the mean over the boxed quarter alone: not the plain mean
    assert not torch.allclose(weighted, plain, rtol=1e-3)
    with pytest.raises(ValueError, match="object_weight"):
        check_objective(DiTTrainConfig(object_weight=-1.0), FakeCache(), DIT_PRESETS["tiny"])
    with pytest.raises(ValueError, match="layouts"):
        check_objective(DiTTrainConfig(object_weight=1.0), FakeCache(), DIT_PRESETS["tiny"])
