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

The routes are in routes.py, the fields they read in fields.py, input media in media.py,
errors (OpenAI's shape: {"error": {"message", "type", "param", "code"}}) in errors.py.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from nanosora.server import errors
from nanosora.server.errors import APIError, error_body
from nanosora.server.fields import SORA_SIZES, layout_field, parse_seconds, parse_size
from nanosora.server.settings import MAX_SIDE, MAX_STEPS, POLL_AFTER_MS, Settings
from nanosora.server.store import Store

__all__ = [
    "APIError", "MAX_SIDE", "MAX_STEPS", "SORA_SIZES",
    "create_app", "layout_field", "parse_seconds", "parse_size",
]  # fmt: skip


def guard(settings: Settings):
    """The middleware every request passes: the API key on /v1, the upload limit, and the
    poll interval the SDK's videos.poll() waits for."""

    async def middleware(request: Request, call_next):
        path = request.url.path
        if settings.api_key and path.startswith("/v1"):
            got = request.headers.get("authorization", "")
            if not secrets.compare_digest(got.encode(), f"Bearer {settings.api_key}".encode()):
                body = error_body(
                    "Incorrect or missing API key (send Authorization: Bearer KEY)",
                    "invalid_request_error",
                    None,
                    "invalid_api_key",
                )
                return JSONResponse(body, 401)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_bytes + 65536:
            body = error_body(
                f"request too large: uploads are limited to {settings.max_upload_mb:g} MB",
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

    return middleware


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
    start_workers: bool = True,
    adapters: tuple[str, ...] = (),
) -> FastAPI:
    """The server's app: `get_model()` gives the model the workers generate with; jobs and
    their files live in `data_dir`."""
    from nanosora.server.routes import router
    from nanosora.server.worker import Workers

    settings = Settings(
        data_dir=Path(data_dir),
        model_name=model_name,
        api_key=api_key,
        queue_limit=queue_limit,
        max_upload_mb=max_upload_mb,
        max_prompt=max_prompt,
        steps=steps,
        adapters=tuple(adapters),
    )
    store = Store(settings.data_dir)
    pool = Workers(store, get_model, workers)
    settings.inputs.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if start_workers:
            pool.start()
        yield
        pool.shutdown()

    app = FastAPI(title="nanosora", summary="The OpenAI Videos API on your own machine", lifespan=lifespan)
    app.state.store, app.state.workers, app.state.settings, app.state.get_model = (
        store,
        pool,
        settings,
        get_model,
    )
    errors.install(app)
    app.middleware("http")(guard(settings))
    app.include_router(router)
    return app
