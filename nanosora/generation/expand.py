"""Prompt expansion: a short prompt -> a detailed caption like the training captions, text
to text, before anything is generated (request validation uses it without the generation
pipeline). A prompt the Flatland parser cannot place is used as it is, and said: an
ExpansionWarning gives the parser's reason, and the result's metadata keeps it
("not_expanded")."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np


class ExpansionWarning(UserWarning):
    """A prompt was used as it is: the Flatland expander could not place it (the message says why)."""


def _unplaced(prompt: str, reason: Exception) -> None:
    warnings.warn(
        f"the prompt {prompt!r} is used as it is, not expanded into a detailed caption: {reason}",
        ExpansionWarning,
        stacklevel=3,
    )


def expand_prompt(
    prompt: str,
    seconds: float,
    aspect: float,
    seed: int,
    hook: Callable[[str], str] | None = None,
    flatland: bool = True,
):
    """A short prompt -> a detailed caption like the training captions. For a model trained
    on Flatland (`flatland`), Flatland prompts are expanded by the world's parser (a concrete
    plan of sizes, places and motions); anything else goes to `hook` (an external language
    model) or is used as it is: a model trained on other videos never gets Flatland captions."""
    from nanosora.world.caption import detailed_caption
    from nanosora.world.parse import PromptError, scene_from_prompt

    if not flatland:
        return hook(prompt) if hook is not None else prompt
    try:
        scene = scene_from_prompt(prompt, np.random.default_rng(seed), aspect=aspect, seconds=seconds)
    except (PromptError, ValueError) as e:
        if hook is not None:
            return hook(prompt)
        _unplaced(prompt, e)
        return prompt
    return detailed_caption(scene, seconds)


def expand_given(
    prompt: str,
    frames: np.ndarray,
    fps: float,
    seconds: float,
    aspect: float,
    seed: int,
    hook: Callable[[str], str] | None = None,
    flatland: bool = True,
    end: bool = True,
    places: bool = True,
) -> str:
    """expand_prompt for a prompt that comes with frames (an image to animate, a clip to
    extend or connect): for a Flatland model the frames are read first (world.describe: at
    their `end` or start) and the prompt's words merged into what they show, so "it moves
    right" with an image of a yellow circle is captioned as that yellow circle moving right,
    starting where it is (`places`). A prompt that cannot be merged is expanded as it is."""
    from nanosora.world.caption import detailed_caption
    from nanosora.world.describe import read, scene_for

    if flatland:
        seen = read(frames, fps, end=end)
        scene = scene_for(prompt, seen, np.random.default_rng(seed), aspect, seconds, places=places)
        if scene is not None:
            return detailed_caption(scene, seconds)
    return expand_prompt(prompt, seconds, aspect, seed, hook, flatland)


def shot_references(prompts: list[str]) -> None:
    """Refuse a shot that names an object as known ("the blue square") when no earlier shot
    named an object of that colour: there is nothing for it to refer to."""
    import re

    from nanosora.world import spec
    from nanosora.world.language import normalise

    sizes, colours = "|".join(spec.SIZES), "|".join(spec.COLOURS)
    known: set[str] = set()
    for i, p in enumerate(prompts):
        text = normalise(p)
        for colour in re.findall(rf"\bthe\s+(?:(?:{sizes})\s+)?({colours})\b", text):
            if colour not in known:
                raise ValueError(
                    f"shot {i + 1} ({p!r}) refers to 'the {colour} ...', but no earlier shot names a "
                    f"{colour} object: introduce it with 'a {colour} ...' in this or an earlier shot"
                )
        known |= set(re.findall(rf"\b({colours})\b", text))


def expand_shots(
    prompts: list[str],
    seconds: list[float],
    aspect: float,
    seed: int,
    hook: Callable[[str], str] | None = None,
    flatland: bool = True,
) -> list[str]:
    """A shot list read as one story: a detailed caption per shot, in which an object an
    earlier shot introduced ("the blue square") keeps the size, shape and colour it was given
    there (the world spec's shots: objects keep them across a cut). Shots the Flatland parser
    cannot read together are expanded one by one (expand_prompt). The shots are checked
    first (model.check_shots, which refuses a reference to nothing)."""
    import dataclasses

    from nanosora.world.caption import detailed_caption
    from nanosora.world.language import join_shots
    from nanosora.world.parse import PromptError, scene_from_prompt

    if flatland and len(prompts) > 1:
        story = join_shots(prompts)
        try:
            scene = scene_from_prompt(story, np.random.default_rng(seed), aspect=aspect, seconds=sum(seconds))
        except (PromptError, ValueError):
            scene = None
        if scene is not None and len(scene.shots) == len(prompts):
            return [
                detailed_caption(dataclasses.replace(scene, shots=[shot]), secs)
                for shot, secs in zip(scene.shots, seconds, strict=True)
            ]
    return [expand_prompt(p, s, aspect, seed, hook, flatland) for p, s in zip(prompts, seconds, strict=True)]
