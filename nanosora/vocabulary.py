"""What a model has words for, and which words of a prompt fall outside them.

A model learns only what its training captions talk about: a Flatland model knows colours,
shapes, sizes, motions and backgrounds, and "a stylish woman walks down a Tokyo street"
gives it nothing to draw. Rather than return coloured noise in silence, generation names
the content words of the prompt that no training caption (and, for a Flatland model, no
word of the prompt parser's vocabulary) ever used. A model's vocabulary is recorded from
its cache's captions when it is trained (`ModelConfig.vocabulary`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from functools import lru_cache

# function words carry no content of their own: a caption need not have used them
_FUNCTION_WORDS = """a an the and or but then so of on in at to into onto from by with without over
under it its it's is are was be been being as that this these those there here while when where
across around near for up down very just which who what some all each both one two three first
second third shot shots cut cuts scene"""
STOPWORDS = frozenset(_FUNCTION_WORDS.split())
_WORD = re.compile(r"[a-z][a-z'\-]*")


class UnknownWordsWarning(UserWarning):
    """A prompt uses content words the model never saw in training."""


def words(text: str) -> list[str]:
    """The lower-case words of a text, in order (letters, apostrophes, hyphens)."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def of_captions(captions: Iterable[str]) -> tuple[str, ...]:
    """The sorted vocabulary of a set of captions, as a model records it."""
    out: set[str] = set()
    for c in captions:
        out.update(words(c))
    return tuple(sorted(out))


@lru_cache(maxsize=1)
def parser_words() -> frozenset[str]:
    """Every word of the language tables: each synonym the Flatland prompt parser maps to a
    caption word, so a Flatland model knows it whichever captions it saw."""
    from nanosora.world import language
    from nanosora.world.describe import CONTINUATION_WORDS

    out: set[str] = set(CONTINUATION_WORDS)
    tables = (language.COLOUR_WORDS, language.SHAPE_WORDS, language.SIZE_WORDS, language.BACKGROUND_WORDS)
    for table in (*tables, language.MOTION_WORDS, language.DIRECTION_WORDS):
        for canon, variants in table.items():
            for phrase in (canon, *variants):
                out.update(words(phrase.replace("{d}", "")))
    for phrase in language.TRAIL_WORDS:
        out.update(words(phrase))
    return frozenset(out | {"left", "right", "up", "down", "background"})


@lru_cache(maxsize=1)
def flatland() -> frozenset[str]:
    """What a Flatland model trained before vocabularies were recorded knows: the parser's
    words and those of a fixed sample of detailed captions and short prompts. (Sampling
    takes a while: a model's recorded vocabulary is what generation reads.)"""
    import numpy as np

    from nanosora.world.caption import detailed_caption, short_prompt
    from nanosora.world.sample import sample_scene

    out = set(parser_words())
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = sample_scene(rng, aspect=float(rng.choice([0.5, 1.0, 2.0])))
        out.update(words(detailed_caption(scene, 2.0, rng, p=0.5)))
        out.update(words(short_prompt(scene, rng, p=0.5)))
    return frozenset(out)


def unknown(prompt: str, known: Iterable[str]) -> list[str]:
    """The prompt's content words outside `known`, each once, in the order they appear."""
    known = known if isinstance(known, (set, frozenset)) else set(known)
    seen, out = set(), []
    for w in words(prompt):
        w = w.strip("'-")
        if w.endswith("'s") and w[:-2] not in STOPWORDS:  # a possessive: the word itself
            w = w[:-2]
        if not w or w in STOPWORDS or w in known or w in seen:
            continue
        seen.add(w)
        out.append(w)
    return out


def warn(unknown_words: list[str], stacklevel: int = 3) -> None:
    if unknown_words:
        warnings.warn(message(unknown_words), UnknownWordsWarning, stacklevel=stacklevel)


def message(unknown_words: list[str]) -> str:
    return (
        f"the model never saw these words in training: {', '.join(unknown_words)}; "
        "it can only draw what its training captions describe"
    )
