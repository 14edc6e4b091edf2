"""`make bench`: run the benchmark suites (`python -m bench [suite ...] [--quick] [--postgres]`).

Each suite is a module of this package with `async def run(ctx)`; it runs against one throwaway
Kafka broker started here, writes bench/results/<suite>.json, and docs/benchmarks.md is rebuilt.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import sys
import tempfile
import time
from pathlib import Path

import bench
from bench.common import BenchContext, write_markdown, write_suite

NOT_SUITES = {"common"}


def available_suites() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name not in NOT_SUITES and not m.name.startswith("_"))


def main() -> int:
    suites = available_suites()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", help=f"default: all of {', '.join(suites)}")
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes: a smoke run, figures not recorded")
    parser.add_argument("--postgres", action="store_true", help="also start a throwaway PostgreSQL for suites that use it")
    args = parser.parse_args()
    unknown = sorted(set(args.suites) - set(suites))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; available: {', '.join(suites)}")
    chosen = args.suites or suites

    from deploy.kafka.runner import KafkaBroker, free_port

    with tempfile.TemporaryDirectory(prefix="hailong-bench-") as tmp:
        broker = KafkaBroker(free_port(), Path(tmp) / "kafka", num_partitions=3, die_with_parent=True)
        broker.start_and_wait(timeout=120)
        postgres = None
        try:
            if args.postgres:
                from deploy.postgres.runner import ThrowawayPostgres

                postgres = ThrowawayPostgres()
                postgres.start()
            for name in chosen:
                print(f"bench {name}: starting (Kafka on {broker.bootstrap})", flush=True)
                started = time.monotonic()
                scratch = Path(tmp) / name
                scratch.mkdir()
                ctx = BenchContext(broker.bootstrap, scratch, 0.1 if args.quick else 1.0, postgres)
                module = importlib.import_module(f"bench.{name}")
                rows = asyncio.run(module.run(ctx))
                if args.quick:
                    print(f"bench {name}: quick run, not recorded ({time.monotonic() - started:.0f}s)", flush=True)
                else:
                    path = write_suite(name, rows)
                    print(f"bench {name}: wrote {path.relative_to(bench.common.ROOT)} ({time.monotonic() - started:.0f}s)", flush=True)
        finally:
            if postgres is not None:
                postgres.stop()
            broker.stop()
    if not args.quick:
        print(f"bench: rewrote {write_markdown().relative_to(bench.common.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
