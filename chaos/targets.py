"""The institution map and the national portal as the chaos run sees them: real HTTP servers that keep the
newest version of every unit and period, check every push's token and signature, and fail now and then.

A real map applies a result only if its `version` is higher than the one it holds (the contract: `version`
only goes up), so a resent or late push never moves it backwards; what it holds at the end is what citizens
see. Failures are drawn from a seeded generator: 503 with Retry-After and bare 500s, which the publisher
must retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = re.compile(r"^/units/(?P<unit>[A-Za-z0-9._-]{1,64})/satisfaction/(?P<period>[0-9A-Z-]{4,8})$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Held:
    """What the target shows for one unit, period and edition: the highest version it accepted."""

    version: int
    body: dict[str, Any]


@dataclass
class PushTarget:
    """A push target on 127.0.0.1; `failure_rate` of the requests are answered 503 (with Retry-After) or 500."""

    name: str
    token: str
    signing_secret: str
    seed: int
    failure_rate: float = 0.05
    port: int = field(default_factory=free_port)
    held: dict[tuple[str, str, str], Held] = field(default_factory=dict)  # (unit, period, edition) -> newest
    statuses: dict[int, int] = field(default_factory=dict)
    bad_signatures: int = 0
    bad_tokens: int = 0
    stale_pushes: int = 0  # a version lower than one already held: harmless to the target, but never expected
    replays: int = 0  # the version already held, sent again (e.g. the publisher was killed before recording it)
    key_conflicts: int = 0  # one Idempotency-Key with two different bodies: never allowed
    _bodies_by_key: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:  # noqa: N802 - the http.server convention
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers = target._receive(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"{self.name}-target", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            status, extra = self._decide(path, headers, body)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            return status, extra

    def _decide(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        draw = self._rng.random()
        if draw < self.failure_rate / 2:
            return 503, {"Retry-After": "1"}
        if draw < self.failure_rate:
            return 500, {}
        if headers.get("authorization") != f"Bearer {self.token}":
            self.bad_tokens += 1
            return 401, {}
        expected = "sha256=" + hmac.new(self.signing_secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-hailong-signature", ""), expected):
            self.bad_signatures += 1
            return 401, {}
        match = PATH.match(path)
        if match is None:
            return 404, {}
        try:
            result = json.loads(body)
            version = int(result["version"])
        except (ValueError, KeyError, TypeError):
            return 400, {}
        if result.get("unit_code") != match["unit"] or result.get("period") != match["period"]:
            return 400, {}
        key = headers.get("idempotency-key", "")
        digest = hashlib.sha256(body).hexdigest()
        if self._bodies_by_key.setdefault(key, digest) != digest:
            self.key_conflicts += 1
            return 409, {}
        subject = (match["unit"], match["period"], str(result.get("edition", "live")))
        held = self.held.get(subject)
        if held is not None and version < held.version:
            self.stale_pushes += 1
        elif held is not None and version == held.version:
            self.replays += 1
        else:
            self.held[subject] = Held(version, result)
        return 200, {}

    def snapshot(self) -> dict[tuple[str, str, str], Held]:
        with self._lock:
            return dict(self.held)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": sum(self.statuses.values()), "statuses": dict(sorted(self.statuses.items())),
                "results_held": len(self.held), "bad_signatures": self.bad_signatures, "bad_tokens": self.bad_tokens,
                "stale_pushes": self.stale_pushes, "replays": self.replays, "key_conflicts": self.key_conflicts,
            }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
