"""Training checkpoints: plain dicts written atomically, checksummed, the newest k kept.

A checkpoint is `{model, optimizer, step, config, ...}` saved with `torch.save` and loaded
with `weights_only=True` (tensors, numbers, strings, lists and dicts only: no pickle of
arbitrary objects). A SHA-256 of the file's bytes goes into a sidecar `.sha256` file
written after the checkpoint, so a truncated or altered file is caught before it loads.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from nanosora.atomic import atomic_path

_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated or corrupted; the message names the file."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def path_for(folder: Path, step: int) -> Path:
    return Path(folder) / f"ckpt-{step:08d}.pt"


def save(folder: str | Path, step: int, state: dict, keep: int = 3) -> Path:
    """Write ckpt-<step>.pt atomically with its checksum, then delete all but the newest `keep`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = path_for(folder, step)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        digest = _digest(tmp)
    with atomic_path(path.with_suffix(".sha256")) as tmp:
        tmp.write_text(digest + "\n")
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        old.with_suffix(".sha256").unlink(missing_ok=True)
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def load(path: str | Path) -> dict:
    """Load a checkpoint after checking its checksum; CheckpointError names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    sidecar = path.with_suffix(".sha256")
    if sidecar.exists():
        expected = sidecar.read_text().strip()
        if _digest(path) != expected:
            raise CheckpointError(f"{path}: checksum mismatch: the file is truncated or corrupted")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file; all mean the same here
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None


def sweep(folder: str | Path) -> int:
    """Delete temporary files left by writes that a crash interrupted (atomic writes name them
    .<name>.tmp*); only call this where no other process is writing. Returns how many."""
    n = 0
    for p in Path(folder).glob(".*.tmp*") if Path(folder).is_dir() else []:
        p.unlink(missing_ok=True)
        n += 1
    return n


def newest(folder: str | Path) -> dict | None:
    """The newest checkpoint in `folder` that loads; a damaged newest one is skipped with a
    warning so that a crash during the final write never blocks resuming."""
    import warnings

    for path in reversed(list_checkpoints(folder)):
        try:
            return load(path)
        except CheckpointError as e:
            warnings.warn(f"skipping {e}", stacklevel=2)
    return None
