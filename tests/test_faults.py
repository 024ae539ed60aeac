"""Faults: training killed with SIGKILL at random points resumes with nothing lost; the
server killed mid-generation loses no job; a failed write leaves the old file intact."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nanosora import cli, modeldir, video
from nanosora.networks.dit import DIT_PRESETS
from nanosora.training import checkpoint
from nanosora.training.train_dit import train_dit
from tests.helpers import FakeCache, make_tiny_model
from tests.kill_helper import CONFIG

HERE = Path(__file__).resolve().parent


def test_training_killed_at_random_points_resumes_exactly(tmp_path):
    """On a busy machine: a CPU-bound process runs beside every part of every run, and this
    process first picks its threads by load as `generate` does (fewer than the cores), the
    state in which a resumed run once came out different."""
    from nanosora import device

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    before = torch.get_num_threads()
    try:
        time.sleep(0.5)
        device.use_threads()
        _kill_and_resume(tmp_path)
    finally:
        burner.kill()
        burner.wait()
        torch.set_num_threads(before)


def _kill_and_resume(tmp_path):
    ref = train_dit(tmp_path / "ref", DIT_PRESETS["tiny"], CONFIG, FakeCache(n=6), progress=False)
    ref_losses = [json.loads(r)["loss"] for r in (tmp_path / "ref" / "log.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(0)
    killed_at = []
    for trial in range(10):
        out = tmp_path / f"t{trial}"
        p = subprocess.Popen([sys.executable, str(HERE / "kill_helper.py"), str(out)])
        # kill once the run has logged a random number of steps, plus a random fraction of a step
        target, log = int(rng.integers(1, CONFIG.steps - 2)), out / "log.jsonl"
        while p.poll() is None and (not log.exists() or len(log.read_text().splitlines()) < target):
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.05)))
        p.send_signal(signal.SIGKILL)
        p.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a damaged newest checkpoint would warn and be skipped
            newest = checkpoint.newest(out / "checkpoints")
        killed_at.append(newest["step"] if newest else 0)
        model = train_dit(out, DIT_PRESETS["tiny"], CONFIG, FakeCache(n=6), progress=False)
        for (k, v), (_, w) in zip(ref.state_dict().items(), model.state_dict().items(), strict=True):
            assert torch.equal(v, w), (trial, k)
        losses = [json.loads(r)["loss"] for r in (out / "log.jsonl").read_text().splitlines()]
        assert losses == ref_losses, trial
        assert not list(out.glob("checkpoints/.*")), trial  # a killed write's temp file was swept
    assert len(set(killed_at)) > 3, killed_at  # the kills landed at different steps


def _serve(model_dir, data_dir, port):
    return subprocess.Popen(
        [sys.executable, "-m", "nanosora", "serve", "--model", str(model_dir), "--data-dir", str(data_dir),
         "--port", str(port), "--steps", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_server_killed_mid_generation_loses_no_job(tmp_path):
    import httpx

    from tests.test_server import _free_port

    model_dir = (
        make_tiny_model(Path(tmp_path / "model"), window=9) if (tmp_path / "model").mkdir() is None else None
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"

    def wait_up(proc):
        for _ in range(300):
            try:
                return httpx.get(url + "/health", timeout=1).json()
            except httpx.HTTPError:
                assert proc.poll() is None, "the server exited"
                time.sleep(0.1)
        raise AssertionError("server did not come up")

    p = _serve(model_dir, tmp_path / "data", port)
    wait_up(p)
    ids = [
        httpx.post(
            url + "/v1/videos", json={"prompt": "a red circle", "seconds": "6", "size": "32x32"}
        ).json()["id"]
        for _ in range(3)
    ]
    for _ in range(300):  # kill while the first job is being generated
        if httpx.get(f"{url}/v1/videos/{ids[0]}").json()["status"] == "in_progress":
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = _serve(model_dir, tmp_path / "data", port)
    try:
        wait_up(p)
        for vid in ids:
            for _ in range(600):
                job = httpx.get(f"{url}/v1/videos/{vid}").json()
                if job["status"] in ("completed", "failed"):
                    break
                time.sleep(0.1)
            assert job["status"] == "completed", job
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_old_file_and_says_why(tmp_path, monkeypatch, capsys):
    frames = np.full((5, 32, 32, 3), 90, np.uint8)
    path = video.write(tmp_path / "a.mp4", frames, 8, {"v": 1})
    before = path.read_bytes()
    import av

    monkeypatch.setattr(av, "open", _disk_full)
    with pytest.raises(OSError, match="No space"):
        video.write(path, frames, 8, {"v": 2})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.mp4"]
    monkeypatch.undo()

    ck = checkpoint.save(tmp_path / "ck", 1, {"step": 1, "w": torch.ones(2)})
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path / "ck", 2, {"step": 2, "w": torch.zeros(2)})
    assert checkpoint.newest(tmp_path / "ck")["step"] == 1 and ck.exists()
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["ckpt-00000001.pt", "ckpt-00000001.sha256"]
    monkeypatch.undo()

    import safetensors.torch

    w = tmp_path / "w.safetensors"
    modeldir.save_weights(w, torch.nn.Linear(2, 2))
    before = w.read_bytes()
    monkeypatch.setattr(modeldir, "save_file", _disk_full)
    with pytest.raises(OSError):
        modeldir.save_weights(w, torch.nn.Linear(2, 2))
    assert w.read_bytes() == before and safetensors.torch.load_file(w)

    # from the command line: a message and exit 1, not a traceback
    monkeypatch.setattr(av, "open", _disk_full)
    assert cli.main(["world", "render", "a red circle", "-o", str(path)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    assert video.read_metadata(path) == {"v": 1}
