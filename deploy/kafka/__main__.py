"""Dev/Makefile entry point for the local Kafka broker: `python -m deploy.kafka start|stop|fetch`.

`start` launches the broker in the background (it outlives this command), waits until it answers
and creates the contract's topics; `stop` shuts it down from its pid file; `fetch` only resolves the
jars (first run needs Maven Central). Settings come from the environment so the Makefile and the
services agree: HAILONG_KAFKA_PORT (9092), HAILONG_KAFKA_DATA_DIR (<repo>/var/kafka),
HAILONG_TOPIC_PREFIX ("hailong."), HAILONG_KAFKA_PARTITIONS (3), HAILONG_KAFKA_CACHE (jar cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from deploy.kafka.runner import KAFKA_VERSION, BrokerError, KafkaBroker, ensure_jars
from shared.topics import topic_specs

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.kafka", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start", "stop", "fetch"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("HAILONG_KAFKA_PORT", "9092")))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("HAILONG_KAFKA_DATA_DIR", _REPO_ROOT / "var" / "kafka")),
    )
    parser.add_argument("--prefix", default=os.environ.get("HAILONG_TOPIC_PREFIX", "hailong."))
    parser.add_argument("--partitions", type=int, default=int(os.environ.get("HAILONG_KAFKA_PARTITIONS", "3")))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness / shutdown")
    return parser


def _start(broker: KafkaBroker, prefix: str, timeout: float) -> None:
    started = time.monotonic()
    pid = broker.running_pid()
    if pid is not None:
        # Idempotent for `make`: a running broker is reused and still gets its topics checked.
        print(f"Kafka already running (pid {pid}) on {broker.data_dir}")
        broker.wait_ready_sync(timeout)
    else:
        broker.start_and_wait(timeout)
        pid = broker.running_pid()
    specs = topic_specs(prefix, broker.num_partitions)
    broker.create_topics_sync(specs)
    print(
        f"Kafka {KAFKA_VERSION} ready at {broker.bootstrap} in {time.monotonic() - started:.1f}s "
        f"(pid {pid}, {len(specs)} topics with prefix {prefix!r}, log {broker.log_path})"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_jars())
            return 0
        broker = KafkaBroker(port=args.port, data_dir=args.data_dir, num_partitions=args.partitions)
        if args.command == "start":
            _start(broker, args.prefix, args.timeout)
        elif broker.running_pid() is None:
            print(f"no Kafka running on {broker.data_dir}")
        else:
            broker.stop(args.timeout)
            print("Kafka stopped")
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
