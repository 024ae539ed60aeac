"""Generation on a busy machine: torch's default thread count against device.pick_threads.

A 4 s clip (default settings, shipped model) is generated, in turns:

1. alone, with every core (torch's default, and what pick_threads gives an idle machine);
2. beside another PyTorch job that keeps one core busy (a matrix-multiply loop on one
   thread, in a child process), with every core (torch's default);
3. the same, with the threads pick_threads chooses (what `nanosora generate` now does).

Reported: the median times and their ratios to (1). The competing job runs throughout 2 and
3, so they compete for the same cores.

    python benchmarks/threads.py [--json OUT]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch
from common import emit

from nanosora import device
from nanosora.model import load

PROMPT = "a red circle moves right"
REPEATS = 5

BUSY = """
import torch
torch.set_num_threads(1)
a = torch.randn(512, 512)
while True:
    a = torch.tanh(a @ a)
"""


def timed(model, threads: int) -> float:
    torch.set_num_threads(threads)
    times = []
    for i in range(REPEATS + 1):
        t = time.perf_counter()
        model.generate(PROMPT, seconds=4, seed=i, watermark=False)
        times.append(time.perf_counter() - t)
    return sorted(times[1:])[REPEATS // 2]  # the first run warms up


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    model = load()
    every = device.cores()
    alone = timed(model, every)
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(2.0)  # let it start
        picked = device.pick_threads()
        crowded_default = timed(model, every)
        crowded_picked = timed(model, picked)
    finally:
        busy.kill()
    out = {
        "clip": "4 s, 64x64, default settings",
        "cores": every,
        "alone_s": round(alone, 3),
        "beside_one_busy_core": {
            "default_threads": every,
            "default_s": round(crowded_default, 3),
            "picked_threads": picked,
            "picked_s": round(crowded_picked, 3),
        },
        "ratios_to_alone": {
            "default": round(crowded_default / alone, 2),
            "picked": round(crowded_picked / alone, 2),
        },
    }
    emit(out, args.json)


if __name__ == "__main__":
    main()
