"""Atomic file writes: every file the project writes (videos, weights, checkpoints, cache
shards, configs, logs) goes to a temporary file beside its target and is renamed into place,
so a failed or interrupted write never leaves a half file and an old file survives intact."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


class WriteError(ValueError):
    """A file cannot be written where it was asked for; the message names it."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it."""
    path = Path(path)
    if not path.parent.exists():
        raise WriteError(f"{path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the usual permissions for new files
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
