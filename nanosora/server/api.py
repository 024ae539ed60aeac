"""The OpenAI Videos API, field for field, served by FastAPI over the job store and workers.

    POST   /v1/videos                     create (JSON or multipart; input_reference image)
    GET    /v1/videos                     list (after, limit, order)
    GET    /v1/videos/{id}                retrieve
    DELETE /v1/videos/{id}                delete
    POST   /v1/videos/{id}/remix          a new prompt on the same seed and settings
    GET    /v1/videos/{id}/content        variant=video | thumbnail | spritesheet
    POST   /v1/videos/extensions          extend a video (the extend mode)
    POST   /v1/videos/edits               edit a video (the edit mode)
    GET    /health                        liveness, queue length
    GET    /                              the web studio

Errors have OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import io
import json
import secrets
import shutil
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nanosora.config import DEFAULT_GUIDANCE
from nanosora.request import DEFAULT_STRENGTH, MAX_LORA_SCALE, MAX_SECONDS, GenerationRequest, Sampling
from nanosora.server.store import SUFFIX, Store
from nanosora.world.spec import MAX_FPS, MIN_FPS

# Sora's sizes, accepted so that code written for it runs unchanged; each maps to the nearest
# size this model makes with the same orientation (multiples of 16, aspect 1:2 to 2:1).
SORA_SIZES = {"1280x720": (112, 64), "720x1280": (64, 112), "1792x1024": (112, 64), "1024x1792": (64, 112)}
MAX_SIDE = 256
# the most sampling steps a request may ask for: beyond it a job only costs more time
MAX_STEPS = 100
MEDIA = {"video": "video/mp4", "thumbnail": "image/png", "spritesheet": "image/png"}


class APIError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None, **headers
    ):
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers
        self.type = {
            400: "invalid_request_error",
            401: "invalid_request_error",
            404: "invalid_request_error",
        }.get(status, "rate_limit_error" if status == 429 else "server_error")


def error_body(message: str, type_: str, param=None, code=None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


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
    from nanosora import user_layout

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


POLL_AFTER_MS = 250


def create_app(
    get_model,
    data_dir: str | Path,
    *,
    model_name: str = "nanosora-default",
    api_key: str | None = None,
    workers: int = 1,
    queue_limit: int = 16,
    max_upload_mb: float = 20.0,
    max_prompt: int = 2000,
    steps: int = 20,
    fps: int = 8,
    start_workers: bool = True,
    adapters: tuple[str, ...] = (),
) -> FastAPI:
    from nanosora.server.worker import Workers

    store = Store(data_dir)
    pool = Workers(store, get_model, workers)
    inputs = Path(data_dir) / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    models = {model_name, "sora-2", "sora-2-pro"}
    max_bytes = int(max_upload_mb * 1024 * 1024)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if start_workers:
            pool.start()
        yield
        pool.shutdown()

    app = FastAPI(title="nanosora", summary="The OpenAI Videos API on your own machine", lifespan=lifespan)
    app.state.store, app.state.workers = store, pool

    @app.exception_handler(APIError)
    def _api_error(request, e: APIError):
        return JSONResponse(error_body(e.message, e.type, e.param, e.code), e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    def _validation(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", [])[1:]) or None
        return JSONResponse(
            error_body(f"invalid request: {first.get('msg', e)}", "invalid_request_error", param), 400
        )

    @app.exception_handler(StarletteHTTPException)
    def _http(request, e: StarletteHTTPException):
        return JSONResponse(error_body(str(e.detail), "invalid_request_error"), e.status_code)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        path = request.url.path
        if api_key and path.startswith("/v1"):
            got = request.headers.get("authorization", "")
            if not secrets.compare_digest(got.encode(), f"Bearer {api_key}".encode()):
                body = error_body(
                    "Incorrect or missing API key (send Authorization: Bearer KEY)",
                    "invalid_request_error",
                    None,
                    "invalid_api_key",
                )
                return JSONResponse(body, 401)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes + 65536:
            body = error_body(
                f"request too large: uploads are limited to {max_upload_mb:g} MB",
                "invalid_request_error",
                None,
                "request_too_large",
            )
            return JSONResponse(body, 413)
        response = await call_next(request)
        if path.startswith("/v1/videos"):
            # how long client.videos.poll() waits before asking again (the SDK's default is 1 s,
            # several times a default clip's generation here)
            response.headers["openai-poll-after-ms"] = str(POLL_AFTER_MS)
        return response

    # ---- helpers ---------------------------------------------------------------------------
    def public(job: dict) -> dict:
        keys = (
            "id",
            "created_at",
            "completed_at",
            "expires_at",
            "model",
            "progress",
            "prompt",
            "remixed_from_video_id",
            "seconds",
            "size",
            "status",
            "error",
        )
        # nanosora's own field beside Sora's: the prompt's words the model never saw in training
        return {"object": "video", **{k: job[k] for k in keys}, "unknown_words": unknown_words(job["prompt"])}

    def unknown_words(prompt: str) -> list[str]:
        try:
            model = get_model()
        except Exception:  # a model that cannot load fails the job itself (worker.py), said there
            return []
        return model.unknown_words(prompt)

    def found(vid: str) -> dict:
        job = store.get(vid)
        if job is None:
            raise APIError(404, f"no video with id {vid!r}", "video_id", "video_not_found")
        return job

    async def body_of(request: Request) -> tuple[dict, dict]:
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
        form = await request.form(max_part_size=max_bytes)
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

    def text_field(fields: dict, name: str, required: bool = True) -> str | None:
        v = fields.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            if required:
                raise APIError(400, f"{name} is required", name, "missing_required_parameter")
            return None
        if not isinstance(v, str):
            raise APIError(400, f"{name} must be a string", name)
        if len(v) > max_prompt:
            raise APIError(400, f"{name} is {len(v)} characters long; the limit is {max_prompt}", name)
        return v

    async def read_upload(upload, param: str) -> bytes:
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise APIError(413, f"{param} is larger than {max_upload_mb:g} MB", param, "request_too_large")
        if not data:
            raise APIError(400, f"{param} is empty", param)
        return data

    def save_image(data: bytes, param: str, vid: str) -> Path:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                arr = np.asarray(im.convert("RGB"))
        except Exception:
            raise APIError(
                400, f"{param} is not a readable image (png, jpeg, webp)", param, "invalid_image"
            ) from None
        from nanosora.video import write_png

        path = inputs / f"{vid}.png"
        write_png(path, arr)
        return path

    async def image_input(fields: dict, files: dict, vid: str) -> Path | None:
        if "input_reference" in files:
            data = await read_upload(files["input_reference"], "input_reference")
            return save_image(data, "input_reference", vid)
        ref = fields.get("input_reference")
        if ref is None:
            return None
        url = ref.get("image_url") if isinstance(ref, dict) else ref
        if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
            raise APIError(
                400,
                'input_reference must be an uploaded image or {"image_url": a base64 data URL} '
                "(remote URLs are not fetched)",
                "input_reference",
            )
        try:
            data = base64.b64decode(url.split(",", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise APIError(
                400, "input_reference: the data URL is not valid base64", "input_reference"
            ) from None
        if len(data) > max_bytes:
            raise APIError(413, f"input_reference is larger than {max_upload_mb:g} MB", "input_reference")
        return save_image(data, "input_reference", vid)

    async def video_input(fields: dict, files: dict, vid: str) -> tuple[Path, int, int, int]:
        """The video to extend or edit (an upload or {"id": a completed video}), saved as this
        job's own input: (path, frames, width, height), sizes snapped to multiples of 16."""
        from nanosora.video import VideoError, read

        path = inputs / f"{vid}.mp4"
        if "video" in files:
            path.write_bytes(await read_upload(files["video"], "video"))
        else:
            ref = fields.get("video")
            src_id = ref.get("id") if isinstance(ref, dict) else None
            if not src_id or not isinstance(src_id, str):
                raise APIError(400, 'video is required: upload a file or send {"id": "video_..."}', "video")
            src = found(src_id)
            if src["status"] != "completed":
                raise APIError(
                    400, f"video {src_id} is {src['status']}, not completed", "video", "video_not_ready"
                )
            shutil.copyfile(store.path(src_id, "video"), path)  # the job keeps its input if the source goes
        try:
            frames = read(path).frames
        except VideoError:
            path.unlink(missing_ok=True)
            raise APIError(
                400, "video is not a readable video file (mp4)", "video", "invalid_video"
            ) from None
        h, w = frames.shape[1:3]
        return (
            path,
            len(frames),
            min(MAX_SIDE, max(32, 16 * round(w / 16))),
            min(MAX_SIDE, max(32, 16 * round(h / 16))),
        )

    def check_queue() -> None:
        if store.count("queued") >= queue_limit:
            raise APIError(
                429,
                f"the queue is full ({queue_limit} jobs waiting); retry later",
                None,
                "queue_full",
                **{"Retry-After": "10"},
            )

    def enqueue(vid, model: str, seconds: str, req: GenerationRequest, remixed_from=None) -> dict:
        """Store the job (its request as JSON, restored as is by the worker) and wake a worker."""
        job = store.create(
            vid=vid,
            model=model,
            prompt=req.prompt,
            seconds=seconds,
            size=f"{req.width}x{req.height}",
            params=req.to_json(),
            remixed_from=remixed_from,
        )
        pool.notify()
        return public(job)

    def base_params(fields: dict, prompt: str) -> tuple[str, dict]:
        """The model asked for, and the request fields every route shares."""
        model = fields.get("model") or model_name
        if not isinstance(model, str) or model not in models:
            raise APIError(
                400, f"model {model!r} is not served here: use {', '.join(sorted(models))}", "model"
            )
        seed = fields.get("seed")
        try:
            seed = int(seed) if seed is not None else secrets.randbelow(2**31)
            if not 0 <= seed < 2**63:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise APIError(400, "seed must be an integer from 0 to 2**63 - 1", "seed") from None
        sampling = Sampling(
            steps=number_field(fields, "num_inference_steps", int, 1, MAX_STEPS, steps),
            guidance=number_field(fields, "guidance_scale", float, 0, 30, DEFAULT_GUIDANCE),
        )
        out = {"prompt": prompt, "seed": seed, "sampling": sampling}
        negative = text_field(fields, "negative_prompt", required=False)
        if negative is not None:
            out["negative_prompt"] = negative
        if fields.get("fps") is not None:
            out["fps"] = number_field(fields, "fps", int, MIN_FPS, MAX_FPS, None)
        if fields.get("lora") is not None:
            out["lora"] = lora_field(fields["lora"])
        if fields.get("layout") is not None:
            out["layout"] = layout_field(fields["layout"])
        return model, out

    def lora_field(v) -> dict[str, float]:
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

    async def new_job(request: Request) -> tuple[dict, dict, str, str, dict]:
        """What every job-creating route starts with: room in the queue, the body, its prompt,
        the model and the request fields every route shares (prompt, seed, sampling)."""
        check_queue()
        fields, files = await body_of(request)
        prompt = text_field(fields, "prompt")
        model, params = base_params(fields, prompt)
        return fields, files, prompt, model, params

    # ---- routes ----------------------------------------------------------------------------
    # Sora's characters (a person's likeness kept across videos) have no counterpart in a
    # Flatland model: answered as not implemented, in OpenAI's error shape, so a client sees
    # why instead of a 404 that looks like a wrong URL. Registered before /v1/videos/{id}.
    @app.post("/v1/videos/characters")
    @app.get("/v1/videos/characters/{character_id}")
    def characters(character_id: str | None = None):
        raise APIError(
            501,
            "characters are not supported by this server: give a reference image as input_reference "
            "on POST /v1/videos instead",
            None,
            "not_implemented",
        )

    @app.get("/v1/models")
    def list_models():
        """The served model, under its own name and the Sora names it answers to."""
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "nanosora"} for m in sorted(models)]
        return {"object": "list", "data": data}

    @app.get("/health")
    def health():
        return {"status": "ok", "model": model_name, "queued": store.count("queued"), "running": pool.busy}

    @app.post("/v1/videos")
    async def create(request: Request):
        fields, files, prompt, model, params = await new_job(request)
        width, height = parse_size(fields.get("size"))
        seconds = parse_seconds(fields.get("seconds"))
        vid = store.new_id()
        image = await image_input(fields, files, vid)
        loop = str(fields.get("loop", "false")).lower() in ("1", "true", "yes")  # nanosora's own field
        mode = "loop" if loop else "image" if image else "text"
        image = str(image) if image else None
        req = make_request(
            mode=mode, width=width, height=height, seconds=float(seconds), image=image, **params
        )
        return enqueue(vid, model, seconds, req)

    @app.get("/v1/videos")
    def list_videos(after: str | None = None, limit: int = 20, order: str = "desc"):
        if not 1 <= limit <= 100:
            raise APIError(400, f"limit {limit} is not valid: use 1 to 100", "limit")
        if order not in ("asc", "desc"):
            raise APIError(400, f"order {order!r} is not valid: use asc or desc", "order")
        try:
            rows, more = store.page(after, limit, order)
        except KeyError:
            raise APIError(400, f"after: no video with id {after!r}", "after") from None
        data = [public(r) for r in rows]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }

    @app.get("/v1/videos/{video_id}")
    def retrieve(video_id: str):
        return public(found(video_id))

    @app.delete("/v1/videos/{video_id}")
    def delete(video_id: str):
        found(video_id)
        store.delete(video_id)
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    @app.get("/v1/videos/{video_id}/content")
    def content(video_id: str, variant: str = "video"):
        if variant not in SUFFIX:
            raise APIError(
                400, f"variant {variant!r} is not valid: use video, thumbnail or spritesheet", "variant"
            )
        job = found(video_id)
        if job["status"] != "completed":
            raise APIError(
                400,
                f"video {video_id} is {job['status']}; content is ready when it is completed",
                "video_id",
                "video_not_ready",
            )
        path = store.path(video_id, variant)
        return FileResponse(path, media_type=MEDIA[variant], filename=f"{video_id}.{SUFFIX[variant]}")

    @app.post("/v1/videos/{video_id}/remix")
    async def remix(video_id: str, request: Request):
        check_queue()
        fields, _ = await body_of(request)
        prompt = text_field(fields, "prompt")
        src = found(video_id)
        if src["status"] != "completed":
            raise APIError(
                400, f"video {video_id} is {src['status']}, not completed", "video_id", "video_not_ready"
            )
        try:
            req = GenerationRequest.from_json(src["params"])
        except (TypeError, ValueError):
            raise APIError(
                400, f"video {video_id} was made by an older server; it cannot be remixed", "video_id"
            ) from None
        # the remix follows its source across a cut: the source's prompts are the story its
        # prompt continues ("the blue square" is the source's), its last frame who is in it;
        # checked before any file is copied (a prompt naming what the source never showed)
        story = (*req.story, *req.prompts) if req.mode != "shots" else ()
        try:
            req = dataclasses.replace(req, prompt=prompt, story=story)
        except ValueError as e:
            raise APIError(400, str(e), "prompt") from None
        vid = store.new_id()
        media = {}
        for key in ("image", "video"):
            if getattr(req, key):
                old = Path(getattr(req, key))
                if not old.exists():
                    raise APIError(
                        400, f"the input of video {video_id} is gone; it cannot be remixed", "video_id"
                    )
                media[key] = str(inputs / f"{vid}{old.suffix}")
                shutil.copyfile(old, media[key])
        source = store.path(video_id, "video")
        if source.exists() and req.mode != "shots":
            media["after"] = str(inputs / f"{vid}-after.mp4")
            shutil.copyfile(source, media["after"])
        req = dataclasses.replace(req, **media)
        return enqueue(vid, src["model"], src["seconds"], req, remixed_from=video_id)

    @app.post("/v1/videos/extensions")
    async def extend(request: Request):
        fields, files, prompt, model, params = await new_job(request)
        add = parse_seconds(fields.get("seconds"))
        vid = store.new_id()
        path, n, width, height = await video_input(fields, files, vid)
        total = f"{(n - 1) / fps + float(add):g}"  # Sora reports the stitched duration
        req = make_request(
            mode="extend", video=str(path), seconds=float(add), width=width, height=height, **params
        )
        return enqueue(vid, model, total, req)

    @app.post("/v1/videos/edits")
    async def edit(request: Request):
        fields, files, prompt, model, params = await new_job(request)
        try:
            strength = float(fields.get("strength", DEFAULT_STRENGTH))
        except (TypeError, ValueError):
            strength = -1.0
        if not 0 < strength <= 1:
            raise APIError(400, "strength must be a number in (0, 1]", "strength")
        vid = store.new_id()
        path, n, width, height = await video_input(fields, files, vid)
        req = make_request(
            mode="edit", video=str(path), strength=strength, width=width, height=height, **params
        )
        return enqueue(vid, model, f"{(n - 1) / fps:g}", req)

    @app.get("/", response_class=HTMLResponse)
    def studio():
        page = Path(__file__).with_name("studio.html")
        return page.read_text() if page.exists() else "<h1>nanosora</h1><p>The API is at /v1.</p>"

    return app
