"""torchrun on CPU (gloo): 2 processes end with the weights of 1 process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

HELPER = Path(__file__).with_name("dist_helper.py")


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, str(HELPER), str(one), "2"], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    _run([*torchrun, str(HELPER), str(two), "1"], tmp_path)
    a = load_file(str(one / "dit.safetensors"))
    b = load_file(str(two / "dit.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4, msg=k)
    # only rank 0 wrote: one log, one set of checkpoints
    assert len((two / "log.jsonl").read_text().splitlines()) == 3
    assert sorted(p.name for p in (two / "checkpoints").glob("*.pt"))[-1] == "ckpt-00000003.pt"
    # and the weights moved: the test would pass vacuously otherwise
    init = torch.zeros_like(a["patch_out.weight"])
    assert not torch.equal(a["patch_out.weight"], init)


def test_fsdp2_matches_one_process_and_resumes(tmp_path):
    """FSDP2 (each rank holds a shard): the same weights as 1 process with the same global
    batch, and a run stopped after 1 step and resumed ends where an unbroken one does."""
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    _run([sys.executable, str(HELPER), str(one), "2"], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    _run([*torchrun, str(HELPER), str(two), "1", "fsdp"], tmp_path)
    _run([*torchrun, str(HELPER), str(resumed), "1", "fsdp", "1"], tmp_path)
    _run([*torchrun, str(HELPER), str(resumed), "1", "fsdp"], tmp_path)
    a = load_file(str(one / "dit.safetensors"))
    for other in (two, resumed):
        b = load_file(str(other / "dit.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4, msg=f"{other.name} {k}")
    ck = torch.load(two / "checkpoints" / "ckpt-00000003.pt", weights_only=True)
    assert ck["model"]["patch_in.weight"].shape == a["patch_in.weight"].shape  # saved whole, not a shard
