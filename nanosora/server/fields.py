"""Reading a request's body and its fields, each checked against the request types' limits
and the server's settings; every error names the field (OpenAI's `param`)."""

from __future__ import annotations

import json
import secrets

from fastapi import Request

from nanosora.config import DEFAULT_GUIDANCE
from nanosora.generation.request import MAX_GUIDANCE, MAX_LORA_SCALE, MAX_SECONDS, GenerationRequest, Sampling
from nanosora.server.errors import APIError
from nanosora.server.settings import MAX_SIDE, MAX_STEPS, Settings
from nanosora.world.spec import MAX_FPS, MIN_FPS

# Sora's sizes, accepted so that code written for it runs unchanged; each maps to the nearest
# size this model makes with the same orientation (multiples of 16, aspect 1:2 to 2:1).
SORA_SIZES = {"1280x720": (112, 64), "720x1280": (64, 112), "1792x1024": (112, 64), "1024x1792": (64, 112)}


def parse_size(size: str | None) -> tuple[int, int]:
    if size is None:
        return 64, 64
    size = str(size).strip().lower()
    if size in SORA_SIZES:
        return SORA_SIZES[size]
    try:
        w, h = (int(v) for v in size.split("x"))
    except ValueError:
        w = h = -1
    ok = 32 <= w <= MAX_SIDE and 32 <= h <= MAX_SIDE and w % 16 == 0 and h % 16 == 0 and 0.5 <= w / h <= 2
    if not ok:
        raise APIError(
            400,
            f"size {size!r} is not supported: use WIDTHxHEIGHT with multiples of 16 from 32 to {MAX_SIDE} "
            f"and an aspect ratio from 1:2 to 2:1 (e.g. 64x64, 128x64, 64x128), or one of Sora's sizes "
            f"{', '.join(SORA_SIZES)} (made at 112x64 or 64x112)",
            "size",
            "invalid_size",
        )
    return w, h


def parse_seconds(seconds, default: str = "4") -> str:
    """Sora's seconds are a string ("4", "8", "12"); any duration above 0 and up to the
    request's limit is made here."""
    text = str(seconds if seconds is not None else default).strip()
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v <= MAX_SECONDS:
        raise APIError(
            400,
            f"seconds {text!r} is not supported: use a number above 0 and at most {MAX_SECONDS:g}",
            "seconds",
        )
    return f"{v:g}"


def layout_field(v):
    """A request's own layout (user_layout.py): a JSON list, or its text in a form; checked
    field by field, the error naming the field."""
    from nanosora.generation import user_layout

    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise APIError(400, "layout is not valid JSON", "layout") from None
    try:
        return user_layout.parse(v)
    except ValueError as e:
        raise APIError(400, str(e), "layout") from None


def make_request(**fields) -> GenerationRequest:
    """A job's request, its checks answered as a 400 naming what was wrong."""
    try:
        return GenerationRequest(**fields)
    except ValueError as e:
        raise APIError(400, str(e)) from None


async def body_of(request: Request, settings: Settings) -> tuple[dict, dict]:
    """Fields and uploaded files of a JSON or form request (form keys like video[id] nest)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            raise APIError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise APIError(400, "the body must be a JSON object")
        return data, {}
    form = await request.form(max_part_size=settings.max_bytes)
    fields, files = {}, {}
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            files[key] = value
        elif "[" in key and key.endswith("]"):
            outer, inner = key[:-1].split("[", 1)
            fields.setdefault(outer, {})[inner] = value
        else:
            fields[key] = value
    return fields, files


def text_field(fields: dict, name: str, settings: Settings, required: bool = True) -> str | None:
    v = fields.get(name)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise APIError(400, f"{name} is required", name, "missing_required_parameter")
        return None
    if not isinstance(v, str):
        raise APIError(400, f"{name} must be a string", name)
    if len(v) > settings.max_prompt:
        raise APIError(400, f"{name} is {len(v)} characters long; the limit is {settings.max_prompt}", name)
    return v


def number_field(fields: dict, name: str, kind, lo, hi, default):
    """A number the local servers that carried the API on accept beside Sora's fields
    (sent through the SDK's extra_body), in [lo, hi]; a form sends it as text."""
    v = fields.get(name)
    if v is None:
        return default
    try:
        x = float(v) if not isinstance(v, bool) else None
    except (TypeError, ValueError):
        x = None
    if x is not None and x == x and kind is int:  # x == x: not NaN
        x = int(x) if x.is_integer() else None
    if x is None or not lo <= x <= hi:
        what = "a whole number" if kind is int else "a number"
        raise APIError(400, f"{name} {v!r} is not valid: use {what} from {lo:g} to {hi:g}", name)
    return x


def lora_field(v, adapters: tuple[str, ...]) -> dict[str, float]:
    """The adapters for one video: "name" or "name:scale", comma-separated ("": none), or
    a JSON object {name: scale}; only adapters the server loaded (serve --lora)."""
    if isinstance(v, dict):
        items = list(v.items())
    elif isinstance(v, str):  # names hold no ':' here (serve --lora NAME=FILE): split on it
        parts = [p.strip().partition(":") for p in v.split(",") if p.strip()]
        items = [(name.strip(), scale.strip() if sep else 1.0) for name, sep, scale in parts]
    else:
        raise APIError(400, "lora must be text like 'style:0.8,other' or an object", "lora")
    unknown = sorted({k for k, _ in items} - set(adapters))
    if unknown:
        known = ", ".join(adapters) or "none (start the server with --lora NAME=FILE)"
        raise APIError(400, f"LoRA adapter(s) {unknown} are not loaded here; loaded: {known}", "lora")
    try:
        scales = {k: float(x) for k, x in items}
    except (TypeError, ValueError):
        raise APIError(400, "each LoRA scale must be a number", "lora") from None
    if any(not 0 <= x <= MAX_LORA_SCALE for x in scales.values()):
        raise APIError(400, f"LoRA scales must be from 0 to {MAX_LORA_SCALE:g}", "lora")
    return scales


def seed_field(fields: dict) -> int:
    seed = fields.get("seed")
    try:
        seed = int(seed) if seed is not None else secrets.randbelow(2**31)
        if not 0 <= seed < 2**63:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise APIError(400, "seed must be an integer from 0 to 2**63 - 1", "seed") from None
    return seed


def base_params(fields: dict, prompt: str, settings: Settings) -> tuple[str, dict]:
    """The model asked for, and the request fields every route shares."""
    model = fields.get("model") or settings.model_name
    if not isinstance(model, str) or model not in settings.models:
        raise APIError(
            400, f"model {model!r} is not served here: use {', '.join(sorted(settings.models))}", "model"
        )
    sampling = Sampling(
        steps=number_field(fields, "num_inference_steps", int, 1, MAX_STEPS, settings.steps),
        guidance=number_field(fields, "guidance_scale", float, 0, MAX_GUIDANCE, DEFAULT_GUIDANCE),
    )
    out = {"prompt": prompt, "seed": seed_field(fields), "sampling": sampling}
    negative = text_field(fields, "negative_prompt", settings, required=False)
    if negative is not None:
        out["negative_prompt"] = negative
    if fields.get("fps") is not None:
        out["fps"] = number_field(fields, "fps", int, MIN_FPS, MAX_FPS, None)
    if fields.get("lora") is not None:
        out["lora"] = lora_field(fields["lora"], settings.adapters)
    if fields.get("layout") is not None:
        out["layout"] = layout_field(fields["layout"])
    return model, out
