"""The diffusion transformer, flow matching and their training loop."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from nanosora import device
from nanosora.generation import flow, pipeline
from nanosora.networks.dit import (
    DIT_PRESETS,
    DiT,
    DiTConfig,
    apply_rope,
    attention,
    count_params,
    rope_angles,
    rope_rotation,
    rope_split,
)
from nanosora.training import train
from nanosora.training.objective import MASK_MODES, dit_loss, frame_mask, pad_width
from nanosora.training.train_dit import DiTTrainConfig, train_dit
from tests.helpers import FakeCache, fill_zeros


def tiny():
    torch.manual_seed(0)
    return DiT(DIT_PRESETS["tiny"])


@pytest.mark.parametrize("grid", [(1, 2, 2), (5, 8, 8), (3, 4, 16), (9, 16, 4), (2, 6, 10)])
def test_every_grid_size_works(grid):
    """Any grid the patch divides, and every token sees every other: a change to the first
    latent pixel reaches the last patch (a freshly initialised DiT outputs zeros, so its
    zero-initialised weights get random values first)."""
    m = fill_zeros(tiny(), 0.05).eval()
    x = torch.randn(2, 4, *grid)
    args = (torch.rand(2), torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool))
    with torch.no_grad():
        out = m(x, *args)
        moved = x.clone()
        moved[:, :, 0, 0, 0] += 1.0
        other = m(moved, *args)
    assert out.shape == x.shape and out.abs().sum() > 0
    assert not torch.allclose(other[:, :, -1, -2:, -2:], out[:, :, -1, -2:, -2:])


def test_zero_initialised_output_predicts_zero():
    m = tiny()
    out = m(
        torch.randn(1, 4, 3, 4, 4), torch.rand(1), torch.randn(1, 3, 384), torch.ones(1, 3, dtype=torch.bool)
    )
    assert torch.count_nonzero(out) == 0


def test_a_text_context_made_once_serves_every_step():
    m = tiny()
    for p in m.parameters():  # leave the zero initialisation, so the text changes the output
        torch.nn.init.normal_(p, std=0.2)
    text, mask = torch.randn(2, 6, 384), torch.tensor([[1] * 6, [1] * 3 + [0] * 3], dtype=torch.bool)
    context = m.text_context(text, mask)
    for seed in range(3):  # several steps: new latents and times, the same context
        g = torch.Generator().manual_seed(seed)
        x, t = torch.randn(2, 4, 3, 4, 4, generator=g), torch.rand(2, generator=g)
        torch.testing.assert_close(m(x, t, context), m(x, t, text, mask))
    other = m(x, t, torch.randn(2, 6, 384), mask)
    assert not torch.allclose(other, m(x, t, context))
    with pytest.raises(ValueError, match="text_mask is needed"):
        m(x, t, text)


def test_odd_grid_and_bad_config_are_refused():
    m = tiny()
    with pytest.raises(ValueError, match="not divisible by the patch"):
        m(
            torch.randn(1, 4, 2, 5, 4),
            torch.rand(1),
            torch.randn(1, 3, 384),
            torch.ones(1, 3, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="takes 4"):
        m(
            torch.randn(1, 3, 2, 4, 4),
            torch.rand(1),
            torch.randn(1, 3, 384),
            torch.ones(1, 3, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="not divisible by heads"):
        DiT(DiTConfig(dim=65, heads=2))
    with pytest.raises(ValueError, match="patch"):
        DiT(DiTConfig(patch=(1, 0, 2)))
    with pytest.raises(ValueError, match="flow_shift"):
        DiT(DiTConfig(flow_shift=0.0))


def test_rope_rotates_pairs_and_depends_only_on_offsets():
    torch.manual_seed(0)
    grid, hd = (3, 4, 4), 12
    angles = rope_angles(grid, hd, 100.0)
    q, k = torch.randn(2, 1, 48, hd), torch.randn(2, 1, 48, hd)
    out = apply_rope(q, rope_rotation(angles))
    # the written-out rotation of each consecutive pair (x1, x2) by its angle
    x1, x2 = q[..., 0::2], q[..., 1::2]
    ref = torch.stack([x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()], -1)
    torch.testing.assert_close(out, ref.flatten(-2))
    # the same q and k at two positions: their dot product depends only on the offset
    rot = rope_rotation(angles)
    same_q, same_k = q[:, :, :1].expand(2, 1, 48, hd), k[:, :, :1].expand(2, 1, 48, hd)
    rq, rk = apply_rope(same_q, rot), apply_rope(same_k, rot)

    # tokens 0 -> 1 and 4 -> 5 are both one step along w
    def dot(i, j):
        return (rq[..., i, :] * rk[..., j, :]).sum(-1)

    torch.testing.assert_close(dot(0, 1), dot(4, 5))
    assert not torch.allclose(dot(0, 1), dot(0, 2))


def test_the_model_samples_on_the_schedule_it_was_trained_on(monkeypatch):
    """flow_shift lives in the model's config, so training and sampling read the same one."""
    m1, m3 = DiT(DIT_PRESETS["tiny"]), DiT(dataclasses.replace(DIT_PRESETS["tiny"], flow_shift=3.0))
    shape = (4, 5, 8, 8)
    assert pipeline.shift_of(m3, shape) == pytest.approx(3 * pipeline.shift_of(m1, shape))
    assert DIT_PRESETS["default"].flow_shift == 3.0
    seen = []
    real = flow.sample_t

    def spy(n, shift, *a, **k):
        seen.append(shift)
        return real(n, shift, *a, **k)

    monkeypatch.setattr(flow, "sample_t", spy)
    lat, text = torch.randn(2, 4, 5, 8, 8), torch.randn(2, 3, 384)
    mask, null = torch.ones(2, 3, dtype=torch.bool), torch.zeros(1, 384)
    for m in (m1, m3):
        dit_loss(m, lat, text, mask, null, (0, 0, 0), DiTTrainConfig())
    assert seen == [pipeline.shift_of(m1, shape), pipeline.shift_of(m3, shape)]


def test_large_presets_build_on_the_meta_device():
    assert 90e6 < count_params(DIT_PRESETS["base"]) < 130e6
    assert 0.9e9 < count_params(DIT_PRESETS["large"]) < 1.2e9
    assert sum(rope_split(64)) == 64 and all(d % 2 == 0 for d in rope_split(96))


def test_frame_mask_semantics():
    rng = np.random.default_rng(0)
    assert frame_mask("none", 5, rng).tolist() == [0, 0, 0, 0, 0]
    assert frame_mask("first", 5, rng).tolist() == [1, 0, 0, 0, 0]
    assert frame_mask("last", 5, rng).tolist() == [0, 0, 0, 0, 1]
    for _ in range(20):
        p = frame_mask("prefix", 5, rng)
        assert p[0] == 1 and p[-1] == 0 and np.all(np.diff(p) <= 0)
        s = frame_mask("suffix", 5, rng)
        assert s[-1] == 1 and s[0] == 0 and np.all(np.diff(s) >= 0)
        e = frame_mask("ends", 5, rng)
        assert e[0] == e[-1] == 1 and e.sum() < 5
    assert frame_mask("first", 1, rng).tolist() == [0]  # one frame: nothing to condition on
    with pytest.raises(ValueError, match="unknown frame-mask mode"):
        frame_mask("middle", 5, rng)
    assert set(MASK_MODES) == {"none", "first", "prefix", "suffix", "last", "ends"}


def test_conditioning_frames_do_not_count_in_the_loss():
    """The loss weight is zero on given frames: changing the model's output there changes nothing."""
    pred = torch.zeros(1, 4, 3, 2, 2)
    target = torch.ones(1, 4, 3, 2, 2)
    w = torch.tensor([1.0, 0.0, 0.0]).view(1, 1, 3, 1, 1)
    a = flow.velocity_loss(pred, target, w)
    given = pred.clone()
    given[:, :, 1:] = 1  # frames 1 and 2 are given (weight 0)
    assert flow.velocity_loss(given, target, w) == a
    generated = pred.clone()
    generated[:, :, 0] = 1
    assert flow.velocity_loss(generated, target, w) < a


def test_noise_does_not_depend_on_batch_composition():
    a = flow.get_noise((4, 2, 2, 2), [7, 8, 9])
    b = flow.get_noise((4, 2, 2, 2), [9])
    torch.testing.assert_close(a[2], b[0], atol=0, rtol=0)
    assert not torch.equal(a[0], a[1])


def test_schedule_and_shift():
    s = flow.get_schedule(4, 1.0)
    assert s[0] == 1.0 and s[-1] == 0.0 and s == sorted(s, reverse=True)
    shifted = flow.get_schedule(4, 3.0)
    assert all(b >= a for a, b in zip(s, shifted, strict=True))  # more time at high noise
    assert flow.shift_for(1280) > flow.shift_for(320) > flow.shift_for(64)
    assert flow.shift_for(flow.REF_POSITIONS, 3.0) == 3.0
    with pytest.raises(ValueError, match="steps"):
        flow.get_schedule(0, 1.0)


def test_euler_integrates_a_known_flow_and_reports_every_step():
    """For data x0 the true velocity is (x - x0) / t, constant along the straight path, so
    Euler steps land on x0 exactly; the callback sees each step once, in order."""
    x0 = torch.randn(3, 4)
    noise = torch.randn(3, 4)
    seen = []
    out = flow.denoise(
        lambda x, t: (x - x0) / t,
        noise.clone(),
        flow.get_schedule(5, 2.0),
        lambda i, n, x: seen.append((i, n)),
    )
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)
    assert seen == [(i, 5) for i in range(1, 6)]


def fake_passes(calls: list):
    """A model_fn whose passes are constants apart ("full" +3, "cond" +2, "none" +1), logging
    which passes each call asked for."""

    def model_fn(x, t, modes):
        calls.append(modes)
        return [{"full": x + 3, "cond": x + 2, "none": x + 1}[m] for m in modes]

    return model_fn


def test_guidance_combines_passes():
    calls = []
    model_fn = fake_passes(calls)
    x = torch.zeros(1)
    assert flow.guided(model_fn, 1.0)(x, 0.5).item() == 3 and calls == [("full",)]
    assert flow.guided(model_fn, 2.0)(x, 0.5).item() == 1 + 2 * 2
    assert flow.guided(model_fn, 2.0, 3.0, has_cond=True)(x, 0.5).item() == 1 + 3 * 1 + 2 * 1
    assert calls[-1] == ("full", "cond", "none")  # one batched call per step
    assert flow.guidance_modes(4.0, 1.0, True) == ("full", "cond")


def test_guidance_stops_at_its_time():
    calls = []
    model_fn = fake_passes(calls)
    x = torch.zeros(1)
    v = flow.guided(model_fn, 2.0, until=0.5)
    assert v(x, 0.7).item() == 1 + 2 * 2 and calls[-1] == ("full", "none")
    # at and after the stop: the text pass alone, one call of one pass
    assert v(x, 0.5).item() == 3 and v(x, 0.1).item() == 3 and calls[-2:] == [("full",), ("full",)]
    with_image = flow.guided(model_fn, 2.0, 3.0, has_cond=True, until=0.5)
    assert with_image(x, 0.9).item() == 1 + 3 * 1 + 2 * 1 and with_image(x, 0.2).item() == 3
    assert calls[-1] == ("full",)


def test_tiny_preset_overfits_one_clip(tmp_path):
    cache = FakeCache(n=1)
    cfg = train.TrainConfig(steps=500, batch=8, lr=3e-3, warmup=10, ckpt_every=500, log_every=1, min_lr=0.01)
    train_dit(tmp_path, DIT_PRESETS["tiny"], cfg, cache, DiTTrainConfig(text_dropout=0.0), progress=False)
    rows = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    first, last = np.mean([r["loss"] for r in rows[:5]]), np.mean([r["loss"] for r in rows[-10:]])
    assert last < first / 10, (first, last)


def test_dit_resume_is_exact(tmp_path):
    cache = FakeCache()
    cfg = train.TrainConfig(steps=4, batch=2, lr=1e-3, warmup=1, ckpt_every=2, log_every=1)
    a = train_dit(tmp_path / "a", DIT_PRESETS["tiny"], cfg, cache, progress=False)
    train_dit(tmp_path / "b", DIT_PRESETS["tiny"], cfg, cache, progress=False, stop_after=2)
    b = train_dit(tmp_path / "b", DIT_PRESETS["tiny"], cfg, cache, progress=False)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    losses = [
        [json.loads(r)["loss"] for r in (tmp_path / d / "log.jsonl").read_text().splitlines()] for d in "ab"
    ]
    assert losses[0] == losses[1]


def test_text_dropout_uses_the_empty_prompt():
    from nanosora.training.objective import noised_batch

    cache = FakeCache()
    m = tiny()
    lat, text, mask, _ = cache.batch(2, 0, 0)
    null = cache.null_text
    dropped = noised_batch(m, lat, text, mask, null, (0, 0, 0), DiTTrainConfig(text_dropout=1.0))
    n = null.shape[0]
    for row in range(2):  # every prompt replaced by the empty prompt, the rest masked out
        torch.testing.assert_close(dropped.text[row, :n], null)
        assert dropped.mask[row, :n].all() and not dropped.mask[row, n:].any()
        assert not dropped.text[row, n:].any()
    kept = noised_batch(m, lat, text, mask, null, (0, 0, 0), DiTTrainConfig(text_dropout=0.0))
    torch.testing.assert_close(kept.text, text)
    loss = dit_loss(m, lat, text, mask, null, (0, 0, 0), DiTTrainConfig(text_dropout=1.0))
    assert torch.isfinite(loss)


def _random_tiny():
    m = tiny()
    for p in m.parameters():  # leave the zero initialisation, so outputs differ by precision
        torch.nn.init.normal_(p, std=0.2)
    return m


@pytest.mark.skipif(not device.cpu_has_bf16(), reason="this CPU has no native bf16")
def test_cpu_bf16_runs_the_transformer_in_bf16_and_returns_fp32():
    m = _random_tiny()
    w = device.CPUBF16(m)
    assert w.cfg is m.cfg and w.grid((4, 3, 4, 4)) == m.grid((4, 3, 4, 4))
    g = torch.Generator().manual_seed(0)
    x, t, text = torch.randn(2, 4, 3, 4, 4, generator=g), torch.rand(2, generator=g), torch.randn(2, 5, 384)
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.inference_mode():
        ref, out = m(x, t, text, mask), w(x, t, text, mask)
        from_context = w(x, t, w.text_context(text, mask))
    assert out.dtype == torch.float32 and not torch.equal(out, ref)  # bf16 did run
    assert (out - ref).norm() / ref.norm() < 0.05
    torch.testing.assert_close(from_context, out)
    cache = FakeCache()
    lat, text, mask, _ = cache.batch(2, 0, 0)
    losses = [
        dit_loss(m, lat, text, mask, cache.null_text, (0, 0, 0), DiTTrainConfig(cpu_bf16=b)).item()
        for b in (False, True)
    ]
    assert losses[0] != losses[1] and abs(losses[1] / losses[0] - 1) < 0.05


def test_attention_under_cpu_bf16_matches_the_fused_kernel_and_honours_the_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 16, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 1, 10, dtype=torch.bool)
    mask[0, ..., 6:] = False
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    with torch.autocast("cpu", torch.bfloat16):
        out = attention(q, k, v, mask)
        v2 = v.clone()
        v2[0, :, 6:] += 100.0  # keys the mask hides must not matter
        hidden = attention(q, k, v2, mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)
    torch.testing.assert_close(hidden, out)
    torch.testing.assert_close(attention(q, k, v, mask), ref)  # outside autocast: the fused kernel
    # sampling (no gradients) under bf16 takes the fused kernel, faster there; same answer
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        sampled = attention(q, k, v, mask)
        assert torch.equal(sampled, fused) and not torch.equal(sampled, out)
        torch.testing.assert_close(attention(q, k, v2, mask), sampled)
    torch.testing.assert_close(sampled.float(), ref, atol=0.05, rtol=0.05)


def test_bf16_is_refused_on_a_cpu_without_it(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with pytest.raises(ValueError, match="no native bf16"):
        device.CPUBF16(tiny())
    cfg = train.TrainConfig(steps=1, batch=2, lr=1e-3, warmup=1, ckpt_every=1)
    with pytest.raises(ValueError, match="no native bf16"):
        train_dit(tmp_path / "r", DIT_PRESETS["tiny"], cfg, FakeCache(), DiTTrainConfig(cpu_bf16=True))
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_pad_width_rounds_text_up_and_masks_the_padding():
    text, mask = torch.randn(2, 6, 384), torch.ones(2, 6, dtype=torch.bool)
    padded, pmask = pad_width(text, mask, 4)
    assert padded.shape == (2, 8, 384) and pmask.shape == (2, 8)
    assert torch.equal(padded[:, :6], text) and not padded[:, 6:].any()
    assert pmask[:, :6].all() and not pmask[:, 6:].any()
    same, smask = pad_width(text[:, :4], mask[:, :4], 4)  # already a multiple: untouched
    assert same.shape[1] == 4 and smask.shape[1] == 4
    m = _random_tiny()
    x, t = torch.randn(2, 4, 3, 4, 4), torch.rand(2)
    with torch.inference_mode():  # the padding changes nothing the model computes
        torch.testing.assert_close(m(x, t, padded, pmask), m(x, t, text, mask))


def test_compiled_training_follows_eager_training(tmp_path):
    """train dit --compile: the same losses and weights as eager training, up to rounding."""
    cache = FakeCache()
    cfg = train.TrainConfig(steps=3, batch=2, lr=1e-3, warmup=1, ckpt_every=3, log_every=1)
    a = train_dit(tmp_path / "eager", DIT_PRESETS["tiny"], cfg, cache, progress=False)
    b = train_dit(tmp_path / "compiled", DIT_PRESETS["tiny"], cfg, cache, progress=False, compile=True)
    losses = [
        [json.loads(r)["loss"] for r in (tmp_path / d / "log.jsonl").read_text().splitlines()]
        for d in ("eager", "compiled")
    ]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(w, v, rtol=1e-3, atol=1e-4, msg=k)
    assert (tmp_path / "compiled" / "dit.safetensors").exists()


def test_compile_without_a_cpp_compiler_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run here
    monkeypatch.delenv("CXX", raising=False)
    assert not device.can_compile(torch.device("cpu"))
    cfg = train.TrainConfig(steps=1, batch=2, lr=1e-3, warmup=1)
    with pytest.raises(ValueError, match="C\\+\\+ compiler"):
        train_dit(tmp_path / "run", DIT_PRESETS["tiny"], cfg, FakeCache(), progress=False, compile=True)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before anything was written
    cxx = tmp_path / "mycxx"
    cxx.write_text("#!/bin/sh\n")
    cxx.chmod(0o755)
    monkeypatch.setenv("CXX", "mycxx")
    assert device.can_compile(torch.device("cpu"))


def _routed_tiny(keep=0.5):
    torch.manual_seed(0)
    from nanosora.networks import routed

    m = routed.new(dataclasses.replace(DIT_PRESETS["tiny"], patch=(1, 1, 1), route=(1, 2), route_keep=keep))
    assert isinstance(m, routed.RoutedDiT)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return m


def test_routing_every_token_is_the_full_model_and_routing_some_changes_only_routed_blocks():
    from nanosora.networks.routed import route_indices

    m = _routed_tiny()
    x, t = torch.randn(2, 4, 2, 4, 4), torch.rand(2)
    text, mask = torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool)
    full = m(x, t, text, mask)
    every = route_indices(2, 32, 1.0, np.random.default_rng(0))
    torch.testing.assert_close(m(x, t, text, mask, route=every), full)
    half = route_indices(2, 32, 0.5, np.random.default_rng(0))
    assert half.shape == (2, 16) and not torch.equal(half[0], half[1])  # each sample its own draw
    assert not torch.allclose(m(x, t, text, mask, route=half), full)
    # with the routed block made the identity (zero gates), routing changes nothing
    for p in (
        m.blocks[1].ada.weight,
        m.blocks[1].ada.bias,
        m.blocks[1].cross.out.weight,
        m.blocks[1].cross.out.bias,
    ):
        torch.nn.init.zeros_(p)
    torch.testing.assert_close(m(x, t, text, mask, route=half), m(x, t, text, mask))


def test_bad_routes_are_refused():
    with pytest.raises(ValueError, match="route"):
        DiT(dataclasses.replace(DIT_PRESETS["tiny"], route=(1, 3)))  # depth 2
    with pytest.raises(ValueError, match="route_keep"):
        DiT(dataclasses.replace(DIT_PRESETS["tiny"], route=(0, 1), route_keep=0.0))
    with pytest.raises(TypeError, match="takes no route"):
        tiny()(
            torch.randn(1, 4, 1, 4, 4),
            torch.rand(1),
            torch.randn(1, 3, 384),
            torch.ones(1, 3, dtype=torch.bool),
            route=torch.zeros(1, 2, dtype=torch.long),
        )


def test_a_routed_model_trains_and_resumes_exactly(tmp_path):
    cfg_r = dataclasses.replace(DIT_PRESETS["tiny"], patch=(1, 1, 1), route=(1, 2))
    cache = FakeCache()
    cfg = train.TrainConfig(steps=4, batch=2, lr=1e-3, warmup=1, ckpt_every=2, log_every=1)
    a = train_dit(tmp_path / "a", cfg_r, cfg, cache, progress=False)
    train_dit(tmp_path / "b", cfg_r, cfg, cache, progress=False, stop_after=2)
    b = train_dit(tmp_path / "b", cfg_r, cfg, cache, progress=False)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(v, w), k


def test_ema_warms_up_with_the_step():
    from nanosora.training.train_dit import EMA

    m = torch.nn.Linear(2, 2, bias=False)
    torch.nn.init.zeros_(m.weight)
    ema = EMA(m, 0.999)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(100_000) == 0.999
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m, 1)  # early on the average follows the model closely
    assert ema.shadow.weight.mean().item() == pytest.approx(1 - 2 / 11)
    ema.update(m, None)  # no step: the fixed decay
    assert ema.shadow.weight.mean().item() == pytest.approx(1 - (2 / 11) * 0.999)
