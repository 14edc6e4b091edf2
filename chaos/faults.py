"""The faults of a chaos run: which part fails, when, and for how long — drawn from the run's seed — and the
injector that makes them happen while the kiosks post.

Each service is killed -9 once and started again; the Kafka broker is killed -9 once and started again
after a few seconds (its logs recover on start); PostgreSQL is stopped in immediate mode once (every
server process quits at once, no checkpoint, as in a crash) and started again, replaying its WAL.

A fault's moment is a count of ratings done, not a second: on a busy machine the kiosks post slower than
planned, and faults planned in seconds would bunch up at the start. The moments are spread over the run,
one per equal slot of ratings with a random offset, so that every fault lands while ratings are arriving
and no two overlap; each fault waits for the one before to recover.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Callable

from chaos.cluster import SERVICES, Cluster

BROKER, DATABASE = "kafka", "postgresql"
TARGETS = (*SERVICES, BROKER, DATABASE)


@dataclass
class Fault:
    target: str  # a service, "kafka" or "postgresql"
    at_rating: int  # strikes once this many ratings are done (answered or given up)
    down_seconds: float  # how long it stays down before it is started again
    started_at: float | None = None
    back_at: float | None = None  # the process answers again (a service's /healthz, the broker's metadata, pg_ctl -w)
    ready_at: float | None = None  # every service says ready again (/readyz: database and Kafka reachable)
    acknowledged_before: int | None = None  # ratings answered 202 when the fault struck
    error: str | None = None

    @property
    def action(self) -> str:
        if self.target == DATABASE:
            return "stop -m immediate, start"
        return "kill -9, start"


def plan_faults(seed: int, ratings: int, first: float = 0.05, last: float = 0.85) -> list[Fault]:
    """One fault per target in a random order, between the `first` and `last` share of the ratings: one per
    equal slot, at a random point in the first 60% of its slot (consecutive faults at least 40% of a slot apart)."""
    rng = random.Random(seed)
    order = list(TARGETS)
    rng.shuffle(order)
    start, slot = first * ratings, (last - first) * ratings / len(order)
    faults = []
    for index, target in enumerate(order):
        at = int(start + index * slot + rng.uniform(0, 0.6 * slot))
        down = rng.uniform(0.5, 3.0) if target in SERVICES else rng.uniform(3.0, 10.0)
        faults.append(Fault(target, at, round(down, 1)))
    return faults


async def inject(
    cluster: Cluster, faults: list[Fault], now: Callable[[], float], done: Callable[[], int], acknowledged: Callable[[], int],
    say: Callable[[str], None],
) -> None:
    """Make each fault happen at its moment (or as soon as the previous one has recovered)."""
    for fault in faults:
        while done() < fault.at_rating:
            await asyncio.sleep(0.2)
        fault.started_at = round(now(), 1)
        fault.acknowledged_before = acknowledged()
        say(f"fault at {fault.started_at:.1f}s (rating {done():,}): {fault.target} — {fault.action} (down {fault.down_seconds:.1f}s)")
        try:
            await _crash(cluster, fault.target)
            await asyncio.sleep(fault.down_seconds)
            await _start(cluster, fault.target)
            fault.back_at = round(now(), 1)
            await asyncio.gather(*(service.wait_ready(timeout=300) for service in cluster.services.values()))
            fault.ready_at = round(now(), 1)
            say(f"  {fault.target} back after {fault.back_at - fault.started_at:.1f}s; all services ready after "
                f"{fault.ready_at - fault.started_at:.1f}s")
        except Exception as exc:  # recorded, and the run goes on: the invariants will tell what it cost
            fault.error = f"{type(exc).__name__}: {exc}"[:300]
            say(f"  fault {fault.target} did not recover: {fault.error}")


async def _crash(cluster: Cluster, target: str) -> None:
    if target == BROKER:
        await cluster.crash_broker()
    elif target == DATABASE:
        await cluster.crash_postgres()
    else:
        await cluster.crash_service(target)


async def _start(cluster: Cluster, target: str) -> None:
    if target == BROKER:
        await cluster.start_broker()
    elif target == DATABASE:
        await cluster.start_postgres()
    else:
        await cluster.start_service(target)
