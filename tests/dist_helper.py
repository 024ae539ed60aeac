"""Run under torchrun by tests/test_distributed.py: train the tiny DiT on a fake cache."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nanosora.networks.dit import DIT_PRESETS  # noqa: E402
from nanosora.training import train  # noqa: E402
from nanosora.training.train_dit import train_dit  # noqa: E402
from tests.helpers import FakeCache  # noqa: E402

if __name__ == "__main__":
    out, accum = sys.argv[1], int(sys.argv[2])
    fsdp = len(sys.argv) > 3 and sys.argv[3] == "fsdp"
    stop = int(sys.argv[4]) if len(sys.argv) > 4 else None
    cfg = train.TrainConfig(steps=3, batch=2, accum=accum, lr=1e-3, warmup=1, ckpt_every=1, log_every=1)
    train_dit(out, DIT_PRESETS["tiny"], cfg, FakeCache(n=6), progress=False, fsdp=fsdp, stop_after=stop)
