"""Cold start: what a person waits for from typing `nanosora generate` to having the clip.

1. Whole processes, in turns (median of `--repeats` each, idle machine): `python -c "import
   torch"` beside `nanosora generate PROMPT -o clip.mp4` with the shipped model. Target: the
   generation within 2x of importing torch.
2. The split of one generation in a fresh process: imports, model load (weights and text
   encoder), the text, sampling and decoding (one `Model.generate`), and writing the file,
   with the part of writing that signs the C2PA Content Credentials measured beside an
   unsigned save of the same clip (their ratio: what Content Credentials cost a generation).

    python benchmarks/cold_start.py [--repeats 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit

PROMPT = "a red circle moves right"

SPLIT = r"""
import json, sys, time
t0 = time.perf_counter()
from nanosora.model import load
from nanosora import credentials
t1 = time.perf_counter()
m = load()
t2 = time.perf_counter()
v = m.generate(sys.argv[1], seed=0)
t3 = time.perf_counter()
out = sys.argv[2]
v.save(out + "/a.mp4")
t4 = time.perf_counter()
signed, unsigned = [], []
sign = credentials.sign
for i in range(5):  # in turns, the same clip, signed and not
    s = time.perf_counter(); v.save(out + f"/s{i}.mp4"); signed.append(time.perf_counter() - s)
    credentials.sign = lambda path, meta, who=None: path
    s = time.perf_counter(); v.save(out + f"/u{i}.mp4"); unsigned.append(time.perf_counter() - s)
    credentials.sign = sign
print(json.dumps({"imports": t1 - t0, "load": t2 - t1, "generate": t3 - t2, "write": t4 - t3,
                  "save_signed": sorted(signed)[2], "save_unsigned": sorted(unsigned)[2]}))
"""


def wall(cmd: list[str], cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    nanosora = str(Path(sys.executable).with_name("nanosora"))
    with tempfile.TemporaryDirectory() as tmp:
        torch_s, gen_s = [], []
        wall([sys.executable, "-c", "import torch"], tmp)  # warm the file cache for both
        wall([nanosora, "generate", PROMPT, "-o", "w.mp4"], tmp)
        for _ in range(args.repeats):
            torch_s.append(wall([sys.executable, "-c", "import torch"], tmp))
            gen_s.append(wall([nanosora, "generate", PROMPT, "-o", "clip.mp4"], tmp))
        child = subprocess.run(
            [sys.executable, "-c", SPLIT, PROMPT, tmp], check=True, capture_output=True, text=True
        )
        split = json.loads(child.stdout.strip().splitlines()[-1])
    t, g = statistics.median(torch_s), statistics.median(gen_s)
    sign = split["save_signed"] - split["save_unsigned"]
    emit(
        {
            "import_torch_s": round(t, 3),
            "generate_s": round(g, 3),
            "generate_over_import_torch": round(g / t, 2),
            "target_ratio": 2.0,
            "split_s": {k: round(v, 3) for k, v in split.items()},
            "c2pa_signing_s": round(sign, 4),
            "c2pa_share_of_generate_process": round(sign / g, 4),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
