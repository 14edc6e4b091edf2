"""Run a real single-node Apache Kafka broker (KRaft, broker+controller) from Maven Central jars.

These machines have Java and Maven but no Docker and no Kafka tarball, so the broker's jars are
resolved once with deploy/kafka/pom.xml into a cache and `kafka.Kafka` is started directly with them
on the class path (see /work/shared/spec/KAFKA.md). Integration tests, the fault tests and the dev
launcher (`python -m deploy.kafka`) all drive the broker through `KafkaBroker`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from deploy.process import die_with_parent
from shared.topics import TopicSpec

KAFKA_VERSION = "3.9.1"
HOST = "127.0.0.1"

_HERE = Path(__file__).resolve().parent
_REPO_ROOT = _HERE.parents[1]
POM = _HERE / "pom.xml"
LOG4J_CONFIG = _HERE / "log4j.properties"
# The jar whose presence, together with the marker, proves a finished copy of this version.
_BROKER_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
_MARKER = "libs.complete"

T = TypeVar("T")


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started, reached or stopped."""


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS may hand it out again later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def default_cache_dir() -> Path:
    """`$HAILONG_KAFKA_CACHE`, else `<repo>/.cache/kafka/<version>` (git-ignored); jars go in `libs/`."""
    override = os.environ.get("HAILONG_KAFKA_CACHE")
    if override:
        return Path(override).expanduser().resolve()
    return _REPO_ROOT / ".cache" / "kafka" / KAFKA_VERSION


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Resolve the broker's runtime jars into `<cache_dir>/libs` once and return that folder.

    Later calls only check the marker written after a successful copy, so they never start Maven.
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    libs = cache / "libs"
    if _jars_present(cache):
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    # Two test processes (or a test and the dev launcher) may fetch at once; one copy is enough.
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_present(cache):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is needed once to fetch the Kafka jars; it is not on PATH")
        print(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central (first run only)…", file=sys.stderr, flush=True)
        started = time.monotonic()
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={libs}",
                # The runner's version is authoritative: it also names the cache folder.
                f"-Dkafka.version={KAFKA_VERSION}",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not (libs / _BROKER_JAR).is_file():
            raise BrokerError(f"Maven could not fetch the Kafka jars:\n{result.stdout}\n{result.stderr}")
        jars = sorted(p.name for p in libs.glob("*.jar"))
        (cache / _MARKER).write_text("\n".join(jars) + "\n")
        elapsed = time.monotonic() - started
        print(f"fetched {len(jars)} jars into {libs} in {elapsed:.1f}s", file=sys.stderr, flush=True)
    return libs


def _jars_present(cache: Path) -> bool:
    return (cache / _MARKER).is_file() and (cache / "libs" / _BROKER_JAR).is_file()


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, on a private event loop in a worker thread."""
    # Not asyncio.run on the caller's thread: it refuses to run under a running loop, and otherwise
    # it replaces and then clears that thread's current event loop (which pytest-asyncio may own).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], timeout: float = 30.0, replication_factor: int = 1) -> None:
    """Create the topics that do not exist yet; return once every partition of them is led.

    Idempotent: an existing topic counts as success and is left as it is (its partitions and
    config are not reconciled with the spec).
    """
    wanted = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(s.name, s.partitions, replication_factor, topic_configs=dict(s.config)) for s in wanted],
            timeout_ms=int(timeout * 1000),
        )
        failures = [
            f"{topic}: {for_code(code).__name__} {rest[0] if rest and rest[0] else ''}".rstrip()
            for topic, code, *rest in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        ]
        if failures:
            raise BrokerError("could not create topics: " + "; ".join(failures))
        partitions = await _await_leaders(admin, [s.name for s in wanted], timeout)
    finally:
        await admin.close()
    # Metadata already names a leader while the broker's replica manager is still taking
    # leadership, so producers started now would get NOT_LEADER retries. ListOffsets is served
    # by the replica manager, and the consumer retries it until every partition is really led.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await consumer.start()
    try:
        # One call per topic, concurrently: a single call discovers unknown topics one metadata
        # round (and retry backoff) at a time. Assigning the partitions instead would fetch them
        # all at once but start offset resets that log every NOT_LEADER as an error.
        await asyncio.gather(*(consumer.end_offsets(tps) for tps in partitions.values()))
    finally:
        await consumer.stop()


async def _await_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], timeout: float
) -> dict[str, list[TopicPartition]]:
    """The partitions of each topic, once metadata lists every one of them with a leader."""
    # The controller answers CreateTopics once the topics are committed to the metadata log;
    # the broker half of this process applies that log a moment later.
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(topics)
        if all(
            t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return {
                t["topic"]: [TopicPartition(t["topic"], p["partition"]) for p in t["partitions"]] for t in described
            }
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {topics} not all listed with leaders after {timeout:.0f}s")
        await asyncio.sleep(0.1)



class KafkaBroker:
    """One Kafka process serving PLAINTEXT on 127.0.0.1:`port`, keeping its state in `data_dir`.

    Layout of `data_dir`: `server.properties` (rewritten on each start), `kafka-logs/` (the formatted
    log dir, formatted once and kept across restarts), `broker.log` (the JVM's output, appended)
    and `kafka.pid` while running (lets another process, e.g. `python -m deploy.kafka stop`, stop it).
    """

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        controller_port: int | None = None,
        cache_dir: Path | None = None,
        heap: str = "512m",
        num_partitions: int = 3,
        die_with_parent: bool = False,
    ) -> None:
        self.port = port
        # Test brokers die with the test process; the dev broker is stopped deliberately instead.
        self.die_with_parent = die_with_parent
        # Chosen once so that restarting this object reuses the same controller endpoint.
        self.controller_port = controller_port if controller_port is not None else free_port()
        self.data_dir = Path(data_dir).resolve()
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.heap = heap
        self.num_partitions = num_partitions
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kafka-logs"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    def ensure_jars(self) -> Path:
        return ensure_jars(self.cache_dir)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch the broker in the background (fetching jars and formatting storage if needed).

        Returns once the JVM is spawned; `wait_ready` tells when it serves requests.
        """
        running = self.running_pid()
        if running is not None:
            raise BrokerError(f"a broker already runs on {self.data_dir} (pid {running})")
        libs = self.ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._server_properties())
        self._format_once(libs)
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== starting Kafka {KAFKA_VERSION} on {self.bootstrap} ====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [
                    *self._java(
                        libs,
                        f"-Xms{self.heap}",
                        f"-Xmx{self.heap}",
                        "-Djava.awt.headless=true",
                        f"-Dlog4j.configuration={LOG4J_CONFIG.as_uri()}",
                    ),
                    "kafka.Kafka",
                    str(self.config_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Own session and process group: a Ctrl-C in the launching terminal must not reach
                # the broker, which is stopped deliberately (SIGTERM, controlled shutdown).
                start_new_session=True,
                preexec_fn=die_with_parent if self.die_with_parent else None,
            )
        self.pid_path.write_text(f"{self._proc.pid}\n")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once a metadata request succeeds; fail fast, with broker.log's tail, if the JVM dies."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._raise_if_dead()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BrokerError(f"Kafka on {self.bootstrap} not ready after {timeout:.0f}s\n{self.log_tail()}")
            # Probing the port first keeps aiokafka from logging a connection error per attempt
            # while the JVM is still loading; an open port alone does not mean the broker serves yet.
            if await self._port_open() and await self._metadata_ok(min(remaining, 5.0)):
                return
            await asyncio.sleep(0.2)

    def start_and_wait(self, timeout: float = 60.0) -> None:
        """`start` then `wait_ready`, for sync callers (pytest fixtures, the dev launcher)."""
        self.start()
        try:
            self.wait_ready_sync(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready_sync(self, timeout: float = 60.0) -> None:
        _run_sync(self.wait_ready(timeout))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL if the broker is still alive after `timeout`."""
        pid = self._proc.pid if self._proc is not None and self._proc.poll() is None else self.running_pid()
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                self._signal(pid, signal.SIGKILL)
                self._wait_exit(pid, 10.0)
        self._proc = None
        self.pid_path.unlink(missing_ok=True)

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL, no controlled shutdown: a crash (the chaos run). The next start recovers the logs."""
        pid = self._proc.pid if self._proc is not None and self._proc.poll() is None else self.running_pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_exit(pid, timeout)
        self._proc = None
        self.pid_path.unlink(missing_ok=True)

    def running_pid(self) -> int | None:
        """Pid of the broker running on this data dir, started by this object or by another process."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if self._is_our_broker(pid) else None

    def __enter__(self) -> KafkaBroker:
        self.start_and_wait()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- topics ----------------------------------------------------------------------------------

    async def create_topics(self, specs: Iterable[TopicSpec], timeout: float = 30.0) -> None:
        """Create the topics that do not exist yet; return once every partition of them is led."""
        await ensure_topics(self.bootstrap, specs, timeout)

    def create_topics_sync(self, specs: Iterable[TopicSpec], timeout: float = 30.0) -> None:
        _run_sync(self.create_topics(specs, timeout))

    # --- diagnostics -----------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no {self.log_path})"
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    # --- internals -------------------------------------------------------------------------------

    def _server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # The defaults (50 offsets partitions, 50 transaction partitions) make the first
            # consumer group or transactional producer wait for dozens of partitions to be created
            # and loaded, which is slow on a 2-core machine.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # Sized for a 2-core machine rather than a production box.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            # The cleaner (needed by compacted units.v1) would otherwise take 128 MiB of a 512 MiB heap.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        header = "# Written by deploy/kafka/runner.py on every start; edits are overwritten.\n"
        return header + "".join(f"{key}={value}\n" for key, value in settings.items())

    @staticmethod
    def _java(libs: Path, *jvm_options: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH and JAVA_HOME is not set")
        # Java expands the trailing '*' of the class path itself (no shell involved).
        return [java, *jvm_options, "-cp", f"{libs}/*"]

    def _format_once(self, libs: Path) -> None:
        # meta.properties is what `format` writes; reformatting would refuse (or, forced, lose data).
        if (self.log_dir / "meta.properties").is_file():
            return
        # No log4j configuration here: the broker's one logs INFO lines to stdout, which would mix
        # with the cluster id; unconfigured, reload4j only warns on stderr.
        java = self._java(libs)
        uuid = subprocess.run(
            [*java, "kafka.tools.StorageTool", "random-uuid"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        cluster_id = uuid.stdout.strip()
        if uuid.returncode != 0 or not cluster_id:
            raise BrokerError(f"StorageTool random-uuid failed:\n{uuid.stdout}\n{uuid.stderr}")
        fmt = subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise BrokerError(f"StorageTool format failed:\n{fmt.stdout}\n{fmt.stderr}")

    def _raise_if_dead(self) -> None:
        if self._proc is not None:
            code = self._proc.poll()
            if code is not None:
                self.pid_path.unlink(missing_ok=True)
                raise BrokerError(f"Kafka exited with code {code} during startup\n{self.log_tail()}")
        elif self.running_pid() is None:
            raise BrokerError(f"no Kafka process runs on {self.data_dir}\n{self.log_tail()}")

    async def _port_open(self) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 1.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def _metadata_ok(self, timeout: float) -> bool:
        admin = self._admin(timeout)
        try:
            await asyncio.wait_for(self._fetch_metadata(admin), timeout)
        except (KafkaError, OSError, TimeoutError):
            return False
        finally:
            await admin.close()
        return True

    @staticmethod
    async def _fetch_metadata(admin: AIOKafkaAdminClient) -> None:
        await admin.start()
        await admin.list_topics()

    def _admin(self, timeout: float) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(timeout * 1000))

    def _is_our_broker(self, pid: int) -> bool:
        # The pid file may outlive the broker (SIGKILL, reboot) and the pid be reused by anything;
        # only a JVM running kafka.Kafka with this data dir's config counts. Linux /proc is assumed.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in cmdline and str(self.config_path).encode() in cmdline

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        # The broker leads its own process group (start_new_session), so the group id is its pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        # Started by another process: not our child, so poll until it is gone (init reaps it).
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


def _alive(pid: int) -> bool:
    # Neither the cmdline nor the process's own state will do: when a JVM dies, its main thread
    # exits first (empty cmdline, state Z) while other threads still flush logs and hold the log
    # dir lock. The process is gone once none of its threads is alive; a zombie then counts as gone.
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            state = (task / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            return True
    return False
