"""`hailong scoring rebuild`, as operators run it: from the contributions, and from the topics at offset zero."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from services.scoring import store
from tests.support import scoring_events as se
from tests.support.infra import Backend, cli, service_env

pytestmark = pytest.mark.integration
WARD = "79.P1"


def history() -> list:
    flagged = se.rating("D2", WARD, "satisfied", flagged=True)
    return [
        se.unit("79", level="province"), se.unit(WARD, "79"),
        se.dossier("D1", WARD), se.dossier("D2", WARD, supplement_requests=2),
        se.rating("D1", WARD, "dissatisfied", attitude="bad"), flagged,
        se.verdict(se.rating_id_of(flagged), "D2", "genuine"),
        se.assessment(WARD, "2026-11", feedback_handling=17.0, public_listing=True),
    ]


async def _versions(backend: Backend) -> dict[tuple[str, str, str], int]:
    engine = await se.scoring_engine(backend)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(store.aggregates.c.profile, store.aggregates.c.unit_code, store.aggregates.c.period, store.aggregates.c.version))
            return {(r.profile, r.unit_code, r.period): r.version for r in rows}
    finally:
        await engine.dispose()


async def test_rebuild_from_contributions_repairs_the_counters_and_rescores(backend: Backend, kafka_broker, topic_prefix: str) -> None:  # type: ignore[no-untyped-def]
    engine = await se.scoring_engine(backend)
    await se.apply(engine, history())
    expected = await se.all_counters(engine)
    async with engine.begin() as conn:  # damage, e.g. a hand edit
        await conn.execute(store.counters.update().where(store.counters.c.unit_code == "79").values(ratings=999, dirty=False))
    await engine.dispose()
    before = await _versions(backend)

    output = await asyncio.to_thread(cli, service_env(backend, kafka_broker.bootstrap, topic_prefix), "scoring", "rebuild")
    assert "contributions summed" in output

    engine = await se.scoring_engine(backend)
    assert await se.all_counters(engine) == expected
    card = await se.figure(engine, "79", "2026-11", "satisfied-share")
    assert (card.ratings, card.components["satisfied"]) == (2, 1)
    await engine.dispose()
    after = await _versions(backend)
    assert all(after[key] > version for key, version in before.items())  # versions only go up


async def test_rebuild_from_the_topics_replays_everything_from_offset_zero(backend: Backend, kafka_broker, topic_prefix: str) -> None:  # type: ignore[no-untyped-def]
    events = history()
    topic_of = {
        "vn.hailong.unit.upserted.v1": "units.v1", "vn.hailong.dossier.completed.v1": "dossiers.v1",
        "vn.hailong.rating.accepted.v1": "ratings.v1", "vn.hailong.rating.flagged.v1": "ratings.v1",
        "vn.hailong.rating.verified.v1": "verifications.v1", "vn.hailong.assessment.recorded.v1": "assessments.v1",
    }
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(f"{topic_prefix}{topic_of[event.type]}", event.to_bytes(), key=(event.subject or "").encode())
    finally:
        await producer.stop()
    engine = await se.scoring_engine(backend)
    await se.apply(engine, events)
    expected = await se.all_counters(engine)
    await se.apply(engine, [se.rating("STRAY", WARD, "satisfied")])  # state the topics do not have
    await engine.dispose()

    output = await asyncio.to_thread(cli, service_env(backend, kafka_broker.bootstrap, topic_prefix), "scoring", "rebuild", "--from-topics", "--yes")
    assert f"{len(events)} events replayed" in output

    engine = await se.scoring_engine(backend)
    try:
        assert await se.all_counters(engine) == expected
        async with engine.connect() as conn:
            offsets = (await conn.execute(sa.select(store.bus.consumer_offsets))).all()
        assert sum(o.next_offset for o in offsets) == len(events)  # the service resumes after the replay
        card = await se.figure(engine, WARD, "2026-11", "hcmc-2024")
        assert card.components["D"]["value"] == 17.0 and card.dossiers == 2
    finally:
        await engine.dispose()
