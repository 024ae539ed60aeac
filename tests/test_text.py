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


CAPTIONS = [
    "On a black background, there is one object. A large red circle starts at the left and stays still.",
    "A BIG Blue square, moving right!",
    "",
    "the spinning triangle's path: zig-zag (fast) émigré",
    "word " * 200,  # past max_tokens: truncated
]


def test_the_default_encoder_gives_transformers_tokens_and_embeddings_without_importing_it():
    import subprocess
    import sys

    from nanosora.networks.text import _transformers_encoder, load_tokenizer, resolve

    ours = TextEncoder()
    # BertModel and its tokenizer, as the shipped models were trained
    tok, model = load_tokenizer(resolve(None), fast=False), _transformers_encoder(resolve(None))
    ids, mask = tok.batch(CAPTIONS, ours.max_tokens)
    assert ours.tokenizer.batch(CAPTIONS, ours.max_tokens)[0].tolist() == ids.tolist()
    assert ours.tokenizer.offsets(CAPTIONS[0], 128) == tok.offsets(CAPTIONS[0], 128)
    with torch.inference_mode():
        theirs = model(ids, attention_mask=mask.long()).last_hidden_state
    for i, e in enumerate(ours.encode_tokens(CAPTIONS)):
        assert e.shape[0] == int(mask[i].sum())
        torch.testing.assert_close(e, theirs[i, : e.shape[0]], atol=1e-5, rtol=1e-5)
    # a fresh process loads and runs it without transformers (seconds of every cold start)
    code = (
        "import sys; from nanosora.networks.text import TextEncoder; TextEncoder().encode(['a red circle']);"
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_folder_bert_cannot_compute_goes_through_transformers(tmp_path):
    import json
    import shutil

    from nanosora.networks.text import TransformersTokenizer, is_fast_bert, resolve

    src = resolve(None)
    assert is_fast_bert(src)
    for f in (
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ):
        shutil.copy(src / f, tmp_path / f)  # no tokenizer.json
    assert not is_fast_bert(tmp_path)
    enc = TextEncoder(str(tmp_path))
    assert isinstance(enc.tokenizer, TransformersTokenizer)
    torch.testing.assert_close(
        enc.encode_tokens(CAPTIONS[:2])[0], TextEncoder().encode_tokens(CAPTIONS[:2])[0]
    )
    cfg = json.loads((src / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(cfg | {"hidden_act": "relu"}))
    shutil.copy(src / "tokenizer.json", tmp_path / "tokenizer.json")
    assert not is_fast_bert(tmp_path)  # an activation bert.py does not compute
