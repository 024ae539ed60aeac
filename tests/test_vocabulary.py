"""A prompt outside the model's world is answered with the words it never saw: in the Python
API (a warning and a metadata field), the CLI (stderr) and the server (a field on the video)."""

import dataclasses
import warnings

import pytest
from fastapi.testclient import TestClient

from nanosora import cli, modeldir, vocabulary
from nanosora.model import load
from nanosora.server.api import create_app
from tests.helpers import make_tiny_model

OUTSIDE = "a stylish woman walks down a Tokyo street"


def test_the_words_outside_a_vocabulary_are_named_once_in_order():
    known = vocabulary.flatland()
    assert vocabulary.unknown(OUTSIDE, known) == ["stylish", "woman", "walks", "tokyo", "street"]
    # every paraphrase the parser maps counts as known, and function words never count
    assert vocabulary.unknown("A crimson ball ricochets on a dark background, then cut to it", known) == []
    assert vocabulary.unknown("a red dragon and a red dragon's cave", {"red"}) == ["dragon", "cave"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load(make_tiny_model(tmp_path_factory.mktemp("m")))


def test_generate_warns_and_records_the_unknown_words(model):
    with pytest.warns(vocabulary.UnknownWordsWarning, match="stylish, woman, walks, tokyo, street"):
        v = model.generate(OUTSIDE, steps=1, seconds=0)
    assert v.metadata["unknown_words"] == ["stylish", "woman", "walks", "tokyo", "street"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", vocabulary.UnknownWordsWarning)
        inside = model.generate("a big red circle stays still", steps=1, seconds=0)
    assert "unknown_words" not in inside.metadata


def test_a_model_trained_on_other_captions_knows_only_their_words(model, tmp_path):
    other = dataclasses.replace(model.config, trained_on="my-clips", vocabulary=("woman", "walks", "street"))
    path = make_tiny_model(tmp_path)
    modeldir.write_config(path, other)
    m = load(path)
    assert m.unknown_words(OUTSIDE) == ["stylish", "tokyo"]
    assert m.unknown_words("a red circle") == ["red", "circle"]


def test_the_cli_says_which_words_it_never_saw(model, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert (
        cli.main(
            [
                "generate",
                OUTSIDE,
                "--model",
                str(model.path),
                "--steps",
                "1",
                "--seconds",
                "0",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "warning: prompt: the model never saw these words in training: stylish, woman" in err
    assert out.exists()


def test_the_server_gives_the_unknown_words_on_the_video(model, tmp_path):
    app = create_app(lambda: model, tmp_path, start_workers=False)
    with TestClient(app) as c:
        v = c.post("/v1/videos", json={"prompt": OUTSIDE, "seconds": "1"}).json()
        assert v["unknown_words"] == ["stylish", "woman", "walks", "tokyo", "street"]
        assert c.get(f"/v1/videos/{v['id']}").json()["unknown_words"] == v["unknown_words"]
        assert c.post("/v1/videos", json={"prompt": "a red circle moves left"}).json()["unknown_words"] == []


def test_a_flatland_model_knows_its_recorded_words_and_the_parsers(model, tmp_path):
    path = make_tiny_model(tmp_path)
    modeldir.write_config(path, dataclasses.replace(model.config, vocabulary=("red", "circle")))
    # "crimson ball" is the parser's (mapped to "red circle"); "behind" only a caption's word
    assert load(path).unknown_words("a crimson ball behind a tree") == ["behind", "tree"]


def test_continuations_the_merge_reads_are_known_words():
    from nanosora.model import load

    m = load()
    for prompt in ("it keeps going", "it continues to move right", "the circle goes on spinning"):
        assert m.unknown_words(prompt) == [], prompt
    assert m.unknown_words("a zebra keeps going") == ["zebra"]
