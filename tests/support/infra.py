"""Helpers for tests on real infrastructure: service processes, a fake institution map, Kafka readers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from deploy.process import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
HASH_KEY = "test-respondent-hash-key"
MAP_TOKEN = "test-map-token"
MAP_SECRET = "test-map-signing-secret"


@dataclass
class Backend:
    name: str
    database_url: str | None
    data_dir: Path

    def env(self) -> dict[str, str]:
        env = {"HAILONG_DATA_DIR": str(self.data_dir)}
        if self.database_url:
            env["HAILONG_DATABASE_URL"] = self.database_url
        return env

    async def migrated_engine(self, service: str) -> Any:
        """An engine on `service`'s database in this backend, migrated to the newest revision (as at start-up)."""
        from shared.db import prepare_database
        from shared.settings import Settings

        settings = Settings(database_url=self.database_url, data_dir=self.data_dir)
        return await prepare_database(settings.database_url_for(service), service)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class ServiceProcess:
    """One service as a real uvicorn process, so it can be killed -9 and restarted."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"services.{self.name}.app:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )
        log.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def healthy() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, what=f"{self.name} to answer /healthz")

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, what=f"{self.name} to be ready")

    def kill(self) -> None:
        """kill -9: no graceful shutdown, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)

    def send(self, method: str, path: str, token: str | None, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        all_headers.update(headers or {})
        return httpx.request(method, f"{self.url}{path}", json=body, headers=all_headers, timeout=30)


def service_env(backend: Backend, bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        **backend.env(),
        "HAILONG_KAFKA_BOOTSTRAP": bootstrap,
        "HAILONG_TOPIC_PREFIX": prefix,
        "HAILONG_JWT_SECRET": JWT_SECRET,
        "HAILONG_RESPONDENT_HASH_KEY": HASH_KEY,
        "HAILONG_LOG_JSON": "true",
        "HAILONG_OUTBOX_POLL_SECONDS": "0.2",
        # The shared test data posts every rating from one kiosk and one phone; real kiosks and citizens
        # would trip intake's burst and repeat-respondent flags. Intake's own tests set these limits low.
        "HAILONG_INTAKE_BURST_MAX_RATINGS": "100000",
        "HAILONG_INTAKE_REPEAT_MAX_RATINGS": "100000",
        **extra,
    }


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *args], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"hailong {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


@dataclass
class MapRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class FakeInstitutionMap:
    """A real HTTP server playing the institution map; `script` lists the statuses to answer first."""

    script: list[int] = field(default_factory=list)
    requests: list[MapRequest] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        outer = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    status = outer.script.pop(0) if outer.script else 200
                    outer.requests.append(MapRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def delivered(self) -> list[MapRequest]:
        return [r for r in self.requests if 200 <= r.answered < 300]

    def close(self) -> None:
        self.server.shutdown()


def signature_ok(request: MapRequest, secret: str = MAP_SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("x-hailong-signature", ""), expected)


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list[Any]:
    """Read a topic from the beginning with an independent consumer until `expect` records or timeout."""

    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
        await consumer.start()
        records: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while len(records) < expect and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for partition_records in batch.values():
                    records.extend(partition_records)
        finally:
            await consumer.stop()
        return records

    return asyncio.run(read())


def cloud_events(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]
