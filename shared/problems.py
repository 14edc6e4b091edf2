"""RFC 9457 problem details for every error a service returns; never a stack trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int, title: str, detail: str | None = None, *, type_: str = "about:blank",
    headers: dict[str, str] | None = None, **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, type_=exc.type, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(err.get("loc", ())), "message": err.get("msg", "invalid"), "type": err.get("type")}
            for err in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors[:5])
        return problem_response(422, "Invalid request", f"invalid field(s): {fields}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        titles = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed", 413: "Content too large"}
        return problem_response(
            exc.status_code, titles.get(exc.status_code, "HTTP error"), detail, headers=getattr(exc, "headers", None)
        )

    app.add_exception_handler(Exception, _unexpected)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, error=repr(exc), exc_info=exc)
    return problem_response(500, "Internal error", "the request could not be completed; it was logged")


def install_unavailable_handler(
    app: FastAPI, transient: tuple[type[BaseException], ...], is_unavailable: Callable[[BaseException], bool] = lambda _: True,
) -> None:
    """Infrastructure trouble is 503 with Retry-After: the client retries and nothing is lost. An exception of a
    `transient` type that `is_unavailable` does not recognise (e.g. a failed statement) stays a 500."""

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not is_unavailable(exc):
            return await _unexpected(request, exc)
        log.warning("dependency unavailable", error=repr(exc)[:300])
        return problem_response(
            503, "Service temporarily unavailable", "the database is not reachable; retry shortly",
            headers={"Retry-After": "2"},
        )

    for exc_type in transient:
        app.add_exception_handler(exc_type, _unavailable)
