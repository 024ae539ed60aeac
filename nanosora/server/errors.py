"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}, for every
failure a route raises, a body FastAPI cannot parse, or a path it does not know."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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


def api_error(request, e: APIError) -> JSONResponse:
    return JSONResponse(error_body(e.message, e.type, e.param, e.code), e.status, headers=e.headers)


def validation_error(request, e: RequestValidationError) -> JSONResponse:
    first = e.errors()[0] if e.errors() else {}
    param = ".".join(str(p) for p in first.get("loc", [])[1:]) or None
    return JSONResponse(
        error_body(f"invalid request: {first.get('msg', e)}", "invalid_request_error", param), 400
    )


def http_error(request, e: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(error_body(str(e.detail), "invalid_request_error"), e.status_code)


def install(app: FastAPI) -> None:
    """Answer every error of `app` in OpenAI's shape."""
    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
