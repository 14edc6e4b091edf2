"""A throwaway PostgreSQL server for tests and local runs, started from the installed server binaries.

initdb refuses to run as root, and sessions and CI run as root, so the server runs as the `postgres`
OS user when we are root. Settings trade durability for speed (fsync off): this is never production.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_bin_dir() -> Path:
    """$HAILONG_PG_BIN, else the newest /usr/lib/postgresql/<version>/bin."""
    override = os.environ.get("HAILONG_PG_BIN")
    if override:
        return Path(override)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise PostgresError("PostgreSQL server binaries not found; run deploy/postgres/ensure-server.sh")
    return Path(candidates[-1]).parent


class ThrowawayPostgres:
    """A PostgreSQL server on 127.0.0.1:`port` with its cluster in `data_dir` (a temporary one by default)."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self._owns_dir = data_dir is None
        self.settings = settings or {}  # server settings over the defaults below, e.g. synchronous_commit
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="hailong-pg-")) / "data"
        self.port = port or free_port()
        self.bin = server_bin_dir()
        self._run_as = self._server_user()

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def start(self) -> ThrowawayPostgres:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300", **self.settings}
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses={HOST} " + " ".join(f"-c {k}={v}" for k, v in settings.items())
        self._pg_ctl("start", "-w", "-t", "60", "-o", options, "-l", str(self.data_dir / "server.log"))
        return self

    def stop(self, cleanup: bool = True) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "fast", "-w", check=False)
        if cleanup and self._owns_dir:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def kill(self) -> None:
        """Stop every server process at once without a checkpoint, as in a crash; the next start replays the WAL."""
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate", "-w", check=False)

    def restart(self) -> None:
        self.stop(cleanup=False)
        self.start()

    def create_database(self, name: str) -> str:
        """Create database `name` and return its SQLAlchemy async URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        self._psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _server_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError as error:
            raise PostgresError("running as root needs the 'postgres' OS user; run deploy/postgres/ensure-server.sh") from error
        return SUPERUSER

    def _as_server_user(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self._run_as, "--", *args] if self._run_as else args

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            account = pwd.getpwnam(self._run_as)
            for path in (self.data_dir.parent, self.data_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run([str(self.bin / "initdb"), "-D", str(self.data_dir), "--auth=trust", "-U", SUPERUSER, "-E", "UTF8",
                   "--locale=C.UTF-8", "--no-sync"])

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data_dir), *args], check=check)

    def _psql(self, sql: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(
                [str(self.bin / "psql") if (self.bin / "psql").exists() else "psql",
                 "-h", HOST, "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                capture_output=True, text=True,
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline or "does not exist" in result.stderr or "already exists" in result.stderr:
                raise PostgresError(f"psql failed: {result.stderr.strip()}")
            time.sleep(0.2)

    def _run(self, args: list[str], check: bool = True) -> None:
        result = subprocess.run(self._as_server_user(args), capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")
