"""Regional cross-attention (layout.region_mask, DiTConfig.regions): a token inside an
object's box reads that object's words and the shared ones, never another object's."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nanosora.networks.conditioning import Conditioning
from nanosora.networks.dit import DIT_PRESETS, DiT, DiTConfig
from nanosora.networks.layout import Layout, region_mask
from nanosora.networks.text import span_tokens
from tests.helpers import fill_zeros


def test_each_box_reads_its_own_words_and_the_shared_ones():
    # 3 tokens: the first in object 0's box, the second in object 1's, the third in neither
    cov = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]])
    # 5 text tokens: [CLS], object 0's word, object 1's word, a shared word, padding
    words = torch.tensor([[[0.0, 1, 0, 0], [0, 0, 1, 0]]])  # shorter than the text: padded
    text_mask = torch.tensor([[True, True, True, True, False]])
    m = region_mask(cov, words, text_mask)
    assert m.tolist() == [
        [
            [True, True, False, True, False],
            [True, False, True, True, False],
            [True, True, True, True, False],
        ]
    ]


def test_overlapping_boxes_reach_a_token_and_objects_without_words_bound_nothing():
    cov = torch.tensor([[[1.0, 0.0], [0.3, 1.0]]])
    words = torch.tensor([[[0.0, 1, 0], [0, 0, 0]]])  # object 1 has no words it can be given
    m = region_mask(cov, words, torch.ones(1, 3, dtype=torch.bool))
    assert m[0, 0].tolist() == [True, True, True]  # object 0 and the wordless object 1 meet here
    assert m[0, 1].tolist() == [True, True, True]  # only the wordless object: the whole caption


def test_span_tokens_finds_each_sentence_by_its_characters():
    from nanosora.networks.text import TextEncoder

    tok = TextEncoder().tokenizer
    caption = "On a black background. A red circle stays still. A blue square falls."
    w = span_tokens(tok, caption, ["A red circle stays still.", "A blue square falls.", "not there"], 128)
    toks = tok.tokens(caption, 128)
    assert w.shape == (3, len(toks))
    red = [t for t, on in zip(toks, w[0].tolist(), strict=True) if on]
    blue = [t for t, on in zip(toks, w[1].tolist(), strict=True) if on]
    assert red == ["a", "red", "circle", "stays", "still", "."] and blue == [
        "a",
        "blue",
        "square",
        "falls",
        ".",
    ]
    assert w[2].sum() == 0 and w[:, 0].sum() == 0  # [CLS] is no one's


def _two_objects(words, frames=2):
    emb = torch.randn(1, 2, 384, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[[[0.0, 0.0, 0.5, 1.0]] * frames, [[0.5, 0.0, 1.0, 1.0]] * frames]])
    return Layout(emb, boxes, words)


def _twins(cfg: DiTConfig, **more):
    """Two tiny transformers with the same weights, the second with `more` config, and an
    input: (first, second, x, t, text, mask, each object's words)."""
    torch.manual_seed(0)
    first = fill_zeros(DiT(cfg), 0.05).eval()
    second = DiT(dataclasses.replace(cfg, **more)).eval()
    second.load_state_dict(first.state_dict())
    x, t = torch.randn(1, 4, 2, 4, 4), torch.tensor([0.5])
    text, mask = torch.randn(1, 5, 384), torch.ones(1, 5, dtype=torch.bool)
    words = torch.tensor([[[0.0, 1, 1, 0, 0], [0, 0, 0, 1, 1]]])
    return first, second, x, t, text, mask, words


def test_a_transformer_with_regions_bounds_attention_only_where_words_are_known():
    cfg = dataclasses.replace(DIT_PRESETS["tiny"], layout=True)
    plain, bounded, x, t, text, mask, words = _twins(cfg, regions=True)
    with torch.no_grad():
        given = Conditioning(layout=_two_objects(words))
        unknown = Conditioning(layout=_two_objects(None))
        torch.testing.assert_close(bounded(x, t, text, mask, unknown), plain(x, t, text, mask, unknown))
        torch.testing.assert_close(plain(x, t, text, mask, given), plain(x, t, text, mask, unknown))
        assert not torch.allclose(bounded(x, t, text, mask, given), plain(x, t, text, mask, given))


def test_regions_need_a_layout_model():
    with pytest.raises(ValueError, match="needs layout"):
        DiTConfig(regions=True).validate()


def test_a_planned_layout_carries_each_objects_words(tmp_path):
    from nanosora.model import load
    from tests.test_layout import _layout_model

    m = load(_layout_model(tmp_path))
    caption = "On a black background, there is one object. A red circle starts at the left and stays still."
    plan = m.plan(caption, 1.0, 1.0)
    lay = plan.layout([0.0, 0.125, 0.25, 0.375, 0.5], 4)
    assert lay.words is not None and lay.words.shape[:2] == lay.emb.shape[:2]
    # every object's words are tokens of its own sentence, and the shared sentence is no one's
    for k, sentence in enumerate(plan.sentences):
        assert (
            lay.words[0, k].sum() == span_tokens(m.text_encoder.tokenizer, caption, [sentence], 128).sum() > 0
        )


def test_a_transformer_with_regions_trains_with_its_attention_bounded():
    from nanosora.training.objective import dit_loss
    from nanosora.training.train_dit import DiTTrainConfig
    from tests.helpers import FakeCache

    src = FakeCache(n=2, shape=(4, 6, 4, 4))
    latents, text, mask, _ = src.batch(1, 0, 0)
    layout = _two_objects(None, frames=6)
    words = torch.tensor([[[0.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]]])
    dcfg = DiTTrainConfig(text_dropout=0.0, layout_dropout=0.0)
    cfg = dataclasses.replace(DIT_PRESETS["tiny"], layout=True)
    torch.manual_seed(0)
    plain = fill_zeros(DiT(cfg), 0.05)
    bounded = DiT(dataclasses.replace(cfg, regions=True))
    bounded.load_state_dict(plain.state_dict())

    def loss(model, w):
        return dit_loss(model, latents, text, mask, src.null_text, (0, 0, 0), dcfg, None, layout, w).item()

    assert loss(plain, words) == loss(plain, None) == loss(bounded, None) > 0
    assert loss(bounded, words) != loss(bounded, None)


def test_self_attention_keeps_one_objects_tokens_from_anothers():
    from nanosora.networks.layout import self_region_mask

    # 4 tokens: object 0's, object 1's, both objects' (they overlap there), no one's
    cov = torch.tensor([[[1.0, 0.0, 0.4, 0.0], [0.0, 1.0, 0.6, 0.0]]])
    words = torch.tensor([[[0.0, 1, 0], [0, 0, 1]]])
    m = self_region_mask(cov, words)
    assert m[0].tolist() == [
        [True, False, True, True],
        [False, True, True, True],
        [True, True, True, True],
        [True, True, True, True],
    ]
    # an object without words bounds nothing: every token reads every token
    assert self_region_mask(cov, torch.zeros_like(words)).all()


def test_a_transformer_with_self_regions_changes_only_where_two_objects_have_words():
    cfg = dataclasses.replace(DIT_PRESETS["tiny"], layout=True, regions=True)
    cross, both, x, t, text, mask, words = _twins(cfg, regions_self=True)
    one = torch.tensor([[[0.0, 1, 1, 0, 0], [0, 0, 0, 0, 0]]])  # the second object has no words
    with torch.no_grad():
        lone = Conditioning(layout=_two_objects(one))
        given = Conditioning(layout=_two_objects(words))
        torch.testing.assert_close(both(x, t, text, mask, lone), cross(x, t, text, mask, lone))
        assert not torch.allclose(both(x, t, text, mask, given), cross(x, t, text, mask, given))


def test_self_regions_need_regions():
    with pytest.raises(ValueError, match="needs regions"):
        DiTConfig(layout=True, regions_self=True).validate()
