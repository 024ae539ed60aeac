"""The compute planner: its FLOP count agrees with torch's counter, windows follow the
timeline, and the CLI reports time and energy from stated assumptions."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nanosora import cli, plan
from nanosora.networks.dit import DIT_PRESETS, DiT
from nanosora.networks.guided import GuidedDiT


@pytest.mark.parametrize(
    "preset, grid, distilled",
    [("tiny", (5, 4, 4), False), ("default", (5, 8, 8), False), ("default", (1, 8, 16), False),
     ("tiny", (5, 4, 4), True)],
)  # fmt: skip
def test_transformer_flops_match_torchs_counter(preset, grid, distilled):
    cfg = DIT_PRESETS[preset]
    m = (GuidedDiT if distilled else DiT)(cfg).eval()
    b, L = 2, 12
    x = torch.randn(b, cfg.latent_channels, *grid)
    g = {"guidance": torch.full((b,), 5.0)} if distilled else {}
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(x, torch.rand(b), torch.randn(b, L, cfg.text_dim), torch.ones(b, L, dtype=torch.bool), **g)
    n = math.prod(g // p for g, p in zip(grid, cfg.patch, strict=True))
    # torch's counter leaves out CPU attention kernels; the planner counts them
    attention = b * cfg.depth * (4 * n * n * cfg.dim + 4 * n * L * cfg.dim)
    assert plan.dit_forward_flops(cfg, n, L, b, distilled) - attention == pytest.approx(
        fc.get_total_flops(), rel=0.01
    )


def test_windows_follow_the_timeline():
    assert plan.windows(plan.Job(seconds=2)) == [17]
    assert len(plan.windows(plan.Job(seconds=60))) == 40
    assert plan.windows(plan.Job(seconds=60, window=0)) == [481]
    one, many = plan.generation_flops(plan.Job(seconds=2)), plan.generation_flops(plan.Job(seconds=60))
    assert 35 < many["transformer"] / one["transformer"] < 45  # linear in duration


def test_unguided_late_steps_are_planned_as_one_pass():
    job = plan.Job(seconds=2)
    tokens = plan.generation_flops(job)["tokens_per_window"]
    guided = plan.guided_steps(job, tokens)
    assert 0 < guided < job.steps  # the default stops guiding before the end
    every = plan.generation_flops(plan.Job(seconds=2, guidance_until=0.0))
    never = plan.generation_flops(plan.Job(seconds=2, guidance_until=1.0))
    single = plan.generation_flops(plan.Job(seconds=2, passes=1))
    assert plan.guided_steps(plan.Job(seconds=2, guidance_until=0.0), tokens) == job.steps
    assert never["transformer"] == pytest.approx(single["transformer"])
    assert never["transformer"] < plan.generation_flops(job)["transformer"] < every["transformer"]
    assert cli.main(["plan", "--device", "h100", "--guidance-until", "2"]) == 2


def test_plan_command_counts_guided_steps(capsys):
    assert cli.main(["plan", "--device", "h100", "--guidance-until", "0"]) == 0
    assert "20 steps, 20 guided" in capsys.readouterr().out
    assert cli.main(["plan", "--device", "h100"]) == 0
    assert "20 steps, 16 guided" in capsys.readouterr().out


def test_estimate_arithmetic():
    dev = plan.Device("x", 1e12, 0.5, 1, 100).scaled(4)
    r = plan.estimate(4e12, dev)
    assert r["seconds"] == pytest.approx(2.0) and r["kwh"] == pytest.approx(400 * 2 / 3.6e6)


def test_plan_command_for_gpus(capsys):
    argv = ["plan", "--preset", "large", "--width", "1920", "--height", "1088", "--seconds", "60",
            "--fps", "24", "--device", "h100", "--count", "8", "--json"]  # fmt: skip
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["windows"] > 1 and out["seconds"] > 0 and out["kwh"] > 0 and out["model"]["params"] > 9e8
    assert "assumed" in out["device"]["source"]
    assert cli.main(["plan", "--train", "--preset", "base", "--device", "h200", "--steps", "1000"]) == 0
    assert "training" in capsys.readouterr().out
    assert cli.main(["plan", "--width", "30"]) == 2


def test_bf16_planning_is_for_this_cpu_and_calibrates_in_bf16():
    # the GPU profiles are bf16 already: asking for --bf16 there is an error, not a silent no-op
    assert cli.main(["plan", "--device", "h100", "--bf16"]) == 2
    cpu = plan.calibrate_cpu(None, bf16=True)
    assert "bf16" in cpu.name and cpu.peak_flops > 0
    assert "fp32" in plan.calibrate_cpu(None).name
