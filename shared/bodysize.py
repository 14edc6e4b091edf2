"""Request body caps for every service: 413 problem+json before an absurd body is read into memory."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.problems import problem_response


class BodyTooLarge(HTTPException):
    """Raised while reading a streamed body that outgrows its cap (no Content-Length to check first)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodySizeLimit:
    """Pure ASGI middleware: `default` bytes for every request, larger caps for paths ending in `large`."""

    def __init__(self, app: ASGIApp, default: int, large: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.large = large or {}

    def limit_for(self, path: str) -> int:
        for suffix, limit in self.large.items():
            if path.endswith(suffix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    detail = f"the request body is larger than {limit} bytes" if declared > limit else "invalid Content-Length"
                    status = 413 if declared > limit else 400
                    title = "Content too large" if status == 413 else "Bad request"
                    await problem_response(status, title, detail, max_bytes=limit)(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)
