"""No NUL character gets in: PostgreSQL cannot store it in text, so a request carrying one in its path, its query
or its body is refused with a 422 problem document naming where it was, before any handler runs.

Without this every free-text parameter (a cursor, a note, an e-mail address) that reaches the database with a
NUL in it failed there with a 500 (schemathesis found several). The body is read once here — the body-size cap
outside has bounded it — looked at, and handed on unchanged; a NUL can only be in a JSON body as the escape
\\u0000, or as a raw byte in CSV, so the search is two byte scans and the JSON is parsed only to name the field.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.problems import problem_response

NUL = "\x00"
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MESSAGE = "contains a NUL character, which no text in Hài Lòng may hold"


class RefuseNul:
    """Pure ASGI middleware; add it inside the body-size cap."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = _in_path_and_query(scope)
        if errors:
            await _refuse(errors)(scope, receive, send)
            return
        if scope.get("method") not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away before sending its body
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except HTTPException as exc:  # the body-size cap outside, while the body streamed in
            await problem_response(exc.status_code, "Content too large", str(exc.detail))(scope, receive, send)
            return
        body = b"".join(chunks)
        if b"\\u0000" in body or b"\x00" in body:
            errors = _in_body(body)
            if errors:
                await _refuse(errors)(scope, receive, send)
                return
        handed_on = False

        async def replay() -> Message:
            nonlocal handed_on
            if not handed_on:
                handed_on = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later messages, e.g. the client disconnecting

        await self.app(scope, replay, send)


def _refuse(errors: list[dict[str, str]]) -> Any:
    fields = ", ".join(e["field"] for e in errors[:5])
    return problem_response(422, "Invalid request", f"NUL character in {fields}", errors=errors)


def _in_path_and_query(scope: Scope) -> list[dict[str, str]]:
    errors = []
    if NUL in scope.get("path", ""):
        errors.append({"field": "path", "message": _MESSAGE})
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True):
            if NUL in name or NUL in value:
                errors.append({"field": f"query.{name.replace(NUL, '')}", "message": _MESSAGE})
    return errors


def _in_body(body: bytes) -> list[dict[str, str]]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:  # CSV, or not JSON at all: name the line
        if b"\x00" not in body:
            return []
        line = body[: body.index(b"\x00")].count(b"\n") + 1
        return [{"field": "body", "message": f"line {line} {_MESSAGE}"}]
    found: list[str] = []
    _walk(document, "body", found)
    return [{"field": path, "message": _MESSAGE} for path in found]


def _walk(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, str):
        if NUL in value:
            found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key.replace(NUL, "")
            if NUL in key:
                found.append(f"{path}.{name}")
            _walk(item, f"{path}.{name}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}", found)
