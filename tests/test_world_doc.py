"""docs/world.md, the world's contract in the repository, agrees with the code's constants."""

import re
from pathlib import Path

from nanosora.world import spec

DOC = (Path(__file__).resolve().parent.parent / "docs" / "world.md").read_text()
FLAT = " ".join(DOC.split())  # the prose with its line breaks folded


def table(heading: str) -> dict[str, str]:
    """The first two columns of the table under a '## heading'."""
    part = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [r.strip("|").split("|") for r in part.splitlines() if r.startswith("|")]
    return {a.strip(): b.strip() for a, b, *_ in rows[2:]}


def rgb(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", s))


def test_palette_backgrounds_and_sizes_are_the_codes():
    assert {k: rgb(v) for k, v in table("Colours").items()} == spec.COLOURS
    assert {k: rgb(v) for k, v in table("Backgrounds").items()} == spec.BACKGROUNDS
    assert {k: float(v) for k, v in table("Shapes and sizes").items()} == spec.SIZES
    assert (
        f"The default is {spec.DEFAULT_BACKGROUND}." in DOC and f"The default is {spec.DEFAULT_SIZE}." in DOC
    )


def test_every_motion_and_its_figures_are_stated():
    motions = table("Motions")
    named = {m for row in motions for m in re.split(r" / |, ", row)}
    for m in spec.MOTIONS:
        verb, *rest = m.split()
        assert (
            m in named or verb in {n.split()[0] for n in named} and all(r in " ".join(named) for r in rest)
        ), m
    text = " ".join(motions.values())
    for figure in (spec.LINEAR_SPEED, spec.BOUNCE_SPEED, spec.FALL_ACCEL, spec.SPIN_DEG_PER_S):
        assert f"{figure:g}" in text, figure
    assert f"{spec.FALL_RESTITUTION:.0%}" in text and f"{spec.GROW_FACTOR:g}x" in text
    assert f"{spec.SHRINK_FACTOR:g}x" in text and f"{spec.SCALE_SECONDS:g} s" in text
    assert f"{spec.CAMERA_SPEED:g} of the width" in FLAT and f"{spec.TRAIL_OPACITY:.0%} opacity" in FLAT
    for shape, fill in spec.FILL_RATIOS.items():
        assert f"{fill:.3g}".rstrip("0").rstrip(".") in FLAT and f"for a {shape}" in FLAT


def test_no_document_points_outside_the_repository():
    root = Path(__file__).resolve().parent.parent
    files = [root / "README.md", *root.glob("docs/*.md"), *root.glob("models/*/MODEL_CARD.md")]
    files += list(root.glob("nanosora/**/*.py")) + list(root.glob("benchmarks/*.py"))
    outside = ("shared/", "world-spec", "DESIGN.md", "binding.md", "levers.md", "ecosystem.md")
    for f in files:
        text = f.read_text()
        assert not [w for w in outside if w in text], f
