"""Text encoding: word tokens, and a token per sentence where a model was trained with them."""

import torch

from nanosora.networks.text import TextEncoder, sentences


def test_sentences_split_after_full_stops_only():
    assert sentences("A red circle.  It moves right! Does it? yes") == [
        "A red circle.",
        "It moves right!",
        "Does it?",
        "yes",
    ]
    assert sentences("") == [] and sentences("a red circle moves right") == ["a red circle moves right"]


def test_sentence_tokens_follow_the_word_tokens_one_per_sentence():
    plain, slots = TextEncoder(), TextEncoder(sentence_tokens=True)
    caption = "A small red circle stays still. A large blue square moves right."
    words = plain.encode_tokens([caption])[0]
    out = slots.encode_tokens([caption, ""])
    assert out[0].shape == (words.shape[0] + 2, words.shape[1])
    torch.testing.assert_close(out[0][: words.shape[0]], words)
    for i, s in enumerate(sentences(caption)):  # each: that sentence alone, mean-pooled
        torch.testing.assert_close(out[0][words.shape[0] + i], plain.encode_tokens([s])[0].mean(0))
    # the two objects' tokens differ: each holds its own sentence
    assert not torch.allclose(out[0][-1], out[0][-2])
    torch.testing.assert_close(out[1], plain.encode_tokens([""])[0])  # no sentence, no extra token
