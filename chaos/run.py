"""One chaos run: set up the registry and credentials, post the ratings while the faults strike, wait for
quiet, gather what the system holds, and judge it against the invariants."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import sqlalchemy as sa

from chaos import invariants
from chaos.cluster import Cluster
from chaos.faults import Fault, inject, plan_faults
from chaos.kiosks import RATED_UNITS, UNITS, Behaviour, KioskFleet, quarter_months
from shared import events, topics
from shared.periods import VIETNAM, periods_containing

KIOSKS_PER_UNIT = 3
PROFILES = (invariants.COUNTED_PROFILE, invariants.MAP_PROFILE, invariants.PORTAL_PROFILE)
Say = Callable[[str], None]


@dataclass
class RunOptions:
    seed: int
    ratings: int = 20_000
    rate: float = 40.0
    quiet_timeout: float = 1800.0
    behaviour: Behaviour | None = None
    faults: bool = True  # False: a control run with the same load and nothing failing


async def set_up(cluster: Cluster, seed: int, say: Say) -> tuple[dict[str, list[str]], str]:
    """The registry (two provinces, their departments and centres), the period inputs scoring needs for final
    HCMC 104/2024 figures, one key per kiosk and the portal's key."""
    admin = cluster.token("admin")
    rng = random.Random(seed)
    intake = cluster.services["intake"].url
    async with httpx.AsyncClient(base_url=intake, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as client:
        for unit in UNITS:
            body = {"name": unit.name, "level": unit.level, "parent_code": unit.parent_code}
            answer = await client.put(f"/v1/units/{unit.code}", json=body)
            answer.raise_for_status()
        now = datetime.now(timezone.utc)
        months = [f"{year}-{month:02d}" for year, month in quarter_months(now)]
        periods = months + [str(p) for p in periods_containing(now)[1:]]
        for unit in RATED_UNITS:
            for period in periods:
                # D (0–18) and E decide whether a unit is satisfied (K > 20): some are not, and owe a plan.
                body = {"period": period, "feedback_handling": round(rng.uniform(15.5, 18.0), 1),
                        "public_listing": rng.random() < 0.85, "feedback_received": rng.randint(20, 200), "source": "chaos run"}
                body["feedback_answered_on_time"] = int(body["feedback_received"] * rng.uniform(0.8, 1.0))
                body["feedback_dissatisfied_or_overdue"] = int(body["feedback_received"] * rng.uniform(0.0, 0.2))
                (await client.post(f"/v1/units/{unit.code}/assessments", json=body)).raise_for_status()
    kiosk_units = [unit.code for unit in RATED_UNITS for _ in range(KIOSKS_PER_UNIT)]
    tokens = await cluster.create_api_keys("kiosk", kiosk_units, "chaos kiosk")
    keys: dict[str, list[str]] = {}
    for unit, token in zip(kiosk_units, tokens, strict=True):
        keys.setdefault(unit, []).append(token)
    [portal] = await cluster.create_api_keys("portal", [None], "chaos portal")
    say(f"registry: {len(UNITS)} units; {len(tokens)} kiosk keys and a portal key; assessments for {', '.join(periods)}")
    return keys, portal


async def fault_run(cluster: Cluster, options: RunOptions, say: Say) -> dict[str, Any]:
    started_wall = time.monotonic()
    keys, portal = await set_up(cluster, options.seed, say)
    waited, backlog = await cluster.wait_for_quiet(300)
    say(f"registry copied by every service ({waited:.0f}s)")
    planned_seconds = options.ratings / options.rate
    faults = plan_faults(options.seed, options.ratings) if options.faults else []
    say("faults planned (after so many ratings): " + ", ".join(f"{f.target} {f.at_rating:,}" for f in faults))
    t0 = time.monotonic()
    fleet = KioskFleet(cluster.services["intake"].url, keys, portal, seed=options.seed, total=options.ratings,
                       rate=options.rate, behaviour=options.behaviour, run_started=t0)
    say(f"posting {options.ratings:,} ratings at {options.rate:g}/s (about {planned_seconds / 60:.1f} min); run id {fleet.run_id}")
    watching = asyncio.create_task(_watch(cluster, fleet, faults, say))
    try:
        await asyncio.gather(fleet.run(), inject(cluster, faults, fleet.now, lambda: fleet.tally.finished, lambda: fleet.acknowledged, say))
    finally:
        watching.cancel()
    posted_at = time.monotonic()
    say(f"all ratings answered or given up after {fleet.posting_seconds:.0f}s; waiting for quiet")
    quiet_seconds, backlog = await cluster.wait_for_quiet(options.quiet_timeout)
    say(f"quiet after {quiet_seconds:.0f}s" if backlog.quiet else f"NOT quiet after {quiet_seconds:.0f}s: {backlog.describe()}")
    fleet.write_ledger(cluster.run_dir / "ledger.jsonl")
    verdicts, fates = await judge(cluster, fleet, say)
    if not backlog.quiet:
        verdicts.insert(0, invariants.Verdict("the system became quiet", False, backlog.describe()))
    exits = [f"{name} exited with {code}" for name, code in cluster.exited_services().items()]
    storage = await storage_by_service(cluster)
    return {
        "seed": options.seed, "run_id": fleet.run_id, "rate": options.rate,
        "ratings": {"planned": options.ratings, "acknowledged": fleet.acknowledged},
        "posting_seconds": round(fleet.posting_seconds, 1), "quiet_seconds": round(quiet_seconds, 1),
        "quiet": backlog.quiet, "backlog_at_end": backlog.describe(),
        "duration_seconds": round(time.monotonic() - started_wall, 1),
        "kiosks": {"attempts": fleet.tally.attempts, "retries": fleet.tally.retries,
                   "by_outcome": dict(sorted(fleet.tally.by_outcome.items())), "fates": _fate_counts(fates)},
        "faults": [asdict(f) | {"action": f.action} for f in faults],
        "invariants": [v.as_dict() for v in verdicts],
        "targets": {"map": cluster.map.summary(), "portal": cluster.portal.summary()},
        "unexpected_exits": exits + [f for f in getattr(cluster, "restarted_unexpectedly", [])],
        "quiet_after_posting_seconds": round(time.monotonic() - posted_at, 1),
        "run_dir": str(cluster.run_dir),
        "storage_bytes": storage,
    }


async def storage_by_service(cluster: Cluster) -> dict[str, int]:
    """Each service's PostgreSQL tables on disk (with their indexes and TOAST) after the run, as `schema.table`:
    sizing per rating for docs/operations.md. Outbox rows (pruned after an hour) and processed event ids
    (after a week) are still there."""
    query = sa.text(
        "SELECT n.nspname || '.' || c.relname AS name, pg_total_relation_size(c.oid)::bigint AS bytes FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
        "AND n.nspname IN ('intake', 'scoring', 'workflow', 'publisher')"
    )
    async with cluster.engine.connect() as conn:  # type: ignore[union-attr]
        return {row.name: int(row.bytes) for row in await conn.execute(query)}


def _fate_counts(fates: invariants.Fates) -> dict[str, int]:
    return {
        "answered 202": len(fates.acknowledged), "answered 409 naming its rating after a timed-out attempt": len(fates.acknowledged_by_conflict),
        "202 pending_dossier, dossier never acknowledged": len(fates.pending),
        "given up after a 5xx": len(fates.refused_5xx), "given up, refused otherwise": len(fates.refused_otherwise),
        "given up without an answer": len(fates.unknown),
    }


async def _watch(cluster: Cluster, fleet: KioskFleet, faults: list[Fault], say: Say) -> None:
    """Progress every 20 s; a service that dies on its own (not one of the faults) is reported and started again,
    as a supervisor would."""
    cluster.restarted_unexpectedly = []  # type: ignore[attr-defined]
    while True:
        await asyncio.sleep(20)
        t = fleet.tally
        top = ", ".join(f"{k} {v:,}" for k, v in sorted(t.by_outcome.items(), key=lambda kv: -kv[1])[:6])
        say(f"  {fleet.now():.0f}s: {t.finished:,}/{t.planned:,} ratings done, {fleet.acknowledged:,} acknowledged; "
            f"{t.attempts:,} attempts ({top})")
        in_fault = {f.target for f in faults if f.started_at is not None and f.ready_at is None and f.error is None}
        for name, code in cluster.exited_services().items():
            if name not in in_fault:
                note = f"{name} exited with {code} at {fleet.now():.0f}s without being killed"
                say(f"  {note}; starting it again")
                cluster.restarted_unexpectedly.append(note)  # type: ignore[attr-defined]
                await cluster.start_service(name)


async def judge(cluster: Cluster, fleet: KioskFleet, say: Say) -> tuple[list[invariants.Verdict], invariants.Fates]:
    """Gather what the system holds and check every invariant."""
    prefix = f"CHAOS-{fleet.run_id}-"
    fates = invariants.sort_fates(fleet.records)
    rating_events = [json.loads(r.value) for r in await cluster.read_topic(topics.RATINGS)]
    topic = invariants.counted_ratings(rating_events, prefix)
    dossier_moments: dict[str, tuple[str, datetime]] = {}
    late_dossiers: set[str] = set()
    revisions: dict[str, int] = {}
    for record in await cluster.read_topic(topics.DOSSIERS):
        event = json.loads(record.value)
        data = event.get("data") or {}
        code = str(data.get("dossier_code", ""))
        if event.get("type") != events.DOSSIER_COMPLETED or not code.startswith(prefix):
            continue
        if data.get("revision", 1) < revisions.get(code, 0):
            continue
        revisions[code] = data.get("revision", 1)
        completed, due = datetime.fromisoformat(data["completed_at"]), datetime.fromisoformat(data["due_at"])
        dossier_moments[code] = (data["unit_code"], completed)
        if invariants.late(completed, due):
            late_dossiers.add(code)
        else:
            late_dossiers.discard(code)
    missing_dossiers = sorted(fates.dossiers_acknowledged - set(dossier_moments))
    say(f"read ratings.v1 ({len(rating_events):,} records, {len(topic):,} ratings of this run) and dossiers.v1 "
        f"({len(dossier_moments):,} dossiers)")
    cards = await _scorecards(cluster)
    tickets, subject_refs = await _tickets(cluster)
    parents = {unit.code: unit.parent_code for unit in UNITS}
    async with cluster.engine.connect() as conn:  # type: ignore[union-attr]
        dead = int(await conn.scalar(sa.text("SELECT count(*) FROM publisher.deliveries WHERE status = 'dead'")) or 0)
    counted = invariants.check_counted_once(fates, topic, cards, parents, dossier_moments)
    if missing_dossiers:
        counted.held = False
        counted.problems += [f"acknowledged dossier missing from dossiers.v1: {code}" for code in missing_dossiers]
    counted.numbers["dossiers_acknowledged"] = len(fates.dossiers_acknowledged)
    counted.numbers["dossiers_on_topic"] = len(dossier_moments)
    verdicts = [
        counted,
        invariants.check_refused_not_counted(fates, topic),
        invariants.check_targets_newest(
            cards, {"map": cluster.map.snapshot(), "portal": cluster.portal.snapshot()},  # type: ignore[union-attr]
            {"map": cluster.map.summary(), "portal": cluster.portal.summary()},  # type: ignore[union-attr]
            dead, {"map": invariants.MAP_PROFILE, "portal": invariants.PORTAL_PROFILE},
        ),
        invariants.check_one_ticket_per_cause(tickets, subject_refs, topic, late_dossiers),
        invariants.check_dlqs_empty(await cluster.dead_lettered()),
    ]
    return verdicts, fates


async def _scorecards(cluster: Cluster) -> dict[tuple[str, str, str], dict[str, Any] | None]:
    """Scoring's figure of every unit, in every period the run touched, under the profiles the checks use."""
    year = quarter_months(datetime.now(timezone.utc))[0][0]
    periods: set[str] = set()  # every period of the year: assessments make figures beyond the months rated
    for month in range(1, 13):
        periods.update(str(p) for p in periods_containing(datetime(year, month, 15, tzinfo=VIETNAM)))
    cards: dict[tuple[str, str, str], dict[str, Any] | None] = {}
    async with httpx.AsyncClient(base_url=cluster.services["scoring"].url, timeout=30) as client:
        for profile in PROFILES:
            for unit in UNITS:
                for period in sorted(periods):
                    answer = await client.get(f"/v1/units/{unit.code}/scores", params={"period": period, "profile": profile})
                    if answer.status_code == 404:
                        cards[(profile, unit.code, period)] = None
                    else:
                        answer.raise_for_status()
                        cards[(profile, unit.code, period)] = answer.json()
    return cards


async def _tickets(cluster: Cluster) -> tuple[list[dict[str, Any]], dict[str, str | None]]:
    """Every ticket through workflow's API (admin), and each one's subject (the late dossier of an apology letter)."""
    items: list[dict[str, Any]] = []
    cursor = None
    headers = {"Authorization": f"Bearer {cluster.token('admin')}"}
    async with httpx.AsyncClient(base_url=cluster.services["workflow"].url, headers=headers, timeout=60) as client:
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            answer = await client.get("/v1/tickets", params=params)
            answer.raise_for_status()
            body = answer.json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                break
    async with cluster.engine.connect() as conn:  # type: ignore[union-attr]
        refs = {row.id: row.subject_ref for row in await conn.execute(sa.text("SELECT id, subject_ref FROM workflow.tickets"))}
    return items, refs


def default_run_dir(root: Path, seed: int) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return root / "var" / "chaos" / f"{stamp}-{seed}"

