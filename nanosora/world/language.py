"""Flatland's vocabulary: the words a prompt may use for each canonical term.

One table serves both directions: captions draw paraphrases from it (so the model learns
language rather than memorising one phrasing) and the parser maps every variant back to
the canonical grammar of docs/world.md. Add a synonym here and both learn it.
"""

from __future__ import annotations

import re

import numpy as np

COLOUR_WORDS: dict[str, list[str]] = {
    "red": ["crimson", "scarlet", "cherry"],
    "orange": ["amber", "tangerine"],
    "yellow": ["golden", "gold", "lemon"],
    "green": ["emerald", "lime"],
    "cyan": ["turquoise", "teal", "aqua"],
    "blue": ["azure", "cobalt", "navy"],
    "purple": ["violet", "lavender"],
    "pink": ["rose", "magenta"],
}
SHAPE_WORDS: dict[str, list[str]] = {
    "circle": ["ball", "disc", "disk", "dot"],
    "square": ["box", "block", "tile"],
    "triangle": ["wedge"],
}
SIZE_WORDS: dict[str, list[str]] = {
    "small": ["tiny", "little"],
    "medium": ["mid-sized", "medium-sized"],
    "large": ["big", "huge"],
}
BACKGROUND_WORDS: dict[str, list[str]] = {
    "black": ["dark"],
    "gray": ["grey"],
    "white": ["light"],
}
_DIRS = {"left": "left", "right": "right", "up": "up", "down": "down"}
# Motion paraphrases; {d} stands for a direction and is matched with an optional "to the".
MOTION_WORDS: dict[str, list[str]] = {
    "moves {d}": [
        "moving {d}",
        "rolls {d}",
        "rolling {d}",
        "slides {d}",
        "sliding {d}",
        "glides {d}",
        "gliding {d}",
        "drifts {d}",
        "drifting {d}",
        "travels {d}",
        "traveling {d}",
        "heads {d}",
        "heading {d}",
        "goes {d}",
        "going {d}",
    ],
    "bounces": ["bouncing", "bounces around", "bouncing around", "ricochets", "ricocheting"],
    "falls": ["falling", "drops", "dropping", "falls down", "drops down"],
    "spins": ["spinning", "rotates", "rotating", "twirls", "twirling"],
    "grows": ["growing", "expands", "expanding", "gets bigger", "getting bigger", "swells"],
    "shrinks": ["shrinking", "gets smaller", "getting smaller", "contracts", "contracting"],
    "stays still": [
        "staying still",
        "sits still",
        "sitting still",
        "stays put",
        "does not move",
        "doesn't move",
        "remains still",
        "rests",
        "resting",
        "is still",
        "stands still",
    ],
}
TRAIL_WORDS = ["leaves a trail", "leaving a trail", "with a trail", "and leaves a trail"]
DIRECTION_WORDS = {"up": ["upward", "upwards"], "down": ["downward", "downwards"]}


def _expand_motion(canon: str, phrase: str) -> list[tuple[str, str]]:
    if "{d}" not in canon:
        return [(phrase, canon)]
    out = []
    for d in _DIRS:
        for dword in [d, *DIRECTION_WORDS.get(d, [])]:
            out.append((phrase.replace("{d}", dword), canon.replace("{d}", d)))
            out.append((phrase.replace("{d}", f"to the {dword}"), canon.replace("{d}", d)))
    return out


def _replacements() -> list[tuple[re.Pattern, str]]:
    pairs: list[tuple[str, str]] = []
    for table in (COLOUR_WORDS, SHAPE_WORDS, SIZE_WORDS, BACKGROUND_WORDS):
        for canon, words in table.items():
            pairs += [(w, canon) for w in words]
    for canon, words in MOTION_WORDS.items():
        for phrase in [canon, *words]:
            pairs += [(p, c) for p, c in _expand_motion(canon, phrase) if p != c]
    pairs.sort(key=lambda p: -len(p[0]))  # longest phrase first: "bounces around" before "bounces"
    return [(re.compile(rf"\b{re.escape(p)}\b"), c) for p, c in pairs]


_REPLACEMENTS = _replacements()


SHOT_JOIN = ", then cut to "


def join_shots(prompts) -> str:
    """Shot prompts as one multi-shot prompt ("A, then cut to B"), the form the parser reads."""
    return SHOT_JOIN.join(p.strip().rstrip(".") for p in prompts)


def normalise(text: str) -> str:
    """Lower-case, tidy punctuation and map every known paraphrase to its canonical words."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[.;:!?]+", " , ", text)
    text = re.sub(r"[^a-z0-9,'\- ]", " ", text)
    for pat, canon in _REPLACEMENTS:
        text = pat.sub(canon, text)
    text = re.sub(r"\s*,\s*", ", ", text)
    return re.sub(r"\s+", " ", text).strip(" ,")


def paraphrase(canon: str, table: dict[str, list[str]], rng: np.random.Generator, p: float) -> str:
    """The canonical word, or with probability p one of its synonyms."""
    words = table.get(canon, [])
    if words and rng.random() < p:
        return str(rng.choice(words))
    return canon


def motion_phrase(motion: str, rng: np.random.Generator | None, p: float = 0.0) -> str:
    """A short-prompt phrase for a motion: canonical, or a paraphrase with probability p."""
    if rng is None or rng.random() >= p:
        return motion
    if motion.startswith("moves"):
        d = motion.split()[1]
        template = str(rng.choice(MOTION_WORDS["moves {d}"]))
        if d in ("left", "right"):
            dword = ("to the " if rng.random() < 0.4 else "") + d
        else:
            dword = d if rng.random() < 0.5 else DIRECTION_WORDS[d][0]
        return template.replace("{d}", dword)
    return str(rng.choice(MOTION_WORDS.get(motion, [motion])))
