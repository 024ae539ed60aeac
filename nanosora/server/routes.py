"""The routes of the Videos API, each a short function over the app's state
(`app.state.store`, `.workers`, `.settings`, `.get_model`: set by api.create_app)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from nanosora.generation.request import DEFAULT_STRENGTH, GenerationRequest
from nanosora.server.errors import APIError
from nanosora.server.fields import base_params, body_of, make_request, parse_seconds, parse_size, text_field
from nanosora.server.media import found, image_input, video_input
from nanosora.server.store import SUFFIX

MEDIA = {"video": "video/mp4", "thumbnail": "image/png", "spritesheet": "image/png"}
router = APIRouter()


def public(state, job: dict) -> dict:
    """A job as the API shows it: Sora's video object, and nanosora's own fields beside it:
    the prompt's words the model never saw in training; once made, the layout the clip
    followed (each object's words and boxes) and, for a prompt the expander read but could
    not place, its reasons."""
    keys = (
        "id", "created_at", "completed_at", "expires_at", "model", "progress", "prompt",
        "remixed_from_video_id", "seconds", "size", "status", "error",
    )  # fmt: skip
    result = job.get("result") or {}
    return {
        "object": "video",
        **{k: job[k] for k in keys},
        "unknown_words": unknown_words(state, job["prompt"]),
        "layout": result.get("layout"),
        "not_expanded": result.get("not_expanded", []),
    }


def unknown_words(state, prompt: str) -> list[str]:
    try:
        model = state.get_model()
    except Exception:  # a model that cannot load fails the job itself (worker.py), said there
        return []
    return model.unknown_words(prompt)


def check_queue(state) -> None:
    limit = state.settings.queue_limit
    if state.store.count("queued") >= limit:
        raise APIError(
            429,
            f"the queue is full ({limit} jobs waiting); retry later",
            None,
            "queue_full",
            **{"Retry-After": "10"},
        )


def enqueue(state, vid, model: str, seconds: str, req: GenerationRequest, remixed_from=None) -> dict:
    """Store the job (its request as JSON, restored as is by the worker) and wake a worker."""
    job = state.store.create(
        vid=vid,
        model=model,
        prompt=req.prompt,
        seconds=seconds,
        size=f"{req.width}x{req.height}",
        params=req.to_json(),
        remixed_from=remixed_from,
    )
    state.workers.notify()
    return public(state, job)


async def new_job(request: Request) -> tuple[dict, dict, str, dict]:
    """What every job-creating route starts with: room in the queue, the body, the model and
    the request fields every route shares (prompt, seed, sampling)."""
    state = request.app.state
    check_queue(state)
    fields, files = await body_of(request, state.settings)
    prompt = text_field(fields, "prompt", state.settings)
    model, params = base_params(fields, prompt, state.settings)
    return fields, files, model, params


# Sora's characters (a person's likeness kept across videos) have no counterpart in a
# Flatland model: answered as not implemented, in OpenAI's error shape, so a client sees
# why instead of a 404 that looks like a wrong URL. Registered before /v1/videos/{id}.
@router.post("/v1/videos/characters")
@router.get("/v1/videos/characters/{character_id}")
def characters(character_id: str | None = None):
    raise APIError(
        501,
        "characters are not supported by this server: give a reference image as input_reference "
        "on POST /v1/videos instead",
        None,
        "not_implemented",
    )


@router.get("/v1/models")
def list_models(request: Request):
    """The served model, under its own name and the Sora names it answers to."""
    names = sorted(request.app.state.settings.models)
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "nanosora"} for m in names],
    }


@router.get("/health")
def health(request: Request):
    state = request.app.state
    return {
        "status": "ok",
        "model": state.settings.model_name,
        "queued": state.store.count("queued"),
        "running": state.workers.busy,
    }


@router.post("/v1/videos")
async def create(request: Request):
    state = request.app.state
    fields, files, model, params = await new_job(request)
    width, height = parse_size(fields.get("size"))
    seconds = parse_seconds(fields.get("seconds"))
    vid = state.store.new_id()
    image = await image_input(fields, files, vid, state.settings)
    loop = str(fields.get("loop", "false")).lower() in ("1", "true", "yes")  # nanosora's own field
    mode = "loop" if loop else "image" if image else "text"
    image = str(image) if image else None
    req = make_request(mode=mode, width=width, height=height, seconds=float(seconds), image=image, **params)
    return enqueue(state, vid, model, seconds, req)


@router.get("/v1/videos")
def list_videos(request: Request, after: str | None = None, limit: int = 20, order: str = "desc"):
    state = request.app.state
    if not 1 <= limit <= 100:
        raise APIError(400, f"limit {limit} is not valid: use 1 to 100", "limit")
    if order not in ("asc", "desc"):
        raise APIError(400, f"order {order!r} is not valid: use asc or desc", "order")
    try:
        rows, more = state.store.page(after, limit, order)
    except KeyError:
        raise APIError(400, f"after: no video with id {after!r}", "after") from None
    data = [public(state, r) for r in rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/v1/videos/{video_id}")
def retrieve(request: Request, video_id: str):
    state = request.app.state
    return public(state, found(state.store, video_id))


@router.delete("/v1/videos/{video_id}")
def delete(request: Request, video_id: str):
    store = request.app.state.store
    found(store, video_id)
    store.delete(video_id)
    return {"id": video_id, "object": "video.deleted", "deleted": True}


@router.get("/v1/videos/{video_id}/content")
def content(request: Request, video_id: str, variant: str = "video"):
    store = request.app.state.store
    if variant not in SUFFIX:
        raise APIError(
            400, f"variant {variant!r} is not valid: use video, thumbnail or spritesheet", "variant"
        )
    job = found(store, video_id)
    if job["status"] != "completed":
        raise APIError(
            400,
            f"video {video_id} is {job['status']}; content is ready when it is completed",
            "video_id",
            "video_not_ready",
        )
    path = store.path(video_id, variant)
    return FileResponse(path, media_type=MEDIA[variant], filename=f"{video_id}.{SUFFIX[variant]}")


def remix_request(src: dict, prompt: str, video_id: str) -> GenerationRequest:
    """The source's request with the new prompt. The remix follows its source across a cut:
    the source's prompts are the story its prompt continues ("the blue square" is the
    source's), checked before any file is copied (a prompt naming what the source never showed)."""
    try:
        req = GenerationRequest.from_json(src["params"])
    except (TypeError, ValueError):
        raise APIError(
            400, f"video {video_id} was made by an older server; it cannot be remixed", "video_id"
        ) from None
    story = (*req.story, *req.prompts) if req.mode != "shots" else ()
    try:
        return dataclasses.replace(req, prompt=prompt, story=story)
    except ValueError as e:
        raise APIError(400, str(e), "prompt") from None


@router.post("/v1/videos/{video_id}/remix")
async def remix(request: Request, video_id: str):
    state = request.app.state
    check_queue(state)
    fields, _ = await body_of(request, state.settings)
    prompt = text_field(fields, "prompt", state.settings)
    src = found(state.store, video_id)
    if src["status"] != "completed":
        raise APIError(
            400, f"video {video_id} is {src['status']}, not completed", "video_id", "video_not_ready"
        )
    req = remix_request(src, prompt, video_id)
    vid = state.store.new_id()
    inputs = state.settings.inputs
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
    # its last frame shows who is in the world the remix continues
    source = state.store.path(video_id, "video")
    if source.exists() and req.mode != "shots":
        media["after"] = str(inputs / f"{vid}-after.mp4")
        shutil.copyfile(source, media["after"])
    req = dataclasses.replace(req, **media)
    return enqueue(state, vid, src["model"], src["seconds"], req, remixed_from=video_id)


@router.post("/v1/videos/extensions")
async def extend(request: Request):
    state = request.app.state
    fields, files, model, params = await new_job(request)
    add = parse_seconds(fields.get("seconds"))
    vid = state.store.new_id()
    src = await video_input(fields, files, vid, state.store, state.settings)
    total = f"{src.seconds + float(add):g}"  # Sora reports the stitched duration
    req = make_request(
        mode="extend", video=str(src.path), seconds=float(add), width=src.width, height=src.height, **params
    )
    return enqueue(state, vid, model, total, req)


@router.post("/v1/videos/edits")
async def edit(request: Request):
    state = request.app.state
    fields, files, model, params = await new_job(request)
    try:
        strength = float(fields.get("strength", DEFAULT_STRENGTH))
    except (TypeError, ValueError):
        strength = -1.0
    if not 0 < strength <= 1:
        raise APIError(400, "strength must be a number in (0, 1]", "strength")
    vid = state.store.new_id()
    src = await video_input(fields, files, vid, state.store, state.settings)
    req = make_request(
        mode="edit", video=str(src.path), strength=strength, width=src.width, height=src.height, **params
    )
    return enqueue(state, vid, model, f"{src.seconds:g}", req)


@router.get("/", response_class=HTMLResponse)
def studio():
    page = Path(__file__).with_name("studio.html")
    return page.read_text() if page.exists() else "<h1>nanosora</h1><p>The API is at /v1.</p>"
