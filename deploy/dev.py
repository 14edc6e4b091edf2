"""`make run`: the whole system on one machine — Kafka broker, four services, reference data, credentials.

One terminal, coloured prefixed logs; Ctrl-C stops the services and the broker cleanly.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from deploy.kafka.runner import KafkaBroker
from deploy.process import die_with_parent
from shared.settings import SERVICES, Settings
from shared.topics import topic_specs

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {"kafka": "35", "intake": "36", "scoring": "33", "workflow": "32", "publisher": "34", "dev": "1"}
DEV_SECRETS = ("HAILONG_JWT_SECRET", "HAILONG_RESPONDENT_HASH_KEY", "HAILONG_MAP_SIGNING_SECRET")


def say(source: str, line: str) -> None:
    colour = COLOURS.get(source, "0")
    if sys.stdout.isatty():
        sys.stdout.write(f"\033[{colour}m{source:>9} |\033[0m {line}\n")
    else:
        sys.stdout.write(f"{source:>9} | {line}\n")
    sys.stdout.flush()


def dev_environment(data_dir: Path) -> dict[str, str]:
    """Dev mode with secrets generated once and kept in var/dev.env (never committed)."""
    env_file = data_dir / "dev.env"
    values: dict[str, str] = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, _, value = line.partition("=")
            if name and value:
                values[name] = value
    missing = [name for name in DEV_SECRETS if name not in values]
    if missing:
        values.update({name: secrets.token_urlsafe(32) for name in missing})
        data_dir.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        env_file.chmod(0o600)
    return {**os.environ, **values, "HAILONG_DEV_MODE": "true", "HAILONG_DATA_DIR": str(data_dir)}


def start_service(name: str, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"services.{name}.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env={**env, "HAILONG_LOG_JSON": "false" if sys.stdout.isatty() else "true"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, preexec_fn=die_with_parent, start_new_session=True,
    )
    assert process.stdout is not None
    stream = process.stdout
    threading.Thread(target=lambda: [say(name, line.rstrip()) for line in stream], daemon=True).start()
    return process


def wait_ready(urls: dict[str, str], interrupted: threading.Event, timeout: float = 90.0) -> list[str]:
    """Names of the services not ready within `timeout`."""
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    while pending and time.monotonic() < deadline and not interrupted.is_set():
        for name, url in list(pending.items()):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    say("dev", f"{name} ready")
                    del pending[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    return list(pending)


def stop_all(processes: dict[str, subprocess.Popen[str]], broker: KafkaBroker | None) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for name, process in processes.items():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            say("dev", f"{name} did not stop in time; killing it")
            process.kill()
    if broker is not None:
        say("kafka", "stopping the broker")
        broker.stop()


def main() -> int:
    os.chdir(ROOT)
    data_dir = ROOT / "var"
    env = dev_environment(data_dir)
    os.environ.update(env)
    settings = Settings()
    broker: KafkaBroker | None = None
    processes: dict[str, subprocess.Popen[str]] = {}
    interrupted = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: interrupted.set())
    # If whoever started us (make, a supervisor) dies without passing a signal on, stop cleanly too.
    die_with_parent()
    try:
        if settings.kafka_bootstrap == "127.0.0.1:9092" or os.environ.get("HAILONG_START_KAFKA") == "true":
            port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
            broker = KafkaBroker(port, data_dir / "kafka", num_partitions=settings.kafka_partitions)
            started = time.monotonic()
            if broker.running_pid() is None:
                say("kafka", f"starting Apache Kafka (KRaft, single node) on {broker.bootstrap}")
                broker.start_and_wait()
            else:
                say("kafka", f"reusing the broker already running on {broker.bootstrap}")
                broker.wait_ready_sync()
            broker.create_topics_sync(topic_specs(settings.topic_prefix, settings.kafka_partitions))
            say("kafka", f"ready in {time.monotonic() - started:.1f}s; topics created")
        else:
            say("kafka", f"using the Kafka cluster at {settings.kafka_bootstrap}")
        hailong = [sys.executable, "-m", "services.cli"]
        loaded = subprocess.run([*hailong, "units", "load-reference"], check=True, env=env, cwd=ROOT, capture_output=True, text=True)
        say("dev", loaded.stdout.strip())
        credentials = data_dir / "dev-credentials.json"
        if not credentials.exists():
            subprocess.run([*hailong, "dev-credentials", "--out", str(credentials)], check=True, env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
        urls = {name: f"http://127.0.0.1:{settings.port_of(name)}" for name in SERVICES}
        for name in SERVICES:
            processes[name] = start_service(name, settings.port_of(name), env)
        not_ready = wait_ready(urls, interrupted)
        if interrupted.is_set():
            return 0
        if not_ready:
            say("dev", f"not ready: {', '.join(not_ready)} (see their logs above)")
            return 1
        say("dev", "Hài Lòng is running:")
        for name, url in urls.items():
            say("dev", f"  {name:<9} {url}   (API docs {url}/docs)")
        say("dev", f"  credentials  {credentials}")
        say("dev", "Ctrl-C stops everything.")
        while not interrupted.is_set():
            for name, process in processes.items():
                if process.poll() is not None:
                    say("dev", f"{name} exited with code {process.returncode}; stopping")
                    return 1
            interrupted.wait(1)
        return 0
    finally:
        say("dev", "stopping")
        stop_all(processes, broker)


if __name__ == "__main__":
    sys.exit(main())
