"""Outbox bundles: a row carrying many records publishes each as if it had had a row of its own."""

import json
from datetime import datetime, timezone
from typing import Any

from shared.bus.outbox import BUNDLE_MAX_RECORDS, OutboxRelay, _records_in, bundled_rows

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=timezone.utc)


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> object:
        self.records.append((key, value, headers))
        return object()


class FakeProducer:
    """What the relay uses of aiokafka's producer; partitions by the key's first byte."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, FakeBatch]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def _partition(self, topic: str, partition: Any, key: Any, value: Any, key_bytes: bytes | None, value_bytes: Any) -> int:
        return key_bytes[0] % 3 if key_bytes else 0

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch))
        return None


def as_stored(row: dict[str, Any], row_id: int) -> tuple[Any, ...]:
    """A row as the relay reads it back: headers as their JSON text."""
    return (row_id, row["topic"], row["key"], row["value"], json.dumps(row["headers"]), row["event_id"])


async def published(rows: list[dict[str, Any]]) -> list[tuple[str, int, bytes | None, bytes, list[tuple[str, bytes]]]]:
    relay = OutboxRelay.__new__(OutboxRelay)
    relay.producer = FakeProducer()  # type: ignore[assignment]
    _, counts = await relay._publish([as_stored(row, i) for i, row in enumerate(rows, 1)])
    out = [(topic, partition, *record) for topic, partition, batch in relay.producer.sent for record in batch.records]  # type: ignore[union-attr]
    assert sum(counts.values()) == len(out)
    return sorted(out, key=lambda r: (r[1], r[3]))  # per partition, in order of the values (numbered)


async def test_a_bundle_publishes_the_same_records_as_rows_of_their_own() -> None:
    trace_a, trace_b = {"traceparent": "00-a-01"}, {"traceparent": "00-b-01"}
    records = [(f"79.U{i % 7}", f"id-{i}", b"event-%04d" % i, trace_a if i % 3 else trace_b) for i in range(BUNDLE_MAX_RECORDS + 45)]
    bundled = bundled_rows("t.ratings.v1", records, NOW)
    assert len(bundled) == 2 and [_records_in(r["event_id"]) for r in bundled] == [BUNDLE_MAX_RECORDS, 45]
    single = [{"event_id": e, "topic": "t.ratings.v1", "key": k, "value": v, "headers": h, "created_at": NOW} for k, e, v, h in records]
    assert await published(bundled) == await published(single)
    assert len(await published(bundled)) == len(records)


async def test_a_lone_record_is_an_ordinary_row() -> None:
    [row] = bundled_rows("t.ratings.v1", [("79.U1", "id-1", b"event", {"traceparent": "x"})], NOW)
    assert row["event_id"] == "id-1" and row["key"] == "79.U1" and row["value"] == b"event" and _records_in(row["event_id"]) == 1
