"""Colour-shape-motion combinations the default model never sees in training, so that the
world benchmark's "held-out compositions" suite measures generalisation: every colour,
shape and motion below appears in training, only these triples do not."""

from __future__ import annotations

from nanosora.world.scene import Exclusions

HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("red", "square", "moves up"),
        ("green", "circle", "bounces"),
        ("blue", "triangle", "moves left"),
        ("yellow", "square", "spins"),
        ("purple", "circle", "falls"),
        ("orange", "triangle", "moves down"),
        ("cyan", "square", "grows"),
        ("pink", "circle", "moves right"),
    }
)


def exclusions() -> Exclusions:
    return Exclusions(set(HELD_OUT))
