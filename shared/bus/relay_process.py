"""The outbox relay in a child process of its own, so that a service's request loop keeps its core for requests.

Why: a Python process runs its Python code on one core at a time (the GIL). Publishing intake's events from its
own event loop (reading the rows back, aiokafka's producer, its network I/O, deleting what was sent) took 15–20 %
of intake's CPU a rating while the machine's second core sat partly idle (bench/notes/intake.md). The child runs
the very same `OutboxRelay`; nothing about delivery changes: rows leave the outbox only once Kafka has them, a
child that dies is started again and re-reads what it had not deleted (at worst a record is sent twice, which
the consumers' exactly-once rows absorb, as after any relay restart).

The parent keeps the relay's interface (`wake`, `kafka_ok`, `backlog`, `stop`, the metrics) over two pipes:
- the child's stdin: a byte wakes it (new rows were committed); end of file stops it after the round in hand;
- a report pipe: the child writes a JSON line whenever its state changes — whether Kafka answers, the records
  published per topic since it started, the backlog it last counted — and the parent mirrors that into its own
  `kafka_ok` and Prometheus metrics, so /readyz and /metrics read as with the relay in process.
The child's logs go where the parent's go (it inherits stdout and stderr); it dies with its parent (PDEATHSIG).

Run alone for a look: `python -m shared.bus.relay_process intake` with the HAILONG_RELAY_* variables set.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
from collections import Counter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.process import die_with_parent
from shared.bus.outbox import OutboxRelay, count_unsent
from shared.bus.tables import BusTables
from shared.logging import get_logger
from shared.metrics import EVENTS_OUT, OUTBOX_BACKLOG

log = get_logger(__name__)

REPORT_SECONDS = 0.25  # how often the child looks for a change to report
RESTART_SECONDS = (0.5, 10.0)  # back-off between restarts of a child that died: first, longest
STOP_SECONDS = 10.0  # a stopping child finishes its round within this, or is killed

# The child's settings, from the parent (not from HAILONG_ variables: a service may be built with Settings given
# in code, as the tests do).
ENV_DATABASE_URL = "HAILONG_RELAY_DATABASE_URL"
ENV_BOOTSTRAP = "HAILONG_RELAY_BOOTSTRAP"
ENV_BATCH_SIZE = "HAILONG_RELAY_BATCH_SIZE"
ENV_POLL_SECONDS = "HAILONG_RELAY_POLL_SECONDS"
ENV_REPORT_FD = "HAILONG_RELAY_REPORT_FD"
ENV_PARENT_PID = "HAILONG_RELAY_PARENT_PID"
ENV_LOG = "HAILONG_RELAY_LOG"  # level and json flag of the parent's logging: "INFO json" / "INFO console"


class ProcessRelay:
    """A service's outbox relay running in a child process (see the module's docstring); the parent's side."""

    def __init__(
        self, service: str, engine: AsyncEngine, tables: BusTables, database_url: str, bootstrap: str, *,
        batch_size: int = 500, poll_seconds: float = 0.5, log_level: str = "INFO", log_json: bool | None = None,
    ) -> None:
        self.service = service
        self.engine = engine
        self.tables = tables
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.log_level = log_level
        self.log_json = log_json
        self.kafka_ok = False
        self.restarts = 0
        self._stopping = False
        self._child: asyncio.subprocess.Process | None = None
        self._published: Counter[str] = Counter()  # what the current child reported so far, per topic

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child is not None and self._child.returncode is None else None

    def wake(self) -> None:
        child = self._child
        if child is not None and child.returncode is None and child.stdin is not None and not child.stdin.is_closing():
            child.stdin.write(b"w")  # non-blocking; the child reads its stdin all the time

    async def run(self) -> None:
        """Keep a child relay running until stopped; one that dies is started again after a back-off."""
        delay = RESTART_SECONDS[0]
        while not self._stopping:
            started = asyncio.get_running_loop().time()
            try:
                code = await self._run_child()
            except asyncio.CancelledError:
                await self._end_child()
                raise
            except Exception as exc:  # could not start it (e.g. out of processes): try again later
                code = None
                log.warning("outbox relay process failed to start", error=repr(exc))
            self.kafka_ok = False
            if self._stopping:
                return
            self.restarts += 1
            if asyncio.get_running_loop().time() - started > 60:
                delay = RESTART_SECONDS[0]  # it ran a good while: this is not a crash loop
            log.warning("outbox relay process ended; starting another", exit_code=code, restart_in=delay)
            await asyncio.sleep(delay)
            delay = min(RESTART_SECONDS[1], delay * 2)

    async def _run_child(self) -> int | None:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        env = {
            **os.environ,
            ENV_DATABASE_URL: self.database_url, ENV_BOOTSTRAP: self.bootstrap, ENV_BATCH_SIZE: str(self.batch_size),
            ENV_POLL_SECONDS: str(self.poll_seconds), ENV_REPORT_FD: str(write_fd), ENV_PARENT_PID: str(os.getpid()),
            ENV_LOG: f"{self.log_level} {'auto' if self.log_json is None else 'json' if self.log_json else 'console'}",
        }
        try:
            self._child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shared.bus.relay_process", self.service,
                stdin=asyncio.subprocess.PIPE, env=env, pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)  # the child holds its own copy: end of file here means the child is gone
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb"))
        self._published = Counter()
        try:
            while line := await reader.readline():
                self._take_report(line)
        except asyncio.CancelledError:  # the service is stopping: let the child finish, and take its last report
            await self._end_child()
            while line := await reader.readline():  # up to its exit, which closes the pipe
                self._take_report(line)
            raise
        finally:
            transport.close()
        return await self._child.wait()

    def _take_report(self, line: bytes) -> None:
        try:
            report = json.loads(line)
        except ValueError:
            log.warning("outbox relay process reported nonsense", line=line[:200])
            return
        self.kafka_ok = bool(report.get("kafka_ok"))
        for topic, total in report.get("published", {}).items():
            if total > self._published[topic]:
                EVENTS_OUT.labels(self.service, topic).inc(total - self._published[topic])
                self._published[topic] = total
        if "backlog" in report:
            OUTBOX_BACKLOG.labels(self.service).set(report["backlog"])

    async def stop(self) -> None:
        """Ask the child to finish its round and exit; killed if it has not within STOP_SECONDS."""
        self._stopping = True
        await self._end_child()

    async def _end_child(self) -> None:
        child = self._child
        if child is None or child.returncode is not None:
            return
        if child.stdin is not None:
            child.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(child.wait()), timeout=STOP_SECONDS)
        except asyncio.TimeoutError:
            log.warning("outbox relay process did not stop in time; killing it", pid=child.pid)
            child.kill()
            await child.wait()

    async def backlog(self) -> int:
        return await count_unsent(self.engine, self.tables)


# --- the child -----------------------------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the parent goes, however it goes; the rows wait in the outbox for the next relay."""
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent_pid:
        sys.exit(0)  # the parent went before the line above took effect


async def _child_main(service: str) -> None:
    from shared.db import create_engine_for

    tables: BusTables = importlib.import_module(f"services.{service}.store").bus
    # The child only deletes rows it has published: a power cut that takes a delete back re-sends those events,
    # which consumers absorb. Without an fsync a commit it holds SQLite's write lock, which intake's statements
    # wait for on its event loop, a shorter time.
    engine = create_engine_for(os.environ[ENV_DATABASE_URL], service, sqlite_fsync_each_commit=False)
    relay = OutboxRelay(
        service, engine, tables, os.environ[ENV_BOOTSTRAP],
        batch_size=int(os.environ[ENV_BATCH_SIZE]), poll_seconds=float(os.environ[ENV_POLL_SECONDS]),
    )
    report_pipe = os.fdopen(int(os.environ[ENV_REPORT_FD]), "wb", buffering=0)

    def state() -> dict[str, Any]:
        return {"kafka_ok": relay.kafka_ok, "published": dict(relay.published), "backlog": relay.last_backlog}

    def report(reported: dict[str, Any]) -> None:
        try:
            report_pipe.write(json.dumps(reported).encode() + b"\n")
        except BrokenPipeError:
            pass  # the parent is gone or no longer listening: the outbox, not the report, is what counts

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin.buffer)

    async def listen() -> None:
        while await stdin.read(4096):
            relay.wake()
        relay.request_stop()  # the parent closed our stdin: finish the round in hand, then exit

    async def tell() -> None:
        last: dict[str, Any] = {}
        while True:
            if (now := state()) != last:
                report(now)
                last = now
            await asyncio.sleep(REPORT_SECONDS)

    listener, teller = asyncio.create_task(listen()), asyncio.create_task(tell())
    try:
        await relay.run()  # returns once stopped
    finally:
        teller.cancel()
        listener.cancel()
        await relay.stop()
        await engine.dispose()
    # The last word: what this child published in full.
    report(state())


def main() -> None:
    from shared.logging import configure_logging

    service = sys.argv[1]
    _die_with_parent(int(os.environ[ENV_PARENT_PID]))
    level, _, mode = os.environ.get(ENV_LOG, "INFO auto").partition(" ")
    configure_logging(service, level, None if mode == "auto" else mode == "json")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a service's stop signal reaches its process group: the parent ends us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_child_main(service))


if __name__ == "__main__":
    main()
