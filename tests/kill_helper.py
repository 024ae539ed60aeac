"""Run by tests/test_faults.py, to be killed: train the tiny DiT on a fake cache, a
checkpoint after every step; touch OUT/started once the imports are done."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nanosora.networks.dit import DIT_PRESETS  # noqa: E402
from nanosora.training import train  # noqa: E402
from nanosora.training.train_dit import train_dit  # noqa: E402
from tests.helpers import FakeCache  # noqa: E402

CONFIG = train.TrainConfig(steps=40, batch=2, lr=1e-3, warmup=2, ckpt_every=1, log_every=1, keep=2)

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "started").touch()
    train_dit(out, DIT_PRESETS["tiny"], CONFIG, FakeCache(n=6), progress=False)
