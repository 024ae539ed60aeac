"""Every name the documentation points to exists: the imports in its code, the dotted names
in its text, and the source files it cites. A module that moves and a doc that is not updated
fail here instead of on a reader."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "models" / "default" / "MODEL_CARD.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
IMPORT = re.compile(r"^\s*from (nanosora[\w.]*) import ([\w, ]+)$|^\s*import (nanosora[\w.]*)$", re.M)
DOTTED = re.compile(r"`(nanosora(?:\.\w+)+)")
PATH = re.compile(r"\bnanosora/[\w/]+\.(?:py|html)\b")


def _resolve(dotted: str):
    """The object a dotted name means: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def _names(doc: Path):
    text = doc.read_text()
    for m in IMPORT.finditer(text):
        if m.group(3):
            yield m.group(3)
        else:
            yield from (f"{m.group(1)}.{n.strip()}" for n in m.group(2).split(",") if n.strip())
    yield from DOTTED.findall(text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_documented_name_imports(doc):
    names = sorted(set(_names(doc)))
    missing = []
    for n in names:
        try:
            _resolve(n)
        except (ImportError, AttributeError):
            missing.append(n)
    assert not missing, f"{doc.name} names what does not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_cited_source_file_exists(doc):
    missing = sorted({p for p in PATH.findall(doc.read_text()) if not (ROOT / p).is_file()})
    assert not missing, f"{doc.name} cites files that are not in the repository: {missing}"


def test_the_checks_would_catch_a_stale_name():
    with pytest.raises(ModuleNotFoundError):
        _resolve("nanosora_gone.train_dit")
    with pytest.raises(AttributeError):
        _resolve("nanosora.training.train_dit.no_such_name")
    assert _resolve("nanosora.training.train_dit.train_dit").__name__ == "train_dit"
