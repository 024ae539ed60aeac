"""The CPU thread count: as asked, else the cores other processes leave free."""

from __future__ import annotations

import os

import pytest
import torch

from nanosora import cli, device


def test_busy_cores_from_the_cpu_counters():
    counts = iter([(1000, 800), (1100, 850)])  # half the time idle in between
    assert device.busy_cores(0, lambda: next(counts)) == pytest.approx(0.5 * os.cpu_count())
    assert device.busy_cores(0, lambda: (5, 5)) == 0.0  # no time passed: nothing known

    def missing():
        raise OSError("no /proc/stat")

    assert device.busy_cores(0, missing) == 0.0


@pytest.mark.parametrize("busy,want", [(0.0, 4), (1.2, 3), (2.0, 2), (3.7, 1), (9.0, 1)])
def test_threads_leave_busy_cores_alone(monkeypatch, busy, want):
    monkeypatch.setattr(device, "cores", lambda: 4)
    monkeypatch.setattr(device, "busy_cores", lambda: busy)
    assert device.pick_threads() == want
    assert device.pick_threads(3) == 3  # asked for: as asked, however busy
    with pytest.raises(ValueError, match="use 1 or more"):
        device.pick_threads(0)


def test_cli_threads_option_sets_torch_threads(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        # the command fails after the option is applied (no such model): the count is set
        assert cli.main(["generate", "a red circle", "--threads", "1", "--model", str(tmp_path)]) != 0
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit):
            cli.main(["generate", "a red circle", "--threads", "0"])
        assert "--threads" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
