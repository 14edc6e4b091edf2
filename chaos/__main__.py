"""`make chaos`: the fault run and schemathesis against the whole system on real parts; report in
docs/reliability.md, exit status 1 when an invariant fails or a service answers a generated request 5xx.

    python -m chaos [--seed N] [--ratings 20000] [--rate 40] [--only faults|fuzz] [--fuzz-cases 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from chaos import report
from chaos.cluster import Cluster
from chaos.run import RunOptions, default_run_dir, fault_run, set_up

ROOT = Path(__file__).resolve().parent.parent


def say(line: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {line}", flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a fresh seed, printed)")
    parser.add_argument("--ratings", type=int, default=20_000, help="ratings the kiosks post (default 20,000)")
    parser.add_argument("--rate", type=float, default=40.0, help="ratings started per second (default 40)")
    parser.add_argument("--only", choices=["faults", "fuzz"], help="run one part (the report keeps the other's latest figures)")
    parser.add_argument("--fuzz-cases", type=int, default=1000, help="generated requests per service, at least (default 1,000)")
    parser.add_argument("--quiet-timeout", type=float, default=1800.0, help="seconds to wait for quiet after posting")
    parser.add_argument("--no-faults", action="store_true", help="a control run: the same load, nothing fails (not recorded)")
    parser.add_argument("--keep-running", action="store_true", help="after judging, keep everything up until Ctrl-C (debugging)")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite chaos/results and docs/reliability.md")
    parser.add_argument("--report-only", action="store_true", help="rebuild docs/reliability.md from chaos/results and chaos/notes.md")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big") % 1_000_000
    if args.no_faults:
        args.no_report = True
    if args.ratings < 100 or args.rate <= 0:
        parser.error("--ratings must be at least 100 and --rate positive")
    return args


async def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    run_dir = default_run_dir(ROOT, args.seed)
    say(f"seed {args.seed} (replay with `make chaos SEED={args.seed}`); files in {run_dir.relative_to(ROOT)}")
    cluster = Cluster(run_dir, args.seed, say)
    run: dict[str, Any] | None = None
    fuzz: dict[str, Any] | None = None
    try:
        await cluster.start()
        if args.only != "fuzz":
            options = RunOptions(args.seed, args.ratings, args.rate, args.quiet_timeout, faults=not args.no_faults)
            run = await fault_run(cluster, options, say)
        else:
            await set_up(cluster, args.seed, say)
        if args.only != "faults":
            from chaos.fuzz import fuzz_all

            fuzz = await fuzz_all(cluster, args.seed, args.fuzz_cases, say)
        if args.keep_running:
            say("keeping everything up (Ctrl-C stops): " + ", ".join(f"{s.name} {s.url}" for s in cluster.services.values())
                + f"; database {cluster.postgres.url_for('hailong')}; admin token {cluster.token('admin')}")
            await asyncio.Event().wait()
    finally:
        say("stopping the services, the broker and PostgreSQL")
        await cluster.stop()
    minutes = round((time.monotonic() - started) / 60, 1)
    failed = False
    if run is not None:
        # How long the whole `make chaos` took is known only when both parts ran.
        run.update(finished_at=report.now_iso(), machine=report.machine(), make_chaos_minutes=minutes if args.only is None else None)
        report.print_run(run)
        failed |= not all(v["held"] for v in run["invariants"])
        if not args.no_report:
            report.save("faults", run)
    if fuzz is not None:
        fuzz.update(finished_at=report.now_iso())
        report.print_fuzz(fuzz)
        failed |= any(s["findings"] for s in fuzz["services"]) or bool(fuzz.get("after_failed"))
        if not args.no_report:
            report.save("fuzz", fuzz)
    if not args.no_report:
        say(f"wrote {report.write_markdown().relative_to(ROOT)}")
    say(f"{'FAILED' if failed else 'passed'} in {minutes} min (seed {args.seed})")
    return 1 if failed else 0


def _stop_on_signal(signum: int, _frame: Any) -> None:
    # Turned into KeyboardInterrupt so that the cluster's `finally` stops every process it started.
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_signal)
    arguments = parse(sys.argv[1:])
    if arguments.report_only:
        say(f"wrote {report.write_markdown().relative_to(ROOT)}")
        sys.exit(0)
    try:
        sys.exit(asyncio.run(main(arguments)))
    except KeyboardInterrupt:
        say("interrupted; processes stopped")
        sys.exit(130)
