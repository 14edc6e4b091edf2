"""A real HTTP server playing the institution map, failing in the ways the publisher must survive (publisher tests).

It answers 503 with Retry-After, stalls past the publisher's timeout (and applies the update anyway, as a slow
map would), rejects some units with 400, and rejects bodies whose signature does not match the secret it
expects (401). It records every request and applies accepted ones only if their version is not older.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.infra import free_port


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    stalled: bool
    signature_ok: bool

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class ScriptedMap:
    expected_secret: str
    expected_token: str | None = None
    fail_first: int = 0  # the first N requests: 503 with Retry-After: 1
    stall_every: int = 0  # every Nth request: answer only after `stall_seconds` (past the publisher's timeout)
    stall_seconds: float = 2.5
    reject_units: set[str] = field(default_factory=set)  # 400 for these units
    calls: list[Call] = field(default_factory=list)
    applied: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # path -> (version, body) now shown
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        outer = self
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, stall = outer._decide(self.path, headers, body)
                if stall:
                    time.sleep(outer.stall_seconds)
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the publisher gave up waiting; the update was applied all the same

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _decide(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bool]:
        expected = "sha256=" + hmac.new(self.expected_secret.encode(), body, hashlib.sha256).hexdigest()
        signature_ok = hmac.compare_digest(headers.get("x-hailong-signature", ""), expected)
        unit = path.split("/")[2] if path.count("/") >= 4 else ""
        with self.lock:
            index = len(self.calls) + 1
            stall = False
            extra: dict[str, str] = {}
            if index <= self.fail_first:
                status, extra = 503, {"Retry-After": "1"}
            elif self.expected_token and headers.get("authorization") != f"Bearer {self.expected_token}":
                status = 401
            elif not signature_ok:
                status = 401
            elif unit in self.reject_units:
                status = 400
            else:
                status = 200
                stall = bool(self.stall_every) and index % self.stall_every == 0
                version = json.loads(body)["version"]
                current = self.applied.get(path)
                if current is None or current[0] <= version:
                    self.applied[path] = (version, body)
            self.calls.append(Call(path, headers, body, status, stall, signature_ok))
        return status, extra, stall

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def version_shown(self, path: str) -> int | None:
        with self.lock:
            shown = self.applied.get(path)
        return shown[0] if shown else None

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
